/*
 * test_disk_stream.c — the STORAGE part of the migration stream (docs/migration.md: DISKS,
 * BLOCKS) through the destination's decoder, driven with streams built here: a whole stream with
 * data and ZERO ranges lands byte for byte in the replica, which is synced before COMPLETE is
 * confirmed; every malformed or unwanted piece is refused with the fault named and the replica
 * left alone past it; a destination that must, may or must not take disks says so before any
 * page. A resync (START flag RESYNC, DIGEST sections) lands its data and compares its digests;
 * one whose block differs, of another pairing, or to a destination taking only full copies is
 * refused, as are digests outside a resync; a replica that notes differing blocks gets its
 * verdict once round 0 is over, before round 1 is applied, and the source's parser of the repair
 * list it names takes only well-formed lists inside the disks. START's ARBITER flag and node field, and HANDOVER's
 * epoch against START's, are decoded by destinations with and without an arbiter area
 * (docs/migration.md, "The hand-over with an arbiter"). The board is the decoders' fuzz board
 * (tests/lib/fuzz_board.h): 16 MiB, a 1 MiB disk.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/arbiter.h"
#include "fuzz_board.h"
#include "migrate/mig_disks.h"
#include "migrate/mig_stream.h"
#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/disk_digest.h"
#include "vm/state_format.h"

#define DISK_BYTES (1u << 20)
#define MAX_MSGS 64

static struct machine_config config;

/* ---- a stream being built, and the decoder's source over it ---- */

struct stream {
	uint8_t *msg[MAX_MSGS];
	size_t len[MAX_MSGS];
	size_t n, next, confirmed;
};

static uint8_t body[MIG_MAX_MESSAGE];

static void put(struct stream *s, unsigned kind, uint32_t round, size_t len)
{
	assert_true(s->n < MAX_MSGS);
	s->msg[s->n] = malloc(MIG_HDR_SIZE + len);
	assert_non_null(s->msg[s->n]);
	mig_hdr_encode(s->msg[s->n], kind, round, (uint32_t)len);
	memcpy(s->msg[s->n] + MIG_HDR_SIZE, body, len);
	s->len[s->n++] = MIG_HDR_SIZE + len;
}

static void stream_free(struct stream *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->msg[i]);
}

static int src_next(void *ctx, const uint8_t **buf, size_t *len, char *why, size_t whylen)
{
	struct stream *s = ctx;
	if (s->next == s->n) {
		snprintf(why, whylen, "the source closed the channel");
		return -EPIPE;
	}
	*buf = s->msg[s->next];
	*len = s->len[s->next++];
	return 0;
}

static void src_confirm(void *ctx)
{
	((struct stream *)ctx)->confirmed++;
}

static const struct mig_source_ops src_ops = { .next = src_next, .confirm = src_confirm };

/* ---- the replica ---- */

struct replica {
	uint8_t bytes[DISK_BYTES];
	uint64_t size;          /* what this host has */
	unsigned writes, syncs, checks;
	bool spare;             /* takes FT clones (and so resyncs) */
	bool full_only;         /* has no resync or check */
	size_t confirmed_at_sync; /* the source's confirmations when sync came */
	bool noting;            /* notes differing blocks, judged when round 0 ends (noting_ops) */
	unsigned differing;
	size_t compared_at;     /* the messages taken when compared() came (0: never) */
	struct stream *s;
};

static int rep_begin(void *ctx, unsigned ndisks, const uint64_t *sizes, char *why, size_t whylen)
{
	struct replica *r = ctx;
	if (ndisks != 1 || sizes[0] > r->size) {
		snprintf(why, whylen, "disk 0: this host's replica holds %llu bytes, less than the source's %llu",
			 (unsigned long long)r->size, (unsigned long long)sizes[0]);
		return -EINVAL;
	}
	return 0;
}

static int rep_write(void *ctx, unsigned disk, uint64_t off, const uint8_t *data, uint64_t len, char *why,
		     size_t whylen)
{
	struct replica *r = ctx;
	(void)why, (void)whylen;
	assert_int_equal(disk, 0);
	assert_true(off <= r->size && len <= r->size - off);
	if (data)
		memcpy(r->bytes + off, data, len);
	else
		memset(r->bytes + off, 0, len);
	r->writes++;
	return 0;
}

