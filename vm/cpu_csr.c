/*
 * cpu_csr.c — the hart's control and status registers, traps, interrupts and the privileged
 * instructions (ecall, ebreak, mret, sret, wfi, sfence.vma).
 *
 * CSR semantics follow the privileged spec 1.12 and, where it leaves a choice, what QEMU 7.2's
 * `virt` machine does (so bare-metal programs print the same on both): WARL fields keep only
 * their legal bits, mstatus UXL/SXL read as 64-bit, satp ignores writes of modes other than Bare
 * and Sv39, 16 PMP entries whose registers read back what was written (no enforcement), and
 * mhpmcounters/mhpmevents read zero. Anything that can change which interrupt the hart would take
 * ends in cpu_update_irq(), which keeps the run loop's single `irq_ready` flag current; anything
 * that changes the translation regime flushes the TLB.
 */
#include "vm/cpu_internal.h"

/* CSR numbers (privileged spec, "Currently allocated RISC-V ... CSR addresses"). */
enum {
	CSR_FFLAGS = 0x001, CSR_FRM = 0x002, CSR_FCSR = 0x003,
	CSR_CYCLE = 0xc00, CSR_TIME = 0xc01, CSR_INSTRET = 0xc02,
	CSR_HPMCOUNTER3 = 0xc03, CSR_HPMCOUNTER31 = 0xc1f,
	CSR_SSTATUS = 0x100, CSR_SIE = 0x104, CSR_STVEC = 0x105, CSR_SCOUNTEREN = 0x106,
	CSR_SENVCFG = 0x10a, CSR_SSCRATCH = 0x140, CSR_SEPC = 0x141, CSR_SCAUSE = 0x142,
	CSR_STVAL = 0x143, CSR_SIP = 0x144, CSR_SATP = 0x180,
	CSR_MVENDORID = 0xf11, CSR_MARCHID = 0xf12, CSR_MIMPID = 0xf13, CSR_MHARTID = 0xf14,
	CSR_MCONFIGPTR = 0xf15,
	CSR_MSTATUS = 0x300, CSR_MISA = 0x301, CSR_MEDELEG = 0x302, CSR_MIDELEG = 0x303,
	CSR_MIE = 0x304, CSR_MTVEC = 0x305, CSR_MCOUNTEREN = 0x306, CSR_MENVCFG = 0x30a,
	CSR_MCOUNTINHIBIT = 0x320, CSR_MHPMEVENT3 = 0x323, CSR_MHPMEVENT31 = 0x33f,
	CSR_MSCRATCH = 0x340, CSR_MEPC = 0x341, CSR_MCAUSE = 0x342, CSR_MTVAL = 0x343, CSR_MIP = 0x344,
	CSR_PMPCFG0 = 0x3a0, CSR_PMPCFG15 = 0x3af, CSR_PMPADDR0 = 0x3b0, CSR_PMPADDR63 = 0x3ef,
	CSR_MCYCLE = 0xb00, CSR_MINSTRET = 0xb02,
	CSR_MHPMCOUNTER3 = 0xb03, CSR_MHPMCOUNTER31 = 0xb1f,
};

/* mstatus fields. */
#define MSTATUS_SIE (1ull << 1)
#define MSTATUS_MIE (1ull << 3)
#define MSTATUS_SPIE (1ull << 5)
#define MSTATUS_MPIE (1ull << 7)
#define MSTATUS_SPP (1ull << 8)
#define MSTATUS_VS_MASK (3ull << 9)
#define MSTATUS_XS_MASK (3ull << 15)
#define MSTATUS_TVM (1ull << 20)
#define MSTATUS_TW (1ull << 21)
#define MSTATUS_TSR (1ull << 22)
#define MSTATUS_UXL_SHIFT 32
#define MSTATUS_SXL_SHIFT 34
#define MSTATUS_XL_64 2ull
#define MSTATUS_XLEN_FIELDS ((MSTATUS_XL_64 << MSTATUS_UXL_SHIFT) | (MSTATUS_XL_64 << MSTATUS_SXL_SHIFT))
#define MSTATUS_UXL_MASK (3ull << MSTATUS_UXL_SHIFT)

