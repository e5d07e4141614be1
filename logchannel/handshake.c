/*
 * handshake.c — opening a channel: the primary connects and sends HELLO (version, VM id, epoch,
 * start LSN); the backup listens, checks the HELLO against the VM id and epoch it was configured
 * for and answers WELCOME or REFUSE with a reason and a message naming what it expected and what
 * it got. With the RDMA transport both sides then set up the RDMA byte stream over the same TCP
 * connection (rdma_setup()). Only after all that does either side start its channel thread.
 */
#define LOG_MODULE "logchannel"
#include "logchannel/channel_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "logchannel/rdma.h"
#include "logchannel/verbs.h"
#include "util/log.h"

struct channel_listener {
	struct channel_config cfg;
	char vm_id[CHANNEL_MAX_VM_ID + 1];
	int fd;
	int port;
};

static int check_config(const struct channel_config *cfg, struct channel_err *err)
{
	size_t idlen = cfg->vm_id ? strlen(cfg->vm_id) : 0;

	if (idlen == 0 || idlen > CHANNEL_MAX_VM_ID) {
		chan_seterr(err, -EINVAL, "channel config: VM id must be 1..%u bytes (got %zu)",
			    CHANNEL_MAX_VM_ID, idlen);
		return -EINVAL;
	}
	if (cfg->start_lsn == 0) {
		chan_seterr(err, -EINVAL, "channel config: start LSN must be >= 1");
		return -EINVAL;
	}
	if (cfg->heartbeat_ms == 0 || cfg->timeout_ms <= cfg->heartbeat_ms || cfg->ack_every == 0) {
		chan_seterr(err, -EINVAL,
			    "channel config: need heartbeat_ms > 0, timeout_ms > heartbeat_ms, "
			    "ack_every > 0 (got %u, %u, %u)",
			    cfg->heartbeat_ms, cfg->timeout_ms, cfg->ack_every);
		return -EINVAL;
	}
	if (cfg->transport == CHANNEL_RDMA)
		return chrdma_probe(err);
	if (cfg->transport != CHANNEL_TCP) {
		chan_seterr(err, -EINVAL, "channel config: unknown transport %d", cfg->transport);
		return -EINVAL;
	}
	return 0;
}

/* Read one frame (header + payload up to @cap) during the handshake. */
static int read_frame(int fd, uint64_t deadline, struct chproto_hdr *h, uint8_t *payload,
		      size_t cap, struct channel_err *err, const char *who)
{
	uint8_t hdr[CHPROTO_HDR_SIZE];
	char why[CHAN_ERR_MAX];
	size_t got;
	int rc;

	rc = chnet_read_full(fd, hdr, sizeof(hdr), deadline, &got);
	if (rc < 0) {
		if (rc == -ECONNRESET && got > 0)
			chan_seterr(err, -EPROTO, "%s: truncated frame header (%zu of %u bytes)", who,
				    got, CHPROTO_HDR_SIZE);
		else if (rc == -ETIMEDOUT)
			chan_seterr(err, rc, "%s: handshake timed out", who);
		else
			chan_seterr(err, rc, "%s: connection lost during handshake: %s", who,
				    rc == -ECONNRESET ? "closed by the peer" : strerror(-rc));
		return rc == -ECONNRESET && got > 0 ? -EPROTO : rc;
	}
	rc = chproto_decode(hdr, h, why, sizeof(why));
	if (rc < 0) {
		chan_seterr(err, rc == -EPROTONOSUPPORT ? rc : -EPROTO, "%s: %s", who, why);
		return rc == -EPROTONOSUPPORT ? rc : -EPROTO;
	}
	if (h->len > cap) {
		chan_seterr(err, -EPROTO, "%s: unexpected %u-byte payload during handshake", who,
			    h->len);
		return -EPROTO;
	}
	rc = chnet_read_full(fd, payload, h->len, deadline, &got);
	if (rc < 0) {
		chan_seterr(err, -EPROTO, "%s: truncated frame (%zu of %u payload bytes): %s", who,
			    got, h->len, strerror(-rc));
		return -EPROTO;
	}
	if (chproto_check_crc(hdr, h, payload, why, sizeof(why)) < 0) {
		chan_seterr(err, -EPROTO, "%s: %s", who, why);
		return -EPROTO;
	}
	return 0;
}

static int refuse_errno(uint64_t reason)
{
	switch (reason) {
	case CHPROTO_REFUSE_VERSION:
		return -EPROTONOSUPPORT;
	case CHPROTO_REFUSE_VM_ID:
		return -EPERM;
	case CHPROTO_REFUSE_EPOCH:
		return -ESTALE;
	case CHPROTO_REFUSE_TRANSPORT:
		return -EPROTOTYPE;
	default:
		return -EPROTO;
	}
}

