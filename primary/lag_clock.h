/*
 * lag_clock.h — how far behind the backup is, in time: the primary notes when (wall clock) it
 * passed which icount, at most once a millisecond, in a fixed ring; the backup's reported icount
 * B then maps to "the primary was there T ago". That is the lag the Output Rule's clients and a
 * failover feel, whatever the guest's instruction rate (which varies 10x between an idle-ish
 * server and a CPU-bound loop), so the lag bound and the status speak milliseconds.
 * One thread notes and asks (the vCPU thread); no locks.
 */
#ifndef FTVM_PRIMARY_LAG_CLOCK_H
#define FTVM_PRIMARY_LAG_CLOCK_H

#include <stdint.h>

#include "vm/icount.h"

#define LAG_CLOCK_SAMPLES 4096u      /* >= 4 s of history at one sample per ms */
#define LAG_CLOCK_PERIOD_NS 1000000u /* one sample per millisecond at most */

struct lag_clock {
	icount_t icount[LAG_CLOCK_SAMPLES];
	uint64_t ns[LAG_CLOCK_SAMPLES];
	uint64_t count; /* samples noted so far; the newest is at (count - 1) % LAG_CLOCK_SAMPLES */
};

/* The primary is at @icount at wall time @now_ns (monotonic, non-decreasing). */
void lag_clock_note(struct lag_clock *lc, icount_t icount, uint64_t now_ns);
/*
 * How long ago the primary passed @peer_icount: 0 if it has not passed it yet or it was less
 * than a sample period ago; at most the span of the history (then the backup is further behind
 * than the ring remembers, and the oldest sample's age is returned).
 */
uint64_t lag_clock_behind_ns(const struct lag_clock *lc, icount_t peer_icount, uint64_t now_ns);

#endif
