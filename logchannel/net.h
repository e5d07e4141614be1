/*
 * net.h — what every part of the channel uses, the channel object itself and the transports
 * under it alike (net.c): error reports into a channel_err, the monotonic clock and deadlines,
 * "HOST:PORT" addresses and TCP sockets. Internal to logchannel/ (tests use the address parser).
 */
#ifndef FTVM_LOGCHANNEL_NET_H
#define FTVM_LOGCHANNEL_NET_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "logchannel/channel_types.h"
#include "util/compiler.h"

/* Longest error message of the channel (channel_err.msg, channel_error()). */
#define CHAN_ERR_MAX 320

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
/* Waits until @fd is ready for @events or @deadline passes: > 0 ready, 0 timed out, -errno. */
int chnet_wait_fd(int fd, short events, uint64_t deadline);
/*
 * Parse "HOST:PORT" ("127.0.0.1:7000", "[::1]:7000", "name:7000"; HOST may be empty or "*" for
 * the wildcard when listening; PORT a number as util/parse.h reads it, 1..65535, or 0 when
 * listening). Returns 0, -EINVAL on bad syntax, -EHOSTUNREACH if HOST does not
 * resolve. @passive selects a listening address.
 */
int channel_parse_addr(const char *hostport, int passive, struct sockaddr_storage *out,
		       socklen_t *outlen) FTVM_MUST_CHECK;


#endif
