/*
 * verbs_stream.c — a reliable, flow-controlled byte stream over an RDMA verbs device (one RC
 * queue pair, one registered region): the layout, the credit rule and the immediates are
 * described in verbs.h and docs/channel-protocol.md ("RDMA transport"). Device-independent: the
 * same code runs over libibverbs (rdma.c) and over the emulated fabric (verbs_emul.c).
 *
 * Threads: writev() from whoever holds the channel's tx_mu; everything else from the channel
 * thread. The two meet only at atomics (sq_used, tx_head, failed) and at the credit word, which
 * the peer's adapter writes while we run and which is read as one atomic 8-byte load. The
 * reader's counters (rx_head, rx_tail) are atomic too, so that other threads may look at them.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/verbs.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "logchannel/net.h"
#include "util/diag.h"

#define CHRDMA_POLL_BATCH 32
#define CHRDMA_CLOSE_DRAIN_MS 100

static void stream_fail(struct chrdma_stream *s, const char *fmt, ...) FTVM_PRINTF(2, 3);
static void stream_fail(struct chrdma_stream *s, const char *fmt, ...)
{
	if (atomic_exchange(&s->fail_claimed, 1)) /* the first failure is the one reported */
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	atomic_store(&s->failed, -ECONNRESET);
}

static uint64_t credit_in(const struct chrdma_stream *s)
{
	/* Written by the peer's adapter (8 aligned bytes); only ever grows. */
	return __atomic_load_n((const uint64_t *)(s->mem + CHRDMA_OFF_CREDIT_IN), __ATOMIC_ACQUIRE);
}

