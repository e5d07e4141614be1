/*
 * fuzz_devices.c — libFuzzer target for the board's device models as a hostile guest sees them:
 * virtio-blk, virtio-net and virtio-rng behind virtio-mmio, the PLIC, the CLINT, the UART and the
 * test finisher, on a
 * bus with 1 MiB of RAM. The input is a program of operations, each an opcode byte and its
 * operands: MMIO loads and stores of any width at any offset of any device, bytes written
 * anywhere in RAM (virtqueues, descriptors, buffers), shortcuts that set a virtio device up the way
 * a driver would or make a chain available and kick, and the world's answers — DISK_DONE for a
 * pending or made-up request with any status and data, NET_RX frames, entropy, console input.
 * The world behind the devices keeps nothing: every output is read through once (so ASan sees any
 * bad pointer) and dropped. Every device is created fresh per input and destroyed at its end, so
 * LeakSanitizer sees what a device forgets to free. Any crash, sanitizer report or leak is a bug.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/bus.h"
#include "vm/clint.h"
#include "vm/clock.h"
#include "vm/cpu.h"
#include "vm/event.h"
#include "vm/finisher.h"
#include "vm/plic.h"
#include "vm/uart.h"
#include "vm/virtio.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1u << 20)
#define PLIC_BASE 0x0c000000ull
#define PLIC_SIZE 0x600000ull
#define CLINT_BASE 0x02000000ull
#define CLINT_SIZE 0x10000ull
#define UART_BASE 0x10000000ull
#define UART_SIZE 0x100ull
#define UART_IRQ 10
#define FINISHER_BASE 0x100000ull
#define FINISHER_SIZE 0x1000ull
#define VIRTIO_BASE 0x10001000ull
#define VIRTIO_SLOT 0x1000ull
#define NDEV 3 /* blk, net, rng: slots 0, 1, 2, irqs 1, 2, 3 */
#define DISK_BYTES (64u * 512u)
#define QUEUE_AREA 0x10000u /* RAM offset of the rings the setup shortcut programs */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, read front to back; reads past its end give zeros. */
struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++) {
		uint8_t b = 0;
		if (in->left) {
			b = *in->p++;
			in->left--;
		}
		v |= (uint64_t)b << (8 * i);
	}
	return v;
}

struct board {
	struct vm_bus bus;
	struct cpu *cpu;
	struct plic plic;
	struct clint clint;
	struct uart uart;
	struct finisher finisher;
	struct virtio_device *dev[NDEV];
	struct vm_world world;
	uint64_t sink;       /* outputs are folded in here, so each byte is really read */
	unsigned rng_wanted;
};

static uint8_t payload[VM_EVENT_MAX_DISK_DATA]; /* event data: a pattern, overwritten from the input */

static void fold(struct board *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b->sink = b->sink * 31 + p[i];
}

static void w_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	fold(ctx, buf, len);
}

static void w_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	fold(ctx, frame, len);
}

static void w_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	if (req->op == VM_DISK_WRITE)
		fold(ctx, req->data, req->len);
}

static void w_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	((struct board *)ctx)->rng_wanted++;
}

static const struct vm_world_ops world_ops = {
	.console_out = w_console_out,
	.net_tx = w_net_tx,
	.disk_submit = w_disk_submit,
	.rng_request = w_rng_request,
};

static void uart_out(void *ctx, uint8_t byte)
{
	fold(ctx, &byte, 1);
}

static void uart_irq(void *ctx, bool level)
{
	plic_set_irq(&((struct board *)ctx)->plic, UART_IRQ, level);
}

static void virtio_irq(void *ctx, unsigned irq, bool level)
{
	plic_set_irq(&((struct board *)ctx)->plic, irq, level);
}

static void finisher_fired(void *ctx)
{
	((struct board *)ctx)->sink++;
}

static struct cpu *shared_cpu;
static struct vm_clock vclock;
static struct vm_bus cpu_bus;  /* the hart's own, never used: it only carries interrupt lines */
static uint8_t *shared_ram;
static volatile uint64_t outputs; /* keeps every output fold alive */

