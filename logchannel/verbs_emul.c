/*
 * verbs_emul.c — an emulated RDMA fabric inside one process, behind the same device operations
 * as libibverbs (verbs.h), so that the RDMA byte stream and the channel over it run in tests on
 * machines without an RDMA device.
 *
 * What it models: endpoints (a registered region, a completion queue, one RC queue pair) found by
 * QPN in a process-wide table; WRITE WITH IMMEDIATE copies the bytes into the target's region
 * (checked against its rkey, address and length like an adapter would) and completes on both
 * sides, in order; a write that finds no posted receive request waits (RNR retry) and is carried
 * out when the target posts one; completion events on an eventfd, one per arm; a write to a QPN
 * that is gone, or to the wrong rkey/range, completes with an error status; an aligned 8-byte
 * write (the credit word) lands as one atomic word, as PCIe DMA does; a "cut link" hook loses
 * every write on the wire. What it does not model: timing, packet loss and retransmission,
 * MTU, more than one process.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/verbs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "logchannel/net.h"
#include "util/diag.h"

#define EMUL_CQ_DEPTH 1024u
#define EMUL_PENDING_MAX 128u
#define EMUL_QPN_FIRST 0x100u
/* ibv_wc_status values, so messages read the same as on hardware. */
#define EMUL_WC_REM_ACCESS_ERR 10
#define EMUL_WC_RETRY_EXC_ERR 12

struct emul_write {
	struct chrdma_dev *src;
	uint64_t local_off, remote_off;
	uint32_t len, imm;
};

struct chrdma_dev {
	struct chrdma_dev *next;
	uint8_t *mem;
	size_t len;
	uint32_t qpn, psn, rkey;
	bool connected;
	struct chrdma_conndata peer;
	struct chrdma_completion cq[EMUL_CQ_DEPTH];
	unsigned cq_head, cq_count;
	bool cq_overrun;
	unsigned recvs;  /* receive requests posted and not yet consumed */
	struct emul_write pending[EMUL_PENDING_MAX]; /* writes to us waiting for a receive request */
	unsigned pend_head, pend_count;
	bool armed;
	int efd;
};

static pthread_mutex_t fabric_mu = PTHREAD_MUTEX_INITIALIZER;
static struct chrdma_dev *fabric;
static uint32_t next_qpn = EMUL_QPN_FIRST;
static bool dropping;

void chrdma_emul_set_dropping(bool drop)
{
	pthread_mutex_lock(&fabric_mu);
	dropping = drop;
	pthread_mutex_unlock(&fabric_mu);
}

static struct chrdma_dev *find_qpn(uint32_t qpn)
{
	for (struct chrdma_dev *d = fabric; d; d = d->next)
		if (d->qpn == qpn)
			return d;
	return NULL;
}

/* Under fabric_mu. */
static void complete(struct chrdma_dev *d, int status, bool recv, uint32_t imm)
{
	if (d->cq_count == EMUL_CQ_DEPTH) {
		d->cq_overrun = true;
		return;
	}
	d->cq[(d->cq_head + d->cq_count++) % EMUL_CQ_DEPTH] =
		(struct chrdma_completion){ .status = status, .recv = recv, .imm = imm };
	if (d->armed) {
		uint64_t one = 1;
		d->armed = false;
		if (write(d->efd, &one, sizeof(one)) < 0)
			diag_debug("emulated fabric: eventfd: %s", strerror(errno));
	}
}

/*
 * The bytes of one write, as an adapter's DMA moves them. The stream reads the ring only after
 * the receive completion (taken under fabric_mu, which orders it after this copy), but it polls
 * its credit word at any time, beside this copy, and its own thread may store a newer credit
 * while a write of the old one waits here for a receive request. A PCIe adapter moves an aligned
 * 8-byte word whole, so such a word is loaded and stored as one atomic word (release: what the
 * peer read before crediting happened before); longer writes are a plain copy.
 */
static void dma_copy(uint8_t *dst, const uint8_t *src, uint32_t len)
{
	if (len == sizeof(uint64_t) && (uintptr_t)dst % sizeof(uint64_t) == 0 &&
	    (uintptr_t)src % sizeof(uint64_t) == 0) {
		uint64_t word = __atomic_load_n((const uint64_t *)src, __ATOMIC_ACQUIRE);
		__atomic_store_n((uint64_t *)dst, word, __ATOMIC_RELEASE);
		return;
	}
	memcpy(dst, src, len);
}

/* Under fabric_mu: the adapter of @w->src carries out the write into @dst. */
static void execute(struct chrdma_dev *dst, const struct emul_write *w)
{
	const struct chrdma_conndata *p = &w->src->peer;
	if (p->rkey != dst->rkey || p->addr != (uint64_t)(uintptr_t)dst->mem ||
	    w->remote_off + w->len > dst->len) {
		complete(w->src, EMUL_WC_REM_ACCESS_ERR, false, 0);
		return;
	}
	dma_copy(dst->mem + w->remote_off, w->src->mem + w->local_off, w->len);
	dst->recvs--;
	complete(dst, 0, true, w->imm);
	complete(w->src, 0, false, 0);
}

static int emul_open(struct chrdma_dev **out, void *mem, size_t len, struct channel_err *err)
{
	struct chrdma_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->efd < 0) {
		int rc = -errno;
		chan_seterr(err, rc, "RDMA (emulated): eventfd: %s", strerror(errno));
		free(d);
		return rc;
	}
	d->mem = mem;
	d->len = len;
	pthread_mutex_lock(&fabric_mu);
	d->qpn = next_qpn++ & CHRDMA_QPN_MASK;
	d->psn = (d->qpn * 2654435761u) & CHRDMA_QPN_MASK;
	d->rkey = d->qpn ^ 0x5a5a0000u;
	d->next = fabric;
	fabric = d;
	pthread_mutex_unlock(&fabric_mu);
	*out = d;
	return 0;
}

