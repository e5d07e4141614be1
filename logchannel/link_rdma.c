/*
 * link_rdma.c — the RDMA transport (link.h): the channel's frames go through the RDMA byte
 * stream (verbs.h, verbs_stream.c) over whichever verbs device the handshake opened. The channel
 * thread sleeps on the device's completion events and on the TCP side channel, whose closing
 * means the peer is gone; the stream then says what is readable and writable. The stream is the
 * channel thread's alone to read: an ack waiter waits on the condition variable (input_fd -1).
 */
#include "logchannel/link.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "logchannel/tls.h"
#include "logchannel/verbs.h"

struct rdma_link {
	struct chlink base;      /* fd: the side channel; tls: the session that carried the setup */
	struct chrdma_stream *s;
};

static struct chrdma_stream *stream(struct chlink *l)
{
	return ((struct rdma_link *)l)->s;
}

static ssize_t rdma_writev(struct chlink *l, const struct iovec *iov, int iovcnt)
{
	ssize_t n = chrdma_stream_writev(stream(l), iov, iovcnt);
	if (n >= 0)
		return n;
	errno = (int)-n;
	return -1;
}

static ssize_t rdma_read(struct chlink *l, void *buf, size_t cap)
{
	ssize_t n = chrdma_stream_read(stream(l), buf, cap);
	if (n >= 0)
		return n;
	errno = (int)-n;
	return -1;
}

static bool rdma_buffered(struct chlink *l)
{
	(void)l;
	return false; /* what landed in the ring is unread(), found by reaping completions */
}

static bool rdma_unread(struct chlink *l)
{
	return chrdma_stream_progress(stream(l)) >= 0 && chrdma_stream_has_input(stream(l));
}

static int rdma_pollfds(struct chlink *l, bool want_in, bool want_out, struct pollfd *p)
{
	struct chrdma_stream *s = stream(l);

	(void)want_in, (void)want_out; /* the stream decides once woken */
	/* At EOF the side channel stays readable: once it told us, leave it out. */
	p[0] = (struct pollfd){ .fd = chrdma_stream_error(s)[0] ? -1 : l->fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = s->ops->event_fd(s->dev), .events = POLLIN };
	return 2;
}

static bool rdma_before_sleep(struct chlink *l)
{
	return chrdma_stream_prepare_sleep(stream(l));
}

static void rdma_woken(struct chlink *l, const struct pollfd *p, bool *readable, bool *want_out)
{
	struct chrdma_stream *s = stream(l);

	chrdma_stream_woken(s, p[1].revents, p[0].revents);
	*readable = chrdma_stream_has_input(s) || chrdma_stream_error(s)[0];
	*want_out = !chrdma_stream_writable(s);
}

/* Once the stream failed, its reason explains any failed call (EOF included). */
static const char *rdma_why(struct chlink *l, int err)
{
	(void)err;
	return chrdma_stream_error(stream(l))[0] ? chrdma_stream_error(stream(l)) : NULL;
}

static int rdma_input_fd(struct chlink *l)
{
	(void)l;
	return -1;
}

static void rdma_close(struct chlink *l)
{
	chrdma_stream_close(stream(l));
	chtls_close(l->tls);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static const struct chlink_ops rdma_ops = {
	.name = "rdma",
	.writev = rdma_writev,
	.read = rdma_read,
	.buffered = rdma_buffered,
	.unread = rdma_unread,
	.pollfds = rdma_pollfds,
	.before_sleep = rdma_before_sleep,
	.woken = rdma_woken,
	.why = rdma_why,
	.input_fd = rdma_input_fd,
	.close = rdma_close,
};

int chlink_rdma_open(int fd, struct chtls *tls, struct chrdma_stream *s, struct chlink **out)
{
	struct rdma_link *r = calloc(1, sizeof(*r));

	if (!r) {
		chrdma_stream_close(s);
		chtls_close(tls);
		close(fd);
		return -ENOMEM;
	}
	r->base = (struct chlink){ .ops = &rdma_ops, .fd = fd, .tls = tls };
	r->s = s;
	*out = &r->base;
	return 0;
}

struct chrdma_stream *chlink_rdma_stream(struct chlink *l)
{
	return l && l->ops == &rdma_ops ? stream(l) : NULL;
}
