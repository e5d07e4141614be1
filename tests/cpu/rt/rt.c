/*
 * rt.c — UART output, finisher exit and the default trap handlers of the bare-metal CPU tests.
 */
#include "rt.h"

volatile struct rt_trap rt_last;
int (*volatile rt_mhook)(struct rt_frame *f, uint64_t cause);
int (*volatile rt_shook)(struct rt_frame *f, uint64_t cause);
extern char rt_back_in_m[];

#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define MSTATUS_MPP_SHIFT 11
#define MSTATUS_SPP (1ul << 8)
#define CAUSE_ECALL_U 8
#define CAUSE_ECALL_S 9

void rt_putc(char c)
{
	volatile uint8_t *uart = (volatile uint8_t *)RT_UART_THR;
	while (!(uart[UART_LSR] & UART_LSR_THRE))
		;
	uart[0] = (uint8_t)c;
}

void rt_puts(const char *s)
{
	while (*s)
		rt_putc(*s++);
}

void rt_puthex(uint64_t v)
{
	for (int i = 60; i >= 0; i -= 4)
		rt_putc("0123456789abcdef"[(v >> i) & 15]);
}

void rt_print(const char *name, uint64_t v)
{
	rt_puts(name);
	rt_putc('=');
	rt_puthex(v);
	rt_putc('\n');
}

void rt_clear_trap(void)
{
	rt_last.count = 0;
	rt_last.cause = rt_last.tval = rt_last.epc = rt_last.priv = rt_last.mode = 0;
}

void rt_print_trap(const char *name, uint64_t epc_base)
{
	rt_puts(name);
	rt_puts(": n=");
	rt_puthex(rt_last.count);
	rt_puts(" cause=");
	rt_puthex(rt_last.cause);
	rt_puts(" tval=");
	rt_puthex(rt_last.tval);
	rt_puts(" epc-off=");
	rt_puthex(rt_last.epc - epc_base);
	rt_puts(" from=");
	rt_putc((char)('0' + rt_last.priv));
	rt_puts(" to=");
	rt_putc((char)('0' + rt_last.mode));
	rt_putc('\n');
	rt_clear_trap();
}

void rt_exit(int code)
{
	volatile uint32_t *fin = (volatile uint32_t *)RT_FINISHER;
	*fin = code == 0 ? RT_FINISHER_PASS : ((uint32_t)code << 16) | RT_FINISHER_FAIL;
	for (;;)
		__asm__ volatile("wfi");
}

uint64_t rt_mix(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= 0x100000001b3ull;
	h ^= h >> 29;
	return h;
}

/* Length of the instruction at epc (the handlers run with translation off or identity-mapped). */
static uint64_t insn_len(uint64_t epc)
{
	return (*(volatile uint16_t *)epc & 3) == 3 ? 4 : 2;
}

void rt_mtrap(struct rt_frame *f);
void rt_mtrap(struct rt_frame *f)
{
	uint64_t cause = CSR_READ(mcause), status = CSR_READ(mstatus);
	uint64_t from = (status >> MSTATUS_MPP_SHIFT) & 3;
	if ((cause == CAUSE_ECALL_U || cause == CAUSE_ECALL_S) && f->x[17] == RT_ECALL_EXIT) {
		f->epc = (uint64_t)rt_back_in_m;
		CSR_SET(mstatus, 3ul << MSTATUS_MPP_SHIFT);
		return;
	}
	rt_last.count++;
	rt_last.cause = cause;
	rt_last.tval = CSR_READ(mtval);
	rt_last.epc = f->epc;
	rt_last.priv = from;
	rt_last.mode = PRIV_M;
	if (rt_mhook && rt_mhook(f, cause))
		return;
	if ((int64_t)cause < 0)
		rt_exit(100); /* an interrupt nobody expected */
	f->epc += insn_len(f->epc);
}

void rt_strap(struct rt_frame *f);
void rt_strap(struct rt_frame *f)
{
	uint64_t cause = CSR_READ(scause);
	if (cause == CAUSE_ECALL_U && f->x[17] == RT_ECALL_EXIT) {
		/* U-mode ecalls are delegated here: pass the exit on to M-mode. */
		register uint64_t a7 __asm__("a7") = RT_ECALL_EXIT;
		__asm__ volatile("ecall" ::"r"(a7));
	}
	rt_last.count++;
	rt_last.cause = cause;
	rt_last.tval = CSR_READ(stval);
	rt_last.epc = f->epc;
	rt_last.priv = (CSR_READ(sstatus) & MSTATUS_SPP) ? PRIV_S : PRIV_U;
	rt_last.mode = PRIV_S;
	if (rt_shook && rt_shook(f, cause))
		return;
	if ((int64_t)cause < 0)
		rt_exit(101);
	f->epc += insn_len(f->epc);
}
