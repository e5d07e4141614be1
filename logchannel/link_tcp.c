/*
 * link_tcp.c — the TCP transport (link.h): the channel's frames go through the TLS session over
 * the connected socket, or straight to the socket in plaintext mode (two ops tables sharing the
 * socket's polling). Non-blocking throughout; any thread may wait for input on the socket.
 */
#include "logchannel/link.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "logchannel/tls.h"

static ssize_t plain_writev(struct chlink *l, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	return sendmsg(l->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static ssize_t plain_read(struct chlink *l, void *buf, size_t cap)
{
	return read(l->fd, buf, cap);
}

static bool plain_buffered(struct chlink *l)
{
	(void)l;
	return false;
}

static const char *plain_why(struct chlink *l, int err)
{
	(void)l, (void)err;
	return NULL;
}

static ssize_t tls_writev(struct chlink *l, const struct iovec *iov, int iovcnt)
{
	return chtls_writev(l->tls, iov, iovcnt);
}

static ssize_t tls_read(struct chlink *l, void *buf, size_t cap)
{
	return chtls_read(l->tls, buf, cap);
}

static bool tls_buffered(struct chlink *l)
{
	return chtls_pending(l->tls);
}

/* A fatal TLS error explains a failed call better than its errno; EOF is EOF. */
static const char *tls_why(struct chlink *l, int err)
{
	return err != 0 && chtls_error(l->tls)[0] ? chtls_error(l->tls) : NULL;
}

static bool tcp_unread(struct chlink *l)
{
	uint8_t b;
	return recv(l->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static int tcp_pollfds(struct chlink *l, bool want_in, bool want_out, struct pollfd *p)
{
	p[0] = (struct pollfd){ .fd = l->fd,
				.events = (short)((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0)) };
	return 1;
}

static bool tcp_before_sleep(struct chlink *l)
{
	(void)l;
	return false;
}

static void tcp_woken(struct chlink *l, const struct pollfd *p, bool *readable, bool *want_out)
{
	(void)l;
	if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
		*readable = true;
	if (p[0].revents & (POLLOUT | POLLERR | POLLHUP))
		*want_out = false;
}

static int tcp_input_fd(struct chlink *l)
{
	return l->fd;
}

static void tcp_close(struct chlink *l)
{
	chtls_close(l->tls);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static const struct chlink_ops plain_ops = {
	.name = "tcp",
	.writev = plain_writev,
	.read = plain_read,
	.buffered = plain_buffered,
	.unread = tcp_unread,
	.pollfds = tcp_pollfds,
	.before_sleep = tcp_before_sleep,
	.woken = tcp_woken,
	.why = plain_why,
	.input_fd = tcp_input_fd,
	.close = tcp_close,
};

static const struct chlink_ops tls_ops = {
	.name = "tcp+tls",
	.writev = tls_writev,
	.read = tls_read,
	.buffered = tls_buffered,
	.unread = tcp_unread,
	.pollfds = tcp_pollfds,
	.before_sleep = tcp_before_sleep,
	.woken = tcp_woken,
	.why = tls_why,
	.input_fd = tcp_input_fd,
	.close = tcp_close,
};

int chlink_tcp_open(int fd, struct chtls *tls, struct chlink **out)
{
	struct chlink *l = calloc(1, sizeof(*l));

	if (!l) {
		chtls_close(tls);
		close(fd);
		return -ENOMEM;
	}
	l->ops = tls ? &tls_ops : &plain_ops;
	l->fd = fd;
	l->tls = tls;
	*out = l;
	return 0;
}
