/*
 * mig_stream.h — the live-migration stream (docs/migration.md): the message header every
 * channel RECORD of a migration starts with, and the receiving side's decoder, which turns a
 * sequence of messages into a machine's state.
 *
 * The decoder is pure (no descriptors, no clock): it pulls messages from a mig_source_ops and
 * confirms each one it applied, so the destination's channel and the fuzz target drive the same
 * code. Nothing from the peer is trusted: every message's header, kind, order, round and length
 * is checked before its body is used, RAM comes as state-format RAM sections (CRC, run inside
 * RAM), and the final state goes through the state decoder with all its checks. A refusal names
 * the message (its number and kind) and what was wrong.
 */
#ifndef FTVM_MIGRATE_MIG_STREAM_H
#define FTVM_MIGRATE_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "logchannel/channel_types.h"
#include "util/compiler.h"
#include "vm/machine.h"

#define MIG_MAGIC 0x474D5446u /* "FTMG" as little-endian bytes */
#define MIG_VERSION 1u
#define MIG_HDR_SIZE 16u
#define MIG_MAX_MESSAGE CHANNEL_MAX_RECORD
#define MIG_MAX_BODY (MIG_MAX_MESSAGE - MIG_HDR_SIZE)
#define MIG_START_FIXED 24u   /* epoch, RAM bytes, flags, node (ARBITER) or 0; then (ARBITER) the
                                 arbiter area's id, ARBITER_AREA_ID_LEN bytes; then the CONFIG section */
#define MIG_COMPLETE_SIZE 16u /* state bytes, rounds */
#define MIG_HANDOVER_SIZE 8u  /* epoch the destination runs in */
#define MIG_FLAG_CLONE 1u     /* START flags: an FT clone, the destination becomes the backup */
#define MIG_FLAG_STORAGE 2u   /* START flags: the disks come too (DISKS, BLOCKS) */
#define MIG_FLAG_RESYNC 4u    /* START flags: with CLONE and STORAGE, only the blocks written since a
                               * pairing come as data, the others as digests (docs/disks.md) */
#define MIG_FLAG_ARBITER 8u   /* START flags: the destination claims START's epoch in its arbiter area */
/* Disk sections of BLOCKS: disk, flags, offset, length, reserved; the data; CRC32C. */
#define MIG_DISK_HDR_SIZE 24u
#define MIG_DISK_SECTION_SIZE(len) (MIG_DISK_HDR_SIZE + (len) + 4u)
#define MIG_DISK_ZERO 1u                 /* disk section flags: the range reads as zeros, no data */
#define MIG_DISK_DIGEST 2u               /* disk section flags (RESYNC): 16 bytes, the range's XXH3-128 */
#define MIG_DISK_DIGEST_SIZE 16u
#define MIG_DISK_RUN_MAX (256u << 10)    /* data bytes of one section */
#define MIG_DISK_ZERO_MAX (1u << 30)     /* bytes of one ZERO section */
/*
 * A migration's channel detects a lost peer in a second, not in the FT pair's fraction of one:
 * nothing fails over on it, and its channel thread stays time-shared (logchannel/channel.c), so
 * on a loaded host a sub-second timeout would abort migrations whose peer is alive.
 */
#define MIG_HEARTBEAT_MS 100u
#define MIG_TIMEOUT_MS 1000u
#define MIG_CANCEL_MAX 256u
/* Rounds of pages a stream may announce (a sender gives up long before). */
#define MIG_MAX_ROUNDS 1000u

enum mig_kind {
	MIG_START = 1,    /* epoch, RAM size, the configuration */
	MIG_PAGES = 2,    /* RAM sections of one round, while the source runs */
	MIG_STATE = 3,    /* a piece of the final state (state format, RAM: the last dirty pages) */
	MIG_COMPLETE = 4, /* the final state is whole; the destination confirms by its ACK */
	MIG_HANDOVER = 5, /* the source stopped for good: the destination runs */
	MIG_CANCEL = 6,   /* the source gives up (its VM runs on): text */
	MIG_DISKS = 7,    /* STORAGE: the source's disks and their sizes */
	MIG_BLOCKS = 8,   /* STORAGE: disk sections of a round, or of the stop-and-copy */
	MIG_FRAMES = 9,   /* after HANDOVER: frames the source received for the guest (mig_frames.h) */
	MIG_KIND_LIMIT,
};