/*
 * Send one frame of @kind with @len bytes of @payload, then read the peer's frame, which must be
 * of the same kind with at most @cap payload bytes (into @in, header into @h). @what names the
 * step in messages.
 */
static int swap_frames(int fd, uint64_t deadline, unsigned kind, const uint8_t *payload,
		       uint32_t len, uint8_t *in, size_t cap, struct chproto_hdr *h, const char *what,
		       struct channel_err *err)
{
	uint8_t hdr[CHPROTO_HDR_SIZE];
	char who[80], tmp[24];
	int rc;

	chproto_encode(hdr, kind, 0, payload, len);
	rc = chnet_write_full(fd, hdr, sizeof(hdr), deadline);
	if (rc == 0 && len)
		rc = chnet_write_full(fd, payload, len, deadline);
	if (rc < 0) {
		chan_seterr(err, rc, "RDMA setup: sending %s: %s", what, strerror(-rc));
		return rc;
	}
	snprintf(who, sizeof(who), "RDMA setup: peer's %s", what);
	rc = read_frame(fd, deadline, h, in, cap, err, who);
	if (rc < 0)
		return rc;
	if (h->kind != kind) {
		chan_seterr(err, -EPROTO, "RDMA setup: expected %s (%s), got a %s frame",
			    chproto_kind_name(kind, tmp, sizeof(tmp)), what,
			    chproto_kind_name(h->kind, who, sizeof(who)));
		return -EPROTO;
	}
	return 0;
}

/*
 * RDMA transport, right after WELCOME on both sides: open the device and the stream, swap
 * CONNDATA frames over the TCP connection, connect the queue pair, then swap one HEARTBEAT as
 * "ready" (the peer's queue pair is in RTS with its receive requests posted, so no write of ours
 * can reach it early). The TCP connection stays open as the side channel.
 */
static int rdma_setup(struct channel *ch, uint64_t deadline, struct channel_err *err)
{
	uint8_t out[CHPROTO_CONNDATA_SIZE], in[CHPROTO_CONNDATA_SIZE];
	struct chrdma_conndata local, peer;
	struct chrdma_stream *s = NULL;
	struct chproto_hdr h;
	char why[CHAN_ERR_MAX];
	int rc;

	rc = chrdma_stream_open(chrdma_selected_device(), ch->fd, &s, err);
	if (rc < 0)
		return rc;
	chrdma_stream_local(s, &local);
	chrdma_conndata_encode(out, &local);
	rc = swap_frames(ch->fd, deadline, CHPROTO_CONNDATA, out, sizeof(out), in, sizeof(in), &h,
			 "connection data", err);
	if (rc < 0)
		goto fail;
	rc = chrdma_conndata_decode(in, h.len, &peer, why, sizeof(why));
	if (rc < 0) {
		chan_seterr(err, rc, "RDMA setup: %s", why);
		goto fail;
	}
	rc = chrdma_stream_connect(s, &peer, err);
	if (rc == 0)
		rc = swap_frames(ch->fd, deadline, CHPROTO_HEARTBEAT, NULL, 0, in, 0, &h, "ready", err);
	if (rc < 0)
		goto fail;
	ch->rdma = s;
	log_info("RDMA transport up over %s: QPN 0x%x -> 0x%x", s->ops->name, local.qpn, peer.qpn);
	return 0;
fail:
	chrdma_stream_close(s);
	return rc;
}

int channel_connect(const struct channel_config *cfg, const char *hostport, struct channel **out,
		    struct channel_err *err)
{
	uint8_t buf[CHPROTO_HDR_SIZE + CHPROTO_REFUSE_MAX + 1];
	uint8_t hello[CHPROTO_HELLO_MAX];
	struct chproto_hello h = { 0 };
	struct chproto_hdr rh;
	struct channel *ch = NULL;
	int rc, fd;

	rc = check_config(cfg, err);
	if (rc < 0)
		return rc;
	uint64_t deadline = chnet_deadline((int)cfg->connect_timeout_ms);
	fd = chnet_connect(hostport, (int)cfg->connect_timeout_ms, err);
	if (fd < 0)
		return fd;
	rc = chan_create(CHAN_SENDER, cfg, fd, &ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel: %s", strerror(-rc));
		return rc;
	}

