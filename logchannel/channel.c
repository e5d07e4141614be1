/*
 * channel.c — what both ends of a logging channel share: configuration defaults, creation and
 * teardown, the one-way UP -> failed state change with its notifications (message, eventfd,
 * callback, waking every waiter), lock-free wake-ups between application and channel thread,
 * control-frame output, the silence timer, and the sender's ack wait.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/channel_internal.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/diag.h"
#include "util/time.h"

#define NS_PER_MS 1000000ull

static const char *const state_names[] = {
	[CHANNEL_UP] = "up",
	[CHANNEL_TIMED_OUT] = "timed-out",
	[CHANNEL_BROKEN] = "broken",
	[CHANNEL_PROTOCOL] = "protocol-error",
	[CHANNEL_PEER_CLOSED] = "peer-closed",
	[CHANNEL_CLOSED] = "closed",
	[CHANNEL_REFUSED] = "refused",
};

void channel_config_init(struct channel_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->start_lsn = 1;
	cfg->buffer_bytes = CHANNEL_DEFAULT_BUFFER;
	cfg->heartbeat_ms = CHANNEL_DEFAULT_HEARTBEAT_MS;
	cfg->timeout_ms = CHANNEL_DEFAULT_TIMEOUT_MS;
	cfg->connect_timeout_ms = CHANNEL_DEFAULT_CONNECT_MS;
	cfg->ack_every = CHANNEL_DEFAULT_ACK_EVERY;
	cfg->transport = CHANNEL_TCP;
	cfg->handshake_timeout_ms = CHANNEL_DEFAULT_HANDSHAKE_MS;
}

const char *channel_state_name(enum channel_state state)
{
	if ((unsigned)state < ARRAY_SIZE(state_names))
		return state_names[state];
	return "unknown";
}

int chan_create(enum chan_role role, const struct channel_config *cfg, struct channel **out)
{
	struct channel *ch = calloc(1, sizeof(*ch));
	int rc = -ENOMEM;

	if (!ch)
		return rc;
	ch->role = role;
	ch->cfg = *cfg;
	snprintf(ch->vm_id, sizeof(ch->vm_id), "%s", cfg->vm_id ? cfg->vm_id : "");
	ch->cfg.vm_id = ch->vm_id;
	ch->thread_wake.efd = ch->app_wake.efd = ch->event_efd = -1;
	atomic_init(&ch->state, CHANNEL_UP);
	pthread_mutex_init(&ch->ack_mu, NULL);
	pthread_mutex_init(&ch->tx_mu, NULL);
	pthread_mutex_init(&ch->rx_mu, NULL);
	rc = time_cond_init(&ch->ack_cv);
	if (rc < 0) {
		free(ch);
		return rc;
	}

	size_t cap = MAX(cfg->buffer_bytes, (size_t)CHANNEL_MIN_BUFFER);
	rc = chring_init(&ch->ring, cap);
	if (rc < 0)
		goto out;
	if (role == CHAN_RECEIVER) {
		ch->in_cap = CHPROTO_MAX_FRAME + CHAN_READ_CHUNK;
	} else {
		ch->in_cap = CHAN_READ_CHUNK / 16; /* only ACK/HEARTBEAT/BYE come back */
	}
	ch->in = malloc(ch->in_cap);
	if (!ch->in) {
		rc = -ENOMEM;
		goto out;
	}
	ch->thread_wake.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ch->app_wake.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ch->event_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ch->thread_wake.efd < 0 || ch->app_wake.efd < 0 || ch->event_efd < 0) {
		rc = -errno;
		goto out;
	}
	uint64_t now = chnet_now_ns();
	ch->last_rx_ns = ch->last_tx_ns = ch->last_hb_ns = now;
	*out = ch;
	return 0;
out:
	chan_destroy(ch);
	return rc;
}

/*
 * An FT pair's channel thread runs at the lowest real-time priority where the host allows it
 * (root, or RLIMIT_RTPRIO): the silence timeout is a fraction of a second, and on a host whose
 * cores are saturated a time-shared thread can wait longer than that to run, so a live peer
 * would look dead (measured: false failovers at a 200 ms timeout with busy loops on both cores).
 * The thread sleeps in poll() between heartbeats and batches, so it takes little CPU; the
 * kernel's real-time throttling bounds it anyway. A migration's channel stays time-shared: it
 * moves bulk memory for seconds and must not crowd out the guest it migrates.
 */
