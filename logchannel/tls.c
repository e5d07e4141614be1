/*
 * tls.c — the TLS 1.3 layer under every logging channel (GnuTLS).
 *
 * Both nodes hold the pairing key (key.c); it is the TLS 1.3 pre-shared key, used only with an
 * (EC)DHE exchange (psk_dhe_ke), so each connection has fresh keys (forward secrecy) and each
 * side proves it holds the key before anything of the channel's own is said. No certificates,
 * no session tickets, no resumption, no early data: a recorded handshake cannot be replayed (the
 * server's random and key share differ every time). Neither side sends anything after the
 * handshake but records of the channel's frames, so the RDMA transport's side channel stays
 * silent, and no close_notify is sent: the channel says BYE itself.
 *
 * Non-blocking use, like the plain socket beneath: chtls_writev()/chtls_read() behave like
 * sendmsg()/read() (-1 with errno EAGAIN, EINTR, ...). GnuTLS lets one thread send while another
 * receives on a session; the channel already keeps one writer (tx_mu) and one reader at a time.
 *
 * System calls are batched both ways, since a TLS record holds at most 16 KiB: the writer encrypts
 * up to CHTLS_BATCH bytes of records into its own staging buffer (GnuTLS's push function only
 * copies while staging) and hands them to the socket in one send(); the reader's pull function
 * reads the socket in chunks of CHTLS_READAHEAD bytes and serves GnuTLS from them. Bytes waiting
 * in either buffer make no noise on the socket, hence chtls_pending() for the reader; the writer
 * keeps its own promise: plaintext whose records are staged but not yet all on the socket
 * (`owed`) is not reported written. The caller's next write necessarily starts with those same
 * bytes (ring bytes stay until reported written, a partial control frame stays queued), so the
 * staged records are flushed first and those bytes are reported then.
 *
 * The handshake's read/write-exactly helpers live here too: they go through the session, or the
 * bare socket before there is one.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "logchannel/net.h"
#include "util/diag.h"

/*
 * TLS 1.3 only, pre-shared key with (EC)DHE only: no plain-PSK key exchange, no certificates.
 * AES-GCM first: GnuTLS's default order picked ChaCha20-Poly1305 here, at a third of AES-GCM's
 * throughput on a CPU with AES instructions (bench/logchannel: 177 vs 484 MB/s of 1500 B records).
 */
#define CHTLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
/* The PSK identity: the same for every pair, so it tells an observer nothing. */
#define CHTLS_IDENTITY "ftvm-channel"
/* Plaintext bytes per TLS record at most (TLS's own limit). */
#define CHTLS_RECORD_MAX 16384u
/* The writer stops encrypting records into its staging buffer past this many bytes. */
#define CHTLS_BATCH (256u * 1024u)
/* Room for one more record past CHTLS_BATCH: header, content type, tag, and slack. */
#define CHTLS_STAGE_CAP (CHTLS_BATCH + CHTLS_RECORD_MAX + 1024u)
/* The reader's chunk from the socket. */
#define CHTLS_READAHEAD (256u * 1024u)

struct chtls {
	gnutls_session_t s;
	gnutls_psk_client_credentials_t ccred;
	gnutls_psk_server_credentials_t scred;
	struct channel_key key;
	int fd;
	bool server;
	size_t owed;           /* writer: plaintext bytes whose records are staged, not yet sent */
	bool staging;          /* writer: push copies into out[] instead of sending */
	uint8_t *out;          /* writer: staged records (CHTLS_STAGE_CAP) */
	size_t out_len, out_off;
	uint8_t *in;           /* reader: bytes read from the socket ahead (CHTLS_READAHEAD) */
	size_t in_len, in_off;
	/* The first fatal error of the writer and of the reader: each side writes its text once,
	 * under its own lock, then publishes it (release), so the other side's chtls_error() reads
	 * either nothing or the whole text, never one being written. */
	char tx_text[128], rx_text[128];
	_Atomic(const char *) tx_error, rx_error;
};

