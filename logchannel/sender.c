/*
 * sender.c — the primary's side of a channel.
 *
 * channel_send() runs on the vCPU thread: it frames the record (header + CRC32C) straight into
 * the SPSC ring and publishes it; it never waits for a lock, and makes a system call only when
 * the channel was idle (then it writes that record itself, see send_directly()). The channel
 * thread writes whatever is queued when the link is writable, in one writev() of up to
 * CHAN_WRITE_CHUNK bytes: small records batch by themselves while the link is busy, and a lone
 * record goes out at once (TCP_NODELAY, no timer), so batching adds no latency. Bytes are freed
 * as soon as the link took them — a broken connection is never resumed, so nothing needs
 * resending. ACKs (cumulative LSN) and heartbeats (the backup's icount) are read by the channel
 * thread, or, on TCP, by a thread waiting in channel_wait_acked() (chan_sender_wait_reading());
 * the channel thread also sends a heartbeat when it has had nothing to write for heartbeat_ms,
 * and fails the channel when the backup has been silent for timeout_ms.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/channel_internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/diag.h"

#define NS_PER_MS 1000000ull

/* One non-blocking write of @len ring bytes from counter @pos to the link (two pieces if it wraps). */
static ssize_t send_ring(struct channel *ch, uint64_t pos, size_t len)
{
	size_t off = pos & ch->ring.mask;
	size_t first = MIN(len, ch->ring.cap - off);
	struct iovec iov[2] = {
		{ .iov_base = ch->ring.buf + off, .iov_len = first },
		{ .iov_base = ch->ring.buf, .iov_len = len - first },
	};
	return chan_link_writev(ch, iov, len > first ? 2 : 1);
}

/*
 * The channel was idle (ring empty) and its thread is asleep: write the record just queued from
 * this thread, saving the wake-up of the channel thread on the latency-critical path. Never
 * waits: if the thread holds tx_mu, or the socket does not take the whole frame, the thread
 * carries on from where this stopped. Under load the thread is awake and batches instead.
 */
static bool send_directly(struct channel *ch, uint64_t pos, size_t len)
{
	bool done = false;

	if (!atomic_load_explicit(&ch->thread_wake.sleeping, memory_order_relaxed) ||
	    pthread_mutex_trylock(&ch->tx_mu) != 0)
		return false;
	if (ch->ctl_len == 0 && chring_tail(&ch->ring, memory_order_relaxed) == pos) {
		ssize_t w = send_ring(ch, pos, len);
		if (w > 0) {
			chring_release(&ch->ring, pos + (uint64_t)w);
			chan_stat_add(&ch->st_writes, 1);
			done = (size_t)w == len;
		}
	}
	pthread_mutex_unlock(&ch->tx_mu);
	return done;
}

int channel_send(struct channel *ch, uint64_t lsn, const void *buf, size_t len)
{
	uint8_t hdr[CHPROTO_HDR_SIZE];

	if (unlikely(!chan_up(ch)))
		return -EPIPE;
	if (unlikely(ch->role != CHAN_SENDER || lsn != ch->next_lsn))
		return -EINVAL;
	if (unlikely(len > CHANNEL_MAX_RECORD))
		return -EMSGSIZE;
	size_t need = CHPROTO_HDR_SIZE + len;
	uint64_t head = chring_head(&ch->ring, memory_order_relaxed);
	uint64_t tail = chring_tail(&ch->ring, memory_order_acquire);
	if (unlikely(ch->ring.cap - (head - tail) < need)) {
		chan_stat_add(&ch->st_full, 1);
		return -EAGAIN;
	}
	chproto_encode(hdr, CHPROTO_RECORD, lsn, buf, (uint32_t)len);
	chring_put(&ch->ring, head, hdr, sizeof(hdr));
	if (len)
		chring_put(&ch->ring, head + sizeof(hdr), buf, len);
	atomic_store_explicit(&ch->sent_lsn, lsn, memory_order_relaxed);
	chring_publish(&ch->ring, head + need);
	ch->next_lsn = lsn + 1;
	chan_stat_add(&ch->st_records, 1);
	chan_stat_add(&ch->st_bytes, len);
	/* Write it here only if the producer has been quiet: a stream is the thread's to batch. */
	uint64_t now = chnet_now_ns();
	uint64_t prev = atomic_exchange_explicit(&ch->last_send_ns, now, memory_order_relaxed);
	if (head != tail || now - prev < CHAN_DIRECT_GAP_NS || !send_directly(ch, head, need))
		chan_wake(&ch->thread_wake);
	return 0;
}

