/*
 * test_devices.c — unit tests of the board's devices through their bus regions: PLIC priority,
 * claim/complete and output lines; CLINT registers, icount-driven mtime and deadlines; 16550A
 * registers, THRE/RDI interrupts, FIFO and loopback; the test finisher's codes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "vm/board.h"
#include "vm/clint.h"
#include "vm/cpu.h"
#include "vm/cpu_internal.h" /* white box: the hart's interrupt lines */
#include "vm/finisher.h"
#include "vm/plic.h"
#include "vm/uart.h"

static uint32_t rd32(struct bus_region *r, uint64_t off)
{
	uint64_t v = 0;
	assert_int_equal(r->read(r->opaque, off, 4, &v), 0);
	return (uint32_t)v;
}

static void wr32(struct bus_region *r, uint64_t off, uint32_t v)
{
	assert_int_equal(r->write(r->opaque, off, 4, v), 0);
}

/* ---- PLIC ---- */

struct hart_fixture {
	struct vm_bus bus;
	struct vm_clock clock;
	struct cpu *cpu;
	uint8_t ram[4096];
};

static int hart_setup(void **state)
{
	struct hart_fixture *f = calloc(1, sizeof(*f));
	f->bus.ram = f->ram;
	f->bus.ram_base = BOARD_RAM_BASE;
	f->bus.ram_size = sizeof(f->ram);
	clock_init(&f->clock);
	assert_int_equal(cpu_create(&f->bus, &f->clock, &f->cpu), 0);
	*state = f;
	return 0;
}

static int hart_teardown(void **state)
{
	struct hart_fixture *f = *state;
	cpu_destroy(f->cpu);
	free(f);
	return 0;
}

static bool line(const struct cpu *cpu, enum cpu_irq irq)
{
	return (cpu->irq_lines >> irq) & 1;
}

#define PLIC_ENABLE(ctx) (0x2000u + 0x80u * (ctx))
#define PLIC_THRESHOLD(ctx) (0x200000u + 0x1000u * (ctx))
#define PLIC_CLAIM(ctx) (0x200004u + 0x1000u * (ctx))

static void test_plic_claim_complete(void **state)
{
	struct hart_fixture *f = *state;
	struct plic p;
	plic_init(&p, f->cpu);
	struct bus_region r = plic_region(&p, 0xc000000, 0x600000);

	wr32(&r, 4 * 10, 1);            /* priority(10) = 1 */
	wr32(&r, 4 * 3, 5);             /* priority(3) = 5 */
	wr32(&r, PLIC_ENABLE(1), (1u << 10) | (1u << 3));
	plic_set_irq(&p, 10, true);
	assert_true(line(f->cpu, IRQ_S_EXT));
	assert_false(line(f->cpu, IRQ_M_EXT));        /* not enabled for the M context */
	assert_int_equal(rd32(&r, 0x1000), 1u << 10);  /* pending */

	plic_set_irq(&p, 3, true);
	assert_int_equal(rd32(&r, PLIC_CLAIM(1)), 3);  /* higher priority first */
	assert_int_equal(rd32(&r, PLIC_CLAIM(1)), 10);
	assert_false(line(f->cpu, IRQ_S_EXT));        /* both claimed */
	assert_int_equal(rd32(&r, PLIC_CLAIM(1)), 0);

	wr32(&r, PLIC_CLAIM(1), 3);                    /* complete with the line still high */
	assert_true(line(f->cpu, IRQ_S_EXT));
	plic_set_irq(&p, 3, false);
	assert_false(line(f->cpu, IRQ_S_EXT));        /* level dropped before the claim */
	wr32(&r, PLIC_CLAIM(1), 10);
	assert_true(line(f->cpu, IRQ_S_EXT));
}

