/*
 * verbs.h — the RDMA transport of the logging channel, in two layers.
 *
 * Lower layer, a "verbs device": the few operations the transport needs from one reliable-
 * connected queue pair over one registered memory region. Two implementations:
 *   - rdma.c: libibverbs (a real HCA or soft-RoCE); built only when libibverbs is installed.
 *   - verbs_emul.c: an emulated fabric inside one process — WRITE WITH IMMEDIATE is a memcpy into
 *     the peer's region plus a completion on each side — so the layer above, and the whole channel
 *     over it, can be tested on machines without an RDMA device (like the CI machine).
 *
 * Upper layer, verbs_stream.c: a reliable, flow-controlled byte stream over a device; the RDMA
 * link (link_rdma.c) puts it under the channel behind the same interface as a TCP socket (link.h).
 * Each side registers one region laid out as
 *     [0, R)          receive ring: the peer writes the stream into it (remotely writable)
 *     [R, 2R)         send staging: bytes at stream offset p sit at R + p % R until the peer has
 *                     read them (the peer's ring holds them at p % R: the two are mirrors)
 *     2R              credit in:  u64, bytes of our stream the peer has consumed (peer-written)
 *     2R + 64         credit out: u64, the bytes we consumed, staged for the write to the peer
 * with R = CHRDMA_RING_SIZE on both sides. A sender may have at most R unconsumed bytes in
 * flight: free room = R - (sent - credit in). Every write is an RDMA WRITE WITH IMMEDIATE: the
 * immediate is the byte count of stream data, or CHRDMA_IMM_CREDIT when it wrote the credit
 * word; the receive completions tell the reader how far its ring has been filled, in order. The
 * reader returns credit after consuming R/4 bytes (a writer blocks only when the ring is full, so
 * that always frees it). The TCP side channel that carried the handshake and the connection
 * data stays open: the peer's process dying closes it, which fails the stream at once; a silent
 * peer is caught by the channel's heartbeats like on TCP.
 */
#ifndef FTVM_LOGCHANNEL_VERBS_H
#define FTVM_LOGCHANNEL_VERBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "logchannel/channel_types.h"
#include "logchannel/rdma.h"
#include "util/compiler.h"

#define CHRDMA_RING_SIZE (4u * 1024u * 1024u)
#define CHRDMA_OFF_CREDIT_IN (2ull * CHRDMA_RING_SIZE)
#define CHRDMA_OFF_CREDIT_OUT (CHRDMA_OFF_CREDIT_IN + 64u)
#define CHRDMA_REGION_SIZE (CHRDMA_OFF_CREDIT_IN + 4096u) /* whole pages */
#define CHRDMA_IMM_CREDIT 0x80000000u
#define CHRDMA_SQ_DEPTH 64u   /* our writes in flight at most */
#define CHRDMA_RQ_DEPTH 256u  /* receive requests kept posted */
#define CHRDMA_MAX_WRITE (256u * 1024u)

struct chrdma_dev;

struct chrdma_completion {
	int status;   /* 0: success; else the device's error code (ibv_wc_status) */
	bool recv;    /* an incoming WRITE WITH IMMEDIATE; false: one of our writes completed */
	uint32_t imm; /* recv only: the immediate */
};

struct chrdma_dev_ops {
	const char *name;
	/* Open the device, register @mem (remote-writable), create the CQ and an RC QP in INIT. */
	int (*open)(struct chrdma_dev **out, void *mem, size_t len, struct channel_err *err);
	/* Our connection data (ring_size = CHRDMA_RING_SIZE, addr = @mem). */
	void (*local)(const struct chrdma_dev *d, struct chrdma_conndata *cd);
	/* Connect the QP to the peer's (INIT -> RTR -> RTS); remembers its address and rkey. */
	int (*connect)(struct chrdma_dev *d, const struct chrdma_conndata *peer,
		       struct channel_err *err);
	/* WRITE WITH IMMEDIATE of @len bytes at @local_off of our region to the peer's @remote_off. */
	int (*post_write)(struct chrdma_dev *d, uint64_t local_off, uint32_t len, uint64_t remote_off,
			  uint32_t imm);
	/* One receive request (consumed by one incoming WRITE WITH IMMEDIATE). */
	int (*post_recv)(struct chrdma_dev *d);
	/* Up to @max completions, oldest first: the count, or -EIO. */
	int (*poll)(struct chrdma_dev *d, struct chrdma_completion *out, int max);
	/* Ask for an event on event_fd at the next completion. */
	int (*arm)(struct chrdma_dev *d);
	int (*event_fd)(const struct chrdma_dev *d);
	/* Consume the event that made event_fd readable (then arm again before sleeping). */
	void (*ack_event)(struct chrdma_dev *d);
	void (*close)(struct chrdma_dev *d);
};