static void chan_thread_priority(struct channel *ch)
{
	struct sched_param sp = { .sched_priority = sched_get_priority_min(SCHED_FIFO) };

	if (ch->cfg.purpose != CHANNEL_PURPOSE_LOG)
		return;
	int rc = pthread_setschedparam(ch->thread, SCHED_FIFO, &sp);
	if (rc == 0)
		atomic_store_explicit(&ch->realtime, true, memory_order_relaxed);
	else
		diag_debug("channel thread stays time-shared (SCHED_FIFO: %s): a loaded host may "
			   "delay its heartbeats", strerror(rc));
}

int chan_start_thread(struct channel *ch)
{
	void *(*body)(void *) = ch->role == CHAN_SENDER ? chan_sender_thread : chan_receiver_thread;
	int rc = pthread_create(&ch->thread, NULL, body, ch);
	if (rc != 0)
		return -rc;
	ch->thread_started = true;
	chan_thread_priority(ch);
	return 0;
}

void chan_destroy(struct channel *ch)
{
	if (!ch)
		return;
	chlink_close(ch->link);
	if (ch->thread_wake.efd >= 0)
		close(ch->thread_wake.efd);
	if (ch->app_wake.efd >= 0)
		close(ch->app_wake.efd);
	if (ch->event_efd >= 0)
		close(ch->event_efd);
	chring_destroy(&ch->ring);
	free(ch->in);
	pthread_mutex_destroy(&ch->ack_mu);
	pthread_mutex_destroy(&ch->tx_mu);
	pthread_mutex_destroy(&ch->rx_mu);
	pthread_cond_destroy(&ch->ack_cv);
	free(ch);
}

static void notify_all(struct channel *ch)
{
	uint64_t one = 1;
	if (write(ch->event_efd, &one, sizeof(one)) < 0)
		diag_debug("event eventfd: %s", strerror(errno));
	if (write(ch->app_wake.efd, &one, sizeof(one)) < 0)
		diag_debug("app eventfd: %s", strerror(errno));
	pthread_mutex_lock(&ch->ack_mu);
	pthread_cond_broadcast(&ch->ack_cv);
	pthread_mutex_unlock(&ch->ack_mu);
}

void chan_fail(struct channel *ch, enum channel_state state, const char *fmt, ...)
{
	va_list ap;

	if (!chan_up(ch))
		return;
	va_start(ap, fmt);
	vsnprintf(ch->error, sizeof(ch->error), fmt, ap);
	va_end(ap);
	if (state == CHANNEL_PEER_CLOSED)
		diag_info("channel for VM %s: %s", ch->vm_id, ch->error);
	else if (state != CHANNEL_CLOSED)
		diag_error("channel for VM %s %s: %s", ch->vm_id, channel_state_name(state), ch->error);
	/* The callback runs first: whoever sees the failure next knows it has been told. */
	if (ch->cfg.on_failure && state != CHANNEL_CLOSED)
		ch->cfg.on_failure(ch, state, ch->error, ch->cfg.opaque);
	atomic_store_explicit(&ch->state, state, memory_order_release);
	notify_all(ch);
}

void chan_fail_io(struct channel *ch, int err, const char *what)
{
	const char *why = ch->link->ops->why(ch->link, err);

	if (why)
		chan_fail(ch, CHANNEL_BROKEN, "%s: %s", what, why);
	else if (err == 0)
		chan_fail(ch, CHANNEL_BROKEN, "%s: connection closed by the peer without BYE", what);
	else
		chan_fail(ch, CHANNEL_BROKEN, "%s: %s", what, strerror(err));
}

void chan_wake(struct chan_waker *w)
{
	atomic_thread_fence(memory_order_seq_cst);
	/* Only the first waker after the sleeper went to sleep pays for the system call. */
	if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) &&
	    atomic_exchange_explicit(&w->sleeping, 0, memory_order_relaxed)) {
		uint64_t one = 1;
		if (write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			diag_debug("wake eventfd: %s", strerror(errno));
	}
}

