/*
 * protocol.h — the channel's frame format (docs/channel-protocol.md): constants, header
 * encode/decode with every check the document lists, and the HELLO payload. Pure functions, no
 * I/O, so the tests can build good and bad frames byte by byte.
 */
#ifndef FTVM_LOGCHANNEL_PROTOCOL_H
#define FTVM_LOGCHANNEL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "logchannel/channel_types.h"
#include "util/byteorder.h"
#include "util/compiler.h"

#define CHPROTO_MAGIC 0x434C5446u /* "FTLC" as little-endian bytes */
#define CHPROTO_VERSION 1u
#define CHPROTO_HDR_SIZE 24u
#define CHPROTO_HELLO_FIXED 32u
#define CHPROTO_HELLO_MAX (CHPROTO_HELLO_FIXED + CHANNEL_MAX_VM_ID)
#define CHPROTO_REFUSE_MAX 256u
#define CHPROTO_CONNDATA_SIZE 48u
#define CHPROTO_MAX_FRAME (CHPROTO_HDR_SIZE + CHANNEL_MAX_RECORD)

/* Header field offsets. */
#define CHPROTO_OFF_MAGIC 0
#define CHPROTO_OFF_VERSION 4
#define CHPROTO_OFF_KIND 5
#define CHPROTO_OFF_FLAGS 6
#define CHPROTO_OFF_LEN 8
#define CHPROTO_OFF_CRC 12
#define CHPROTO_OFF_ARG 16

enum chproto_kind {
	CHPROTO_HELLO = 1,
	CHPROTO_WELCOME = 2,
	CHPROTO_REFUSE = 3,
	CHPROTO_RECORD = 4,
	CHPROTO_ACK = 5,
	CHPROTO_HEARTBEAT = 6,
	CHPROTO_BYE = 7,
	CHPROTO_CONNDATA = 8,
	CHPROTO_KIND_LIMIT, /* first unknown kind */
};

enum chproto_refuse_reason {
	CHPROTO_REFUSE_VERSION = 1,
	CHPROTO_REFUSE_VM_ID = 2,
	CHPROTO_REFUSE_EPOCH = 3,
	CHPROTO_REFUSE_MALFORMED = 4,
	CHPROTO_REFUSE_TRANSPORT = 5,
	CHPROTO_REFUSE_PURPOSE = 6,   /* a log offered to a migration's destination, or the reverse */
	CHPROTO_REFUSE_STREAM = 7,    /* migration: the receiver refuses the stream (after WELCOME) */
};

struct chproto_hdr {
	uint8_t version;
	uint8_t kind;
	uint16_t flags;
	uint32_t len;
	uint32_t crc;
	uint64_t arg;
};

/* HEARTBEAT from the backup: bit 63 of arg says it has replayed every record it received. */
#define CHPROTO_HB_CAUGHT_UP (1ull << 63)

struct chproto_hello {
	uint64_t epoch;
	uint64_t start_lsn;
	uint32_t max_record;
	uint32_t heartbeat_ms;
	uint32_t timeout_ms;
	uint16_t vm_id_len;
	uint16_t transport; /* enum channel_transport the primary will use after WELCOME */
	char vm_id[CHANNEL_MAX_VM_ID + 1]; /* NUL-terminated copy */
};

/* Name of a kind for messages ("RECORD", "kind 42"). Returns a static string or @tmp. */
const char *chproto_kind_name(unsigned kind, char *tmp, size_t tmplen);

/* Largest payload a frame of @kind may carry (0 for unknown kinds). */
uint32_t chproto_max_payload(unsigned kind);

/*
 * Build a 24-byte header for @kind/@arg and a payload of @len bytes; the CRC covers @payload,
 * which may be NULL when the caller continues the CRC itself (see chproto_crc_finish()).
 */
void chproto_encode(uint8_t hdr[CHPROTO_HDR_SIZE], unsigned kind, uint64_t arg, const void *payload,
		    uint32_t len);
/* Same with an explicit version (tests build frames of other versions with it). */
void chproto_encode_version(uint8_t hdr[CHPROTO_HDR_SIZE], unsigned version, unsigned kind,
			    uint64_t arg, const void *payload, uint32_t len);

/*
 * Parse and check a header: magic, version, flags, known kind, len within the kind's cap.
 * Returns 0, -EBADMSG (garbage: bad magic / flags), -EPROTONOSUPPORT (version), -EPROTO (kind),
 * -EMSGSIZE (len); @why gets the message.
 */
int chproto_decode(const uint8_t hdr[CHPROTO_HDR_SIZE], struct chproto_hdr *out, char *why,
		   size_t whylen) FTVM_MUST_CHECK;

/* Check the CRC of a decoded frame whose payload is @payload; -EBADMSG with @why if wrong. */
int chproto_check_crc(const uint8_t hdr[CHPROTO_HDR_SIZE], const struct chproto_hdr *h,
		      const void *payload, char *why, size_t whylen) FTVM_MUST_CHECK;

/* HELLO payload; returns its length. @out holds CHPROTO_HELLO_MAX bytes. */
uint32_t chproto_hello_encode(uint8_t *out, const struct chproto_hello *h);
/* -EPROTO with @why for a malformed HELLO payload. */
int chproto_hello_decode(const uint8_t *in, uint32_t len, struct chproto_hello *out, char *why,
			 size_t whylen) FTVM_MUST_CHECK;

#endif
