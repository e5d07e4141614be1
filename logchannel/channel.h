/*
 * channel.h — the logging channel: carries opaque log records primary -> backup, acks and
 * heartbeats backup -> primary. Wire format: docs/channel-protocol.md.
 *
 * Model. A channel is one connection between one primary (the sender) and one backup (the
 * receiver) for one VM in one failover epoch, inside TLS 1.3 authenticated both ways by the pair's
 * key (channel_config.key; docs/channel-protocol.md, "TLS"). Records are (lsn, bytes, len) with LSNs strictly
 * increasing by one from the start LSN given at connect. Each side runs one channel thread that
 * owns the socket; the application threads talk to it through lock-free single-producer /
 * single-consumer byte rings of fixed capacity, so memory never grows with the log.
 *
 * Sender (primary):
 *   1. channel_config_init(), fill vm_id/epoch/start_lsn/key, channel_connect(): TLS and
 *      handshake done.
 *   2. The vCPU thread calls channel_send() for every record; it copies the record into the ring
 *      and returns at once (no lock, no blocking). Under a stream it makes no system call: the
 *      channel thread batches. When the channel was idle and its thread asleep, channel_send()
 *      writes that one record to the socket itself (non-blocking, guarded by a trylock that
 *      never waits) to save a thread wake-up on the Output Rule's path. When the ring is full it
 *      returns -EAGAIN: the FT layer pauses the vCPU and retries, or uses channel_send_wait()
 *      which blocks up to a timeout.
 *   3. The Output Rule reads channel_acked_lsn() (one atomic load) or blocks in
 *      channel_wait_acked(); channel_peer_icount() gives the backup's executed icount (lag).
 * Receiver (backup):
 *   1. channel_listen(), then channel_accept(): drops peers that fail TLS without a word, and
 *      refuses an authenticated HELLO for another VM id, another epoch or another protocol
 *      version, with a precise message on both sides.
 *   2. The replay thread calls channel_recv() to take records in LSN order and channel_ack() once
 *      it holds them; channel_report_icount() publishes its progress for the heartbeats.
 *      After a failure, records already received are still returned, then the error: the backup
 *      replays every complete record it has before going live.
 * Both sides: the channel fails — and stays failed, it is never re-established — when the peer is
 * silent longer than timeout_ms, the connection breaks, or the peer sends anything malformed.
 * channel_state()/channel_error() say what happened; channel_event_fd() becomes readable and
 * on_failure is called (once, from the channel thread, just before the new state becomes visible
 * to other calls: it gets the state and the message as arguments; it must not block nor call
 * channel_close()).
 *
 * Threads: channel_send*() from one thread at a time (the producer); channel_recv()/channel_ack()
 * from one thread at a time (the consumer); the other calls from any thread.
 */
#ifndef FTVM_LOGCHANNEL_CHANNEL_H
#define FTVM_LOGCHANNEL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "logchannel/channel_types.h"
#include "util/compiler.h"
#include "vm/icount.h"

/*
 * Defaults of channel_config_init(). The heartbeat and the timeout are also those of
 * `ftvm primary|backup` (--heartbeat, --timeout): failure detection has one set of numbers.
 * A crashed host sends no RST, so the timeout is what a client waits before the backup goes
 * live: 200 ms keeps that gap near the client's own TCP retransmission timeout (200 ms minimum
 * on Linux). Ten heartbeats per timeout, each a 24-byte frame sent by the channel thread (which
 * neither the vCPU nor disk I/O runs on), leave room for a peer thread delayed by a loaded host;
 * bytes waiting unread in the socket count as life too (chan_timers()).
 */
#define CHANNEL_DEFAULT_HEARTBEAT_MS 20u
#define CHANNEL_DEFAULT_TIMEOUT_MS 200u
#define CHANNEL_DEFAULT_CONNECT_MS 5000u
#define CHANNEL_DEFAULT_BUFFER (16u * 1024u * 1024u)
#define CHANNEL_DEFAULT_ACK_EVERY 64u
/* Default deadline of one attempt's whole TLS handshake + HELLO on the backup: as long as the
 * primary's connect timeout, so a primary slowed by a loaded host is not turned away (a newer
 * attempt replaces the oldest when all slots are busy, so the length does not help strangers). */
