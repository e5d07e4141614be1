/*
 * traps.c — exceptions, CSRs and privilege changes: ecall/ebreak/illegal (with mtval), misaligned
 * and access faults, WARL readback of the machine CSRs, delegation to S, U-mode restrictions
 * (counters, CSRs, privileged instructions), mret/sret state transitions and software interrupts.
 */
#include "rt.h"

#define UNMAPPED 0x01000000ul
#define MSTATUS_SIE (1ul << 1)
#define MSTATUS_MIE (1ul << 3)
#define MSTATUS_SPP (1ul << 8)
#define MSTATUS_TVM (1ul << 20)
#define MSTATUS_TW (1ul << 21)
#define MSTATUS_TSR (1ul << 22)
/* UXL/SXL (QEMU 7.2 keeps a written UXL of 3) and the H extension's GVA/MPV. */
#define MSTATUS_H_AND_XL (0xfful << 32)
#define MIP_SSIP (1ul << 1)
#define MIP_STIP (1ul << 5)

/* QEMU 7.2 reports odd mtval values for data access faults on unmapped addresses (the offset
 * into the unassigned region, 0 for misaligned atomics); the spec only asks for the address, so
 * those tests print no tval. */
#define TRAP_NOTVAL(name, insn, ...)                                                 \
	do {                                                                         \
		uint64_t at_;                                                        \
		__asm__ volatile("la %0, 1f\n1:\t" insn : "=&r"(at_) : __VA_ARGS__ : "memory"); \
		rt_last.tval = 0;                                                    \
		rt_print_trap(name, at_);                                            \
	} while (0)

/* Runs `insn` (assembly text) and prints the trap it caused, epc relative to the instruction. */
#define TRAP(name, insn, ...)                                                        \
	do {                                                                         \
		uint64_t at_;                                                        \
		__asm__ volatile("la %0, 1f\n1:\t" insn : "=&r"(at_) : __VA_ARGS__ : "memory"); \
		rt_print_trap(name, at_);                                            \
	} while (0)

static uint64_t scratch[4];

