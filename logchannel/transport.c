/*
 * transport.c — what stands in for the RDMA transport when ftvm is built without libibverbs:
 * asking for CHANNEL_RDMA then fails with a message saying so, instead of a link error.
 */
#define LOG_MODULE "logchannel"
#include "logchannel/channel_internal.h"
#include "logchannel/rdma.h"

#include <errno.h>

#ifndef FTVM_HAVE_RDMA
int chrdma_probe(struct channel_err *err)
{
	chan_seterr(err, -EOPNOTSUPP,
		    "this ftvm was built without libibverbs: the RDMA transport is unavailable; "
		    "use the TCP transport");
	return -EOPNOTSUPP;
}
#endif
