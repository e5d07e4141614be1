/*
 * machine.c — builds the board from the table in board.c and runs it (see machine.h).
 *
 * The run loop executes the hart in slices. A slice ends at the earliest of: the world's horizon,
 * the icount at which the CLINT timer fires (clock_icount_for_time), the caller's stop_at, or a
 * stop the hart was asked for by device code (a deadline changed, an interrupt line moved, the
 * finisher fired, a request left for the world). At each boundary the loop applies the world's
 * events, sets the timer lines and, when the hart waits in WFI, lets the world idle. Every
 * boundary is therefore a function of icount and machine state only, never of wall time.
 *
 * FTVM_TRACE=N (a debugging aid) caps slices at N instructions and logs, at every boundary, where
 * the hart is and how many exceptions and interrupts it took since the last one: enough to tell a
 * guest that progresses from one stuck in a trap or interrupt storm. It changes slice boundaries
 * only, which never changes guest state.
 *
 * Devices reach the world through a thin wrapper that forwards outputs and, after a disk or
 * entropy request, stops the hart at the end of the requesting instruction: a world that answers
 * synchronously (the virtual-clock world, a replay) then applies the answer at a boundary that
 * depends on nothing but the guest.
 */
#define DIAG_MODULE "machine"
#include "vm/machine.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "util/diag.h"
#include "util/parse.h"
#include "util/ram_digest.h"
#include "vm/jit.h"
#include "vm/board.h"
#include "vm/boot.h"
#include "vm/bus.h"
#include "vm/clint.h"
#include "vm/clock.h"
#include "vm/cpu.h"
#include "vm/finisher.h"
#include "vm/plic.h"
#include "vm/uart.h"
#include "vm/machine_internal.h"
#include "vm/virtio.h"

#define MIB (1024ull * 1024ull)
#define VIRTIO_MMIO_MAGIC 0x74726976u  /* "virt" */
#define VIRTIO_MMIO_VERSION 2u
#define VIRTIO_REG_MAGIC 0x000
#define VIRTIO_REG_VERSION 0x004
#define VIRTIO_REG_DEVICE_ID 0x008

/* ---- the world as devices see it ---- */

static void dev_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	struct machine *m = ctx;
	m->world.ops->console_out(m->world.ctx, buf, len);
}

static void dev_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct machine *m = ctx;
	m->world.ops->net_tx(m->world.ctx, nic, frame, len);
}

static void dev_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct machine *m = ctx;
	m->world.ops->disk_submit(m->world.ctx, disk, req);
	cpu_request_stop(m->cpu);
}

static void dev_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct machine *m = ctx;
	m->world.ops->rng_request(m->world.ctx, dev, len);
	cpu_request_stop(m->cpu);
}

static int dev_next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct machine *m = ctx;
	return m->world.ops->next_event(m->world.ctx, now, ev);
}

static icount_t dev_horizon(void *ctx, icount_t now)
{
	struct machine *m = ctx;
	return m->world.ops->horizon(m->world.ctx, now);
}

static int dev_idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct machine *m = ctx;
	return m->world.ops->idle(m->world.ctx, now, deadline, deadline_time);
}

static const struct vm_world_ops dev_world_ops = {
	.console_out = dev_console_out,
	.net_tx = dev_net_tx,
	.disk_submit = dev_disk_submit,
	.rng_request = dev_rng_request,
	.next_event = dev_next_event,
	.horizon = dev_horizon,
	.idle = dev_idle,
};

/* ---- glue between devices ---- */

static void uart_out(void *ctx, uint8_t byte)
{
	struct machine *m = ctx;
	m->world.ops->console_out(m->world.ctx, &byte, 1);
}

static void uart_irq(void *ctx, bool level)
{
	struct machine *m = ctx;
	plic_set_irq(&m->plic, board_device_of(BOARD_UART)->irq, level);
}

static void virtio_irq(void *board, unsigned irq, bool level)
{
	struct machine *m = board;
	plic_set_irq(&m->plic, irq, level);
}

static void finisher_fired(void *ctx)
{
	struct machine *m = ctx;
	cpu_request_stop(m->cpu);
}

static int rom_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	const uint8_t *rom = opaque;
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)rom[offset + i] << (8 * i);
	*value = v;
	return 0;
}