static int rep_sync(void *ctx, char *why, size_t whylen)
{
	struct replica *r = ctx;
	(void)why, (void)whylen;
	r->syncs++;
	r->confirmed_at_sync = r->s->confirmed;
	return 0;
}

/* A spare's replica that dates from pairing 9: a resync from there is taken, its digests compared. */
static int rep_resync(void *ctx, uint64_t epoch, char *why, size_t whylen)
{
	(void)ctx;
	if (epoch == 9)
		return 0;
	snprintf(why, whylen, "resync refused: pairing mark of epoch 9, not %llu", (unsigned long long)epoch);
	return -EINVAL;
}

static int rep_check(void *ctx, unsigned disk, uint64_t off, uint64_t len, uint64_t lo, uint64_t hi, char *why,
		     size_t whylen)
{
	struct replica *r = ctx;
	uint64_t mlo, mhi;
	assert_int_equal(disk, 0);
	assert_true(off <= r->size && len <= r->size - off);
	disk_digest_range(r->bytes + off, (size_t)len, &mlo, &mhi);
	r->checks++;
	if (mlo == lo && mhi == hi)
		return 0;
	snprintf(why, whylen, "resync refused: differs at %llu", (unsigned long long)off);
	return -EINVAL;
}

/* A replica that notes differing blocks instead of refusing, and names them when round 0 ends. */
static int rep_check_noting(void *ctx, unsigned disk, uint64_t off, uint64_t len, uint64_t lo, uint64_t hi,
			    char *why, size_t whylen)
{
	struct replica *r = ctx;
	if (rep_check(ctx, disk, off, len, lo, hi, why, whylen))
		r->differing++;
	return 0;
}

static int rep_compared(void *ctx, char *why, size_t whylen)
{
	struct replica *r = ctx;
	r->compared_at = r->s->next;
	if (!r->differing)
		return 0;
	snprintf(why, whylen, "resync refused: %u block(s) differ; repair=0:2.", r->differing);
	return -EINVAL;
}

static const struct mig_disk_ops noting_ops = { .begin = rep_begin, .write = rep_write, .sync = rep_sync,
						.resync = rep_resync, .check = rep_check_noting,
						.compared = rep_compared };

static const struct mig_disk_ops rep_ops = { .begin = rep_begin, .write = rep_write, .sync = rep_sync,
					     .resync = rep_resync, .check = rep_check };
static const struct mig_disk_ops full_only_ops = { .begin = rep_begin, .write = rep_write, .sync = rep_sync };

/* ---- building the pieces ---- */

/* The arbiter area the ARBITER streams name. */
static const uint8_t area_id[ARBITER_AREA_ID_LEN] = { 0xa5, 1, 2, 3 };

static void start(struct stream *s, struct machine *m, uint32_t flags)
{
	size_t ram, at = MIG_START_FIXED;
	(void)machine_ram_const(m, &ram);
	memset(body, 0, MIG_START_FIXED);
	put_le64(body + 8, ram);
	put_le32(body + 16, flags);
	if (flags & MIG_FLAG_ARBITER) {
		memcpy(body + at, area_id, sizeof(area_id));
		at += sizeof(area_id);
	}
	int n = state_config_section(m, body + at, sizeof(body) - at);
	assert_true(n > 0);
	put(s, MIG_START, 0, at + (size_t)n);
}

static void disks(struct stream *s, uint32_t count, uint64_t size)
{
	put_le32(body, count);
	put_le32(body + 4, 0);
	put_le64(body + 8, size);
	put_le32(body + 16, crc32c(0, body, 16));
	put(s, MIG_DISKS, 0, 20);
}

/* DISKS of a resync: one disk, then the pairing epoch. */
static void resync_disks(struct stream *s, uint64_t epoch)
{
	put_le32(body, 1);
	put_le32(body + 4, 0);
	put_le64(body + 8, DISK_BYTES);
	put_le64(body + 16, epoch);
	put_le32(body + 24, crc32c(0, body, 24));
	put(s, MIG_DISKS, 0, 28);
}

/* A DIGEST section at out for [off, off + len) holding the given byte everywhere. */
static size_t digest_section(uint8_t *out, uint64_t off, uint32_t len, uint8_t byte)
{
	uint8_t *tmp = malloc(len);
	uint64_t lo, hi;
	assert_non_null(tmp);
	memset(tmp, byte, len);
	disk_digest_range(tmp, len, &lo, &hi);
	free(tmp);
	put_le64(out + MIG_DISK_HDR_SIZE, lo);
	put_le64(out + MIG_DISK_HDR_SIZE + 8, hi);
	return mig_disk_section_build(out, 0, MIG_DISK_DIGEST, off, len);
}

