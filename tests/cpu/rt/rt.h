/*
 * rt.h — the tiny runtime of the bare-metal CPU tests (see start.S and rt.c).
 *
 * Output goes to the 16550 UART THR, the exit to the sifive test finisher, both at their `virt`
 * addresses. Traps are recorded, not fatal: the M-mode handler stores cause/tval/epc of the last
 * trap in rt_last and resumes after the faulting instruction (unless a test installed its own
 * hook). Tests print what they computed; the difftest compares the output with QEMU's.
 */
#ifndef FTVM_TESTS_CPU_RT_H
#define FTVM_TESTS_CPU_RT_H

#include <stdint.h>

#define RT_ECALL_EXIT 0x5254
#define RT_UART_THR 0x10000000ul
#define RT_FINISHER 0x100000ul
#define RT_FINISHER_PASS 0x5555u
#define RT_FINISHER_FAIL 0x3333u
#define RT_CLINT_MSIP 0x2000000ul
#define RT_CLINT_MTIMECMP 0x2004000ul
#define RT_CLINT_MTIME 0x200bff8ul

/* Sv39 page-table entry bits, for the tests that build page tables. */
#define PTE_V (1ul << 0)
#define PTE_R (1ul << 1)
#define PTE_W (1ul << 2)
#define PTE_X (1ul << 3)
#define PTE_U (1ul << 4)
#define PTE_A (1ul << 6)
#define PTE_D (1ul << 7)

#define PRIV_U 0
#define PRIV_S 1
#define PRIV_M 3

struct rt_frame {
	uint64_t x[32];  /* x[2] is the sp before the trap */
	uint64_t epc;
};

struct rt_trap {
	uint64_t count;
	uint64_t cause;
	uint64_t tval;
	uint64_t epc;
	uint64_t priv;   /* mode the trap came from (MPP/SPP) */
	uint64_t mode;   /* mode that handled it: 3 = M, 1 = S */
};
extern volatile struct rt_trap rt_last;
/* Called instead of the default action when set; return nonzero to skip the default. */
extern int (*volatile rt_mhook)(struct rt_frame *f, uint64_t cause);
extern int (*volatile rt_shook)(struct rt_frame *f, uint64_t cause);

void rt_putc(char c);
void rt_puts(const char *s);
void rt_puthex(uint64_t v);
/* Prints "name=<16 hex digits>\n". */
void rt_print(const char *name, uint64_t v);
/* Prints the last trap as "name: cause=.. tval=.. epc-off=.. from=.. to=.." and clears it. */
void rt_print_trap(const char *name, uint64_t epc_base);
void rt_clear_trap(void);
void __attribute__((noreturn)) rt_exit(int code);
void rt_run_in(unsigned priv, void (*fn)(void));

/* A running digest, for results too many to print one by one. */
uint64_t rt_mix(uint64_t h, uint64_t v);

#define CSR_READ(csr) ({ uint64_t v_; __asm__ volatile("csrr %0, " #csr : "=r"(v_)); v_; })
#define CSR_WRITE(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"r"((uint64_t)(v)) : "memory")
#define CSR_SET(csr, v) __asm__ volatile("csrs " #csr ", %0" ::"r"((uint64_t)(v)) : "memory")
#define CSR_CLEAR(csr, v) __asm__ volatile("csrc " #csr ", %0" ::"r"((uint64_t)(v)) : "memory")

extern char __scratch_start[], __scratch_end[];

#endif