#define MSTATUS_WRITABLE (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | \
			  MSTATUS_VS_MASK | MSTATUS_MPP | MSTATUS_FS_MASK | MSTATUS_MPRV | MSTATUS_SUM | \
			  MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR)
/* VS is part of the sstatus view as on QEMU 7.2 (there is no V extension, but the field holds its value). */
#define SSTATUS_WRITABLE (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_VS_MASK | MSTATUS_FS_MASK | MSTATUS_SUM | \
			  MSTATUS_MXR)
#define SSTATUS_READABLE (SSTATUS_WRITABLE | MSTATUS_XS_MASK | MSTATUS_UXL_MASK | MSTATUS_SD)
/* Fields whose change alters address translation. */
#define MSTATUS_TRANSLATION (MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM | MSTATUS_MXR)

/* misa: MXL = 64, extensions A C D F I M S U. */
#define MISA_MXL_64 (2ull << 62)
#define MISA_EXT(c) (1ull << ((c) - 'A'))
#define MISA_VALUE (MISA_MXL_64 | MISA_EXT('A') | MISA_EXT('C') | MISA_EXT('D') | MISA_EXT('F') | \
		    MISA_EXT('I') | MISA_EXT('M') | MISA_EXT('S') | MISA_EXT('U'))

/* Interrupt bits. */
#define MIP_SSIP (1ull << IRQ_S_SOFT)
#define MIP_MSIP (1ull << IRQ_M_SOFT)
#define MIP_STIP (1ull << IRQ_S_TIMER)
#define MIP_MTIP (1ull << IRQ_M_TIMER)
#define MIP_SEIP (1ull << IRQ_S_EXT)
#define MIP_MEIP (1ull << IRQ_M_EXT)
#define S_INTERRUPTS (MIP_SSIP | MIP_STIP | MIP_SEIP)
#define ALL_INTERRUPTS (S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP)
/* M-mode may write the supervisor bits of mip; SEIP reads as the written bit OR the PLIC line. */
#define MIP_WRITABLE S_INTERRUPTS
#define SIP_WRITABLE MIP_SSIP

/* Exceptions that medeleg can delegate (QEMU 7.2's set, which includes the hypervisor causes). */
#define MEDELEG_WRITABLE 0xf0bfffull
#define MTVEC_MODE_MASK 3ull
#define MTVEC_MODE_VECTORED 1ull
#define COUNTEREN_MASK 0xffffffffull
#define MCOUNTINHIBIT_MASK 0xfffffffdull  /* bit 1 (time) is read-only zero */
#define ENVCFG_FIOM 1ull                  /* no Zicbom/Zicboz, Svpbmt, Sstc: only FIOM */
#define SATP_MODE_BARE 0ull
#define SATP_MODE_SV39 8ull
#define PMP_ENTRIES 16
#define PMP_CFG_LOCK 0x80u
#define CAUSE_INTERRUPT (1ull << 63)

/* CSR address bits: [11:10] == 3 means read-only, [9:8] is the lowest privilege allowed. */
#define CSR_READ_ONLY(csr) (((csr) >> 10) == 3)
#define CSR_MIN_PRIV(csr) (((csr) >> 8) & 3)

/* Interrupts in the order the privileged spec takes them. */
static const enum cpu_irq irq_priority[] = {
	IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER,
};

static uint64_t pending_bits(const struct cpu *cpu)
{
	return (cpu->mip | cpu->irq_lines) & ALL_INTERRUPTS;
}

/* Interrupts that would be taken now, given priv and the global enables. */
static uint64_t ready_interrupts(const struct cpu *cpu)
{
	uint64_t pending = pending_bits(cpu) & cpu->mie;
	if (!pending)
		return 0;
	bool m_on = cpu->priv < PRIV_M || (cpu->mstatus & MSTATUS_MIE);
	bool s_on = cpu->priv < PRIV_S || (cpu->priv == PRIV_S && (cpu->mstatus & MSTATUS_SIE));
	return (pending & ~cpu->mideleg & (m_on ? ~0ull : 0)) | (pending & cpu->mideleg & (s_on ? ~0ull : 0));
}

