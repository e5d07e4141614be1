/*
 * virtio_harness.c — test driver and fake world for the virtio device tests (see the header).
 * Queue q's rings live at RAM + q * 64 KiB (descriptors, then the available ring at +4 KiB, the
 * used ring at +8 KiB); buffers come from a bump allocator above 1 MiB.
 */
#include "virtio_harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#define H_BUF_BASE (H_RAM_BASE + (1u << 20))
#define H_SLOT_BASE 0x10001000ull

static void w_console(void *ctx, const uint8_t *buf, size_t len)
{
}

static void w_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct harness *h = ctx;
	assert_true(h->ntx < H_MAX_RECORDS);
	struct h_frame *f = &h->tx[h->ntx++];
	f->nic = nic;
	f->len = len;
	f->bytes = malloc(len);
	memcpy(f->bytes, frame, len);
}

static void w_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct harness *h = ctx;
	assert_true(h->ndisk < H_MAX_RECORDS);
	struct h_disk_req *r = &h->disk[h->ndisk++];
	r->req = *req;
	r->data = NULL;
	if (req->op == VM_DISK_WRITE) {
		r->data = malloc(req->len);
		memcpy(r->data, req->data, req->len);
	}
	r->req.data = r->data;
}

static void w_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct harness *h = ctx;
	assert_true(h->nrng < H_MAX_RECORDS);
	h->rng_len[h->nrng++] = len;
}

static const struct vm_world_ops h_world_ops = {
	.console_out = w_console,
	.net_tx = w_net_tx,
	.disk_submit = w_disk_submit,
	.rng_request = w_rng_request,
};

static void h_set_irq(void *board, unsigned irq, bool level)
{
	struct harness *h = board;
	assert_int_equal(irq, 3);
	assert_true(level != h->irq_level); /* the device only reports changes */
	h->irq_level = level;
	h->irq_changes++;
}

struct harness *h_new(void)
{
	struct harness *h = calloc(1, sizeof(*h));
	h->bus.ram = calloc(1, H_RAM_SIZE);
	h->bus.ram_base = H_RAM_BASE;
	h->bus.ram_size = H_RAM_SIZE;
	h->world = (struct vm_world){ .ops = &h_world_ops, .ctx = h };
	h->host = (struct virtio_host){
		.bus = &h->bus, .world = &h->world, .set_irq = h_set_irq, .board = h, .irq = 3, .index = 0,
	};
	h->alloc_next = H_BUF_BASE;
	return h;
}

void h_free(struct harness *h)
{
	virtio_destroy(h->dev);
	for (unsigned i = 0; i < h->ndisk; i++)
		free(h->disk[i].data);
	for (unsigned i = 0; i < h->ntx; i++)
		free(h->tx[i].bytes);
	free(h->bus.ram);
	free(h);
}

void h_attach(struct harness *h, struct virtio_device *dev)
{
	h->dev = dev;
	h->region = virtio_mmio_region(dev, H_SLOT_BASE);
	assert_int_equal(h->region.base, H_SLOT_BASE);
	assert_int_equal(h->region.size, 0x1000);
}

uint64_t h_rd_sized(struct harness *h, uint64_t off, unsigned size)
{
	uint64_t v = 0xdeadbeef;
	assert_int_equal(h->region.read(h->region.opaque, off, size, &v), 0);
	return v;
}

uint32_t h_rd(struct harness *h, uint64_t off)
{
	return (uint32_t)h_rd_sized(h, off, 4);
}

void h_wr(struct harness *h, uint64_t off, uint32_t v)
{
	assert_int_equal(h->region.write(h->region.opaque, off, 4, v), 0);
}

uint64_t h_device_features(struct harness *h)
{
	h_wr(h, R_DEV_FEATURES_SEL, 0);
	uint64_t f = h_rd(h, R_DEV_FEATURES);
	h_wr(h, R_DEV_FEATURES_SEL, 1);
	return f | (uint64_t)h_rd(h, R_DEV_FEATURES) << 32;
}

