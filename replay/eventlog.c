/*
 * eventlog.c — bytes <-> structs for the event log, exactly as docs/log-format.md specifies.
 * Little-endian helpers below keep the layout explicit; every decode path checks the length it
 * is about to read first.
 */
#include "replay/eventlog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "util/byteorder.h"
#include "util/crc32c.h"

static const uint8_t evlog_magic[8] = { 'F', 'T', 'V', 'M', 'L', 'O', 'G', 0 };

/* Header field offsets (docs/log-format.md, "Header"). */
enum {
	HDR_MAGIC = 0,
	HDR_VERSION = 8,
	HDR_SIZE = 10,
	HDR_FLAGS = 12,
	HDR_CONFIG_DIGEST = 16,
	HDR_START_LSN = 24,
	HDR_VM_NAME = 32,
	HDR_SUMMARY = 96,
	HDR_CRC = 252,
};

/* Record header offsets. */
enum { REC_KIND = 0, REC_FLAGS = 1, REC_RESERVED = 2, REC_LENGTH = 4, REC_LSN = 8, REC_ICOUNT = 16 };

#define TIME_PAYLOAD 16u
#define CHECK_PAYLOAD 64u
#define END_PAYLOAD 24u
#define DISK_DIGEST_PAYLOAD 40u
#define NET_RX_MIN_FRAME 14u

static int fail(char *err, size_t errlen, const char *fmt, ...) FTVM_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

const char *evlog_kind_name(enum evlog_kind kind)
{
	switch (kind) {
	case EVLOG_TIME: return "TIME";
	case EVLOG_NET_RX: return "NET_RX";
	case EVLOG_DISK_DONE: return "DISK_DONE";
	case EVLOG_RNG: return "RNG";
	case EVLOG_CONSOLE_IN: return "CONSOLE_IN";
	case EVLOG_DISK_DIGEST: return "DISK_DIGEST";
	case EVLOG_CHECK: return "CHECK";
	case EVLOG_END: return "END";
	}
	return "unknown";
}

/* Largest payload each kind may carry; 0 for an unknown kind. */
static uint32_t kind_cap(unsigned kind)
{
	switch (kind) {
	case EVLOG_TIME: return TIME_PAYLOAD;
	case EVLOG_NET_RX: return 4 + VM_EVENT_MAX_FRAME;
	case EVLOG_DISK_DONE: return 16 + VM_EVENT_MAX_DISK_DATA;
	case EVLOG_RNG: return 4 + VM_EVENT_MAX_BYTES;
	case EVLOG_CONSOLE_IN: return VM_EVENT_MAX_BYTES;
	case EVLOG_DISK_DIGEST: return DISK_DIGEST_PAYLOAD;
	case EVLOG_CHECK: return CHECK_PAYLOAD;
	case EVLOG_END: return END_PAYLOAD;
	}
	return 0;
}

static void copy_padded(uint8_t *dst, const char *src, size_t field)
{
	memset(dst, 0, field);
	size_t n = strnlen(src, field - 1);
	memcpy(dst, src, n);
}

void evlog_encode_header(const struct evlog_header *h, uint8_t out[EVLOG_HEADER_SIZE])
{
	memset(out, 0, EVLOG_HEADER_SIZE);
	memcpy(out + HDR_MAGIC, evlog_magic, sizeof(evlog_magic));
	put_le16(out + HDR_VERSION, EVLOG_VERSION);
	put_le16(out + HDR_SIZE, EVLOG_HEADER_SIZE);
	put_le32(out + HDR_FLAGS, 0);
	put_le64(out + HDR_CONFIG_DIGEST, h->config_digest);
	put_le64(out + HDR_START_LSN, h->start_lsn);
	copy_padded(out + HDR_VM_NAME, h->vm_name, EVLOG_VM_NAME_MAX);
	copy_padded(out + HDR_SUMMARY, h->config_summary, EVLOG_SUMMARY_MAX);
	put_le32(out + HDR_CRC, crc32c(0, out, HDR_CRC));
}

