/*
 * disk_nbd.c — disk images on an NBD server, through libnbd's asynchronous API so that nothing
 * waits longer than DISK_IMAGE_NBD_DEADLINE_MS (see disk_image.h).
 *
 * Each request is issued with nbd_aio_pread/pwrite/flush and then driven with nbd_poll() until it
 * completes or its deadline passes. A server's error reply (EIO, ENOSPC, ...) fails that request
 * only. A connection that dies, or a request without an answer by its deadline, makes the image
 * give the connection up: the handle is closed at once (so a late reply can never write into a
 * buffer its caller has reused), one message goes to stderr, and every later request fails with
 * -EIO. The URI is parsed by util/nbd_uri.c, not by libnbd, so what is accepted is exactly what
 * nbd_uri.h documents.
 *
 * A reopened image (disk_image_reopen(): the migration's reader of a live disk, the writer of a
 * destination's replica) shares its original's connection rather than opening another, so a
 * server that takes one client (qemu-nbd without --shared) serves both: every request holds the
 * connection's lock from issue to completion, so the two handles' requests run one at a time
 * (one may wait for the other's, itself bounded by the deadline). The connection closes with
 * its last handle.
 */
#define DIAG_MODULE "disk"
#include "util/disk_image_internal.h"

#include <errno.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/diag.h"
#include "util/nbd_uri.h"
#include "util/time.h"

#define NBD_CLOSE_WAIT_MS 2000u

/* One connection to the server, shared by an image and its reopened handles. */
struct nbd_conn {
	pthread_mutex_t lock;       /* held by a request from issue to completion; guards all below */
	struct nbd_handle *nbd;     /* NULL once given up */
	bool can_flush;
	unsigned refs;              /* handles on it */
};

struct nbd_image {
	struct disk_image img;
	struct nbd_conn *c;
};

static const char *nbd_reason(void)
{
	const char *e = nbd_get_error();
	return e && *e ? e : "unknown libnbd error";
}

/* Milliseconds left until deadline_ns, 0 when it has passed. */
static int left_ms(uint64_t deadline_ns)
{
	uint64_t now = time_mono_ns();
	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + TIME_NS_PER_MS - 1) / TIME_NS_PER_MS);
}

/* With n->c->lock held. */
static void give_up(struct nbd_image *n, const char *why)
{
	diag_error("disk %s: %s; the NBD connection is given up and every later request of this disk fails",
		   n->img.name, why);
	nbd_close(n->c->nbd);
	n->c->nbd = NULL;
}

/* With n->c->lock held: drives the connection until the command cookie completes: 0, or -errno. */
static int wait_command(struct nbd_image *n, int64_t cookie, const char *what)
{
	uint64_t deadline = time_mono_ns() + DISK_IMAGE_NBD_DEADLINE_MS * TIME_NS_PER_MS;
	char why[512];
	for (;;) {
		int done = nbd_aio_command_completed(n->c->nbd, cookie);
		if (done == 1)
			return 0;
		if (done < 0) {
			int e = nbd_get_errno();
			if (nbd_aio_is_dead(n->c->nbd) || nbd_aio_is_closed(n->c->nbd)) {
				snprintf(why, sizeof(why), "%s failed, the server is gone: %s", what, nbd_reason());
				give_up(n, why);
				return -EIO;
			}
			DIAG_RATELIMITED(DIAG_ERROR, "disk %s: %s failed on the server: %s", n->img.name, what,
					 nbd_reason());
			return e > 0 ? -e : -EIO;
		}
		int ms = left_ms(deadline);
		if (ms == 0) {
			snprintf(why, sizeof(why), "%s got no answer within %u ms", what, DISK_IMAGE_NBD_DEADLINE_MS);
			give_up(n, why);
			return -ETIMEDOUT;
		}
		if (nbd_poll(n->c->nbd, ms) < 0 && nbd_get_errno() != EINTR) {
			snprintf(why, sizeof(why), "%s: the connection failed: %s", what, nbd_reason());
			give_up(n, why);
			return -EIO;
		}
	}
}

static int image_io(struct disk_image *img, bool write, void *buf, size_t len, uint64_t off)
{
	struct nbd_image *n = (struct nbd_image *)img;
	pthread_mutex_lock(&n->c->lock);
	int ret = -EIO;
	int64_t cookie = !n->c->nbd ? -1
		       : write ? nbd_aio_pwrite(n->c->nbd, buf, len, off, NBD_NULL_COMPLETION, 0)
			       : nbd_aio_pread(n->c->nbd, buf, len, off, NBD_NULL_COMPLETION, 0);
	if (cookie >= 0)
		ret = wait_command(n, cookie, write ? "a write" : "a read");
	else if (n->c->nbd)
		DIAG_RATELIMITED(DIAG_ERROR, "disk %s: cannot issue a %s: %s", img->name, write ? "write" : "read",
				 nbd_reason());
	pthread_mutex_unlock(&n->c->lock);
	return ret;
}

static int image_flush(struct disk_image *img)
{
	struct nbd_image *n = (struct nbd_image *)img;
	pthread_mutex_lock(&n->c->lock);
	int ret = n->c->nbd ? 0 : -EIO;
	int64_t cookie = n->c->nbd && n->c->can_flush ? nbd_aio_flush(n->c->nbd, NBD_NULL_COMPLETION, 0) : 0;
	if (cookie > 0)
		ret = wait_command(n, cookie, "a flush");
	else if (cookie < 0) {
		DIAG_RATELIMITED(DIAG_ERROR, "disk %s: cannot issue a flush: %s", img->name, nbd_reason());
		ret = -EIO;
	}
	pthread_mutex_unlock(&n->c->lock);
	return ret;
}