/* GnuTLS's push: stage while the writer batches, else straight to the socket (never past staged bytes). */
static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
	struct chtls *t = ptr;

	if (t->staging && CHTLS_STAGE_CAP - t->out_len >= len) {
		memcpy(t->out + t->out_len, buf, len);
		t->out_len += len;
		return (ssize_t)len;
	}
	if (t->out_len > t->out_off) {
		errno = EAGAIN;
		return -1;
	}
	return send(t->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* GnuTLS's pull: from the read-ahead buffer, refilled one chunk at a time. */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct chtls *t = ptr;

	if (t->in_off == t->in_len) {
		ssize_t n = recv(t->fd, t->in, CHTLS_READAHEAD, MSG_DONTWAIT);
		if (n <= 0)
			return n; /* errno says EAGAIN, ECONNRESET, ...; 0: EOF */
		t->in_off = 0;
		t->in_len = (size_t)n;
	}
	size_t k = MIN(len, t->in_len - t->in_off);
	memcpy(buf, t->in + t->in_off, k);
	t->in_off += k;
	return (ssize_t)k;
}

static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct chtls *t = ptr;
	struct pollfd p = { .fd = t->fd, .events = POLLIN };

	if (t->in_off < t->in_len)
		return 1;
	return poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

/* Send the staged records: 0 all gone, -1 with errno (EAGAIN: the socket is full). */
static int flush_staged(struct chtls *t)
{
	while (t->out_off < t->out_len) {
		ssize_t n = send(t->fd, t->out + t->out_off, t->out_len - t->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		t->out_off += (size_t)n;
	}
	t->out_off = t->out_len = 0;
	return 0;
}

/* Server: the key for the identity the client named; an unknown identity fails the handshake. */
static int server_key(gnutls_session_t s, const char *identity, gnutls_datum_t *key)
{
	struct chtls *t = gnutls_session_get_ptr(s);

	if (!t || strcmp(identity, CHTLS_IDENTITY) != 0)
		return -1;
	key->data = gnutls_malloc(CHANNEL_KEY_SIZE);
	if (!key->data)
		return -1;
	memcpy(key->data, t->key.bytes, CHANNEL_KEY_SIZE);
	key->size = CHANNEL_KEY_SIZE;
	return 0;
}

static int tls_errno(int gerr)
{
	switch (gerr) {
	case GNUTLS_E_AGAIN:
		return EAGAIN;
	case GNUTLS_E_INTERRUPTED:
		return EINTR;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return errno ? errno : ECONNRESET;
	case GNUTLS_E_MEMORY_ERROR:
		return ENOMEM;
	default:
		return EBADMSG;
	}
}

int chtls_open(int fd, bool server, const struct channel_key *key, struct chtls **out,
	       struct channel_err *err)
{
	gnutls_datum_t k = { .data = (unsigned char *)key->bytes, .size = CHANNEL_KEY_SIZE };
	const char *where = NULL;
	struct chtls *t;
	int rc;

	t = calloc(1, sizeof(*t));
	if (!t) {
		chan_seterr(err, -ENOMEM, "TLS: out of memory");
		return -ENOMEM;
	}
	t->fd = fd;
	t->server = server;
	t->key = *key;
	t->out = malloc(CHTLS_STAGE_CAP);
	t->in = malloc(CHTLS_READAHEAD);
	if (!t->out || !t->in) {
		chtls_close(t);
		chan_seterr(err, -ENOMEM, "TLS: out of memory");
		return -ENOMEM;
	}
	rc = gnutls_init(&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
					 GNUTLS_NO_TICKETS | GNUTLS_NO_SIGNAL);
	if (rc < 0) {
		t->s = NULL;
		where = "init";
		goto out;
	}
	gnutls_session_set_ptr(t->s, t);
	if (server) {
		rc = gnutls_psk_allocate_server_credentials(&t->scred);
		if (rc == 0) {
			gnutls_psk_set_server_credentials_function(t->scred, server_key);
			rc = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, t->scred);
		}
	} else {
		rc = gnutls_psk_allocate_client_credentials(&t->ccred);
		if (rc == 0)
			rc = gnutls_psk_set_client_credentials(t->ccred, CHTLS_IDENTITY, &k,
							       GNUTLS_PSK_KEY_RAW);
		if (rc == 0)
			rc = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, t->ccred);
	}
	if (rc < 0) {
		where = "credentials";
		goto out;
	}
	rc = gnutls_priority_set_direct(t->s, CHTLS_PRIORITY, NULL);
	if (rc < 0) {
		where = "priority";
		goto out;
	}
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_push_function(t->s, tls_push);
	gnutls_transport_set_pull_function(t->s, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->s, tls_pull_timeout);
	/* The caller's deadlines bound the handshake, not GnuTLS's own timer. */
	gnutls_handshake_set_timeout(t->s, 0);
	*out = t;
	return 0;
out:
	chan_seterr(err, -EPROTO, "TLS setup (%s): %s", where, gnutls_strerror(rc));
	chtls_close(t);
	return -EPROTO;
}