static bool board_init(struct board *b)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	memset(b, 0, sizeof(*b));
	if (!shared_ram) {
		clock_init(&vclock);
		shared_ram = malloc(RAM_SIZE);
		/* The hart only carries interrupt lines here; it never runs. */
		if (!shared_ram || cpu_create(&cpu_bus, &vclock, &shared_cpu) != 0)
			abort();
		for (size_t i = 0; i < sizeof(payload); i++)
			payload[i] = (uint8_t)(i * 7 + 1);
	}
	memset(shared_ram, 0, RAM_SIZE);
	b->cpu = shared_cpu;
	b->bus.ram = shared_ram;
	b->bus.ram_base = RAM_BASE;
	b->bus.ram_size = RAM_SIZE;
	b->world = (struct vm_world){ .ops = &world_ops, .ctx = b };
	plic_init(&b->plic, b->cpu);
	clint_init(&b->clint, b->cpu, &vclock);
	uart_init(&b->uart, uart_out, uart_irq, b);
	finisher_init(&b->finisher, finisher_fired, b);
	struct bus_region regions[4] = {
		plic_region(&b->plic, PLIC_BASE, PLIC_SIZE),
		clint_region(&b->clint, CLINT_BASE, CLINT_SIZE),
		uart_region(&b->uart, UART_BASE, UART_SIZE),
		finisher_region(&b->finisher, FINISHER_BASE, FINISHER_SIZE),
	};
	for (unsigned i = 0; i < 4; i++)
		if (bus_add_region(&b->bus, &regions[i]) != 0)
			abort();
	for (unsigned i = 0; i < NDEV; i++) {
		struct virtio_host host = { .bus = &b->bus, .world = &b->world, .set_irq = virtio_irq,
					    .board = b, .irq = i + 1, .index = 0 };
		int rc = i == 0 ? virtio_blk_create(&host, DISK_BYTES, false, &b->dev[i])
			 : i == 1 ? virtio_net_create(&host, mac, &b->dev[i])
				  : virtio_rng_create(&host, &b->dev[i]);
		struct bus_region r;
		if (rc != 0)
			abort();
		r = virtio_mmio_region(b->dev[i], VIRTIO_BASE + i * VIRTIO_SLOT);
		if (bus_add_region(&b->bus, &r) != 0)
			abort();
	}
	return true;
}

static void board_fini(struct board *b)
{
	for (unsigned i = 0; i < NDEV; i++)
		virtio_destroy(b->dev[i]);
}

/* An MMIO address: a device, then an offset up to a little past its end. */
static uint64_t mmio_addr(struct input *in)
{
	unsigned which = (unsigned)take(in, 1) % (4 + NDEV);
	uint64_t off = take(in, 3);
	switch (which) {
	case 0: return PLIC_BASE + off % (PLIC_SIZE + 8);
	case 1: return CLINT_BASE + off % (CLINT_SIZE + 8);
	case 2: return UART_BASE + off % (UART_SIZE + 8);
	case 3: return FINISHER_BASE + off % (FINISHER_SIZE + 8);
	default: return VIRTIO_BASE + (which - 4) * VIRTIO_SLOT + off % (VIRTIO_SLOT + 8);
	}
}

static unsigned width(struct input *in)
{
	return 1u << (take(in, 1) % 4);
}

static void mmio_write32(struct board *b, unsigned dev, unsigned off, uint32_t v)
{
	(void)!bus_write(&b->bus, VIRTIO_BASE + dev * VIRTIO_SLOT + off, 4, v);
}

/* What a driver does before it uses queue q: reset, features, the queue in QUEUE_AREA, DRIVER_OK.
 * The feature words, the queue size and the ring offsets come from the input. */
static void setup_queue(struct board *b, struct input *in)
{
	unsigned dev = (unsigned)take(in, 1) % NDEV, q = (unsigned)take(in, 1) % 3;
	uint32_t num = 1u << (take(in, 1) % 10);
	uint64_t desc = RAM_BASE + QUEUE_AREA + 0x4000 * q;
	mmio_write32(b, dev, 0x070, 0);
	mmio_write32(b, dev, 0x070, 3);
	mmio_write32(b, dev, 0x024, 0);
	mmio_write32(b, dev, 0x020, (uint32_t)take(in, 4));
	mmio_write32(b, dev, 0x024, 1);
	mmio_write32(b, dev, 0x020, 1 | (uint32_t)take(in, 1) << 1);
	mmio_write32(b, dev, 0x070, 11);
	mmio_write32(b, dev, 0x030, q);
	mmio_write32(b, dev, 0x038, num);
	mmio_write32(b, dev, 0x080, (uint32_t)desc);
	mmio_write32(b, dev, 0x090, (uint32_t)(desc + 0x1000));
	mmio_write32(b, dev, 0x0a0, (uint32_t)(desc + 0x2000));
	mmio_write32(b, dev, 0x044, 1);
	mmio_write32(b, dev, 0x070, 15);
}

