/*
 * test_state_format.c — the state format (docs/state-format.md) through its encoder and decoder.
 *
 * - Round trips: bare-metal programs that drive each device (UART echo, CLINT timer, the hostile
 *   virtqueue program against virtio-blk/net/rng), stopped at pseudo-random icounts, encoded, decoded into a fresh machine: every part's digest and the
 *   whole machine's (RAM included) equal, and both machines then run on identically.
 * - Truncation at every byte offset of a state, and a flipped byte in the header and in every
 *   section: each refused with the byte offset and the section in the message.
 * - A state offered to another configuration is refused naming the difference (memory, disk,
 *   MAC, kernel).
 * - RAM: pages never touched stay untouched on the host after a restore (pagemap), touched pages
 *   of zeros are not written (the state's size does not change), boot images of the fresh machine
 *   are gone where the saved machine had zeros.
 * The bundled Linux guest goes through the format end to end in tests/replay (replay.snapshot).
 *
 * Usage: test_state_format BM_DIR HOSTILE_DIR (either may be "-": its cases skip).
 * FTVM_TEST_SEED picks the stops (default 5, printed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "script_world.h"
#include "util/ram_pages.h"
#include "vm/machine.h"
#include "vm/state_format.h"
#include "vm/state_io.h"

#define MIB (1024ull * 1024ull)
#define PAGE RAM_PAGE_SIZE

static const char *bm_dir, *hostile_dir;
static uint64_t seed;

/* ---- an in-memory sink and source ---- */

struct membuf {
	uint8_t *data;
	size_t len, cap, pos;
};