static void test_plic_threshold_and_limits(void **state)
{
	struct hart_fixture *f = *state;
	struct plic p;
	plic_init(&p, f->cpu);
	struct bus_region r = plic_region(&p, 0xc000000, 0x600000);
	wr32(&r, 4 * 1, 2);
	wr32(&r, PLIC_ENABLE(0), 1u << 1);
	wr32(&r, PLIC_THRESHOLD(0), 2);
	plic_set_irq(&p, 1, true);
	assert_false(line(f->cpu, IRQ_M_EXT));   /* priority must exceed the threshold */
	wr32(&r, PLIC_THRESHOLD(0), 1);
	assert_true(line(f->cpu, IRQ_M_EXT));
	wr32(&r, 4 * 1, 0xff);
	assert_int_equal(rd32(&r, 4 * 1), 7);    /* 3 priority bits */
	wr32(&r, 0, 7);
	assert_int_equal(rd32(&r, 0), 0);        /* source 0 does not exist */
	plic_set_irq(&p, 0, true);
	plic_set_irq(&p, BOARD_PLIC_SOURCES, true); /* ignored, no crash */
	uint64_t v;
	assert_int_equal(r.read(r.opaque, 0, 8, &v), -1); /* 4-byte accesses only */
	assert_int_equal(rd32(&r, PLIC_CLAIM(5)), 0);      /* a context that does not exist */
	/* Completing a source that is not enabled on the context is ignored. */
	assert_int_equal(rd32(&r, PLIC_CLAIM(0)), 1);
	wr32(&r, PLIC_CLAIM(1), 1);
	assert_int_equal(rd32(&r, PLIC_CLAIM(0)), 0);
	wr32(&r, PLIC_CLAIM(0), 1);
	assert_int_equal(rd32(&r, PLIC_CLAIM(0)), 1);
}

/* ---- CLINT ---- */

