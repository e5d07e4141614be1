/*
 * channel_internal.h — the channel object shared by channel.c (lifecycle, state, waiting),
 * handshake.c (connect/listen/accept), sender.c (primary's thread) and receiver.c (backup's
 * thread). Not for use outside logchannel/ (tests excepted).
 *
 * Wake-ups without a lock: a thread about to sleep sets its `sleeping` flag, issues a full fence,
 * re-checks its condition, then polls its eventfd; the other side changes the condition, issues a
 * full fence, and writes the eventfd only if the flag is set. Either the sleeper sees the new
 * condition or the waker sees the flag, so no wake-up is lost and the fast path costs no syscall.
 * The waker clears the flag as it writes, so a burst of wake-ups costs one system call.
 */
#ifndef FTVM_LOGCHANNEL_CHANNEL_INTERNAL_H
#define FTVM_LOGCHANNEL_CHANNEL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "logchannel/channel.h"
#include "logchannel/link.h"
#include "logchannel/net.h"
#include "logchannel/protocol.h"
#include "logchannel/ring.h"

/* Control frames (ACK, HEARTBEAT, BYE) waiting to be written, at most a few at once. */
#define CHAN_CTL_MAX (4 * CHPROTO_HDR_SIZE)
/* Bytes the receiver reads from the socket per system call at most. */
#define CHAN_READ_CHUNK (256u * 1024u)
/* Bytes the sender hands to one writev() at most, so room is freed progressively. */
#define CHAN_WRITE_CHUNK (512u * 1024u)
/*
 * channel_send() writes a record itself (no thread hop) only when the previous one was queued at
 * least this long ago; closer records are left to the channel thread, which batches them.
 */
#define CHAN_DIRECT_GAP_NS 20000u
/*
 * A real-time channel thread pauses this long before its next write while a producer is streaming
 * records (one queued within CHAN_DIRECT_GAP_NS) and nobody waits for an ACK, so a stream goes out
 * in batches rather than one write per record (see chan_sender_thread()).
 */
#define CHAN_RT_BATCH_NS 50000u
/*
 * Receiver: besides the periodic heartbeat, a HEARTBEAT carrying the replay's icount goes out
 * when the icount moved and this long has passed since the last one, so the primary's view of
 * the lag is fresh (heartbeat_ms old at worst would make the lag bound react late).
 */
#define CHAN_ICOUNT_REPORT_NS 5000000u
/*
 * Sender: an ack waiter keeps the socket's input this long after it returns (the Output Rule
 * waits again soon); only then does the channel thread take it back. So a stream of waits costs
 * no wake-up of the channel thread each, and a lone ACK nobody waits for is read this late.
 */
#define CHAN_DELEGATION_LINGER_NS 2000000u
/* Receiver's ring entry header: u64 lsn, u32 len, u32 reserved. */
#define CHAN_ENTRY_HDR 16u

enum chan_role { CHAN_SENDER, CHAN_RECEIVER };

struct chan_waker {
	_Atomic int sleeping;
	int efd;
};

struct channel {
	enum chan_role role;
	struct channel_config cfg;
	char vm_id[CHANNEL_MAX_VM_ID + 1];
	struct chlink *link;           /* the transport (link.h) */
	struct chring ring;

	/* Application <-> channel thread. */
	struct chan_waker thread_wake; /* wakes the channel thread */
	struct chan_waker app_wake;    /* wakes the producer (room) or the consumer (data) */
	int event_efd;                 /* readable once the channel failed */
	_Atomic int stop;

	/* State: written once by chan_fail(), read by anyone. */
	_Atomic int state;
	char error[CHAN_ERR_MAX];

	/* Sender. */
	uint64_t next_lsn;             /* producer-owned: LSN the next channel_send() must carry */
	size_t want_room;              /* producer-owned: bytes channel_send_wait() waits for */
	_Atomic uint64_t last_send_ns; /* producer-written: time of the previous channel_send() */
	_Atomic bool realtime;         /* the channel thread runs at a real-time priority */
	_Atomic uint64_t sent_lsn;     /* highest LSN queued (for ACK validation) */
	_Atomic uint64_t acked_lsn;
	_Atomic uint64_t peer_icount;
	pthread_mutex_t ack_mu;
	pthread_cond_t ack_cv;
	_Atomic int ack_waiters;

	/* Receiver. */
	uint64_t peer_epoch;           /* from the HELLO */
	/* Migration: a refusal to send instead of BYE at close (channel_refuse()). */
	uint8_t refuse[CHPROTO_HDR_SIZE + CHPROTO_REFUSE_MAX];
	size_t refuse_len;
	uint64_t start_lsn;
	uint64_t expect_lsn;           /* channel thread: LSN of the next RECORD */
	_Atomic uint64_t ack_req;      /* consumer: highest LSN acknowledged */
	_Atomic uint64_t ack_sent;     /* channel thread: highest LSN sent in an ACK */
	_Atomic uint64_t my_icount;
	_Atomic int rx_throttled;      /* channel thread waits for room in the ring */
	bool tx_blocked;               /* channel thread: the socket took no more, wait for POLLOUT */
	uint8_t *in;                   /* receive staging: one maximal frame + a read chunk */
	size_t in_cap, in_len, in_off;