int evlog_decode_header(const uint8_t *buf, size_t len, struct evlog_header *h, char *err, size_t errlen)
{
	if (len < EVLOG_HEADER_SIZE)
		return fail(err, errlen, "log header: truncated (%zu of %d bytes)", len, EVLOG_HEADER_SIZE);
	if (memcmp(buf + HDR_MAGIC, evlog_magic, sizeof(evlog_magic)) != 0)
		return fail(err, errlen, "log header: bad magic (not an ftvm event log)");
	if (get_le16(buf + HDR_VERSION) != EVLOG_VERSION)
		return fail(err, errlen, "log header: version %u, this ftvm reads version %d",
			    get_le16(buf + HDR_VERSION), EVLOG_VERSION);
	if (get_le16(buf + HDR_SIZE) != EVLOG_HEADER_SIZE)
		return fail(err, errlen, "log header: header_size %u, expected %d", get_le16(buf + HDR_SIZE),
			    EVLOG_HEADER_SIZE);
	uint32_t crc = crc32c(0, buf, HDR_CRC);
	if (get_le32(buf + HDR_CRC) != crc)
		return fail(err, errlen, "log header: CRC mismatch (stored %08x, computed %08x)",
			    get_le32(buf + HDR_CRC), crc);
	if (get_le32(buf + HDR_FLAGS) != 0)
		return fail(err, errlen, "log header: unknown flags %08x", get_le32(buf + HDR_FLAGS));
	if (memchr(buf + HDR_VM_NAME, 0, EVLOG_VM_NAME_MAX) == NULL ||
	    memchr(buf + HDR_SUMMARY, 0, EVLOG_SUMMARY_MAX) == NULL)
		return fail(err, errlen, "log header: vm_name or config_summary not NUL-terminated");
	h->config_digest = get_le64(buf + HDR_CONFIG_DIGEST);
	h->start_lsn = get_le64(buf + HDR_START_LSN);
	memcpy(h->vm_name, buf + HDR_VM_NAME, EVLOG_VM_NAME_MAX);
	memcpy(h->config_summary, buf + HDR_SUMMARY, EVLOG_SUMMARY_MAX);
	return 0;
}

size_t evlog_encode_record(const struct evlog_record *r, uint8_t *out)
{
	out[REC_KIND] = (uint8_t)r->kind;
	out[REC_FLAGS] = 0;
	put_le16(out + REC_RESERVED, 0);
	put_le32(out + REC_LENGTH, r->len);
	put_le64(out + REC_LSN, r->lsn);
	put_le64(out + REC_ICOUNT, r->icount);
	if (r->len && out + EVLOG_RECORD_HEAD != r->payload)
		memmove(out + EVLOG_RECORD_HEAD, r->payload, r->len);
	uint32_t crc = crc32c(0, out, EVLOG_RECORD_HEAD + r->len);
	put_le32(out + EVLOG_RECORD_HEAD + r->len, crc);
	return EVLOG_RECORD_OVERHEAD + r->len;
}

int evlog_decode_record(const uint8_t *buf, size_t len, struct evlog_record *r, size_t *used, char *err,
			size_t errlen)
{
	*used = EVLOG_RECORD_HEAD;
	if (len < EVLOG_RECORD_HEAD)
		return -EAGAIN;
	unsigned kind = buf[REC_KIND];
	uint32_t length = get_le32(buf + REC_LENGTH);
	uint64_t lsn = get_le64(buf + REC_LSN);
	uint32_t cap = kind_cap(kind);

	/* The size decides how much we read next, so check it before anything else. */
	if (cap == 0)
		return fail(err, errlen, "record lsn %llu: unknown kind %u", (unsigned long long)lsn, kind);
	if (length > cap)
		return fail(err, errlen, "record lsn %llu (%s): length %u exceeds the cap %u",
			    (unsigned long long)lsn, evlog_kind_name(kind), length, cap);
	*used = EVLOG_RECORD_OVERHEAD + (size_t)length;
	if (len < *used)
		return -EAGAIN;
	uint32_t crc = crc32c(0, buf, EVLOG_RECORD_HEAD + length);
	uint32_t stored = get_le32(buf + EVLOG_RECORD_HEAD + length);
	if (crc != stored)
		return fail(err, errlen, "record lsn %llu (%s): CRC mismatch (stored %08x, computed %08x)",
			    (unsigned long long)lsn, evlog_kind_name(kind), stored, crc);
	if (buf[REC_FLAGS] != 0 || get_le16(buf + REC_RESERVED) != 0)
		return fail(err, errlen, "record lsn %llu (%s): reserved fields not zero",
			    (unsigned long long)lsn, evlog_kind_name(kind));
	r->kind = (enum evlog_kind)kind;
	r->lsn = lsn;
	r->icount = get_le64(buf + REC_ICOUNT);
	r->len = length;
	r->payload = buf + EVLOG_RECORD_HEAD;
	return 0;
}

int evlog_check_sequence(const struct evlog_record *r, uint64_t prev_lsn, icount_t prev_icount, char *err,
			 size_t errlen)
{
	if (r->lsn != prev_lsn + 1)
		return fail(err, errlen, "record lsn %llu (%s): expected lsn %llu", (unsigned long long)r->lsn,
			    evlog_kind_name(r->kind), (unsigned long long)(prev_lsn + 1));
	if (r->icount < prev_icount)
		return fail(err, errlen, "record lsn %llu (%s): icount %llu goes back from %llu",
			    (unsigned long long)r->lsn, evlog_kind_name(r->kind), (unsigned long long)r->icount,
			    (unsigned long long)prev_icount);
	return 0;
}

