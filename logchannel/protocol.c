/*
 * protocol.c — frame header and HELLO encoding/decoding for the logging channel. Every check
 * listed in docs/channel-protocol.md lives here, so the TCP and RDMA transports and the tests
 * agree on what a bad frame is and on the words used to say so.
 */
#include "logchannel/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/crc32c.h"

static const char *const kind_names[CHPROTO_KIND_LIMIT] = {
	[CHPROTO_HELLO] = "HELLO",	   [CHPROTO_WELCOME] = "WELCOME", [CHPROTO_REFUSE] = "REFUSE",
	[CHPROTO_RECORD] = "RECORD",	   [CHPROTO_ACK] = "ACK",	  [CHPROTO_HEARTBEAT] = "HEARTBEAT",
	[CHPROTO_BYE] = "BYE",		   [CHPROTO_CONNDATA] = "CONNDATA",
};

const char *chproto_kind_name(unsigned kind, char *tmp, size_t tmplen)
{
	if (kind < CHPROTO_KIND_LIMIT && kind_names[kind])
		return kind_names[kind];
	snprintf(tmp, tmplen, "kind %u", kind);
	return tmp;
}

uint32_t chproto_max_payload(unsigned kind)
{
	switch (kind) {
	case CHPROTO_HELLO:
		return CHPROTO_HELLO_MAX;
	case CHPROTO_REFUSE:
		return CHPROTO_REFUSE_MAX;
	case CHPROTO_RECORD:
		return CHANNEL_MAX_RECORD;
	case CHPROTO_CONNDATA:
		return CHPROTO_CONNDATA_SIZE;
	default: /* WELCOME, ACK, HEARTBEAT, BYE carry everything in arg */
		return 0;
	}
}

void chproto_encode_version(uint8_t hdr[CHPROTO_HDR_SIZE], unsigned version, unsigned kind,
			    uint64_t arg, const void *payload, uint32_t len)
{
	put_le32(hdr + CHPROTO_OFF_MAGIC, CHPROTO_MAGIC);
	hdr[CHPROTO_OFF_VERSION] = (uint8_t)version;
	hdr[CHPROTO_OFF_KIND] = (uint8_t)kind;
	put_le16(hdr + CHPROTO_OFF_FLAGS, 0);
	put_le32(hdr + CHPROTO_OFF_LEN, len);
	put_le32(hdr + CHPROTO_OFF_CRC, 0);
	put_le64(hdr + CHPROTO_OFF_ARG, arg);
	uint32_t crc = crc32c(0, hdr, CHPROTO_HDR_SIZE);
	if (payload)
		crc = crc32c(crc, payload, len);
	put_le32(hdr + CHPROTO_OFF_CRC, crc);
}

void chproto_encode(uint8_t hdr[CHPROTO_HDR_SIZE], unsigned kind, uint64_t arg, const void *payload,
		    uint32_t len)
{
	chproto_encode_version(hdr, CHPROTO_VERSION, kind, arg, payload, len);
}

