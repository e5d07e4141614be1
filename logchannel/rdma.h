/*
 * rdma.h — the RDMA verbs transport's pieces that the rest of logchannel/ sees: probing for a
 * device, and the connection data block exchanged over the TCP side channel
 * (docs/channel-protocol.md, "RDMA transport"). The verbs code itself is in rdma.c, built only
 * when libibverbs is installed; conndata.c (the encoding) is always built and tested.
 */
#ifndef FTVM_LOGCHANNEL_RDMA_H
#define FTVM_LOGCHANNEL_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logchannel/channel.h"
#include "util/compiler.h"

#define CHRDMA_CONNDATA_MAGIC 0x4D445243u /* "CRDM" as little-endian bytes */
#define CHRDMA_GID_SIZE 16
#define CHRDMA_QPN_MASK 0xFFFFFFu
#define CHRDMA_MTU_MIN 1 /* IBV_MTU_256 */
#define CHRDMA_MTU_MAX 5 /* IBV_MTU_4096 */

/* What one side tells the other to connect its RC queue pair and write into its ring. */
struct chrdma_conndata {
	uint32_t qpn;
	uint32_t psn;
	uint16_t lid;
	uint8_t mtu;
	uint8_t gid_index;
	uint8_t gid[CHRDMA_GID_SIZE];
	uint32_t rkey;
	uint32_t ring_size;
	uint64_t addr;
};

/* Encode into exactly CHPROTO_CONNDATA_SIZE bytes. */
void chrdma_conndata_encode(uint8_t *out, const struct chrdma_conndata *cd);
/* Decode and check (magic, 24-bit QPN/PSN, MTU range, ring size); -EPROTO with @why. */
int chrdma_conndata_decode(const uint8_t *in, uint32_t len, struct chrdma_conndata *cd, char *why,
			   size_t whylen) FTVM_MUST_CHECK;

/*
 * Check whether the RDMA transport can run here; the message goes to @err. -ENODEV: "no RDMA
 * device found; use the TCP transport". -EOPNOTSUPP: built without libibverbs, or a device is
 * present but the channel threads do not drive data over RDMA yet (see rdma.c).
 */
int chrdma_probe(struct channel_err *err) FTVM_MUST_CHECK;

#ifdef FTVM_HAVE_RDMA
/* The verbs layer (rdma.c): device, PD, registered ring, CQ, RC queue pair. */
struct chrdma;

struct chrdma_completion {
	uint64_t wr_id;
	bool ok;       /* IBV_WC_SUCCESS */
	bool received; /* a WRITE WITH IMMEDIATE landed in our ring */
	uint32_t bytes; /* its immediate: bytes written */
};

/* Open the first device, register @ring (remotely writable if @remote_write), QP in INIT. */
int chrdma_open(struct chrdma **out, void *ring, size_t ring_size, bool remote_write,
		struct channel_err *err) FTVM_MUST_CHECK;
/* Our connection data, to send to the peer over the side channel. */
void chrdma_local(const struct chrdma *r, struct chrdma_conndata *cd);
/* Connect our QP to the peer's (INIT -> RTR -> RTS). */
int chrdma_connect_qp(struct chrdma *r, const struct chrdma_conndata *peer,
		      struct channel_err *err) FTVM_MUST_CHECK;
/* RDMA WRITE WITH IMMEDIATE of @len ring bytes at @local_off to the peer's ring at @remote_off. */
int chrdma_post_write(struct chrdma *r, uint64_t local_off, uint32_t len,
		      const struct chrdma_conndata *peer, uint64_t remote_off,
		      uint64_t wr_id) FTVM_MUST_CHECK;
/* A receive request for one incoming WRITE WITH IMMEDIATE. */
int chrdma_post_recv(struct chrdma *r, uint64_t wr_id) FTVM_MUST_CHECK;
/* Up to @max completions: count, or -EIO. */
int chrdma_poll(struct chrdma *r, struct chrdma_completion *out, int max) FTVM_MUST_CHECK;
void chrdma_close(struct chrdma *r);
#endif

#endif