struct mig_hdr {
	uint16_t kind;
	uint32_t round;
	uint32_t len; /* body bytes */
};

const char *mig_kind_name(unsigned kind);
/* Writes the header of a message of @kind with a body of @len bytes into @out. */
void mig_hdr_encode(uint8_t out[MIG_HDR_SIZE], unsigned kind, uint32_t round, uint32_t len);
/* Checks the header of the @len-byte message @buf: -EBADMSG with @why. */
int mig_hdr_decode(const uint8_t *buf, size_t len, struct mig_hdr *h, char *why, size_t whylen) FTVM_MUST_CHECK;

/* Builds a disk section of BLOCKS at out (MIG_DISK_SECTION_SIZE(len) bytes, the header and CRC
 * alone with MIG_DISK_ZERO, 16 bytes of data with MIG_DISK_DIGEST): the data, if any, must
 * already sit at out + MIG_DISK_HDR_SIZE.
 * Returns the section's length. */
size_t mig_disk_section_build(uint8_t *out, unsigned disk, unsigned flags, uint64_t off, uint32_t len);

/* Where the disk blocks of a STORAGE stream go (this host's replicas). */
struct mig_disk_ops {
	/* The source's disks: 0, or -EINVAL when this host's replicas cannot take them (why says). */
	int (*begin)(void *ctx, unsigned ndisks, const uint64_t *sizes, char *why, size_t whylen);
	/* Bytes [off, off + len) of a disk (checked inside its size); data NULL: zeros. 0 or -errno. */
	int (*write)(void *ctx, unsigned disk, uint64_t off, const uint8_t *data, uint64_t len, char *why,
		     size_t whylen);
	/* Everything written is durable (before COMPLETE is confirmed): 0 or -errno. */
	int (*sync)(void *ctx, char *why, size_t whylen);
	/* A resync (START flag RESYNC): after begin(), may this host's replicas take only the blocks
	 * written since pairing `epoch`? 0, or -EINVAL with why. NULL: a resync is refused. */
	int (*resync)(void *ctx, uint64_t epoch, char *why, size_t whylen);
	/* Does [off, off + len) of a disk have this XXH3-128 (lo, hi)? 0, -EINVAL (it differs) or
	 * -errno, with why. */
	int (*check)(void *ctx, unsigned disk, uint64_t off, uint64_t len, uint64_t lo, uint64_t hi, char *why,
		     size_t whylen);
	/* A resync's round 0 is over (the first message of a later round came): do the blocks checked
	 * leave the replicas usable? 0, or -EINVAL with why (which may name blocks to repair). NULL:
	 * nothing to add (check() refused any difference). */
	int (*compared)(void *ctx, char *why, size_t whylen);
};

/* What a destination takes. */
enum mig_storage {
	MIG_STORAGE_EITHER,   /* `ftvm incoming`: with or without the disks (then disk must be set) */
	MIG_STORAGE_NEEDED,   /* a spare of a pair with replicated disks: the clone must copy them */
	MIG_STORAGE_REFUSED,  /* a spare on a shared disk: nothing to copy */
};

struct mig_dest_want {
	bool clone;                     /* only FT clones (a spare), else only migrations */
	enum mig_storage storage;
	/* The id of this destination's arbiter area (ARBITER_AREA_ID_LEN bytes), or NULL: none. With
	 * one, START must say ARBITER and name the same area; without, it must not say ARBITER. */
	const uint8_t *arbiter_id;
	const struct mig_disk_ops *disk; /* NULL: a STORAGE stream is refused */
	void *disk_ctx;
	/* Where the final state is decoded: a fresh machine_state_alloc() of the caller's, allocated
	 * before the stream (out of the guest's pause), or NULL (state_format.h). */
	struct machine_state *scratch;
};