/* The final state (no pages), COMPLETE and HANDOVER. */
static uint8_t state_buf[1 << 20];
static size_t state_len;

static int state_sink(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	assert_true(state_len + len <= sizeof(state_buf));
	memcpy(state_buf + state_len, buf, len);
	state_len += len;
	return 0;
}

static void finish(struct stream *s, struct machine *m)
{
	uint64_t *none = calloc(machine_dirty_words(m), sizeof(*none));
	struct state_stats st;
	char err[256];
	assert_non_null(none);
	state_len = 0;
	assert_int_equal(state_encode_pages(m, (struct state_sink){ .write = state_sink }, none, NULL, &st, err, sizeof(err)), 0);
	free(none);
	memcpy(body, state_buf, state_len);
	put(s, MIG_STATE, 1, state_len);
	put_le64(body, st.bytes);
	put_le64(body + 8, 1);
	put(s, MIG_COMPLETE, 1, MIG_COMPLETE_SIZE);
	put_le64(body, 5);
	put(s, MIG_HANDOVER, 1, MIG_HANDOVER_SIZE);
}

static int decode(struct machine *m, struct stream *s, struct replica *r, enum mig_storage storage,
		  const uint8_t *arbiter_id, struct mig_dest_result *res, char *err, size_t errlen)
{
	struct mig_dest_want want = { .clone = r->spare, .storage = storage, .arbiter_id = arbiter_id,
				      .disk = r->full_only ? &full_only_ops : r->noting ? &noting_ops : &rep_ops,
				      .disk_ctx = r };
	r->s = s;
	return mig_dest_decode_want(m, &want, &src_ops, s, res, err, errlen);
}

/* ---- tests ---- */

/* One decode: a destination machine, its replica (holding 0xee: whatever it held before), the
 * stream, and what came of it. */
struct run {
	struct machine *m;
	struct replica *r;
	struct stream s;
	struct mig_dest_result res;
	char err[512];
};

static void run_begin(struct run *t, uint64_t have, bool spare)
{
	memset(t, 0, sizeof(*t));
	t->m = fuzz_board_create("test_disk_stream", &config);
	t->r = calloc(1, sizeof(*t->r));
	assert_non_null(t->r);
	t->r->size = have;
	t->r->spare = spare;
	memset(t->r->bytes, 0xee, sizeof(t->r->bytes));
}

static int run_decode(struct run *t, enum mig_storage storage)
{
	return decode(t->m, &t->s, t->r, storage, NULL, &t->res, t->err, sizeof(t->err));
}

static void run_end(struct run *t)
{
	stream_free(&t->s);
	free(t->r);
	machine_destroy(t->m);
}

static void whole_stream(void **state)
{
	(void)state;
	struct machine *src = fuzz_board_create("test_disk_stream", &config);
	struct run t;
	run_begin(&t, DISK_BYTES, false);
	struct stream *s = &t.s;
	struct replica *r = t.r;
	start(s, src, MIG_FLAG_STORAGE);
	disks(s, 1, DISK_BYTES);
	/* round 0: a data block, a zero range over the rest */
	memset(body + MIG_DISK_HDR_SIZE, 0x11, 65536);
	size_t n = mig_disk_section_build(body, 0, 0, 0, 65536);
	n += mig_disk_section_build(body + n, 0, MIG_DISK_ZERO, 65536, DISK_BYTES - 65536);
	put(s, MIG_BLOCKS, 0, n);
	/* round 1: one block written again */
	memset(body + MIG_DISK_HDR_SIZE, 0x22, 4096);
	put(s, MIG_BLOCKS, 1, mig_disk_section_build(body, 0, 0, 8192, 4096));
	finish(s, src);
	assert_int_equal(run_decode(&t, MIG_STORAGE_EITHER), 0);
	assert_int_equal(t.res.phase, MIG_PHASE_RUN);
	assert_true(t.res.storage);
	assert_int_equal(t.res.disk_bytes, DISK_BYTES + 4096);
	for (size_t i = 0; i < DISK_BYTES; i++) {
		uint8_t want = i < 8192 || (i >= 12288 && i < 65536) ? 0x11 : i < 12288 ? 0x22 : 0;
		if (r->bytes[i] != want)
			fail_msg("replica byte %zu is 0x%02x, want 0x%02x", i, r->bytes[i], want);
	}
	/* synced once, before COMPLETE's confirmation (START, DISKS, 2 BLOCKS confirmed then) */
	assert_int_equal(r->syncs, 1);
	assert_int_equal(r->confirmed_at_sync, 4);
	run_end(&t);
	machine_destroy(src);
}