#define CHANNEL_DEFAULT_HANDSHAKE_MS 5000u

enum channel_state {
	CHANNEL_UP = 0,          /* connected and healthy */
	CHANNEL_TIMED_OUT = 1,   /* peer silent longer than timeout_ms */
	CHANNEL_BROKEN = 2,      /* connection reset, closed without BYE, or I/O error */
	CHANNEL_PROTOCOL = 3,    /* the peer sent a malformed or unexpected frame */
	CHANNEL_PEER_CLOSED = 4, /* the peer closed in order (BYE) */
	CHANNEL_CLOSED = 5,      /* closed locally */
	CHANNEL_REFUSED = 6,     /* migration: the receiver refused the stream (REFUSE, its message) */
};

struct channel;
struct channel_listener;

typedef void channel_failure_fn(struct channel *ch, enum channel_state state, const char *why,
				void *opaque);

struct channel_config {
	const char *vm_id;         /* required: 1..CHANNEL_MAX_VM_ID bytes, e.g. a UUID */
	uint64_t epoch;            /* failover epoch; the receiver accepts only its own */
	uint64_t start_lsn;        /* sender: LSN of the first record */
	size_t buffer_bytes;       /* ring capacity per side (min CHANNEL_MIN_BUFFER) */
	unsigned heartbeat_ms;     /* heartbeat interval */
	unsigned timeout_ms;       /* peer silence that fails the channel */
	unsigned connect_timeout_ms; /* TCP connect + handshake */
	unsigned ack_every;        /* receiver acks at least every N records */
	/*
	 * Receiver: acknowledge records as soon as the channel thread has them in the ring,
	 * without waiting for channel_ack() — "received" in the Output Rule's sense, one thread
	 * hop shorter. Off by default: then an LSN is acked once the consumer called channel_ack().
	 */
	bool ack_on_receipt;
	enum channel_transport transport;
	/*
	 * What the channel carries (HELLO arg). A receiver refuses a HELLO of another purpose. A
	 * migration's receiver takes any epoch (the stream says which) and may refuse the stream
	 * after WELCOME with channel_refuse().
	 */
	enum channel_purpose purpose;
	/*
	 * The pairing key: the channel runs inside TLS 1.3 authenticated by it (PSK with ECDHE),
	 * and nothing about the VM is said to a peer before TLS has proved it holds the key.
	 * Required unless @plaintext.
	 */
	const struct channel_key *key;
	/*
	 * No TLS, no authentication: only so bench/logchannel can measure the channel's own cost
	 * and tests can drive the frame layer with hand-made bytes. Never set by ftvm itself.
	 */
	bool plaintext;
	/* Backup: deadline of one connection attempt's TLS handshake + HELLO. */
	unsigned handshake_timeout_ms;
	channel_failure_fn *on_failure; /* optional, called once from the channel thread */
	void *opaque;
};

struct channel_stats {
	uint64_t records;      /* records sent (sender) or received (receiver) */
	uint64_t record_bytes; /* their payload bytes */
	uint64_t writes;       /* write system calls on the socket (batching: << records) */
	uint64_t acks;         /* ACK frames sent (receiver) or received (sender) */
	uint64_t heartbeats;   /* HEARTBEAT frames received */
	uint64_t full;         /* sender: channel_send() calls refused with -EAGAIN */
	size_t queued_bytes;   /* bytes in the ring now */
	size_t capacity;       /* ring capacity */
	uint64_t last_rx_ns;   /* time_mono_ns() when the last frame came from the peer */
};

/* Fill @cfg with the defaults above (vm_id NULL, epoch 0, start_lsn 1, TCP, no key). */
void channel_config_init(struct channel_config *cfg);