static bool room_or_down(struct channel *ch)
{
	uint64_t used = chring_head(&ch->ring, memory_order_relaxed) -
			chring_tail(&ch->ring, memory_order_acquire);
	return ch->ring.cap - used >= ch->want_room || !chan_up(ch);
}

int channel_send_wait(struct channel *ch, uint64_t lsn, const void *buf, size_t len,
		      int timeout_ms)
{
	uint64_t deadline = chnet_deadline(timeout_ms);

	for (;;) {
		int rc = channel_send(ch, lsn, buf, len);
		if (rc != -EAGAIN)
			return rc;
		int left = chnet_remaining_ms(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		ch->want_room = CHPROTO_HDR_SIZE + len;
		chan_sleep(ch, &ch->app_wake, room_or_down, left);
	}
}

static bool drained_or_down(struct channel *ch)
{
	return chring_tail(&ch->ring, memory_order_acquire) ==
		       chring_head(&ch->ring, memory_order_relaxed) ||
	       !chan_up(ch);
}

int channel_flush(struct channel *ch, int timeout_ms)
{
	uint64_t deadline = chnet_deadline(timeout_ms);

	for (;;) {
		if (!chan_up(ch))
			return -EPIPE;
		if (chring_tail(&ch->ring, memory_order_acquire) ==
		    chring_head(&ch->ring, memory_order_relaxed))
			return 0;
		int left = chnet_remaining_ms(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		chan_sleep(ch, &ch->app_wake, drained_or_down, left);
	}
}

static bool sender_allowed(unsigned kind)
{
	return kind == CHPROTO_ACK || kind == CHPROTO_HEARTBEAT || kind == CHPROTO_BYE ||
	       kind == CHPROTO_REFUSE;
}

static int sender_handle(struct channel *ch, const struct chproto_hdr *h, const uint8_t *payload)
{
	switch (h->kind) {
	case CHPROTO_ACK: {
		uint64_t acked = atomic_load_explicit(&ch->acked_lsn, memory_order_relaxed);
		uint64_t sent = atomic_load_explicit(&ch->sent_lsn, memory_order_relaxed);
		if (h->arg < acked || h->arg > sent) {
			chan_fail(ch, CHANNEL_PROTOCOL,
				  "bad ACK %llu: acked so far %llu, highest LSN sent %llu",
				  (unsigned long long)h->arg, (unsigned long long)acked,
				  (unsigned long long)sent);
			return -EPROTO;
		}
		atomic_store(&ch->acked_lsn, h->arg); /* seq_cst: pairs with ack_waiters */
		chan_stat_add(&ch->st_acks, 1);
		if (atomic_load(&ch->ack_waiters) > 0) {
			pthread_mutex_lock(&ch->ack_mu);
			pthread_cond_broadcast(&ch->ack_cv);
			pthread_mutex_unlock(&ch->ack_mu);
		}
		return 0;
	}
	case CHPROTO_HEARTBEAT:
		atomic_store_explicit(&ch->peer_icount, h->arg, memory_order_relaxed);
		chan_stat_add(&ch->st_heartbeats, 1);
		return 0;
	case CHPROTO_REFUSE: {
		/* Only a migration's destination refuses a stream once it is flowing. */
		if (ch->cfg.purpose != CHANNEL_PURPOSE_MIGRATION) {
			chan_fail(ch, CHANNEL_PROTOCOL, "REFUSE after the handshake on a log channel");
			return -EPROTO;
		}
		char raw[CHPROTO_REFUSE_MAX + 1], msg[4 * CHPROTO_REFUSE_MAX + 1];
		memcpy(raw, payload, h->len);
		raw[h->len] = '\0';
		channel_sanitize(msg, sizeof(msg), raw);
		chan_fail(ch, CHANNEL_REFUSED, "the destination refused the stream: %s", msg);
		return -ECONNRESET;
	}
	default: /* BYE */
		chan_fail(ch, CHANNEL_PEER_CLOSED, "peer closed the channel (BYE)");
		return -ECONNRESET;
	}
}

/* Write queued ring bytes until the ring is empty or the socket is full. false: wait POLLOUT. */
static bool write_ring(struct channel *ch)
{
	uint64_t tail = chring_tail(&ch->ring, memory_order_relaxed);

	for (;;) {
		uint64_t head = chring_head(&ch->ring, memory_order_acquire);
		if (head == tail)
			return true;
		size_t n = MIN(head - tail, (uint64_t)CHAN_WRITE_CHUNK);
		ssize_t w = send_ring(ch, tail, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return false;
			chan_fail_io(ch, errno, "write");
			return true;
		}
		tail += (uint64_t)w;
		chring_release(&ch->ring, tail);
		chan_stat_add(&ch->st_writes, 1);
		ch->last_tx_ns = chnet_now_ns();
		chan_wake(&ch->app_wake);
		if ((size_t)w < n)
			return false;
	}
}

/*
 * The Output Rule's thread waits for an ACK: rather than the channel thread reading it and
 * handing it over through the condition variable (two wake-ups on the critical path), the waiter
 * reads the socket itself (one). One reader at a time (rx_mu); meanwhile the channel thread polls
 * without POLLIN and goes on writing and keeping the timers. The input stays the waiters' for
 * CHAN_DELEGATION_LINGER_NS after the last one returned (reclaim_input()), so back-to-back waits
 * do not wake the channel thread each time. A link without an input descriptor (RDMA) is the
 * channel thread's alone: there waiters use the condition variable.
 */
int chan_sender_wait_reading(struct channel *ch, uint64_t lsn, uint64_t deadline)
{
	int fd = ch->link->ops->input_fd(ch->link);
	int rc;

	if (fd < 0 || ch->role != CHAN_SENDER || pthread_mutex_trylock(&ch->rx_mu) != 0)
		return -EBUSY;
	atomic_store(&ch->waiter_left_ns, 0); /* a waiter is in */
	atomic_store(&ch->rx_delegated, 1);
	for (;;) {
		if (atomic_load(&ch->acked_lsn) >= lsn) {
			rc = 0;
			break;
		}
		if (!chan_up(ch)) {
			rc = -EPIPE;
			break;
		}
		int left = chnet_remaining_ms(deadline);
		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		int n = chan_read_input(ch);
		if (n > 0) {
			if (chan_parse_input(ch, sender_allowed, sender_handle) < 0)
				diag_debug("ack wait: the channel failed on its input");
			continue;
		}
		if (n != -EAGAIN)
			continue; /* the channel failed: said next turn */
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
				       { .fd = ch->event_efd, .events = POLLIN } };
		if (poll(p, 2, left) < 0 && errno != EINTR)
			diag_debug("ack wait: poll: %s", strerror(errno));
	}
	/* The input stays delegated: the channel thread takes it back after the linger time. */
	atomic_store(&ch->waiter_left_ns, chnet_now_ns());
	pthread_mutex_unlock(&ch->rx_mu);
	return rc;
}

static bool sender_has_work(struct channel *ch)
{
	return chring_head(&ch->ring, memory_order_acquire) !=
		       chring_tail(&ch->ring, memory_order_relaxed) ||
	       atomic_load_explicit(&ch->stop, memory_order_relaxed);
}

/*
 * Channel thread: take the socket's input back once no waiter has read it for the linger time;
 * else the ms until then (for its poll timeout). 0: it is the thread's (again).
 */
static int reclaim_input(struct channel *ch, uint64_t now)
{
	if (!atomic_load(&ch->rx_delegated))
		return 0;
	uint64_t left = atomic_load(&ch->waiter_left_ns);
	if (left && now - left < CHAN_DELEGATION_LINGER_NS)
		return (int)((left + CHAN_DELEGATION_LINGER_NS - now + 999999) / 1000000);
	if (pthread_mutex_trylock(&ch->rx_mu) != 0)
		return 1; /* a waiter is reading right now */
	left = atomic_load(&ch->waiter_left_ns);
	bool idle = left && chnet_now_ns() - left >= CHAN_DELEGATION_LINGER_NS;
	if (idle)
		atomic_store(&ch->rx_delegated, 0);
	pthread_mutex_unlock(&ch->rx_mu);
	return idle ? 0 : 1;
}

/* An ack waiter is in (on the condition variable, or reading the input itself). */
static bool ack_awaited(struct channel *ch)
{
	return atomic_load(&ch->ack_waiters) > 0 ||
	       (atomic_load(&ch->rx_delegated) && atomic_load(&ch->waiter_left_ns) == 0);
}

/*
 * A real-time thread runs the moment a record is queued, so left alone it writes a producer's
 * stream one record per write (measured: 2.9 records a write, against hundreds time-shared).
 * While records keep coming and nobody waits for an ACK (whose latency the Output Rule feels),
 * it lets CHAN_RT_BATCH_NS pass before writing what gathered meanwhile. The pause ends on its
 * own: a producer quiet for CHAN_DIRECT_GAP_NS is no longer streaming.
 */
static bool batch_pause(struct channel *ch, bool want_out)
{
	if (!atomic_load_explicit(&ch->realtime, memory_order_relaxed) || want_out ||
	    ch->ctl_len != 0 || atomic_load_explicit(&ch->stop, memory_order_relaxed) ||
	    chnet_now_ns() - atomic_load_explicit(&ch->last_send_ns, memory_order_relaxed) >=
		    CHAN_DIRECT_GAP_NS ||
	    ack_awaited(ch))
		return false;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = CHAN_RT_BATCH_NS };
	nanosleep(&ts, NULL);
	return true;
}