/* A resync: the written block as data, the others as digests of what the replica holds. */
static void resync_stream(void **state)
{
	(void)state;
	struct machine *src = fuzz_board_create("test_disk_stream", &config);
	struct run t;
	run_begin(&t, DISK_BYTES, true);
	struct replica *r = t.r;
	start(&t.s, src, MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC);
	resync_disks(&t.s, 9);
	memset(body + MIG_DISK_HDR_SIZE, 0x33, 65536);
	size_t n = mig_disk_section_build(body, 0, 0, 0, 65536);
	for (uint64_t off = 65536; off < DISK_BYTES; off += 65536)
		n += digest_section(body + n, off, 65536, 0xee);
	put(&t.s, MIG_BLOCKS, 0, n);
	finish(&t.s, src);
	assert_int_equal(run_decode(&t, MIG_STORAGE_NEEDED), 0);
	assert_int_equal(t.res.phase, MIG_PHASE_RUN);
	assert_true(t.res.resync);
	assert_int_equal(t.res.resync_epoch, 9);
	assert_int_equal(t.res.disk_bytes, 65536);
	assert_int_equal(t.res.disk_checked, DISK_BYTES - 65536);
	assert_int_equal(r->checks, DISK_BYTES / 65536 - 1);
	for (size_t i = 0; i < DISK_BYTES; i++)
		if (r->bytes[i] != (i < 65536 ? 0x33 : 0xee))
			fail_msg("replica byte %zu is 0x%02x", i, r->bytes[i]);
	assert_int_equal(r->syncs, 1);
	run_end(&t);
	machine_destroy(src);
}

/* Resyncs refused: a block that differs (named), a replica of another pairing, a destination that
 * takes only full copies; and the malformed ones. */
static void resync_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		uint32_t flags;
		int ret;
		const char *want_err;
	} cases[] = {
		{ "differs", MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC, -EINVAL, "differs at 131072" },
		{ "other pairing", MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC, -EINVAL, "not 8" },
		{ "full only", MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC, -EINVAL, "only full copies" },
		{ "not a clone", MIG_FLAG_STORAGE | MIG_FLAG_RESYNC, -EBADMSG, "RESYNC without CLONE and STORAGE" },
		{ "digest in a full copy", MIG_FLAG_CLONE | MIG_FLAG_STORAGE, -EBADMSG, "not a resync" },
	};
	struct machine *src = fuzz_board_create("test_disk_stream", &config);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run t;
		run_begin(&t, DISK_BYTES, cases[i].flags & MIG_FLAG_CLONE);
		t.r->full_only = !strcmp(cases[i].name, "full only");
		start(&t.s, src, cases[i].flags);
		if (cases[i].flags & MIG_FLAG_RESYNC)
			resync_disks(&t.s, strcmp(cases[i].name, "other pairing") ? 9 : 8);
		else
			disks(&t.s, 1, DISK_BYTES);
		size_t n = digest_section(body, 65536, 65536, 0xee);
		n += digest_section(body + n, 131072, 65536, 0xaa);
		put(&t.s, MIG_BLOCKS, 0, n);
		finish(&t.s, src);
		int ret = run_decode(&t, MIG_STORAGE_NEEDED);
		printf("%-24s %d: %s\n", cases[i].name, ret, t.err);
		if (ret != cases[i].ret || !strstr(t.err, cases[i].want_err))
			fail_msg("%s: %d \"%s\", want %d with \"%s\"", cases[i].name, ret, t.err, cases[i].ret,
				 cases[i].want_err);
		assert_int_not_equal(t.res.phase, MIG_PHASE_RUN);
		assert_int_equal(t.r->writes, 0);
		assert_int_equal(t.r->syncs, 0);
		run_end(&t);
	}
	machine_destroy(src);
}

/*
 * A resync whose round 0 finds differing blocks: the replica's verdict comes once, after every
 * round-0 section and before the first message of a later round is applied — refused (naming the
 * blocks) with nothing of round 1 written; with no difference the stream completes.
 */
