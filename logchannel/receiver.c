/*
 * receiver.c — the backup's side of a channel.
 *
 * The channel thread reads the socket in chunks into a staging buffer, checks every frame
 * (magic, version, kind, length cap, CRC32C, LSN order), and copies each RECORD into the SPSC
 * ring as an entry [u64 lsn][u32 len][u32 0][payload]. When the ring has no room it stops
 * reading: TCP's window then pushes back on the primary, whose own ring fills and makes
 * channel_send() return -EAGAIN — memory never grows on either side. While it is stopped like
 * that, unread bytes in the socket prove the primary alive, so silence is not counted.
 *
 * The replay thread takes entries with channel_recv() and acknowledges with channel_ack(), which
 * publishes the LSN; one cumulative ACK for the highest LSN goes out when ack_every records are
 * unacknowledged or as soon as the consumer drains the ring — written by channel_ack() itself
 * when the socket is free (no thread hop), else by the channel thread — and with each heartbeat
 * (every heartbeat_ms, carrying the icount from channel_report_icount()). With ack_on_receipt the
 * channel thread acknowledges each batch it has put in the ring.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/channel_internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/diag.h"

#define NS_PER_MS 1000000ull

static bool ring_empty(struct channel *ch)
{
	return chring_head(&ch->ring, memory_order_acquire) ==
	       chring_tail(&ch->ring, memory_order_acquire);
}

static bool data_or_down(struct channel *ch)
{
	return !ring_empty(ch) || !chan_up(ch);
}

int channel_recv(struct channel *ch, uint64_t *lsn, void *buf, size_t cap, size_t *len,
		 int timeout_ms)
{
	uint8_t ent[CHAN_ENTRY_HDR];
	uint64_t deadline = chnet_deadline(timeout_ms);

	if (ch->role != CHAN_RECEIVER)
		return -EINVAL;
	for (;;) {
		bool up = chan_up(ch); /* read before the ring: records published before a failure */
		uint64_t tail = chring_tail(&ch->ring, memory_order_relaxed);
		uint64_t head = chring_head(&ch->ring, memory_order_acquire);
		if (head != tail) {
			chring_get(&ch->ring, tail, ent, sizeof(ent));
			uint32_t n = get_le32(ent + 8);
			*len = n;
			if (n > cap)
				return -EMSGSIZE;
			*lsn = get_le64(ent);
			if (n)
				chring_get(&ch->ring, tail + sizeof(ent), buf, n);
			chring_release(&ch->ring, tail + sizeof(ent) + n);
			atomic_thread_fence(memory_order_seq_cst);
			if (atomic_load_explicit(&ch->rx_throttled, memory_order_relaxed))
				chan_wake(&ch->thread_wake); /* it waits for room */
			return 0;
		}
		if (!up)
			return -EPIPE;
		int left = chnet_remaining_ms(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		chan_sleep(ch, &ch->app_wake, data_or_down, left);
	}
}

/*
 * Write ACK(@lsn) from the consumer's thread when the socket takes it whole: the common case,
 * one system call and no wake-up of the channel thread. false: leave it to the channel thread.
 */
static bool ack_directly(struct channel *ch, uint64_t lsn)
{
	uint8_t frame[CHPROTO_HDR_SIZE];
	bool done = false;

	if (pthread_mutex_trylock(&ch->tx_mu) != 0)
		return false;
	if (ch->ctl_len == 0 && chan_up(ch) && atomic_load(&ch->ack_sent) < lsn) {
		chproto_encode(frame, CHPROTO_ACK, lsn, NULL, 0);
		struct iovec iov = { .iov_base = frame, .iov_len = sizeof(frame) };
		ssize_t n = chan_link_writev(ch, &iov, 1);
		if (n < 0 && errno == EAGAIN)
			n = 0; /* the link may hold the frame already (TLS): it must be written next */
		if (n >= 0) {
			/* A partial write leaves the rest for the channel thread, in order. */
			memcpy(ch->ctl, frame, sizeof(frame));
			ch->ctl_len = (size_t)n < sizeof(frame) ? sizeof(frame) : 0;
			ch->ctl_off = (size_t)n < sizeof(frame) ? (size_t)n : 0;
			atomic_store_explicit(&ch->ack_sent, lsn, memory_order_relaxed);
			chan_stat_add(&ch->st_acks, 1);
			chan_stat_add(&ch->st_writes, n > 0);
			done = (size_t)n == sizeof(frame);
		}
	}
	pthread_mutex_unlock(&ch->tx_mu);
	return done;
}

