/*
 * ft_node.h — a node that restores redundancy: it runs its VM alone (a backup that went live, or
 * a primary whose backup was lost) and makes a new backup on the first of its spares that answers,
 * by an FT clone (docs/ft-clone.md), again after every loss of its peer.
 *
 * The cycle, on the vCPU thread (ft_node_run()):
 *   1. alone: the machine runs in the live world, unprotected, while the clone thread tries the
 *      spares in order, then waits (100 ms doubling to 2 s) and tries again;
 *   2. a clone succeeded: the arbiter recorded the new pairing (claim of epoch e+1 by this node)
 *      and the log connection to the spare was opened, both before the pre-copy, which ran beside
 *      the guest; in the stop-and-copy the spare got the whole state at icount N, and the live
 *      world was cut: the run ended at exactly N;
 *   3. the node becomes the primary of epoch e+2 with the spare, now its backup: recorder and
 *      Output Rule around the same machine and live world, on that connection, the log from N on;
 *   4. losing that backup (ft_primary.h: the primary claims epoch e+2 and runs on alone), the
 *      clone thread starts again; its cut ends the primary's run, and 3 follows with e+4.
 * Epochs only grow, and each pairing's are recorded before it starts: a node of an older pairing
 * can never win a claim again (arbiter_claim() of a lower epoch: -ESTALE, of a decided one: lost).
 */
#ifndef FTVM_CMD_FT_NODE_H
#define FTVM_CMD_FT_NODE_H

#include <stddef.h>
#include <stdint.h>
#include "cmd/ft_options.h"
#include "cmd/vm_command.h"
#include "common/ft_status.h"
#include "logchannel/channel_types.h"
#include "util/compiler.h"

struct ft_node;
struct ft_primary;

/* For the VM of c (its live world open), with the FT options and key of the command. */
int ft_node_create(struct vm_command *c, const struct ft_options *fo, const struct channel_key *key,
		   const char *vm_id, struct ft_node **out) FTVM_MUST_CHECK;
/* Runs the VM, alone after winning `epoch` (p NULL) or as the connected primary p of `epoch`
 * (the node takes it over), until the guest ends or this node halts: the exit status of the
 * command (cmd/exit_code.h). */
int ft_node_run(struct ft_node *n, uint64_t epoch, uint64_t failovers, struct ft_primary *p);
/* The node's status, for the control socket (ctx: the node; any thread). */
void ft_node_status(void *ctx, struct ft_status *st);

#define FT_NODE_PEER_MAX 256u
/* Any thread (`ftvm ft enable`): restore redundancy to peer, an `ftvm spare`, now and after every
 * loss (it replaces the --spare list). -EALREADY when the VM is protected already. */
int ft_node_enable(struct ft_node *n, const char *peer, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Both: -EBUSY while the node is being migrated. */
/* Any thread (`ftvm ft disable`): no more clones; a protected primary's run is cut and its log
 * ended (END): the backup replays to it and exits without going live, the VM runs on alone. */
int ft_node_disable(struct ft_node *n, char *err, size_t errlen) FTVM_MUST_CHECK;
/*
 * Live migration of this node (`ftvm migrate`, docs/migration.md "Migrating an FT node"), on the
 * migrate job's thread. begin: no clone runs until end; cfg gets the arbiter area (the hand-over
 * is judged there in the node's epoch + 1), the copy of replicated disks, and the hook that lets
 * a primary's Output Rule release everything before the state is taken. -EBUSY / -EAGAIN with err
 * when the node cannot be migrated now. end: after the job (result: mig_source_run()'s); a
 * migration that failed leaves the node as it was, or, when its source won the new epoch itself
 * (arbiter_epoch above the node's), alone in that epoch, its old pairing's backup dropped.
 */
struct mig_source_config;
int ft_node_migrate_begin(struct ft_node *n, struct mig_source_config *cfg, char *err, size_t errlen) FTVM_MUST_CHECK;
void ft_node_migrate_end(struct ft_node *n, int result, uint64_t arbiter_epoch);
void ft_node_destroy(struct ft_node *n);

#endif
