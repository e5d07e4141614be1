/*
 * mig_disks.c — the disks of a live copy, sender's side (see mig_disks.h).
 *
 * A block is DISK_DIRTY_BLOCK bytes (the back end's tracking unit; the last one may be short).
 * Collected bits wait in `pending` until a round sends them, so a block written while it is being
 * read is sent again by a later round: the back end marks it once the write reached the image,
 * after the read began. The stop-and-copy collects after the disks were drained, so its round
 * carries every write the guest made.
 *
 * A resync's round 0 (mig_disks_resync()) reads the whole disk too, but sends as data only the
 * blocks written since the pairing the destination's replica dates from; of every other block
 * only its XXH3-128 goes, which the destination compares with its own (a difference refuses the
 * resync: the next clone copies everything).
 */
#include "migrate/mig_disks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/backend.h"
#include "migrate/mig_stream.h"
#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/disk_digest.h"
#include "util/disk_image.h"

struct copy_disk {
	struct disk_backend *be;
	struct disk_image *img;      /* the sender's own reader */
	uint64_t size;
	size_t words;
	uint64_t *pending;           /* blocks to send in the next round */
	uint64_t *written;           /* resync: blocks written since the pairing (NULL: not a resync) */
	bool tracking;
};

struct mig_disks {
	unsigned n;
	bool resync;
	uint64_t resync_epoch;
	uint64_t digested;           /* bytes sent as digests */
	struct copy_disk disk[MACHINE_MAX_DISKS];
};

int mig_disks_open(struct world_live *w, struct mig_disks **out, char *why, size_t whylen)
{
	struct mig_disks *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	d->n = world_live_ndisks(w);
	int ret = 0;
	if (d->n == 0) {
		snprintf(why, whylen, "the VM has no disk to copy");
		ret = -ENODEV;
	}
	for (unsigned i = 0; !ret && i < d->n; i++) {
		struct copy_disk *c = &d->disk[i];
		char err[320];
		c->be = world_live_disk_backend(w, i);
		if (!c->be) {
			snprintf(why, whylen, "disk %u has no back end", i);
			ret = -ENODEV;
			break;
		}
		ret = disk_backend_reopen(c->be, true, &c->img, err, sizeof(err));
		if (ret) {
			snprintf(why, whylen, "disk %u: cannot open a reader: %s", i, err);
			break;
		}
		c->size = disk_image_size(c->img);
		c->words = disk_backend_dirty_words(c->be);
		c->pending = calloc(c->words, sizeof(*c->pending));
		if (!c->pending) {
			snprintf(why, whylen, "out of memory");
			ret = -ENOMEM;
		}
	}
	if (ret) {
		mig_disks_close(d);
		return ret;
	}
	*out = d;
	return 0;
}

int mig_disks_resync(struct mig_disks *d, uint64_t epoch)
{
	int ret = 0;
	for (unsigned i = 0; !ret && i < d->n; i++) {
		struct copy_disk *c = &d->disk[i];
		c->written = calloc(c->words, sizeof(*c->written));
		/* a first look: does the back end keep the record at all? (mig_disks_track() looks again) */
		ret = c->written ? disk_backend_written_collect(c->be, c->written, c->words) : -ENOMEM;
	}
	for (unsigned i = 0; ret && i < d->n; i++) {
		free(d->disk[i].written);
		d->disk[i].written = NULL;
	}
	d->resync = !ret;
	d->resync_epoch = epoch;
	return ret;
}

bool mig_disks_resyncing(const struct mig_disks *d)
{
	return d->resync;
}

/* A decimal number of at most 19 digits at *p (moved past it): 0, or -EINVAL. */
static int parse_number(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	unsigned n = 0;
	while (*s >= '0' && *s <= '9' && n < 19)
		v = v * 10 + (uint64_t)(*s++ - '0'), n++;
	if (!n || (*s >= '0' && *s <= '9'))
		return -EINVAL;
	*p = s;
	*out = v;
	return 0;
}