static void resync_verdict(void **state)
{
	(void)state;
	struct machine *src = fuzz_board_create("test_disk_stream", &config);
	for (int differ = 0; differ < 2; differ++) {
		struct run t;
		run_begin(&t, DISK_BYTES, true);
		t.r->noting = true;
		start(&t.s, src, MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC);
		resync_disks(&t.s, 9);
		size_t n = 0;
		for (uint64_t off = 0; off < DISK_BYTES; off += 65536)
			n += digest_section(body + n, off, 65536, differ && off == 131072 ? 0xaa : 0xee);
		put(&t.s, MIG_BLOCKS, 0, n);
		memset(body + MIG_DISK_HDR_SIZE, 0x33, 65536);
		put(&t.s, MIG_BLOCKS, 1, mig_disk_section_build(body, 0, 0, 0, 65536));
		finish(&t.s, src);
		int ret = run_decode(&t, MIG_STORAGE_NEEDED);
		printf("differing %d: %d %s\n", differ, ret, t.err);
		assert_int_equal(t.r->compared_at, 4); /* START, DISKS, round 0's BLOCKS, then round 1's came */
		if (differ) {
			assert_int_equal(ret, -EINVAL);
			assert_non_null(strstr(t.err, "repair=0:2."));
			assert_true(t.res.refused_config);
			assert_int_equal(t.r->writes, 0);
			assert_int_not_equal(t.res.phase, MIG_PHASE_RUN);
		} else {
			assert_int_equal(ret, 0);
			assert_int_equal(t.res.phase, MIG_PHASE_RUN);
			assert_int_equal(t.r->writes, 1);
		}
		run_end(&t);
	}
	machine_destroy(src);
}

/* The source's parser of a refusal's repair list (text from the peer): well-formed lists set
 * exactly their blocks; every malformed one, or one outside the disks, sets nothing. */
static void repair_lists(void **state)
{
	(void)state;
	const uint64_t nblocks[2] = { 100, 64 };
	uint64_t w0[2], w1[1];
	uint64_t *const maps[2] = { w0, w1 };
	uint64_t blocks = 0;
	memset(w0, 0, sizeof(w0)), memset(w1, 0, sizeof(w1));
	assert_int_equal(mig_repair_parse("x; repair=0:3,0:70+2,1:63.", 2, nblocks, maps, &blocks), 0);
	assert_int_equal(blocks, 4);
	assert_int_equal(w0[0], 1ull << 3);
	assert_int_equal(w0[1], 3ull << 6);
	assert_int_equal(w1[0], 1ull << 63);
	static const char *const bad[] = {
		"no list", "repair=", "repair=0:3", "repair=0:3,", "repair=0:3,.", "repair=0:100.", "repair=0:99+2.",
		"repair=2:0.", "repair=1:0+0.", "repair=0:-1.", "repair=0:1+18446744073709551615.",
		"repair=00000000000000000000:1.", "repair=0:1 .", "repair=0;1.", "repair=0:1+.", "repair=:1.",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(w0, 0, sizeof(w0)), memset(w1, 0, sizeof(w1));
		if (mig_repair_parse(bad[i], 2, nblocks, maps, &blocks) != -EINVAL || w0[0] || w0[1] || w1[0])
			fail_msg("\"%s\" not refused whole", bad[i]);
	}
}

/* One malformed or unwanted stream: refused with want_err, having written nothing past the
 * valid messages before the fault (only "backwards" has one). */
struct bad_case {
	const char *name;
	uint32_t flags;
	enum mig_storage storage;
	uint64_t have;          /* the replica's size */
	int ret;
	const char *want_err;
};

