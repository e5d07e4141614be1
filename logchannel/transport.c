/*
 * transport.c — which RDMA verbs device CHANNEL_RDMA channels use (libibverbs by default, the
 * emulated fabric in tests), and whether the RDMA transport can run here at all. Always built:
 * without libibverbs, asking for CHANNEL_RDMA fails with a message saying so, not a link error.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/net.h"
#include "logchannel/rdma.h"
#include "logchannel/verbs.h"

#include <errno.h>

static const struct chrdma_dev_ops *_Atomic selected_device;

void chrdma_select_device(const struct chrdma_dev_ops *ops)
{
	atomic_store(&selected_device, ops);
}

const struct chrdma_dev_ops *chrdma_selected_device(void)
{
	const struct chrdma_dev_ops *ops = atomic_load(&selected_device);
	return ops ? ops : chrdma_verbs_ops();
}

#ifndef FTVM_HAVE_RDMA
const struct chrdma_dev_ops *chrdma_verbs_ops(void)
{
	return NULL;
}
#endif

int chrdma_probe(struct channel_err *err)
{
	const struct chrdma_dev_ops *ops = chrdma_selected_device();

	if (!ops) {
		chan_seterr(err, -EOPNOTSUPP,
			    "this ftvm was built without libibverbs: the RDMA transport is "
			    "unavailable; use the TCP transport");
		return -EOPNOTSUPP;
	}
#ifdef FTVM_HAVE_RDMA
	if (ops == chrdma_verbs_ops())
		return chrdma_verbs_probe(err);
#endif
	return 0;
}
