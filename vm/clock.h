/*
 * clock.h — guest-visible time as a pure function of icount.
 *
 * The guest reads a 10 MHz timebase (the `time` CSR, CLINT mtime). Between anchors it is
 *     time(i) = anchor_time + ((i - anchor_icount) * ticks_per_insn) >> 32
 * with ticks_per_insn a 32.32 fixed-point rate. An anchor (a TIME event) sets all three at one
 * icount; anchors never move time backwards (clock_anchor keeps time monotonic). Reading the clock
 * is therefore never an event; only anchors are.
 */
#ifndef FTVM_VM_CLOCK_H
#define FTVM_VM_CLOCK_H

#include <stdint.h>
#include "vm/icount.h"

#define CLOCK_TIMEBASE_HZ 10000000u
/* Nominal speed before the first anchor: 100 M instructions per second of guest time. */
#define CLOCK_DEFAULT_TICKS_PER_INSN (((uint64_t)1 << 32) / 10)

struct vm_clock {
	icount_t anchor_icount;
	uint64_t anchor_time;     /* timebase ticks at anchor_icount */
	uint64_t ticks_per_insn;  /* 32.32 fixed point, > 0 */
};

static inline uint64_t clock_time_at(const struct vm_clock *c, icount_t i)
{
	unsigned __int128 delta = (unsigned __int128)(i - c->anchor_icount) * c->ticks_per_insn;
	return c->anchor_time + (uint64_t)(delta >> 32);
}

/* First icount at which time(i) >= t (ICOUNT_MAX if it lies beyond reach). */
static inline icount_t clock_icount_for_time(const struct vm_clock *c, uint64_t t, icount_t now)
{
	if (clock_time_at(c, now) >= t)
		return now;
	unsigned __int128 need = (unsigned __int128)(t - c->anchor_time) << 32;
	unsigned __int128 insns = (need + c->ticks_per_insn - 1) / c->ticks_per_insn;
	unsigned __int128 target = insns + c->anchor_icount;
	return target >= ICOUNT_MAX ? ICOUNT_MAX : (icount_t)target;
}

static inline void clock_init(struct vm_clock *c)
{
	c->anchor_icount = 0;
	c->anchor_time = 0;
	c->ticks_per_insn = CLOCK_DEFAULT_TICKS_PER_INSN;
}

/* Re-anchor at icount `now`: time continues from max(current time, time) at the given rate. */
static inline void clock_anchor(struct vm_clock *c, icount_t now, uint64_t time, uint64_t ticks_per_insn)
{
	uint64_t current = clock_time_at(c, now);
	c->anchor_icount = now;
	c->anchor_time = time > current ? time : current;
	c->ticks_per_insn = ticks_per_insn ? ticks_per_insn : 1;
}

#endif