void channel_ack(struct channel *ch, uint64_t lsn)
{
	/* A maximum: with ack_on_receipt the channel thread raises it too. */
	uint64_t prev = atomic_load_explicit(&ch->ack_req, memory_order_relaxed);
	do {
		if (lsn <= prev)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&ch->ack_req, &prev, lsn,
							memory_order_relaxed, memory_order_relaxed));
	uint64_t sent = atomic_load_explicit(&ch->ack_sent, memory_order_relaxed);
	if (ch->cfg.ack_on_receipt || lsn - sent >= ch->cfg.ack_every || ring_empty(ch)) {
		if (!ack_directly(ch, lsn))
			chan_wake(&ch->thread_wake);
	}
}

static void report_progress(struct channel *ch, uint64_t icount)
{
	atomic_store_explicit(&ch->my_icount, icount, memory_order_relaxed);
	/* A quiet channel thread sleeps until the next heartbeat: wake it to schedule a report. */
	if (atomic_load_explicit(&ch->report_asleep, memory_order_relaxed) &&
	    icount != atomic_load_explicit(&ch->hb_icount_sent, memory_order_relaxed))
		chan_wake(&ch->thread_wake);
}

void channel_report_icount(struct channel *ch, icount_t icount)
{
	report_progress(ch, icount & ~CHPROTO_HB_CAUGHT_UP);
}

void channel_report_caught_up(struct channel *ch, icount_t icount)
{
	report_progress(ch, icount | CHPROTO_HB_CAUGHT_UP);
}

static bool receiver_allowed(unsigned kind)
{
	return kind == CHPROTO_RECORD || kind == CHPROTO_HEARTBEAT || kind == CHPROTO_BYE;
}

static int receiver_handle(struct channel *ch, const struct chproto_hdr *h, const uint8_t *payload)
{
	uint8_t ent[CHAN_ENTRY_HDR];

	switch (h->kind) {
	case CHPROTO_RECORD: {
		if (h->arg != ch->expect_lsn) {
			chan_fail(ch, CHANNEL_PROTOCOL, "out-of-order LSN %llu, expected %llu",
				  (unsigned long long)h->arg, (unsigned long long)ch->expect_lsn);
			return -EPROTO;
		}
		size_t need = sizeof(ent) + h->len;
		uint64_t head = chring_head(&ch->ring, memory_order_relaxed);
		uint64_t tail = chring_tail(&ch->ring, memory_order_acquire);
		if (ch->ring.cap - (head - tail) < need)
			return 1; /* full: keep the frame, stop reading */
		put_le64(ent, h->arg);
		put_le32(ent + 8, h->len);
		put_le32(ent + 12, 0);
		chring_put(&ch->ring, head, ent, sizeof(ent));
		if (h->len)
			chring_put(&ch->ring, head + sizeof(ent), payload, h->len);
		chring_publish(&ch->ring, head + need);
		ch->expect_lsn++;
		chan_stat_add(&ch->st_records, 1);
		chan_stat_add(&ch->st_bytes, h->len);
		return 0;
	}
	case CHPROTO_HEARTBEAT:
		chan_stat_add(&ch->st_heartbeats, 1);
		return 0;
	default: /* BYE */
		chan_fail(ch, CHANNEL_PEER_CLOSED, "peer closed the channel (BYE)");
		return -ECONNRESET;
	}
}

/* An ACK is due: enough unacknowledged records, or the consumer has drained the ring. */
static bool ack_due(struct channel *ch)
{
	uint64_t req = atomic_load_explicit(&ch->ack_req, memory_order_relaxed);
	uint64_t sent = atomic_load_explicit(&ch->ack_sent, memory_order_relaxed);
	return req > sent &&
	       (ch->cfg.ack_on_receipt || req - sent >= ch->cfg.ack_every || ring_empty(ch));
}