uint32_t evlog_payload_from_event(const struct vm_event *ev, uint8_t *out, uint32_t cap)
{
	uint32_t need;

	switch (ev->kind) {
	case VM_EV_TIME:
		if (cap < TIME_PAYLOAD)
			return 0;
		put_le64(out, ev->time);
		put_le64(out + 8, ev->ticks_per_insn);
		return TIME_PAYLOAD;
	case VM_EV_NET_RX:
	case VM_EV_RNG:
		need = 4 + ev->len;
		if (cap < need)
			return 0;
		put_le32(out, ev->device);
		memcpy(out + 4, ev->data, ev->len);
		return need;
	case VM_EV_DISK_DONE:
		need = 16 + ev->len;
		if (cap < need)
			return 0;
		put_le32(out, ev->device);
		put_le32(out + 4, ev->status);
		put_le64(out + 8, ev->request);
		memcpy(out + 16, ev->data, ev->len);
		return need;
	case VM_EV_CONSOLE_IN:
		if (cap < ev->len)
			return 0;
		memcpy(out, ev->data, ev->len);
		return ev->len;
	}
	return 0;
}

static int bad_payload(const struct evlog_record *r, char *err, size_t errlen, const char *what)
{
	return fail(err, errlen, "record lsn %llu (%s) at icount %llu: %s", (unsigned long long)r->lsn,
		    evlog_kind_name(r->kind), (unsigned long long)r->icount, what);
}

int evlog_event_from_record(const struct evlog_record *r, struct vm_event *ev, char *err, size_t errlen)
{
	memset(ev, 0, sizeof(*ev));
	ev->kind = (enum vm_event_kind)r->kind;
	ev->icount = r->icount;
	switch (r->kind) {
	case EVLOG_TIME:
		if (r->len != TIME_PAYLOAD)
			return bad_payload(r, err, errlen, "payload is not 16 bytes");
		ev->time = get_le64(r->payload);
		ev->ticks_per_insn = get_le64(r->payload + 8);
		if (ev->ticks_per_insn == 0)
			return bad_payload(r, err, errlen, "ticks_per_insn is zero");
		return 0;
	case EVLOG_NET_RX:
	case EVLOG_RNG:
		if (r->len < 5)
			return bad_payload(r, err, errlen, "payload shorter than device index + 1 byte");
		ev->device = get_le32(r->payload);
		ev->data = r->payload + 4;
		ev->len = r->len - 4;
		if (r->kind == EVLOG_NET_RX && ev->len < NET_RX_MIN_FRAME)
			return bad_payload(r, err, errlen, "frame shorter than an ethernet header");
		return 0;
	case EVLOG_DISK_DONE:
		if (r->len < 16)
			return bad_payload(r, err, errlen, "payload shorter than 16 bytes");
		ev->device = get_le32(r->payload);
		ev->status = get_le32(r->payload + 4);
		ev->request = get_le64(r->payload + 8);
		ev->data = r->payload + 16;
		ev->len = r->len - 16;
		if (ev->status > VM_DISK_UNSUPP)
			return bad_payload(r, err, errlen, "unknown disk status");
		if (ev->len % 512 != 0)
			return bad_payload(r, err, errlen, "data length not a multiple of 512");
		return 0;
	case EVLOG_CONSOLE_IN:
		if (r->len == 0)
			return bad_payload(r, err, errlen, "empty console input");
		ev->data = r->payload;
		ev->len = r->len;
		return 0;
	case EVLOG_DISK_DIGEST: /* evlog_disk_digest_from_record(): the data comes from elsewhere */
	case EVLOG_CHECK:
	case EVLOG_END:
		break;
	}
	return bad_payload(r, err, errlen, "not an input event");
}

void evlog_disk_data_digest(const uint8_t *data, uint32_t len, uint64_t *lo, uint64_t *hi)
{
	XXH128_hash_t h = XXH3_128bits(data, len);
	*lo = h.low64;
	*hi = h.high64;
}

uint32_t evlog_payload_from_disk_read(const struct vm_event *ev, uint8_t *out, uint32_t cap)
{
	if (cap < DISK_DIGEST_PAYLOAD || ev->kind != VM_EV_DISK_DONE || ev->status != VM_DISK_OK || ev->len == 0)
		return 0;
	uint64_t lo, hi;
	evlog_disk_data_digest(ev->data, ev->len, &lo, &hi);
	put_le32(out, ev->device);
	put_le32(out + 4, VM_DISK_OK);
	put_le64(out + 8, ev->request);
	put_le32(out + 16, ev->len);
	put_le32(out + 20, 0);
	put_le64(out + 24, lo);
	put_le64(out + 32, hi);
	return DISK_DIGEST_PAYLOAD;
}

