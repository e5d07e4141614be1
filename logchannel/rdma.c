/*
 * rdma.c — the RDMA verbs layer of the logging channel (libibverbs), built only when libibverbs
 * is installed.
 *
 * How it works: each side opens the first RDMA device, allocates a protection domain, registers
 * its ring (the primary's send ring for local reads; the backup's receive ring with remote write
 * access), creates one completion queue and one reliable-connected (RC) queue pair, and moves it
 * to INIT. The two sides then swap connection data (QPN, PSN, LID/GID, MTU, rkey, ring address
 * and size — conndata.c, docs/channel-protocol.md) over the TCP side channel that already ran
 * the HELLO/WELCOME handshake, and move their QPs through RTR to RTS. Records then go out as
 * RDMA WRITE WITH IMMEDIATE straight into the backup's ring (the immediate is the byte count), the
 * backup's receive completions tell it how far the ring is filled.
 *
 * What is exercised on a machine without a device: chrdma_probe() (the "no RDMA device found"
 * path) and the connection-data encoding. Everything past ibv_open_device() needs a device or
 * soft-RoCE and has not run here; the channel threads do not drive data through this layer yet
 * (CHANNEL_RDMA with a device answers -EOPNOTSUPP), see README "Logging channel".
 */
#define LOG_MODULE "logchannel"
#include "logchannel/channel_internal.h"
#include "logchannel/rdma.h"

#include <arpa/inet.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CHRDMA_PORT 1
#define CHRDMA_GID_INDEX 0
#define CHRDMA_CQ_DEPTH 256
#define CHRDMA_MAX_WR 128
#define CHRDMA_RETRY 7
#define CHRDMA_RNR_RETRY 7
#define CHRDMA_ACK_TIMEOUT 14 /* 4.096 us * 2^14 = 67 ms per retry */
#define CHRDMA_MIN_RNR_TIMER 12
#define CHRDMA_HOP_LIMIT 64

struct chrdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	struct ibv_port_attr port;
	union ibv_gid gid;
	uint32_t psn;
	void *ring;
	size_t ring_size;
};

int chrdma_probe(struct channel_err *err)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);

	if (list)
		ibv_free_device_list(list);
	if (!list || n == 0) {
		chan_seterr(err, -ENODEV, "no RDMA device found; use the TCP transport");
		return -ENODEV;
	}
	chan_seterr(err, -EOPNOTSUPP,
		    "RDMA device present, but the channel does not drive data over RDMA yet; "
		    "use the TCP transport");
	return -EOPNOTSUPP;
}

void chrdma_close(struct chrdma *r)
{
	if (!r)
		return;
	if (r->qp)
		ibv_destroy_qp(r->qp);
	if (r->cq)
		ibv_destroy_cq(r->cq);
	if (r->mr)
		ibv_dereg_mr(r->mr);
	if (r->pd)
		ibv_dealloc_pd(r->pd);
	if (r->ctx)
		ibv_close_device(r->ctx);
	free(r);
}

int chrdma_open(struct chrdma **out, void *ring, size_t ring_size, bool remote_write,
		struct channel_err *err)
{
	struct ibv_device **list;
	struct chrdma *r;
	int n = 0, rc;