static void queue_ack(struct channel *ch)
{
	uint64_t req = atomic_load_explicit(&ch->ack_req, memory_order_relaxed);
	if (req > atomic_load_explicit(&ch->ack_sent, memory_order_relaxed) &&
	    chan_queue_ctl(ch, CHPROTO_ACK, req)) {
		atomic_store_explicit(&ch->ack_sent, req, memory_order_relaxed);
		chan_stat_add(&ch->st_acks, 1);
	}
}

static bool room_for(struct channel *ch, size_t need)
{
	uint64_t used = chring_head(&ch->ring, memory_order_relaxed) -
			chring_tail(&ch->ring, memory_order_acquire);
	return ch->ring.cap - used >= need;
}

/* Room for the frame the thread is holding back (when throttled). */
static bool blocked_frame_fits(struct channel *ch)
{
	uint32_t len = get_le32(ch->in + ch->in_off + CHPROTO_OFF_LEN);
	return room_for(ch, CHAN_ENTRY_HDR + len);
}

/* An ACK is due and can be written now (not while the socket is full: then POLLOUT first). */
static bool ack_ready(struct channel *ch)
{
	return !ch->tx_blocked && ack_due(ch);
}

/* The icount moved while the thread meant to sleep until the next heartbeat. */
static bool report_missed(struct channel *ch)
{
	return atomic_load_explicit(&ch->report_asleep, memory_order_relaxed) &&
	       atomic_load_explicit(&ch->my_icount, memory_order_relaxed) !=
		       atomic_load_explicit(&ch->hb_icount_sent, memory_order_relaxed);
}

/* Something to do without waiting for the socket: an ACK, room for the held frame, a stop. */
static bool receiver_ready(struct channel *ch)
{
	bool throttled = atomic_load_explicit(&ch->rx_throttled, memory_order_relaxed);
	return ack_ready(ch) || (throttled && blocked_frame_fits(ch)) || report_missed(ch) ||
	       atomic_load_explicit(&ch->stop, memory_order_relaxed);
}

/*
 * The channel thread's last words when the consumer refused the stream (channel_refuse()): any
 * control frame still queued, then REFUSE, waiting at most a second for room (tx_mu held).
 */
static void send_refusal(struct channel *ch)
{
	uint64_t deadline = chnet_deadline(1000);
	size_t off = 0;
	while (off < ch->refuse_len) {
		int rc = ch->ctl_len ? chan_flush_ctl(ch) : 0;
		if (rc == 0) {
			struct iovec iov = { .iov_base = ch->refuse + off, .iov_len = ch->refuse_len - off };
			ssize_t n = chan_link_writev(ch, &iov, 1);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			rc = n < 0 && (errno == EAGAIN || errno == EINTR) ? -EAGAIN : -EIO;
		}
		if (rc != -EAGAIN || chnet_remaining_ms(deadline) == 0) {
			diag_warn("the refusal could not be sent to the migration's source");
			return;
		}
		struct pollfd p = { .fd = ch->link->fd, .events = POLLOUT };
		(void)poll(&p, 1, 10);
	}
}

int channel_refuse(struct channel *ch, const char *msg)
{
	if (ch->role != CHAN_RECEIVER || ch->cfg.purpose != CHANNEL_PURPOSE_MIGRATION)
		return -EINVAL;
	uint32_t len = (uint32_t)MIN(strlen(msg), (size_t)CHPROTO_REFUSE_MAX);
	pthread_mutex_lock(&ch->tx_mu);
	memcpy(ch->refuse + CHPROTO_HDR_SIZE, msg, len);
	chproto_encode(ch->refuse, CHPROTO_REFUSE, CHPROTO_REFUSE_STREAM, msg, len);
	ch->refuse_len = CHPROTO_HDR_SIZE + len;
	pthread_mutex_unlock(&ch->tx_mu);
	return 0;
}

uint64_t channel_peer_epoch(const struct channel *ch)
{
	return ch->peer_epoch;
}