/* The text comes from the peer: every range is checked against the disks before any is taken. */
int mig_repair_parse(const char *text, unsigned ndisks, const uint64_t *nblocks, uint64_t *const *maps,
		     uint64_t *blocks)
{
	const char *p = text ? strstr(text, "repair=") : NULL;
	if (!p)
		return -EINVAL;
	p += strlen("repair=");
	for (int pass = 0; pass < 2; pass++) {
		const char *q = p;
		uint64_t total = 0;
		for (;;) {
			uint64_t disk, first, count = 1;
			if (parse_number(&q, &disk) || *q++ != ':' || parse_number(&q, &first))
				return -EINVAL;
			if (*q == '+' && (q++, parse_number(&q, &count)))
				return -EINVAL;
			if (disk >= ndisks || !count || first >= nblocks[disk] || count > nblocks[disk] - first)
				return -EINVAL;
			for (uint64_t b = first; pass && maps && b < first + count; b++)
				maps[disk][b / 64] |= 1ull << (b % 64);
			total += count;
			if (*q == '.')
				break;
			if (*q++ != ',')
				return -EINVAL;
		}
		*blocks = total;
	}
	return 0;
}

int mig_disks_repair(struct mig_disks *d, const char *text, uint64_t *blocks)
{
	if (!d->resync)
		return -EINVAL;
	uint64_t nblocks[MACHINE_MAX_DISKS];
	uint64_t *maps[MACHINE_MAX_DISKS];
	for (unsigned i = 0; i < d->n; i++) {
		nblocks[i] = (d->disk[i].size + DISK_DIRTY_BLOCK - 1) / DISK_DIRTY_BLOCK;
		maps[i] = d->disk[i].written;
	}
	return mig_repair_parse(text, d->n, nblocks, maps, blocks);
}

int mig_disks_track(struct mig_disks *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		struct copy_disk *c = &d->disk[i];
		int ret = disk_backend_dirty_start(c->be);
		if (ret)
			return ret;
		c->tracking = true;
		/* after the start: a write lands before this look (written) or after it (dirty) */
		ret = c->written ? disk_backend_written_collect(c->be, c->written, c->words) : 0;
		if (ret)
			return ret;
	}
	return 0;
}

size_t mig_disks_describe(const struct mig_disks *d, uint8_t *out)
{
	put_le32(out, d->n);
	put_le32(out + 4, 0);
	for (unsigned i = 0; i < d->n; i++)
		put_le64(out + 8 + 8 * i, d->disk[i].size);
	size_t len = 8 + 8 * (size_t)d->n;
	if (d->resync) {
		put_le64(out + len, d->resync_epoch);
		len += 8;
	}
	put_le32(out + len, crc32c(0, out, len));
	return len + 4;
}

uint64_t mig_disks_total(const struct mig_disks *d)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < d->n; i++)
		t += d->disk[i].size;
	return t;
}

uint64_t mig_disks_digested(const struct mig_disks *d)
{
	return d->digested;
}

static uint64_t block_bytes(const struct copy_disk *c, uint64_t b)
{
	uint64_t off = b * DISK_DIRTY_BLOCK;
	return c->size - off < DISK_DIRTY_BLOCK ? c->size - off : DISK_DIRTY_BLOCK;
}

uint64_t mig_disks_collect(struct mig_disks *d)
{
	uint64_t bytes = 0;
	for (unsigned i = 0; i < d->n; i++) {
		struct copy_disk *c = &d->disk[i];
		disk_backend_dirty_collect(c->be, c->pending, c->words);
		for (size_t w = 0; w < c->words; w++)
			for (uint64_t bits = c->pending[w]; bits; bits &= bits - 1)
				bytes += block_bytes(c, w * 64 + (uint64_t)__builtin_ctzll(bits));
	}
	return bytes;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	/* len is a multiple of 512 */
	const uint64_t *w = (const uint64_t *)(const void *)p;
	uint64_t any = 0;
	for (size_t i = 0; i < len / 8; i++)
		any |= w[i];
	return !any;
}

