/*
 * state_format.h — a whole machine (RAM included) to and from the state format
 * (docs/state-format.md, version 1).
 *
 * Streaming both ways: the encoder hands section after section to a sink, the decoder pulls them
 * from a source and never holds more than one section, so a snapshot file and a live transfer use
 * the same code with a different sink and source. Pure: no descriptors, no clock; what the bytes
 * travel through is the caller's (host/state_file.h for files).
 *
 * The decoder trusts nothing: the header, every section's type, place, length (capped per type)
 * and CRC32C are checked before the payload is used, every payload must be consumed exactly by its
 * part's field walk, and the parts' restore functions check the values. A refusal names the byte
 * offset and the section.
 */
#ifndef FTVM_VM_STATE_FORMAT_H
#define FTVM_VM_STATE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/compiler.h"
#include "vm/machine.h"

#define STATE_FORMAT_VERSION 1u
#define STATE_HEADER_SIZE 16u
#define STATE_SECTION_HEAD 8u     /* type, length */
#define STATE_SECTION_TAIL 4u     /* CRC32C */
#define STATE_RAM_RUN_HEAD 16u    /* first page, count, reserved */
#define STATE_RAM_RUN_MAX 256u    /* pages per RAM section */
#define STATE_EXTRA_MAX 4096u     /* the REPLAY section's cap */

enum state_section_type {
	STATE_SEC_CONFIG = 1,
	STATE_SEC_MACHINE = 2,
	STATE_SEC_HART = 3,
	STATE_SEC_CLINT = 4,
	STATE_SEC_PLIC = 5,
	STATE_SEC_UART = 6,
	STATE_SEC_FINISHER = 7,
	STATE_SEC_VIRTIO = 8,
	STATE_SEC_REPLAY = 9,
	STATE_SEC_RAM = 10,
	STATE_SEC_END = 15,
};

/* Where encoded bytes go: 0 or -errno (which ends the encoding). */
struct state_sink {
	int (*write)(void *ctx, const void *buf, size_t len);
	void *ctx;
};

/* Where a state comes from: the bytes read into buf, fewer than len only where the stream ends;
 * -errno on a failure. */
struct state_source {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	void *ctx;
};

/* The REPLAY section: bytes a layer above the machine keeps with the state (the replayer's
 * position in its log). The machine neither writes nor reads them. */
struct state_extra {
	bool present;
	uint32_t len;
	uint8_t data[STATE_EXTRA_MAX];
};

struct state_stats {
	uint64_t bytes;               /* of the whole state */
	uint64_t ram_pages;           /* RAM size in pages */
	uint64_t ram_pages_written;   /* pages carried in RAM sections */
	uint64_t ram_pages_zero;      /* touched but all zeros: not written */
	uint64_t ram_pages_untouched; /* never backed on the host: not written (encoder only) */
};

/* Writes the state of m (at a slice boundary, not during machine_run) to sink, with extra's bytes
 * as a REPLAY section when extra is non-NULL and present. 0, or -errno with the reason in err. */
int state_encode(const struct machine *m, struct state_sink sink, const struct state_extra *extra,
		 struct state_stats *stats, char *err, size_t errlen) FTVM_MUST_CHECK;

/* The same from a state saved earlier, for a save that runs beside the vCPU (a live snapshot): s
 * from machine_save() and id from machine_identity() at the cut, ram (ram_size bytes) a copy of
 * guest RAM as it was at the cut, where pages the host never backed are skipped as untouched. */