/* A descriptor in the table setup_queue() used: the address is RAM-relative, may fall outside. */
static void write_desc(struct board *b, struct input *in)
{
	unsigned q = (unsigned)take(in, 1) % 3, i = (unsigned)take(in, 1);
	uint64_t addr = RAM_BASE - 0x1000 + take(in, 3) % (RAM_SIZE + 0x2000);
	uint32_t len = (uint32_t)take(in, 3);
	uint16_t flags = (uint16_t)take(in, 1), next = (uint16_t)take(in, 1);
	if (take(in, 1) == 0xff) {
		addr = take(in, 8);
		len = (uint32_t)take(in, 4);
	}
	uint8_t *d = shared_ram + QUEUE_AREA + 0x4000 * q + 16u * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Makes descriptor `head` available on queue q of device dev (advancing idx by `step`) and kicks. */
static void publish(struct board *b, struct input *in)
{
	unsigned dev = (unsigned)take(in, 1) % NDEV, q = (unsigned)take(in, 1) % 3;
	uint16_t head = (uint16_t)take(in, 1), step = (uint16_t)(1 + take(in, 1) % 4);
	uint8_t *avail = shared_ram + QUEUE_AREA + 0x4000 * q + 0x1000;
	uint16_t idx;
	memcpy(&idx, avail + 2, 2);
	memcpy(avail + 4 + 2 * (idx % 512), &head, 2);
	idx = (uint16_t)(idx + step);
	memcpy(avail + 2, &idx, 2);
	mmio_write32(b, dev, 0x050, q);
}

static void apply_event(struct board *b, struct input *in)
{
	struct vm_event ev = { 0 };
	unsigned kind = (unsigned)take(in, 1) % 4;
	uint32_t len = (uint32_t)take(in, 3);
	size_t fill = (size_t)take(in, 1);
	fill = fill < in->left ? fill : in->left;
	memcpy(payload, in->p, fill);
	in->p += fill;
	in->left -= fill;
	ev.data = payload;
	switch (kind) {
	case 0: {
		struct vm_disk_request pend[4];
		unsigned n = virtio_blk_pending(b->dev[0], pend, 4);
		unsigned pick = (unsigned)take(in, 1);
		ev.kind = VM_EV_DISK_DONE;
		ev.request = n && pick < 200 ? pend[pick % (n < 4 ? n : 4)].id : take(in, 2);
		ev.status = (uint32_t)take(in, 1) % 4;
		ev.len = pick & 1 && n ? pend[pick % (n < 4 ? n : 4)].len : len % (VM_EVENT_MAX_DISK_DATA + 1);
		if (ev.len > sizeof(payload))
			ev.len = sizeof(payload);
		if (pick & 2)
			ev.data = NULL;
		(void)!virtio_apply_event(b->dev[0], &ev);
		break;
	}
	case 1:
		ev.kind = VM_EV_NET_RX;
		ev.len = len % (VM_EVENT_MAX_FRAME + 1);
		(void)!virtio_apply_event(b->dev[1], &ev);
		break;
	case 2:
		ev.kind = VM_EV_RNG;
		ev.len = len % (VM_EVENT_MAX_BYTES + 1);
		(void)!virtio_apply_event(b->dev[2], &ev);
		break;
	default:
		(void)uart_receive(&b->uart, payload, len % (VM_EVENT_MAX_BYTES + 1));
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct board b;
	struct input in = { data, size };
	board_init(&b);
	for (unsigned ops = 0; in.left && ops < 4096; ops++) {
		uint64_t v, addr;
		unsigned w;
		switch (take(&in, 1) % 9) {
		case 0:
			addr = mmio_addr(&in);
			w = width(&in);
			(void)!bus_write(&b.bus, addr, w, take(&in, 8));
			break;
		case 1:
			addr = mmio_addr(&in);
			w = width(&in);
			if (bus_read(&b.bus, addr, w, &v) == 0)
				b.sink += v;
			break;
		case 2: {
			uint32_t off = (uint32_t)take(&in, 3) % RAM_SIZE, n = (uint32_t)take(&in, 1);
			for (uint32_t i = 0; i < n && off + i < RAM_SIZE; i++)
				shared_ram[off + i] = (uint8_t)take(&in, 1);
			break;
		}
		case 3:
			setup_queue(&b, &in);
			break;
		case 4:
			write_desc(&b, &in);
			break;
		case 5:
			publish(&b, &in);
			break;
		case 6:
			apply_event(&b, &in);
			break;
		case 7:
			clint_update_lines(&b.clint, take(&in, 4));
			break;
		default:
			mmio_write32(&b, (unsigned)take(&in, 1) % NDEV, 0x070, 0); /* a driver reset */
			break;
		}
	}
	board_fini(&b);
	outputs += b.sink;
	return 0;
}
