/*
 * cpu_state.c — the hart's state as plain data: save, checked restore, bytes and digest (cpu.h).
 *
 * Only architectural state is saved. What the hart derives from it — the software TLB, the
 * fetch page, the decode cache, irq_ready — is dropped on restore and rebuilt on first use, so a
 * restored hart runs exactly like the saved one whatever its caches held.
 */
#include "vm/cpu_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm/cpu_decode.h"
#include "vm/state_io.h"

#define SATP_MODE_BARE 0ull
#define SATP_MODE_SV39 8ull
#define FFLAGS_MASK 0x1fu
#define FRM_MAX 7u
#define MSTATUS_MPP_RESERVED 2ull

void cpu_save(const struct cpu *cpu, struct cpu_state *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->x, cpu->x, sizeof(s->x));
	memcpy(s->f, cpu->f, sizeof(s->f));
	s->pc = cpu->pc;
	s->fflags = cpu->fflags;
	s->frm = cpu->frm;
	s->priv = (uint32_t)cpu->priv;
	s->icount = cpu->icount;
	s->mstatus = cpu->mstatus;
	s->misa = cpu->misa;
	s->medeleg = cpu->medeleg;
	s->mideleg = cpu->mideleg;
	s->mie = cpu->mie;
	s->mip = cpu->mip;
	s->irq_lines = cpu->irq_lines;
	s->mtvec = cpu->mtvec;
	s->mscratch = cpu->mscratch;
	s->mepc = cpu->mepc;
	s->mcause = cpu->mcause;
	s->mtval = cpu->mtval;
	s->mcounteren = cpu->mcounteren;
	s->menvcfg = cpu->menvcfg;
	s->stvec = cpu->stvec;
	s->sscratch = cpu->sscratch;
	s->sepc = cpu->sepc;
	s->scause = cpu->scause;
	s->stval = cpu->stval;
	s->satp = cpu->satp;
	s->scounteren = cpu->scounteren;
	s->senvcfg = cpu->senvcfg;
	memcpy(s->pmpcfg, cpu->pmpcfg, sizeof(s->pmpcfg));
	memcpy(s->pmpaddr, cpu->pmpaddr, sizeof(s->pmpaddr));
	s->reservation_addr = cpu->reservation_addr;
	s->reservation_value = cpu->reservation_value;
	s->reservation_valid = cpu->reservation_valid;
	s->waiting = cpu->waiting;
	s->mcountinhibit = cpu->mcountinhibit;
	s->mcycle_offset = cpu->mcycle_offset;
	s->minstret_offset = cpu->minstret_offset;
}

static const char *impossible(const struct cpu *cpu, const struct cpu_state *s)
{
	if (s->priv != PRIV_U && s->priv != PRIV_S && s->priv != PRIV_M)
		return "privilege level does not exist";
	if (s->x[0] != 0)
		return "x0 is not zero";
	if (s->fflags & ~FFLAGS_MASK)
		return "fflags has bits beyond the five flags";
	if (s->frm > FRM_MAX)
		return "frm out of range";
	if (s->misa != cpu->misa)
		return "misa names extensions this hart does not have";
	uint64_t mode = s->satp >> SATP_MODE_SHIFT;
	if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39)
		return "satp mode is neither Bare nor Sv39";
	if (((s->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT) == MSTATUS_MPP_RESERVED)
		return "mstatus.MPP holds the reserved privilege";
	return NULL;
}

