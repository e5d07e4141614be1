/*
 * fuzz_migration.c — libFuzzer target for the migration stream's decoder (migrate/mig_stream.c):
 * any sequence of messages offered by a source to a freshly created destination machine (16 MiB,
 * a disk, a NIC, an entropy device, a tiny raw firmware image). The decoder must refuse or accept
 * without a crash, a sanitizer report, a read outside its buffers, a hang or a leak.
 *
 * Input: a mode byte, then messages, each a 4-byte little-endian length and its bytes (a length
 * beyond the input takes the rest). Mode odd: before decoding, the harness makes every message's
 * header length agree with the message and rewrites the CRC of every whole state section in a
 * PAGES body and in the STATE bodies taken together, so mutations reach the RAM runs, the
 * ordering rules and the state decoder's payload walks; mode even: the bytes go in as they are.
 *
 * Mode bit 2 set: the destination has an arbiter area (its id all zeros), so it takes only streams
 * whose START says ARBITER and names that area (and then checks HANDOVER's epoch against START's);
 * clear: only streams without it.
 *
 * The destination takes streams with or without the disks (STORAGE): DISKS and BLOCKS go to an
 * in-memory replica of FUZZ_DISK_BYTES, which aborts on any write outside it (so the fuzzer
 * reports a range check the decoder missed). Mode odd also rewrites DISKS' CRC and the CRC of
 * every whole disk section of a BLOCKS body.
 *
 * Mode bit 1: the destination is a spare (FT clones only), so a resync (START flag RESYNC, the
 * pairing epoch in DISKS, DIGEST sections) is taken: resyncs from epoch 0 are accepted, and each
 * digest is checked against the in-memory replica, which aborts on a range outside it too.
 *
 * FUZZ_MIGRATION_VERBOSE=1 prints each input's outcome (to check that the seed decodes whole).
 * FUZZ_MIGRATION_SEED=FILE writes a valid stream of the same machine (START with STORAGE, DISKS,
 * a round of pages, a round of disk blocks (data and a zero range), the final state, COMPLETE,
 * HANDOVER) to FILE, and the same as an FT clone's resync (a digest section among the blocks)
 * to FILE-resync, and exits.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/arbiter.h"
#include "migrate/mig_stream.h"
#include "fuzz_board.h"
#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/disk_digest.h"
#include "vm/machine.h"
#include "vm/state_format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGES 4096

static struct machine_config config;
static struct machine *machine;

struct feed {
	uint8_t *msg[MAX_MESSAGES];
	size_t len[MAX_MESSAGES];
	size_t n, next;
};

static int feed_next(void *ctx, const uint8_t **buf, size_t *len, char *why, size_t whylen)
{
	struct feed *f = ctx;
	if (f->next == f->n) {
		snprintf(why, whylen, "the source closed the channel");
		return -32; /* EPIPE */
	}
	*buf = f->msg[f->next];
	*len = f->len[f->next++];
	return 0;
}

static void feed_confirm(void *ctx)
{
	(void)ctx;
}

static const struct mig_source_ops feed_ops = { .next = feed_next, .confirm = feed_confirm };

/* ---- the destination's replica: memory, every write checked against it ---- */

#define FUZZ_DISK_BYTES (1u << 20)
static uint8_t replica[FUZZ_DISK_BYTES];

static int replica_begin(void *ctx, unsigned ndisks, const uint64_t *sizes, char *why, size_t whylen)
{
	(void)ctx;
	if (ndisks != 1 || sizes[0] > FUZZ_DISK_BYTES) {
		snprintf(why, whylen, "one disk of at most %u bytes here", FUZZ_DISK_BYTES);
		return -22; /* EINVAL */
	}
	return 0;
}

static int replica_write(void *ctx, unsigned disk, uint64_t off, const uint8_t *data, uint64_t len, char *why,
			 size_t whylen)
{
	(void)ctx, (void)why, (void)whylen;
	if (disk != 0 || off > FUZZ_DISK_BYTES || len > FUZZ_DISK_BYTES - off)
		abort(); /* the decoder let a range outside the announced disk through */
	if (data)
		memcpy(replica + off, data, (size_t)len);
	else
		memset(replica + off, 0, (size_t)len);
	return 0;
}

static int replica_sync(void *ctx, char *why, size_t whylen)
{
	(void)ctx, (void)why, (void)whylen;
	return 0;
}

static int replica_resync(void *ctx, uint64_t epoch, char *why, size_t whylen)
{
	(void)ctx, (void)why, (void)whylen;
	return epoch == 0 ? 0 : -22; /* EINVAL: a refused resync */
}

static int replica_check(void *ctx, unsigned disk, uint64_t off, uint64_t len, uint64_t lo, uint64_t hi, char *why,
			 size_t whylen)
{
	(void)ctx;
	if (disk != 0 || off > FUZZ_DISK_BYTES || len > FUZZ_DISK_BYTES - off)
		abort(); /* the decoder let a digest's range outside the announced disk through */
	uint64_t mlo, mhi;
	disk_digest_range(replica + off, (size_t)len, &mlo, &mhi);
	if (mlo == lo && mhi == hi)
		return 0;
	snprintf(why, whylen, "differs");
	return -22;
}

