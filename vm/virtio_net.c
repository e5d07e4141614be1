/*
 * virtio_net.c — virtio network device (virtio 1.2 §5.1): one receive and one transmit queue,
 * a MAC address, no offloads, no control queue, no mergeable buffers.
 *
 * Frames cross the world boundary as bare Ethernet frames: the 12-byte virtio-net header
 * (struct virtio_net_hdr with num_buffers, as VERSION_1 requires) exists only between this model
 * and the driver. With no offloads negotiated the device ignores the header the driver writes on
 * TX, and on RX writes an all-zero header with num_buffers = 1 (§5.1.6.4). So the event log, the
 * Output Rule, the TAP back end and the go-live MAC announcement all deal in plain frames.
 *
 * TX: on a kick every chain is copied out (minus its header) and handed to net_tx at once
 * (outputs are captured when the guest issues them) and returned to the used ring straight away.
 * RX: a NET_RX event takes the first available receive buffer at the icount it is applied; with
 * no buffer (or one too small for header + frame, or the device not running) the frame is dropped
 * and counted — a decision made at that icount, so replay makes the same one.
 */
#define DIAG_MODULE "virtio-net"
#include "util/diag.h"
#include "vm/virtio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define VIRTIO_NET_F_MAC 5

#define NET_CFG_MAC 0
#define NET_CFG_LEN 6
#define NET_MAC_LEN 6

#define NET_HDR_LEN 12           /* struct virtio_net_hdr incl. num_buffers (VERSION_1) */
#define NET_HDR_NUM_BUFFERS 10   /* offset of num_buffers in it */
#define NET_ETH_HEADER 14        /* shortest frame worth sending */

#define NET_RXQ 0
#define NET_TXQ 1

struct virtio_net {
	struct virtio_device vdev;
	uint8_t mac[NET_MAC_LEN];
	uint8_t *tx_buf;      /* VM_EVENT_MAX_FRAME bytes: one frame gathered from a TX chain */
	uint8_t rx_hdr[NET_HDR_LEN];
};

static struct virtio_net *to_net(struct virtio_device *dev)
{
	return (struct virtio_net *)dev;
}

static void transmit(struct virtio_net *net, const struct virtio_chain *chain)
{
	const struct vm_world *world = net->vdev.host.world;
	if (chain->in_len) {
		virtio_set_needs_reset(&net->vdev, "device-writable buffer in the transmit queue");
		return;
	}
	if (chain->out_len < NET_HDR_LEN || chain->out_len - NET_HDR_LEN > VM_EVENT_MAX_FRAME) {
		virtio_set_needs_reset(&net->vdev, "transmitted buffer shorter than its header or too long");
		return;
	}
	size_t len = virtio_gather(&net->vdev, chain, NET_HDR_LEN, net->tx_buf, (size_t)(chain->out_len - NET_HDR_LEN));
	if (len < NET_ETH_HEADER) {
		net->vdev.stats.tx_dropped++;
		virtq_push(&net->vdev, NET_TXQ, chain->head, 0);
		return;
	}
	if (world && world->ops->net_tx)
		world->ops->net_tx(world->ctx, net->vdev.host.index, net->tx_buf, len);
	net->vdev.stats.tx_frames++;
	virtq_push(&net->vdev, NET_TXQ, chain->head, 0);
}

static void net_notify(struct virtio_device *dev, unsigned q)
{
	struct virtio_chain chain;
	if (q != NET_TXQ)
		return; /* new receive buffers wait for the next NET_RX event */
	while (virtio_running(dev) && virtq_pop(dev, q, &chain) == 1)
		transmit(to_net(dev), &chain);
}

static int net_apply(struct virtio_device *dev, const struct vm_event *ev)
{
	struct virtio_chain chain;
	if (ev->kind != VM_EV_NET_RX || !ev->len || ev->len > VM_EVENT_MAX_FRAME || !ev->data)
		return -EINVAL;
	struct virtio_net *net = to_net(dev);
	uint64_t need = NET_HDR_LEN + (uint64_t)ev->len;
	int ret = virtq_peek(dev, NET_RXQ, &chain);
	if (ret == 1 && chain.out_len) {
		virtio_set_needs_reset(dev, "device-readable buffer in the receive queue");
		ret = -EIO;
	}
	if (ret == 1 && chain.in_len < need) {
		DIAG_RATELIMITED(DIAG_WARN, "nic%u: %u-byte frame does not fit a %llu-byte receive buffer; dropped",
				dev->host.index, ev->len, (unsigned long long)chain.in_len);
		ret = 0;
	}
	if (ret != 1) {
		dev->stats.rx_dropped++;
		return 0;
	}
	const struct virtio_seg *in = &chain.segs[chain.nout];
	unsigned nin = chain.nsegs - chain.nout;
	virtio_scatter(dev, in, nin, 0, net->rx_hdr, NET_HDR_LEN);
	virtio_scatter(dev, in, nin, NET_HDR_LEN, ev->data, ev->len);
	virtq_consume(dev, NET_RXQ);
	dev->stats.rx_frames++;
	virtq_push(dev, NET_RXQ, chain.head, (uint32_t)need);
	return 0;
}

static void net_destroy(struct virtio_device *dev)
{
	struct virtio_net *net = to_net(dev);
	free(net->tx_buf);
	free(net);
}

static const struct virtio_device_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.nqueues = 2,
	.notify = net_notify,
	.apply = net_apply,
	.destroy = net_destroy,
};

int virtio_net_create(const struct virtio_host *host, const uint8_t mac[6], struct virtio_device **out)
{
	if (!host || !host->bus || !mac || !out)
		return -EINVAL;
	struct virtio_net *net = calloc(1, sizeof(*net));
	if (!net)
		return -ENOMEM;
	net->tx_buf = malloc(VM_EVENT_MAX_FRAME);
	if (!net->tx_buf) {
		free(net);
		return -ENOMEM;
	}
	virtio_init(&net->vdev, &net_ops, host, 1ull << VIRTIO_NET_F_MAC);
	memcpy(net->mac, mac, NET_MAC_LEN);
	virtio_put_le16(net->rx_hdr + NET_HDR_NUM_BUFFERS, 1);
	memcpy(net->vdev.config + NET_CFG_MAC, mac, NET_MAC_LEN);
	net->vdev.config_len = NET_CFG_LEN;
	*out = &net->vdev;
	return 0;
}