static void emul_local(const struct chrdma_dev *d, struct chrdma_conndata *cd)
{
	memset(cd, 0, sizeof(*cd));
	cd->qpn = d->qpn;
	cd->psn = d->psn;
	cd->lid = 1;
	cd->mtu = CHRDMA_MTU_MAX;
	cd->rkey = d->rkey;
	cd->ring_size = CHRDMA_RING_SIZE;
	cd->addr = (uint64_t)(uintptr_t)d->mem;
}

static int emul_connect(struct chrdma_dev *d, const struct chrdma_conndata *peer,
			struct channel_err *err)
{
	pthread_mutex_lock(&fabric_mu);
	bool found = find_qpn(peer->qpn) != NULL;
	if (found) {
		d->peer = *peer;
		d->connected = true;
	}
	pthread_mutex_unlock(&fabric_mu);
	if (!found) {
		chan_seterr(err, -EIO, "RDMA (emulated): queue pair RTR to QPN 0x%x failed: no such QP",
			    peer->qpn);
		return -EIO;
	}
	return 0;
}

static int emul_post_write(struct chrdma_dev *d, uint64_t local_off, uint32_t len,
			   uint64_t remote_off, uint32_t imm)
{
	int rc = 0;

	if (!d->connected || local_off + len > d->len)
		return -EINVAL;
	pthread_mutex_lock(&fabric_mu);
	struct chrdma_dev *dst = find_qpn(d->peer.qpn);
	struct emul_write w = { .src = d, .local_off = local_off, .remote_off = remote_off,
				.len = len, .imm = imm };
	if (dropping) {
		/* Lost on a cut link: no completion anywhere (the adapter would retry for seconds). */
	} else if (!dst) {
		complete(d, EMUL_WC_RETRY_EXC_ERR, false, 0);
	} else if (dst->pend_count == 0 && dst->recvs > 0) {
		execute(dst, &w);
	} else if (dst->pend_count < EMUL_PENDING_MAX) {
		dst->pending[(dst->pend_head + dst->pend_count++) % EMUL_PENDING_MAX] = w;
	} else {
		rc = -ENOMEM; /* more writes in flight than a send queue holds */
	}
	pthread_mutex_unlock(&fabric_mu);
	return rc;
}

static int emul_post_recv(struct chrdma_dev *d)
{
	pthread_mutex_lock(&fabric_mu);
	d->recvs++;
	/* Writes that found no receive request (RNR) go through now, in order. */
	while (d->pend_count > 0 && d->recvs > 0) {
		struct emul_write w = d->pending[d->pend_head];
		d->pend_head = (d->pend_head + 1) % EMUL_PENDING_MAX;
		d->pend_count--;
		execute(d, &w);
	}
	pthread_mutex_unlock(&fabric_mu);
	return 0;
}

static int emul_poll(struct chrdma_dev *d, struct chrdma_completion *out, int max)
{
	int n = 0;

	pthread_mutex_lock(&fabric_mu);
	if (d->cq_overrun) {
		pthread_mutex_unlock(&fabric_mu);
		return -EIO;
	}
	while (n < max && d->cq_count > 0) {
		out[n++] = d->cq[d->cq_head];
		d->cq_head = (d->cq_head + 1) % EMUL_CQ_DEPTH;
		d->cq_count--;
	}
	pthread_mutex_unlock(&fabric_mu);
	return n;
}

static int emul_arm(struct chrdma_dev *d)
{
	pthread_mutex_lock(&fabric_mu);
	d->armed = true;
	pthread_mutex_unlock(&fabric_mu);
	return 0;
}

static int emul_event_fd(const struct chrdma_dev *d)
{
	return d->efd;
}

static void emul_ack_event(struct chrdma_dev *d)
{
	uint64_t v;
	if (read(d->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		diag_debug("emulated fabric: eventfd: %s", strerror(errno));
}

static void emul_close(struct chrdma_dev *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&fabric_mu);
	for (struct chrdma_dev **pp = &fabric; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	/* Writes waiting at us fail at their senders; ours waiting elsewhere vanish with us. */
	for (unsigned i = 0; i < d->pend_count; i++) {
		struct emul_write *w = &d->pending[(d->pend_head + i) % EMUL_PENDING_MAX];
		complete(w->src, EMUL_WC_RETRY_EXC_ERR, false, 0);
	}
	for (struct chrdma_dev *o = fabric; o; o = o->next) {
		unsigned kept = 0;
		for (unsigned i = 0; i < o->pend_count; i++) {
			struct emul_write w = o->pending[(o->pend_head + i) % EMUL_PENDING_MAX];
			if (w.src != d)
				o->pending[(o->pend_head + kept++) % EMUL_PENDING_MAX] = w;
		}
		o->pend_count = kept;
	}
	pthread_mutex_unlock(&fabric_mu);
	close(d->efd);
	free(d);
}

static const struct chrdma_dev_ops emul_ops = {
	.name = "emulated fabric",
	.open = emul_open,
	.local = emul_local,
	.connect = emul_connect,
	.post_write = emul_post_write,
	.post_recv = emul_post_recv,
	.poll = emul_poll,
	.arm = emul_arm,
	.event_fd = emul_event_fd,
	.ack_event = emul_ack_event,
	.close = emul_close,
};

const struct chrdma_dev_ops *chrdma_emul_ops(void)
{
	return &emul_ops;
}
