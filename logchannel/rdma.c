/*
 * rdma.c — the libibverbs device under the RDMA transport (verbs.h): built only when libibverbs
 * is installed.
 *
 * open: the first RDMA device, port 1, GID index 0; a protection domain; the whole region
 * registered once (local write, remote write); one completion queue with a completion channel
 * (its fd, non-blocking, is the event fd); one RC queue pair moved to INIT. connect: RTR with the
 * peer's QPN, PSN, LID/GID and the smaller MTU, then RTS; retries are unlimited for RNR (7) and
 * 7 for transport errors (67 ms each), so a dead peer surfaces as an error completion. Writes
 * are RDMA WRITE WITH IMMEDIATE, every one signalled; receive requests carry no buffer.
 *
 * Exercised here: only chrdma_verbs_probe() (no device on the CI machine, no soft-RoCE in its
 * kernel). The same stream code runs in CI over the emulated fabric (verbs_emul.c); these calls
 * themselves need a machine with an HCA or rxe — see README "Logging channel".
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/net.h"
#include "logchannel/rdma.h"
#include "logchannel/verbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/diag.h"

#define CHRDMA_PORT 1
#define CHRDMA_GID_INDEX 0
#define CHRDMA_CQ_DEPTH 512
#define CHRDMA_MAX_SEND_WR 128
#define CHRDMA_RETRY 7
#define CHRDMA_RNR_RETRY 7 /* 7: retry for ever while the peer has no receive request posted */
#define CHRDMA_ACK_TIMEOUT 14 /* 4.096 us * 2^14 = 67 ms per retry */
#define CHRDMA_MIN_RNR_TIMER 12
#define CHRDMA_HOP_LIMIT 64

struct chrdma_dev {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_comp_channel *events;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	struct ibv_port_attr port;
	union ibv_gid gid;
	uint32_t psn;
	void *mem;
	size_t len;
	struct chrdma_conndata peer;
};

int chrdma_verbs_probe(struct channel_err *err)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);

	if (list)
		ibv_free_device_list(list);
	if (!list || n == 0) {
		chan_seterr(err, -ENODEV, "no RDMA device found; use the TCP transport");
		return -ENODEV;
	}
	return 0;
}

static void verbs_close(struct chrdma_dev *d)
{
	if (!d)
		return;
	if (d->qp)
		ibv_destroy_qp(d->qp);
	if (d->cq)
		ibv_destroy_cq(d->cq);
	if (d->events)
		ibv_destroy_comp_channel(d->events);
	if (d->mr)
		ibv_dereg_mr(d->mr);
	if (d->pd)
		ibv_dealloc_pd(d->pd);
	if (d->ctx)
		ibv_close_device(d->ctx);
	free(d);
}