static int send_zero(const struct mig_disk_sink *sink, unsigned disk, uint64_t off, uint64_t len)
{
	while (len) {
		uint32_t n = len > MIG_DISK_ZERO_MAX ? MIG_DISK_ZERO_MAX : (uint32_t)len;
		uint8_t *p = sink->room(sink->ctx, MIG_DISK_SECTION_SIZE(0));
		if (!p)
			return -EIO;
		int ret = sink->used(sink->ctx, mig_disk_section_build(p, disk, MIG_DISK_ZERO, off, n), n);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

static bool is_set(const uint64_t *map, uint64_t b)
{
	return map[b / 64] >> (b % 64) & 1;
}

/*
 * [off, off + len), at most one block: read now, sent as data or, if all zeros, as a ZERO range;
 * with may_digest (a resync's block not written since the pairing) as its digest instead —
 * unless the guest wrote it since tracking began: the digest could then be of bytes the
 * destination never had, so the bytes read go (a later round sends the block again anyway).
 */
static int send_range(struct mig_disks *d, struct copy_disk *c, unsigned disk, const struct mig_disk_sink *sink,
		      uint64_t off, uint32_t len, bool may_digest)
{
	uint8_t *p = sink->room(sink->ctx, MIG_DISK_SECTION_SIZE(len));
	if (!p)
		return -EIO;
	int ret = disk_image_read(c->img, p + MIG_DISK_HDR_SIZE, len, off);
	if (ret)
		return ret;
	uint64_t b = off / DISK_DIRTY_BLOCK;
	if (may_digest && !is_set(c->pending, b) && !disk_backend_dirty_test(c->be, b)) {
		uint64_t lo, hi;
		disk_digest_range(p + MIG_DISK_HDR_SIZE, len, &lo, &hi);
		put_le64(p + MIG_DISK_HDR_SIZE, lo);
		put_le64(p + MIG_DISK_HDR_SIZE + 8, hi);
		d->digested += len;
		return sink->used(sink->ctx, mig_disk_section_build(p, disk, MIG_DISK_DIGEST, off, len), 0);
	}
	unsigned flags = all_zero(p + MIG_DISK_HDR_SIZE, len) ? MIG_DISK_ZERO : 0;
	return sink->used(sink->ctx, mig_disk_section_build(p, disk, flags, off, len), len);
}

/* A resync's round 0: every block, holes included (the destination's may not be one), as data
 * if written since the pairing, else as its digest. */
static int send_resync(struct mig_disks *d, struct copy_disk *c, unsigned disk, const struct mig_disk_sink *sink)
{
	uint64_t blocks = (c->size + DISK_DIRTY_BLOCK - 1) / DISK_DIRTY_BLOCK;
	for (uint64_t b = 0; b < blocks; b++) {
		int ret = send_range(d, c, disk, sink, b * DISK_DIRTY_BLOCK, (uint32_t)block_bytes(c, b),
				     !is_set(c->written, b));
		if (ret)
			return ret;
	}
	return 0;
}

static int send_whole(struct mig_disks *d, struct copy_disk *c, unsigned disk, const struct mig_disk_sink *sink)
{
	uint64_t off = 0;
	while (off < c->size) {
		uint64_t start, end;
		int ret = disk_image_data_extent(c->img, off, &start, &end);
		if (!ret && start > off)
			ret = send_zero(sink, disk, off, start - off);
		for (uint64_t at = start; !ret && at < end;) {
			uint64_t n = DISK_DIRTY_BLOCK - at % DISK_DIRTY_BLOCK;
			n = n < end - at ? n : end - at;
			ret = send_range(d, c, disk, sink, at, (uint32_t)n, false);
			at += n;
		}
		if (ret)
			return ret;
		off = end > start ? end : c->size;
	}
	return 0;
}

int mig_disks_send(struct mig_disks *d, bool all, const struct mig_disk_sink *sink)
{
	for (unsigned i = 0; i < d->n; i++) {
		struct copy_disk *c = &d->disk[i];
		int ret = !all ? 0 : c->written ? send_resync(d, c, i, sink) : send_whole(d, c, i, sink);
		for (size_t w = 0; !all && !ret && w < c->words; w++) {
			for (uint64_t bits = c->pending[w]; bits && !ret; bits &= bits - 1) {
				uint64_t b = w * 64 + (uint64_t)__builtin_ctzll(bits);
				ret = send_range(d, c, i, sink, b * DISK_DIRTY_BLOCK, (uint32_t)block_bytes(c, b), false);
			}
			if (!ret)
				c->pending[w] = 0;
		}
		if (ret)
			return ret;
	}
	return 0;
}

void mig_disks_close(struct mig_disks *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < d->n; i++) {
		struct copy_disk *c = &d->disk[i];
		if (c->tracking)
			disk_backend_dirty_stop(c->be);
		disk_image_close(c->img);
		free(c->pending);
		free(c->written);
	}
	free(d);
}