void cpu_update_irq(struct cpu *cpu)
{
	cpu->irq_ready = ready_interrupts(cpu) != 0;
	if (cpu->waiting && cpu_wfi_wakeup(cpu))
		cpu->waiting = false; /* cpu.h: waiting ends when an enabled interrupt becomes pending */
}

bool cpu_wfi_wakeup(const struct cpu *cpu)
{
	return (pending_bits(cpu) & cpu->mie) != 0;
}

/* Every trap and xRET goes through here. Like QEMU (and as version 2.2 of the ISA required), it
 * also drops the LR reservation, so that one placed before a trap never lets an SC after it
 * succeed, in whatever context the handler returns to. */
static void set_priv(struct cpu *cpu, enum cpu_priv priv)
{
	cpu->reservation_valid = false;
	if (cpu->priv != priv) {
		cpu->priv = priv;
		cpu_tlb_select(cpu);
	}
}

static void set_mstatus(struct cpu *cpu, uint64_t value)
{
	uint64_t old = cpu->mstatus;
	cpu->mstatus = value;
	if ((old ^ value) & MSTATUS_TRANSLATION)
		cpu_tlb_mstatus_changed(cpu, old);
}

static void trap(struct cpu *cpu, uint64_t cause, uint64_t tval, bool interrupt)
{
	uint64_t deleg = interrupt ? cpu->mideleg : cpu->medeleg;
	uint64_t s = cpu->mstatus;
	uint64_t mcause = cause | (interrupt ? CAUSE_INTERRUPT : 0);
	if (cpu->priv <= PRIV_S && cause < 64 && ((deleg >> cause) & 1)) {
		s = (s & ~MSTATUS_SPIE) | ((s & MSTATUS_SIE) ? MSTATUS_SPIE : 0);
		s = (s & ~MSTATUS_SPP) | (cpu->priv == PRIV_S ? MSTATUS_SPP : 0);
		s &= ~MSTATUS_SIE;
		cpu->scause = mcause;
		cpu->sepc = cpu->pc;
		cpu->stval = tval;
		cpu->pc = (cpu->stvec & ~MTVEC_MODE_MASK) +
			  ((interrupt && (cpu->stvec & MTVEC_MODE_MASK) == MTVEC_MODE_VECTORED) ? cause * 4 : 0);
		cpu->mstatus = s;
		set_priv(cpu, PRIV_S);
	} else {
		s = (s & ~MSTATUS_MPIE) | ((s & MSTATUS_MIE) ? MSTATUS_MPIE : 0);
		s = (s & ~MSTATUS_MPP) | ((uint64_t)cpu->priv << MSTATUS_MPP_SHIFT);
		s &= ~MSTATUS_MIE;
		cpu->mcause = mcause;
		cpu->mepc = cpu->pc;
		cpu->mtval = tval;
		cpu->pc = (cpu->mtvec & ~MTVEC_MODE_MASK) +
			  ((interrupt && (cpu->mtvec & MTVEC_MODE_MASK) == MTVEC_MODE_VECTORED) ? cause * 4 : 0);
		set_mstatus(cpu, s);
		set_priv(cpu, PRIV_M);
	}
	cpu_update_irq(cpu);
}

void cpu_raise_exception(struct cpu *cpu, enum cpu_exception cause, uint64_t tval)
{
	cpu->exception_pending = true;
	cpu->exception_cause = cause;
	cpu->exception_tval = tval;
}

void cpu_take_exception(struct cpu *cpu)
{
	cpu->exception_pending = false;
	cpu->stats.exceptions++;
	trap(cpu, cpu->exception_cause, cpu->exception_tval, false);
}