void chtls_close(struct chtls *t)
{
	if (!t)
		return;
	if (t->s)
		gnutls_deinit(t->s);
	if (t->ccred)
		gnutls_psk_free_client_credentials(t->ccred);
	if (t->scred)
		gnutls_psk_free_server_credentials(t->scred);
	explicit_bzero(&t->key, sizeof(t->key));
	free(t->out);
	free(t->in);
	free(t);
}

int chtls_handshake_step(struct chtls *t, char *why, size_t whylen)
{
	int rc = gnutls_handshake(t->s);

	if (rc == 0) {
		/* The priority string allows nothing else; checked all the same. */
		if (gnutls_protocol_get_version(t->s) != GNUTLS_TLS1_3 ||
		    (gnutls_kx_get(t->s) != GNUTLS_KX_ECDHE_PSK &&
		     gnutls_kx_get(t->s) != GNUTLS_KX_DHE_PSK)) {
			char how[96];
			snprintf(why, whylen, "TLS: negotiated %s", chtls_describe(t, how, sizeof(how)));
			return -EPROTO;
		}
		return 0;
	}
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	if (!gnutls_error_is_fatal(rc))
		return -EAGAIN; /* a warning alert: go on */
	if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
		snprintf(why, whylen, "TLS handshake failed: the peer sent alert \"%s\"%s",
			 gnutls_alert_get_name(gnutls_alert_get(t->s)),
			 gnutls_alert_get(t->s) == GNUTLS_A_DECRYPT_ERROR ||
					 gnutls_alert_get(t->s) == GNUTLS_A_ILLEGAL_PARAMETER ||
					 gnutls_alert_get(t->s) == GNUTLS_A_UNKNOWN_PSK_IDENTITY
				 ? " (the two nodes hold different channel keys)"
				 : "");
	else if (rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_PULL_ERROR ||
		 rc == GNUTLS_E_PREMATURE_TERMINATION)
		snprintf(why, whylen, "TLS handshake failed: connection closed by the peer%s",
			 t->server ? "" : " (does the backup hold the same channel key?)");
	else
		snprintf(why, whylen, "TLS handshake failed: %s%s", gnutls_strerror(rc),
			 rc == GNUTLS_E_DECRYPTION_FAILED || rc == GNUTLS_E_KEY_USAGE_VIOLATION
				 ? " (the two nodes hold different channel keys)"
				 : "");
	/* Tell the peer it failed (an alert names no VM, no epoch); best effort, never waits. */
	if (rc != GNUTLS_E_FATAL_ALERT_RECEIVED && rc != GNUTLS_E_PUSH_ERROR &&
	    rc != GNUTLS_E_PULL_ERROR && rc != GNUTLS_E_PREMATURE_TERMINATION)
		(void)gnutls_alert_send_appropriate(t->s, rc);
	return -EACCES;
}

short chtls_poll_events(struct chtls *t)
{
	return gnutls_record_get_direction(t->s) ? POLLOUT : POLLIN;
}

int chtls_handshake(struct chtls *t, uint64_t deadline, char *why, size_t whylen)
{
	for (;;) {
		int rc = chtls_handshake_step(t, why, whylen);
		if (rc != -EAGAIN)
			return rc;
		struct pollfd p = { .fd = t->fd, .events = chtls_poll_events(t) };
		int left = chnet_remaining_ms(deadline);
		if (left == 0) {
			snprintf(why, whylen, "TLS handshake timed out");
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, left) < 0 && errno != EINTR) {
			snprintf(why, whylen, "TLS handshake: poll: %s", strerror(errno));
			return -errno;
		}
	}
}

const char *chtls_describe(struct chtls *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s %s", gnutls_protocol_get_name(gnutls_protocol_get_version(t->s)),
		 gnutls_kx_get_name(gnutls_kx_get(t->s)),
		 gnutls_cipher_get_name(gnutls_cipher_get(t->s)));
	return buf;
}

bool chtls_forward_secret(struct chtls *t)
{
	gnutls_kx_algorithm_t kx = gnutls_kx_get(t->s);
	return gnutls_protocol_get_version(t->s) == GNUTLS_TLS1_3 &&
	       (kx == GNUTLS_KX_ECDHE_PSK || kx == GNUTLS_KX_DHE_PSK);
}

/* The first fatal error of one side (the caller holds that side's lock): its text, then published. */
static void publish_error(_Atomic(const char *) *slot, char *text, size_t len, int r)
{
	if (atomic_load_explicit(slot, memory_order_relaxed))
		return;
	snprintf(text, len, "TLS: %s", gnutls_strerror(r));
	atomic_store_explicit(slot, text, memory_order_release);
}