static const struct mig_disk_ops replica_ops = { .begin = replica_begin, .write = replica_write,
						 .sync = replica_sync, .resync = replica_resync,
						 .check = replica_check };

static struct machine *create(void)
{
	return fuzz_board_create("fuzz_migration", &config);
}

/* ---- the seed: a whole stream, written as the fuzzer's input format ---- */

static FILE *seed;
static uint8_t seedmsg[MIG_MAX_MESSAGE];
static size_t seedbody;

static void seed_put(unsigned kind, uint32_t round, size_t body)
{
	uint8_t len[4];
	mig_hdr_encode(seedmsg, kind, round, (uint32_t)body);
	put_le32(len, (uint32_t)(MIG_HDR_SIZE + body));
	fwrite(len, 1, 4, seed);
	fwrite(seedmsg, 1, MIG_HDR_SIZE + body, seed);
}

static int seed_state(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	const uint8_t *p = buf;
	while (len) {
		size_t n = MIG_MAX_BODY - seedbody < len ? MIG_MAX_BODY - seedbody : len;
		memcpy(seedmsg + MIG_HDR_SIZE + seedbody, p, n);
		seedbody += n;
		p += n;
		len -= n;
		if (seedbody == MIG_MAX_BODY) {
			seed_put(MIG_STATE, 1, seedbody);
			seedbody = 0;
		}
	}
	return 0;
}