	/*
	 * Control frames queued by the channel thread (written before more ring data). To save a
	 * thread hop when the channel thread is asleep, the application thread may write to the
	 * socket itself — channel_ack() an ACK, channel_send() the record it just queued — but only
	 * under pthread_mutex_trylock(&tx_mu), never waiting for it; the channel thread holds tx_mu
	 * for each of its writes. So writes never interleave mid-frame.
	 */
	pthread_mutex_t tx_mu;
	uint8_t ctl[CHAN_CTL_MAX];
	size_t ctl_len, ctl_off;
	_Atomic uint64_t last_rx_ns;   /* written by whoever reads the socket (see rx_mu) */
	uint64_t last_tx_ns;
	_Atomic uint64_t last_hb_ns;   /* receiver: last HEARTBEAT queued (read by the consumer) */
	_Atomic uint64_t hb_icount_sent; /* receiver: the icount that heartbeat carried */
	_Atomic int report_asleep;     /* receiver thread sleeps with no icount report due */
	/*
	 * Sender: whoever reads the socket's input (in, in_len, in_off) holds rx_mu — the channel
	 * thread, or a thread in channel_wait_acked() that reads the ACK it waits for itself
	 * (rx_delegated set: the channel thread then polls without POLLIN).
	 */
	pthread_mutex_t rx_mu;
	_Atomic int rx_delegated;
	_Atomic uint64_t waiter_left_ns; /* when the last ack waiter stopped reading */

	/* Statistics (relaxed atomics, read by channel_get_stats()). */
	_Atomic uint64_t st_records, st_bytes, st_writes, st_acks, st_heartbeats, st_full;

	pthread_t thread;
	bool thread_started;
};

/* Allocate a channel for @role; the handshake then gives it its link. */
int chan_create(enum chan_role role, const struct channel_config *cfg, struct channel **out)
	FTVM_MUST_CHECK;
int chan_start_thread(struct channel *ch) FTVM_MUST_CHECK;
void chan_destroy(struct channel *ch);

/* Leave CHANNEL_UP for @state with a message (first call wins); wakes and notifies everyone. */
void chan_fail(struct channel *ch, enum channel_state state, const char *fmt, ...)
	FTVM_PRINTF(3, 4);
static inline bool chan_up(const struct channel *ch)
{
	return atomic_load_explicit(&ch->state, memory_order_acquire) == CHANNEL_UP;
}

/* Counters have a single writer each: a relaxed load + store avoids a locked add. */
static inline void chan_stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/*
 * The channel thread's sleep: mark it asleep, and unless the link or @ready(ch) then says there is
 * something to do, poll the link (for input if @want_in, for room if *want_out) and the wake
 * eventfd for up to @tmo ms. Updates *readable / *want_out from what the link reported.
 */
void chan_thread_poll(struct channel *ch, bool (*ready)(struct channel *), bool want_in,
		      bool *readable, bool *want_out, int tmo);

void chan_wake(struct chan_waker *w);
/* Sleep on @w for up to @timeout_ms unless @ready(ch) turns true after the flag is set. */
void chan_sleep(struct channel *ch, struct chan_waker *w, bool (*ready)(struct channel *),
		int timeout_ms);

/*
 * Read what the link has into the input buffer: bytes read, -EAGAIN, or another -errno after
 * failing the channel (EOF: "closed without BYE", or "truncated frame" mid-frame).
 */
int chan_read_input(struct channel *ch) FTVM_MUST_CHECK;
/*
 * Check and hand each complete frame in the input buffer to @handle (0: consumed, > 0: keep it
 * and stop, < 0: failed). Frames of kinds not @allowed in this direction fail the channel.
 */
int chan_parse_input(struct channel *ch, bool (*allowed)(unsigned kind),
		     int (*handle)(struct channel *ch, const struct chproto_hdr *h,
				   const uint8_t *payload)) FTVM_MUST_CHECK;

/*
 * Sender: wait for the ACK of @lsn reading the socket on this thread (see sender.c). 0, -EPIPE,
 * -ETIMEDOUT, or -EBUSY when another thread reads it now (then wait on the condition variable).
 */
int chan_sender_wait_reading(struct channel *ch, uint64_t lsn, uint64_t deadline) FTVM_MUST_CHECK;

/* Thread bodies. */
void *chan_sender_thread(void *arg);
void *chan_receiver_thread(void *arg);

/* Queue a control frame; returns false if the control buffer is full. */
bool chan_queue_ctl(struct channel *ch, unsigned kind, uint64_t arg);
/* Write pending control bytes: 0, -EAGAIN (partly written), or -errno. */
int chan_flush_ctl(struct channel *ch) FTVM_MUST_CHECK;
/* Fail the channel for an I/O result of read()/write(): EOF, reset, other errno. */
void chan_fail_io(struct channel *ch, int err, const char *what);
/*
 * Fail the channel if the peer has been silent too long; return the poll timeout in ms until the
 * silence deadline or the next heartbeat (due heartbeat_ms after @hb_from; 0: no heartbeat due).
 */
int chan_timers(struct channel *ch, uint64_t now, uint64_t hb_from);

/* The transport's I/O (link.h: the contract of a non-blocking read()/sendmsg()). */
static inline ssize_t chan_link_writev(struct channel *ch, const struct iovec *iov, int iovcnt)
{
	return ch->link->ops->writev(ch->link, iov, iovcnt);
}

static inline ssize_t chan_link_read(struct channel *ch, void *buf, size_t cap)
{
	return ch->link->ops->read(ch->link, buf, cap);
}

#endif
