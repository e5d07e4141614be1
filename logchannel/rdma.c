/*
 * rdma.c — the RDMA verbs transport (libibverbs): device probing for now.
 */
#define LOG_MODULE "logchannel"
#include "logchannel/channel_internal.h"
#include "logchannel/rdma.h"

#include <errno.h>
#include <infiniband/verbs.h>

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
	return 0;
}