static void exceptions(void)
{
	TRAP("ecall_m", "ecall", "r"(0));
	TRAP("ebreak", "ebreak", "r"(0));
	TRAP("c_ebreak", "c.ebreak", "r"(0));
	TRAP("illegal_c0", ".half 0", "r"(0));
	TRAP("illegal_c_addi4spn0", ".half 0x0004", "r"(0));
	TRAP("illegal_c_lwsp_x0", ".half 0x4002", "r"(0));
	TRAP("illegal_c_jr_x0", ".half 0x8002", "r"(0));
	TRAP("illegal_c_lui0", ".half 0x6081", "r"(0));
	TRAP("illegal_c_addiw_x0", ".half 0x2005", "r"(0));
	TRAP("illegal_c_subw_rsv", ".half 0x9c41", "r"(0));
	TRAP("illegal_custom0", ".word 0x0000000b", "r"(0));
	/* FP instructions with mstatus.FS off: compressed forms report their 16 bits. */
	CSR_CLEAR(mstatus, 3ul << 13);
	TRAP("fs_off_c_fld", "c.fld fa0, 0(%1)", "r"(0), "r"(scratch));
	TRAP("fs_off_c_fsdsp", "c.fsdsp fa0, 8(sp)", "r"(0));
	TRAP("fs_off_fld", "fld fa0, 0(%1)", "r"(0), "r"(scratch));
	TRAP("fs_off_fadd", "fadd.d fa0, fa0, fa0", "r"(0));
	TRAP("fs_off_frcsr", "frcsr t0", "r"(0));
	CSR_SET(mstatus, 1ul << 13);
	TRAP("illegal_system", ".word 0xfc000073", "r"(0));
	TRAP("illegal_csr", "csrr t0, 0x7c0", "r"(0));
	TRAP("illegal_ro_write", "csrw mhartid, zero", "r"(0));
	TRAP("illegal_pmpcfg1", "csrr t0, pmpcfg1", "r"(0));
	TRAP("illegal_pmpaddr16", "csrr t0, pmpaddr16", "r"(0));
	/* Not compared: QEMU 7.2 implements H (0x600..) and Sstc (stimecmp 0x14d), ftvm neither. */
	TRAP("illegal_slli64", ".word 0x04051513", "r"(0)); /* slli a0, a0 with imm[11:6] = 1 */
	TRAP("illegal_load7", ".word 0x00057503", "r"(0));  /* ld-like with funct3 = 7 */
	TRAP("illegal_sret_nonsense", ".word 0x30200073 | (1 << 7)", "r"(0));
	TRAP_NOTVAL("load_access", "ld t0, 0(%1)", "r"(0), "r"(UNMAPPED));
	TRAP_NOTVAL("store_access", "sd zero, 0(%1)", "r"(0), "r"(UNMAPPED));
	TRAP_NOTVAL("store_access_b", "sb zero, 3(%1)", "r"(0), "r"(UNMAPPED));
	TRAP_NOTVAL("amo_misaligned", "amoadd.d t0, zero, (%1)", "r"(0), "r"((uint64_t)scratch + 4));
	TRAP_NOTVAL("amo_w_misaligned", "amoadd.w t0, zero, (%1)", "r"(0), "r"((uint64_t)scratch + 2));
	TRAP_NOTVAL("lr_misaligned", "lr.d t0, (%1)", "r"(0), "r"((uint64_t)scratch + 4));
	TRAP_NOTVAL("amo_access", "amoswap.w t0, zero, (%1)", "r"(0), "r"(UNMAPPED));
	TRAP_NOTVAL("lr_access", "lr.w t0, (%1)", "r"(0), "r"(UNMAPPED));

	/* Misaligned plain loads and stores are performed, not trapped, on QEMU's virt. */
	uint8_t *b = (uint8_t *)scratch;
	for (unsigned i = 0; i < sizeof(scratch); i++)
		b[i] = (uint8_t)(i * 37 + 1);
	uint64_t v;
	__asm__ volatile("ld %0, 3(%1)" : "=r"(v) : "r"(b));
	rt_print("misaligned_ld", v);
	__asm__ volatile("lw %0, 1(%1)" : "=r"(v) : "r"(b));
	rt_print("misaligned_lw", v);
	__asm__ volatile("lhu %0, 7(%1)" : "=r"(v) : "r"(b));
	rt_print("misaligned_lhu", v);
	__asm__ volatile("sd %0, 5(%1)" ::"r"(0x1122334455667788ul), "r"(b) : "memory");
	__asm__ volatile("sw %0, 17(%1)" ::"r"(0xaabbccddul), "r"(b) : "memory");
	rt_print("misaligned_store0", scratch[0]);
	rt_print("misaligned_store1", scratch[1]);
	rt_print("misaligned_store2", scratch[2]);
	rt_print_trap("misaligned_none", 0);
}

static int fetch_fault_hook(struct rt_frame *f, uint64_t cause)
{
	if (cause == 1 || cause == 12) {
		f->epc = f->x[1]; /* return to the caller of the bad address */
		return 1;
	}
	return 0;
}

static void fetch_faults(void)
{
	rt_mhook = fetch_fault_hook;
	__asm__ volatile("jalr ra, 0(%0)" ::"r"(UNMAPPED) : "ra", "memory");
	rt_print_trap("fetch_access", UNMAPPED);
	__asm__ volatile("jalr ra, 0(%0)" ::"r"(0x80000000ul + (256ul << 20)) : "ra", "memory");
	rt_print_trap("fetch_past_ram", 0x80000000ul + (256ul << 20));
	rt_mhook = 0;
}