	list = ibv_get_device_list(&n);
	if (!list || n == 0) {
		if (list)
			ibv_free_device_list(list);
		chan_seterr(err, -ENODEV, "no RDMA device found; use the TCP transport");
		return -ENODEV;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		ibv_free_device_list(list);
		return -ENOMEM;
	}
	r->ring = ring;
	r->ring_size = ring_size;
	r->ctx = ibv_open_device(list[0]);
	const char *name = ibv_get_device_name(list[0]);
	ibv_free_device_list(list);
	if (!r->ctx) {
		rc = -errno;
		chan_seterr(err, rc, "RDMA: cannot open device %s", name ? name : "?");
		goto out;
	}
	if (ibv_query_port(r->ctx, CHRDMA_PORT, &r->port) != 0 ||
	    ibv_query_gid(r->ctx, CHRDMA_PORT, CHRDMA_GID_INDEX, &r->gid) != 0) {
		rc = -EIO;
		chan_seterr(err, rc, "RDMA: cannot query port %d of %s", CHRDMA_PORT, name);
		goto out;
	}
	r->pd = ibv_alloc_pd(r->ctx);
	int access = IBV_ACCESS_LOCAL_WRITE | (remote_write ? IBV_ACCESS_REMOTE_WRITE : 0);
	r->mr = r->pd ? ibv_reg_mr(r->pd, ring, ring_size, access) : NULL;
	r->cq = ibv_create_cq(r->ctx, CHRDMA_CQ_DEPTH, NULL, NULL, 0);
	if (!r->pd || !r->mr || !r->cq) {
		rc = -ENOMEM;
		chan_seterr(err, rc, "RDMA: cannot allocate PD, register %zu bytes or create a CQ",
			    ring_size);
		goto out;
	}
	struct ibv_qp_init_attr qia = {
		.send_cq = r->cq,
		.recv_cq = r->cq,
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = CHRDMA_MAX_WR, .max_recv_wr = CHRDMA_MAX_WR,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	r->qp = ibv_create_qp(r->pd, &qia);
	if (!r->qp) {
		rc = -errno;
		chan_seterr(err, rc, "RDMA: cannot create an RC queue pair");
		goto out;
	}
	struct ibv_qp_attr qa = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = CHRDMA_PORT,
		.qp_access_flags = remote_write ? IBV_ACCESS_REMOTE_WRITE : 0,
	};
	if (ibv_modify_qp(r->qp, &qa,
			  IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0) {
		rc = -EIO;
		chan_seterr(err, rc, "RDMA: queue pair INIT failed");
		goto out;
	}
	if (getrandom(&r->psn, sizeof(r->psn), 0) != sizeof(r->psn))
		r->psn = (uint32_t)chnet_now_ns();
	r->psn &= CHRDMA_QPN_MASK;
	*out = r;
	return 0;
out:
	chrdma_close(r);
	return rc;
}

void chrdma_local(const struct chrdma *r, struct chrdma_conndata *cd)
{
	memset(cd, 0, sizeof(*cd));
	cd->qpn = r->qp->qp_num;
	cd->psn = r->psn;
	cd->lid = r->port.lid;
	cd->mtu = (uint8_t)r->port.active_mtu;
	cd->gid_index = CHRDMA_GID_INDEX;
	memcpy(cd->gid, r->gid.raw, CHRDMA_GID_SIZE);
	cd->rkey = r->mr->rkey;
	cd->ring_size = (uint32_t)r->ring_size;
	cd->addr = (uint64_t)(uintptr_t)r->ring;
}

int chrdma_connect_qp(struct chrdma *r, const struct chrdma_conndata *peer,
		      struct channel_err *err)
{
	bool global = false;
	for (int i = 0; i < CHRDMA_GID_SIZE; i++)
		global |= peer->gid[i] != 0;
	struct ibv_qp_attr qa = {
		.qp_state = IBV_QPS_RTR,
		.path_mtu = (enum ibv_mtu)MIN(peer->mtu, (uint8_t)r->port.active_mtu),
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
	if (ibv_modify_qp(r->qp, &qa,
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
	qa.sq_psn = r->psn;
	qa.max_rd_atomic = 1;
	if (ibv_modify_qp(r->qp, &qa,
			  IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				  IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) != 0) {
		chan_seterr(err, -EIO, "RDMA: queue pair RTS failed");
		return -EIO;
	}
	return 0;
}

int chrdma_post_write(struct chrdma *r, uint64_t local_off, uint32_t len,
		      const struct chrdma_conndata *peer, uint64_t remote_off, uint64_t wr_id)
{
	if (local_off + len > r->ring_size || remote_off + len > peer->ring_size)
		return -EINVAL;
	struct ibv_sge sge = { .addr = (uint64_t)(uintptr_t)r->ring + local_off, .length = len,
			       .lkey = r->mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
		.send_flags = IBV_SEND_SIGNALED,
		.imm_data = htonl(len),
		.wr.rdma = { .remote_addr = peer->addr + remote_off, .rkey = peer->rkey },
	};
	struct ibv_send_wr *bad = NULL;
	int rc = ibv_post_send(r->qp, &wr, &bad);
	return rc ? -rc : 0;
}

int chrdma_post_recv(struct chrdma *r, uint64_t wr_id)
{
	/* WRITE WITH IMMEDIATE consumes a receive request but no buffer: no scatter list. */
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = NULL, .num_sge = 0 };
	struct ibv_recv_wr *bad = NULL;
	int rc = ibv_post_recv(r->qp, &wr, &bad);
	return rc ? -rc : 0;
}

int chrdma_poll(struct chrdma *r, struct chrdma_completion *out, int max)
{
	struct ibv_wc wc[CHRDMA_MAX_WR];
	int n = ibv_poll_cq(r->cq, MIN(max, CHRDMA_MAX_WR), wc);
	if (n < 0)
		return -EIO;
	for (int i = 0; i < n; i++) {
		out[i].wr_id = wc[i].wr_id;
		out[i].ok = wc[i].status == IBV_WC_SUCCESS;
		out[i].received = wc[i].opcode == IBV_WC_RECV_RDMA_WITH_IMM;
		out[i].bytes = out[i].received ? ntohl(wc[i].imm_data) : 0;
	}
	return n;
}
