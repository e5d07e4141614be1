/*
 * rdma.h — the RDMA transport's pieces the handshake sees: probing for a device, and the
 * connection data block exchanged over the TCP side channel (docs/channel-protocol.md, "RDMA
 * transport"). The transport itself is described in verbs.h; the libibverbs device is rdma.c,
 * built only when libibverbs is installed; conndata.c (the encoding) is always built and tested.
 */
#ifndef FTVM_LOGCHANNEL_RDMA_H
#define FTVM_LOGCHANNEL_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logchannel/channel_types.h"
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
 * Check whether the RDMA transport can run here with the selected device (verbs.h); the message
 * goes to @err. -ENODEV: "no RDMA device found; use the TCP transport". -EOPNOTSUPP: built
 * without libibverbs.
 */
int chrdma_probe(struct channel_err *err) FTVM_MUST_CHECK;

#ifdef FTVM_HAVE_RDMA
/* rdma.c: is there an RDMA device? 0 or -ENODEV with the message. */
int chrdma_verbs_probe(struct channel_err *err) FTVM_MUST_CHECK;
#endif

#endif
