/*
 * clint.c — msip, mtimecmp and the icount-driven mtime (see clint.h).
 *
 * 64-bit registers take 8-byte accesses or either 4-byte half, as OpenSBI and rv32 code use both.
 * Writes to mtime are ignored: guest time is a function of icount and TIME anchors only.
 */
#define DIAG_MODULE "clint"
#include "vm/clint.h"

#include <errno.h>
#include <stdio.h>

#include "util/diag.h"
#include "vm/state_io.h"

#define CLINT_MSIP_BIT 1u

void clint_init(struct clint *c, struct cpu *cpu, const struct vm_clock *clock)
{
	c->msip = 0;
	c->mtimecmp = 0; /* as in QEMU: mtime >= 0, so MTIP is pending from power-on until written */
	c->cpu = cpu;
	c->clock = clock;
}

static bool timer_pending(const struct clint *c, icount_t now)
{
	return clock_time_at(c->clock, now) >= c->mtimecmp;
}

void clint_update_lines(struct clint *c, icount_t now)
{
	cpu_set_irq_line(c->cpu, IRQ_M_SOFT, c->msip & CLINT_MSIP_BIT);
	cpu_set_irq_line(c->cpu, IRQ_M_TIMER, timer_pending(c, now));
}

icount_t clint_deadline(const struct clint *c, icount_t now)
{
	if (timer_pending(c, now))
		return ICOUNT_MAX;
	return clock_icount_for_time(c->clock, c->mtimecmp, now);
}

/* Reads `size` bytes at byte `shift` of a 64-bit register; false for an access that straddles it. */
static bool reg64_read(uint64_t reg, uint64_t off, unsigned size, uint64_t *value)
{
	if (size == 8 && off == 0) {
		*value = reg;
		return true;
	}
	if (size == 4 && (off == 0 || off == 4)) {
		*value = (uint32_t)(reg >> (8 * off));
		return true;
	}
	return false;
}

static bool reg64_write(uint64_t *reg, uint64_t off, unsigned size, uint64_t value)
{
	if (size == 8 && off == 0) {
		*reg = value;
		return true;
	}
	if (size == 4 && (off == 0 || off == 4)) {
		uint64_t mask = 0xffffffffull << (8 * off);
		*reg = (*reg & ~mask) | (((uint64_t)(uint32_t)value << (8 * off)) & mask);
		return true;
	}
	return false;
}

static int clint_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	struct clint *c = opaque;
	*value = 0;
	if (offset == CLINT_REG_MSIP && size == 4) {
		*value = c->msip;
		return 0;
	}
	if (offset >= CLINT_REG_MTIMECMP && offset < CLINT_REG_MTIMECMP + 8)
		return reg64_read(c->mtimecmp, offset - CLINT_REG_MTIMECMP, size, value) ? 0 : -1;
	if (offset >= CLINT_REG_MTIME && offset < CLINT_REG_MTIME + 8) {
		uint64_t now = clock_time_at(c->clock, cpu_icount(c->cpu));
		return reg64_read(now, offset - CLINT_REG_MTIME, size, value) ? 0 : -1;
	}
	return 0;  /* other harts' registers and holes read as zero, as in QEMU */
}

static int clint_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct clint *c = opaque;
	icount_t now = cpu_icount(c->cpu);
	if (offset == CLINT_REG_MSIP && size == 4) {
		c->msip = (uint32_t)value & CLINT_MSIP_BIT;
	} else if (offset >= CLINT_REG_MTIMECMP && offset < CLINT_REG_MTIMECMP + 8) {
		if (!reg64_write(&c->mtimecmp, offset - CLINT_REG_MTIMECMP, size, value))
			return -1;
	} else {
		if (offset >= CLINT_REG_MTIME && offset < CLINT_REG_MTIME + 8)
			DIAG_RATELIMITED(DIAG_WARN, "guest write to mtime ignored (time follows icount)");
		return 0;
	}
	clint_update_lines(c, now);
	cpu_request_stop(c->cpu);
	return 0;
}

struct bus_region clint_region(struct clint *c, uint64_t base, uint64_t size)
{
	return (struct bus_region){ .name = "clint", .base = base, .size = size, .opaque = c,
				    .read = clint_read, .write = clint_write };
}

void clint_save(const struct clint *c, struct clint_state *s)
{
	*s = (struct clint_state){ .msip = c->msip, .mtimecmp = c->mtimecmp };
}

int clint_restore(struct clint *c, const struct clint_state *s, char *err, size_t errlen)
{
	if (s->msip & ~CLINT_MSIP_BIT) {
		snprintf(err, errlen, "clint: msip 0x%x has bits beyond hart 0's", s->msip);
		return -EINVAL;
	}
	c->msip = s->msip;
	c->mtimecmp = s->mtimecmp;
	return 0;
}

void clint_state_io(struct state_io *io, void *state)
{
	struct clint_state *s = state;
	state_io_u32(io, &s->msip);
	state_io_u64(io, &s->mtimecmp);
}

uint64_t clint_digest(const struct clint *c, uint64_t seed)
{
	struct clint_state s;
	clint_save(c, &s);
	return state_io_digest(clint_state_io, &s, seed);
}
