/*
 * eventlog.h — encoder and decoder of the event log (docs/log-format.md, version 1).
 *
 * The log is a header followed by records {kind, length, lsn, icount, payload, crc}. This module
 * only converts between bytes and structs and validates; files (logfile.h) and the channel move
 * the bytes. Decoding never trusts a size before checking it against the kind's cap and never
 * reads past the buffer it is given: a bad record is an error with a message naming the field.
 */
#ifndef FTVM_REPLAY_EVENTLOG_H
#define FTVM_REPLAY_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/event.h"
#include "vm/icount.h"

#define EVLOG_VERSION 1
#define EVLOG_HEADER_SIZE 256
#define EVLOG_RECORD_HEAD 24
#define EVLOG_RECORD_TAIL 4
#define EVLOG_RECORD_OVERHEAD (EVLOG_RECORD_HEAD + EVLOG_RECORD_TAIL)
#define EVLOG_MAX_PAYLOAD (16u + VM_EVENT_MAX_DISK_DATA + 48u)
#define EVLOG_MAX_RECORD (EVLOG_RECORD_OVERHEAD + EVLOG_MAX_PAYLOAD)
#define EVLOG_VM_NAME_MAX 64
#define EVLOG_SUMMARY_MAX 156

enum evlog_kind {
	EVLOG_TIME = VM_EV_TIME,
	EVLOG_NET_RX = VM_EV_NET_RX,
	EVLOG_DISK_DONE = VM_EV_DISK_DONE,
	EVLOG_RNG = VM_EV_RNG,
	EVLOG_CONSOLE_IN = VM_EV_CONSOLE_IN,
	EVLOG_DISK_DIGEST = 6, /* a read's completion with the digest of its bytes instead of them */
	EVLOG_CHECK = 16, /* digests the replayer verifies */
	EVLOG_END = 17,   /* the recording ended cleanly */
};

struct evlog_header {
	uint64_t config_digest;
	uint64_t start_lsn;
	char vm_name[EVLOG_VM_NAME_MAX];
	char config_summary[EVLOG_SUMMARY_MAX];
};

struct evlog_record {
	enum evlog_kind kind;
	uint64_t lsn;
	icount_t icount;
	uint32_t len;
	const uint8_t *payload; /* points into the buffer that was decoded */
};

enum evlog_check_scope { EVLOG_CHECK_CPU = 1u << 0, EVLOG_CHECK_MACHINE = 1u << 1 };

/* The running digests of everything the guest output (docs/log-format.md, CHECK). */
struct evlog_outputs {
	uint64_t console;
	uint64_t net;
	uint64_t disk;
	uint64_t count;
};

struct evlog_check {
	uint32_t scope;
	uint64_t cpu_digest;
	uint64_t machine_digest;
	struct evlog_outputs outputs;
};

/* DISK_DIGEST: a successful read of `len` bytes whose XXH3-128 is digest_lo/digest_hi. */
struct evlog_disk_digest {
	uint32_t disk;
	uint64_t request;
	uint32_t len;
	uint64_t digest_lo, digest_hi;
};

struct evlog_end {
	uint32_t exit;
	int32_t status;
	uint64_t machine_digest;
	uint64_t outputs;
};

/* Header: encode into exactly EVLOG_HEADER_SIZE bytes; decode validates everything but the
 * config digest (the caller compares that). */
void evlog_encode_header(const struct evlog_header *h, uint8_t out[EVLOG_HEADER_SIZE]);
int evlog_decode_header(const uint8_t *buf, size_t len, struct evlog_header *h, char *err,
			size_t errlen) FTVM_MUST_CHECK;

/* Record: encode the record (payload already built) into out, which must hold
 * EVLOG_RECORD_OVERHEAD + r->len bytes; returns the bytes written. */
size_t evlog_encode_record(const struct evlog_record *r, uint8_t *out);
/* Decodes one record from the start of buf. Returns 0 with *used set, -EAGAIN when buf holds
 * only part of a record (*used = bytes needed in total, when known), or -EBADMSG with a message.
 * Checks the fields of the record itself; sequence rules are evlog_check_sequence()'s. */
int evlog_decode_record(const uint8_t *buf, size_t len, struct evlog_record *r, size_t *used,
			char *err, size_t errlen) FTVM_MUST_CHECK;
/* LSN must follow prev_lsn by one, icount must not go back. */
int evlog_check_sequence(const struct evlog_record *r, uint64_t prev_lsn, icount_t prev_icount,
			 char *err, size_t errlen) FTVM_MUST_CHECK;

/* Payloads. Builders write into out (capacity cap) and return the payload length, or 0 if it
 * does not fit. Parsers validate sizes and fields and point into the record. */
uint32_t evlog_payload_from_event(const struct vm_event *ev, uint8_t *out, uint32_t cap);
int evlog_event_from_record(const struct evlog_record *r, struct vm_event *ev, char *err,
			    size_t errlen) FTVM_MUST_CHECK;
uint32_t evlog_payload_from_check(const struct evlog_check *c, uint8_t *out, uint32_t cap);
int evlog_check_from_record(const struct evlog_record *r, struct evlog_check *c, char *err,
			    size_t errlen) FTVM_MUST_CHECK;
/* DISK_DIGEST from a successful read's completion (ev->len > 0 bytes of data); its digest is
 * evlog_disk_data_digest() of the data. */
uint32_t evlog_payload_from_disk_read(const struct vm_event *ev, uint8_t *out, uint32_t cap);
int evlog_disk_digest_from_record(const struct evlog_record *r, struct evlog_disk_digest *d, char *err,
				  size_t errlen) FTVM_MUST_CHECK;
/* XXH3-128 of a read's bytes, as DISK_DIGEST carries it. */
void evlog_disk_data_digest(const uint8_t *data, uint32_t len, uint64_t *lo, uint64_t *hi);
uint32_t evlog_payload_from_end(const struct evlog_end *e, uint8_t *out, uint32_t cap);
int evlog_end_from_record(const struct evlog_record *r, struct evlog_end *e, char *err,
			  size_t errlen) FTVM_MUST_CHECK;

const char *evlog_kind_name(enum evlog_kind kind);

/* Output digests: fold one output into the running digests (recorder and replayer alike). */
void evlog_outputs_console(struct evlog_outputs *o, const uint8_t *buf, size_t len);
void evlog_outputs_net(struct evlog_outputs *o, unsigned nic, const uint8_t *frame, size_t len);
void evlog_outputs_disk(struct evlog_outputs *o, unsigned disk, const struct vm_disk_request *req);

#endif