void *chan_receiver_thread(void *arg)
{
	struct channel *ch = arg;
	bool throttled = false, readable = true, want_out = false;
	uint64_t hb = (uint64_t)ch->cfg.heartbeat_ms * NS_PER_MS;

	while (!atomic_load(&ch->stop) && chan_up(ch)) {
		uint64_t now = chnet_now_ns();
		if (throttled)
			ch->last_rx_ns = now; /* the primary's bytes are waiting for us */
		int tmo = chan_timers(ch, now, ch->last_hb_ns);
		if (!chan_up(ch))
			break;
		pthread_mutex_lock(&ch->tx_mu);
		uint64_t icount = atomic_load_explicit(&ch->my_icount, memory_order_relaxed);
		uint64_t since_hb = now - ch->last_hb_ns;
		if (since_hb >= hb || (icount != ch->hb_icount_sent && since_hb >= CHAN_ICOUNT_REPORT_NS)) {
			queue_ack(ch);
			if (chan_queue_ctl(ch, CHPROTO_HEARTBEAT, icount)) {
				ch->last_hb_ns = now;
				ch->hb_icount_sent = icount;
			}
		} else if (ack_due(ch)) {
			queue_ack(ch);
		}
		/*
		 * Always try (a full socket costs one failed send): a thread kept busy by incoming
		 * records may not reach poll() for a while, and must not go quiet meanwhile.
		 */
		int wrc = ch->ctl_len ? chan_flush_ctl(ch) : 0;
		pthread_mutex_unlock(&ch->tx_mu);
		want_out = wrc == -EAGAIN;
		if (wrc < 0 && wrc != -EAGAIN)
			chan_fail_io(ch, -wrc, "write");

		int published = 0;
		uint64_t head0 = chring_head(&ch->ring, memory_order_relaxed);
		if (throttled && blocked_frame_fits(ch)) {
			throttled = false;
			int rc = chan_parse_input(ch, receiver_allowed, receiver_handle);
			throttled = rc > 0;
		}
		if (!throttled && readable && chan_up(ch)) {
			int rc = chan_read_input(ch);
			if (rc > 0) {
				rc = chan_parse_input(ch, receiver_allowed, receiver_handle);
				throttled = rc > 0;
			} else if (rc == -EAGAIN) {
				readable = false;
			}
		}
		atomic_store_explicit(&ch->rx_throttled, throttled, memory_order_relaxed);
		published = chring_head(&ch->ring, memory_order_relaxed) != head0;
		if (published) {
			/* The ACK first: the primary's Output Rule waits for it, the consumer does not. */
			if (ch->cfg.ack_on_receipt) /* one ACK per batch read */
				channel_ack(ch, ch->expect_lsn - 1);
			chan_wake(&ch->app_wake);
		}
		if (!chan_up(ch))
			break;
		ch->tx_blocked = want_out;
		if ((readable && !throttled) || ack_ready(ch))
			continue;

		if (want_out && tmo == 0)
			tmo = 1; /* a heartbeat is due but the socket is full: do not spin */
		/* A moved icount is reported CHAN_ICOUNT_REPORT_NS after the last heartbeat. */
		bool moved = atomic_load_explicit(&ch->my_icount, memory_order_relaxed) !=
			     ch->hb_icount_sent;
		if (moved) {
			uint64_t due = ch->last_hb_ns + CHAN_ICOUNT_REPORT_NS, t = chnet_now_ns();
			int ms = due > t ? (int)((due - t + NS_PER_MS - 1) / NS_PER_MS) : 0;
			if (tmo < 0 || ms < tmo)
				tmo = MAX(ms, 1);
		}
		atomic_store_explicit(&ch->report_asleep, !moved, memory_order_relaxed);
		chan_thread_poll(ch, receiver_ready, !throttled, &readable, &want_out, tmo);
		atomic_store_explicit(&ch->report_asleep, 0, memory_order_relaxed);
	}
	pthread_mutex_lock(&ch->tx_mu);
	if (chan_up(ch) && ch->refuse_len)
		send_refusal(ch);
	else if (chan_up(ch) && (queue_ack(ch), chan_queue_ctl(ch, CHPROTO_BYE, 0)) && chan_flush_ctl(ch) < 0)
		diag_debug("BYE not sent"); /* with the last ACK the consumer gave before closing */
	pthread_mutex_unlock(&ch->tx_mu);
	chan_wake(&ch->app_wake);
	return NULL;
}