#define SHOW_WARL(name, csr, value)                                                  \
	do {                                                                         \
		uint64_t old_ = CSR_READ(csr);                                       \
		CSR_WRITE(csr, value);                                               \
		rt_print(name, CSR_READ(csr));                                       \
		CSR_WRITE(csr, old_);                                                \
	} while (0)

static void csrs(void)
{
	/* QEMU 7.2's default CPU has the H extension (misa bit 7, mstatus GVA/MPV, VS interrupts);
	 * ftvm does not, so those bits are masked out of the comparison. */
	rt_print("misa", CSR_READ(misa) & ~(1ul << 7));
	rt_print("mhartid", CSR_READ(mhartid));
	rt_print("mvendorid", CSR_READ(mvendorid));
	rt_print("mstatus_reset", CSR_READ(mstatus));
	uint64_t ms = CSR_READ(mstatus);
	CSR_WRITE(mstatus, ~0ul & ~(MSTATUS_MIE | MSTATUS_SIE));
	rt_print("mstatus_ones", CSR_READ(mstatus) & ~MSTATUS_H_AND_XL);
	rt_print("sstatus_view", CSR_READ(sstatus) & ~MSTATUS_H_AND_XL);
	CSR_WRITE(sstatus, 0);
	rt_print("mstatus_after_sstatus0", CSR_READ(mstatus) & ~MSTATUS_H_AND_XL);
	CSR_WRITE(mstatus, ms);
	SHOW_WARL("medeleg", medeleg, ~0ul);
	CSR_WRITE(mideleg, ~0ul);
	rt_print("mideleg", CSR_READ(mideleg) & 0xaaa);
	CSR_WRITE(mideleg, 0);
	CSR_WRITE(mie, ~0ul);
	rt_print("mie", CSR_READ(mie) & 0xaaa);
	CSR_WRITE(mie, 0);
	SHOW_WARL("mtvec_direct", mtvec, 0x80001231ul);
	SHOW_WARL("mtvec_mode2", mtvec, 0x80001002ul);
	SHOW_WARL("stvec_mode3", stvec, 0x80001003ul);
	SHOW_WARL("mscratch", mscratch, 0xdeadbeefcafef00dul);
	SHOW_WARL("mcause", mcause, ~0ul);
	SHOW_WARL("mtval", mtval, ~0ul);
	SHOW_WARL("mcounteren", mcounteren, 7ul);
	SHOW_WARL("scounteren", scounteren, 5ul);
	SHOW_WARL("sscratch", sscratch, 0x1234ul);
	SHOW_WARL("pmpaddr1", pmpaddr1, ~0ul);
	SHOW_WARL("pmpaddr2", pmpaddr2, 0x1234567ul);
	uint64_t cfg = CSR_READ(pmpcfg0);
	CSR_WRITE(pmpcfg0, cfg | (0x0ful << 8));
	rt_print("pmpcfg0", CSR_READ(pmpcfg0));
	CSR_WRITE(pmpcfg0, cfg);
	rt_print("menvcfg_fiom", CSR_READ(menvcfg) & 1);
	SHOW_WARL("satp_mode5_ignored", satp, (5ul << 60) | 0x1234);
	SHOW_WARL("satp_sv39", satp, (8ul << 60) | (0xfffful << 44) | 0x80123ul);
	rt_print("satp_bare", CSR_READ(satp));
	/* mip: M-mode writes SSIP and STIP; sip shows only delegated bits. */
	CSR_WRITE(mie, 0);
	CSR_WRITE(mideleg, MIP_SSIP);
	CSR_WRITE(mip, MIP_SSIP | MIP_STIP | (1ul << 7) | (1ul << 3));
	rt_print("mip", CSR_READ(mip));
	rt_print("sip", CSR_READ(sip));
	CSR_WRITE(mip, 0);
	CSR_WRITE(mideleg, 0);
	rt_print("mip_clear", CSR_READ(mip));
	uint64_t c0 = CSR_READ(instret), c1 = CSR_READ(instret);
	rt_print("instret_moves", c1 > c0);
	rt_print_trap("csrs_no_trap", 0);
}

