/*
 * lag_clock.c — icount -> wall-time history of the primary (lag_clock.h).
 */
#include "primary/lag_clock.h"

void lag_clock_note(struct lag_clock *lc, icount_t icount, uint64_t now_ns)
{
	if (lc->count) {
		uint64_t last = (lc->count - 1) % LAG_CLOCK_SAMPLES;
		if (now_ns - lc->ns[last] < LAG_CLOCK_PERIOD_NS || icount == lc->icount[last])
			return;
	}
	uint64_t at = lc->count % LAG_CLOCK_SAMPLES;
	lc->icount[at] = icount;
	lc->ns[at] = now_ns;
	lc->count++;
}

uint64_t lag_clock_behind_ns(const struct lag_clock *lc, icount_t peer_icount, uint64_t now_ns)
{
	uint64_t n = lc->count < LAG_CLOCK_SAMPLES ? lc->count : LAG_CLOCK_SAMPLES;
	uint64_t first = lc->count - n; /* oldest sample still held */

	if (n == 0 || peer_icount >= lc->icount[(lc->count - 1) % LAG_CLOCK_SAMPLES])
		return 0;
	/* Binary search (icounts grow with the sample index) for the first sample past the peer. */
	uint64_t lo = first, hi = lc->count - 1;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (lc->icount[mid % LAG_CLOCK_SAMPLES] > peer_icount)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* The primary passed peer_icount between sample lo - 1 and sample lo: charge the later. */
	uint64_t t = lc->ns[lo % LAG_CLOCK_SAMPLES];
	return now_ns > t ? now_ns - t : 0;
}
