/*
 * ft_primary.h — the primary of an FT pair: recorder + logging channel + Output Rule + failover.
 *
 * World chain: machine -> recorder (logs inputs, digests outputs) -> FT output world (holds
 * outputs under the Output Rule, slows the vCPU when the backup lags) -> live world (TAP, disk,
 * console). The recorder's sink sends each record over the channel.
 *
 * Losing the backup (channel timed out, broke, or the backup closed it after a divergence):
 *   1. keep holding outputs — the vCPU runs on, nothing leaves;
 *   2. claim the arbiter for this pairing's epoch as node 0 (waits while the disk is unreachable);
 *      none when this node holds a later epoch already (ft_primary_supersede()): it runs on alone;
 *      refused because a later epoch is decided while this node claims one in a migration's
 *      hand-over (ft_primary_judging()): wait for that judgement, run on alone if it was won;
 *   3. won: open the gate (held outputs leave in order), stop logging, run on alone;
 *   4. lost: the backup is live elsewhere: drop held outputs, halt the VM for good.
 */
#ifndef FTVM_PRIMARY_FT_PRIMARY_H
#define FTVM_PRIMARY_FT_PRIMARY_H

#include <stdbool.h>
#include <stdint.h>
#include "common/ft_status.h"
#include "util/compiler.h"
#include "vm/event.h"
#include "vm/icount.h"
#include "vm/machine.h"

struct channel;
struct channel_key;
struct world_live;

struct ft_primary_config {
	const char *vm_name;     /* the VM's name in the arbiter area */
	const char *vm_id;       /* what the handshake carries: name and configuration digest */
	uint64_t epoch;          /* pairing epoch: the channel's and the arbiter claim's */
	const char *peer;        /* backup's HOST:PORT */
	const char *arbiter;     /* path of the shared arbiter area */
	unsigned node;           /* arbiter node id (primary: 0) */
	unsigned timeout_ms;     /* failure detection */
	unsigned heartbeat_ms;
	unsigned max_lag_ms;     /* slow the vCPU while the backup is further behind (0: never) */
	bool rdma;               /* logging channel over RDMA verbs instead of TCP */
	bool replicated_disks;   /* each node has its own disk replica: reads are logged as digests
	                          * (DISK_DIGEST) and disk requests are not held as outputs; otherwise
	                          * the disk is shared: digests where the backup can read the same
	                          * bytes (replay/shared_reads.h), the data where not */
	const struct channel_key *key; /* the pairing key (kept by the caller while this runs) */
	/* Replicated disks: the live world whose disk back ends keep the blocks the backup may lack
	 * (their written generations follow the backup's replay, ftw_horizon()); NULL: none. */
	struct world_live *disks;
};

struct ft_primary;

/* Opens the arbiter and builds the world chain for machine m; `live` performs released outputs. */
int ft_primary_create(const struct ft_primary_config *cfg, struct machine *m, struct vm_world live,
		      struct ft_primary **out, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Connects to the backup and runs the handshake for cfg->vm_id. Call before machine_run(). */
int ft_primary_connect(struct ft_primary *p, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The two halves of ft_primary_connect(), for an FT clone (cmd/ft_node.h), which opens the log
 * connection during its pre-copy, before the primary exists, so that the guest's pause holds none
 * of it: dial connects to cfg->peer (TLS, handshake for cfg->vm_id and cfg->epoch); adopt makes
 * that channel p's (p owns it from here, on error too). A channel that failed meanwhile is
 * adopted all the same: the primary then loses its backup at once (the steps above). */
int ft_primary_dial(const struct ft_primary_config *cfg, struct channel **out, char *err, size_t errlen)
	FTVM_MUST_CHECK;
int ft_primary_adopt(struct ft_primary *p, struct channel *ch, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The world to give machine_run(). */
struct vm_world ft_primary_world(struct ft_primary *p);
/* After machine_run(): log END, let held outputs leave, close the channel in order. */
int ft_primary_finish(struct ft_primary *p, enum machine_exit exit, int status) FTVM_MUST_CHECK;
void ft_primary_get_status(struct ft_primary *p, struct ft_status *st);
/* Any thread, with the vCPU held (a live migration's stop-and-copy): waits up to timeout_ms until
 * the Output Rule holds nothing, every output of the run so far released once the backup
 * acknowledged its log (or once this primary went alone), and the backup has replayed all of the
 * log (it reads a shared disk itself for the reads logged as digests: that must be done before
 * another host writes there). 0, -ETIMEDOUT, or -ECANCELED (halted). */
int ft_primary_release_outputs(struct ft_primary *p, int timeout_ms) FTVM_MUST_CHECK;
/* Any thread: this node won `epoch`, later than the pairing's, in the arbiter (a migration's source
 * that kept its VM): the pairing is over, no node of it can win a claim again, so losing the
 * backup from here makes no claim (its epoch is refused, stale) and the primary runs on alone. */
void ft_primary_supersede(struct ft_primary *p, uint64_t epoch);
/* Any thread: this node claims `epoch`, later than the pairing's, in a live migration's hand-over,
 * and the arbiter's judgement of it is pending (0: not any more, this node did not win it).
 * Losing the backup meanwhile, a claim of the pairing's epoch refused because a later one is
 * decided waits for the judgement: ft_primary_supersede() (won: the primary runs on alone, unless
 * the pairing's epoch went to another node) or judging 0 (halt), instead of halting at once. */
void ft_primary_judging(struct ft_primary *p, uint64_t epoch);
/* Any thread: sleeps until this primary runs alone (it lost its backup and won the arbiter) or
 * timeout_ms pass; whether it is alone. */
bool ft_primary_wait_alone(struct ft_primary *p, int timeout_ms);
void ft_primary_destroy(struct ft_primary *p);

#endif