int cpu_restore(struct cpu *cpu, const struct cpu_state *s, char *err, size_t errlen)
{
	const char *why = impossible(cpu, s);
	if (why) {
		snprintf(err, errlen, "hart: %s", why);
		return -EINVAL;
	}
	memcpy(cpu->x, s->x, sizeof(cpu->x));
	memcpy(cpu->f, s->f, sizeof(cpu->f));
	cpu->pc = s->pc;
	cpu->fflags = s->fflags;
	cpu->frm = s->frm;
	cpu->priv = (enum cpu_priv)s->priv;
	cpu->icount = s->icount;
	cpu->mstatus = s->mstatus;
	cpu->medeleg = s->medeleg;
	cpu->mideleg = s->mideleg;
	cpu->mie = s->mie;
	cpu->mip = s->mip;
	cpu->irq_lines = s->irq_lines;
	cpu->mtvec = s->mtvec;
	cpu->mscratch = s->mscratch;
	cpu->mepc = s->mepc;
	cpu->mcause = s->mcause;
	cpu->mtval = s->mtval;
	cpu->mcounteren = s->mcounteren;
	cpu->menvcfg = s->menvcfg;
	cpu->stvec = s->stvec;
	cpu->sscratch = s->sscratch;
	cpu->sepc = s->sepc;
	cpu->scause = s->scause;
	cpu->stval = s->stval;
	cpu->satp = s->satp;
	cpu->scounteren = s->scounteren;
	cpu->senvcfg = s->senvcfg;
	memcpy(cpu->pmpcfg, s->pmpcfg, sizeof(cpu->pmpcfg));
	memcpy(cpu->pmpaddr, s->pmpaddr, sizeof(cpu->pmpaddr));
	cpu->reservation_addr = s->reservation_addr;
	cpu->reservation_value = s->reservation_value;
	cpu->reservation_valid = s->reservation_valid;
	cpu->waiting = s->waiting;
	cpu->mcountinhibit = s->mcountinhibit;
	cpu->mcycle_offset = s->mcycle_offset;
	cpu->minstret_offset = s->minstret_offset;
	cpu->exception_pending = false;
	cpu->stop_requested = false;
	for (unsigned w = 0; w < sizeof(cpu->dcache_filled) / sizeof(cpu->dcache_filled[0]); w++) {
		for (uint64_t bits = cpu->dcache_filled[w]; bits; bits &= bits - 1)
			cpu->dcache[w * 64 + (unsigned)__builtin_ctzll(bits)].host_page = NULL;
		cpu->dcache_filled[w] = 0;
	}
	cpu_tlb_flush(cpu);
	cpu_update_irq(cpu);
	return 0;
}

void cpu_state_io(struct state_io *io, void *state)
{
	struct cpu_state *s = state;
	state_io_u64s(io, s->x, 32);
	state_io_u64s(io, s->f, 32);
	state_io_u64(io, &s->pc);
	state_io_u32(io, &s->fflags);
	state_io_u32(io, &s->frm);
	state_io_u32(io, &s->priv);
	state_io_u64(io, &s->icount);
	uint64_t *csrs[] = {
		&s->mstatus, &s->misa, &s->medeleg, &s->mideleg, &s->mie, &s->mip, &s->irq_lines,
		&s->mtvec, &s->mscratch, &s->mepc, &s->mcause, &s->mtval, &s->mcounteren, &s->menvcfg,
		&s->stvec, &s->sscratch, &s->sepc, &s->scause, &s->stval, &s->satp, &s->scounteren,
		&s->senvcfg,
	};
	for (size_t i = 0; i < ARRAY_SIZE(csrs); i++)
		state_io_u64(io, csrs[i]);
	state_io_u64s(io, s->pmpcfg, 16);
	state_io_u64s(io, s->pmpaddr, 64);
	state_io_u64(io, &s->reservation_addr);
	state_io_u64(io, &s->reservation_value);
	state_io_bool(io, &s->reservation_valid);
	state_io_bool(io, &s->waiting);
	/* Reserved, 0: where version 1 first kept the stop request (cpu.h); ignored when loaded. */
	bool reserved = false;
	state_io_bool(io, &reserved);
	state_io_u64(io, &s->mcountinhibit);
	state_io_u64(io, &s->mcycle_offset);
	state_io_u64(io, &s->minstret_offset);
}

uint64_t cpu_state_digest(const struct cpu *cpu)
{
	struct cpu_state s;
	cpu_save(cpu, &s);
	return state_io_digest(cpu_state_io, &s, 0);
}