int chproto_decode(const uint8_t hdr[CHPROTO_HDR_SIZE], struct chproto_hdr *out, char *why,
		   size_t whylen)
{
	char tmp[24];
	uint32_t magic = get_le32(hdr + CHPROTO_OFF_MAGIC);

	if (magic != CHPROTO_MAGIC) {
		snprintf(why, whylen, "garbage: bad frame magic 0x%08x (expected 0x%08x)", magic,
			 CHPROTO_MAGIC);
		return -EBADMSG;
	}
	out->version = hdr[CHPROTO_OFF_VERSION];
	out->kind = hdr[CHPROTO_OFF_KIND];
	out->flags = get_le16(hdr + CHPROTO_OFF_FLAGS);
	out->len = get_le32(hdr + CHPROTO_OFF_LEN);
	out->crc = get_le32(hdr + CHPROTO_OFF_CRC);
	out->arg = get_le64(hdr + CHPROTO_OFF_ARG);
	if (out->version != CHPROTO_VERSION) {
		snprintf(why, whylen, "peer speaks channel protocol version %u, this build speaks %u",
			 out->version, CHPROTO_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (out->flags != 0) {
		snprintf(why, whylen, "garbage: frame flags 0x%04x must be 0", out->flags);
		return -EBADMSG;
	}
	if (out->kind == 0 || out->kind >= CHPROTO_KIND_LIMIT) {
		snprintf(why, whylen, "unknown frame kind %u", out->kind);
		return -EPROTO;
	}
	if (out->len > chproto_max_payload(out->kind)) {
		snprintf(why, whylen, "oversized %s frame: length %u exceeds the cap of %u",
			 chproto_kind_name(out->kind, tmp, sizeof(tmp)), out->len,
			 chproto_max_payload(out->kind));
		return -EMSGSIZE;
	}
	return 0;
}

int chproto_check_crc(const uint8_t hdr[CHPROTO_HDR_SIZE], const struct chproto_hdr *h,
		      const void *payload, char *why, size_t whylen)
{
	uint8_t zeroed[CHPROTO_HDR_SIZE];
	char tmp[24];

	memcpy(zeroed, hdr, CHPROTO_HDR_SIZE);
	put_le32(zeroed + CHPROTO_OFF_CRC, 0);
	uint32_t crc = crc32c(crc32c(0, zeroed, CHPROTO_HDR_SIZE), payload, h->len);
	if (crc != h->crc) {
		snprintf(why, whylen, "corrupt %s frame: CRC32C 0x%08x, computed 0x%08x",
			 chproto_kind_name(h->kind, tmp, sizeof(tmp)), h->crc, crc);
		return -EBADMSG;
	}
	return 0;
}

uint32_t chproto_hello_encode(uint8_t *out, const struct chproto_hello *h)
{
	put_le64(out + 0, h->epoch);
	put_le64(out + 8, h->start_lsn);
	put_le32(out + 16, h->max_record);
	put_le32(out + 20, h->heartbeat_ms);
	put_le32(out + 24, h->timeout_ms);
	put_le16(out + 28, h->vm_id_len);
	put_le16(out + 30, h->transport);
	memcpy(out + CHPROTO_HELLO_FIXED, h->vm_id, h->vm_id_len);
	return CHPROTO_HELLO_FIXED + h->vm_id_len;
}

int chproto_hello_decode(const uint8_t *in, uint32_t len, struct chproto_hello *out, char *why,
			 size_t whylen)
{
	if (len < CHPROTO_HELLO_FIXED) {
		snprintf(why, whylen, "malformed HELLO: %u bytes, at least %u needed", len,
			 CHPROTO_HELLO_FIXED);
		return -EPROTO;
	}
	out->epoch = get_le64(in + 0);
	out->start_lsn = get_le64(in + 8);
	out->max_record = get_le32(in + 16);
	out->heartbeat_ms = get_le32(in + 20);
	out->timeout_ms = get_le32(in + 24);
	out->vm_id_len = get_le16(in + 28);
	out->transport = get_le16(in + 30);
	if (out->transport != CHANNEL_TCP && out->transport != CHANNEL_RDMA) {
		snprintf(why, whylen, "malformed HELLO: unknown transport %u", out->transport);
		return -EPROTO;
	}
	if (out->vm_id_len == 0 || out->vm_id_len > CHANNEL_MAX_VM_ID ||
	    len != CHPROTO_HELLO_FIXED + out->vm_id_len) {
		snprintf(why, whylen, "malformed HELLO: VM id length %u in a %u-byte payload",
			 out->vm_id_len, len);
		return -EPROTO;
	}
	if (out->max_record > CHANNEL_MAX_RECORD) {
		snprintf(why, whylen, "malformed HELLO: max record %u exceeds the cap of %u",
			 out->max_record, CHANNEL_MAX_RECORD);
		return -EPROTO;
	}
	if (out->start_lsn == 0) {
		snprintf(why, whylen, "malformed HELLO: start LSN 0 (LSNs start at 1)");
		return -EPROTO;
	}
	memcpy(out->vm_id, in + CHPROTO_HELLO_FIXED, out->vm_id_len);
	out->vm_id[out->vm_id_len] = '\0';
	if (memchr(out->vm_id, '\0', out->vm_id_len)) {
		snprintf(why, whylen, "malformed HELLO: VM id contains a NUL byte");
		return -EPROTO;
	}
	return 0;
}
