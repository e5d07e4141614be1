/*
 * test_cpu_run.c — the hart's run-loop contract (cpu.h, icount.h): cpu_run() stops at exactly the
 * requested icount however the run is sliced, taking an interrupt does not count and happens
 * only after the stop at N, WFI stops the loop and an interrupt line wakes it, a device's
 * cpu_request_stop() ends the run after the current instruction but is no state, and equal
 * states give equal digests. Programs are a few hand-encoded instructions, or a test ELF given
 * as argv[1].
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "vm/cpu.h"
#include "vm/elf.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (16ull << 20)
#define UART_BASE 0x10000000ull
#define UART_SIZE 0x100
#define UART_LSR 5
#define UART_LSR_IDLE 0x60
#define FINISHER_BASE 0x100000ull
#define FINISHER_SIZE 0x1000
#define OUT_MAX 65536

/* Encodings used by the hand-written programs. */
#define I_AUIPC_T1_0 0x00000317u      /* auipc t1, 0 */
#define I_ADDI_T1_T1_0X100 0x10030313u /* addi t1, t1, 0x100 */
#define I_CSRW_MTVEC_T1 0x30531073u   /* csrw mtvec, t1 */
#define I_LI_T0_0X80 0x08000293u      /* li t0, 0x80 (MTIE) */
#define I_CSRW_MIE_T0 0x30429073u     /* csrw mie, t0 */
#define I_LI_T0_8 0x00800293u         /* li t0, 8 (MIE) */
#define I_CSRS_MSTATUS_T0 0x3002a073u /* csrs mstatus, t0 */
#define I_ADDI_A0_1 0x00150513u       /* addi a0, a0, 1 */
#define I_J_BACK_1 0xffdff06fu        /* j .-4 */
#define I_J_SELF 0x0000006fu          /* j . */
#define I_WFI 0x10500073u
#define I_LI_T0_0X20 0x02000293u      /* li t0, 0x20 (STIP) */
#define I_CSRC_MIP_T0 0x3442b073u     /* csrc mip, t0 */
#define I_CSRR_A0_MIP 0x34402573u     /* csrr a0, mip */
#define MIP_SEIP (1ull << IRQ_S_EXT)
#define REG_A0 10

struct fixture {
	struct vm_bus bus;
	struct vm_clock clock;
	struct cpu *cpu;
	char out[OUT_MAX];
	size_t out_len;
	bool finished;
};

static const char *elf_path;

static int uart_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	*value = offset == UART_LSR ? UART_LSR_IDLE : 0;
	return 0;
}

static int uart_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct fixture *fx = opaque;
	if (offset == 0 && fx->out_len < OUT_MAX)
		fx->out[fx->out_len++] = (char)value;
	return 0;
}

static int fin_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	*value = 0;
	return 0;
}

static int fin_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct fixture *fx = opaque;
	fx->finished = true;
	cpu_request_stop(fx->cpu);
	return 0;
}

static struct fixture *fixture_new(void)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	fx->bus.ram = calloc(1, RAM_SIZE);
	assert_non_null(fx->bus.ram);
	fx->bus.ram_base = RAM_BASE;
	fx->bus.ram_size = RAM_SIZE;
	struct bus_region uart = { "uart", UART_BASE, UART_SIZE, 0, fx, uart_read, uart_write };
	struct bus_region fin = { "finisher", FINISHER_BASE, FINISHER_SIZE, 0, fx, fin_read, fin_write };
	assert_int_equal(bus_add_region(&fx->bus, &uart), 0);
	assert_int_equal(bus_add_region(&fx->bus, &fin), 0);
	clock_init(&fx->clock);
	assert_int_equal(cpu_create(&fx->bus, &fx->clock, &fx->cpu), 0);
	cpu_reset(fx->cpu, RAM_BASE);
	return fx;
}

static void fixture_free(struct fixture *fx)
{
	cpu_destroy(fx->cpu);
	free(fx->bus.ram);
	free(fx);
}

static void put_program(struct fixture *fx, uint64_t offset, const uint32_t *insns, size_t n)
{
	memcpy(fx->bus.ram + offset, insns, n * sizeof(*insns));
}