static void test_clint_time_and_deadline(void **state)
{
	struct hart_fixture *f = *state;
	struct clint c;
	clint_init(&c, f->cpu, &f->clock);
	struct bus_region r = clint_region(&c, 0x2000000, 0x10000);
	uint64_t v;

	/* Time is a function of icount only: 1 tick per 10 instructions by default. */
	clock_anchor(&f->clock, 0, 5000, CLOCK_DEFAULT_TICKS_PER_INSN);
	assert_int_equal(r.read(r.opaque, CLINT_REG_MTIME, 8, &v), 0);
	assert_int_equal(v, 5000);
	assert_int_equal(r.read(r.opaque, CLINT_REG_MTIME + 4, 4, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(r.read(r.opaque, CLINT_REG_MTIME + 2, 4, &v), -1);  /* straddles the register */

	/* Never written: mtimecmp is 0 <= mtime, so MTIP is pending from reset, as on QEMU. */
	assert_int_equal(clint_deadline(&c, 0), ICOUNT_MAX);
	clint_update_lines(&c, 0);
	assert_true(line(f->cpu, IRQ_M_TIMER));

	assert_int_equal(r.write(r.opaque, CLINT_REG_MTIMECMP, 4, 6000), 0);   /* low half */
	assert_int_equal(r.write(r.opaque, CLINT_REG_MTIMECMP + 4, 4, 0), 0);  /* high half */
	assert_int_equal(r.read(r.opaque, CLINT_REG_MTIMECMP, 8, &v), 0);
	assert_int_equal(v, 6000);
	assert_false(line(f->cpu, IRQ_M_TIMER));
	/* 1000 ticks at ~0.1 tick per instruction: the first icount whose time reaches 6000. */
	icount_t deadline = clint_deadline(&c, 0);
	assert_in_range(deadline, 10000, 10001);
	assert_true(clock_time_at(&f->clock, deadline) >= 6000);
	assert_true(clock_time_at(&f->clock, deadline - 1) < 6000);

	/* A TIME anchor past the deadline raises MTIP; a later mtimecmp lowers it. */
	clock_anchor(&f->clock, 0, 7000, CLOCK_DEFAULT_TICKS_PER_INSN);
	clint_update_lines(&c, 0);
	assert_true(line(f->cpu, IRQ_M_TIMER));
	assert_int_equal(clint_deadline(&c, 0), ICOUNT_MAX);
	assert_int_equal(r.write(r.opaque, CLINT_REG_MTIMECMP, 8, UINT64_MAX), 0);
	assert_false(line(f->cpu, IRQ_M_TIMER));

	/* Writes to mtime are ignored. */
	assert_int_equal(r.write(r.opaque, CLINT_REG_MTIME, 8, 1), 0);
	assert_int_equal(r.read(r.opaque, CLINT_REG_MTIME, 8, &v), 0);
	assert_int_equal(v, 7000);

	wr32(&r, CLINT_REG_MSIP, 3);
	assert_int_equal(rd32(&r, CLINT_REG_MSIP), 1);
	assert_true(line(f->cpu, IRQ_M_SOFT));
	wr32(&r, CLINT_REG_MSIP, 0);
	assert_false(line(f->cpu, IRQ_M_SOFT));
}

/* ---- UART ---- */

struct uart_probe {
	uint8_t out[64];
	size_t nout;
	bool irq;
	unsigned irq_changes;
};

static void probe_out(void *ctx, uint8_t byte)
{
	struct uart_probe *p = ctx;
	if (p->nout < sizeof(p->out))
		p->out[p->nout++] = byte;
}

static void probe_irq(void *ctx, bool level)
{
	struct uart_probe *p = ctx;
	p->irq = level;
	p->irq_changes++;
}

static uint8_t urd(struct bus_region *r, uint64_t off)
{
	uint64_t v;
	assert_int_equal(r->read(r->opaque, off, 1, &v), 0);
	return (uint8_t)v;
}

static void uwr(struct bus_region *r, uint64_t off, uint8_t v)
{
	assert_int_equal(r->write(r->opaque, off, 1, v), 0);
}

enum { RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static void test_uart_registers(void **state)
{
	struct uart u;
	struct uart_probe p = { 0 };
	uart_init(&u, probe_out, probe_irq, &p);
	struct bus_region r = uart_region(&u, 0x10000000, 0x100);

	assert_int_equal(urd(&r, LSR), 0x60);   /* THRE | TEMT, no data */
	assert_int_equal(urd(&r, IIR), 0x01);   /* no interrupt, FIFO off */
	uwr(&r, SCR, 0xa5);
	assert_int_equal(urd(&r, SCR), 0xa5);
	uwr(&r, LCR, 0x83);                     /* DLAB */
	uwr(&r, 0, 0x01);
	uwr(&r, 1, 0x02);
	assert_int_equal(urd(&r, 0), 0x01);
	assert_int_equal(urd(&r, 1), 0x02);
	uwr(&r, LCR, 0x03);
	assert_int_equal(urd(&r, IER), 0);      /* divisor latch did not touch IER */
	uwr(&r, FCR, 0x07);
	assert_int_equal(urd(&r, IIR) & 0xc0, 0xc0);

	uwr(&r, 0, 'h');
	uwr(&r, 0, 'i');
	assert_int_equal(p.nout, 2);
	assert_memory_equal(p.out, "hi", 2);
	assert_int_equal(urd(&r, MSR), 0xb0);   /* DCD, DSR, CTS */
}

static void test_uart_interrupts(void **state)
{
	struct uart u;
	struct uart_probe p = { 0 };
	uart_init(&u, probe_out, probe_irq, &p);
	struct bus_region r = uart_region(&u, 0x10000000, 0x100);
	uwr(&r, FCR, 0x01);

	/* Enabling THRI with THR empty raises it; reading IIR acknowledges it. */
	uwr(&r, IER, 0x02);
	assert_true(p.irq);
	assert_int_equal(urd(&r, IIR), 0xc2);
	assert_false(p.irq);
	assert_int_equal(urd(&r, IIR), 0xc1);
	uwr(&r, 0, 'x');                        /* sent at once: THRE again */
	assert_true(p.irq);
	uwr(&r, IER, 0);
	assert_false(p.irq);

	/* Received data outranks THRE and holds the line until drained. */
	uwr(&r, IER, 0x03);
	const uint8_t in[] = "ab";
	assert_int_equal(uart_receive(&u, in, 2), 2);
	assert_int_equal(urd(&r, IIR), 0xc4);
	assert_int_equal(urd(&r, LSR) & 0x01, 1);
	assert_int_equal(urd(&r, RBR), 'a');
	assert_int_equal(urd(&r, RBR), 'b');
	assert_int_equal(urd(&r, LSR) & 0x01, 0);
	assert_int_equal(urd(&r, IIR), 0xc2);   /* THRE still pending underneath */
	assert_false(p.irq);

	/* FIFO reset drops received bytes. */
	assert_int_equal(uart_receive(&u, in, 2), 2);
	uwr(&r, FCR, 0x03);
	assert_int_equal(urd(&r, LSR) & 0x01, 0);
}

static void test_uart_overrun_and_loopback(void **state)
{
	struct uart u;
	struct uart_probe p = { 0 };
	uart_init(&u, probe_out, probe_irq, &p);
	struct bus_region r = uart_region(&u, 0x10000000, 0x100);
	static uint8_t big[UART_RX_BUFFER + 10];
	memset(big, 'z', sizeof(big));
	assert_int_equal(uart_receive(&u, big, sizeof(big)), UART_RX_BUFFER);
	uwr(&r, IER, 0x04);
	assert_true(p.irq);                     /* line status: overrun */
	assert_int_equal(urd(&r, IIR), 0x06);
	assert_int_equal(urd(&r, LSR) & 0x02, 0x02);
	assert_int_equal(urd(&r, LSR) & 0x02, 0);  /* cleared by reading LSR */
	assert_false(p.irq);

	uwr(&r, FCR, 0x03);
	uwr(&r, MCR, 0x10 | 0x02 | 0x01);       /* loopback, RTS, DTR */
	assert_int_equal(urd(&r, MSR) & 0xf0, 0x30);
	uwr(&r, 0, 'L');
	assert_int_equal(p.nout, 0);            /* looped back, not sent */
	assert_int_equal(urd(&r, RBR), 'L');
}

/* ---- finisher ---- */

static unsigned fired_count;
static void count_fired(void *ctx)
{
	fired_count++;
}

static void test_finisher_codes(void **state)
{
	struct finisher f;
	finisher_init(&f, count_fired, NULL);
	struct bus_region r = finisher_region(&f, 0x100000, 0x1000);
	fired_count = 0;
	wr32(&r, 0, 0x1234);
	assert_int_equal(f.action, FINISHER_NONE);   /* unknown values are ignored */
	assert_int_equal(fired_count, 0);
	wr32(&r, 0, (42u << 16) | BOARD_FINISHER_FAIL);
	assert_int_equal(f.action, FINISHER_POWEROFF);
	assert_int_equal(f.status, 42);
	assert_int_equal(fired_count, 1);
	wr32(&r, 0, BOARD_FINISHER_PASS);
	assert_int_equal(f.status, 0);
	wr32(&r, 0, BOARD_FINISHER_RESET);
	assert_int_equal(f.action, FINISHER_RESET);
	assert_int_equal(r.write(r.opaque, 0, 8, BOARD_FINISHER_PASS), -1);  /* as QEMU: 2/4 bytes */
	assert_int_equal(rd32(&r, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plic_claim_complete, hart_setup, hart_teardown),
		cmocka_unit_test_setup_teardown(test_plic_threshold_and_limits, hart_setup, hart_teardown),
		cmocka_unit_test_setup_teardown(test_clint_time_and_deadline, hart_setup, hart_teardown),
		cmocka_unit_test(test_uart_registers),
		cmocka_unit_test(test_uart_interrupts),
		cmocka_unit_test(test_uart_overrun_and_loopback),
		cmocka_unit_test(test_finisher_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