/* A polite NBD_CMD_DISC, waited for a short while only: a hung server cannot hold up an exit. */
static void conn_disconnect(struct nbd_conn *c)
{
	if (!c->nbd || nbd_aio_disconnect(c->nbd, 0) < 0)
		return;
	uint64_t deadline = time_mono_ns() + NBD_CLOSE_WAIT_MS * TIME_NS_PER_MS;
	int ms;
	while (!nbd_aio_is_closed(c->nbd) && !nbd_aio_is_dead(c->nbd) && (ms = left_ms(deadline)) > 0)
		if (nbd_poll(c->nbd, ms) < 0 && nbd_get_errno() != EINTR)
			break;
}

/* Drops one handle's reference: the last one disconnects and frees the connection. */
static void conn_put(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	conn_disconnect(c);
	if (c->nbd)
		nbd_close(c->nbd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void nbd_image_close(struct disk_image *img)
{
	struct nbd_image *n = (struct nbd_image *)img;
	if (n->c)
		conn_put(n->c);
	free(n);
}

static const struct disk_image_ops nbd_ops = {
	.io = image_io,
	.flush = image_flush,
	.close = nbd_image_close,
};

int disk_nbd_share(struct disk_image *img, struct disk_image **out, char *err, size_t errlen)
{
	struct nbd_image *from = (struct nbd_image *)img;
	struct nbd_image *n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "disk %s: out of memory", img->name);
		return -ENOMEM;
	}
	n->img = from->img;
	n->c = from->c;
	pthread_mutex_lock(&n->c->lock);
	n->c->refs++;
	pthread_mutex_unlock(&n->c->lock);
	*out = &n->img;
	return 0;
}

/* Connects (the TCP or Unix connection and the NBD handshake) within the deadline. */
static int image_connect(struct nbd_image *n, const struct nbd_uri *u, const char *uri, char *err, size_t errlen)
{
	char port[8];
	uint64_t deadline = time_mono_ns() + DISK_IMAGE_NBD_DEADLINE_MS * TIME_NS_PER_MS;
	int rc = nbd_set_export_name(n->c->nbd, u->export_name);
	if (rc == 0 && u->transport == NBD_URI_UNIX) {
		rc = nbd_aio_connect_unix(n->c->nbd, u->socket);
	} else if (rc == 0) {
		snprintf(port, sizeof(port), "%u", u->port);
		rc = nbd_aio_connect_tcp(n->c->nbd, u->host, port);
	}
	while (rc == 0 && nbd_aio_is_connecting(n->c->nbd)) {
		int ms = left_ms(deadline);
		if (ms == 0) {
			snprintf(err, errlen, "disk %s: the NBD server did not complete its handshake within %u ms", uri,
				 DISK_IMAGE_NBD_DEADLINE_MS);
			return -ETIMEDOUT;
		}
		if (nbd_poll(n->c->nbd, ms) < 0 && nbd_get_errno() != EINTR)
			rc = -1;
	}
	if (rc < 0 || !nbd_aio_is_ready(n->c->nbd)) {
		snprintf(err, errlen, "disk %s: cannot connect: %s", uri, nbd_reason());
		return -ECONNREFUSED;
	}
	return 0;
}

int disk_nbd_open(const char *uri, bool read_only, struct disk_image **out, char *err, size_t errlen)
{
	struct nbd_uri *u = malloc(sizeof(*u));
	struct nbd_image *n = calloc(1, sizeof(*n));
	int ret = -ENOMEM;
	if (n)
		n->c = calloc(1, sizeof(*n->c));
	if (!u || !n || !n->c) {
		snprintf(err, errlen, "disk %s: out of memory", uri);
		goto out;
	}
	pthread_mutex_init(&n->c->lock, NULL);
	n->c->refs = 1;
	ret = nbd_uri_parse(uri, u, err, errlen);
	if (ret < 0)
		goto out;
	snprintf(n->img.name, sizeof(n->img.name), "%s", uri);
	n->img.ops = &nbd_ops;
	n->c->nbd = nbd_create();
	if (!n->c->nbd) {
		snprintf(err, errlen, "disk %s: %s", uri, nbd_reason());
		ret = -ENOMEM;
		goto out;
	}
	ret = image_connect(n, u, uri, err, errlen);
	if (ret < 0)
		goto out;
	int64_t size = nbd_get_size(n->c->nbd);
	if (size < 0) {
		snprintf(err, errlen, "disk %s: no size: %s", uri, nbd_reason());
		ret = -EIO;
		goto out;
	}
	if (!read_only && nbd_is_read_only(n->c->nbd) == 1) {
		snprintf(err, errlen, "disk %s: the NBD export is read-only", uri);
		ret = -EROFS;
		goto out;
	}
	n->img.size = (uint64_t)size;
	n->c->can_flush = nbd_can_flush(n->c->nbd) == 1;
	*out = &n->img;
	n = NULL;
	ret = 0;
out:
	if (n && n->c)
		nbd_image_close(&n->img); /* never connected or refused: nothing to say to the server */
	else
		free(n);
	free(u);
	return ret;
}