	h.epoch = cfg->epoch;
	h.start_lsn = cfg->start_lsn;
	h.max_record = CHANNEL_MAX_RECORD;
	h.heartbeat_ms = cfg->heartbeat_ms;
	h.timeout_ms = cfg->timeout_ms;
	h.vm_id_len = (uint16_t)strlen(ch->vm_id);
	h.transport = (uint16_t)cfg->transport;
	memcpy(h.vm_id, ch->vm_id, h.vm_id_len);
	uint32_t len = chproto_hello_encode(hello, &h);
	chproto_encode(buf, CHPROTO_HELLO, 0, hello, len);
	rc = chnet_write_full(fd, buf, CHPROTO_HDR_SIZE, deadline);
	if (rc == 0)
		rc = chnet_write_full(fd, hello, len, deadline);
	if (rc < 0) {
		chan_seterr(err, rc, "connect to %s: sending HELLO: %s", hostport, strerror(-rc));
		goto out;
	}

	rc = read_frame(fd, deadline, &rh, buf, CHPROTO_REFUSE_MAX, err, "backup's answer");
	if (rc < 0)
		goto out;
	if (rh.kind == CHPROTO_REFUSE) {
		buf[rh.len] = '\0';
		rc = refuse_errno(rh.arg);
		chan_seterr(err, rc, "backup at %s refused the log of VM %s epoch %llu: %s", hostport,
			    ch->vm_id, (unsigned long long)cfg->epoch, (char *)buf);
		goto out;
	}
	if (rh.kind != CHPROTO_WELCOME || rh.arg != cfg->start_lsn) {
		char tmp[24];
		rc = -EPROTO;
		chan_seterr(err, rc, "backup at %s answered %s (arg %llu) instead of WELCOME %llu",
			    hostport, chproto_kind_name(rh.kind, tmp, sizeof(tmp)),
			    (unsigned long long)rh.arg, (unsigned long long)cfg->start_lsn);
		goto out;
	}

	if (cfg->transport == CHANNEL_RDMA) {
		rc = rdma_setup(ch, deadline, err);
		if (rc < 0)
			goto out;
	}
	ch->start_lsn = ch->next_lsn = cfg->start_lsn;
	atomic_store(&ch->acked_lsn, cfg->start_lsn - 1);
	atomic_store(&ch->sent_lsn, cfg->start_lsn - 1);
	ch->last_rx_ns = ch->last_tx_ns = chnet_now_ns();
	rc = chan_start_thread(ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel thread: %s", strerror(-rc));
		goto out;
	}
	log_info("channel to %s up: VM %s epoch %llu start LSN %llu", hostport, ch->vm_id,
		 (unsigned long long)cfg->epoch, (unsigned long long)cfg->start_lsn);
	*out = ch;
	return 0;
out:
	chan_destroy(ch);
	return rc;
}

int channel_listen(const struct channel_config *cfg, const char *hostport,
		   struct channel_listener **out, struct channel_err *err)
{
	struct channel_listener *l;
	int rc;

	rc = check_config(cfg, err);
	if (rc < 0)
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	snprintf(l->vm_id, sizeof(l->vm_id), "%s", cfg->vm_id);
	l->cfg.vm_id = l->vm_id;
	l->fd = chnet_listen(hostport, &l->port);
	if (l->fd < 0) {
		rc = l->fd;
		chan_seterr(err, rc, "listen on %s: %s", hostport, strerror(-rc));
		free(l);
		return rc;
	}
	*out = l;
	return 0;
}

unsigned channel_listener_port(const struct channel_listener *l)
{
	return (unsigned)l->port;
}

void channel_listener_close(struct channel_listener *l)
{
	if (!l)
		return;
	close(l->fd);
	free(l);
}

/* Tell the primary why (best effort: it may already be gone) and log it on this side. */
static int refuse(int fd, uint64_t deadline, unsigned reason, int code, struct channel_err *err,
		  const char *fmt, ...) FTVM_PRINTF(6, 7);
