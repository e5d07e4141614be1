/*
 * test_machine.c — the run loop through the machine API on a bare-metal program (timer.elf:
 * UART output, a CLINT timer interrupt out of WFI, poweroff) with the virtual-clock world:
 * machine_run stops at exactly the requested icount, two runs give equal digests at equal
 * icounts, stopping in more places does not change the outcome, the configuration digest
 * follows the configuration, and a run split between two worlds (the world is bound per
 * machine_run, as at FT go-live) sends each output to the world of its run and ends as one run;
 * machine_digests gives from one save exactly the two digests machine_digest gives apart.
 *
 * Usage: test_machine BM_DIR (exits 77 when BM_DIR is "-": no cross compiler).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/machine.h"
#include "host/world_live.h"

static char timer_elf[4096];

struct vm {
	struct world_live *w;
	struct machine *m;
	int out_fd;
};

static void vm_start(struct vm *vm, uint64_t mem_mib)
{
	char err[256];
	vm->out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct world_live_config wc = { .clock = WORLD_CLOCK_VIRTUAL, .console_in_fd = -1,
					.console_out_fd = vm->out_fd };
	assert_int_equal(world_live_create(&wc, &vm->w, err, sizeof(err)), 0);
	struct machine_config mc = { .kernel = timer_elf, .mem_mib = mem_mib, .rng = true };
	int ret = machine_create(&mc, &vm->m, err, sizeof(err));
	if (ret)
		fail_msg("machine_create: %s", err);
}

static void vm_stop(struct vm *vm)
{
	machine_destroy(vm->m);
	world_live_destroy(vm->w);
	close(vm->out_fd);
}

/* Runs to power-off, recording the digest at each stop; returns the final icount. */
static icount_t run_with_stops(struct vm *vm, const icount_t *stops, size_t n, uint64_t *digests)
{
	int status;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(machine_run(vm->m, world_live_world(vm->w), stops[i], &status), MACHINE_EXIT_STOP_ICOUNT);
		assert_int_equal(machine_icount(vm->m), stops[i]);
		digests[i] = machine_digest(vm->m, true);
	}
	assert_int_equal(machine_run(vm->m, world_live_world(vm->w), ICOUNT_MAX, &status), MACHINE_EXIT_POWEROFF);
	assert_int_equal(status, 0);
	/* Once powered off, it stays off. */
	assert_int_equal(machine_run(vm->m, world_live_world(vm->w), ICOUNT_MAX, &status), MACHINE_EXIT_POWEROFF);
	return machine_icount(vm->m);
}

static void test_exact_stops_and_determinism(void **state)
{
	static const icount_t stops[] = { 1, 2, 7, 40, 41, 100 };
	uint64_t d1[6], d2[6];
	struct vm a, b;
	vm_start(&a, 64);
	icount_t end_a = run_with_stops(&a, stops, 6, d1);
	uint64_t final_a = machine_digest(a.m, true);
	vm_stop(&a);

	vm_start(&b, 64);
	icount_t end_b = run_with_stops(&b, stops, 6, d2);
	uint64_t final_b = machine_digest(b.m, true);
	vm_stop(&b);
	assert_memory_equal(d1, d2, sizeof(d1));
	assert_int_equal(end_a, end_b);
	assert_int_equal(final_a, final_b);
	for (int i = 1; i < 6; i++)
		assert_int_not_equal(d1[i], d1[i - 1]);  /* the state moves as it runs */

	/* Without the intermediate stops the outcome is the same. */
	struct vm c;
	vm_start(&c, 64);
	icount_t end_c = run_with_stops(&c, NULL, 0, NULL);
	assert_int_equal(end_c, end_a);
	assert_int_equal(machine_digest(c.m, true), final_a);
	vm_stop(&c);
}

static void test_config_digest(void **state)
{
	struct vm a, b, c;
	vm_start(&a, 64);
	vm_start(&b, 64);
	vm_start(&c, 128);
	assert_int_equal(machine_config_digest(a.m), machine_config_digest(b.m));
	assert_int_not_equal(machine_config_digest(a.m), machine_config_digest(c.m));
	/* At power-on the memory differs too (the device tree states the RAM size). */
	assert_int_not_equal(machine_digest(a.m, true), machine_digest(c.m, true));
	vm_stop(&a);
	vm_stop(&b);
	vm_stop(&c);
}

/* Console output written to fd so far, as a string (timer.elf prints a few short lines). */
static size_t read_all(int fd, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);
	assert_true(n >= 0);
	buf[n] = 0;
	return (size_t)n;
}