/* An empty virtio-mmio slot: a valid header with device id 0, so drivers skip it as on QEMU. */
static int empty_slot_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	switch (offset) {
	case VIRTIO_REG_MAGIC:
		*value = VIRTIO_MMIO_MAGIC;
		break;
	case VIRTIO_REG_VERSION:
		*value = VIRTIO_MMIO_VERSION;
		break;
	default:
		*value = 0;  /* DeviceID 0: nothing here */
		break;
	}
	return 0;
}

static int empty_slot_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	return 0;
}

/* ---- construction ---- */

static int add_region(struct machine *m, struct bus_region r, char *err, size_t errlen)
{
	int ret = bus_add_region(&m->bus, &r);
	if (ret)
		snprintf(err, errlen, "board: cannot map %s at 0x%llx: %s", r.name, (unsigned long long)r.base,
			 strerror(-ret));
	return ret;
}

/* Devices fill slots from the top down, as QEMU fills them in -device order: disks, NICs, RNG. */
static int create_virtio_devices(struct machine *m, const struct machine_config *c, char *err, size_t errlen)
{
	const struct board_device *d = board_device_of(BOARD_VIRTIO);
	unsigned needed = c->ndisks + c->nnics + (c->rng ? 1 : 0);
	if (c->ndisks > MACHINE_MAX_DISKS || c->nnics > MACHINE_MAX_NICS || needed > BOARD_VIRTIO_SLOTS) {
		snprintf(err, errlen, "board: too many devices (%u disks, %u NICs, rng %s; at most %u slots)",
			 c->ndisks, c->nnics, c->rng ? "on" : "off", BOARD_VIRTIO_SLOTS);
		return -EINVAL;
	}
	unsigned slot = BOARD_VIRTIO_SLOTS;
	for (unsigned k = 0; k < needed; k++) {
		slot--;
		struct virtio_host host = { .bus = &m->bus, .world = &m->dev_world, .set_irq = virtio_irq,
					    .board = m, .irq = d->irq + slot };
		int ret;
		struct virtio_device *dev = NULL;
		if (k < c->ndisks) {
			host.index = k;
			ret = virtio_blk_create(&host, c->disk_bytes[k], c->disk_read_only[k], &dev);
			m->slot_kind[slot] = SLOT_BLK;
			m->disk[m->ndisks++] = dev;
		} else if (k < c->ndisks + c->nnics) {
			host.index = k - c->ndisks;
			ret = virtio_net_create(&host, c->nic_mac[host.index], &dev);
			m->slot_kind[slot] = SLOT_NET;
			m->nic[m->nnics++] = dev;
		} else {
			host.index = 0;
			ret = virtio_rng_create(&host, &dev);
			m->slot_kind[slot] = SLOT_RNG;
			m->rng = dev;
		}
		m->slot[slot] = dev;
		if (ret) {
			snprintf(err, errlen, "board: cannot create virtio device in slot %u: %s", slot, strerror(-ret));
			return ret;
		}
	}
	for (unsigned i = 0; i < BOARD_VIRTIO_SLOTS; i++) {
		uint64_t base = d->base + i * d->size;
		struct bus_region r = { .name = d->name, .base = base, .size = d->size, .read = empty_slot_read,
					.write = empty_slot_write };
		if (m->slot[i])
			r = virtio_mmio_region(m->slot[i], base);
		int ret = add_region(m, r, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

static int map_board(struct machine *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < board_ndevices; i++) {
		const struct board_device *d = &board_devices[i];
		struct bus_region r;
		switch (d->kind) {
		case BOARD_ROM:
			r = (struct bus_region){ .name = d->name, .base = d->base, .size = d->size,
						 .flags = BUS_REGION_EXEC, .opaque = m->rom, .read = rom_read };
			break;
		case BOARD_FINISHER:
			r = finisher_region(&m->finisher, d->base, d->size);
			break;
		case BOARD_CLINT:
			r = clint_region(&m->clint, d->base, d->size);
			break;
		case BOARD_PLIC:
			r = plic_region(&m->plic, d->base, d->size);
			break;
		case BOARD_UART:
			r = uart_region(&m->uart, d->base, d->size);
			break;
		case BOARD_VIRTIO:
			continue;  /* create_virtio_devices() maps the slots */
		}
		int ret = add_region(m, r, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

static void digest_config(XXH3_state_t *st, const struct machine_config *c)
{
	uint64_t scalars[] = { c->mem_mib, c->ndisks, c->nnics, c->rng, c->bios != NULL };
	XXH3_64bits_update(st, scalars, sizeof(scalars));
	for (unsigned i = 0; i < c->ndisks && i < MACHINE_MAX_DISKS; i++) {
		uint64_t disk[2] = { c->disk_bytes[i], c->disk_read_only[i] };
		XXH3_64bits_update(st, disk, sizeof(disk));
	}
	for (unsigned i = 0; i < c->nnics && i < MACHINE_MAX_NICS; i++)
		XXH3_64bits_update(st, c->nic_mac[i], sizeof(c->nic_mac[i]));
}

static void record_identity(struct machine *m, const struct machine_config *c, const struct boot_layout *layout)
{
	struct machine_identity *id = &m->identity;
	id->config_digest = m->config_digest;
	id->mem_mib = c->mem_mib;
	id->ndisks = c->ndisks;
	id->nnics = c->nnics;
	id->rng = c->rng;
	id->bios = c->bios != NULL;
	for (unsigned i = 0; i < c->ndisks && i < MACHINE_MAX_DISKS; i++) {
		id->disk_bytes[i] = c->disk_bytes[i];
		id->disk_read_only[i] = c->disk_read_only[i];
	}
	for (unsigned i = 0; i < c->nnics && i < MACHINE_MAX_NICS; i++)
		memcpy(id->nic_mac[i], c->nic_mac[i], sizeof(id->nic_mac[i]));
	id->bios_digest = layout->bios_digest;
	id->kernel_digest = layout->kernel_digest;
	id->initrd_digest = layout->initrd_digest;
	id->fdt_digest = layout->fdt_digest;
}

int machine_create(const struct machine_config *config, struct machine **out, char *err, size_t errlen)
{
	int ret;
	XXH3_state_t *digest = NULL;
	struct boot_layout layout;
	*out = NULL;
	if (config->mem_mib < MACHINE_MIN_MEM_MIB || config->mem_mib > MACHINE_MAX_MEM_MIB) {
		snprintf(err, errlen, "memory size %llu MiB out of range (%u..%u MiB)",
			 (unsigned long long)config->mem_mib, MACHINE_MIN_MEM_MIB, MACHINE_MAX_MEM_MIB);
		return -EINVAL;
	}
	if (!config->kernel && !config->bios) {
		snprintf(err, errlen, "nothing to run: no kernel and no firmware");
		return -EINVAL;
	}
	struct machine *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->dev_world = (struct vm_world){ .ops = &dev_world_ops, .ctx = m };
	ret = machine_hold_init(m);
	if (ret) {
		free(m);
		snprintf(err, errlen, "cannot set up the vCPU pause handshake: %s", strerror(-ret));
		return ret;
	}
	m->digest_scratch = machine_state_alloc();
	if (!m->digest_scratch) {
		machine_hold_destroy(m);
		free(m);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->ram_size = config->mem_mib * MIB;
	m->ram = mmap(NULL, m->ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->ram == MAP_FAILED) {
		m->ram = NULL;
		ret = -ENOMEM;
		snprintf(err, errlen, "cannot allocate %llu MiB of guest memory", (unsigned long long)config->mem_mib);
		goto out;
	}
	m->bus.ram = m->ram;
	m->bus.ram_base = BOARD_RAM_BASE;
	m->bus.ram_size = m->ram_size;
	clock_init(&m->clock);
	ret = cpu_create(&m->bus, &m->clock, &m->cpu);
	if (ret) {
		snprintf(err, errlen, "cannot create the hart: %s", strerror(-ret));
		goto out;
	}
	if (config->jit && (ret = jit_attach(m->cpu)) != 0) {
		snprintf(err, errlen, "cannot start the JIT (--cpu jit): %s", strerror(-ret));
		goto out;
	}
	clint_init(&m->clint, m->cpu, &m->clock);
	plic_init(&m->plic, m->cpu);
	uart_init(&m->uart, uart_out, uart_irq, m);
	finisher_init(&m->finisher, finisher_fired, m);
	ret = map_board(m, err, errlen);
	if (ret)
		goto out;
	ret = create_virtio_devices(m, config, err, errlen);
	if (ret)
		goto out;

	digest = XXH3_createState();
	if (!digest || XXH3_64bits_reset(digest) != XXH_OK) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	digest_config(digest, config);
	ret = boot_load(&m->bus, m->rom, sizeof(m->rom), config, digest, &layout, err, errlen);
	if (ret)
		goto out;
	m->config_digest = XXH3_64bits_digest(digest);
	record_identity(m, config, &layout);
	diag_debug("start 0x%llx kernel 0x%llx initrd 0x%llx-0x%llx fdt 0x%llx", (unsigned long long)layout.start,
		  (unsigned long long)layout.kernel, (unsigned long long)layout.initrd_start,
		  (unsigned long long)layout.initrd_end, (unsigned long long)layout.fdt);
	cpu_reset(m->cpu, BOARD_RESET_PC);
	const char *trace = getenv("FTVM_TRACE");
	m->trace_slice = 0;
	if (trace && parse_u64(trace, 0, UINT64_MAX, &m->trace_slice) < 0) {
		diag_warn("FTVM_TRACE=%s is not a number of instructions: no trace", trace);
		m->trace_slice = 0;
	}
	*out = m;
	m = NULL;
out:
	XXH3_freeState(digest);
	machine_destroy(m);
	return ret;
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < BOARD_VIRTIO_SLOTS; i++)
		if (m->slot[i])
			virtio_destroy(m->slot[i]);
	if (m->cpu)
		cpu_destroy(m->cpu);
	if (m->ram)
		munmap(m->ram, m->ram_size);
	machine_state_free(m->digest_scratch);
	free(m->bus.dirty);
	machine_hold_destroy(m);
	free(m);
}

/* ---- events and the run loop ---- */

static struct virtio_device *event_device(struct machine *m, const struct vm_event *ev)
{
	switch (ev->kind) {
	case VM_EV_NET_RX:
		return ev->device < m->nnics ? m->nic[ev->device] : NULL;
	case VM_EV_DISK_DONE:
		return ev->device < m->ndisks ? m->disk[ev->device] : NULL;
	case VM_EV_RNG:
		return ev->device == 0 ? m->rng : NULL;
	default:
		return NULL;
	}
}

/* Folds an applied event into the input digest, so a replay that feeds the guest anything else
 * than the recording did differs at the next CHECK, even before the guest looks at the bytes. */
static void digest_input(struct machine *m, const struct vm_event *ev, icount_t now)
{
	uint64_t head[8] = { (uint64_t)ev->kind, now, ev->device, ev->request, ev->status, ev->time,
			     ev->ticks_per_insn, ev->len };
	m->input_digest = XXH3_64bits_withSeed(head, sizeof(head), m->input_digest);
	if (ev->len && ev->data)
		m->input_digest = XXH3_64bits_withSeed(ev->data, ev->len, m->input_digest);
}

int machine_apply_event(struct machine *m, const struct vm_event *ev)
{
	icount_t now = cpu_icount(m->cpu);
	digest_input(m, ev, now);
	switch (ev->kind) {
	case VM_EV_TIME:
		clock_anchor(&m->clock, now, ev->time, ev->ticks_per_insn);
		clint_update_lines(&m->clint, now);
		return 0;
	case VM_EV_CONSOLE_IN:
		if (ev->len > VM_EVENT_MAX_BYTES || (ev->len && !ev->data))
			return -EINVAL;
		(void)uart_receive(&m->uart, ev->data, ev->len);
		return 0;
	case VM_EV_NET_RX:
	case VM_EV_DISK_DONE:
	case VM_EV_RNG: {
		struct virtio_device *dev = event_device(m, ev);
		return dev ? virtio_apply_event(dev, ev) : -EINVAL;
	}
	}
	return -EINVAL;
}

/* Applies every event the world has for `now`; 0 or the world's -errno. */
static int drain_events(struct machine *m, icount_t now)
{
	struct vm_event ev;
	for (;;) {
		int r = m->world.ops->next_event(m->world.ctx, now, &ev);
		if (r <= 0)
			return r;
		r = machine_apply_event(m, &ev);
		if (r) {
			diag_error("event kind %d for device %u at icount %llu does not fit: %s", ev.kind, ev.device,
				  (unsigned long long)now, strerror(-r));
			return r;
		}
	}
}

static bool finisher_done(struct machine *m, enum machine_exit *why, int *status)
{
	switch (m->finisher.action) {
	case FINISHER_POWEROFF:
		*why = MACHINE_EXIT_POWEROFF;
		*status = m->finisher.status;
		return true;
	case FINISHER_RESET:
		*why = MACHINE_EXIT_RESET;
		*status = 0;
		return true;
	case FINISHER_NONE:
		break;
	}
	return false;
}

static void trace_boundary(struct machine *m, icount_t now)
{
	struct cpu_stats st;
	cpu_get_stats(m->cpu, &st);
	fprintf(stderr, "ftvm-trace: icount %llu pc 0x%llx priv %d exceptions +%llu interrupts +%llu\n",
		(unsigned long long)now, (unsigned long long)cpu_get_pc(m->cpu), (int)cpu_get_priv(m->cpu),
		(unsigned long long)(st.exceptions - m->trace_stats.exceptions),
		(unsigned long long)(st.interrupts - m->trace_stats.interrupts));
	m->trace_stats = st;
}

/* The loop of machine_run() with m->world bound. */
static enum machine_exit run_slices(struct machine *m, icount_t stop_at, int *status)
{
	enum machine_exit why;
	*status = 0;
	for (;;) {
		if (finisher_done(m, &why, status))
			return why;
		machine_hold_boundary(m);
		icount_t now = cpu_icount(m->cpu);
		atomic_store_explicit(&m->progress, now, memory_order_relaxed);
		int r = drain_events(m, now);
		if (r < 0) {
			*status = r;
			return MACHINE_EXIT_ERROR;
		}
		clint_update_lines(&m->clint, now);
		if (now >= stop_at)
			return MACHINE_EXIT_STOP_ICOUNT;
		icount_t deadline = clint_deadline(&m->clint, now);
		icount_t limit = m->world.ops->horizon(m->world.ctx, now);
		limit = MIN(limit, deadline);
		limit = MIN(limit, stop_at);
		if (m->trace_slice) {
			trace_boundary(m, now);
			limit = MIN(limit, now + m->trace_slice);
		}
		if (limit <= now)
			limit = now + 1;
		if (cpu_run(m->cpu, limit) != CPU_STOP_WFI || cpu_icount(m->cpu) != now)
			continue;
		/* The hart waits and nothing pending wakes it: only the world can change that. */
		uint64_t deadline_time = deadline == ICOUNT_MAX ? UINT64_MAX : m->clint.mtimecmp;
		machine_hold_idle_begin(m);
		r = m->world.ops->idle(m->world.ctx, now, deadline, deadline_time);
		machine_hold_idle_end(m);
		if (r < 0) {
			*status = r;
			return MACHINE_EXIT_ERROR;
		}
	}
}

enum machine_exit machine_run(struct machine *m, struct vm_world world, icount_t stop_at, int *status)
{
	m->world = world;
	machine_hold_enter_run(m);
	enum machine_exit why = run_slices(m, stop_at, status);
	atomic_store_explicit(&m->progress, cpu_icount(m->cpu), memory_order_relaxed);
	m->world = (struct vm_world){ 0 };  /* no output can leave between runs */
	machine_hold_leave_run(m);
	return why;
}

icount_t machine_icount(const struct machine *m)
{
	return cpu_icount(m->cpu);
}

void machine_cpu_stats(const struct machine *m, struct cpu_stats *out)
{
	cpu_get_stats(m->cpu, out);
}

icount_t machine_progress(const struct machine *m)
{
	return atomic_load_explicit(&m->progress, memory_order_relaxed);
}

const struct vm_clock *machine_clock(const struct machine *m)
{
	return &m->clock;
}

unsigned machine_reissue_disk_requests(struct machine *m, struct vm_world world)
{
	unsigned total = 0;
	for (unsigned d = 0; d < m->ndisks; d++) {
		unsigned n = virtio_blk_pending(m->disk[d], NULL, 0);
		if (!n)
			continue;
		struct vm_disk_request *reqs = calloc(n, sizeof(*reqs));
		if (!reqs) {
			diag_error("disk%u: out of memory reissuing %u request(s)", d, n);
			continue;
		}
		n = MIN(n, virtio_blk_pending(m->disk[d], reqs, n));
		for (unsigned i = 0; i < n; i++)
			world.ops->disk_submit(world.ctx, d, &reqs[i]);
		total += n;
		free(reqs);
	}
	return total;
}

uint64_t machine_config_digest(const struct machine *m)
{
	return m->config_digest;
}

const struct machine_identity *machine_identity(const struct machine *m)
{
	return &m->identity;
}