void chan_sleep(struct channel *ch, struct chan_waker *w, bool (*ready)(struct channel *),
		int timeout_ms)
{
	atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (!ready(ch)) {
		struct pollfd p = { .fd = w->efd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
			diag_debug("poll: %s", strerror(errno));
	}
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
	uint64_t v;
	if (read(w->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		diag_debug("eventfd read: %s", strerror(errno));
}

static bool buffered_input_waiting(struct channel *ch);

void chan_thread_poll(struct channel *ch, bool (*ready)(struct channel *), bool want_in,
		      bool *readable, bool *want_out, int tmo)
{
	struct chlink *l = ch->link;
	struct pollfd p[1 + CHLINK_MAX_POLLFDS];
	int n = 0;

	/* Bytes the link already holds decrypted make no noise on its descriptors; on the sender
	 * they are an ack waiter's to look at while it reads (buffered_input_waiting). */
	if (want_in && buffered_input_waiting(ch)) {
		*readable = true;
		return;
	}
	p[0] = (struct pollfd){ .fd = ch->thread_wake.efd, .events = POLLIN };
	int nfds = 1 + l->ops->pollfds(l, want_in, *want_out, p + 1);
	atomic_store_explicit(&ch->thread_wake.sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (!l->ops->before_sleep(l) && !ready(ch))
		n = poll(p, (nfds_t)nfds, tmo);
	atomic_store_explicit(&ch->thread_wake.sleeping, 0, memory_order_relaxed);
	for (int i = 0; n <= 0 && i < nfds; i++)
		p[i].revents = 0;
	if (p[0].revents & POLLIN) {
		uint64_t v;
		if (read(ch->thread_wake.efd, &v, sizeof(v)) < 0)
			diag_debug("eventfd: %s", strerror(errno));
	}
	l->ops->woken(l, p + 1, readable, want_out);
}

bool chan_queue_ctl(struct channel *ch, unsigned kind, uint64_t arg)
{
	if (ch->ctl_len + CHPROTO_HDR_SIZE > sizeof(ch->ctl))
		return false;
	chproto_encode(ch->ctl + ch->ctl_len, kind, arg, NULL, 0);
	ch->ctl_len += CHPROTO_HDR_SIZE;
	return true;
}

int chan_flush_ctl(struct channel *ch)
{
	while (ch->ctl_off < ch->ctl_len) {
		struct iovec iov = { .iov_base = ch->ctl + ch->ctl_off,
				     .iov_len = ch->ctl_len - ch->ctl_off };
		ssize_t n = chan_link_writev(ch, &iov, 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		ch->ctl_off += (size_t)n;
		chan_stat_add(&ch->st_writes, 1);
		ch->last_tx_ns = chnet_now_ns();
	}
	ch->ctl_off = ch->ctl_len = 0;
	return 0;
}

/*
 * Bytes the link holds for the reader (TLS). Only whoever may read looks: on the sender an ack
 * waiter may be reading (rx_mu), and the link's input is not to be touched meanwhile.
 */
static bool buffered_input_waiting(struct channel *ch)
{
	bool waiting = false;

	if (ch->role == CHAN_RECEIVER)
		return ch->link->ops->buffered(ch->link);
	if (ch->link->ops->input_fd(ch->link) < 0)
		return false; /* only the channel thread reads: nothing is held for a waiter */
	if (pthread_mutex_trylock(&ch->rx_mu) != 0)
		return false; /* a waiter reads: what it gets stamps last_rx_ns itself */
	waiting = ch->link->ops->buffered(ch->link);
	pthread_mutex_unlock(&ch->rx_mu);
	return waiting;
}

int chan_timers(struct channel *ch, uint64_t now, uint64_t hb_from)
{
	uint64_t timeout = (uint64_t)ch->cfg.timeout_ms * NS_PER_MS;
	uint64_t hb = (uint64_t)ch->cfg.heartbeat_ms * NS_PER_MS;
	/* An ack waiter may have read (and stamped last_rx_ns) after @now was taken. */
	uint64_t last_rx = atomic_load(&ch->last_rx_ns);

	if (now > last_rx && now - last_rx > timeout) {
		/* Bytes waiting unread (the thread was busy writing) prove the peer alive. */
		if (ch->link->ops->unread(ch->link) || buffered_input_waiting(ch)) {
			ch->last_rx_ns = now;
			return 0;
		}
		chan_fail(ch, CHANNEL_TIMED_OUT, "peer silent for %llu ms (timeout %u ms): the %s",
			  (unsigned long long)((now - last_rx) / NS_PER_MS), ch->cfg.timeout_ms,
			  ch->cfg.purpose == CHANNEL_PURPOSE_MIGRATION
				  ? (ch->role == CHAN_SENDER ? "destination sent no ack or heartbeat"
							     : "source sent no message or heartbeat")
			  : ch->role == CHAN_SENDER ? "backup sent no ack or heartbeat"
						  : "primary sent no record or heartbeat");
		return 0;
	}
	uint64_t next = last_rx + timeout + 1;
	if (hb_from)
		next = MIN(next, hb_from + hb);
	if (next <= now)
		return 0;
	return (int)((next - now + NS_PER_MS - 1) / NS_PER_MS);
}

enum channel_state channel_state(const struct channel *ch)
{
	return (enum channel_state)atomic_load_explicit(&ch->state, memory_order_acquire);
}

const char *channel_error(const struct channel *ch)
{
	return chan_up(ch) ? "" : ch->error;
}

int channel_event_fd(const struct channel *ch)
{
	return ch->event_efd;
}

uint64_t channel_start_lsn(const struct channel *ch)
{
	return ch->start_lsn;
}

void channel_get_stats(const struct channel *ch, struct channel_stats *st)
{
	struct channel *c = (struct channel *)ch;
	st->records = atomic_load_explicit(&c->st_records, memory_order_relaxed);
	st->record_bytes = atomic_load_explicit(&c->st_bytes, memory_order_relaxed);
	st->writes = atomic_load_explicit(&c->st_writes, memory_order_relaxed);
	st->acks = atomic_load_explicit(&c->st_acks, memory_order_relaxed);
	st->heartbeats = atomic_load_explicit(&c->st_heartbeats, memory_order_relaxed);
	st->full = atomic_load_explicit(&c->st_full, memory_order_relaxed);
	st->queued_bytes = chring_head(&c->ring, memory_order_acquire) -
			   chring_tail(&c->ring, memory_order_acquire);
	st->capacity = c->ring.cap;
	st->last_rx_ns = atomic_load(&c->last_rx_ns);
}

uint64_t channel_acked_lsn(const struct channel *ch)
{
	return atomic_load_explicit(&((struct channel *)ch)->acked_lsn, memory_order_acquire);
}

icount_t channel_peer_icount(const struct channel *ch)
{
	return atomic_load_explicit(&((struct channel *)ch)->peer_icount, memory_order_relaxed) &
	       ~CHPROTO_HB_CAUGHT_UP;
}

bool channel_peer_caught_up(const struct channel *ch)
{
	return atomic_load_explicit(&((struct channel *)ch)->peer_icount, memory_order_relaxed) &
	       CHPROTO_HB_CAUGHT_UP;
}

int channel_wait_acked(struct channel *ch, uint64_t lsn, int timeout_ms)
{
	struct timespec ts;
	uint64_t deadline = chnet_deadline(timeout_ms);
	int rc = 0;

	if (channel_acked_lsn(ch) >= lsn)
		return 0;
	rc = chan_sender_wait_reading(ch, lsn, deadline);
	if (rc != -EBUSY)
		return rc;
	rc = 0;
	if (deadline != UINT64_MAX)
		ts = time_mono_timespec(deadline);
	pthread_mutex_lock(&ch->ack_mu);
	atomic_fetch_add(&ch->ack_waiters, 1);
	while (atomic_load(&ch->acked_lsn) < lsn) {
		if (!chan_up(ch)) {
			rc = -EPIPE;
			break;
		}
		if (deadline == UINT64_MAX) {
			pthread_cond_wait(&ch->ack_cv, &ch->ack_mu);
		} else if (pthread_cond_timedwait(&ch->ack_cv, &ch->ack_mu, &ts) == ETIMEDOUT) {
			rc = atomic_load(&ch->acked_lsn) >= lsn ? 0 : -ETIMEDOUT;
			break;
		}
	}
	atomic_fetch_sub(&ch->ack_waiters, 1);
	pthread_mutex_unlock(&ch->ack_mu);
	return rc;
}

void channel_close(struct channel *ch)
{
	if (!ch)
		return;
	if (ch->thread_started) {
		atomic_store(&ch->stop, 1);
		uint64_t one = 1;
		if (write(ch->thread_wake.efd, &one, sizeof(one)) < 0)
			diag_debug("close: eventfd: %s", strerror(errno));
		pthread_join(ch->thread, NULL);
	}
	chan_fail(ch, CHANNEL_CLOSED, "closed locally");
	chan_destroy(ch);
}

int chan_read_input(struct channel *ch)
{
	if (ch->in_off == ch->in_len) {
		ch->in_off = ch->in_len = 0;
	} else if (ch->in_cap - ch->in_len < CHAN_READ_CHUNK / 4) {
		/* A partial frame (< one maximal frame) moves to the front; room >= a chunk again. */
		memmove(ch->in, ch->in + ch->in_off, ch->in_len - ch->in_off);
		ch->in_len -= ch->in_off;
		ch->in_off = 0;
	}
	for (;;) {
		/* A chunk at a time: parsing it stays short, heartbeats and ACKs are not held up. */
		size_t room = MIN(ch->in_cap - ch->in_len, (size_t)CHAN_READ_CHUNK);
		ssize_t n = chan_link_read(ch, ch->in + ch->in_len, room);
		if (n > 0) {
			ch->in_len += (size_t)n;
			ch->last_rx_ns = chnet_now_ns();
			return (int)n;
		}
		if (n == 0) {
			size_t partial = ch->in_len - ch->in_off;
			if (partial > 0)
				chan_fail(ch, CHANNEL_BROKEN,
					  "truncated frame: connection closed after %zu bytes of a frame",
					  partial);
			else
				chan_fail_io(ch, 0, "read");
			return -ECONNRESET;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return -EAGAIN;
		int e = errno;
		chan_fail_io(ch, e, "read");
		return -e;
	}
}

int chan_parse_input(struct channel *ch, bool (*allowed)(unsigned kind),
		     int (*handle)(struct channel *ch, const struct chproto_hdr *h,
				   const uint8_t *payload))
{
	char why[CHAN_ERR_MAX], tmp[24];
	struct chproto_hdr h;

	while (ch->in_len - ch->in_off >= CHPROTO_HDR_SIZE) {
		const uint8_t *hdr = ch->in + ch->in_off;
		int rc = chproto_decode(hdr, &h, why, sizeof(why));
		if (rc < 0) {
			chan_fail(ch, CHANNEL_PROTOCOL, "%s", why);
			return rc;
		}
		if (!allowed(h.kind)) {
			chan_fail(ch, CHANNEL_PROTOCOL, "unexpected %s frame from the %s",
				  chproto_kind_name(h.kind, tmp, sizeof(tmp)),
				  ch->role == CHAN_SENDER ? "backup" : "primary");
			return -EPROTO;
		}
		if (CHPROTO_HDR_SIZE + h.len > ch->in_cap) {
			chan_fail(ch, CHANNEL_PROTOCOL, "oversized frame: %u bytes", h.len);
			return -EMSGSIZE;
		}
		if (ch->in_len - ch->in_off < CHPROTO_HDR_SIZE + h.len)
			break; /* wait for the rest */
		if (chproto_check_crc(hdr, &h, hdr + CHPROTO_HDR_SIZE, why, sizeof(why)) < 0) {
			chan_fail(ch, CHANNEL_PROTOCOL, "%s", why);
			return -EBADMSG;
		}
		rc = handle(ch, &h, hdr + CHPROTO_HDR_SIZE);
		if (rc != 0)
			return rc; /* > 0: frame kept for later (receiver's ring full) */
		ch->in_off += CHPROTO_HDR_SIZE + h.len;
	}
	return 0;
}