static void build_bad(struct stream *s, struct machine *src, const char *name)
{
	if (!strcmp(name, "disks crc")) {
		disks(s, 1, DISK_BYTES);
		s->msg[s->n - 1][MIG_HDR_SIZE + 19] ^= 1;
	} else if (!strcmp(name, "no disks")) {
		disks(s, 0, DISK_BYTES);
	} else if (!strcmp(name, "odd size")) {
		disks(s, 1, 1000);
	} else if (!strcmp(name, "blocks first")) {
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, MIG_DISK_ZERO, 0, 512));
	} else if (!strcmp(name, "outside")) {
		disks(s, 1, DISK_BYTES);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, MIG_DISK_ZERO, DISK_BYTES - 512, 1024));
	} else if (!strcmp(name, "wrapping")) {
		disks(s, 1, DISK_BYTES);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, MIG_DISK_ZERO, UINT64_MAX - 511, 1024));
	} else if (!strcmp(name, "no such disk")) {
		disks(s, 1, DISK_BYTES);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 1, MIG_DISK_ZERO, 0, 512));
	} else if (!strcmp(name, "section crc")) {
		disks(s, 1, DISK_BYTES);
		memset(body + MIG_DISK_HDR_SIZE, 7, 512);
		size_t n = mig_disk_section_build(body, 0, 0, 0, 512);
		body[MIG_DISK_HDR_SIZE + 3] ^= 1;
		put(s, MIG_BLOCKS, 0, n);
	} else if (!strcmp(name, "too long")) {
		disks(s, 1, DISK_BYTES);
		memset(body + MIG_DISK_HDR_SIZE, 7, MIG_DISK_RUN_MAX + 512);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, 0, 0, MIG_DISK_RUN_MAX + 512));
	} else if (!strcmp(name, "unaligned")) {
		disks(s, 1, DISK_BYTES);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, MIG_DISK_ZERO, 100, 512));
	} else if (!strcmp(name, "flags")) {
		disks(s, 1, DISK_BYTES);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, 4 | MIG_DISK_ZERO, 0, 512));
	} else if (!strcmp(name, "truncated")) {
		disks(s, 1, DISK_BYTES);
		memset(body + MIG_DISK_HDR_SIZE, 7, 4096);
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, 0, 0, 4096) - 100);
	} else if (!strcmp(name, "backwards")) {
		disks(s, 1, DISK_BYTES);
		put(s, MIG_BLOCKS, 2, mig_disk_section_build(body, 0, MIG_DISK_ZERO, 0, 512));
		put(s, MIG_BLOCKS, 1, mig_disk_section_build(body, 0, MIG_DISK_ZERO, 0, 512));
	} else if (!strcmp(name, "blocks without storage")) {
		put(s, MIG_BLOCKS, 0, mig_disk_section_build(body, 0, MIG_DISK_ZERO, 0, 512));
	} else if (!strcmp(name, "second disks")) {
		disks(s, 1, DISK_BYTES);
		disks(s, 1, DISK_BYTES);
	} else {
		disks(s, 1, DISK_BYTES); /* the refusals at START or DISKS */
	}
	finish(s, src);
}

static const struct bad_case bad_cases[] = {
	{ "disks crc", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "(DISKS, round 0): bad CRC" },
	{ "no disks", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "bad number of disks" },
	{ "odd size", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "not a non-zero multiple of 512" },
	{ "blocks first", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "DISKS must follow a START" },
	{ "outside", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "range outside the disk" },
	{ "wrapping", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "range outside the disk" },
	{ "no such disk", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "no such disk" },
	{ "section crc", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "disk section: bad CRC" },
	{ "too long", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "length out of bounds" },
	{ "unaligned", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "not a multiple of 512" },
	{ "flags", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "unknown flags" },
	{ "truncated", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "disk section truncated" },
	{ "backwards", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "round goes backwards" },
	{ "blocks without storage", 0, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "without STORAGE" },
	{ "second disks", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES, -EBADMSG, "not allowed while pages" },
	{ "too small", MIG_FLAG_STORAGE, MIG_STORAGE_EITHER, DISK_BYTES / 2, -EINVAL, "less than the source's" },
	{ "needed", 0, MIG_STORAGE_NEEDED, DISK_BYTES, -EINVAL, "the clone must copy the disks" },
	{ "refused", MIG_FLAG_STORAGE, MIG_STORAGE_REFUSED, DISK_BYTES, -EINVAL, "a clone must not copy it" },
};

static void refusals(void **state)
{
	(void)state;
	struct machine *src = fuzz_board_create("test_disk_stream", &config);
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct run t;
		run_begin(&t, c->have, false);
		start(&t.s, src, c->flags);
		if (strcmp(c->name, "needed") != 0)
			build_bad(&t.s, src, c->name);
		int ret = run_decode(&t, c->storage);
		printf("%-24s %d: %s\n", c->name, ret, t.err);
		if (ret != c->ret || !strstr(t.err, c->want_err))
			fail_msg("%s: %d \"%s\", want %d with \"%s\"", c->name, ret, t.err, c->ret, c->want_err);
		assert_int_not_equal(t.res.phase, MIG_PHASE_RUN);
		assert_int_equal(t.r->writes, strcmp(c->name, "backwards") ? 0 : 1);
		assert_int_equal(t.r->syncs, 0);
		run_end(&t);
	}
	machine_destroy(src);
}

