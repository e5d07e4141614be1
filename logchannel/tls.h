/*
 * tls.h — the TLS 1.3 (pre-shared key + ECDHE) layer under the logging channel; see tls.c.
 * Internal to logchannel/.
 */
#ifndef FTVM_LOGCHANNEL_TLS_H
#define FTVM_LOGCHANNEL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "logchannel/channel_types.h"
#include "util/compiler.h"

struct chtls;

/* A TLS session over connected non-blocking socket @fd (not taken over), keyed by @key. */
int chtls_open(int fd, bool server, const struct channel_key *key, struct chtls **out,
	       struct channel_err *err) FTVM_MUST_CHECK;
void chtls_close(struct chtls *t);

/*
 * One non-blocking step of the handshake: 0 done (TLS 1.3, (EC)DHE-PSK), -EAGAIN (poll for
 * chtls_poll_events()), -EACCES the peer failed (wrong key, not TLS, closed; @why says which),
 * -EPROTO something else was negotiated.
 */
int chtls_handshake_step(struct chtls *t, char *why, size_t whylen) FTVM_MUST_CHECK;
short chtls_poll_events(struct chtls *t);
/* The whole handshake, waiting until @deadline (chnet_deadline()): 0, -ETIMEDOUT, -EACCES, ... */
int chtls_handshake(struct chtls *t, uint64_t deadline, char *why, size_t whylen) FTVM_MUST_CHECK;
/* "TLS1.3 ECDHE-PSK AES-256-GCM" */
const char *chtls_describe(struct chtls *t, char *buf, size_t len);
/* The session is TLS 1.3 with an (EC)DHE key exchange: recorded traffic stays secret later. */
bool chtls_forward_secret(struct chtls *t);

/* Like sendmsg()/read() on a non-blocking socket: bytes, 0 (read: EOF), -1 with errno. */
ssize_t chtls_writev(struct chtls *t, const struct iovec *iov, int iovcnt);
ssize_t chtls_read(struct chtls *t, void *buf, size_t cap);
/* Decrypted bytes wait inside the session (the socket may not be readable). */
bool chtls_pending(struct chtls *t);
/* The first fatal TLS error of the reader, else of the writer ("" if none); safe beside both. */
const char *chtls_error(struct chtls *t);

/* Read/write exactly @len bytes through TLS session @tls over @fd (the bare socket when @tls is
 * NULL) by @deadline: 0, -ETIMEDOUT, -ECONNRESET (EOF; *got says how far), -errno. */
int chtls_read_full(int fd, struct chtls *tls, void *buf, size_t len, uint64_t deadline,
		    size_t *got) FTVM_MUST_CHECK;
int chtls_write_full(int fd, struct chtls *tls, const void *buf, size_t len, uint64_t deadline)
	FTVM_MUST_CHECK;

#endif