static void write_seed(const char *path, bool resync)
{
	char err[256];
	struct machine *m = create();
	seed = fopen(path, "wb");
	if (!seed)
		exit(1);
	fputc(resync ? 3 : 1, seed);
	uint8_t *b = seedmsg + MIG_HDR_SIZE;
	size_t ram_size;
	const uint8_t *ram = machine_ram_const(m, &ram_size);
	memset(b, 0, MIG_START_FIXED);
	put_le64(b + 8, ram_size);
	put_le32(b + 16, resync ? MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC : MIG_FLAG_STORAGE);
	int n = state_config_section(m, b + MIG_START_FIXED, MIG_MAX_BODY - MIG_START_FIXED);
	if (n < 0)
		exit(1);
	seed_put(MIG_START, 0, MIG_START_FIXED + (size_t)n);
	put_le32(b, 1);
	put_le32(b + 4, 0);
	put_le64(b + 8, FUZZ_DISK_BYTES);
	size_t disks = resync ? 24 : 16; /* a resync's pairing epoch: 0 */
	put_le64(b + 16, 0);
	put_le32(b + disks, crc32c(0, b, disks));
	seed_put(MIG_DISKS, 0, disks + 4);
	seed_put(MIG_PAGES, 0, state_ram_section_build(b, ram, 0, 2));
	memset(b + MIG_DISK_HDR_SIZE, 0x3c, 4096);
	size_t dl = mig_disk_section_build(b, 0, 0, 8192, 4096);
	dl += mig_disk_section_build(b + dl, 0, MIG_DISK_ZERO, 65536, 65536);
	if (resync) { /* the replica's zeros at 131072 */
		static const uint8_t zeros[4096];
		uint64_t lo, hi;
		disk_digest_range(zeros, sizeof(zeros), &lo, &hi);
		put_le64(b + dl + MIG_DISK_HDR_SIZE, lo);
		put_le64(b + dl + MIG_DISK_HDR_SIZE + 8, hi);
		dl += mig_disk_section_build(b + dl, 0, MIG_DISK_DIGEST, 131072, 4096);
	}
	seed_put(MIG_BLOCKS, 0, dl);
	uint64_t *pages = calloc(machine_dirty_words(m), sizeof(*pages));
	if (!pages)
		exit(1);
	pages[0] = 0x5; /* pages 0 and 2 */
	seedbody = 0;
	struct state_stats st;
	if (state_encode_pages(m, (struct state_sink){ .write = seed_state }, pages, NULL, &st, err, sizeof(err)))
		exit(1);
	if (seedbody)
		seed_put(MIG_STATE, 1, seedbody);
	put_le64(b, st.bytes);
	put_le64(b + 8, 1);
	seed_put(MIG_COMPLETE, 1, MIG_COMPLETE_SIZE);
	put_le64(b, 7);
	seed_put(MIG_HANDOVER, 1, MIG_HANDOVER_SIZE);
	fclose(seed);
	free(pages);
	machine_destroy(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_board_init("fuzz_migration", &config);
	const char *path = getenv("FUZZ_MIGRATION_SEED");
	if (path) {
		char resync_path[4096];
		snprintf(resync_path, sizeof(resync_path), "%s-resync", path);
		write_seed(path, false);
		write_seed(resync_path, true);
		fuzz_board_cleanup();
		exit(0);
	}
	return 0;
}

/* DISKS: the CRC after the sizes; BLOCKS: each whole disk section's CRC. */
static void fix_disk_body(uint16_t kind, uint8_t *b, size_t len)
{
	if (kind == MIG_DISKS) {
		if (len >= 12)
			put_le32(b + len - 4, crc32c(0, b, len - 4));
		return;
	}
	size_t off = 0;
	while (len - off >= MIG_DISK_HDR_SIZE + 4) {
		uint8_t *p = b + off;
		uint32_t flags = get_le32(p + 4);
		size_t data = flags & MIG_DISK_ZERO ? 0 : flags & MIG_DISK_DIGEST ? MIG_DISK_DIGEST_SIZE : get_le32(p + 16);
		if (data > len - off - MIG_DISK_HDR_SIZE - 4)
			return;
		put_le32(p + MIG_DISK_HDR_SIZE + data, crc32c(0, p, MIG_DISK_HDR_SIZE + data));
		off += MIG_DISK_HDR_SIZE + data + 4;
	}
}

static void fix_up(struct feed *f)
{
	for (size_t i = 0; i < f->n; i++) {
		if (f->len[i] < MIG_HDR_SIZE)
			continue;
		put_le32(f->msg[i] + 12, (uint32_t)(f->len[i] - MIG_HDR_SIZE));
		uint16_t kind = get_le16(f->msg[i] + 6);
		if (kind == MIG_PAGES || kind == MIG_START)
			fuzz_fix_sections(f->msg[i] + MIG_HDR_SIZE, f->len[i] - MIG_HDR_SIZE,
				     kind == MIG_START ? MIG_START_FIXED : 0);
		if (kind == MIG_DISKS || kind == MIG_BLOCKS)
			fix_disk_body(kind, f->msg[i] + MIG_HDR_SIZE, f->len[i] - MIG_HDR_SIZE);
	}
	/* The STATE bodies form one state: fix it as a whole, then scatter it back. */
	size_t total = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->len[i] >= MIG_HDR_SIZE && get_le16(f->msg[i] + 6) == MIG_STATE)
			total += f->len[i] - MIG_HDR_SIZE;
	uint8_t *all = total ? malloc(total) : NULL;
	if (!all)
		return;
	size_t at = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->len[i] >= MIG_HDR_SIZE && get_le16(f->msg[i] + 6) == MIG_STATE) {
			memcpy(all + at, f->msg[i] + MIG_HDR_SIZE, f->len[i] - MIG_HDR_SIZE);
			at += f->len[i] - MIG_HDR_SIZE;
		}
	if (total >= STATE_HEADER_SIZE) {
		put_le32(all + 12, crc32c(0, all, 12));
		fuzz_fix_sections(all, total, STATE_HEADER_SIZE);
	}
	at = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->len[i] >= MIG_HDR_SIZE && get_le16(f->msg[i] + 6) == MIG_STATE) {
			memcpy(f->msg[i] + MIG_HDR_SIZE, all + at, f->len[i] - MIG_HDR_SIZE);
			at += f->len[i] - MIG_HDR_SIZE;
		}
	free(all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct feed *f = calloc(1, sizeof(*f));
	if (!f || size < 1) {
		free(f);
		return 0;
	}
	for (size_t pos = 1; pos < size && f->n < MAX_MESSAGES;) {
		size_t len = size - pos >= 4 ? get_le32(data + pos) : 0;
		pos += size - pos >= 4 ? 4 : size - pos;
		if (len > size - pos)
			len = size - pos;
		if (len > MIG_MAX_MESSAGE)
			len = MIG_MAX_MESSAGE;
		f->msg[f->n] = malloc(len ? len : 1);
		if (!f->msg[f->n])
			break;
		memcpy(f->msg[f->n], data + pos, len);
		f->len[f->n++] = len;
		pos += len;
	}
	if (data[0] & 1)
		fix_up(f);
	if (!machine)
		machine = create();
	struct mig_dest_result res;
	/* bit 1 of the first byte: decode as a spare (takes FT clones, and with them resyncs); bit 2:
	 * with an arbiter area */
	static const uint8_t area_id[ARBITER_AREA_ID_LEN]; /* zeros: START must name it with ARBITER */
	struct mig_dest_want want = { .clone = data[0] & 2, .storage = MIG_STORAGE_EITHER,
				      .arbiter_id = data[0] & 4 ? area_id : NULL, .disk = &replica_ops };
	int ret = mig_dest_decode_want(machine, &want, &feed_ops, f, &res, err, sizeof(err));
	if (getenv("FUZZ_MIGRATION_VERBOSE"))
		fprintf(stderr, "fuzz_migration: %d phase %d: %s\n", ret, (int)res.phase, err);
	for (size_t i = 0; i < f->n; i++)
		free(f->msg[i]);
	free(f);
	return 0;
}