bool h_negotiate(struct harness *h, uint64_t features)
{
	h_wr(h, R_STATUS, 0);
	h_wr(h, R_STATUS, S_ACK);
	h_wr(h, R_STATUS, S_ACK | S_DRIVER);
	h_wr(h, R_DRV_FEATURES_SEL, 0);
	h_wr(h, R_DRV_FEATURES, (uint32_t)features);
	h_wr(h, R_DRV_FEATURES_SEL, 1);
	h_wr(h, R_DRV_FEATURES, (uint32_t)(features >> 32));
	h_wr(h, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	return h_rd(h, R_STATUS) & S_FEATURES_OK;
}

uint64_t h_desc_addr(unsigned q)
{
	return H_RAM_BASE + q * 0x10000ull;
}

static uint64_t avail_addr(unsigned q)
{
	return h_desc_addr(q) + 0x1000;
}

static uint64_t used_addr(unsigned q)
{
	return h_desc_addr(q) + 0x2000;
}

void h_setup_queue(struct harness *h, unsigned q)
{
	h_wr(h, R_QUEUE_SEL, q);
	assert_int_equal(h_rd(h, R_QUEUE_READY), 0);
	assert_true(h_rd(h, R_QUEUE_NUM_MAX) >= H_QSIZE);
	h_wr(h, R_QUEUE_NUM, H_QSIZE);
	h_wr(h, R_DESC_LO, (uint32_t)h_desc_addr(q));
	h_wr(h, R_DESC_HI, (uint32_t)(h_desc_addr(q) >> 32));
	h_wr(h, R_DRIVER_LO, (uint32_t)avail_addr(q));
	h_wr(h, R_DRIVER_HI, (uint32_t)(avail_addr(q) >> 32));
	h_wr(h, R_DEVICE_LO, (uint32_t)used_addr(q));
	h_wr(h, R_DEVICE_HI, (uint32_t)(used_addr(q) >> 32));
	h_wr(h, R_QUEUE_READY, 1);
	h->next_desc[q] = 0;
	h->avail_idx[q] = 0;
	h->used_seen[q] = 0;
	memset(h_ptr(h, h_desc_addr(q)), 0, 0x3000);
}

void h_init(struct harness *h, unsigned nq)
{
	assert_true(h_negotiate(h, h_device_features(h)));
	for (unsigned q = 0; q < nq; q++)
		h_setup_queue(h, q);
	h_wr(h, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	for (unsigned q = 0; q < nq; q++) {
		h_wr(h, R_QUEUE_SEL, q);
		assert_int_equal(h_rd(h, R_QUEUE_READY), 1);
	}
}

uint64_t h_alloc(struct harness *h, uint32_t len)
{
	uint64_t a = h->alloc_next;
	h->alloc_next += (len + 15u) & ~15u;
	assert_true(h->alloc_next <= H_RAM_BASE + H_RAM_SIZE);
	return a;
}

uint8_t *h_ptr(struct harness *h, uint64_t addr)
{
	assert_true(addr >= H_RAM_BASE && addr < H_RAM_BASE + H_RAM_SIZE);
	return h->bus.ram + (addr - H_RAM_BASE);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint32_t get32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

void h_set_desc(struct harness *h, unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		uint16_t next)
{
	uint8_t *d = h_ptr(h, h_desc_addr(q) + 16ull * i);
	for (unsigned b = 0; b < 8; b++)
		d[b] = (uint8_t)(addr >> (8 * b));
	for (unsigned b = 0; b < 4; b++)
		d[8 + b] = (uint8_t)(len >> (8 * b));
	put16(d + 12, flags);
	put16(d + 14, next);
}

void h_publish(struct harness *h, unsigned q, uint16_t head)
{
	put16(h_ptr(h, avail_addr(q) + 4 + 2u * (h->avail_idx[q] % H_QSIZE)), head);
	h->avail_idx[q]++;
	put16(h_ptr(h, avail_addr(q) + 2), h->avail_idx[q]);
}

void h_set_avail_flags(struct harness *h, unsigned q, uint16_t flags)
{
	put16(h_ptr(h, avail_addr(q)), flags);
}

uint16_t h_add_chain(struct harness *h, unsigned q, const struct h_buf *bufs, unsigned n)
{
	uint16_t head = h->next_desc[q] % H_QSIZE;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % H_QSIZE);
		uint16_t flags = (bufs[i].write ? D_WRITE : 0) | (i + 1 < n ? D_NEXT : 0);
		h_set_desc(h, q, idx, bufs[i].addr, bufs[i].len, flags, (uint16_t)((idx + 1) % H_QSIZE));
	}
	h->next_desc[q] = (uint16_t)(h->next_desc[q] + n);
	h_publish(h, q, head);
	return head;
}

void h_notify(struct harness *h, unsigned q)
{
	h_wr(h, R_QUEUE_NOTIFY, q);
}

uint16_t h_used_idx(struct harness *h, unsigned q)
{
	const uint8_t *p = h_ptr(h, used_addr(q) + 2);
	return (uint16_t)(p[0] | p[1] << 8);
}

bool h_next_used(struct harness *h, unsigned q, uint32_t *id, uint32_t *len)
{
	if (h_used_idx(h, q) == h->used_seen[q])
		return false;
	const uint8_t *e = h_ptr(h, used_addr(q) + 4 + 8u * (h->used_seen[q] % H_QSIZE));
	*id = get32(e);
	*len = get32(e + 4);
	h->used_seen[q]++;
	return true;
}
