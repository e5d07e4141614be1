/*
 * conndata.c — encoding of the RDMA connection data block (QPN, PSN, LID/GID, MTU, rkey, ring
 * address and size) that the two sides exchange over the TCP side channel before connecting their
 * RC queue pairs. No verbs calls: built and tested on every machine, device or not.
 */
#include "logchannel/protocol.h"
#include "logchannel/rdma.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CD_OFF_MAGIC 0
#define CD_OFF_QPN 4
#define CD_OFF_PSN 8
#define CD_OFF_LID 12
#define CD_OFF_MTU 14
#define CD_OFF_GID_INDEX 15
#define CD_OFF_GID 16
#define CD_OFF_RKEY 32
#define CD_OFF_RING_SIZE 36
#define CD_OFF_ADDR 40

void chrdma_conndata_encode(uint8_t *out, const struct chrdma_conndata *cd)
{
	put_le32(out + CD_OFF_MAGIC, CHRDMA_CONNDATA_MAGIC);
	put_le32(out + CD_OFF_QPN, cd->qpn);
	put_le32(out + CD_OFF_PSN, cd->psn);
	put_le16(out + CD_OFF_LID, cd->lid);
	out[CD_OFF_MTU] = cd->mtu;
	out[CD_OFF_GID_INDEX] = cd->gid_index;
	memcpy(out + CD_OFF_GID, cd->gid, CHRDMA_GID_SIZE);
	put_le32(out + CD_OFF_RKEY, cd->rkey);
	put_le32(out + CD_OFF_RING_SIZE, cd->ring_size);
	put_le64(out + CD_OFF_ADDR, cd->addr);
}

int chrdma_conndata_decode(const uint8_t *in, uint32_t len, struct chrdma_conndata *cd, char *why,
			   size_t whylen)
{
	if (len != CHPROTO_CONNDATA_SIZE) {
		snprintf(why, whylen, "RDMA connection data: %u bytes, expected %u", len,
			 CHPROTO_CONNDATA_SIZE);
		return -EPROTO;
	}
	uint32_t magic = get_le32(in + CD_OFF_MAGIC);
	if (magic != CHRDMA_CONNDATA_MAGIC) {
		snprintf(why, whylen, "RDMA connection data: bad magic 0x%08x", magic);
		return -EPROTO;
	}
	cd->qpn = get_le32(in + CD_OFF_QPN);
	cd->psn = get_le32(in + CD_OFF_PSN);
	cd->lid = get_le16(in + CD_OFF_LID);
	cd->mtu = in[CD_OFF_MTU];
	cd->gid_index = in[CD_OFF_GID_INDEX];
	memcpy(cd->gid, in + CD_OFF_GID, CHRDMA_GID_SIZE);
	cd->rkey = get_le32(in + CD_OFF_RKEY);
	cd->ring_size = get_le32(in + CD_OFF_RING_SIZE);
	cd->addr = get_le64(in + CD_OFF_ADDR);
	if (cd->qpn == 0 || cd->qpn > CHRDMA_QPN_MASK || cd->psn > CHRDMA_QPN_MASK) {
		snprintf(why, whylen, "RDMA connection data: QPN 0x%x / PSN 0x%x not 24-bit values",
			 cd->qpn, cd->psn);
		return -EPROTO;
	}
	if (cd->mtu < CHRDMA_MTU_MIN || cd->mtu > CHRDMA_MTU_MAX) {
		snprintf(why, whylen, "RDMA connection data: MTU code %u out of range %u..%u",
			 cd->mtu, CHRDMA_MTU_MIN, CHRDMA_MTU_MAX);
		return -EPROTO;
	}
	if (cd->ring_size < CHANNEL_MIN_BUFFER || (cd->ring_size & (cd->ring_size - 1)) != 0 ||
	    cd->addr == 0) {
		snprintf(why, whylen,
			 "RDMA connection data: ring of %u bytes at 0x%llx (need a power of two "
			 ">= %u at a non-zero address)",
			 cd->ring_size, (unsigned long long)cd->addr, CHANNEL_MIN_BUFFER);
		return -EPROTO;
	}
	return 0;
}
