/*
 * link.h — the transport interface under a logging channel: what the channel threads need from
 * a connected link, as an ops table, so channel.c, sender.c and receiver.c never ask which
 * transport they run on. Internal to logchannel/.
 *
 * Every link starts as a TCP connection on which the handshake ran (handshake.c: TLS, HELLO,
 * WELCOME, and for RDMA the exchange of connection data); the handshake then turns it into a link
 * that owns the socket and the TLS session:
 *   - TCP (link_tcp.c): the channel's frames go through the TLS session over the socket, or the
 *     bare socket in plaintext mode;
 *   - RDMA (link_rdma.c): the frames go through the RDMA byte stream (verbs.h); the socket stays
 *     open, silent, as the side channel whose closing tells that the peer's process is gone.
 *
 * Contract of read/writev: like non-blocking read()/sendmsg() — bytes, 0 (read: EOF), or -1 with
 * errno (EAGAIN, EINTR, ECONNRESET, ...). A write that returns less than asked, or fails with
 * EAGAIN, must be followed by one that starts with the bytes not reported written (a TLS link may
 * hold them already, encrypted and staged). One writer at a time (the channel's tx_mu) and one
 * reader at a time (the channel thread, or on a link with an input_fd an ack waiter holding
 * rx_mu); the channel does that serialising, the link none.
 *
 * Sleeping: the channel thread asks the link for the descriptors to poll (pollfds), gives it a
 * last chance to report that something arrived meanwhile (before_sleep, after the thread set its
 * sleeping flag), polls them together with its wake eventfd, and hands the results back
 * (woken), which says whether input is readable and whether the link still wants room.
 */
#ifndef FTVM_LOGCHANNEL_LINK_H
#define FTVM_LOGCHANNEL_LINK_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "logchannel/channel_types.h"
#include "util/compiler.h"

/* Descriptors a link asks the channel thread to poll, at most. */
#define CHLINK_MAX_POLLFDS 2

struct chlink;
struct chtls;
struct chrdma_stream;

struct chlink_ops {
	const char *name;
	ssize_t (*writev)(struct chlink *l, const struct iovec *iov, int iovcnt);
	ssize_t (*read)(struct chlink *l, void *buf, size_t cap);
	/* Input that the link already holds, decrypted, which makes no noise on any descriptor. */
	bool (*buffered)(struct chlink *l);
	/*
	 * Unread input waits on the wire (the peer is alive even if nothing was read for a while).
	 * Channel thread only; does not look at buffered().
	 */
	bool (*unread)(struct chlink *l);
	/* Fill @p (CHLINK_MAX_POLLFDS entries at most) for a sleep: the count. */
	int (*pollfds)(struct chlink *l, bool want_in, bool want_out, struct pollfd *p);
	/* Called after the sleeper's flag is set: true if something arrived (do not sleep). */
	bool (*before_sleep)(struct chlink *l);
	/*
	 * After the sleep (revents of @p zeroed if poll() reported nothing): update *readable (input,
	 * or a failure to report, is there) and *want_out (the link has no room for a write).
	 */
	void (*woken)(struct chlink *l, const struct pollfd *p, bool *readable, bool *want_out);
	/*
	 * Why an I/O call failed with @err (0: end of file), when the link knows better than
	 * strerror(): the message, or NULL.
	 */
	const char *(*why)(struct chlink *l, int err);
	/*
	 * A descriptor a thread other than the channel thread may poll() for input when it reads
	 * the link itself (the sender's ack waiter); -1: only the channel thread reads this link.
	 */
	int (*input_fd)(struct chlink *l);
	void (*close)(struct chlink *l);
};

/* The part every link has: the TCP connection the handshake ran on, and its TLS session. */
struct chlink {
	const struct chlink_ops *ops;
	int fd;            /* the connection (TCP: the stream itself; RDMA: the side channel) */
	struct chtls *tls; /* TLS session over fd; NULL in plaintext mode */
};

/* A TCP link over connected socket @fd and its TLS session @tls (NULL: plaintext). Takes both
 * over, also when it fails (-ENOMEM). */
int chlink_tcp_open(int fd, struct chtls *tls, struct chlink **out) FTVM_MUST_CHECK;
/* An RDMA link over connected stream @s, @fd and @tls staying open as its side channel. Takes
 * all three over, also when it fails (-ENOMEM). */
int chlink_rdma_open(int fd, struct chtls *tls, struct chrdma_stream *s, struct chlink **out)
	FTVM_MUST_CHECK;
/* The RDMA stream of an RDMA link, else NULL (tests look into it). */
struct chrdma_stream *chlink_rdma_stream(struct chlink *l);

static inline void chlink_close(struct chlink *l)
{
	if (l)
		l->ops->close(l);
}

#endif