static int mem_write(void *ctx, const void *buf, size_t len)
{
	struct membuf *b = ctx;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, buf, len);
	b->len += len;
	return 0;
}

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct membuf *b = ctx;
	size_t n = b->len - b->pos < len ? b->len - b->pos : len;
	memcpy(buf, b->data + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

static void encode(const struct machine *m, struct membuf *out, struct state_stats *st)
{
	char err[512];
	memset(out, 0, sizeof(*out));
	if (state_encode(m, (struct state_sink){ .write = mem_write, .ctx = out }, NULL, st, err, sizeof(err)))
		fail_msg("state_encode: %s", err);
	assert_int_equal(st->bytes, out->len);
}

/* Decodes data[0..len) into m; returns the error (0 when accepted) and the message. */
static int decode(struct machine *m, const uint8_t *data, size_t len, char *err, size_t errlen)
{
	struct membuf in = { .data = (uint8_t *)data, .len = len };
	err[0] = 0;
	return state_decode(m, (struct state_source){ .read = mem_read, .ctx = &in }, NULL, NULL, err, errlen);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static bool have(const char *path)
{
	return access(path, R_OK) == 0;
}

static struct machine *create(const struct machine_config *mc)
{
	char err[256];
	struct machine *m;
	if (machine_create(mc, &m, err, sizeof(err)))
		fail_msg("machine_create: %s", err);
	return m;
}

/* ---- round trips ---- */

/* Each part's digest in a and b: equal, or the test names the part. */
static void compare_parts(const struct machine *a, const struct machine *b)
{
	struct machine_state *sa = machine_state_alloc(), *sb = machine_state_alloc();
	assert_non_null(sa);
	assert_non_null(sb);
	assert_int_equal(machine_save(a, sa), 0);
	assert_int_equal(machine_save(b, sb), 0);
	static const struct {
		const char *name;
		void (*walk)(struct state_io *io, void *state);
		size_t off;
	} parts[] = {
		{ "machine core", machine_core_state_io, 0 },
		{ "hart", cpu_state_io, offsetof(struct machine_state, cpu) },
		{ "CLINT", clint_state_io, offsetof(struct machine_state, clint) },
		{ "PLIC", plic_state_io, offsetof(struct machine_state, plic) },
		{ "UART", uart_state_io, offsetof(struct machine_state, uart) },
		{ "finisher", finisher_state_io, offsetof(struct machine_state, finisher) },
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (state_io_digest(parts[i].walk, (uint8_t *)sa + parts[i].off, 0) !=
		    state_io_digest(parts[i].walk, (uint8_t *)sb + parts[i].off, 0))
			fail_msg("%s differs after the round trip", parts[i].name);
	assert_int_equal(sa->nvirtio, sb->nvirtio);
	for (uint32_t i = 0; i < sa->nvirtio; i++)
		if (state_io_digest(virtio_state_io, sa->virtio[i], 0) != state_io_digest(virtio_state_io, sb->virtio[i], 0))
			fail_msg("virtio device %u (id %u) differs after the round trip", i, sa->virtio[i]->device_id);
	machine_state_free(sa);
	machine_state_free(sb);
}

struct program {
	const char *name;
	struct machine_config mc;
	char path[4096];
	icount_t span, max_continue, rx_every, console_every;
	unsigned stops;
};

static void round_trips(struct program *p)
{
	uint64_t s = seed ^ (uint64_t)strlen(p->name) * 0x9e3779b97f4a7c15ull;
	struct machine *a = create(&p->mc);
	struct script_world *wa = script_world_create(seed | 1, p->mc.ndisks, p->mc.disk_bytes, p->mc.nnics, p->rx_every,
						      p->console_every);
	assert_non_null(wa);
	unsigned compared = 0;
	for (unsigned k = 0; k < p->stops; k++) {
		icount_t stop = machine_icount(a) + 1 + rnd(&s) % (p->span / p->stops);
		int status;
		if (machine_run(a, script_world_world(wa), stop, &status) != MACHINE_EXIT_STOP_ICOUNT)
			break;
		struct membuf buf;
		struct state_stats st;
		char err[512];
		encode(a, &buf, &st);
		struct machine *b = create(&p->mc);
		if (decode(b, buf.data, buf.len, err, sizeof(err)))
			fail_msg("%s: decode at icount %llu: %s", p->name, (unsigned long long)stop, err);
		assert_int_equal(machine_icount(b), stop);
		compare_parts(a, b);
		if (machine_digest(a, true) != machine_digest(b, true))
			fail_msg("%s: machine digest differs after a round trip at icount %llu", p->name,
				 (unsigned long long)stop);
		struct script_world *wb = script_world_clone(wa);
		assert_non_null(wb);
		icount_t until = stop + 1 + rnd(&s) % p->max_continue;
		int sa, sb;
		enum machine_exit ea = machine_run(a, script_world_world(wa), until, &sa);
		enum machine_exit eb = machine_run(b, script_world_world(wb), until, &sb);
		assert_int_equal(ea, eb);
		assert_int_equal(sa, sb);
		if (machine_digest(a, true) != machine_digest(b, true))
			fail_msg("%s: restored at %llu, digests differ at %llu", p->name, (unsigned long long)stop,
				 (unsigned long long)machine_icount(a));
		assert_int_equal(wa->outputs, wb->outputs);
		printf("%s: round trip at icount %llu: %zu bytes (%llu pages written, %llu zero, %llu untouched), ran on to %llu identically\n",
		       p->name, (unsigned long long)stop, buf.len, (unsigned long long)st.ram_pages_written,
		       (unsigned long long)st.ram_pages_zero, (unsigned long long)st.ram_pages_untouched,
		       (unsigned long long)machine_icount(a));
		compared++;
		free(buf.data);
		machine_destroy(b);
		script_world_destroy(wb);
		if (ea != MACHINE_EXIT_STOP_ICOUNT)
			break;
	}
	assert_true(compared > 0);
	machine_destroy(a);
	script_world_destroy(wa);
}

static bool bare_metal(struct program *p, const char *dir, const char *elf, uint64_t mem_mib)
{
	if (!dir || !strcmp(dir, "-"))
		return false;
	snprintf(p->path, sizeof(p->path), "%s/%s", dir, elf);
	p->name = elf;
	p->mc.kernel = p->path;
	p->mc.mem_mib = mem_mib;
	return have(p->path);
}

static void test_round_trip_uart(void **state)
{
	struct program p = { .stops = 4, .span = 300000, .max_continue = 50000, .console_every = 4000 };
	if (!bare_metal(&p, bm_dir, "echo.elf", 64))
		skip();
	round_trips(&p);
}

static void test_round_trip_timer(void **state)
{
	struct program p = { .stops = 4, .span = 130, .max_continue = 10 };
	if (!bare_metal(&p, bm_dir, "timer.elf", 64))
		skip();
	p.mc.rng = true;
	round_trips(&p);
}

static void test_round_trip_virtio(void **state)
{
	struct program p = { .stops = 8, .span = 780000, .max_continue = 20000, .rx_every = 20000 };
	if (!bare_metal(&p, hostile_dir, "virtq.elf", 64))
		skip();
	p.mc.ndisks = 1;
	p.mc.disk_bytes[0] = 1 * MIB;
	p.mc.nnics = 1;
	memcpy(p.mc.nic_mac[0], "\x52\x54\x00\x12\x34\x56", 6);
	p.mc.rng = true;
	round_trips(&p);
}

/* ---- refusals ---- */

static struct machine_config small_config(const char *elf, uint64_t mem_mib)
{
	struct machine_config mc = { .kernel = elf, .mem_mib = mem_mib, .ndisks = 1, .disk_bytes = { 1 * MIB },
				     .nnics = 1, .rng = true };
	memcpy(mc.nic_mac[0], "\x52\x54\x00\x00\x00\x01", 6);
	return mc;
}

/* A small state with requests and RAM: virtq.elf run a while (falls back to echo.elf). */
static bool small_state(struct program *p, struct membuf *buf)
{
	if (!bare_metal(p, hostile_dir, "virtq.elf", 16) && !bare_metal(p, bm_dir, "echo.elf", 16))
		return false;
	p->mc = small_config(p->path, 16);
	struct machine *a = create(&p->mc);
	struct script_world *w = script_world_create(3, 1, p->mc.disk_bytes, 1, 20000, 0);
	assert_non_null(w);
	int status;
	assert_int_equal(machine_run(a, script_world_world(w), 150000, &status), MACHINE_EXIT_STOP_ICOUNT);
	struct state_stats st;
	encode(a, buf, &st);
	machine_destroy(a);
	script_world_destroy(w);
	return true;
}

struct section {
	uint32_t type;
	size_t start, len;   /* len: the whole section, head and CRC included */
};

static unsigned sections_of(const struct membuf *buf, struct section *out, unsigned max)
{
	unsigned n = 0;
	for (size_t off = STATE_HEADER_SIZE; off + STATE_SECTION_HEAD <= buf->len && n < max;) {
		const uint8_t *p = buf->data + off;
		uint32_t len = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
		out[n++] = (struct section){ .type = p[0], .start = off, .len = STATE_SECTION_HEAD + len + STATE_SECTION_TAIL };
		off += STATE_SECTION_HEAD + len + STATE_SECTION_TAIL;
	}
	return n;
}

/* The section holding byte `off`, as the decoder names it. */
static void where(const struct section *s, unsigned n, size_t off, char *name, size_t len, size_t *start)
{
	for (unsigned i = 0; i < n; i++) {
		if (off >= s[i].start && off < s[i].start + s[i].len) {
			snprintf(name, len, "section %s", state_section_name(s[i].type));
			*start = s[i].start;
			return;
		}
	}
	snprintf(name, len, "header");
	*start = 0;
}

static void test_truncations(void **state)
{
	struct program p = { 0 };
	struct membuf buf;
	struct section secs[512];
	if (!small_state(&p, &buf))
		skip();
	unsigned n = sections_of(&buf, secs, 512);
	assert_int_equal(secs[n - 1].type, STATE_SEC_END);
	assert_int_equal(secs[n - 1].start + secs[n - 1].len, buf.len);
	struct machine *b = create(&p.mc);
	char err[512], want[160], name[64];
	for (size_t cut = 0; cut < buf.len; cut++) {
		size_t start;
		int ret = decode(b, buf.data, cut, err, sizeof(err));
		if (ret != -EBADMSG)
			fail_msg("truncated at %zu: returned %d (%s)", cut, ret, err);
		bool boundary = cut == STATE_HEADER_SIZE;
		for (unsigned i = 0; i < n && !boundary; i++)
			boundary = cut == secs[i].start;
		if (boundary) {
			snprintf(want, sizeof(want), "truncated at byte %zu: the state ends without an END section", cut);
		} else {
			where(secs, n, cut, name, sizeof(name), &start);
			if (!strcmp(name, "header"))
				snprintf(want, sizeof(want), "truncated at byte %zu in the header", cut);
			else if (cut - start < STATE_SECTION_HEAD)
				snprintf(want, sizeof(want), "truncated at byte %zu in a section header (starts at byte %zu)",
					 cut, start);
			else
				snprintf(want, sizeof(want), "truncated at byte %zu in %s (starts at byte %zu)", cut, name, start);
		}
		if (!strstr(err, want))
			fail_msg("truncated at %zu: got \"%s\", want \"%s\"", cut, err, want);
	}
	machine_destroy(b);
	/* The whole state still restores into a fresh machine (the control case). */
	b = create(&p.mc);
	if (decode(b, buf.data, buf.len, err, sizeof(err)))
		fail_msg("untruncated state refused: %s", err);
	printf("%zu truncations of a %zu-byte state (%u sections) refused with offset and section\n", buf.len, buf.len, n);
	machine_destroy(b);
	free(buf.data);
}

static void test_flips(void **state)
{
	struct program p = { 0 };
	struct membuf buf;
	struct section secs[512];
	char err[512], want[128];
	if (!small_state(&p, &buf))
		skip();
	unsigned n = sections_of(&buf, secs, 512);
	struct machine *b = create(&p.mc);
	/* The header: magic, version, CRC. */
	for (size_t off = 0; off < STATE_HEADER_SIZE; off++) {
		buf.data[off] ^= 0x10;
		assert_int_equal(decode(b, buf.data, buf.len, err, sizeof(err)), -EBADMSG);
		if (!strstr(err, "header"))
			fail_msg("header byte %zu flipped: \"%s\" does not name the header", off, err);
		buf.data[off] ^= 0x10;
	}
	/* In every section: a payload byte (middle), a length byte, the CRC. */
	for (unsigned i = 0; i < n; i++) {
		size_t payload = secs[i].len - STATE_SECTION_HEAD - STATE_SECTION_TAIL;
		size_t offs[3] = { secs[i].start + STATE_SECTION_HEAD + payload / 2, secs[i].start + 4,
				   secs[i].start + secs[i].len - 1 };
		for (unsigned k = 0; k < 3; k++) {
			if (k == 0 && payload == 0)
				continue;
			buf.data[offs[k]] ^= 0x01;
			int ret = decode(b, buf.data, buf.len, err, sizeof(err));
			buf.data[offs[k]] ^= 0x01;
			snprintf(want, sizeof(want), "section %s at byte %zu", state_section_name(secs[i].type), secs[i].start);
			if (k == 1) /* a changed length may run past the end or above the cap instead */
				snprintf(want, sizeof(want), "%s", state_section_name(secs[i].type));
			if (ret != -EBADMSG || !strstr(err, want))
				fail_msg("byte %zu of section %s at %zu flipped: %d \"%s\", want \"%s\"", offs[k],
					 state_section_name(secs[i].type), secs[i].start, ret, err, want);
		}
	}
	printf("flips in the header and in all %u sections refused\n", n);
	machine_destroy(b);
	free(buf.data);
}

static void expect_foreign(const struct membuf *buf, const struct machine_config *mc, const char *want)
{
	char err[512];
	struct machine *b = create(mc);
	int ret = decode(b, buf->data, buf->len, err, sizeof(err));
	if (ret != -EINVAL || !strstr(err, want) || !strstr(err, "section CONFIG at byte 16"))
		fail_msg("foreign configuration: %d \"%s\", want \"%s\"", ret, err, want);
	printf("refused: %s\n", err);
	machine_destroy(b);
}

static void test_foreign(void **state)
{
	struct program p = { 0 };
	struct membuf buf;
	if (!small_state(&p, &buf))
		skip();
	struct machine_config mc = p.mc;
	mc.mem_mib = 32;
	expect_foreign(&buf, &mc, "memory 32 MiB here, 16 MiB in the state");
	mc = p.mc;
	mc.disk_bytes[0] = 2 * MIB;
	expect_foreign(&buf, &mc, "disk 0: 2 MiB here, 1 MiB in the state");
	mc = p.mc;
	mc.nic_mac[0][5] = 2;
	expect_foreign(&buf, &mc, "NIC 0: MAC 52:54:00:00:00:02 here, 52:54:00:00:00:01 in the state");
	mc = p.mc;
	mc.rng = false;
	expect_foreign(&buf, &mc, "virtio-rng absent here, attached in the state");
	char other[4096];
	snprintf(other, sizeof(other), "%s/echo.elf", bm_dir);
	if (strcmp(other, p.path) && have(other)) {
		mc = small_config(other, 16);
		expect_foreign(&buf, &mc, "kernel: another image");
	}
	free(buf.data);
}

/* ---- RAM ---- */

static void test_ram_pages(void **state)
{
	struct program p = { 0 };
	char err[512];
	if (!bare_metal(&p, bm_dir, "echo.elf", 64))
		skip();
	struct machine *a = create(&p.mc);
	size_t size;
	uint8_t *ram = machine_ram(a, &size);
	/* The fresh machine's first RAM page holds the program: the saved machine has zeros there. */
	assert_true(ram_page_touched(ram));
	memset(ram, 0, PAGE);
	size_t data_page = size / PAGE / 2, zero_page = data_page + 10, untouched = data_page + 20;
	memset(ram + data_page * PAGE, 0x5a, PAGE);
	struct membuf before, after;
	struct state_stats st1, st2;
	encode(a, &before, &st1);
	memset(ram + zero_page * PAGE, 0, PAGE);  /* touched now, still zero */
	assert_true(ram_page_touched(ram + zero_page * PAGE));
	assert_false(ram_page_touched(ram + untouched * PAGE));
	encode(a, &after, &st2);
	assert_int_equal(after.len, before.len);
	assert_int_equal(st2.ram_pages_zero, st1.ram_pages_zero + 1);
	assert_int_equal(st2.ram_pages_written, st1.ram_pages_written);
	assert_true(st2.ram_pages_written * PAGE < after.len);
	assert_true(after.len < (st2.ram_pages_written + 1) * PAGE + 64 * 1024);

	struct machine *b = create(&p.mc);
	uint8_t *bram = machine_ram(b, &size);
	assert_true(ram_page_touched(bram));
	if (decode(b, after.data, after.len, err, sizeof(err)))
		fail_msg("decode: %s", err);
	assert_int_equal(machine_digest(b, true), machine_digest(a, true));
	assert_false(ram_page_touched(bram));                     /* the program's page: zeros in the state */
	assert_false(ram_page_touched(bram + zero_page * PAGE));  /* zeros: not written */
	assert_false(ram_page_touched(bram + untouched * PAGE));
	assert_true(ram_page_touched(bram + data_page * PAGE));
	assert_int_equal(bram[data_page * PAGE + 7], 0x5a);
	size_t touched = 0;
	for (size_t i = 0; i < size / PAGE; i++)
		touched += ram_page_touched(bram + i * PAGE);
	assert_int_equal(touched, st2.ram_pages_written);
	printf("RAM: %zu of %zu pages written (%llu zero, %llu untouched skipped), state %zu bytes; restored machine backs exactly those\n",
	       (size_t)st2.ram_pages_written, size / PAGE, (unsigned long long)st2.ram_pages_zero,
	       (unsigned long long)st2.ram_pages_untouched, after.len);
	machine_destroy(a);
	machine_destroy(b);
	free(before.data);
	free(after.data);
}

static long minor_faults(void)
{
	struct rusage ru;
	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_minflt;
}

/*
 * A restore faults in the RAM it writes and its scratch state, not the hart's decode cache: a
 * migration's destination restores into a hart that never ran, and each page first touched costs
 * ~40 us on these hosts (the decode cache spans 513 pages). A machine that ran before the restore runs on identically.
 */
static void test_restore_faults(void **state)
{
	struct program p = { .console_every = 4000 };
	char err[512];
	if (!bare_metal(&p, bm_dir, "echo.elf", 64))
		skip();
	struct machine *a = create(&p.mc), *c = create(&p.mc);
	struct script_world *wa = script_world_create(seed | 1, p.mc.ndisks, p.mc.disk_bytes, p.mc.nnics, p.rx_every,
						      p.console_every);
	assert_non_null(wa);
	struct script_world *wc = script_world_clone(wa);
	assert_non_null(wc);
	int status;
	icount_t stop = 200000;
	assert_int_equal(machine_run(c, script_world_world(wc), stop / 2, &status), MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(machine_run(a, script_world_world(wa), stop, &status), MACHINE_EXIT_STOP_ICOUNT);
	struct membuf buf;
	struct state_stats st;
	encode(a, &buf, &st);

	struct machine *b = create(&p.mc);
	long before = minor_faults();
	if (decode(b, buf.data, buf.len, err, sizeof(err)))
		fail_msg("decode: %s", err);
	long faults = minor_faults() - before;
	printf("restore into a fresh machine: %ld page faults for %llu RAM pages written\n", faults,
	       (unsigned long long)st.ram_pages_written);
	/* About 270 go to the decoder's scratch state (eight 2 MiB virtio states, partly touched); the
	 * decode cache's 513 would come on top if a restore touched its slots. */
	assert_true(faults < (long)st.ram_pages_written + 400);

	if (decode(c, buf.data, buf.len, err, sizeof(err)))
		fail_msg("decode into a machine that ran: %s", err);
	script_world_destroy(wc);
	wc = script_world_clone(wa);
	assert_non_null(wc);
	int sa, sc;
	assert_int_equal(machine_run(a, script_world_world(wa), 2 * stop, &sa),
			 machine_run(c, script_world_world(wc), 2 * stop, &sc));
	assert_int_equal(sa, sc);
	assert_int_equal(machine_digest(a, true), machine_digest(c, true));
	machine_destroy(a);
	machine_destroy(b);
	machine_destroy(c);
	script_world_destroy(wa);
	script_world_destroy(wc);
	free(buf.data);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s BM_DIR HOSTILE_DIR\n", argv[0]);
		return 2;
	}
	bm_dir = argv[1];
	hostile_dir = argv[2];
	const char *env = getenv("FTVM_TEST_SEED");
	seed = env ? strtoull(env, NULL, 0) : 5;
	printf("FTVM_TEST_SEED=%llu\n", (unsigned long long)seed);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_uart),
		cmocka_unit_test(test_round_trip_timer),
		cmocka_unit_test(test_round_trip_virtio),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_flips),
		cmocka_unit_test(test_foreign),
		cmocka_unit_test(test_ram_pages),
		cmocka_unit_test(test_restore_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
