/*
 * handshake.c — opening a channel. The primary connects and runs the TLS 1.3 handshake (tls.c:
 * pre-shared pairing key + ECDHE), then sends HELLO (version, VM id, epoch, start LSN) inside
 * TLS; the backup checks the HELLO against the VM id and epoch it was configured for and answers
 * WELCOME or REFUSE with a reason and a message naming what it expected and what it got. A peer
 * that has not proved it holds the key never gets that far: it is dropped with nothing said but
 * a TLS alert. With the RDMA transport both sides then set up the RDMA byte stream over the same
 * TLS session (rdma_setup()), so the connection data is bound to the authenticated peer. Only
 * after all that does either side start its channel thread.
 *
 * The backup handshakes with up to CHANNEL_MAX_PENDING connection attempts at once, each with
 * its own deadline (handshake_timeout_ms for TLS + HELLO), all non-blocking in one poll() loop
 * in channel_accept(): silent or slow strangers cannot hold the door shut for the real primary.
 * When all slots are busy a new attempt takes the slot of the oldest one. A peer that fails TLS,
 * goes silent or hangs up is dropped and counted (channel_listener_get_stats()); channel_accept()
 * goes on waiting and only returns for a peer that completed TLS and sent a whole HELLO.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/channel_internal.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "logchannel/rdma.h"
#include "logchannel/tls.h"
#include "logchannel/verbs.h"
#include "util/diag.h"

/* One connection attempt the backup is handshaking with. */
struct hs_slot {
	int fd;                   /* -1: the slot is free */
	struct chtls *tls;        /* NULL in plaintext mode */
	bool tls_done;            /* the peer proved it holds the key */
	uint64_t started, deadline;
	size_t got;               /* bytes of the HELLO frame read so far */
	uint8_t frame[CHPROTO_HDR_SIZE + CHPROTO_HELLO_MAX];
	char peer[64];            /* its address, for log lines */
};

struct channel_listener {
	struct channel_config cfg;
	struct channel_key key;
	char vm_id[CHANNEL_MAX_VM_ID + 1];
	int fd;
	int port;
	struct hs_slot slots[CHANNEL_MAX_PENDING];
	struct channel_listener_stats st;
	uint64_t last_drop_log_ns, drops_unlogged; /* rate limit of the "dropped" lines */
	uint64_t accept_paused_until;              /* out of descriptors: retry accept() then */
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
	if (!cfg->key && !cfg->plaintext) {
		chan_seterr(err, -EINVAL, "channel config: a channel key is required");
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
static int read_frame(int fd, struct chtls *tls, uint64_t deadline, struct chproto_hdr *h,
		      uint8_t *payload, size_t cap, struct channel_err *err, const char *who)
{
	uint8_t hdr[CHPROTO_HDR_SIZE];
	char why[CHAN_ERR_MAX];
	size_t got;
	int rc;

	rc = chtls_read_full(fd, tls, hdr, sizeof(hdr), deadline, &got);
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
	rc = chtls_read_full(fd, tls, payload, h->len, deadline, &got);
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
	case CHPROTO_REFUSE_PURPOSE:
		return -ENOPROTOOPT;
	default:
		return -EPROTO;
	}
}

/*
 * Send one frame of @kind with @len bytes of @payload, then read the peer's frame, which must be
 * of the same kind with at most @cap payload bytes (into @in, header into @h). @what names the
 * step in messages.
 */
static int swap_frames(int fd, struct chtls *tls, uint64_t deadline, unsigned kind,
		       const uint8_t *payload, uint32_t len, uint8_t *in, size_t cap,
		       struct chproto_hdr *h, const char *what, struct channel_err *err)
{
	uint8_t hdr[CHPROTO_HDR_SIZE];
	char who[80], tmp[24];
	int rc;