static volatile uint64_t lower_result;

static void u_body(void)
{
	uint64_t at;
	__asm__ volatile("la %0, 1f\n1:\tcsrr t0, mstatus" : "=&r"(at) :: "t0");
	lower_result = at;
	__asm__ volatile("ecall");
	__asm__ volatile("csrr t0, cycle" ::: "t0");
	__asm__ volatile("csrr t0, time" ::: "t0");
	__asm__ volatile("csrr t0, sstatus" ::: "t0");
	__asm__ volatile("sret");
	__asm__ volatile("mret");
	__asm__ volatile("wfi");
	__asm__ volatile("sfence.vma");
}

static uint64_t trap_log[16][3];
static unsigned trap_log_n;

static void log_trap(uint64_t cause, uint64_t tval)
{
	if (trap_log_n < 16) {
		trap_log[trap_log_n][0] = cause;
		trap_log[trap_log_n][1] = rt_last.priv << 4 | rt_last.mode;
		trap_log[trap_log_n][2] = tval;
		trap_log_n++;
	}
}

static int log_hook(struct rt_frame *f, uint64_t cause)
{
	log_trap(cause, CSR_READ(mtval));
	return 0;
}

static int slog_hook(struct rt_frame *f, uint64_t cause)
{
	log_trap(cause, CSR_READ(stval));
	return 0;
}

static void print_log(const char *name)
{
	for (unsigned i = 0; i < trap_log_n; i++) {
		rt_puts(name);
		rt_puts(": cause=");
		rt_puthex(trap_log[i][0]);
		rt_puts(" from/to=");
		rt_puthex(trap_log[i][1]);
		rt_puts(" tval=");
		rt_puthex(trap_log[i][2]);
		rt_putc('\n');
	}
	trap_log_n = 0;
	rt_clear_trap();
}

static void s_body(void)
{
	__asm__ volatile("ecall");
	__asm__ volatile("csrr t0, cycle" ::: "t0");
	__asm__ volatile("csrr t0, mscratch" ::: "t0");
	__asm__ volatile("csrr t0, satp" ::: "t0");     /* TVM set by the caller */
	__asm__ volatile("sfence.vma" ::: "memory");  /* TVM */
	__asm__ volatile("sret");                     /* TSR */
	__asm__ volatile("wfi");                      /* TW */
	__asm__ volatile("mret");
	__asm__ volatile(".word 0x0000000b");         /* illegal, delegated */
	lower_result = CSR_READ(sstatus);
}

static void privilege(void)
{
	extern char rt_svector[];
	CSR_WRITE(stvec, (uint64_t)rt_svector);
	rt_mhook = log_hook;
	rt_shook = slog_hook;

	/* U-mode, nothing delegated, counters not enabled. */
	CSR_WRITE(mcounteren, 0);
	rt_run_in(PRIV_U, u_body);
	rt_print("u_csr_at_nonzero", lower_result != 0);
	print_log("u_nodeleg");

	/* U-mode with counters enabled and illegal instructions and U ecalls delegated to S. */
	CSR_WRITE(mcounteren, 7);
	CSR_WRITE(scounteren, 2);
	CSR_WRITE(medeleg, (1ul << 2) | (1ul << 8));
	rt_run_in(PRIV_U, u_body);
	print_log("u_deleg");
	CSR_WRITE(medeleg, 0);

	/* S-mode with TVM, TSR and TW set; illegal instructions delegated. */
	CSR_WRITE(mcounteren, 0);
	CSR_SET(mstatus, MSTATUS_TVM | MSTATUS_TSR | MSTATUS_TW);
	CSR_WRITE(medeleg, 1ul << 2);
	rt_run_in(PRIV_S, s_body);
	CSR_CLEAR(mstatus, MSTATUS_TVM | MSTATUS_TSR | MSTATUS_TW);
	CSR_WRITE(medeleg, 0);
	print_log("s_traps");
	rt_print("s_sstatus", lower_result);

	/* Delegation does not apply to traps taken in M-mode. */
	CSR_WRITE(medeleg, 1ul << 2);
	__asm__ volatile(".word 0x0000000b");
	CSR_WRITE(medeleg, 0);
	print_log("m_ignores_deleg");
	rt_mhook = 0;
	rt_shook = 0;
}