int evlog_disk_digest_from_record(const struct evlog_record *r, struct evlog_disk_digest *d, char *err,
				  size_t errlen)
{
	if (r->kind != EVLOG_DISK_DIGEST || r->len != DISK_DIGEST_PAYLOAD)
		return bad_payload(r, err, errlen, "not a 40-byte DISK_DIGEST");
	d->disk = get_le32(r->payload);
	d->request = get_le64(r->payload + 8);
	d->len = get_le32(r->payload + 16);
	d->digest_lo = get_le64(r->payload + 24);
	d->digest_hi = get_le64(r->payload + 32);
	if (get_le32(r->payload + 4) != VM_DISK_OK || get_le32(r->payload + 20) != 0)
		return bad_payload(r, err, errlen, "status not 0 or reserved field not zero");
	if (d->len == 0 || d->len % 512 != 0 || d->len > VM_EVENT_MAX_DISK_DATA)
		return bad_payload(r, err, errlen, "read length not a non-zero multiple of 512 up to 1 MiB");
	return 0;
}

uint32_t evlog_payload_from_check(const struct evlog_check *c, uint8_t *out, uint32_t cap)
{
	if (cap < CHECK_PAYLOAD)
		return 0;
	memset(out, 0, CHECK_PAYLOAD);
	put_le32(out, c->scope);
	put_le64(out + 8, c->cpu_digest);
	put_le64(out + 16, c->machine_digest);
	put_le64(out + 24, c->outputs.console);
	put_le64(out + 32, c->outputs.net);
	put_le64(out + 40, c->outputs.disk);
	put_le64(out + 48, c->outputs.count);
	return CHECK_PAYLOAD;
}

int evlog_check_from_record(const struct evlog_record *r, struct evlog_check *c, char *err, size_t errlen)
{
	if (r->kind != EVLOG_CHECK || r->len != CHECK_PAYLOAD)
		return bad_payload(r, err, errlen, "not a 64-byte CHECK");
	c->scope = get_le32(r->payload);
	if (c->scope & ~(uint32_t)(EVLOG_CHECK_CPU | EVLOG_CHECK_MACHINE) || get_le32(r->payload + 4) ||
	    get_le64(r->payload + 56))
		return bad_payload(r, err, errlen, "unknown scope bits or reserved fields not zero");
	c->cpu_digest = get_le64(r->payload + 8);
	c->machine_digest = get_le64(r->payload + 16);
	c->outputs.console = get_le64(r->payload + 24);
	c->outputs.net = get_le64(r->payload + 32);
	c->outputs.disk = get_le64(r->payload + 40);
	c->outputs.count = get_le64(r->payload + 48);
	return 0;
}

uint32_t evlog_payload_from_end(const struct evlog_end *e, uint8_t *out, uint32_t cap)
{
	if (cap < END_PAYLOAD)
		return 0;
	put_le32(out, e->exit);
	put_le32(out + 4, (uint32_t)e->status);
	put_le64(out + 8, e->machine_digest);
	put_le64(out + 16, e->outputs);
	return END_PAYLOAD;
}

int evlog_end_from_record(const struct evlog_record *r, struct evlog_end *e, char *err, size_t errlen)
{
	if (r->kind != EVLOG_END || r->len != END_PAYLOAD)
		return bad_payload(r, err, errlen, "not a 24-byte END");
	e->exit = get_le32(r->payload);
	e->status = (int32_t)get_le32(r->payload + 4);
	e->machine_digest = get_le64(r->payload + 8);
	e->outputs = get_le64(r->payload + 16);
	if (e->exit > 3)
		return bad_payload(r, err, errlen, "unknown exit kind");
	return 0;
}

void evlog_outputs_console(struct evlog_outputs *o, const uint8_t *buf, size_t len)
{
	o->console = XXH3_64bits_withSeed(buf, len, o->console);
	o->count++;
}

void evlog_outputs_net(struct evlog_outputs *o, unsigned nic, const uint8_t *frame, size_t len)
{
	uint8_t head[8];
	put_le32(head, nic);
	put_le32(head + 4, (uint32_t)len);
	o->net = XXH3_64bits_withSeed(head, sizeof(head), o->net);
	o->net = XXH3_64bits_withSeed(frame, len, o->net);
	o->count++;
}

void evlog_outputs_disk(struct evlog_outputs *o, unsigned disk, const struct vm_disk_request *req)
{
	uint8_t head[28];
	put_le32(head, disk);
	put_le32(head + 4, (uint32_t)req->op);
	put_le64(head + 8, req->id);
	put_le64(head + 16, req->sector);
	put_le32(head + 24, req->len);
	o->disk = XXH3_64bits_withSeed(head, sizeof(head), o->disk);
	if (req->op == VM_DISK_WRITE)
		o->disk = XXH3_64bits_withSeed(req->data, req->len, o->disk);
	o->count++;
}
