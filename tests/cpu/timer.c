/*
 * timer.c — the CLINT timer as an interrupt source: WFI wakes on MTIP even with MIE clear, the
 * interrupt is taken with MIE set (cause 7), rewriting mtimecmp clears MTIP, and delegated
 * supervisor timer interrupts (STIP raised by M) reach S. Everything printed is independent of
 * how fast time runs relative to instructions.
 */
#include "rt.h"

#define MIP_MTIP (1ul << 7)
#define MIP_STIP (1ul << 5)
#define MSTATUS_MIE (1ul << 3)
#define MSTATUS_SIE (1ul << 1)

static volatile uint64_t *const mtimecmp = (volatile uint64_t *)RT_CLINT_MTIMECMP;
static volatile uint64_t *const mtime = (volatile uint64_t *)RT_CLINT_MTIME;
static volatile unsigned m_ticks, s_ticks;

static int m_hook(struct rt_frame *f, uint64_t cause)
{
	if (cause == (1ul << 63 | 7)) {
		m_ticks++;
		*mtimecmp = ~0ul; /* disarm */
		CSR_SET(mip, MIP_STIP); /* forward to S, as OpenSBI does */
		return 1;
	}
	return 0;
}

static int s_hook(struct rt_frame *f, uint64_t cause)
{
	if (cause == (1ul << 63 | 5)) {
		s_ticks++;
		CSR_CLEAR(sie, MIP_STIP);
		return 1;
	}
	return 0;
}

static void s_wait(void)
{
	CSR_SET(sstatus, MSTATUS_SIE);
	while (!s_ticks)
		__asm__ volatile("wfi");
	CSR_CLEAR(sstatus, MSTATUS_SIE);
}

int main(void)
{
	rt_print("mtip_at_reset", (CSR_READ(mip) & MIP_MTIP) != 0); /* mtimecmp resets to 0 */
	*mtimecmp = ~0ul;
	rt_print("mtip_after_disarm", (CSR_READ(mip) & MIP_MTIP) != 0);
	uint64_t t0 = *mtime, t1 = *mtime;
	rt_print("mtime_monotonic", t1 >= t0);
	uint64_t c0 = CSR_READ(time);
	rt_print("time_csr_close_to_mtime", c0 >= t0 && c0 - t0 < 10000000);

	/* WFI with MIE clear: returns once MTIP is pending, no trap. */
	CSR_WRITE(mie, MIP_MTIP);
	*mtimecmp = *mtime + 1000;
	while (!(CSR_READ(mip) & MIP_MTIP))
		__asm__ volatile("wfi");
	rt_print("wfi_woke_mtip", (CSR_READ(mip) & MIP_MTIP) != 0);
	rt_print_trap("no_trap_with_mie_clear", 0);

	/* Now take it. */
	rt_mhook = m_hook;
	CSR_SET(mstatus, MSTATUS_MIE);
	while (!m_ticks)
		__asm__ volatile("wfi");
	CSR_CLEAR(mstatus, MSTATUS_MIE);
	rt_print("m_ticks", m_ticks);
	rt_last.epc = 0;
	rt_print_trap("mtimer", 0);
	rt_print("mtip_after_handler", (CSR_READ(mip) & MIP_MTIP) != 0);
	rt_print("stip_forwarded", (CSR_READ(mip) & MIP_STIP) != 0);

	/* The forwarded STIP, delegated, is taken in S. */
	extern char rt_svector[];
	CSR_WRITE(stvec, (uint64_t)rt_svector);
	CSR_WRITE(mideleg, MIP_STIP);
	CSR_WRITE(mie, MIP_STIP);
	rt_shook = s_hook;
	rt_run_in(PRIV_S, s_wait);
	rt_print("s_ticks", s_ticks);
	rt_last.epc = 0;
	rt_print_trap("stimer", 0);
	CSR_CLEAR(mip, MIP_STIP);
	CSR_WRITE(mie, 0);
	return 0;
}