void cpu_take_interrupt(struct cpu *cpu)
{
	uint64_t ready = ready_interrupts(cpu);
	for (unsigned i = 0; i < ARRAY_SIZE(irq_priority); i++) {
		if (ready & (1ull << irq_priority[i])) {
			cpu->stats.interrupts++;
			cpu->waiting = false;
			trap(cpu, irq_priority[i], 0, true);
			return;
		}
	}
	cpu_update_irq(cpu);
}

void cpu_csr_reset(struct cpu *cpu)
{
	cpu->mstatus = MSTATUS_XLEN_FIELDS;
	cpu->misa = MISA_VALUE;
	cpu_update_irq(cpu);
}

static uint64_t read_mstatus(const struct cpu *cpu)
{
	uint64_t s = cpu->mstatus;
	bool dirty = (s & MSTATUS_FS_MASK) == MSTATUS_FS_MASK || (s & MSTATUS_VS_MASK) == MSTATUS_VS_MASK;
	return (s & ~MSTATUS_SD) | (dirty ? MSTATUS_SD : 0);
}

static void write_mstatus(struct cpu *cpu, uint64_t value)
{
	uint64_t s = (cpu->mstatus & ~MSTATUS_WRITABLE) | (value & MSTATUS_WRITABLE);
	s = (s & ~MSTATUS_SD) | MSTATUS_XLEN_FIELDS;
	set_mstatus(cpu, s);
	cpu_update_irq(cpu);
}

/* Counters readable from S/U only when mcounteren (and for U, scounteren) allow it. */
static bool counter_allowed(const struct cpu *cpu, unsigned csr)
{
	uint64_t bit = 1ull << (csr - CSR_CYCLE);
	if (cpu->priv < PRIV_M && !(cpu->mcounteren & bit))
		return false;
	if (cpu->priv < PRIV_S && !(cpu->scounteren & bit))
		return false;
	return true;
}

static bool pmpcfg_index_ok(unsigned csr)
{
	/* RV64 has only the even pmpcfg registers; 16 entries need pmpcfg0 and pmpcfg2. */
	unsigned n = csr - CSR_PMPCFG0;
	return (n & 1) == 0 && n < PMP_ENTRIES / 4;
}

static bool pmp_entry_locked(const struct cpu *cpu, unsigned entry)
{
	return (cpu->pmpcfg[entry / 8] >> (8 * (entry % 8))) & PMP_CFG_LOCK;
}

static void write_pmpcfg(struct cpu *cpu, unsigned reg, uint64_t value)
{
	uint64_t old = cpu->pmpcfg[reg / 2];
	uint64_t v = 0;
	for (unsigned b = 0; b < 8; b++) {
		unsigned entry = (reg / 2) * 8 + b;
		uint64_t byte = pmp_entry_locked(cpu, entry) ? (old >> (8 * b)) & 0xff : (value >> (8 * b)) & 0xff;
		v |= byte << (8 * b);
	}
	cpu->pmpcfg[reg / 2] = v;
}