	chproto_encode(hdr, kind, 0, payload, len);
	rc = chtls_write_full(fd, tls, hdr, sizeof(hdr), deadline);
	if (rc == 0 && len)
		rc = chtls_write_full(fd, tls, payload, len, deadline);
	if (rc < 0) {
		chan_seterr(err, rc, "RDMA setup: sending %s: %s", what, strerror(-rc));
		return rc;
	}
	snprintf(who, sizeof(who), "RDMA setup: peer's %s", what);
	rc = read_frame(fd, tls, deadline, h, in, cap, err, who);
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
 * CONNDATA frames over the TLS session (so only the authenticated peer's connection data is
 * used), connect the queue pair, then swap one HEARTBEAT as
 * "ready" (the peer's queue pair is in RTS with its receive requests posted, so no write of ours
 * can reach it early). The TCP connection stays open as the side channel.
 */
static int rdma_setup(int fd, struct chtls *tls, uint64_t deadline, struct chrdma_stream **out,
		      struct channel_err *err)
{
	uint8_t cd[CHPROTO_CONNDATA_SIZE], in[CHPROTO_CONNDATA_SIZE];
	struct chrdma_conndata local, peer;
	struct chrdma_stream *s = NULL;
	struct chproto_hdr h;
	char why[CHAN_ERR_MAX];
	int rc;

	rc = chrdma_stream_open(chrdma_selected_device(), fd, &s, err);
	if (rc < 0)
		return rc;
	chrdma_stream_local(s, &local);
	chrdma_conndata_encode(cd, &local);
	rc = swap_frames(fd, tls, deadline, CHPROTO_CONNDATA, cd, sizeof(cd), in, sizeof(in), &h,
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
		rc = swap_frames(fd, tls, deadline, CHPROTO_HEARTBEAT, NULL, 0, in, 0, &h, "ready", err);
	if (rc < 0)
		goto fail;
	*out = s;
	diag_info("RDMA transport up over %s: QPN 0x%x -> 0x%x", s->ops->name, local.qpn, peer.qpn);
	return 0;
fail:
	chrdma_stream_close(s);
	return rc;
}

/*
 * The handshake on *@fd (through *@tls) is done: make it the link of @ch for the configured
 * transport — RDMA sets up its stream first. Once the link is being made it takes the socket and
 * the session over (*@fd = -1, *@tls = NULL; a link that cannot be made closes them); when *@fd
 * is still >= 0 on return, they are still the caller's.
 */
static int open_link(struct channel *ch, int *fd, struct chtls **tls, uint64_t deadline,
		     struct channel_err *err)
{
	struct chrdma_stream *s = NULL;
	int rc;

	if (ch->cfg.transport == CHANNEL_RDMA) {
		rc = rdma_setup(*fd, *tls, deadline, &s, err);
		if (rc < 0)
			return rc;
		rc = chlink_rdma_open(*fd, *tls, s, &ch->link);
	} else {
		rc = chlink_tcp_open(*fd, *tls, &ch->link);
	}
	*fd = -1; /* taken over, even by a failed open */
	*tls = NULL;
	if (rc < 0)
		chan_seterr(err, rc, "channel link: %s", strerror(-rc));
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
	struct chtls *tls = NULL;
	int rc, fd;

