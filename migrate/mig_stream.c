/*
 * mig_stream.c — the live-migration stream's header and its decoder (see mig_stream.h and
 * docs/migration.md).
 *
 * The decoder walks the phases START -> PAGES* -> STATE+ -> COMPLETE -> HANDOVER. Pages of the
 * rounds are copied straight into the new machine's RAM (dropped at START, so pages never sent
 * read as zero); the final state is fed, message by message, to the state decoder in its
 * keep-RAM form, so its device sections and last dirty pages land on top of the rounds.
 */
#define DIAG_MODULE "migrate"
#include "migrate/mig_stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/arbiter.h"
#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/diag.h"
#include "util/time.h"
#include "vm/state_format.h"

void mig_stamp(struct mig_stamps *st, const char *step)
{
	if (st->n >= MIG_STAMPS_MAX)
		return;
	st->step[st->n] = step;
	st->ns[st->n++] = time_mono_ns();
}

void mig_stamps_log(const struct mig_stamps *st, const char *what)
{
	char line[MIG_STAMPS_MAX * 40];
	size_t o = 0;
	if (diag_threshold < DIAG_INFO || !st->n)
		return;
	for (unsigned i = 0; i < st->n && o < sizeof(line); i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s %.2f", i ? ", " : "", st->step[i],
				      (st->ns[i] - st->ns[0]) / 1e6);
	diag_info("%s (ms after %.3f ms monotonic): %s", what, st->ns[0] / 1e6, line);
}

const char *mig_kind_name(unsigned kind)
{
	switch (kind) {
	case MIG_START: return "START";
	case MIG_PAGES: return "PAGES";
	case MIG_STATE: return "STATE";
	case MIG_COMPLETE: return "COMPLETE";
	case MIG_HANDOVER: return "HANDOVER";
	case MIG_CANCEL: return "CANCEL";
	case MIG_DISKS: return "DISKS";
	case MIG_BLOCKS: return "BLOCKS";
	case MIG_FRAMES: return "FRAMES";
	}
	return "unknown";
}

void mig_hdr_encode(uint8_t out[MIG_HDR_SIZE], unsigned kind, uint32_t round, uint32_t len)
{
	put_le32(out, MIG_MAGIC);
	put_le16(out + 4, MIG_VERSION);
	put_le16(out + 6, (uint16_t)kind);
	put_le32(out + 8, round);
	put_le32(out + 12, len);
}

int mig_hdr_decode(const uint8_t *buf, size_t len, struct mig_hdr *h, char *why, size_t whylen)
{
	if (len < MIG_HDR_SIZE) {
		snprintf(why, whylen, "%zu bytes, shorter than a message header", len);
		return -EBADMSG;
	}
	if (get_le32(buf) != MIG_MAGIC) {
		snprintf(why, whylen, "bad magic 0x%08x (not a migration message)", get_le32(buf));
		return -EBADMSG;
	}
	if (get_le16(buf + 4) != MIG_VERSION) {
		snprintf(why, whylen, "stream version %u; this ftvm speaks version %u", get_le16(buf + 4),
			 MIG_VERSION);
		return -EBADMSG;
	}
	h->kind = get_le16(buf + 6);
	h->round = get_le32(buf + 8);
	h->len = get_le32(buf + 12);
	if (h->kind == 0 || h->kind >= MIG_KIND_LIMIT) {
		snprintf(why, whylen, "unknown kind %u", h->kind);
		return -EBADMSG;
	}
	if (h->len != len - MIG_HDR_SIZE) {
		snprintf(why, whylen, "%s: body length %u, but the message holds %zu bytes after its header",
			 mig_kind_name(h->kind), h->len, len - MIG_HDR_SIZE);
		return -EBADMSG;
	}
	if (h->round > MIG_MAX_ROUNDS) {
		snprintf(why, whylen, "%s: round %u above the cap %u", mig_kind_name(h->kind), h->round,
			 MIG_MAX_ROUNDS);
		return -EBADMSG;
	}
	return 0;
}

size_t mig_disk_section_build(uint8_t *out, unsigned disk, unsigned flags, uint64_t off, uint32_t len)
{
	put_le32(out, disk);
	put_le32(out + 4, flags);
	put_le64(out + 8, off);
	put_le32(out + 16, len);
	put_le32(out + 20, 0);
	size_t data = flags & MIG_DISK_ZERO ? 0 : flags & MIG_DISK_DIGEST ? MIG_DISK_DIGEST_SIZE : len;
	put_le32(out + MIG_DISK_HDR_SIZE + data, crc32c(0, out, MIG_DISK_HDR_SIZE + data));
	return MIG_DISK_HDR_SIZE + data + 4;
}