static int refuse(int fd, uint64_t deadline, unsigned reason, int code, struct channel_err *err,
		  const char *fmt, ...)
{
	char msg[CHPROTO_REFUSE_MAX];
	uint8_t hdr[CHPROTO_HDR_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint32_t len = (uint32_t)strlen(msg);
	chproto_encode(hdr, CHPROTO_REFUSE, reason, msg, len);
	if (chnet_write_full(fd, hdr, sizeof(hdr), deadline) == 0 &&
	    chnet_write_full(fd, msg, len, deadline) == 0)
		shutdown(fd, SHUT_WR);
	chan_seterr(err, code, "refused a primary: %s", msg);
	close(fd);
	return code;
}

int channel_accept(struct channel_listener *l, int timeout_ms, struct channel **out,
		   struct channel_err *err)
{
	uint8_t payload[CHPROTO_HELLO_MAX];
	char why[CHAN_ERR_MAX];
	struct chproto_hello h;
	struct chproto_hdr hdr;
	struct channel *ch = NULL;
	struct channel_err herr = { 0 };
	uint64_t deadline = chnet_deadline(timeout_ms);
	int fd, rc;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			break;
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
			rc = -errno;
			chan_seterr(err, rc, "accept: %s", strerror(errno));
			return rc;
		}
		struct pollfd p = { .fd = l->fd, .events = POLLIN };
		rc = poll(&p, 1, chnet_remaining_ms(deadline));
		if (rc == 0) {
			chan_seterr(err, -ETIMEDOUT, "no primary connected within %d ms", timeout_ms);
			return -ETIMEDOUT;
		}
	}
	rc = chnet_socket_opts(fd);
	if (rc < 0) {
		chan_seterr(err, rc, "socket options: %s", strerror(-rc));
		close(fd);
		return rc;
	}
	uint64_t hs_deadline = chnet_deadline((int)l->cfg.connect_timeout_ms);
	rc = read_frame(fd, hs_deadline, &hdr, payload, sizeof(payload), &herr, "primary's HELLO");
	if (rc == -EPROTONOSUPPORT)
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_VERSION, rc, err,
			      "protocol version mismatch: backup speaks %u, primary sent version %u",
			      CHPROTO_VERSION, hdr.version);
	/* Whatever went wrong with this one connection, the listener stays good: -EPROTO. */
	if (rc < 0)
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_MALFORMED, -EPROTO, err, "%s", herr.msg);
	if (hdr.kind != CHPROTO_HELLO) {
		char tmp[24];
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_MALFORMED, -EPROTO, err,
			      "expected HELLO, got a %s frame",
			      chproto_kind_name(hdr.kind, tmp, sizeof(tmp)));
	}
	rc = chproto_hello_decode(payload, hdr.len, &h, why, sizeof(why));
	if (rc < 0)
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_MALFORMED, rc, err, "%s", why);
	if (strcmp(h.vm_id, l->vm_id) != 0)
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_VM_ID, -EPERM, err,
			      "wrong VM: this backup expects VM id \"%s\", the primary sent \"%s\"",
			      l->vm_id, h.vm_id);
	if (h.epoch != l->cfg.epoch)
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_EPOCH, -ESTALE, err,
			      "wrong epoch for VM %s: this backup expects epoch %llu, the primary "
			      "sent epoch %llu",
			      h.vm_id, (unsigned long long)l->cfg.epoch, (unsigned long long)h.epoch);
	if (h.transport != l->cfg.transport)
		return refuse(fd, hs_deadline, CHPROTO_REFUSE_TRANSPORT, -EPROTOTYPE, err,
			      "wrong transport for VM %s: this backup expects %s, the primary asked "
			      "for %s",
			      h.vm_id, l->cfg.transport == CHANNEL_RDMA ? "RDMA" : "TCP",
			      h.transport == CHANNEL_RDMA ? "RDMA" : "TCP");

	rc = chan_create(CHAN_RECEIVER, &l->cfg, fd, &ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel: %s", strerror(-rc));
		return rc;
	}
	ch->start_lsn = ch->expect_lsn = h.start_lsn;
	atomic_store(&ch->ack_req, h.start_lsn - 1);
	atomic_store(&ch->ack_sent, h.start_lsn - 1);
	uint8_t welcome[CHPROTO_HDR_SIZE];
	chproto_encode(welcome, CHPROTO_WELCOME, h.start_lsn, NULL, 0);
	rc = chnet_write_full(fd, welcome, sizeof(welcome), hs_deadline);
	if (rc < 0) {
		chan_seterr(err, rc, "sending WELCOME: %s", strerror(-rc));
		goto out;
	}
	if (l->cfg.transport == CHANNEL_RDMA) {
		rc = rdma_setup(ch, hs_deadline, err);
		if (rc < 0)
			goto out;
	}
	ch->last_rx_ns = ch->last_tx_ns = ch->last_hb_ns = chnet_now_ns();
	rc = chan_start_thread(ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel thread: %s", strerror(-rc));
		goto out;
	}
	log_info("channel accepted: VM %s epoch %llu start LSN %llu", h.vm_id,
		 (unsigned long long)h.epoch, (unsigned long long)h.start_lsn);
	*out = ch;
	return 0;
out:
	chan_destroy(ch);
	return rc;
}