/* Where the decoder's messages come from. */
struct mig_source_ops {
	/* The next message: 0 with *buf and *len (valid until the next call), or -errno with why. */
	int (*next)(void *ctx, const uint8_t **buf, size_t *len, char *why, size_t whylen);
	/* Every message so far has been applied (and, for COMPLETE, the state is whole). */
	void (*confirm)(void *ctx);
};

/* How far a stream got (the destination acts on it when the stream ends). */
enum mig_dest_phase {
	MIG_PHASE_START,    /* nothing accepted yet */
	MIG_PHASE_PAGES,    /* START accepted, pages coming */
	MIG_PHASE_STATE,    /* the final state is being decoded */
	MIG_PHASE_COMPLETE, /* the state is whole and confirmed: waiting for HANDOVER */
	MIG_PHASE_RUN,      /* HANDOVER received */
};

struct mig_dest_result {
	enum mig_dest_phase phase;
	uint64_t epoch;           /* from START, then from HANDOVER */
	uint64_t messages;
	uint64_t bytes;
	uint64_t pages;           /* pages applied in rounds */
	uint32_t rounds;
	uint64_t state_bytes;
	bool refused_config;      /* ended by START's configuration (err names the difference) */
	bool clone;               /* START said FT clone (MIG_FLAG_CLONE) */
	bool storage;             /* START said STORAGE: the disks came too */
	bool resync;              /* START said RESYNC: blocks not written since the pairing as digests */
	uint64_t resync_epoch;    /* from DISKS (resync): the pairing the source's written blocks date from */
	uint64_t disk_checked;    /* disk bytes found equal by digest (resync) */
	bool arbiter;             /* START said ARBITER: the destination claims epoch as arbiter_node */
	unsigned arbiter_node;
	unsigned ndisks;          /* from DISKS */
	uint64_t disk_size[MACHINE_MAX_DISKS];
	uint64_t disk_bytes;      /* disk bytes written (data and zero ranges) */
};

/*
 * Receives a whole migration into @m, a machine just created (not run) with this host's
 * configuration: 0 once HANDOVER came (phase RUN; m holds the source's state), -ECANCELED when
 * the source cancelled (its reason in err), -EINVAL for another configuration (refused_config),
 * -EBADMSG for a malformed stream, or the source's -errno; err names the message and the fault.
 * On failure m must be destroyed.
 */
int mig_dest_decode(struct machine *m, const struct mig_source_ops *ops, void *ctx, struct mig_dest_result *res,
		    char *err, size_t errlen) FTVM_MUST_CHECK;
/* The same for a destination that takes only FT clones (want_clone: an `ftvm spare`) or only
 * migrations: a START of the other kind is refused (-EINVAL, refused_config) before any page. */
int mig_dest_decode_kind(struct machine *m, bool want_clone, const struct mig_source_ops *ops, void *ctx,
			 struct mig_dest_result *res, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The same with everything a destination may ask for, the disks included. */
int mig_dest_decode_want(struct machine *m, const struct mig_dest_want *want, const struct mig_source_ops *ops,
			 void *ctx, struct mig_dest_result *res, char *err, size_t errlen) FTVM_MUST_CHECK;

/*
 * The steps of a stop-and-copy, stamped with time_mono_ns() on either side. FTVM_DIAG=info prints
 * them as one line per side, each step in ms after the first, with the first's monotonic time:
 * the clock is the host's, so on one host the source's and the destination's lines line up.
 */
#define MIG_STAMPS_MAX 16
struct mig_stamps {
	unsigned n;
	const char *step[MIG_STAMPS_MAX];
	uint64_t ns[MIG_STAMPS_MAX];
};

/* Records the time of @step (a static string); steps past MIG_STAMPS_MAX are dropped. */
void mig_stamp(struct mig_stamps *st, const char *step);
/* Prints the steps under @what ("stop-and-copy at the source", ...), if info is on. */
void mig_stamps_log(const struct mig_stamps *st, const char *what);

#endif