	rc = check_config(cfg, err);
	if (rc < 0)
		return rc;
	/* The channel (its ring) is built before connecting: the backup's handshake deadline runs
	 * from its accept and should measure the handshake, not our allocations. */
	rc = chan_create(CHAN_SENDER, cfg, &ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel: %s", strerror(-rc));
		return rc;
	}
	uint64_t deadline = chnet_deadline((int)cfg->connect_timeout_ms);
	fd = chnet_connect(hostport, (int)cfg->connect_timeout_ms, err);
	if (fd < 0) {
		chan_destroy(ch);
		return fd;
	}
	if (!cfg->plaintext) {
		char why[CHAN_ERR_MAX];
		rc = chtls_open(fd, false, cfg->key, &tls, err);
		if (rc < 0)
			goto out;
		rc = chtls_handshake(tls, deadline, why, sizeof(why));
		if (rc < 0) {
			chan_seterr(err, rc, "connect to %s: %s", hostport, why);
			goto out;
		}
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
	chproto_encode(buf, CHPROTO_HELLO, (uint64_t)cfg->purpose, hello, len);
	rc = chtls_write_full(fd, tls, buf, CHPROTO_HDR_SIZE, deadline);
	if (rc == 0)
		rc = chtls_write_full(fd, tls, hello, len, deadline);
	if (rc < 0) {
		chan_seterr(err, rc, "connect to %s: sending HELLO: %s", hostport, strerror(-rc));
		goto out;
	}

	rc = read_frame(fd, tls, deadline, &rh, buf, CHPROTO_REFUSE_MAX, err, "backup's answer");
	if (rc < 0)
		goto out;
	if (rh.kind == CHPROTO_REFUSE) {
		char msg[4 * CHPROTO_REFUSE_MAX + 1];
		buf[rh.len] = '\0';
		channel_sanitize(msg, sizeof(msg), (char *)buf);
		rc = refuse_errno(rh.arg);
		const char *peer = cfg->purpose == CHANNEL_PURPOSE_MIGRATION ? "destination" : "backup";
		const char *what = cfg->purpose == CHANNEL_PURPOSE_MIGRATION ? "migration" : "log";
		/* Two VM ids do not fit beside the usual prefix: name both once, ours whole (the peer
		 * leaves it out when its message cannot hold it). */
		if (rh.arg == CHPROTO_REFUSE_VM_ID && strstr(msg, "the primary sent"))
			chan_seterr(err, rc, "%s at %s refused the %s: %s", peer, hostport, what, msg);
		else if (rh.arg == CHPROTO_REFUSE_VM_ID)
			chan_seterr(err, rc, "%s at %s refused the %s: %s, the primary sent \"%s\"", peer, hostport, what,
				    msg, ch->vm_id);
		else
			chan_seterr(err, rc, "%s at %s refused the %s of VM %s epoch %llu: %s", peer, hostport, what,
				    ch->vm_id, (unsigned long long)cfg->epoch, msg);
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

	rc = open_link(ch, &fd, &tls, deadline, err);
	if (rc < 0)
		goto out;
	ch->start_lsn = ch->next_lsn = cfg->start_lsn;
	atomic_store(&ch->acked_lsn, cfg->start_lsn - 1);
	atomic_store(&ch->sent_lsn, cfg->start_lsn - 1);
	ch->last_rx_ns = ch->last_tx_ns = chnet_now_ns();
	rc = chan_start_thread(ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel thread: %s", strerror(-rc));
		goto out;
	}
	char how[96];
	diag_info("channel to %s up (%s): VM %s epoch %llu start LSN %llu", hostport,
		 ch->link->tls ? chtls_describe(ch->link->tls, how, sizeof(how)) : "plaintext",
		 ch->vm_id, (unsigned long long)cfg->epoch, (unsigned long long)cfg->start_lsn);
	*out = ch;
	return 0;
out:
	chan_destroy(ch);
	chtls_close(tls);
	if (fd >= 0)
		close(fd);
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
	if (cfg->key) {
		l->key = *cfg->key;
		l->cfg.key = &l->key;
	}
	if (l->cfg.handshake_timeout_ms == 0)
		l->cfg.handshake_timeout_ms = CHANNEL_DEFAULT_HANDSHAKE_MS;
	for (unsigned i = 0; i < CHANNEL_MAX_PENDING; i++)
		l->slots[i].fd = -1;
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

void channel_listener_get_stats(const struct channel_listener *l,
				struct channel_listener_stats *st)
{
	*st = l->st;
}

/* Forget an attempt: its socket is closed (or was handed to a channel: fd already -1). */
static void slot_free(struct hs_slot *s)
{
	chtls_close(s->tls);
	s->tls = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void channel_listener_close(struct channel_listener *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < CHANNEL_MAX_PENDING; i++)
		slot_free(&l->slots[i]);
	close(l->fd);
	explicit_bzero(&l->key, sizeof(l->key));
	free(l);
}

/*
 * Drop an attempt that never proved itself: nothing is told to the peer. Logged here, one line
 * per second at most, so a flood of strangers cannot flood the log too.
 */
static void slot_drop(struct channel_listener *l, struct hs_slot *s, uint64_t *counter,
		      const char *why)
{
	uint64_t now = chnet_now_ns();

	if (now - l->last_drop_log_ns >= 1000000000ull || l->last_drop_log_ns == 0) {
		if (l->drops_unlogged)
			diag_warn("channel: dropped a connection from %s: %s (and %llu more since the "
				 "last such line)",
				 s->peer, why, (unsigned long long)l->drops_unlogged);
		else
			diag_warn("channel: dropped a connection from %s: %s", s->peer, why);
		l->last_drop_log_ns = now;
		l->drops_unlogged = 0;
	} else {
		l->drops_unlogged++;
	}
	(*counter)++;
	slot_free(s);
}

/*
 * Refuse the primary in @s: tell it why (best effort: it may already be gone), log it on this
 * side with the peer's strings made printable. @peer_msg goes to the peer; @fmt is for this side.
 */
static int refuse(struct channel_listener *l, struct hs_slot *s, unsigned reason, int code,
		  struct channel_err *err, const char *peer_msg, const char *fmt, ...) FTVM_PRINTF(7, 8);
static int refuse(struct channel_listener *l, struct hs_slot *s, unsigned reason, int code,
		  struct channel_err *err, const char *peer_msg, const char *fmt, ...)
{
	char msg[CHAN_ERR_MAX];
	uint8_t hdr[CHPROTO_HDR_SIZE];
	uint64_t deadline = chnet_deadline(500);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint32_t len = (uint32_t)MIN(strlen(peer_msg), (size_t)CHPROTO_REFUSE_MAX);
	chproto_encode(hdr, CHPROTO_REFUSE, reason, peer_msg, len);
	if (chtls_write_full(s->fd, s->tls, hdr, sizeof(hdr), deadline) == 0 &&
	    chtls_write_full(s->fd, s->tls, peer_msg, len, deadline) == 0)
		shutdown(s->fd, SHUT_WR);
	chan_seterr(err, code, "refused a primary from %s: %s", s->peer, msg);
	l->st.refused++;
	slot_free(s);
	return code;
}

/*
 * A whole HELLO arrived in @s: refuse it or open the channel. The peer is told what was wrong
 * only if it proved it holds the key (TLS); in plaintext mode it gets the reason alone.
 */
static int hello_complete(struct channel_listener *l, struct hs_slot *s, struct channel **out,
			  struct channel_err *err)
{
	struct chproto_hdr h;
	struct chproto_hello hello;
	struct channel *ch = NULL;
	char why[CHAN_ERR_MAX], peer_msg[CHPROTO_REFUSE_MAX], id[4 * CHANNEL_MAX_VM_ID + 1];
	bool auth = s->tls != NULL;
	int rc;

	rc = chproto_decode(s->frame, &h, why, sizeof(why));
	if (rc < 0) /* decoded once already when the header came in */
		return refuse(l, s, CHPROTO_REFUSE_MALFORMED, -EPROTO, err, why, "%s", why);
	if (chproto_check_crc(s->frame, &h, s->frame + CHPROTO_HDR_SIZE, why, sizeof(why)) < 0)
		return refuse(l, s, CHPROTO_REFUSE_MALFORMED, -EPROTO, err, why,
			      "primary's HELLO: %s", why);
	rc = chproto_hello_decode(s->frame + CHPROTO_HDR_SIZE, h.len, &hello, why, sizeof(why));
	if (rc < 0)
		return refuse(l, s, CHPROTO_REFUSE_MALFORMED, rc, err, why, "%s", why);
	channel_sanitize(id, sizeof(id), hello.vm_id);
	if (strcmp(hello.vm_id, l->vm_id) != 0) {
		int n = snprintf(peer_msg, sizeof(peer_msg),
				 auth ? "wrong VM: this backup expects VM id \"%s\", the primary sent \"%s\""
				      : "wrong VM",
				 l->vm_id, id);
		if (auth && (size_t)n >= sizeof(peer_msg)) /* the primary knows its own id: ours goes whole */
			snprintf(peer_msg, sizeof(peer_msg), "wrong VM: this backup expects VM id \"%s\"", l->vm_id);
		return refuse(l, s, CHPROTO_REFUSE_VM_ID, -EPERM, err, peer_msg,
			      "wrong VM: this backup expects VM id \"%s\", the primary sent \"%s\"",
			      l->vm_id, id);
	}
	if (h.arg != (uint64_t)l->cfg.purpose) {
		static const char *const what[] = { "an event log", "a migration stream" };
		const char *want = what[l->cfg.purpose == CHANNEL_PURPOSE_MIGRATION];
		const char *got = h.arg == CHANNEL_PURPOSE_LOG ? what[0]
				  : h.arg == CHANNEL_PURPOSE_MIGRATION ? what[1] : "an unknown purpose";
		snprintf(peer_msg, sizeof(peer_msg), "wrong purpose: this node takes %s, the peer offered %s",
			 want, got);
		return refuse(l, s, CHPROTO_REFUSE_PURPOSE, -ENOPROTOOPT, err, peer_msg,
			      "wrong purpose for VM %s: this node takes %s, the peer offered %s", id, want, got);
	}
	/* A migration's destination learns the epoch from the HELLO (the stream repeats it). */
	if (l->cfg.purpose == CHANNEL_PURPOSE_LOG && hello.epoch != l->cfg.epoch) {
		snprintf(peer_msg, sizeof(peer_msg),
			 auth ? "wrong epoch for VM %s: this backup expects epoch %llu, the primary "
				"sent epoch %llu"
			      : "wrong epoch",
			 id, (unsigned long long)l->cfg.epoch, (unsigned long long)hello.epoch);
		return refuse(l, s, CHPROTO_REFUSE_EPOCH, -ESTALE, err, peer_msg,
			      "wrong epoch for VM %s: this backup expects epoch %llu, the primary "
			      "sent epoch %llu",
			      id, (unsigned long long)l->cfg.epoch, (unsigned long long)hello.epoch);
	}
	if (hello.transport != l->cfg.transport) {
		const char *want = l->cfg.transport == CHANNEL_RDMA ? "RDMA" : "TCP";
		const char *got = hello.transport == CHANNEL_RDMA ? "RDMA" : "TCP";
		bool mig = l->cfg.purpose == CHANNEL_PURPOSE_MIGRATION;
		const char *us = mig ? "destination" : "backup", *them = mig ? "source" : "primary";
		snprintf(peer_msg, sizeof(peer_msg),
			 "wrong transport: this %s expects %s, the %s asked for %s", us, want, them, got);
		return refuse(l, s, CHPROTO_REFUSE_TRANSPORT, -EPROTOTYPE, err, peer_msg,
			      "wrong transport for VM %s: this %s expects %s, the %s asked for %s", id, us,
			      want, them, got);
	}

	rc = chan_create(CHAN_RECEIVER, &l->cfg, &ch);
	if (rc < 0) {
		slot_free(s);
		chan_seterr(err, rc, "channel: %s", strerror(-rc));
		return rc;
	}
	ch->start_lsn = ch->expect_lsn = hello.start_lsn;
	ch->peer_epoch = hello.epoch;
	atomic_store(&ch->ack_req, hello.start_lsn - 1);
	atomic_store(&ch->ack_sent, hello.start_lsn - 1);
	/* The peer is authenticated: the rest of the setup gets the full connect timeout. */
	uint64_t deadline = chnet_deadline((int)l->cfg.connect_timeout_ms);
	uint8_t welcome[CHPROTO_HDR_SIZE];
	chproto_encode(welcome, CHPROTO_WELCOME, hello.start_lsn, NULL, 0);
	rc = chtls_write_full(s->fd, s->tls, welcome, sizeof(welcome), deadline);
	if (rc < 0) {
		chan_seterr(err, rc, "sending WELCOME: %s", strerror(-rc));
		goto out;
	}
	rc = open_link(ch, &s->fd, &s->tls, deadline, err);
	slot_free(s); /* its socket and session are the link's now, or closed */
	if (rc < 0)
		goto out;
	ch->last_rx_ns = ch->last_tx_ns = ch->last_hb_ns = chnet_now_ns();
	rc = chan_start_thread(ch);
	if (rc < 0) {
		chan_seterr(err, rc, "channel thread: %s", strerror(-rc));
		goto out;
	}
	l->st.accepted++;
	char how[96];
	diag_info("channel accepted (%s): VM %s epoch %llu start LSN %llu",
		 ch->link->tls ? chtls_describe(ch->link->tls, how, sizeof(how)) : "plaintext", id,
		 (unsigned long long)hello.epoch, (unsigned long long)hello.start_lsn);
	*out = ch;
	return 0;
out:
	slot_free(s);
	chan_destroy(ch);
	return rc;
}

/*
 * Move attempt @s forward with what its socket has: TLS handshake, then the HELLO frame. Returns
 * 1 while it is still in progress or was dropped, else what hello_complete() returned.
 */
static int slot_advance(struct channel_listener *l, struct hs_slot *s, struct channel **out,
			struct channel_err *err)
{
	char why[CHAN_ERR_MAX];
	struct chproto_hdr h;
	int rc;

	if (!s->tls_done) {
		rc = chtls_handshake_step(s->tls, why, sizeof(why));
		if (rc == -EAGAIN)
			return 1;
		if (rc < 0) {
			slot_drop(l, s, &l->st.auth_failed, why);
			return 1;
		}
		s->tls_done = true;
	}
	for (;;) {
		size_t need = CHPROTO_HDR_SIZE;
		if (s->got >= CHPROTO_HDR_SIZE) {
			rc = chproto_decode(s->frame, &h, why, sizeof(why));
			if (rc == -EPROTONOSUPPORT) {
				char msg[CHPROTO_REFUSE_MAX];
				snprintf(msg, sizeof(msg),
					 "protocol version mismatch: backup speaks %u, primary sent "
					 "version %u",
					 CHPROTO_VERSION, h.version);
				return refuse(l, s, CHPROTO_REFUSE_VERSION, rc, err, msg, "%s", msg);
			}
			if (rc < 0)
				return refuse(l, s, CHPROTO_REFUSE_MALFORMED, -EPROTO, err, why,
					      "primary's HELLO: %s", why);
			if (h.kind != CHPROTO_HELLO) {
				char tmp[24], msg[CHPROTO_REFUSE_MAX];
				snprintf(msg, sizeof(msg), "expected HELLO, got a %s frame",
					 chproto_kind_name(h.kind, tmp, sizeof(tmp)));
				return refuse(l, s, CHPROTO_REFUSE_MALFORMED, -EPROTO, err, msg, "%s",
					      msg);
			}
			if (h.len > CHPROTO_HELLO_MAX) {
				char msg[CHPROTO_REFUSE_MAX];
				snprintf(msg, sizeof(msg),
					 "primary's HELLO: unexpected %u-byte payload during handshake",
					 h.len);
				return refuse(l, s, CHPROTO_REFUSE_MALFORMED, -EPROTO, err, msg, "%s",
					      msg);
			}
			need = CHPROTO_HDR_SIZE + h.len;
			if (s->got == need)
				return hello_complete(l, s, out, err);
		}
		ssize_t n = s->tls ? chtls_read(s->tls, s->frame + s->got, need - s->got)
				   : read(s->fd, s->frame + s->got, need - s->got);
		if (n > 0) {
			s->got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		snprintf(why, sizeof(why), "%s after %zu bytes of its HELLO",
			 n == 0 ? "closed by the peer" : strerror(errno), s->got);
		slot_drop(l, s, &l->st.hung_up, why);
		return 1;
	}
}

/* Take a new connection into a free slot, or the oldest attempt's when all are busy. */
static void slot_take(struct channel_listener *l, int fd, const struct sockaddr_storage *sa,
		      socklen_t salen, uint64_t now)
{
	struct hs_slot *s = NULL;
	struct channel_err err;
	char host[48], port[8];

	for (unsigned i = 0; i < CHANNEL_MAX_PENDING && !s; i++)
		if (l->slots[i].fd < 0)
			s = &l->slots[i];
	if (!s) {
		s = &l->slots[0];
		for (unsigned i = 1; i < CHANNEL_MAX_PENDING; i++)
			if (l->slots[i].started < s->started)
				s = &l->slots[i];
		slot_drop(l, s, &l->st.evicted, "all handshake slots busy, this attempt the oldest");
	}
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->started = now;
	s->deadline = now + (uint64_t)l->cfg.handshake_timeout_ms * 1000000ull;
	if (getnameinfo((const struct sockaddr *)sa, salen, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(s->peer, sizeof(s->peer), "%s port %s", host, port);
	else
		snprintf(s->peer, sizeof(s->peer), "an unknown address");
	l->st.connections++;
	if (chnet_socket_opts(fd) < 0 ||
	    (!l->cfg.plaintext && chtls_open(fd, true, &l->key, &s->tls, &err) < 0)) {
		slot_drop(l, s, &l->st.hung_up, "socket setup failed");
		return;
	}
	s->tls_done = s->tls == NULL;
}

int channel_accept(struct channel_listener *l, int timeout_ms, struct channel **out,
		   struct channel_err *err)
{
	struct pollfd p[1 + CHANNEL_MAX_PENDING];
	uint64_t deadline = chnet_deadline(timeout_ms);
	int rc;

	for (;;) {
		uint64_t now = chnet_now_ns(), next = deadline;
		char why[64];
		for (unsigned i = 0; i < CHANNEL_MAX_PENDING; i++) {
			struct hs_slot *s = &l->slots[i];
			p[1 + i] = (struct pollfd){ .fd = -1 };
			if (s->fd < 0)
				continue;
			if (now >= s->deadline) {
				snprintf(why, sizeof(why), "no %s within %u ms",
					 s->tls_done ? "HELLO" : "TLS handshake",
					 l->cfg.handshake_timeout_ms);
				slot_drop(l, s, &l->st.timed_out, why);
				continue;
			}
			next = MIN(next, s->deadline);
			p[1 + i].fd = s->fd;
			p[1 + i].events = s->tls_done ? POLLIN : chtls_poll_events(s->tls);
		}
		int left = chnet_remaining_ms(next);
		if (next == deadline && left == 0) {
			/* The wait the caller asked for ended: not an error to log (a server polls). */
			if (err) {
				err->code = -ETIMEDOUT;
				snprintf(err->msg, sizeof(err->msg), "no primary connected within %d ms", timeout_ms);
			}
			return -ETIMEDOUT;
		}
		/* Out of descriptors, the listener stays readable: leave it out of poll() a while. */
		bool paused = now < l->accept_paused_until;
		if (paused)
			next = MIN(next, l->accept_paused_until);
		left = chnet_remaining_ms(next);
		p[0] = (struct pollfd){ .fd = paused ? -1 : l->fd, .events = POLLIN };
		bool pending = false;
		for (unsigned i = 0; i < CHANNEL_MAX_PENDING; i++)
			pending |= l->slots[i].tls && l->slots[i].tls_done &&
				    chtls_pending(l->slots[i].tls);
		rc = poll(p, 1 + CHANNEL_MAX_PENDING, pending ? 0 : left);
		if (rc < 0 && errno != EINTR) {
			rc = -errno;
			chan_seterr(err, rc, "accept: poll: %s", strerror(errno));
			return rc;
		}
		now = chnet_now_ns();
		for (unsigned i = 0; i < CHANNEL_MAX_PENDING; i++) {
			struct hs_slot *s = &l->slots[i];
			bool ready = p[1 + i].fd >= 0 && s->fd == p[1 + i].fd &&
				     (p[1 + i].revents || (s->tls && s->tls_done && chtls_pending(s->tls)));
			if (!ready)
				continue;
			rc = slot_advance(l, s, out, err);
			if (rc <= 0)
				return rc;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		for (;;) {
			struct sockaddr_storage sa;
			socklen_t salen = sizeof(sa);
			int fd = accept4(l->fd, (struct sockaddr *)&sa, &salen,
					 SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd < 0) {
				if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
					break;
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				    errno == ENOMEM) {
					/* Out of descriptors: the attempts in progress finish or expire. */
					diag_warn("channel: accept: %s", strerror(errno));
					l->accept_paused_until = now + 100000000ull;
					break;
				}
				rc = -errno;
				chan_seterr(err, rc, "accept: %s", strerror(errno));
				return rc;
			}
			slot_take(l, fd, &sa, salen, now);
		}
	}
}