/* A stream without disks whose START says flags, node and epoch, and whose HANDOVER says
 * handover, to a destination with an arbiter area (area: the one START names, or another) or
 * without. */
struct arbiter_case {
	const char *name;
	uint32_t flags, node;
	uint64_t epoch, handover;
	enum { NO_AREA, SAME_AREA, OTHER_AREA } area;
	int ret;
	const char *want_err;
};

static const struct arbiter_case arbiter_cases[] = {
	{ "judged", MIG_FLAG_ARBITER, 1, 2, 2, SAME_AREA, 0, "" },
	{ "judged, node 15", MIG_FLAG_ARBITER, 15, 9, 9, SAME_AREA, 0, "" },
	{ "area here only", 0, 0, 2, 2, SAME_AREA, -EINVAL, "the source has none" },
	{ "area there only", MIG_FLAG_ARBITER, 1, 2, 2, NO_AREA, -EINVAL, "start the destination with --arbiter" },
	{ "another area", MIG_FLAG_ARBITER, 1, 2, 2, OTHER_AREA, -EINVAL, "is not the source's" },
	{ "node 16", MIG_FLAG_ARBITER, 16, 2, 2, SAME_AREA, -EBADMSG, "out of range" },
	{ "epoch 1", MIG_FLAG_ARBITER, 1, 1, 1, SAME_AREA, -EBADMSG, "out of range" },
	{ "node without the flag", 0, 1, 2, 2, NO_AREA, -EBADMSG, "out of range" },
	{ "a clone", MIG_FLAG_ARBITER | MIG_FLAG_CLONE, 1, 2, 2, SAME_AREA, -EBADMSG, "out of range" },
	{ "another epoch in HANDOVER", MIG_FLAG_ARBITER, 1, 2, 3, SAME_AREA, -EBADMSG, "differs from START's" },
};

static void arbiter_fields(void **state)
{
	(void)state;
	struct machine *src = fuzz_board_create("test_disk_stream", &config);
	for (size_t i = 0; i < sizeof(arbiter_cases) / sizeof(arbiter_cases[0]); i++) {
		const struct arbiter_case *c = &arbiter_cases[i];
		struct run t;
		run_begin(&t, 0, false);
		start(&t.s, src, c->flags);
		put_le64(t.s.msg[0] + MIG_HDR_SIZE, c->epoch);
		put_le32(t.s.msg[0] + MIG_HDR_SIZE + 20, c->node);
		finish(&t.s, src);
		put_le64(t.s.msg[t.s.n - 1] + MIG_HDR_SIZE, c->handover);
		static const uint8_t other_id[ARBITER_AREA_ID_LEN] = { 0xa5, 1, 2, 4 };
		int ret = decode(t.m, &t.s, t.r, MIG_STORAGE_EITHER,
				 c->area == SAME_AREA ? area_id : c->area == OTHER_AREA ? other_id : NULL, &t.res, t.err,
				 sizeof(t.err));
		printf("%-26s %d: %s\n", c->name, ret, t.err);
		if (ret != c->ret || !strstr(t.err, c->want_err))
			fail_msg("%s: %d \"%s\", want %d with \"%s\"", c->name, ret, t.err, c->ret, c->want_err);
		if (!ret) {
			assert_int_equal(t.res.phase, MIG_PHASE_RUN);
			assert_true(t.res.arbiter);
			assert_int_equal(t.res.arbiter_node, c->node);
			assert_int_equal(t.res.epoch, c->epoch);
		} else {
			assert_int_not_equal(t.res.phase, MIG_PHASE_RUN);
		}
		run_end(&t);
	}
	machine_destroy(src);
}

int main(void)
{
	fuzz_board_init("test_disk_stream", &config);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(whole_stream),
		cmocka_unit_test(refusals),
		cmocka_unit_test(resync_stream),
		cmocka_unit_test(resync_refusals),
		cmocka_unit_test(resync_verdict),
		cmocka_unit_test(repair_lists),
		cmocka_unit_test(arbiter_fields),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);
	fuzz_board_cleanup();
	return ret;
}
