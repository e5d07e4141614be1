/*
 * virtio_harness.h — a tiny virtio-mmio driver for the device tests.
 *
 * Provides a bus with RAM, a fake world that records what devices send out (disk requests with a
 * copy of their data, transmitted frames, entropy requests), a fake interrupt line, and driver
 * helpers that program a device only through its MMIO registers and build split virtqueues in
 * guest RAM, as a real driver would.
 */
#ifndef FTVM_TESTS_VIRTIO_HARNESS_H
#define FTVM_TESTS_VIRTIO_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include "vm/virtio.h"

#define H_RAM_BASE 0x80000000ull
#define H_RAM_SIZE (4u << 20)
#define H_QSIZE 16u
#define H_MAX_RECORDS 512

/* Register offsets a driver uses (virtio 1.2 §4.2.2). */
enum {
	R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_VENDOR_ID = 0x00c,
	R_DEV_FEATURES = 0x010, R_DEV_FEATURES_SEL = 0x014, R_DRV_FEATURES = 0x020,
	R_DRV_FEATURES_SEL = 0x024, R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044, R_QUEUE_NOTIFY = 0x050, R_INT_STATUS = 0x060, R_INT_ACK = 0x064,
	R_STATUS = 0x070, R_DESC_LO = 0x080, R_DESC_HI = 0x084, R_DRIVER_LO = 0x090, R_DRIVER_HI = 0x094,
	R_DEVICE_LO = 0x0a0, R_DEVICE_HI = 0x0a4, R_SHM_LEN_LO = 0x0b0, R_CONFIG_GEN = 0x0fc, R_CONFIG = 0x100,
};

enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 0x40 };
enum { D_NEXT = 1, D_WRITE = 2, D_INDIRECT = 4 };

struct h_disk_req {
	struct vm_disk_request req;
	uint8_t *data;
};

struct h_frame {
	unsigned nic;
	size_t len;
	uint8_t *bytes;
};

struct harness {
	struct vm_bus bus;
	struct vm_world world;
	struct virtio_host host;
	struct virtio_device *dev;
	struct bus_region region;
	bool irq_level;
	unsigned irq_changes;
	/* recorded outputs */
	struct h_disk_req disk[H_MAX_RECORDS];
	unsigned ndisk;
	struct h_frame tx[H_MAX_RECORDS];
	unsigned ntx;
	uint32_t rng_len[H_MAX_RECORDS];
	unsigned nrng;
	/* driver side */
	uint64_t alloc_next;             /* bump allocator for buffers */
	uint16_t next_desc[2];
	uint16_t avail_idx[2];
	uint16_t used_seen[2];
};

struct h_buf {
	uint64_t addr;
	uint32_t len;
	bool write;
};

struct harness *h_new(void);
void h_free(struct harness *h);
/* Maps dev (created with h->host) at a fake base. */
void h_attach(struct harness *h, struct virtio_device *dev);

uint32_t h_rd(struct harness *h, uint64_t off);
void h_wr(struct harness *h, uint64_t off, uint32_t v);
uint64_t h_rd_sized(struct harness *h, uint64_t off, unsigned size);

uint64_t h_device_features(struct harness *h);
/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck. */
bool h_negotiate(struct harness *h, uint64_t features);
/* Programs queue q (H_QSIZE entries, rings at fixed places in RAM). */
void h_setup_queue(struct harness *h, unsigned q);
/* Full init: negotiate everything offered, set up nq queues, DRIVER_OK. */
void h_init(struct harness *h, unsigned nq);

uint64_t h_alloc(struct harness *h, uint32_t len);
uint8_t *h_ptr(struct harness *h, uint64_t addr);
uint64_t h_desc_addr(unsigned q);
/* Writes descriptor i of queue q. */
void h_set_desc(struct harness *h, unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		uint16_t next);
/* Publishes head in the available ring of q. */
void h_publish(struct harness *h, unsigned q, uint16_t head);
/* Builds a chain from bufs in fresh descriptors and publishes it; returns its head. */
uint16_t h_add_chain(struct harness *h, unsigned q, const struct h_buf *bufs, unsigned n);
void h_notify(struct harness *h, unsigned q);
/* Next used element of q not yet seen: returns false when none. */
bool h_next_used(struct harness *h, unsigned q, uint32_t *id, uint32_t *len);
uint16_t h_used_idx(struct harness *h, unsigned q);
void h_set_avail_flags(struct harness *h, unsigned q, uint16_t flags);

#endif