/* A fatal error of the writer: keep its text for chtls_error() and set errno. */
static ssize_t write_failed(struct chtls *t, ssize_t r)
{
	int e = tls_errno((int)r);
	/* A socket error speaks for itself (strerror); a TLS one needs GnuTLS's words. */
	if (e != EAGAIN && e != EINTR && r != GNUTLS_E_PUSH_ERROR)
		publish_error(&t->tx_error, t->tx_text, sizeof(t->tx_text), (int)r);
	errno = e;
	return -1;
}

ssize_t chtls_writev(struct chtls *t, const struct iovec *iov, int iovcnt)
{
	size_t total = 0, batch = 0, skip;
	ssize_t r = 0;

	if (t->owed) {
		/* The staged records carry the first `owed` bytes of @iov. */
		if (flush_staged(t) < 0)
			return write_failed(t, errno == EAGAIN ? GNUTLS_E_AGAIN : GNUTLS_E_PUSH_ERROR);
		total = t->owed;
		t->owed = 0;
	}
	skip = total;
	t->staging = true;
	for (int i = 0; i < iovcnt && r >= 0 && t->out_len < CHTLS_BATCH; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		p += skip;
		len -= skip;
		skip = 0;
		while (len > 0 && t->out_len < CHTLS_BATCH) {
			r = gnutls_record_send(t->s, p, MIN(len, (size_t)CHTLS_RECORD_MAX));
			if (r <= 0)
				break;
			batch += (size_t)r;
			p += r;
			len -= (size_t)r;
		}
	}
	t->staging = false;
	if (t->out_len > t->out_off && flush_staged(t) < 0) {
		if (errno != EAGAIN)
			return total ? (ssize_t)total : write_failed(t, GNUTLS_E_PUSH_ERROR);
		t->owed = batch; /* reported once the socket took them */
		batch = 0;
	}
	total += batch;
	if (total > 0)
		return (ssize_t)total;
	if (t->owed)
		return write_failed(t, GNUTLS_E_AGAIN);
	return write_failed(t, r == 0 ? GNUTLS_E_INTERNAL_ERROR : r);
}

ssize_t chtls_read(struct chtls *t, void *buf, size_t cap)
{
	ssize_t r = gnutls_record_recv(t->s, buf, cap);

	if (r >= 0)
		return r;
	/* The TCP connection ended without close_notify: the channel tells truncation itself. */
	if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	int e = tls_errno((int)r);
	if (e != EAGAIN && e != EINTR && r != GNUTLS_E_PULL_ERROR)
		publish_error(&t->rx_error, t->rx_text, sizeof(t->rx_text), (int)r);
	errno = e;
	return -1;
}

bool chtls_pending(struct chtls *t)
{
	return t->in_off < t->in_len || gnutls_record_check_pending(t->s) > 0;
}

const char *chtls_error(struct chtls *t)
{
	const char *rx = atomic_load_explicit(&t->rx_error, memory_order_acquire);
	const char *tx = atomic_load_explicit(&t->tx_error, memory_order_acquire);
	return rx ? rx : tx ? tx : "";
}

/* One non-blocking read or write through @tls, or on the bare socket without it. */
static ssize_t link_read(int fd, struct chtls *tls, void *buf, size_t len)
{
	return tls ? chtls_read(tls, buf, len) : read(fd, buf, len);
}

static ssize_t link_write(int fd, struct chtls *tls, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	return tls ? chtls_writev(tls, &iov, 1) : send(fd, buf, len, MSG_NOSIGNAL);
}

int chtls_read_full(int fd, struct chtls *tls, void *buf, size_t len, uint64_t deadline,
		    size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = link_read(fd, tls, (uint8_t *)buf + *got, len - *got);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		int rc = chnet_wait_fd(fd, POLLIN, deadline);
		if (rc <= 0)
			return rc == 0 ? -ETIMEDOUT : rc;
	}
	return 0;
}

int chtls_write_full(int fd, struct chtls *tls, const void *buf, size_t len, uint64_t deadline)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = link_write(fd, tls, (const uint8_t *)buf + done, len - done);
		if (n >= 0) {
			done += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		int rc = chnet_wait_fd(fd, POLLOUT, deadline);
		if (rc <= 0)
			return rc == 0 ? -ETIMEDOUT : rc;
	}
	return 0;
}