static void load_elf(struct fixture *fx)
{
	char err[256];
	uint64_t entry;
	if (elf_load(&fx->bus, elf_path, &entry, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	cpu_reset(fx->cpu, entry);
}

static const uint32_t irq_program[] = {
	I_AUIPC_T1_0, I_ADDI_T1_T1_0X100, I_CSRW_MTVEC_T1, I_LI_T0_0X80, I_CSRW_MIE_T0,
	I_LI_T0_8, I_CSRS_MSTATUS_T0, I_ADDI_A0_1, I_J_BACK_1,
};
#define IRQ_PROGRAM_SETUP 7  /* instructions before the counting loop */
#define HANDLER_OFFSET 0x100

static void test_exact_limit(void **state)
{
	struct fixture *fx = fixture_new();
	put_program(fx, 0, irq_program, ARRAY_SIZE(irq_program));
	assert_int_equal(cpu_run(fx->cpu, 1000), CPU_STOP_LIMIT);
	assert_int_equal(cpu_icount(fx->cpu), 1000);
	/* Each loop iteration is two instructions. */
	assert_int_equal(cpu_get_xreg(fx->cpu, REG_A0), (1000 - IRQ_PROGRAM_SETUP + 1) / 2);
	assert_int_equal(cpu_run(fx->cpu, 1000), CPU_STOP_LIMIT);
	assert_int_equal(cpu_icount(fx->cpu), 1000);
	for (icount_t i = 1001; i < 1010; i++) {
		assert_int_equal(cpu_run(fx->cpu, i), CPU_STOP_LIMIT);
		assert_int_equal(cpu_icount(fx->cpu), i);
	}
	fixture_free(fx);
}

static void test_interrupt_after_stop(void **state)
{
	struct fixture *fx = fixture_new();
	put_program(fx, 0, irq_program, ARRAY_SIZE(irq_program));
	uint32_t handler = I_J_SELF;
	put_program(fx, HANDLER_OFFSET, &handler, 1);
	assert_int_equal(cpu_run(fx->cpu, 20), CPU_STOP_LIMIT);
	uint64_t pc = cpu_get_pc(fx->cpu), digest = cpu_state_digest(fx->cpu);
	cpu_set_irq_line(fx->cpu, IRQ_M_TIMER, true);
	/* At the limit nothing happens: the interrupt pending at icount 20 is taken by the next run. */
	assert_int_equal(cpu_run(fx->cpu, 20), CPU_STOP_LIMIT);
	assert_int_equal(cpu_get_pc(fx->cpu), pc);
	assert_int_not_equal(cpu_state_digest(fx->cpu), digest); /* the line is state too */
	assert_int_equal(cpu_run(fx->cpu, 21), CPU_STOP_LIMIT);
	assert_int_equal(cpu_icount(fx->cpu), 21); /* taking it did not count; j . did */
	assert_int_equal(cpu_get_pc(fx->cpu), RAM_BASE + HANDLER_OFFSET);
	assert_int_equal(cpu_get_priv(fx->cpu), PRIV_M);
	struct cpu_stats st;
	cpu_get_stats(fx->cpu, &st);
	assert_int_equal(st.interrupts, 1);
	fixture_free(fx);
}

static void test_wfi(void **state)
{
	struct fixture *fx = fixture_new();
	const uint32_t prog[] = { I_LI_T0_0X80, I_CSRW_MIE_T0, I_WFI, I_ADDI_A0_1, I_J_SELF };
	put_program(fx, 0, prog, ARRAY_SIZE(prog));
	assert_int_equal(cpu_run(fx->cpu, 100), CPU_STOP_WFI);
	assert_int_equal(cpu_icount(fx->cpu), 3); /* WFI counted once */
	assert_true(cpu_is_waiting(fx->cpu));
	assert_int_equal(cpu_run(fx->cpu, 100), CPU_STOP_WFI);
	assert_int_equal(cpu_icount(fx->cpu), 3); /* waiting does not count */
	/* MTIP enabled in mie wakes the hart even with mstatus.MIE clear; no trap is taken. */
	cpu_set_irq_line(fx->cpu, IRQ_M_TIMER, true);
	assert_false(cpu_is_waiting(fx->cpu));
	assert_int_equal(cpu_run(fx->cpu, 5), CPU_STOP_LIMIT);
	assert_false(cpu_is_waiting(fx->cpu));
	assert_int_equal(cpu_get_xreg(fx->cpu, REG_A0), 1);
	assert_int_equal(cpu_get_pc(fx->cpu), RAM_BASE + 16);
	fixture_free(fx);
}

/* Regression: a read-modify-write of mip (OpenSBI's csrc mip, STIP) while the PLIC holds SEIP
 * must not latch the line into mip's software bits, or SEIP stays pending after the line drops. */
static void test_mip_rmw_does_not_latch_lines(void **state)
{
	struct fixture *fx = fixture_new();
	const uint32_t prog[] = { I_LI_T0_0X20, I_CSRC_MIP_T0, I_CSRR_A0_MIP, I_CSRR_A0_MIP };
	put_program(fx, 0, prog, ARRAY_SIZE(prog));
	cpu_set_irq_line(fx->cpu, IRQ_S_EXT, true);
	assert_int_equal(cpu_run(fx->cpu, 3), CPU_STOP_LIMIT);
	assert_true(cpu_get_xreg(fx->cpu, REG_A0) & MIP_SEIP); /* the line reads as pending */
	cpu_set_irq_line(fx->cpu, IRQ_S_EXT, false);
	assert_int_equal(cpu_run(fx->cpu, 4), CPU_STOP_LIMIT);
	assert_false(cpu_get_xreg(fx->cpu, REG_A0) & MIP_SEIP);
	fixture_free(fx);
}

static void test_request_stop(void **state)
{
	if (!elf_path)
		skip();
	struct fixture *fx = fixture_new();
	load_elf(fx);
	enum cpu_stop_reason why = cpu_run(fx->cpu, ICOUNT_MAX);
	assert_int_equal(why, CPU_STOP_REQUESTED);
	assert_true(fx->finished);
	assert_true(fx->out_len > 0);
	fixture_free(fx);
}

/*
 * A stop request is no state: a device's event raises a line and asks for a boundary at icount
 * N. The primary runs zero instructions (the request ends) and takes a CHECK at a second boundary
 * at N; its backup applies the same events and checks in one boundary, the request still up.
 * Their digests must agree, and a hart restored from a state saved with a request up runs on
 * unhindered, as one saved without.
 */
static void test_stop_request_is_not_state(void **state)
{
	struct fixture *primary = fixture_new(), *backup = fixture_new(), *restored = fixture_new();
	put_program(primary, 0, irq_program, ARRAY_SIZE(irq_program));
	put_program(backup, 0, irq_program, ARRAY_SIZE(irq_program));
	assert_int_equal(cpu_run(primary->cpu, 20), CPU_STOP_LIMIT);
	assert_int_equal(cpu_run(backup->cpu, 20), CPU_STOP_LIMIT);
	cpu_set_irq_line(primary->cpu, IRQ_M_TIMER, true);
	cpu_request_stop(primary->cpu);
	cpu_set_irq_line(backup->cpu, IRQ_M_TIMER, true);
	cpu_request_stop(backup->cpu);
	assert_int_equal(cpu_run(primary->cpu, 21), CPU_STOP_REQUESTED);
	assert_int_equal(cpu_icount(primary->cpu), 20); /* nothing ran */
	assert_int_equal(cpu_state_digest(primary->cpu), cpu_state_digest(backup->cpu));

	struct cpu_state s;
	char err[256];
	cpu_save(backup->cpu, &s);
	put_program(restored, 0, irq_program, ARRAY_SIZE(irq_program));
	assert_int_equal(cpu_restore(restored->cpu, &s, err, sizeof(err)), 0);
	assert_int_equal(cpu_state_digest(restored->cpu), cpu_state_digest(primary->cpu));
	assert_int_equal(cpu_run(restored->cpu, 30), CPU_STOP_LIMIT);
	assert_int_equal(cpu_run(primary->cpu, 30), CPU_STOP_LIMIT);
	assert_int_equal(cpu_state_digest(restored->cpu), cpu_state_digest(primary->cpu));
	fixture_free(primary);
	fixture_free(backup);
	fixture_free(restored);
}

/* The same program run straight and in odd slices ends in the same state and output. */
static void test_slicing_is_invisible(void **state)
{
	if (!elf_path)
		skip();
	struct fixture *a = fixture_new(), *b = fixture_new();
	load_elf(a);
	load_elf(b);
	while (!a->finished)
		cpu_run(a->cpu, ICOUNT_MAX);
	icount_t end = cpu_icount(a->cpu);
	uint32_t lcg = 12345;
	icount_t step_until = 5000; /* single-step the beginning, then random slices */
	while (cpu_icount(b->cpu) < end) {
		icount_t now = cpu_icount(b->cpu);
		lcg = lcg * 1103515245u + 12345u;
		icount_t slice = now < step_until ? 1 : 1 + (lcg >> 16) % 3000;
		cpu_run(b->cpu, MIN(now + slice, end));
	}
	assert_int_equal(cpu_icount(b->cpu), end);
	assert_true(b->finished);
	assert_int_equal(a->out_len, b->out_len);
	assert_memory_equal(a->out, b->out, a->out_len);
	assert_int_equal(cpu_state_digest(a->cpu), cpu_state_digest(b->cpu));
	assert_memory_equal(a->bus.ram, b->bus.ram, RAM_SIZE);
	/* And one more instruction makes the digests differ. */
	cpu_run(b->cpu, end + 1);
	assert_int_not_equal(cpu_state_digest(a->cpu), cpu_state_digest(b->cpu));
	fixture_free(a);
	fixture_free(b);
}

static void test_bad_guest_memory_is_a_trap(void **state)
{
	struct fixture *fx = fixture_new();
	/* Jump to an unmapped address with mtvec = 0 (also unmapped): the hart keeps taking fetch
	 * access faults, counting each, and the process does not crash. */
	cpu_reset(fx->cpu, 0x4000);
	assert_int_equal(cpu_run(fx->cpu, 50), CPU_STOP_LIMIT);
	assert_int_equal(cpu_icount(fx->cpu), 50);
	struct cpu_stats st;
	cpu_get_stats(fx->cpu, &st);
	assert_int_equal(st.exceptions, 50);
	fixture_free(fx);
}

int main(int argc, char **argv)
{
	elf_path = argc > 1 ? argv[1] : NULL;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_limit),
		cmocka_unit_test(test_interrupt_after_stop),
		cmocka_unit_test(test_wfi),
		cmocka_unit_test(test_mip_rmw_does_not_latch_lines),
		cmocka_unit_test(test_request_stop),
		cmocka_unit_test(test_stop_request_is_not_state),
		cmocka_unit_test(test_slicing_is_invisible),
		cmocka_unit_test(test_bad_guest_memory_is_a_trap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