/* ---- decoder ---- */

struct dest {
	struct machine *m;
	const struct mig_dest_want *want;
	const struct mig_source_ops *ops;
	void *ctx;
	struct mig_dest_result *res;
	struct mig_hdr h;
	const uint8_t *body;     /* the current message's body */
	size_t body_off;         /* STATE: bytes of it the state decoder has taken */
	bool state_ended;        /* STATE: a message other than STATE came (held in h/body) */
	bool compared;           /* a resync's round 0 is over, its comparison judged */
	char *err;
	size_t errlen;
};

/* The next message, its header checked. */
static int next_message(struct dest *d)
{
	const uint8_t *buf;
	size_t len;
	char why[256];
	int ret = d->ops->next(d->ctx, &buf, &len, why, sizeof(why));
	if (ret) {
		snprintf(d->err, d->errlen, "migration stream: after message %llu: %s",
			 (unsigned long long)d->res->messages, why);
		return ret;
	}
	d->res->messages++;
	d->res->bytes += len;
	ret = mig_hdr_decode(buf, len, &d->h, why, sizeof(why));
	if (ret) {
		snprintf(d->err, d->errlen, "migration stream: message %llu: %s", (unsigned long long)d->res->messages,
			 why);
		return ret;
	}
	d->body = buf + MIG_HDR_SIZE;
	d->body_off = 0;
	return 0;
}

static int bad(struct dest *d, const char *what)
{
	snprintf(d->err, d->errlen, "migration stream: message %llu (%s, round %u): %s",
		 (unsigned long long)d->res->messages, mig_kind_name(d->h.kind), d->h.round, what);
	return -EBADMSG;
}

static int take_start(struct dest *d)
{
	if (d->h.kind != MIG_START)
		return bad(d, "the stream must begin with START");
	if (d->h.len < MIG_START_FIXED)
		return bad(d, "body too short");
	uint64_t epoch = get_le64(d->body), ram = get_le64(d->body + 8);
	uint32_t flags = get_le32(d->body + 16);
	uint32_t node = get_le32(d->body + 20);
	if ((flags & ~(MIG_FLAG_CLONE | MIG_FLAG_STORAGE | MIG_FLAG_RESYNC | MIG_FLAG_ARBITER)) != 0)
		return bad(d, "unknown flags");
	if (flags & MIG_FLAG_ARBITER ? node >= ARBITER_MAX_NODES || epoch < 2 || (flags & MIG_FLAG_CLONE) : node != 0)
		return bad(d, "arbiter node, epoch or flags out of range");
	d->res->clone = flags & MIG_FLAG_CLONE;
	d->res->storage = flags & MIG_FLAG_STORAGE;
	d->res->resync = flags & MIG_FLAG_RESYNC;
	if (d->res->resync && !(d->res->clone && d->res->storage))
		return bad(d, "RESYNC without CLONE and STORAGE");
	d->res->arbiter = flags & MIG_FLAG_ARBITER;
	d->res->arbiter_node = node;
	size_t config_at = MIG_START_FIXED + (d->res->arbiter ? ARBITER_AREA_ID_LEN : 0);
	if (d->h.len < config_at)
		return bad(d, "body too short");
	const char *refuse = NULL;
	if (d->res->arbiter != (d->want->arbiter_id != NULL))
		refuse = d->want->arbiter_id ? "this destination records the hand-over in its arbiter area (--arbiter); "
					       "the source has none"
					     : "the source records its hand-over in an arbiter area: start the destination "
					       "with --arbiter PATH (the same area)";
	else if (d->res->arbiter && memcmp(d->body + MIG_START_FIXED, d->want->arbiter_id, ARBITER_AREA_ID_LEN) != 0)
		refuse = "this destination's arbiter area is not the source's (another area formatted for the same VM): "
			 "the hand-over could not be judged; give both sides the same area";
	else if (d->res->clone != d->want->clone)
		refuse = d->want->clone ? "this is a spare: it takes only an FT clone, not a migration"
					: "an FT clone goes to `ftvm spare`, not to a migration's destination";
	else if (d->res->storage && d->want->storage == MIG_STORAGE_REFUSED)
		refuse = "this spare shares its disk with the source (--disk-mode shared): a clone must not copy it";
	else if (!d->res->storage && d->want->storage == MIG_STORAGE_NEEDED)
		refuse = "this spare keeps its own disk replica (--disk-mode replicated): the clone must copy the disks";
	else if (d->res->storage && !d->want->disk)
		refuse = "this destination takes no disk contents";
	if (refuse) {
		d->res->refused_config = true;
		snprintf(d->err, d->errlen, "%s", refuse);
		return -EINVAL;
	}
	size_t size;
	(void)machine_ram(d->m, &size);
	char why[320];
	int ret = state_config_check(d->m, d->body + config_at, d->h.len - config_at, why, sizeof(why));
	if (ret == -EINVAL) {
		d->res->refused_config = true;
		snprintf(d->err, d->errlen, "the source's VM has %s", why);
		return ret;
	}
	if (ret)
		return bad(d, why);
	if (ram != size) {
		/* The configuration digest covers the memory size: only a lying peer gets here. */
		return bad(d, "RAM size disagrees with the configuration");
	}
	ret = machine_ram_drop(d->m);
	if (ret) {
		snprintf(d->err, d->errlen, "migration: cannot drop guest memory: %s", strerror(-ret));
		return ret;
	}
	d->res->epoch = epoch;
	d->res->phase = MIG_PHASE_PAGES;
	d->ops->confirm(d->ctx);
	return 0;
}