static int verbs_open(struct chrdma_dev **out, void *mem, size_t len, struct channel_err *err)
{
	struct ibv_device **list;
	struct chrdma_dev *d;
	int n = 0, rc;

	list = ibv_get_device_list(&n);
	if (!list || n == 0) {
		if (list)
			ibv_free_device_list(list);
		chan_seterr(err, -ENODEV, "no RDMA device found; use the TCP transport");
		return -ENODEV;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		ibv_free_device_list(list);
		return -ENOMEM;
	}
	d->mem = mem;
	d->len = len;
	d->ctx = ibv_open_device(list[0]);
	char name[64];
	const char *dev_name = ibv_get_device_name(list[0]);
	snprintf(name, sizeof(name), "%s", dev_name ? dev_name : "?");
	ibv_free_device_list(list);
	if (!d->ctx) {
		rc = -errno;
		chan_seterr(err, rc, "RDMA: cannot open device %s", name);
		goto out;
	}
	if (ibv_query_port(d->ctx, CHRDMA_PORT, &d->port) != 0 ||
	    ibv_query_gid(d->ctx, CHRDMA_PORT, CHRDMA_GID_INDEX, &d->gid) != 0) {
		rc = -EIO;
		chan_seterr(err, rc, "RDMA: cannot query port %d of %s", CHRDMA_PORT, name);
		goto out;
	}
	d->pd = ibv_alloc_pd(d->ctx);
	d->mr = d->pd ? ibv_reg_mr(d->pd, mem, len,
				   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)
		      : NULL;
	d->events = ibv_create_comp_channel(d->ctx);
	d->cq = d->events ? ibv_create_cq(d->ctx, CHRDMA_CQ_DEPTH, NULL, d->events, 0) : NULL;
	if (!d->pd || !d->mr || !d->events || !d->cq) {
		rc = -ENOMEM;
		chan_seterr(err, rc,
			    "RDMA: cannot allocate a PD, register %zu bytes, or create a CQ on %s",
			    len, name);
		goto out;
	}
	int fl = fcntl(d->events->fd, F_GETFL);
	if (fl < 0 || fcntl(d->events->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = -errno;
		chan_seterr(err, rc, "RDMA: completion channel: %s", strerror(errno));
		goto out;
	}
	struct ibv_qp_init_attr qia = {
		.send_cq = d->cq,
		.recv_cq = d->cq,
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = CHRDMA_MAX_SEND_WR, .max_recv_wr = CHRDMA_RQ_DEPTH,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	d->qp = ibv_create_qp(d->pd, &qia);
	if (!d->qp) {
		rc = -errno;
		chan_seterr(err, rc, "RDMA: cannot create an RC queue pair on %s", name);
		goto out;
	}
	struct ibv_qp_attr qa = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = CHRDMA_PORT,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE,
	};
	if (ibv_modify_qp(d->qp, &qa,
			  IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0) {
		rc = -EIO;
		chan_seterr(err, rc, "RDMA: queue pair INIT failed on %s", name);
		goto out;
	}
	if (getrandom(&d->psn, sizeof(d->psn), 0) != sizeof(d->psn))
		d->psn = (uint32_t)chnet_now_ns();
	d->psn &= CHRDMA_QPN_MASK;
	diag_info("RDMA: device %s port %d, QPN 0x%x", name, CHRDMA_PORT, d->qp->qp_num);
	*out = d;
	return 0;
out:
	verbs_close(d);
	return rc;
}

static void verbs_local(const struct chrdma_dev *d, struct chrdma_conndata *cd)
{
	memset(cd, 0, sizeof(*cd));
	cd->qpn = d->qp->qp_num;
	cd->psn = d->psn;
	cd->lid = d->port.lid;
	cd->mtu = (uint8_t)d->port.active_mtu;
	cd->gid_index = CHRDMA_GID_INDEX;
	memcpy(cd->gid, d->gid.raw, CHRDMA_GID_SIZE);
	cd->rkey = d->mr->rkey;
	cd->ring_size = CHRDMA_RING_SIZE;
	cd->addr = (uint64_t)(uintptr_t)d->mem;
}

static int verbs_connect(struct chrdma_dev *d, const struct chrdma_conndata *peer,
			 struct channel_err *err)
{
	bool global = false;
	for (int i = 0; i < CHRDMA_GID_SIZE; i++)
		global |= peer->gid[i] != 0;
	struct ibv_qp_attr qa = {
		.qp_state = IBV_QPS_RTR,
		.path_mtu = (enum ibv_mtu)MIN(peer->mtu, (uint8_t)d->port.active_mtu),
		.dest_qp_num = peer->qpn,
		.rq_psn = peer->psn,
		.max_dest_rd_atomic = 1,
		.min_rnr_timer = CHRDMA_MIN_RNR_TIMER,
		.ah_attr = { .dlid = peer->lid, .sl = 0, .port_num = CHRDMA_PORT,
			     .is_global = global },
	};
	if (global) {
		memcpy(qa.ah_attr.grh.dgid.raw, peer->gid, CHRDMA_GID_SIZE);
		qa.ah_attr.grh.sgid_index = CHRDMA_GID_INDEX;
		qa.ah_attr.grh.hop_limit = CHRDMA_HOP_LIMIT;
	}
	if (ibv_modify_qp(d->qp, &qa,
			  IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				  IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				  IBV_QP_MIN_RNR_TIMER) != 0) {
		chan_seterr(err, -EIO, "RDMA: queue pair RTR to QPN 0x%x failed", peer->qpn);
		return -EIO;
	}
	memset(&qa, 0, sizeof(qa));
	qa.qp_state = IBV_QPS_RTS;
	qa.timeout = CHRDMA_ACK_TIMEOUT;
	qa.retry_cnt = CHRDMA_RETRY;
	qa.rnr_retry = CHRDMA_RNR_RETRY;
	qa.sq_psn = d->psn;
	qa.max_rd_atomic = 1;
	if (ibv_modify_qp(d->qp, &qa,
			  IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				  IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) != 0) {
		chan_seterr(err, -EIO, "RDMA: queue pair RTS failed");
		return -EIO;
	}
	d->peer = *peer;
	return 0;
}

static int verbs_post_write(struct chrdma_dev *d, uint64_t local_off, uint32_t len,
			    uint64_t remote_off, uint32_t imm)
{
	if (local_off + len > d->len || remote_off + len > CHRDMA_REGION_SIZE)
		return -EINVAL;
	struct ibv_sge sge = { .addr = (uint64_t)(uintptr_t)d->mem + local_off, .length = len,
			       .lkey = d->mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
		.send_flags = IBV_SEND_SIGNALED,
		.imm_data = htonl(imm),
		.wr.rdma = { .remote_addr = d->peer.addr + remote_off, .rkey = d->peer.rkey },
	};
	struct ibv_send_wr *bad = NULL;
	int rc = ibv_post_send(d->qp, &wr, &bad);
	return rc ? -rc : 0;
}

static int verbs_post_recv(struct chrdma_dev *d)
{
	/* A WRITE WITH IMMEDIATE consumes a receive request but no buffer: no scatter list. */
	struct ibv_recv_wr wr = { .sg_list = NULL, .num_sge = 0 };
	struct ibv_recv_wr *bad = NULL;
	int rc = ibv_post_recv(d->qp, &wr, &bad);
	return rc ? -rc : 0;
}

static int verbs_poll(struct chrdma_dev *d, struct chrdma_completion *out, int max)
{
	struct ibv_wc wc[32];
	int n = ibv_poll_cq(d->cq, MIN(max, 32), wc);
	if (n < 0)
		return -EIO;
	for (int i = 0; i < n; i++) {
		out[i].status = wc[i].status == IBV_WC_SUCCESS ? 0 : (int)wc[i].status;
		out[i].recv = wc[i].opcode == IBV_WC_RECV_RDMA_WITH_IMM;
		out[i].imm = out[i].recv ? ntohl(wc[i].imm_data) : 0;
	}
	return n;
}

static int verbs_arm(struct chrdma_dev *d)
{
	int rc = ibv_req_notify_cq(d->cq, 0);
	return rc ? -rc : 0;
}

static int verbs_event_fd(const struct chrdma_dev *d)
{
	return d->events->fd;
}

static void verbs_ack_event(struct chrdma_dev *d)
{
	struct ibv_cq *cq;
	void *ctx;
	if (ibv_get_cq_event(d->events, &cq, &ctx) == 0)
		ibv_ack_cq_events(cq, 1);
}

static const struct chrdma_dev_ops verbs_ops = {
	.name = "libibverbs",
	.open = verbs_open,
	.local = verbs_local,
	.connect = verbs_connect,
	.post_write = verbs_post_write,
	.post_recv = verbs_post_recv,
	.poll = verbs_poll,
	.arm = verbs_arm,
	.event_fd = verbs_event_fd,
	.ack_event = verbs_ack_event,
	.close = verbs_close,
};

const struct chrdma_dev_ops *chrdma_verbs_ops(void)
{
	return &verbs_ops;
}
