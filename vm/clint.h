/*
 * clint.h — the core-local interruptor (`sifive,clint0`) of hart 0: msip, mtimecmp, mtime.
 *
 * mtime is not a register: it is clock_time_at(clock, icount), so reading it is deterministic and
 * never an event. The timer line (MTIP) is the level `mtime >= mtimecmp`; because time moves with
 * icount, the machine asks clint_deadline() for the icount at which it rises and ends its slice
 * there. A write that changes msip or mtimecmp updates the lines at once and asks the hart to stop
 * after this instruction so the run loop recomputes its deadline.
 */
#ifndef FTVM_VM_CLINT_H
#define FTVM_VM_CLINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/bus.h"
#include "vm/clock.h"
#include "vm/cpu.h"
#include "vm/icount.h"

#define CLINT_REG_MSIP 0x0000u
#define CLINT_REG_MTIMECMP 0x4000u
#define CLINT_REG_MTIME 0xbff8u

struct clint {
	uint32_t msip;          /* bit 0: machine software interrupt of hart 0 */
	uint64_t mtimecmp;
	struct cpu *cpu;
	const struct vm_clock *clock;
};

void clint_init(struct clint *c, struct cpu *cpu, const struct vm_clock *clock);
struct bus_region clint_region(struct clint *c, uint64_t base, uint64_t size);
/* Sets MSIP and MTIP on the hart from the state at icount `now`. */
void clint_update_lines(struct clint *c, icount_t now);
/* The icount at which MTIP rises, ICOUNT_MAX when it is already up or never will. */
icount_t clint_deadline(const struct clint *c, icount_t now);

struct clint_state {
	uint32_t msip;
	uint64_t mtimecmp;
};
struct state_io;
void clint_save(const struct clint *c, struct clint_state *s);
/* -EINVAL (reason in err) for msip bits that do not exist. The caller sets the lines afterwards. */
int clint_restore(struct clint *c, const struct clint_state *s, char *err, size_t errlen) FTVM_MUST_CHECK;
void clint_state_io(struct state_io *io, void *state);
uint64_t clint_digest(const struct clint *c, uint64_t seed);

#endif