/*
 * Pairing keys (logchannel/key.c). A key file is one line, "ftvm-channel-key-v1 " and 64 hex
 * digits. channel_key_generate() writes a new key from getrandom() to @path, created with mode
 * 0600, never over an existing file nor through a symlink. channel_key_load() refuses a file
 * that is not a regular file, is accessible by group or others, or is malformed. Both return 0
 * or -errno with the message in @err.
 */
int channel_key_generate(const char *path, struct channel_err *err) FTVM_MUST_CHECK;
int channel_key_load(const char *path, struct channel_key *key, struct channel_err *err)
	FTVM_MUST_CHECK;

/*
 * Copy @in to @out (@cap bytes, NUL-terminated, truncated) with every byte that is not printable
 * ASCII, and the backslash, written as \xNN: a peer's string is safe to print to a terminal or a
 * log line.
 */
void channel_sanitize(char *out, size_t cap, const char *in);

/* ---- sender (primary) ---- */

/*
 * Connect to the backup at @hostport and run the handshake. Returns 0 and *out, or -errno:
 * -ECONNREFUSED, -ETIMEDOUT, -EPERM (refused: another VM id), -ESTALE (another epoch),
 * -EPROTONOSUPPORT (another version), -EPROTOTYPE (the backup uses the other transport),
 * -EPROTO (malformed answer, or the RDMA setup failed), -ENODEV (RDMA: no device).
 * @err (may be NULL) receives the message.
 */
int channel_connect(const struct channel_config *cfg, const char *hostport, struct channel **out,
		    struct channel_err *err) FTVM_MUST_CHECK;

/*
 * Queue one record. Returns 0; -EAGAIN when the ring is full (nothing queued: retry the same
 * LSN later); -EINVAL if @lsn is not the next LSN; -EMSGSIZE if @len > CHANNEL_MAX_RECORD;
 * -EPIPE if the channel has failed (see channel_error()). Never blocks, never allocates.
 * Records are framed with a CRC32C here, on the producer's thread.
 */
int channel_send(struct channel *ch, uint64_t lsn, const void *buf, size_t len) FTVM_MUST_CHECK;

/* Like channel_send() but waits up to @timeout_ms (-1: forever) for room; -ETIMEDOUT then. */
int channel_send_wait(struct channel *ch, uint64_t lsn, const void *buf, size_t len,
		      int timeout_ms) FTVM_MUST_CHECK;

/* Highest LSN the backup acknowledged (start_lsn - 1 before the first ack). One atomic load. */
uint64_t channel_acked_lsn(const struct channel *ch);

/* Wait until channel_acked_lsn() >= @lsn: 0, -ETIMEDOUT, or -EPIPE if the channel failed first. */
int channel_wait_acked(struct channel *ch, uint64_t lsn, int timeout_ms) FTVM_MUST_CHECK;

/* The backup's executed icount from its latest heartbeat (0 before the first). */
icount_t channel_peer_icount(const struct channel *ch);
/* Whether that heartbeat said the backup had replayed everything it received. */
bool channel_peer_caught_up(const struct channel *ch);

/* ---- receiver (backup) ---- */

/*
 * Listen on @hostport (port 0 picks a free port, see channel_listener_port()). -errno with the
 * message in @err (may be NULL): a bad configuration, the RDMA transport without a device
 * (-ENODEV) or without libibverbs (-EOPNOTSUPP), or the address.
 */
int channel_listen(const struct channel_config *cfg, const char *hostport,
		   struct channel_listener **out, struct channel_err *err) FTVM_MUST_CHECK;
unsigned channel_listener_port(const struct channel_listener *l);
void channel_listener_close(struct channel_listener *l);

/* What became of the connection attempts a listener saw (channel_accept()). */
struct channel_listener_stats {
	uint64_t connections; /* TCP connections taken */
	uint64_t auth_failed; /* dropped: failed TLS (no key, another key, not TLS at all) */
	uint64_t hung_up;     /* dropped: closed before a whole HELLO */
	uint64_t timed_out;   /* dropped: no TLS + HELLO within handshake_timeout_ms */
	uint64_t evicted;     /* dropped: every slot busy and this attempt the oldest */
	uint64_t refused;     /* a whole HELLO, refused (VM id, epoch, version, malformed) */
	uint64_t accepted;    /* channels opened */
};
void channel_listener_get_stats(const struct channel_listener *l,
				struct channel_listener_stats *st);