static bool stopping(struct channel *ch)
{
	return atomic_load_explicit(&ch->stop, memory_order_relaxed);
}

void *chan_sender_thread(void *arg)
{
	struct channel *ch = arg;
	bool want_out = false, readable = true;

	while (!atomic_load(&ch->stop) && chan_up(ch)) {
		uint64_t now = chnet_now_ns();
		bool idle = ch->ctl_len == 0 && !sender_has_work(ch);
		chan_timers(ch, now, 0); /* the silence check */
		if (!chan_up(ch))
			break;
		{
			/* Always try: want_out from an earlier turn may be stale. */
			pthread_mutex_lock(&ch->tx_mu);
			/*
			 * Idle is re-checked under tx_mu: channel_send() may just have written part
			 * of a frame itself, and a heartbeat must never land inside a frame.
			 */
			if (idle && ch->ctl_len == 0 && !sender_has_work(ch) &&
			    now - ch->last_tx_ns >= (uint64_t)ch->cfg.heartbeat_ms * NS_PER_MS)
				chan_queue_ctl(ch, CHPROTO_HEARTBEAT, 0);
			int rc = chan_flush_ctl(ch);
			want_out = rc == -EAGAIN || (rc == 0 && !write_ring(ch));
			pthread_mutex_unlock(&ch->tx_mu);
			if (rc < 0 && rc != -EAGAIN)
				chan_fail_io(ch, -rc, "write");
		}
		if (readable && chan_up(ch)) {
			if (pthread_mutex_trylock(&ch->rx_mu) == 0) {
				int rc = chan_read_input(ch);
				if (rc > 0)
					rc = chan_parse_input(ch, sender_allowed, sender_handle);
				pthread_mutex_unlock(&ch->rx_mu);
				if (rc == -EAGAIN)
					readable = false;
			} else {
				readable = false; /* an ack waiter is reading */
			}
		}
		if (!chan_up(ch))
			break;
		if (readable || (!want_out && sender_has_work(ch)) || batch_pause(ch, want_out))
			continue;

		/* Heartbeat due heartbeat_ms after the last write, if nothing else goes out. */
		idle = ch->ctl_len == 0 && !sender_has_work(ch);
		int tmo = chan_timers(ch, chnet_now_ns(), idle ? ch->last_tx_ns : 0);
		/* While ack waiters own the input, poll without POLLIN until they are done with it. */
		int linger = reclaim_input(ch, chnet_now_ns());
		if (linger && (tmo < 0 || linger < tmo))
			tmo = linger;
		chan_thread_poll(ch, want_out ? stopping : sender_has_work, linger == 0, &readable,
				 &want_out, tmo);
	}
	pthread_mutex_lock(&ch->tx_mu);
	if (chan_up(ch) && drained_or_down(ch) && ch->ctl_off == 0 &&
	    chan_queue_ctl(ch, CHPROTO_BYE, 0) && chan_flush_ctl(ch) < 0)
		diag_debug("BYE not sent");
	pthread_mutex_unlock(&ch->tx_mu);
	chan_wake(&ch->app_wake);
	return NULL;
}