/* The libibverbs device (rdma.c); NULL when built without libibverbs. */
const struct chrdma_dev_ops *chrdma_verbs_ops(void);
/* The in-process emulated fabric (verbs_emul.c). */
const struct chrdma_dev_ops *chrdma_emul_ops(void);
/*
 * The device CHANNEL_RDMA channels use: the libibverbs one by default. Tests select the emulated
 * fabric (before opening channels); NULL restores the default.
 */
void chrdma_select_device(const struct chrdma_dev_ops *ops);
const struct chrdma_dev_ops *chrdma_selected_device(void);
/* Emulated fabric test hook: while true, every write is lost on the wire (a cut link). */
void chrdma_emul_set_dropping(bool drop);

/* ---- the byte stream ---- */

struct chrdma_stream {
	const struct chrdma_dev_ops *ops;
	struct chrdma_dev *dev;
	uint8_t *mem;      /* the registered region */
	int side_fd;       /* TCP side channel (owned by the channel: ch->fd) */
	/* Writer (callers serialise: the channel's tx_mu). tx_head is also read without that lock by
	 * the channel thread's chrdma_stream_writable() (is there room to wake a writer for?). */
	_Atomic uint64_t tx_head; /* stream bytes written so far */
	_Atomic uint32_t sq_used;
	/* Reader (the channel thread only). rx_head and rx_tail are written by that thread alone
	 * (relaxed stores, plain moves on x86-64) and atomic so another thread may read them. */
	_Atomic uint64_t rx_head; /* bytes landed in our ring (from receive completions) */
	_Atomic uint64_t rx_tail; /* bytes consumed */
	uint64_t credit_sent;
	bool credit_owed;  /* a credit write is due but the send queue was full */
	_Atomic int failed; /* 0, or the -errno once the stream broke (why is set first) */
	_Atomic int fail_claimed;
	char why[160];
};

/* Region + device + posted receive requests; the QP is not connected yet. */
int chrdma_stream_open(const struct chrdma_dev_ops *ops, int side_fd,
		       struct chrdma_stream **out, struct channel_err *err) FTVM_MUST_CHECK;
void chrdma_stream_local(const struct chrdma_stream *s, struct chrdma_conndata *cd);
/* Check the peer's connection data (ring size) and connect the QP. */
int chrdma_stream_connect(struct chrdma_stream *s, const struct chrdma_conndata *peer,
			  struct channel_err *err) FTVM_MUST_CHECK;
void chrdma_stream_close(struct chrdma_stream *s);

/*
 * Like a non-blocking writev(): bytes taken (maybe fewer than offered), or -EAGAIN (no room in
 * the peer's ring or the send queue is full). Once the stream failed, everything is "taken" and
 * dropped: the failure is reported by read(), after the input that landed before it.
 */
ssize_t chrdma_stream_writev(struct chrdma_stream *s, const struct iovec *iov, int iovcnt);
/* Like a non-blocking read(): bytes copied, -EAGAIN, or -ECONNRESET once failed. */
ssize_t chrdma_stream_read(struct chrdma_stream *s, void *buf, size_t cap);
/* Reap completions: advance the ring, free send slots, return credit; 0 or -ECONNRESET. */
int chrdma_stream_progress(struct chrdma_stream *s);
/* Unread bytes in our ring (a peer that fills it is alive). */
bool chrdma_stream_has_input(const struct chrdma_stream *s);
/* A writev() would take at least one byte now. */
bool chrdma_stream_writable(const struct chrdma_stream *s);
/*
 * Before sleeping on the device's event fd: arm it, then reap once more; true if something
 * arrived meanwhile (do not sleep). The side channel is not worth polling once the stream has
 * failed (it would stay readable at EOF). After the sleep: chrdma_stream_woken() with what poll() saw
 * on the event fd and on the side channel.
 */
bool chrdma_stream_prepare_sleep(struct chrdma_stream *s);
void chrdma_stream_woken(struct chrdma_stream *s, short event_revents, short side_revents);
/* Why it failed ("" while healthy). */
const char *chrdma_stream_error(const struct chrdma_stream *s);

#endif