static int temp_fd(void)
{
	char path[] = "/tmp/ftvm-test-machine-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static struct world_live *virtual_world(int out_fd)
{
	char err[256];
	struct world_live *w;
	struct world_live_config wc = { .clock = WORLD_CLOCK_VIRTUAL, .console_in_fd = -1, .console_out_fd = out_fd };
	if (world_live_create(&wc, &w, err, sizeof(err)))
		fail_msg("world_live_create: %s", err);
	return w;
}

static void test_world_per_run(void **state)
{
	char err[256], whole[4096], first[4096], second[4096];
	struct machine_config mc = { .kernel = timer_elf, .mem_mib = 64, .rng = true };
	struct machine *m;
	int status;

	/* One run, one world. */
	int fd = temp_fd();
	struct world_live *w = virtual_world(fd);
	assert_int_equal(machine_create(&mc, &m, err, sizeof(err)), 0);
	assert_int_equal(machine_run(m, world_live_world(w), ICOUNT_MAX, &status), MACHINE_EXIT_POWEROFF);
	icount_t end = machine_icount(m);
	uint64_t digest = machine_digest(m, true);
	machine_destroy(m);
	world_live_destroy(w);
	size_t n_whole = read_all(fd, whole, sizeof(whole));
	close(fd);
	assert_true(n_whole > 0);

	/* The same machine, its first half in world a, the rest in world b that takes over its clock. */
	int fd_a = temp_fd(), fd_b = temp_fd();
	struct world_live *a = virtual_world(fd_a), *b = virtual_world(fd_b);
	assert_int_equal(machine_create(&mc, &m, err, sizeof(err)), 0);
	assert_int_equal(machine_run(m, world_live_world(a), end / 2, &status), MACHINE_EXIT_STOP_ICOUNT);
	world_live_flush(a);
	world_live_take_clock(b, machine_icount(m), machine_clock(m));
	assert_int_equal(machine_run(m, world_live_world(b), ICOUNT_MAX, &status), MACHINE_EXIT_POWEROFF);
	assert_int_equal(status, 0);
	assert_int_equal(machine_icount(m), end);
	assert_int_equal(machine_digest(m, true), digest);
	machine_destroy(m);
	world_live_destroy(a);
	world_live_destroy(b);
	size_t n_first = read_all(fd_a, first, sizeof(first));
	size_t n_second = read_all(fd_b, second, sizeof(second));
	close(fd_a);
	close(fd_b);
	/* Each world got the output of its own run, nothing twice, nothing lost. */
	assert_true(n_first > 0);
	assert_true(n_second > 0);
	assert_int_equal(n_first + n_second, n_whole);
	assert_memory_equal(first, whole, n_first);
	assert_memory_equal(second, whole + n_first, n_second);
}

/* A CHECK takes both digests from one save: they must be exactly the two digests taken apart,
 * at power-on and at stops along the run (the log format depends on it). */
static void test_digests_one_save(void **state)
{
	struct vm vm;
	int status;
	vm_start(&vm, 64);
	enum machine_exit why = MACHINE_EXIT_STOP_ICOUNT;
	unsigned compared = 0;
	for (icount_t stop = 0; why == MACHINE_EXIT_STOP_ICOUNT; stop += 20, compared++) {
		if (stop)
			why = machine_run(vm.m, world_live_world(vm.w), stop, &status);
		uint64_t st, full, st_only = 0;
		machine_digests(vm.m, &st, &full);
		machine_digests(vm.m, &st_only, NULL);
		assert_int_equal(st, machine_digest(vm.m, false));
		assert_int_equal(full, machine_digest(vm.m, true));
		assert_int_equal(st_only, st);
		assert_int_not_equal(st, full);
	}
	assert_int_equal(why, MACHINE_EXIT_POWEROFF);
	assert_true(compared >= 3);
	vm_stop(&vm);
}

static void test_create_errors(void **state)
{
	char err[256];
	struct machine *m = (struct machine *)1;
	struct vm vm;
	vm_start(&vm, 64);
	struct machine_config mc = { .kernel = timer_elf, .mem_mib = 8 };
	assert_int_equal(machine_create(&mc, &m, err, sizeof(err)), -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err, "memory size 8 MiB out of range"));
	mc.mem_mib = 64;
	mc.ndisks = 5;
	assert_int_equal(machine_create(&mc, &m, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many devices"));
	mc.ndisks = 0;
	mc.kernel = NULL;
	assert_int_equal(machine_create(&mc, &m, err, sizeof(err)), -EINVAL);
	vm_stop(&vm);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s BM_DIR\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "-") == 0) {
		printf("SKIP: no bare-metal programs (no riscv64 cross compiler)\n");
		return 77;
	}
	snprintf(timer_elf, sizeof(timer_elf), "%s/timer.elf", argv[1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_stops_and_determinism),
		cmocka_unit_test(test_config_digest),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_world_per_run),
		cmocka_unit_test(test_digests_one_save),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