static volatile unsigned s_irqs;

static int s_irq_hook(struct rt_frame *f, uint64_t cause)
{
	if ((int64_t)cause < 0) {
		s_irqs++;
		CSR_CLEAR(sip, MIP_SSIP);
		return 1;
	}
	return 0;
}

static void s_wait_irq(void)
{
	CSR_SET(sstatus, MSTATUS_SIE);
	for (int i = 0; i < 100 && !s_irqs; i++)
		__asm__ volatile("nop");
	CSR_CLEAR(sstatus, MSTATUS_SIE);
}

static volatile unsigned m_irqs;

static int m_irq_hook(struct rt_frame *f, uint64_t cause)
{
	if ((int64_t)cause < 0) {
		m_irqs++;
		if ((cause & 0xff) == 3)
			*(volatile uint32_t *)RT_CLINT_MSIP = 0;
		else
			CSR_CLEAR(mip, MIP_SSIP | MIP_STIP);
		return 1;
	}
	return 0;
}

static void interrupts(void)
{
	extern char rt_svector[];
	/* Where exactly an interrupt lands after the write that raises it is timing (QEMU takes it at
	 * the end of a translation block), so no epc is printed below. */
	CSR_CLEAR(mstatus, MSTATUS_MIE);
	CSR_WRITE(stvec, (uint64_t)rt_svector);
	/* SSIP raised by M, delegated, taken in S once SIE is set. */
	rt_shook = s_irq_hook;
	CSR_WRITE(mideleg, MIP_SSIP);
	CSR_WRITE(mie, MIP_SSIP);
	CSR_SET(mip, MIP_SSIP);
	rt_run_in(PRIV_S, s_wait_irq);
	rt_print("s_irqs", s_irqs);
	rt_last.epc = 0;
	rt_print_trap("ssip_in_s", 0);
	/* A pending S interrupt that is not delegated is taken in M even from S with SIE clear. */
	rt_mhook = m_irq_hook;
	CSR_WRITE(mideleg, 0);
	CSR_WRITE(mie, MIP_STIP);
	CSR_SET(mip, MIP_STIP);
	rt_run_in(PRIV_S, s_wait_irq);
	rt_print("m_irqs", m_irqs);
	rt_last.epc = 0;
	rt_print_trap("stip_in_m", 0);
	/* MSIP from the CLINT, taken in M when MIE is set. */
	CSR_WRITE(mie, 1ul << 3);
	*(volatile uint32_t *)RT_CLINT_MSIP = 1;
	for (int i = 0; i < 10; i++)
		__asm__ volatile("nop");
	rt_print("msip_pending", (CSR_READ(mip) >> 3) & 1);
	CSR_SET(mstatus, MSTATUS_MIE);
	for (int i = 0; i < 100 && m_irqs < 2; i++)
		__asm__ volatile("nop");
	CSR_CLEAR(mstatus, MSTATUS_MIE);
	rt_print("m_irqs", m_irqs);
	rt_last.epc = 0;
	rt_print_trap("msip_in_m", 0);
	rt_print("mstatus_after", CSR_READ(mstatus));
	CSR_WRITE(mie, 0);
	rt_mhook = 0;
	rt_shook = 0;
}

int main(void)
{
	exceptions();
	fetch_faults();
	csrs();
	privilege();
	interrupts();
	return 0;
}