/* The reader's counters: only the channel thread stores them; relaxed is all a reader needs. */
static uint64_t load_relaxed(const _Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void store_relaxed(_Atomic uint64_t *v, uint64_t x)
{
	atomic_store_explicit(v, x, memory_order_relaxed);
}

static bool take_send_slot(struct chrdma_stream *s)
{
	uint32_t used = atomic_load(&s->sq_used);
	do {
		if (used >= CHRDMA_SQ_DEPTH)
			return false;
	} while (!atomic_compare_exchange_weak(&s->sq_used, &used, used + 1));
	return true;
}

/*
 * The registered region: anonymous pages come zeroed (both credit words start at 0) and are
 * touched only as the stream first uses them, so opening a stream costs no 8 MiB memset (under
 * ThreadSanitizer, aligned_alloc() and that memset took 0.3-0.7 s a side on a loaded 2-core host,
 * most of a handshake's budget).
 */
static uint8_t *region_map(void)
{
	void *m = mmap(NULL, CHRDMA_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

int chrdma_stream_open(const struct chrdma_dev_ops *ops, int side_fd, struct chrdma_stream **out,
		       struct channel_err *err)
{
	struct chrdma_stream *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	s->ops = ops;
	s->side_fd = side_fd;
	s->mem = region_map();
	if (!s->mem) {
		free(s);
		return -ENOMEM;
	}
	rc = ops->open(&s->dev, s->mem, CHRDMA_REGION_SIZE, err);
	if (rc < 0) {
		munmap(s->mem, CHRDMA_REGION_SIZE);
		free(s);
		return rc;
	}
	for (unsigned i = 0; i < CHRDMA_RQ_DEPTH; i++) {
		rc = ops->post_recv(s->dev);
		if (rc < 0) {
			chan_seterr(err, rc, "RDMA (%s): cannot post receive requests: %s", ops->name,
				    strerror(-rc));
			chrdma_stream_close(s);
			return rc;
		}
	}
	*out = s;
	return 0;
}

void chrdma_stream_local(const struct chrdma_stream *s, struct chrdma_conndata *cd)
{
	s->ops->local(s->dev, cd);
}

int chrdma_stream_connect(struct chrdma_stream *s, const struct chrdma_conndata *peer,
			  struct channel_err *err)
{
	if (peer->ring_size != CHRDMA_RING_SIZE) {
		chan_seterr(err, -EPROTO, "RDMA: the peer's ring is %u bytes, this side uses %u",
			    peer->ring_size, CHRDMA_RING_SIZE);
		return -EPROTO;
	}
	return s->ops->connect(s->dev, peer, err);
}

/* Let our last writes (a BYE) leave before the queue pair goes away. */
static void drain_sends(struct chrdma_stream *s)
{
	uint64_t deadline = chnet_deadline(CHRDMA_CLOSE_DRAIN_MS);
	struct timespec pause = { .tv_nsec = 100000 };

	while (atomic_load(&s->sq_used) > 0 && !atomic_load(&s->failed) &&
	       chnet_remaining_ms(deadline) > 0) {
		if (chrdma_stream_progress(s) < 0)
			break;
		if (atomic_load(&s->sq_used) > 0)
			nanosleep(&pause, NULL);
	}
}

void chrdma_stream_close(struct chrdma_stream *s)
{
	if (!s)
		return;
	drain_sends(s);
	s->ops->close(s->dev);
	munmap(s->mem, CHRDMA_REGION_SIZE);
	free(s);
}

ssize_t chrdma_stream_writev(struct chrdma_stream *s, const struct iovec *iov, int iovcnt)
{
	if (atomic_load_explicit(&s->failed, memory_order_relaxed)) {
		/* The peer is gone: what we write vanishes. The failure surfaces through read(),
		 * after the input that landed before it (a receiver must not lose those records). */
		size_t all = 0;
		for (int i = 0; i < iovcnt; i++)
			all += iov[i].iov_len;
		return (ssize_t)all;
	}
	uint64_t credit = credit_in(s);
	if (credit > s->tx_head) {
		stream_fail(s, "RDMA: the peer credited %llu bytes, only %llu were sent",
			    (unsigned long long)credit, (unsigned long long)s->tx_head);
		return -ECONNRESET;
	}
	uint64_t room = CHRDMA_RING_SIZE - (s->tx_head - credit);
	size_t done = 0, iov_off = 0;
	int i = 0;

	while (i < iovcnt && room > 0) {
		if (iov_off == iov[i].iov_len) {
			i++, iov_off = 0;
			continue;
		}
		size_t pos = (size_t)(s->tx_head % CHRDMA_RING_SIZE);
		size_t piece = MIN(iov[i].iov_len - iov_off, (size_t)room);
		piece = MIN(piece, (size_t)CHRDMA_MAX_WRITE);
		piece = MIN(piece, CHRDMA_RING_SIZE - pos);
		if (!take_send_slot(s))
			break;
		memcpy(s->mem + CHRDMA_RING_SIZE + pos, (const uint8_t *)iov[i].iov_base + iov_off,
		       piece);
		int rc = s->ops->post_write(s->dev, CHRDMA_RING_SIZE + pos, (uint32_t)piece, pos,
					    (uint32_t)piece);
		if (rc < 0) {
			atomic_fetch_sub(&s->sq_used, 1);
			stream_fail(s, "RDMA: posting a write failed: %s", strerror(-rc));
			return done ? (ssize_t)done : -ECONNRESET;
		}
		atomic_store(&s->tx_head, s->tx_head + piece); /* one writer: no read-modify-write needed */
		room -= piece;
		iov_off += piece;
		done += piece;
	}
	return done ? (ssize_t)done : -EAGAIN;
}

/* Tell the peer how far we have read, once R/4 more bytes are consumed (or a try was owed). */
static void return_credit(struct chrdma_stream *s)
{
	uint64_t tail = load_relaxed(&s->rx_tail);
	if (!s->credit_owed && tail - s->credit_sent < CHRDMA_RING_SIZE / 4)
		return;
	if (!take_send_slot(s)) {
		s->credit_owed = true;
		return;
	}
	__atomic_store_n((uint64_t *)(s->mem + CHRDMA_OFF_CREDIT_OUT), tail, __ATOMIC_RELEASE);
	int rc = s->ops->post_write(s->dev, CHRDMA_OFF_CREDIT_OUT, sizeof(uint64_t),
				    CHRDMA_OFF_CREDIT_IN, CHRDMA_IMM_CREDIT);
	if (rc < 0) {
		atomic_fetch_sub(&s->sq_used, 1);
		stream_fail(s, "RDMA: posting a credit write failed: %s", strerror(-rc));
		return;
	}
	s->credit_sent = tail;
	s->credit_owed = false;
}

int chrdma_stream_progress(struct chrdma_stream *s)
{
	struct chrdma_completion wc[CHRDMA_POLL_BATCH];
	int reaped = 0;

	for (;;) {
		int n = s->ops->poll(s->dev, wc, CHRDMA_POLL_BATCH);
		if (n < 0) {
			stream_fail(s, "RDMA: polling the completion queue failed");
			break;
		}
		for (int i = 0; i < n; i++) {
			if (wc[i].status != 0) {
				stream_fail(s, "RDMA: %s completed with error status %d (peer gone?)",
					    wc[i].recv ? "a receive" : "a write", wc[i].status);
				continue;
			}
			if (!wc[i].recv) {
				atomic_fetch_sub(&s->sq_used, 1);
				continue;
			}
			if (wc[i].imm != CHRDMA_IMM_CREDIT) {
				uint64_t head = load_relaxed(&s->rx_head) + wc[i].imm;
				uint64_t unread = head - load_relaxed(&s->rx_tail);
				store_relaxed(&s->rx_head, head);
				if (unread > CHRDMA_RING_SIZE)
					stream_fail(s, "RDMA: the peer overran the receive ring "
						       "(%llu unread bytes in a %u-byte ring)",
						    (unsigned long long)unread, CHRDMA_RING_SIZE);
			}
			int rc = s->ops->post_recv(s->dev);
			if (rc < 0)
				stream_fail(s, "RDMA: re-posting a receive request failed: %s",
					    strerror(-rc));
		}
		reaped += n;
		if (n < CHRDMA_POLL_BATCH)
			break;
	}
	if (s->credit_owed && !atomic_load(&s->failed))
		return_credit(s);
	return atomic_load(&s->failed) ? -ECONNRESET : reaped;
}

ssize_t chrdma_stream_read(struct chrdma_stream *s, void *buf, size_t cap)
{
	(void)chrdma_stream_progress(s);
	/* Bytes that landed before a failure are still delivered, in order. */
	uint64_t tail = load_relaxed(&s->rx_tail);
	uint64_t avail = load_relaxed(&s->rx_head) - tail;
	if (avail == 0)
		return atomic_load(&s->failed) ? -ECONNRESET : -EAGAIN;
	size_t pos = (size_t)(tail % CHRDMA_RING_SIZE);
	size_t n = MIN((size_t)avail, cap);
	size_t first = MIN(n, CHRDMA_RING_SIZE - pos);
	memcpy(buf, s->mem + pos, first);
	if (n > first)
		memcpy((uint8_t *)buf + first, s->mem, n - first);
	store_relaxed(&s->rx_tail, tail + n);
	if (!atomic_load(&s->failed))
		return_credit(s);
	return (ssize_t)n;
}

bool chrdma_stream_has_input(const struct chrdma_stream *s)
{
	return load_relaxed(&s->rx_head) != load_relaxed(&s->rx_tail);
}

bool chrdma_stream_writable(const struct chrdma_stream *s)
{
	return atomic_load(&s->failed) ||
	       (s->tx_head - credit_in(s) < CHRDMA_RING_SIZE &&
		atomic_load(&s->sq_used) < CHRDMA_SQ_DEPTH);
}

bool chrdma_stream_prepare_sleep(struct chrdma_stream *s)
{
	int rc = s->ops->arm(s->dev);
	if (rc < 0)
		stream_fail(s, "RDMA: cannot arm the completion queue: %s", strerror(-rc));
	/* A failure is sticky and shows as readable input; it is no reason to stay awake (a
	 * receiver holding back for a full queue would spin). */
	return chrdma_stream_progress(s) > 0;
}

void chrdma_stream_woken(struct chrdma_stream *s, short event_revents, short side_revents)
{
	if (event_revents & POLLIN)
		s->ops->ack_event(s->dev);
	/* Reap first: an orderly BYE that landed just before the side channel closed is kept. */
	(void)chrdma_stream_progress(s);
	if (side_revents & (POLLIN | POLLHUP | POLLERR)) {
		char b;
		ssize_t n = recv(s->side_fd, &b, 1, MSG_DONTWAIT);
		if (n == 0)
			stream_fail(s, "RDMA side channel closed: the peer is gone");
		else if (n > 0)
			stream_fail(s, "RDMA side channel: unexpected data after the connection setup");
		else if (errno != EAGAIN && errno != EINTR)
			stream_fail(s, "RDMA side channel: %s", strerror(errno));
	}
}

const char *chrdma_stream_error(const struct chrdma_stream *s)
{
	return atomic_load(&s->failed) ? s->why : "";
}
