/*
 * virtio_mmio.c — the virtio-mmio version 2 transport and the split virtqueue.
 *
 * Registers follow virtio 1.2 §4.2.2: 32-bit registers below 0x100, device configuration space
 * from 0x100. The driver negotiates features, programs each queue (size, three ring addresses,
 * QueueReady), sets DRIVER_OK and kicks queues through QueueNotify; a kick runs the device's
 * notify handler at once, on the vCPU thread, so everything a device does is a function of the
 * guest's register writes, guest memory and the events applied to it.
 *
 * Virtqueue helpers walk a descriptor chain into a list of segments, each checked to lie inside
 * RAM, with readable segments before writable ones, no loops, no chain longer than the queue and
 * no indirect descriptors (not offered). Anything else is the driver's bug: the device enters
 * DEVICE_NEEDS_RESET, raises a configuration-change interrupt and ignores its queues until the
 * driver writes Status = 0. Used buffers raise InterruptStatus bit 0 unless the driver set
 * VRING_AVAIL_F_NO_INTERRUPT; the PLIC line is the level of InterruptStatus != 0.
 */
#define DIAG_MODULE "virtio"
#include "util/diag.h"
#include "vm/virtio_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/state_io.h"

/* Register offsets (virtio 1.2 §4.2.2, table "MMIO Device Register Layout"). */
#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_SHM_SEL 0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW 0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH 0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW 0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH 0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100
#define VIRTIO_MMIO_SLOT_SIZE 0x1000

#define VIRTIO_MMIO_MAGIC 0x74726976u   /* "virt" */
#define VIRTIO_MMIO_VERSION_MODERN 2u
#define VIRTIO_MMIO_VENDOR_QEMU 0x554d4551u
#define VIRTIO_MMIO_NO_SHM 0xffffffffu   /* SHMLen of a region that does not exist */

/* Split ring layout (§2.7). */
#define VIRTQ_DESC_SIZE 16u
#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u
#define VIRTQ_DESC_F_INDIRECT 4u
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define VIRTQ_RING_HEADER 4u            /* flags + idx of the available and used rings */
#define VIRTQ_AVAIL_ELEM 2u
#define VIRTQ_USED_ELEM 8u
#define VIRTQ_RING_TRAILER 2u           /* used_event / avail_event */
#define VIRTQ_DESC_ALIGN 16u
#define VIRTQ_AVAIL_ALIGN 2u
#define VIRTQ_USED_ALIGN 4u

static void update_irq(struct virtio_device *dev)
{
	bool level = dev->interrupt_status != 0;
	if (level == dev->irq_level)
		return;
	dev->irq_level = level;
	diag_debug("%s%u: irq %u %s (status 0x%x)", dev->ops->name, dev->host.index, dev->host.irq, level ? "up" : "down",
		  dev->interrupt_status);
	if (dev->host.set_irq)
		dev->host.set_irq(dev->host.board, dev->host.irq, level);
}

void virtio_init(struct virtio_device *dev, const struct virtio_device_ops *ops,
		 const struct virtio_host *host, uint64_t device_features)
{
	dev->ops = ops;
	dev->host = *host;
	dev->device_features = device_features | (1ull << VIRTIO_F_VERSION_1);
}

bool virtio_running(const struct virtio_device *dev)
{
	return (dev->status & VIRTIO_STATUS_DRIVER_OK) && !(dev->status & VIRTIO_STATUS_NEEDS_RESET);
}

bool virtio_has_feature(const struct virtio_device *dev, unsigned bit)
{
	return (dev->driver_features >> bit) & 1;
}