/* Reads a CSR; false when the CSR does not exist or is not accessible. */
static bool csr_read(struct cpu *cpu, unsigned csr, uint64_t *value)
{
	switch (csr) {
	case CSR_FFLAGS: case CSR_FRM: case CSR_FCSR:
		return fpu_csr_read(cpu, csr, value);
	case CSR_CYCLE: case CSR_INSTRET: case CSR_TIME:
		if (!counter_allowed(cpu, csr))
			return false;
		if (csr == CSR_TIME)
			*value = clock_time_at(cpu->clock, cpu->icount);
		else
			*value = cpu->icount + (csr == CSR_CYCLE ? cpu->mcycle_offset : cpu->minstret_offset);
		return true;
	case CSR_SSTATUS: *value = read_mstatus(cpu) & SSTATUS_READABLE; return true;
	case CSR_SIE: *value = cpu->mie & cpu->mideleg; return true;
	case CSR_STVEC: *value = cpu->stvec; return true;
	case CSR_SCOUNTEREN: *value = cpu->scounteren; return true;
	case CSR_SENVCFG: *value = cpu->senvcfg; return true;
	case CSR_SSCRATCH: *value = cpu->sscratch; return true;
	case CSR_SEPC: *value = cpu->sepc; return true;
	case CSR_SCAUSE: *value = cpu->scause; return true;
	case CSR_STVAL: *value = cpu->stval; return true;
	case CSR_SIP: *value = pending_bits(cpu) & cpu->mideleg; return true;
	case CSR_SATP:
		if (cpu->priv == PRIV_S && (cpu->mstatus & MSTATUS_TVM))
			return false;
		*value = cpu->satp;
		return true;
	case CSR_MVENDORID: case CSR_MARCHID: case CSR_MIMPID: case CSR_MHARTID: case CSR_MCONFIGPTR:
		*value = 0;
		return true;
	case CSR_MSTATUS: *value = read_mstatus(cpu); return true;
	case CSR_MISA: *value = cpu->misa; return true;
	case CSR_MEDELEG: *value = cpu->medeleg; return true;
	case CSR_MIDELEG: *value = cpu->mideleg; return true;
	case CSR_MIE: *value = cpu->mie; return true;
	case CSR_MTVEC: *value = cpu->mtvec; return true;
	case CSR_MCOUNTEREN: *value = cpu->mcounteren; return true;
	case CSR_MENVCFG: *value = cpu->menvcfg; return true;
	case CSR_MCOUNTINHIBIT: *value = cpu->mcountinhibit; return true;
	case CSR_MSCRATCH: *value = cpu->mscratch; return true;
	case CSR_MEPC: *value = cpu->mepc; return true;
	case CSR_MCAUSE: *value = cpu->mcause; return true;
	case CSR_MTVAL: *value = cpu->mtval; return true;
	case CSR_MIP: *value = pending_bits(cpu); return true;
	case CSR_MCYCLE: *value = cpu->icount + cpu->mcycle_offset; return true;
	case CSR_MINSTRET: *value = cpu->icount + cpu->minstret_offset; return true;
	default:
		break;
	}
	if (csr >= CSR_HPMCOUNTER3 && csr <= CSR_HPMCOUNTER31) {
		if (!counter_allowed(cpu, csr))
			return false;
		*value = 0;
		return true;
	}
	if ((csr >= CSR_MHPMCOUNTER3 && csr <= CSR_MHPMCOUNTER31) || (csr >= CSR_MHPMEVENT3 && csr <= CSR_MHPMEVENT31)) {
		*value = 0;
		return true;
	}
	if (csr >= CSR_PMPCFG0 && csr <= CSR_PMPCFG15) {
		if (!pmpcfg_index_ok(csr))
			return false;
		*value = cpu->pmpcfg[(csr - CSR_PMPCFG0) / 2];
		return true;
	}
	if (csr >= CSR_PMPADDR0 && csr <= CSR_PMPADDR63) {
		if (csr - CSR_PMPADDR0 >= PMP_ENTRIES)
			return false;
		*value = cpu->pmpaddr[csr - CSR_PMPADDR0];
		return true;
	}
	return false;
}

