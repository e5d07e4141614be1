/*
 * mig_converge.c — the pre-copy's stop decision (see mig_converge.h): the expected pause is the
 * fixed costs measured during the rounds plus the bytes left, device state included, at the
 * lowest recent rate.
 */
#include "migrate/mig_converge.h"

#include <string.h>

#define NS_PER_S 1000000000ull

void mig_converge_round(struct mig_converge *c, uint64_t bytes, uint64_t round_ns, uint64_t hold_ns)
{
	memmove(c->hold_ns + 1, c->hold_ns, sizeof(c->hold_ns) - sizeof(c->hold_ns[0]));
	c->hold_ns[0] = hold_ns;
	if (!bytes || !round_ns)
		return;
	uint64_t rate = (uint64_t)((unsigned __int128)bytes * NS_PER_S / round_ns);
	if (bytes < MIG_CONVERGE_MEASURABLE) {
		if (!c->small_rate || rate < c->small_rate)
			c->small_rate = rate;
		return;
	}
	memmove(c->rate + 1, c->rate, sizeof(c->rate) - sizeof(c->rate[0]));
	c->rate[0] = rate ? rate : 1;
	if (c->nrates < MIG_CONVERGE_ROUNDS)
		c->nrates++;
}

void mig_converge_confirmed(struct mig_converge *c, uint64_t ns)
{
	if (ns && (!c->confirm_ns || ns < c->confirm_ns))
		c->confirm_ns = ns;
}

static uint64_t lowest_rate(const struct mig_converge *c)
{
	if (!c->nrates)
		return c->small_rate;
	uint64_t low = c->rate[0];
	for (unsigned i = 1; i < c->nrates; i++)
		if (c->rate[i] < low)
			low = c->rate[i];
	return low;
}

struct mig_converge_verdict mig_converge_judge(const struct mig_converge *c, uint64_t left, unsigned downtime_ms)
{
	struct mig_converge_verdict v = { .rate = lowest_rate(c) };
	uint64_t hold = 0;
	for (unsigned i = 0; i < MIG_CONVERGE_ROUNDS; i++)
		if (c->hold_ns[i] > hold)
			hold = c->hold_ns[i];
	/* Two confirmations: of COMPLETE (the destination holds the state), then of HANDOVER. */
	uint64_t fixed_ns = hold + c->encode_ns + 2 * c->confirm_ns;
	v.fixed_us = fixed_ns / 1000;
	if (!v.rate) {
		v.expected_us = v.fixed_us;
		v.go = left == 0;
		return v;
	}
	uint64_t bytes = left + c->state_bytes;
	/* Bytes over bytes/s in microseconds, saturated rather than wrapped. */
	unsigned __int128 us = (unsigned __int128)bytes * 1000000 / v.rate;
	uint64_t bytes_us = us > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)us;
	v.expected_us = v.fixed_us + bytes_us;
	uint64_t target_us = (uint64_t)downtime_ms * 1000;
	uint64_t budget_us = target_us > v.fixed_us ? target_us - v.fixed_us : 0;
	if (budget_us < target_us / 4)
		budget_us = target_us / 4;
	v.go = bytes_us <= budget_us;
	return v;
}