static int take_pages(struct dest *d)
{
	if (d->h.round < d->res->rounds)
		return bad(d, "round goes backwards");
	d->res->rounds = d->h.round;
	size_t off = 0;
	if (d->h.len == 0)
		return bad(d, "no RAM section");
	while (off < d->h.len) {
		size_t used;
		uint32_t pages;
		char why[256];
		int ret = state_ram_section_apply(d->m, d->body + off, d->h.len - off, &used, &pages, why, sizeof(why));
		if (ret) {
			char at[300];
			snprintf(at, sizeof(at), "at body byte %zu: %s", off, why);
			return bad(d, at);
		}
		off += used;
		d->res->pages += pages;
	}
	d->ops->confirm(d->ctx);
	return 0;
}

/* DISKS: the source's disks; this host's replicas must be able to take them. */
static int take_disks(struct dest *d)
{
	if (d->h.kind != MIG_DISKS)
		return bad(d, "DISKS must follow a START with STORAGE");
	if (d->h.len < 12)
		return bad(d, "body too short");
	uint32_t n = get_le32(d->body);
	if (n == 0 || n > MACHINE_MAX_DISKS || get_le32(d->body + 4) != 0)
		return bad(d, "bad number of disks or reserved field not zero");
	size_t fixed = 8 + 8 * (size_t)n + (d->res->resync ? 8 : 0); /* a resync adds its pairing epoch */
	if (d->h.len != fixed + 4)
		return bad(d, "body length disagrees with the number of disks");
	if (crc32c(0, d->body, fixed) != get_le32(d->body + fixed))
		return bad(d, "bad CRC");
	for (uint32_t i = 0; i < n; i++) {
		d->res->disk_size[i] = get_le64(d->body + 8 + 8 * i);
		if (d->res->disk_size[i] == 0 || d->res->disk_size[i] % 512)
			return bad(d, "a disk size is not a non-zero multiple of 512");
	}
	d->res->ndisks = n;
	char why[320];
	int ret = d->want->disk->begin(d->want->disk_ctx, n, d->res->disk_size, why, sizeof(why));
	if (!ret && d->res->resync) {
		d->res->resync_epoch = get_le64(d->body + 8 + 8 * n);
		ret = d->want->disk->resync && d->want->disk->check ? d->want->disk->resync(d->want->disk_ctx, d->res->resync_epoch, why, sizeof(why))
					    : (snprintf(why, sizeof(why), "resync: this destination takes only full copies"),
					       -EINVAL);
	}
	if (ret) {
		d->res->refused_config = ret == -EINVAL;
		snprintf(d->err, d->errlen, "%s", why);
		return ret;
	}
	d->ops->confirm(d->ctx);
	return 0;
}