int state_encode_saved(const struct machine_identity *id, struct machine_state *s, const uint8_t *ram,
		       size_t ram_size, struct state_sink sink, const struct state_extra *extra,
		       struct state_stats *stats, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Reads a state from src into m, a machine just created (not yet run) with the configuration the
 * state was saved with; its RAM is dropped and replaced by the state's pages. Stops right after the
 * END section. A REPLAY section is copied to extra (if non-NULL; extra->present tells). stats may
 * be NULL. 0, or -EBADMSG (corrupt or truncated), -EINVAL (another configuration, or values the
 * machine refuses), -ENOMEM, or the source's -errno, with the offset and section in err; after a
 * failure m may be half restored and must be destroyed. */
int state_decode(struct machine *m, struct state_source src, struct state_extra *extra, struct state_stats *stats,
		 char *err, size_t errlen) FTVM_MUST_CHECK;

/*
 * Pieces for a live transfer (docs/migration.md), which sends RAM in rounds before the state:
 *
 * state_encode_pages() is state_encode() with RAM limited to the pages set in @pages (a bitmap of
 * machine_dirty_words() words): each of them is written, all-zero ones too, since the receiver's
 * copy of such a page may hold older bytes.
 * state_decode_keep_ram() is state_decode() without dropping RAM first: the pages of the state
 * land on top of the ones an earlier round put there.
 * Both work in @scratch, a state from machine_state_alloc() never filled before (the caller's, who
 * frees it), or in one of their own when it is NULL. Allocating one (megabytes: a virtio state
 * holds a block device's requests) took 5-8 ms on the build host, so a migration allocates it
 * before its stop-and-copy, out of the guest's pause.
 */
int state_encode_pages(const struct machine *m, struct state_sink sink, const uint64_t *pages,
		       struct machine_state *scratch, struct state_stats *stats, char *err, size_t errlen)
	FTVM_MUST_CHECK;
int state_decode_keep_ram(struct machine *m, struct state_source src, struct machine_state *scratch,
			  struct state_stats *stats, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Bytes of a RAM section carrying @count pages (1..STATE_RAM_RUN_MAX). */
#define STATE_RAM_SECTION_SIZE(count) \
	(STATE_SECTION_HEAD + STATE_RAM_RUN_HEAD + (size_t)(count) * 4096u + STATE_SECTION_TAIL)
/* Writes a RAM section of pages [first, first + count) of @ram into @out (room for
 * STATE_RAM_SECTION_SIZE(count)); returns its length. */
size_t state_ram_section_build(uint8_t *out, const uint8_t *ram, uint64_t first, uint32_t count);
/* The same in two steps, for a caller that copies the pages itself (a migration's pre-copy reads
 * RAM the vCPU writes: ram_copy_racy()): the pages' bytes at out + STATE_RAM_SECTION_DATA first,
 * then state_ram_section_seal() writes the rest around them; returns the section's length. */
#define STATE_RAM_SECTION_DATA (STATE_SECTION_HEAD + STATE_RAM_RUN_HEAD)
size_t state_ram_section_seal(uint8_t *out, uint64_t first, uint32_t count);
/* Checks one RAM section (framing, cap, CRC, run inside RAM) at @buf and copies its pages into
 * m's RAM; *used is the section's length. 0, or -EBADMSG with the reason in err. */
int state_ram_section_apply(struct machine *m, const uint8_t *buf, size_t len, size_t *used,
			    uint32_t *pages, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The CONFIG section of m (room for STATE_CONFIG_SECTION_MAX bytes): its length, or -errno. */
#define STATE_CONFIG_SECTION_MAX 528u
int state_config_section(const struct machine *m, uint8_t *out, size_t cap) FTVM_MUST_CHECK;
/* Checks a CONFIG section against m: 0, -EBADMSG (malformed) or -EINVAL (another configuration,
 * the first difference named in err). */
int state_config_check(const struct machine *m, const uint8_t *buf, size_t len, char *err,
		       size_t errlen) FTVM_MUST_CHECK;

/* Reads only the header and the CONFIG section: the configuration a state was saved with, so a
 * caller can build a machine that fits it (a clone's new MAC). 0, or -EBADMSG / the source's
 * -errno with the offset in err. */
int state_decode_identity(struct state_source src, struct machine_identity *id, char *err,
			  size_t errlen) FTVM_MUST_CHECK;

/* "HART", "RAM", ...; "unknown" for any other value. */
const char *state_section_name(uint32_t type);

#endif
