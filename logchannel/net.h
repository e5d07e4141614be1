/*
 * net.h — what every part of the channel uses, the channel object itself and the transports
 * under it alike (net.c): error reports into a channel_err, the monotonic clock and deadlines,
 * TCP sockets, and read/write-exactly with a deadline for the handshake. Internal to logchannel/.
 */
#ifndef FTVM_LOGCHANNEL_NET_H
#define FTVM_LOGCHANNEL_NET_H

#include <stddef.h>
#include <stdint.h>

#include "logchannel/channel.h"
#include "util/compiler.h"

/* Longest error message of the channel (channel_err.msg, channel_error()). */
#define CHAN_ERR_MAX 320

struct chtls;

/* Set @err (if not NULL) to code/message and log the message. */
void chan_seterr(struct channel_err *err, int code, const char *fmt, ...) FTVM_PRINTF(3, 4);

uint64_t chnet_now_ns(void);
/* The time @timeout_ms from now (UINT64_MAX: never, for @timeout_ms < 0). */
uint64_t chnet_deadline(int timeout_ms);
/* Milliseconds left until @deadline for poll(): -1 never, 0 passed. */
int chnet_remaining_ms(uint64_t deadline);
int chnet_socket_opts(int fd) FTVM_MUST_CHECK;
int chnet_connect(const char *hostport, int timeout_ms, struct channel_err *err) FTVM_MUST_CHECK;
int chnet_listen(const char *hostport, int *port_out) FTVM_MUST_CHECK;
/* Read/write exactly @len bytes through TLS session @tls over @fd (the bare socket when @tls is
 * NULL) by @deadline: 0, -ETIMEDOUT, -ECONNRESET (EOF; *got says how far), -errno. */
int chnet_read_full(int fd, struct chtls *tls, void *buf, size_t len, uint64_t deadline,
		    size_t *got) FTVM_MUST_CHECK;
int chnet_write_full(int fd, struct chtls *tls, const void *buf, size_t len, uint64_t deadline)
	FTVM_MUST_CHECK;

#endif