/* BLOCKS: disk sections, written into this host's replicas at once. */
static int take_blocks(struct dest *d)
{
	if (!d->res->storage)
		return bad(d, "disk blocks in a stream without STORAGE");
	if (d->h.round < d->res->rounds)
		return bad(d, "round goes backwards");
	d->res->rounds = d->h.round;
	if (d->h.len == 0)
		return bad(d, "no disk section");
	size_t off = 0;
	char at[400];
	while (off < d->h.len) {
		const uint8_t *p = d->body + off;
		size_t left = d->h.len - off;
		if (left < MIG_DISK_HDR_SIZE + 4)
			goto short_section;
		uint32_t disk = get_le32(p), flags = get_le32(p + 4), len = get_le32(p + 16);
		uint64_t at_byte = get_le64(p + 8);
		bool zero = flags & MIG_DISK_ZERO, digest = flags & MIG_DISK_DIGEST;
		const char *fault = NULL;
		if (disk >= d->res->ndisks)
			fault = "no such disk";
		else if ((flags & ~(MIG_DISK_ZERO | MIG_DISK_DIGEST)) || get_le32(p + 20) || (zero && digest))
			fault = "unknown flags or reserved field not zero";
		else if (digest && !d->res->resync)
			fault = "a digest in a stream that is not a resync";
		else if (digest && len > MIG_DISK_RUN_MAX)
			fault = "digest of too long a range";
		else if (len == 0 || len % 512 || at_byte % 512 || len > (zero ? MIG_DISK_ZERO_MAX : MIG_DISK_RUN_MAX))
			fault = "length or offset not a multiple of 512, or length out of bounds";
		else if (at_byte > d->res->disk_size[disk] || len > d->res->disk_size[disk] - at_byte)
			fault = "range outside the disk";
		if (fault) {
			snprintf(at, sizeof(at), "at body byte %zu: disk section: %s", off, fault);
			return bad(d, at);
		}
		size_t data = zero ? 0 : digest ? MIG_DISK_DIGEST_SIZE : len;
		if (left < MIG_DISK_HDR_SIZE + data + 4)
			goto short_section;
		if (crc32c(0, p, MIG_DISK_HDR_SIZE + data) != get_le32(p + MIG_DISK_HDR_SIZE + data)) {
			snprintf(at, sizeof(at), "at body byte %zu: disk section: bad CRC", off);
			return bad(d, at);
		}
		char why[256];
		if (digest) {
			const uint8_t *dg = p + MIG_DISK_HDR_SIZE;
			int ret = d->want->disk->check(d->want->disk_ctx, disk, at_byte, len, get_le64(dg), get_le64(dg + 8),
						       why, sizeof(why));
			if (ret) {
				d->res->refused_config = ret == -EINVAL;
				snprintf(d->err, d->errlen, "%s", why);
				return ret;
			}
			d->res->disk_checked += len;
			off += MIG_DISK_HDR_SIZE + data + 4;
			continue;
		}
		int ret = d->want->disk->write(d->want->disk_ctx, disk, at_byte, zero ? NULL : p + MIG_DISK_HDR_SIZE, len,
					       why, sizeof(why));
		if (ret) {
			snprintf(d->err, d->errlen, "migration: writing disk %u at byte %llu: %s", disk,
				 (unsigned long long)at_byte, why);
			return ret;
		}
		d->res->disk_bytes += len;
		off += MIG_DISK_HDR_SIZE + data + 4;
	}
	d->ops->confirm(d->ctx);
	return 0;
short_section:
	snprintf(at, sizeof(at), "at body byte %zu: disk section truncated", off);
	return bad(d, at);
}

/* The state decoder's source: the bodies of consecutive STATE messages. */
static ssize_t state_read(void *ctx, void *buf, size_t len)
{
	struct dest *d = ctx;
	while (d->body_off == d->h.len) {
		if (d->state_ended)
			return 0;
		int ret = next_message(d);
		if (ret)
			return ret;
		if (d->h.kind != MIG_STATE) {
			d->state_ended = true; /* handled after the decoder (it reports the truncation) */
			return 0;
		}
	}
	size_t n = d->h.len - d->body_off < len ? d->h.len - d->body_off : len;
	memcpy(buf, d->body + d->body_off, n);
	d->body_off += n;
	return (ssize_t)n;
}

static int take_state(struct dest *d)
{
	struct state_stats st;
	char why[512];
	d->res->phase = MIG_PHASE_STATE;
	int ret = state_decode_keep_ram(d->m, (struct state_source){ .read = state_read, .ctx = d }, d->want->scratch,
					&st, why, sizeof(why));
	if (ret) {
		if (d->err[0])
			return ret; /* a message failed or the source did: next_message() said which */
		snprintf(d->err, d->errlen, "migration stream: the final state (message %llu): %s",
			 (unsigned long long)d->res->messages, why);
		return ret == -ENOMEM ? ret : -EBADMSG;
	}
	d->res->state_bytes = st.bytes;
	if (d->body_off != d->h.len)
		return bad(d, "bytes left over after the state's END");
	if (!d->state_ended) {
		int r = next_message(d);
		if (r)
			return r;
	}
	if (d->h.kind != MIG_COMPLETE)
		return bad(d, "COMPLETE must follow the state");
	if (d->h.len != MIG_COMPLETE_SIZE)
		return bad(d, "body must be 16 bytes");
	if (get_le64(d->body) != st.bytes)
		return bad(d, "state length disagrees with the state received");
	if (d->res->storage) {
		char syncwhy[256];
		ret = d->want->disk->sync(d->want->disk_ctx, syncwhy, sizeof(syncwhy));
		if (ret) {
			snprintf(d->err, d->errlen, "migration: cannot make the disk replicas durable: %s", syncwhy);
			return ret;
		}
	}
	d->res->phase = MIG_PHASE_COMPLETE;
	d->ops->confirm(d->ctx);
	return 0;
}