/*
 * Wait up to @timeout_ms (-1: forever) for a primary and open its channel. Up to
 * CHANNEL_MAX_PENDING connection attempts are handshaken at once, each within
 * handshake_timeout_ms; one that fails TLS (another key, no TLS), stays silent or hangs up is
 * dropped — it learns nothing, and this call goes on waiting. A primary that proved the key and
 * sent a HELLO for another VM id, epoch, version or transport is refused (it is told why) and this
 * returns -EPERM / -ESTALE / -EPROTONOSUPPORT / -EPROTOTYPE, or -EPROTO when its HELLO was
 * malformed; the message is in @err. After any of these the listener stays usable: call again for
 * the next primary. -ETIMEDOUT: no primary within @timeout_ms.
 */
int channel_accept(struct channel_listener *l, int timeout_ms, struct channel **out,
		   struct channel_err *err) FTVM_MUST_CHECK;

/*
 * Take the next record: copies it to @buf, sets *lsn and *len. Waits up to @timeout_ms (-1:
 * forever, 0: poll). Returns 0, -ETIMEDOUT (nothing yet), -EMSGSIZE (@cap too small; *len says how
 * much is needed, the record stays queued), or -EPIPE once the channel failed AND every record
 * received before the failure has been returned.
 */
int channel_recv(struct channel *ch, uint64_t *lsn, void *buf, size_t cap, size_t *len,
		 int timeout_ms) FTVM_MUST_CHECK;

/* Acknowledge every record up to @lsn (cumulative; lower values are ignored). Coalesced. */
void channel_ack(struct channel *ch, uint64_t lsn);

/*
 * Publish the icount the replay has executed; sent with the next heartbeat, which goes out within
 * a few milliseconds when the icount moved (so the primary's lag bound works on fresh numbers).
 */
void channel_report_icount(struct channel *ch, icount_t icount);
/*
 * The replay has executed every record received and waits at @icount for more: it is not behind,
 * however long ago the primary was at @icount (the primary ran on without producing log). Sent
 * like channel_report_icount(), which clears it.
 */
void channel_report_caught_up(struct channel *ch, icount_t icount);

/* Epoch the sender's HELLO carried. */
uint64_t channel_peer_epoch(const struct channel *ch);

/*
 * Migration receiver: tell the sender why its stream is refused (@msg, at most 256 bytes are
 * sent): channel_close() then sends a REFUSE frame instead of BYE, and the sender's channel fails
 * with CHANNEL_REFUSED and the message. Best effort: the close waits at most one second for the
 * socket. -EINVAL on a log channel or a sender.
 */
int channel_refuse(struct channel *ch, const char *msg) FTVM_MUST_CHECK;

/* LSN of the first record, from the handshake. */
uint64_t channel_start_lsn(const struct channel *ch);

/* ---- both sides ---- */

enum channel_state channel_state(const struct channel *ch);
/* Why the channel is not CHANNEL_UP ("" while up). Valid until channel_close(). */
const char *channel_error(const struct channel *ch);
/* An fd that becomes readable (and stays so) when the channel leaves CHANNEL_UP. */
int channel_event_fd(const struct channel *ch);
void channel_get_stats(const struct channel *ch, struct channel_stats *st);
const char *channel_state_name(enum channel_state state);

/*
 * Sender: wait until every queued record has been written to the socket (not acked), up to
 * @timeout_ms. 0, -ETIMEDOUT or -EPIPE.
 */
int channel_flush(struct channel *ch, int timeout_ms) FTVM_MUST_CHECK;

/*
 * Send BYE (best effort), stop the channel thread, close the socket, free everything. No other
 * thread may be inside a call on @ch, or make one after: the caller orders that.
 */
void channel_close(struct channel *ch);

#endif