/* Writes a CSR that csr_read() accepted. False for an illegal write. */
static bool csr_write(struct cpu *cpu, unsigned csr, uint64_t value)
{
	switch (csr) {
	case CSR_FFLAGS: case CSR_FRM: case CSR_FCSR:
		return fpu_csr_write(cpu, csr, value);
	case CSR_SSTATUS:
		write_mstatus(cpu, (cpu->mstatus & ~SSTATUS_WRITABLE) | (value & SSTATUS_WRITABLE));
		return true;
	case CSR_SIE: {
		uint64_t mask = cpu->mideleg & S_INTERRUPTS;
		cpu->mie = (cpu->mie & ~mask) | (value & mask);
		cpu_update_irq(cpu);
		return true;
	}
	case CSR_STVEC:
		if ((value & MTVEC_MODE_MASK) <= MTVEC_MODE_VECTORED)
			cpu->stvec = value;
		return true;
	case CSR_SCOUNTEREN: cpu->scounteren = value & COUNTEREN_MASK; return true;
	case CSR_SENVCFG: cpu->senvcfg = value & ENVCFG_FIOM; return true;
	case CSR_SSCRATCH: cpu->sscratch = value; return true;
	case CSR_SEPC: cpu->sepc = value & ~1ull; return true;
	case CSR_SCAUSE: cpu->scause = value; return true;
	case CSR_STVAL: cpu->stval = value; return true;
	case CSR_SIP: {
		uint64_t mask = cpu->mideleg & SIP_WRITABLE;
		cpu->mip = (cpu->mip & ~mask) | (value & mask);
		cpu_update_irq(cpu);
		return true;
	}
	case CSR_SATP: {
		uint64_t mode = value >> SATP_MODE_SHIFT;
		if (cpu->priv == PRIV_S && (cpu->mstatus & MSTATUS_TVM))
			return false;
		if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39)
			return true; /* unsupported mode: the write is ignored (Linux probes Sv57/Sv48) */
		cpu->satp = value;
		cpu_tlb_flush(cpu);
		return true;
	}
	case CSR_MSTATUS: write_mstatus(cpu, value); return true;
	case CSR_MISA: return true; /* read-only in effect: the extensions cannot be switched off */
	case CSR_MEDELEG: cpu->medeleg = value & MEDELEG_WRITABLE; return true;
	case CSR_MIDELEG:
		cpu->mideleg = value & S_INTERRUPTS;
		cpu_update_irq(cpu);
		return true;
	case CSR_MIE:
		cpu->mie = value & ALL_INTERRUPTS;
		cpu_update_irq(cpu);
		return true;
	case CSR_MTVEC:
		if ((value & MTVEC_MODE_MASK) <= MTVEC_MODE_VECTORED)
			cpu->mtvec = value;
		return true;
	case CSR_MCOUNTEREN: cpu->mcounteren = value & COUNTEREN_MASK; return true;
	case CSR_MENVCFG: cpu->menvcfg = value & ENVCFG_FIOM; return true;
	case CSR_MCOUNTINHIBIT: cpu->mcountinhibit = value & MCOUNTINHIBIT_MASK; return true;
	case CSR_MSCRATCH: cpu->mscratch = value; return true;
	case CSR_MEPC: cpu->mepc = value & ~1ull; return true;
	case CSR_MCAUSE: cpu->mcause = value; return true;
	case CSR_MTVAL: cpu->mtval = value; return true;
	case CSR_MIP:
		cpu->mip = (cpu->mip & ~MIP_WRITABLE) | (value & MIP_WRITABLE);
		cpu_update_irq(cpu);
		return true;
	/* The counted value is icount + offset; the write takes effect for the next instruction. */
	case CSR_MCYCLE: cpu->mcycle_offset = value - cpu->icount - 1; return true;
	case CSR_MINSTRET: cpu->minstret_offset = value - cpu->icount - 1; return true;
	default:
		break;
	}
	if ((csr >= CSR_MHPMCOUNTER3 && csr <= CSR_MHPMCOUNTER31) || (csr >= CSR_MHPMEVENT3 && csr <= CSR_MHPMEVENT31))
		return true;
	if (csr >= CSR_PMPCFG0 && csr <= CSR_PMPCFG15) {
		write_pmpcfg(cpu, csr - CSR_PMPCFG0, value);
		return true;
	}
	if (csr >= CSR_PMPADDR0 && csr <= CSR_PMPADDR63) {
		unsigned entry = csr - CSR_PMPADDR0;
		if (!pmp_entry_locked(cpu, entry))
			cpu->pmpaddr[entry] = value; /* all bits read back, as on QEMU 7.2 */
		return true;
	}
	return false;
}

