/*
 * ft_status.h — what an FT node reports about itself: its state in the pair, progress, lag, log
 * traffic, held outputs and failovers. Filled by the primary or the backup, published to the
 * control socket, printed by `ftvm status`.
 */
#ifndef FTVM_COMMON_FT_STATUS_H
#define FTVM_COMMON_FT_STATUS_H

#include <stdint.h>
#include "vm/icount.h"

/* The output hold-time histogram's bucket bounds (upper, inclusive), in microseconds: 100 us to
 * 1 s, the range from a loopback ack to a failover's worth of holding. */
#define FT_HOLD_BUCKETS 12
extern const uint64_t ft_hold_bucket_us[FT_HOLD_BUCKETS];

/* A node's place in the pair; the transitions between them are in common/ft_state.h. */
enum ft_role_state {
	FT_STATE_WAITING,      /* not paired yet: the backup listens, the primary connects */
	FT_STATE_PROTECTED,    /* both sides run in lockstep */
	FT_STATE_ARBITRATING,  /* peer lost; claiming the arbiter */
	FT_STATE_GOING_LIVE,   /* backup: won the arbiter, switching its back ends live */
	FT_STATE_ALONE,        /* won the arbiter; running without a backup */
	FT_STATE_HALTED,       /* lost the arbiter (or diverged): the VM is stopped for good */
	FT_STATE_DONE,         /* the guest powered off */
};

struct ft_status {
	enum ft_role_state state;
	uint64_t state_ms;       /* time spent in `state` so far */
	uint64_t epoch;
	icount_t icount;
	icount_t peer_icount;
	double backup_lag_ms;    /* primary: how long ago it was where the backup now is */
	uint64_t log_bytes;
	uint64_t log_records;
	uint64_t acked_lsn;
	uint64_t last_lsn;
	uint64_t outputs_held;
	uint64_t outputs_released;
	uint64_t failovers;
	uint64_t throttled_ms;   /* time the vCPU was slowed for lag */
	uint64_t unprotected_ms; /* how long this node has been alone (0 while protected) */
	uint64_t clones;         /* FT clones that made a new backup (docs/ft-clone.md) */
	char clone_phase[16];    /* the clone under way or last tried: precopy, stop-and-copy, ... ("" none) */
	uint64_t clone_bytes;    /* its bytes sent */
	uint64_t clone_remaining; /* its dirty bytes left at the last look */
	uint64_t clone_disk_bytes;    /* of its bytes, disk ranges sent as data or zeros (their disk bytes) */
	uint64_t clone_disk_digested; /* disk bytes a resync sent as digests only */
	char clone_error[320];   /* why it failed, if it did (mig_stats.error) */
	/* Primary: how long released outputs were held, as a histogram over ft_hold_bucket_us
	 * (hold_le[i]: outputs held at most that long; cumulative), their count and sum. */
	uint64_t hold_le[FT_HOLD_BUCKETS];
	uint64_t hold_count;
	uint64_t hold_sum_us;
	/* At the last failover this node ran alone after: from the last frame heard from the lost
	 * peer to running alone (detection, arbiter and go-live together); 0: none yet. */
	double last_failover_gap_ms;
	char peer_state[32];
	char role[16];           /* "primary" or "backup" */
	char reason[256];        /* why FT ended, if it did */
};

const char *ft_state_name(enum ft_role_state state);

#endif