static int take_cancel(struct dest *d)
{
	char raw[MIG_CANCEL_MAX + 1], msg[4 * MIG_CANCEL_MAX + 1];
	size_t n = d->h.len < MIG_CANCEL_MAX ? d->h.len : MIG_CANCEL_MAX;
	memcpy(raw, d->body, n);
	raw[n] = '\0';
	/* printable ASCII only: the peer's text reaches a terminal */
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < sizeof(msg); i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			msg[o++] = (char)c;
		else
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, "\\x%02x", c);
	}
	msg[o] = '\0';
	snprintf(d->err, d->errlen, "the source cancelled the migration: %s", msg);
	return -ECANCELED;
}

/* Before the first message after a resync's round 0: the replicas' verdict on its digests. */
static int take_comparison(struct dest *d)
{
	d->compared = true;
	char why[256];
	int ret = d->want->disk->compared ? d->want->disk->compared(d->want->disk_ctx, why, sizeof(why)) : 0;
	if (ret) {
		d->res->refused_config = ret == -EINVAL;
		snprintf(d->err, d->errlen, "%s", why);
	}
	return ret;
}

int mig_dest_decode(struct machine *m, const struct mig_source_ops *ops, void *ctx, struct mig_dest_result *res,
		    char *err, size_t errlen)
{
	return mig_dest_decode_kind(m, false, ops, ctx, res, err, errlen);
}

int mig_dest_decode_kind(struct machine *m, bool want_clone, const struct mig_source_ops *ops, void *ctx,
			 struct mig_dest_result *res, char *err, size_t errlen)
{
	struct mig_dest_want want = { .clone = want_clone, .storage = MIG_STORAGE_EITHER };
	return mig_dest_decode_want(m, &want, ops, ctx, res, err, errlen);
}

int mig_dest_decode_want(struct machine *m, const struct mig_dest_want *want, const struct mig_source_ops *ops,
			 void *ctx, struct mig_dest_result *res, char *err, size_t errlen)
{
	struct dest d = { .m = m, .want = want, .ops = ops, .ctx = ctx, .res = res, .err = err, .errlen = errlen };
	memset(res, 0, sizeof(*res));
	err[0] = '\0';
	int ret = next_message(&d);
	if (!ret)
		ret = take_start(&d);
	if (!ret && res->storage) {
		ret = next_message(&d);
		if (!ret)
			ret = take_disks(&d);
	}
	while (!ret && res->phase == MIG_PHASE_PAGES) {
		ret = next_message(&d);
		if (!ret && res->resync && !d.compared && (d.h.round > 0 || d.h.kind == MIG_STATE))
			ret = take_comparison(&d);
		if (ret)
			break;
		switch (d.h.kind) {
		case MIG_PAGES:
			ret = take_pages(&d);
			break;
		case MIG_BLOCKS:
			ret = take_blocks(&d);
			break;
		case MIG_STATE:
			ret = take_state(&d);
			break;
		case MIG_CANCEL:
			ret = take_cancel(&d);
			break;
		default:
			ret = bad(&d, "not allowed while pages are coming");
		}
	}
	if (ret)
		return ret;
	ret = next_message(&d);
	if (ret)
		return ret;
	if (d.h.kind == MIG_CANCEL)
		return take_cancel(&d);
	if (d.h.kind != MIG_HANDOVER)
		return bad(&d, "HANDOVER must follow COMPLETE");
	if (d.h.len != MIG_HANDOVER_SIZE)
		return bad(&d, "body must be 8 bytes");
	if (res->arbiter && get_le64(d.body) != res->epoch)
		return bad(&d, "the epoch differs from START's");
	res->epoch = get_le64(d.body);
	res->phase = MIG_PHASE_RUN;
	ops->confirm(ctx);
	return 0;
}
