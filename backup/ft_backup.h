/*
 * ft_backup.h — the backup of an FT pair: logging channel + replayer + go-live.
 *
 * The backup listens, accepts the primary of its VM and epoch, and replays the log it receives,
 * acknowledging each record as soon as it holds it (the Output Rule waits for that). Its outputs
 * are dropped, except, with replicated disks, the guest's disk requests: they run on the backup's
 * own replica of each disk (replay/disk_replica.h), in the guest's order, and the reads logged as
 * digests are answered from it after their digest matched. With a shared disk, the reads logged
 * as digests are read off the shared disk when replayed (checked the same way); the writes are
 * the primary's alone. When the log stops (the primary's host died, or the link broke):
 *   1. stop taking log: the channel is failed and closed;
 *   2. replay every complete record received (the replayer runs to the last one);
 *   3. claim the arbiter for this pairing's epoch as node 1 — lost: halt the VM for good;
 *   4. switch the device back ends to live (TAP, the shared disk or the replicas, made durable and
 *      handed over, console);
 *   5. reissue disk requests that were submitted but have no completion in the log;
 *   6. announce the guest's MAC addresses (RARP) so switches learn where the VM lives now;
 *   7. hand the machine back: the caller runs it on as the primary, without a backup (an FT node
 *      alone, cmd/ft_node.h, which restores redundancy when it has spares and can be migrated).
 * A divergence (CHECK mismatch) ends FT: the backup reports it, closes the channel and halts
 * without claiming, so the primary wins the arbiter and runs on.
 */
#ifndef FTVM_BACKUP_FT_BACKUP_H
#define FTVM_BACKUP_FT_BACKUP_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/ft_status.h"
#include "util/compiler.h"
#include "vm/clock.h"
#include "vm/event.h"
#include "vm/machine.h"

struct channel;
struct channel_config;
struct channel_key;

struct ft_backup_config {
	const char *vm_name;     /* the VM's name in the arbiter area */
	const char *vm_id;       /* what the primary's handshake must carry: name and configuration digest */
	uint64_t epoch;
	const char *listen;      /* HOST:PORT */
	const char *arbiter;
	unsigned node;           /* arbiter node id (backup: 1) */
	unsigned timeout_ms;
	unsigned heartbeat_ms;
	uint64_t perturb_lsn;    /* test hook: corrupt this input record when replayed */
	unsigned replay_delay_us; /* test hook: pause before replaying each record (a lagging replay) */
	bool rdma;               /* logging channel over RDMA verbs instead of TCP */
	unsigned nreplicas;      /* the backup's replicas, equal to the primary's disks at start, or */
	const char *replica[MACHINE_MAX_DISKS];
	bool disks_shared;       /* the shared disks themselves: only read, for the logged digests */
	const struct channel_key *key; /* the pairing key (kept by the caller while this runs) */
};

/* What go-live needs from the command layer: live back ends, created only when going live. */
struct ft_backup_golive {
	/* Builds the live world (opens TAPs and the shared disk); the guest clock at icount `now`
	 * is handed over so live time continues from it. */
	int (*make_live)(void *ctx, icount_t now, const struct vm_clock *clock, struct vm_world *out, char *err,
			 size_t errlen);
	void *ctx;
	unsigned nnics;
	uint8_t macs[MACHINE_MAX_NICS][6];
};

/* ft_backup_run(): went live (steps 1-6), the machine is the caller's to run on in the world
 * make_live() built. */
#define FT_BACKUP_LIVE (-EXDEV)

struct ft_backup;

/* The backup role for machine m, at power-on. */
int ft_backup_create(const struct ft_backup_config *cfg, struct machine *m, const struct ft_backup_golive *golive,
		     struct ft_backup **out, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Listens for the primary of cfg->vm_id and this epoch. */
int ft_backup_listen(struct ft_backup *b, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Blocks until the primary of this VM and epoch connects (others are refused and waited past);
 * timeout_ms < 0 waits for ever, else -ETIMEDOUT. */
int ft_backup_accept(struct ft_backup *b, int timeout_ms, char *err, size_t errlen) FTVM_MUST_CHECK;
/* A primary's channel accepted before this backup existed (a spare's, backup/log_accept.h):
 * b owns it from here; should it have failed meanwhile, the replay finds the log ended at once. */
void ft_backup_adopt(struct ft_backup *b, struct channel *ch);
/* The logging channel's settings of a backup of cfg (its listener's). */
void ft_backup_channel_config(const struct ft_backup_config *cfg, struct channel_config *cc);
/* Whether channel_accept()'s ret refused one peer (another VM, epoch, version, transport or
 * purpose, or a malformed HELLO), after which the listener waits for the next. */
bool ft_backup_refused(int ret);
/* Replays (machine_run in the replayer's world) until the log ends. Returns the guest's exit status
 * when it powered off in the replay (>= 0; 0 also when the primary ended its log itself, as `ftvm
 * ft disable` does: the backup then never goes live), FT_BACKUP_LIVE once live after the primary
 * was lost, or -errno (halted, diverged) with a message. */
int ft_backup_run(struct ft_backup *b, char *msg, size_t msglen);
/* After ft_backup_run() returned: the primary ended its log itself and the arbiter has decided an
 * epoch past this pairing's (the VM migrated on, docs/migration.md "Migrating an FT node"): this
 * pairing is over for good, and the node may serve as a spare again. */
bool ft_backup_superseded(struct ft_backup *b);
void ft_backup_get_status(struct ft_backup *b, struct ft_status *st);
void ft_backup_destroy(struct ft_backup *b);

/* Builds the RARP announcement (ethertype 0x8035) of `mac` into out (>= 60 bytes); returns its length. */
size_t ft_rarp_announce(const uint8_t mac[6], uint8_t *out, size_t cap);

#endif