void virtio_set_needs_reset(struct virtio_device *dev, const char *why)
{
	dev->stats.malformed++;
	DIAG_RATELIMITED(DIAG_WARN, "%s%u: %s; device needs reset", dev->ops->name, dev->host.index, why);
	if (dev->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	dev->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (dev->status & VIRTIO_STATUS_DRIVER_OK) {
		dev->interrupt_status |= VIRTIO_INT_CONFIG_CHANGE;
		update_irq(dev);
	}
}

static void reset_device(struct virtio_device *dev)
{
	if (dev->ops->reset)
		dev->ops->reset(dev);
	dev->driver_features = 0;
	dev->device_features_sel = 0;
	dev->driver_features_sel = 0;
	dev->queue_sel = 0;
	dev->status = 0;
	dev->interrupt_status = 0;
	memset(dev->vq, 0, sizeof(dev->vq));
	update_irq(dev);
}

/* ---- split virtqueue ---- */

static const uint8_t *ram_ptr(const struct virtio_device *dev, uint64_t addr, uint64_t len)
{
	return bus_ram_range(dev->host.bus, addr, len);
}

static uint16_t avail_idx(const struct virtio_device *dev, const struct virtq *vq)
{
	return virtio_get_le16(ram_ptr(dev, vq->driver + 2, 2));
}

static uint16_t avail_flags(const struct virtio_device *dev, const struct virtq *vq)
{
	return virtio_get_le16(ram_ptr(dev, vq->driver, 2));
}

static uint16_t avail_ring(const struct virtio_device *dev, const struct virtq *vq, uint16_t i)
{
	return virtio_get_le16(ram_ptr(dev, vq->driver + VIRTQ_RING_HEADER + VIRTQ_AVAIL_ELEM * (uint64_t)(i % vq->num), 2));
}

static struct virtq *running_queue(struct virtio_device *dev, unsigned q)
{
	if (q >= dev->ops->nqueues || !virtio_running(dev) || !dev->vq[q].ready)
		return NULL;
	return &dev->vq[q];
}

static int walk_chain(struct virtio_device *dev, const struct virtq *vq, uint16_t head,
		      struct virtio_chain *chain)
{
	const char *why = NULL;
	uint16_t i = head;
	chain->head = head;
	chain->nout = chain->nsegs = 0;
	chain->out_len = chain->in_len = 0;
	if (head >= vq->num) {
		why = "available ring names a descriptor beyond the queue";
		goto bad;
	}
	for (unsigned count = 0;; count++) {
		if (count >= vq->num) {
			why = "descriptor chain loops or is longer than the queue";
			goto bad;
		}
		const uint8_t *d = ram_ptr(dev, vq->desc + (uint64_t)i * VIRTQ_DESC_SIZE, VIRTQ_DESC_SIZE);
		uint64_t addr = virtio_get_le64(d);
		uint32_t len = virtio_get_le32(d + 8);
		uint16_t flags = virtio_get_le16(d + 12);
		uint16_t next = virtio_get_le16(d + 14);
		if (flags & VIRTQ_DESC_F_INDIRECT) {
			why = "indirect descriptor (not negotiated)";
			goto bad;
		}
		if (len && !ram_ptr(dev, addr, len)) {
			why = "buffer outside RAM";
			goto bad;
		}
		if (flags & VIRTQ_DESC_F_WRITE) {
			chain->in_len += len;
		} else {
			if (chain->nsegs > chain->nout) {
				why = "device-readable descriptor after a writable one";
				goto bad;
			}
			chain->out_len += len;
			chain->nout++;
		}
		chain->segs[chain->nsegs++] = (struct virtio_seg){ .addr = addr, .len = len };
		if (!(flags & VIRTQ_DESC_F_NEXT))
			return 1;
		if (next >= vq->num) {
			why = "next descriptor beyond the queue";
			goto bad;
		}
		i = next;
	}
bad:
	virtio_set_needs_reset(dev, why);
	return -EIO;
}

int virtq_peek(struct virtio_device *dev, unsigned q, struct virtio_chain *chain)
{
	struct virtq *vq = running_queue(dev, q);
	if (!vq)
		return 0;
	uint16_t avail = avail_idx(dev, vq);
	if (avail == vq->last_avail)
		return 0;
	if ((uint16_t)(avail - vq->last_avail) > vq->num) {
		virtio_set_needs_reset(dev, "available index ran more than a queue ahead");
		return -EIO;
	}
	return walk_chain(dev, vq, avail_ring(dev, vq, vq->last_avail), chain);
}

void virtq_consume(struct virtio_device *dev, unsigned q)
{
	dev->vq[q].last_avail++;
}

int virtq_pop(struct virtio_device *dev, unsigned q, struct virtio_chain *chain)
{
	int ret = virtq_peek(dev, q, chain);
	if (ret == 1)
		virtq_consume(dev, q);
	return ret;
}

void virtq_push(struct virtio_device *dev, unsigned q, uint16_t head, uint32_t len)
{
	struct virtq *vq = running_queue(dev, q);
	if (!vq)
		return;
	uint64_t elem_addr = vq->device + VIRTQ_RING_HEADER + VIRTQ_USED_ELEM * (uint64_t)(vq->used_idx % vq->num);
	uint8_t *elem = bus_ram_range(dev->host.bus, elem_addr, VIRTQ_USED_ELEM);
	virtio_put_le32(elem, head);
	virtio_put_le32(elem + 4, len);
	bus_mark_dirty(dev->host.bus, elem_addr, VIRTQ_USED_ELEM);
	vq->used_idx++;
	virtio_put_le16(bus_ram_range(dev->host.bus, vq->device + 2, 2), vq->used_idx);
	bus_mark_dirty(dev->host.bus, vq->device + 2, 2);
	dev->stats.used++;
	if (avail_flags(dev, vq) & VIRTQ_AVAIL_F_NO_INTERRUPT)
		return;
	dev->stats.interrupts++;
	dev->interrupt_status |= VIRTIO_INT_USED_BUFFER;
	update_irq(dev);
}

size_t virtio_gather(const struct virtio_device *dev, const struct virtio_chain *chain, uint64_t offset,
		     void *buf, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < chain->nout && done < len; i++) {
		const struct virtio_seg *s = &chain->segs[i];
		if (offset >= s->len) {
			offset -= s->len;
			continue;
		}
		size_t n = MIN(len - done, s->len - offset);
		memcpy((uint8_t *)buf + done, ram_ptr(dev, s->addr + offset, n), n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t virtio_scatter(const struct virtio_device *dev, const struct virtio_seg *segs, unsigned nsegs,
		      uint64_t offset, const void *buf, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < nsegs && done < len; i++) {
		const struct virtio_seg *s = &segs[i];
		if (offset >= s->len) {
			offset -= s->len;
			continue;
		}
		size_t n = MIN(len - done, s->len - offset);
		memcpy(bus_ram_range(dev->host.bus, s->addr + offset, n), (const uint8_t *)buf + done, n);
		if (n)
			bus_mark_dirty(dev->host.bus, s->addr + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

/* ---- registers ---- */

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Why a queue with this layout cannot be ready, or NULL. */
static const char *queue_layout_problem(const struct virtio_device *dev, const struct virtq *vq)
{
	uint64_t num = vq->num;
	if (!is_pow2(vq->num) || vq->num > VIRTQ_MAX_SIZE)
		return "queue size is not a power of two up to QueueNumMax";
	if (vq->desc % VIRTQ_DESC_ALIGN || vq->driver % VIRTQ_AVAIL_ALIGN || vq->device % VIRTQ_USED_ALIGN)
		return "misaligned virtqueue ring";
	if (!ram_ptr(dev, vq->desc, num * VIRTQ_DESC_SIZE) ||
	    !ram_ptr(dev, vq->driver, VIRTQ_RING_HEADER + num * VIRTQ_AVAIL_ELEM + VIRTQ_RING_TRAILER) ||
	    !ram_ptr(dev, vq->device, VIRTQ_RING_HEADER + num * VIRTQ_USED_ELEM + VIRTQ_RING_TRAILER))
		return "virtqueue ring outside RAM";
	return NULL;
}

/* QueueReady = 1: the queue's size and rings must be sane, or the device needs a reset. */
static void enable_queue(struct virtio_device *dev, struct virtq *vq)
{
	const char *why = queue_layout_problem(dev, vq);
	if (why) {
		virtio_set_needs_reset(dev, why);
		return;
	}
	vq->ready = true;
	vq->last_avail = 0;
	vq->used_idx = 0;
}

static void set_low(uint64_t *reg, uint32_t v)
{
	*reg = (*reg & ~0xffffffffull) | v;
}

static void set_high(uint64_t *reg, uint32_t v)
{
	*reg = (*reg & 0xffffffffull) | ((uint64_t)v << 32);
}

/* FEATURES_OK sticks only if the driver accepted a subset of what we offer, VERSION_1 included. */
static void write_status(struct virtio_device *dev, uint32_t v)
{
	if (v == 0) {
		dev->stats.resets++;
		reset_device(dev);
		return;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(dev->status & VIRTIO_STATUS_FEATURES_OK)) {
		if ((dev->driver_features & ~dev->device_features) || !virtio_has_feature(dev, VIRTIO_F_VERSION_1))
			v &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	bool going_live = (v & VIRTIO_STATUS_DRIVER_OK) && !(dev->status & VIRTIO_STATUS_DRIVER_OK);
	/* The driver cannot clear NEEDS_RESET except by resetting the device. */
	dev->status = (v & 0xffu & ~VIRTIO_STATUS_NEEDS_RESET) | (dev->status & VIRTIO_STATUS_NEEDS_RESET);
	/* A device that broke during setup tells the driver as soon as the driver can listen. */
	if (going_live && (dev->status & VIRTIO_STATUS_NEEDS_RESET)) {
		dev->interrupt_status |= VIRTIO_INT_CONFIG_CHANGE;
		update_irq(dev);
	}
	/* Buffers made available before DRIVER_OK are taken now, as if the driver had kicked. */
	if (going_live)
		for (unsigned q = 0; q < dev->ops->nqueues; q++)
			if (running_queue(dev, q))
				dev->ops->notify(dev, q);
}

static uint64_t read_config(const struct virtio_device *dev, uint64_t off, unsigned size)
{
	uint64_t v = 0;
	if (off > dev->config_len || size > dev->config_len - off)
		return 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)dev->config[off + i] << (8 * i);
	return v;
}

static uint32_t read_reg(struct virtio_device *dev, uint64_t off)
{
	struct virtq *vq = dev->queue_sel < dev->ops->nqueues ? &dev->vq[dev->queue_sel] : NULL;
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VIRTIO_MMIO_VERSION_MODERN;
	case VIRTIO_MMIO_DEVICE_ID:
		return dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR_QEMU;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return dev->device_features_sel < 2 ? (uint32_t)(dev->device_features >> (32 * dev->device_features_sel)) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return vq ? VIRTQ_MAX_SIZE : 0;
	case VIRTIO_MMIO_QUEUE_NUM:
		return vq ? vq->num : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return vq ? vq->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return dev->interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return dev->status;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		return vq ? (uint32_t)vq->desc : 0;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		return vq ? (uint32_t)(vq->desc >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		return vq ? (uint32_t)vq->driver : 0;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		return vq ? (uint32_t)(vq->driver >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
		return vq ? (uint32_t)vq->device : 0;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		return vq ? (uint32_t)(vq->device >> 32) : 0;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return VIRTIO_MMIO_NO_SHM;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return dev->config_generation;
	default:
		return 0;
	}
}

static void write_reg(struct virtio_device *dev, uint64_t off, uint32_t v)
{
	struct virtq *vq = dev->queue_sel < dev->ops->nqueues ? &dev->vq[dev->queue_sel] : NULL;
	/* A queue's layout is frozen while it is ready (§4.2.3.2). */
	struct virtq *cfg = vq && !vq->ready ? vq : NULL;
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev->device_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (dev->status & VIRTIO_STATUS_FEATURES_OK)
			break;
		if (dev->driver_features_sel == 0)
			set_low(&dev->driver_features, v);
		else if (dev->driver_features_sel == 1)
			set_high(&dev->driver_features, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (cfg)
			cfg->num = v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (!vq)
			break;
		if (v & 1) {
			if (!vq->ready)
				enable_queue(dev, vq);
		} else {
			vq->ready = false;
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		dev->stats.notifies++;
		if (running_queue(dev, v))
			dev->ops->notify(dev, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		dev->interrupt_status &= ~v;
		update_irq(dev);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(dev, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		if (cfg)
			set_low(&cfg->desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (cfg)
			set_high(&cfg->desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		if (cfg)
			set_low(&cfg->driver, v);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		if (cfg)
			set_high(&cfg->driver, v);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
		if (cfg)
			set_low(&cfg->device, v);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		if (cfg)
			set_high(&cfg->device, v);
		break;
	default:
		/* Read-only registers, SHMSel, QueueReset (not offered): ignored. */
		break;
	}
}

/* Control registers take only aligned 32-bit accesses (§4.2.2); like QEMU, other widths read as
 * zero and are ignored on write. Configuration space takes any width. */
static int mmio_read(void *opaque, uint64_t off, unsigned size, uint64_t *value)
{
	struct virtio_device *dev = opaque;
	if (off >= VIRTIO_MMIO_CONFIG) {
		*value = read_config(dev, off - VIRTIO_MMIO_CONFIG, size);
		return 0;
	}
	if (size != 4 || off % 4) {
		DIAG_RATELIMITED(DIAG_WARN, "%s%u: %u-byte read of register 0x%llx ignored", dev->ops->name,
				dev->host.index, size, (unsigned long long)off);
		*value = 0;
		return 0;
	}
	*value = read_reg(dev, off);
	return 0;
}

static int mmio_write(void *opaque, uint64_t off, unsigned size, uint64_t value)
{
	struct virtio_device *dev = opaque;
	if (off >= VIRTIO_MMIO_CONFIG)
		return 0; /* nothing in our configuration spaces is writable */
	if (size != 4 || off % 4) {
		DIAG_RATELIMITED(DIAG_WARN, "%s%u: %u-byte write of register 0x%llx ignored", dev->ops->name,
				dev->host.index, size, (unsigned long long)off);
		return 0;
	}
	write_reg(dev, off, (uint32_t)value);
	return 0;
}

struct bus_region virtio_mmio_region(struct virtio_device *dev, uint64_t base)
{
	return (struct bus_region){
		.name = dev->ops->name,
		.base = base,
		.size = VIRTIO_MMIO_SLOT_SIZE,
		.opaque = dev,
		.read = mmio_read,
		.write = mmio_write,
	};
}

int virtio_apply_event(struct virtio_device *dev, const struct vm_event *ev)
{
	if (!dev || !ev || !dev->ops->apply)
		return -EINVAL;
	return dev->ops->apply(dev, ev);
}

void virtio_get_stats(const struct virtio_device *dev, struct virtio_stats *out)
{
	*out = dev->stats;
}

/* ---- state ---- */

struct virtio_state *virtio_state_alloc(void)
{
	return calloc(1, sizeof(struct virtio_state));
}

/* Frees what the state owns and marks it empty. */
static void state_clear(struct virtio_state *s)
{
	if (s->device_id == VIRTIO_ID_BLOCK) {
		free(s->u.blk.data);
		s->u.blk.data = NULL;
		s->u.blk.data_len = 0;
		s->u.blk.npending = 0;
	}
	s->device_id = 0;
}

void virtio_state_free(struct virtio_state *s)
{
	if (!s)
		return;
	state_clear(s);
	free(s);
}

int virtio_save(const struct virtio_device *dev, struct virtio_state *s)
{
	state_clear(s);
	s->device_id = dev->ops->device_id;
	s->index = dev->host.index;
	s->device_features = dev->device_features;
	s->driver_features = dev->driver_features;
	s->device_features_sel = dev->device_features_sel;
	s->driver_features_sel = dev->driver_features_sel;
	s->queue_sel = dev->queue_sel;
	s->status = dev->status;
	s->interrupt_status = dev->interrupt_status;
	s->config_generation = dev->config_generation;
	s->irq_level = dev->irq_level;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		const struct virtq *vq = &dev->vq[q];
		s->vq[q] = (struct virtio_queue_state){ .num = vq->num, .ready = vq->ready, .desc = vq->desc,
							.driver = vq->driver, .device = vq->device,
							.last_avail = vq->last_avail, .used_idx = vq->used_idx };
	}
	return dev->ops->save ? dev->ops->save(dev, s) : 0;
}

static const char *transport_problem(const struct virtio_device *dev, const struct virtio_state *s)
{
	if (s->device_id != dev->ops->device_id || s->index != dev->host.index)
		return "state of another device";
	if (s->device_features != dev->device_features)
		return "features this device does not offer";
	if (s->status & ~0xffu)
		return "status bits beyond the eight defined";
	if (s->interrupt_status & ~(VIRTIO_INT_USED_BUFFER | VIRTIO_INT_CONFIG_CHANGE))
		return "interrupt status bits that do not exist";
	if (s->irq_level != (s->interrupt_status != 0))
		return "interrupt line disagrees with the interrupt status";
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		const struct virtio_queue_state *qs = &s->vq[q];
		struct virtq vq = { .num = qs->num, .desc = qs->desc, .driver = qs->driver, .device = qs->device };
		if (!qs->ready)
			continue;
		if (q >= dev->ops->nqueues)
			return "a ready queue the device does not have";
		const char *why = queue_layout_problem(dev, &vq);
		if (why)
			return why;
	}
	return NULL;
}

int virtio_restore(struct virtio_device *dev, const struct virtio_state *s, char *err, size_t errlen)
{
	const char *why = transport_problem(dev, s);
	if (why) {
		snprintf(err, errlen, "%s%u: %s", dev->ops->name, dev->host.index, why);
		return -EINVAL;
	}
	if (dev->ops->restore) {
		int ret = dev->ops->restore(dev, s, err, errlen);
		if (ret)
			return ret;
	}
	dev->driver_features = s->driver_features;
	dev->device_features_sel = s->device_features_sel;
	dev->driver_features_sel = s->driver_features_sel;
	dev->queue_sel = s->queue_sel;
	dev->status = s->status;
	dev->interrupt_status = s->interrupt_status;
	dev->config_generation = s->config_generation;
	dev->irq_level = s->irq_level;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		const struct virtio_queue_state *qs = &s->vq[q];
		dev->vq[q] = (struct virtq){ .num = qs->num, .ready = qs->ready, .desc = qs->desc, .driver = qs->driver,
					     .device = qs->device, .last_avail = qs->last_avail,
					     .used_idx = qs->used_idx };
	}
	return 0;
}

const char *virtio_segs_problem(const struct virtio_device *dev, const struct virtio_seg_state *segs,
				uint32_t nsegs, uint64_t total)
{
	uint64_t sum = 0;
	if (nsegs > VIRTQ_MAX_SIZE)
		return "more segments than a queue holds";
	for (uint32_t i = 0; i < nsegs; i++) {
		if (!ram_ptr(dev, segs[i].addr, segs[i].len))
			return "a buffer outside RAM";
		sum += segs[i].len;
	}
	return sum == total ? NULL : "segment lengths do not add up to the chain's";
}

void virtio_segs_state_io(struct state_io *io, struct virtio_seg_state *segs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		state_io_u64(io, &segs[i].addr);
		state_io_u32(io, &segs[i].len);
	}
}

void virtio_state_io(struct state_io *io, void *state)
{
	struct virtio_state *s = state;
	if (io->load)
		state_clear(s);
	state_io_u32(io, &s->device_id);
	state_io_u32(io, &s->index);
	state_io_u64(io, &s->device_features);
	state_io_u64(io, &s->driver_features);
	uint32_t *regs[] = { &s->device_features_sel, &s->driver_features_sel, &s->queue_sel, &s->status,
			     &s->interrupt_status, &s->config_generation };
	for (size_t i = 0; i < ARRAY_SIZE(regs); i++)
		state_io_u32(io, regs[i]);
	state_io_bool(io, &s->irq_level);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtio_queue_state *qs = &s->vq[q];
		state_io_u32(io, &qs->num);
		state_io_bool(io, &qs->ready);
		state_io_u64(io, &qs->desc);
		state_io_u64(io, &qs->driver);
		state_io_u64(io, &qs->device);
		state_io_u16(io, &qs->last_avail);
		state_io_u16(io, &qs->used_idx);
	}
	switch (s->device_id) {
	case VIRTIO_ID_BLOCK:
		virtio_blk_state_io(io, &s->u.blk);
		break;
	case VIRTIO_ID_RNG:
		virtio_rng_state_io(io, &s->u.rng);
		break;
	case VIRTIO_ID_NET:
		break;  /* the transport is all of it */
	default:
		state_io_fail(io, -EINVAL);
		break;
	}
}

uint64_t virtio_digest(const struct virtio_device *dev, uint64_t seed)
{
	struct virtio_state *s = virtio_state_alloc();
	uint64_t h;
	if (!s || virtio_save(dev, s))
		h = ~seed;  /* out of memory: a digest no healthy peer computes */
	else
		h = state_io_digest(virtio_state_io, s, seed);
	virtio_state_free(s);
	return h;
}

void virtio_destroy(struct virtio_device *dev)
{
	if (!dev)
		return;
	dev->ops->destroy(dev);
}