bool cpu_csr_op(struct cpu *cpu, unsigned csr, bool write, unsigned op, uint64_t src, uint64_t *old)
{
	uint64_t value;
	if (CSR_MIN_PRIV(csr) > cpu->priv || (write && CSR_READ_ONLY(csr)) || !csr_read(cpu, csr, &value))
		goto illegal;
	if (write) {
		uint64_t nv;
		/* CSRRS/CSRRC on mip modify the software-writable bits only: the external lines (SEIP
		 * from the PLIC) read as set must not be latched into mip (privileged spec, mip). */
		uint64_t base = csr == CSR_MIP ? cpu->mip : value;
		switch (op & 3) {
		case 1: nv = src; break;
		case 2: nv = base | src; break;
		default: nv = base & ~src; break;
		}
		if (!csr_write(cpu, csr, nv))
			goto illegal;
	}
	*old = value;
	return true;
illegal:
	return false;
}

/* Encodings of the SYSTEM instructions with funct3 = 0. */
#define INSN_ECALL 0x00000073u
#define INSN_EBREAK 0x00100073u
#define INSN_SRET 0x10200073u
#define INSN_MRET 0x30200073u
#define INSN_WFI 0x10500073u
#define INSN_SFENCE_VMA_MASK 0xfe007fffu
#define INSN_SFENCE_VMA 0x12000073u

static void do_mret(struct cpu *cpu)
{
	uint64_t s = cpu->mstatus;
	enum cpu_priv prev = (enum cpu_priv)((s & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT);
	if (prev == 2)
		prev = PRIV_U;
	s = (s & ~MSTATUS_MIE) | ((s & MSTATUS_MPIE) ? MSTATUS_MIE : 0);
	s |= MSTATUS_MPIE;
	s &= ~MSTATUS_MPP; /* MPP = U */
	if (prev != PRIV_M)
		s &= ~MSTATUS_MPRV;
	set_mstatus(cpu, s);
	cpu->pc = cpu->mepc;
	set_priv(cpu, prev);
	cpu_update_irq(cpu);
}

static void do_sret(struct cpu *cpu)
{
	uint64_t s = cpu->mstatus;
	enum cpu_priv prev = (s & MSTATUS_SPP) ? PRIV_S : PRIV_U;
	s = (s & ~MSTATUS_SIE) | ((s & MSTATUS_SPIE) ? MSTATUS_SIE : 0);
	s |= MSTATUS_SPIE;
	s &= ~(MSTATUS_SPP | MSTATUS_MPRV);
	set_mstatus(cpu, s);
	cpu->pc = cpu->sepc;
	set_priv(cpu, prev);
	cpu_update_irq(cpu);
}

bool cpu_exec_system(struct cpu *cpu, uint32_t insn)
{
	static const enum cpu_exception ecall_cause[] = {
		[PRIV_U] = EXC_ECALL_U, [PRIV_S] = EXC_ECALL_S, [2] = EXC_ILLEGAL_INSN, [PRIV_M] = EXC_ECALL_M,
	};
	switch (insn) {
	case INSN_ECALL:
		cpu_raise_exception(cpu, ecall_cause[cpu->priv], 0);
		return false;
	case INSN_EBREAK:
		cpu_raise_exception(cpu, EXC_BREAKPOINT, 0);
		return false;
	case INSN_MRET:
		if (cpu->priv != PRIV_M)
			break;
		do_mret(cpu);
		return true;
	case INSN_SRET:
		if (cpu->priv < PRIV_S || (cpu->priv == PRIV_S && (cpu->mstatus & MSTATUS_TSR)))
			break;
		do_sret(cpu);
		return true;
	case INSN_WFI:
		if (cpu->priv == PRIV_U || (cpu->priv == PRIV_S && (cpu->mstatus & MSTATUS_TW)))
			break;
		cpu->pc += 4;
		if (!cpu_wfi_wakeup(cpu))
			cpu->waiting = true;
		return true;
	default:
		if ((insn & INSN_SFENCE_VMA_MASK) == INSN_SFENCE_VMA) {
			if (cpu->priv == PRIV_U || (cpu->priv == PRIV_S && (cpu->mstatus & MSTATUS_TVM)))
				break;
			cpu_tlb_flush(cpu);
			cpu->pc += 4;
			return true;
		}
		break;
	}
	cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, insn);
	return false;
}
