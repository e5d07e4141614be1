/*
 * test_state_refusals.c — machine_restore refuses every state no guest could have produced, with
 * a reason naming the part: a privilege level that does not exist, a clock anchored ahead of the
 * hart, a ready virtqueue of a size that is not a power of two or outside RAM, block requests with
 * repeated ids or buffers outside RAM, more received UART bytes than its buffer, PLIC priorities
 * beyond its levels, interrupt lines that disagree with the PLIC, a state of another
 * configuration. A state that is not tampered with restores (the control case).
 *
 * Usage: test_state_refusals BM_DIR (timer.elf; exits 77 when BM_DIR is "-").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm/machine.h"

static char elf[4096];

static struct machine_config config(uint64_t mem_mib)
{
	struct machine_config mc = { .kernel = elf, .mem_mib = mem_mib, .ndisks = 1, .disk_bytes = { 1 << 20 },
				     .nnics = 1, .rng = true };
	memcpy(mc.nic_mac[0], "\x52\x54\x00\x00\x00\x01", 6);
	return mc;
}

/* Saves a fresh machine, lets `tamper` change the state, restores it into another fresh machine
 * and returns the error message ("" when it was accepted). */
static const char *restore_tampered(void (*tamper)(struct machine_state *s), uint64_t mem_mib)
{
	static char err[256];
	struct machine_config mc = config(64), other = config(mem_mib);
	struct machine *a, *b;
	assert_int_equal(machine_create(&mc, &a, err, sizeof(err)), 0);
	assert_int_equal(machine_create(&other, &b, err, sizeof(err)), 0);
	struct machine_state *s = machine_state_alloc();
	assert_non_null(s);
	assert_int_equal(machine_save(a, s), 0);
	if (tamper)
		tamper(s);
	err[0] = 0;
	int ret = machine_restore(b, s, err, sizeof(err));
	assert_true(ret == 0 ? err[0] == 0 : ret == -EINVAL && err[0] != 0);
	machine_state_free(s);
	machine_destroy(a);
	machine_destroy(b);
	return err;
}

static void expect(void (*tamper)(struct machine_state *s), const char *reason)
{
	const char *err = restore_tampered(tamper, 64);
	if (!strstr(err, reason))
		fail_msg("expected a refusal naming \"%s\", got \"%s\"", reason, err);
}

/* The virtio state of a kind (states are in slot order: disk, NIC, RNG). */
static struct virtio_state *dev(struct machine_state *s, unsigned k)
{
	return s->virtio[k];
}

static void priv2(struct machine_state *s) { s->cpu.priv = 2; }
static void x0(struct machine_state *s) { s->cpu.x[0] = 1; }
static void satp_sv48(struct machine_state *s) { s->cpu.satp = 9ull << 60; }
static void clock_ahead(struct machine_state *s) { s->clock.anchor_icount = s->cpu.icount + 1; }
static void clock_still(struct machine_state *s) { s->clock.ticks_per_insn = 0; }
static void uart_overfull(struct machine_state *s) { s->uart.rx_count = UART_RX_BUFFER + 1; }
static void plic_priority(struct machine_state *s) { s->plic.priority[3] = 8; }
static void plic_line(struct machine_state *s) { s->plic.level[0] |= 1u << 10; }  /* the UART's source */
static void finisher_bad(struct machine_state *s) { s->finisher.action = 7; }
static void config_other(struct machine_state *s) { s->config_digest ^= 1; }
static void clint_msip(struct machine_state *s) { s->clint.msip = 2; }

static void queue_size(struct machine_state *s)
{
	dev(s, 0)->vq[0] = (struct virtio_queue_state){ .num = 12, .ready = true, .desc = 0x80000000,
							.driver = 0x80001000, .device = 0x80002000 };
}

static void queue_outside(struct machine_state *s)
{
	dev(s, 0)->vq[0] = (struct virtio_queue_state){ .num = 16, .ready = true, .desc = 0x10000000,
							.driver = 0x80001000, .device = 0x80002000 };
}

static void blk_requests(struct machine_state *s, uint64_t id2, uint64_t addr)
{
	struct virtio_blk_state *b = &dev(s, 0)->u.blk;
	b->next_id = 10;
	b->npending = 2;
	b->live = 2;
	for (unsigned i = 0; i < 2; i++)
		b->pending[i] = (struct virtio_blk_request_state){ .id = i ? id2 : 1, .op = VM_DISK_READ, .len = 512,
								   .in_len = 513, .nsegs = 1,
								   .segs = { { .addr = addr, .len = 513 } } };
}

static void blk_same_id(struct machine_state *s) { blk_requests(s, 1, 0x80100000); }
static void blk_outside(struct machine_state *s) { blk_requests(s, 2, 0x70000000); }
static void blk_good(struct machine_state *s) { blk_requests(s, 2, 0x80100000); }

static void rng_count(struct machine_state *s)
{
	dev(s, 2)->u.rng.count = 1;
	dev(s, 2)->u.rng.fifo[0] = (struct virtio_rng_buf_state){ .head = 3, .len = 16, .nsegs = 1,
								  .segs = { { .addr = 0xfffffffffffffff0ull, .len = 16 } } };
}

static void irq_lines(struct machine_state *s) { s->cpu.irq_lines |= 1ull << 1; }

static void test_refusals(void **state)
{
	assert_string_equal(restore_tampered(NULL, 64), "");
	assert_string_equal(restore_tampered(blk_good, 64), "");
	expect(priv2, "privilege level");
	expect(x0, "x0");
	expect(satp_sv48, "satp");
	expect(clock_ahead, "clock's anchor");
	expect(clock_still, "clock does not advance");
	expect(uart_overfull, "uart: more received bytes");
	expect(plic_priority, "plic: a source priority");
	expect(plic_line, "UART's interrupt line");
	expect(finisher_bad, "test finisher");
	expect(config_other, "another configuration");
	expect(clint_msip, "clint");
	expect(queue_size, "power of two");
	expect(queue_outside, "outside RAM");
	expect(blk_same_id, "ids not increasing");
	expect(blk_outside, "virtio-blk0: a buffer outside RAM");
	expect(rng_count, "virtio-rng0: a buffer outside RAM");
	expect(irq_lines, "interrupt lines no device drives");
	const char *err = restore_tampered(NULL, 128);
	if (!strstr(err, "another configuration"))
		fail_msg("a 128 MiB machine took a 64 MiB machine's state: \"%s\"", err);
}

int main(int argc, char **argv)
{
	if (argc != 2 || !strcmp(argv[1], "-"))
		return 77;
	snprintf(elf, sizeof(elf), "%s/timer.elf", argv[1]);
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_refusals) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
