/*
 * machine_state.c — the whole machine but its RAM as plain data: save, checked restore, digest
 * (see machine.h). Each part saves and checks its own state; this file adds what is the
 * machine's own — the clock's anchor and the digest of every input applied so far — and checks
 * what ties parts together: the virtio slots the configuration made, the clock's anchor not
 * lying ahead of the hart, and every interrupt line agreeing with the PLIC's view of it.
 */
#include "vm/machine_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/ram_digest.h"
#include "vm/state_io.h"

struct machine_state *machine_state_alloc(void)
{
	struct machine_state *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	for (unsigned i = 0; i < BOARD_VIRTIO_SLOTS; i++) {
		if (!(s->virtio[i] = virtio_state_alloc())) {
			machine_state_free(s);
			return NULL;
		}
	}
	return s;
}

void machine_state_free(struct machine_state *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < BOARD_VIRTIO_SLOTS; i++)
		virtio_state_free(s->virtio[i]);
	free(s);
}

int machine_save(const struct machine *m, struct machine_state *s)
{
	s->config_digest = m->config_digest;
	s->input_digest = m->input_digest;
	s->clock = m->clock;
	cpu_save(m->cpu, &s->cpu);
	clint_save(&m->clint, &s->clint);
	plic_save(&m->plic, &s->plic);
	uart_save(&m->uart, &s->uart);
	finisher_save(&m->finisher, &s->finisher);
	s->nvirtio = 0;
	for (unsigned i = BOARD_VIRTIO_SLOTS; i-- > 0;) {
		if (!m->slot[i])
			continue;
		int ret = virtio_save(m->slot[i], s->virtio[s->nvirtio++]);
		if (ret)
			return ret;
	}
	return 0;
}

/* The PLIC source of the UART. */
static unsigned uart_irq_source(void)
{
	return board_device_of(BOARD_UART)->irq;
}

static bool plic_level(const struct plic_state *p, unsigned irq)
{
	return p->level[irq / 32] & (1u << (irq % 32));
}

static const char *lines_problem(const struct machine *m, const struct machine_state *s)
{
	const struct board_device *v = board_device_of(BOARD_VIRTIO);
	if (plic_level(&s->plic, uart_irq_source()) != s->uart.irq_level)
		return "the UART's interrupt line disagrees with the PLIC";
	unsigned k = 0;
	for (unsigned i = BOARD_VIRTIO_SLOTS; i-- > 0;) {
		if (!m->slot[i])
			continue;
		if (plic_level(&s->plic, v->irq + i) != s->virtio[k++]->irq_level)
			return "a virtio interrupt line disagrees with the PLIC";
	}
	uint64_t ext = (1ull << IRQ_M_EXT) | (1ull << IRQ_S_EXT);
	uint64_t want = (s->plic.output[0] ? 1ull << IRQ_M_EXT : 0) | (s->plic.output[1] ? 1ull << IRQ_S_EXT : 0);
	if ((s->cpu.irq_lines & ext) != want)
		return "the hart's external interrupt lines disagree with the PLIC";
	if (s->cpu.irq_lines & ~(ext | (1ull << IRQ_M_SOFT) | (1ull << IRQ_M_TIMER)))
		return "the hart has interrupt lines no device drives";
	return NULL;
}

static const char *machine_problem(const struct machine *m, const struct machine_state *s)
{
	unsigned slots = 0;
	for (unsigned i = 0; i < BOARD_VIRTIO_SLOTS; i++)
		slots += m->slot[i] != NULL;
	if (s->config_digest != m->config_digest)
		return "saved for another configuration";
	if (s->nvirtio != slots)
		return "the number of virtio devices differs";
	if (s->clock.ticks_per_insn == 0)
		return "the clock does not advance";
	if (s->clock.anchor_icount > s->cpu.icount)
		return "the clock's anchor lies ahead of the hart";
	return lines_problem(m, s);
}

int machine_restore(struct machine *m, const struct machine_state *s, char *err, size_t errlen)
{
	const char *why = machine_problem(m, s);
	if (why) {
		snprintf(err, errlen, "machine: %s", why);
		return -EINVAL;
	}
	int ret = cpu_restore(m->cpu, &s->cpu, err, errlen);
	if (!ret)
		ret = clint_restore(&m->clint, &s->clint, err, errlen);
	if (!ret)
		ret = plic_restore(&m->plic, &s->plic, err, errlen);
	if (!ret)
		ret = uart_restore(&m->uart, &s->uart, err, errlen);
	if (!ret)
		ret = finisher_restore(&m->finisher, &s->finisher, err, errlen);
	unsigned k = 0;
	for (unsigned i = BOARD_VIRTIO_SLOTS; !ret && i-- > 0;)
		if (m->slot[i])
			ret = virtio_restore(m->slot[i], s->virtio[k++], err, errlen);
	if (ret)
		return ret;
	m->clock = s->clock;
	m->input_digest = s->input_digest;
	atomic_store_explicit(&m->progress, s->cpu.icount, memory_order_relaxed);
	return 0;
}

void machine_warm(struct machine *m)
{
	cpu_warm(m->cpu);
}

void machine_flush_tlb(struct machine *m)
{
	cpu_tlb_flush(m->cpu);
}

void machine_core_state_io(struct state_io *io, void *state)
{
	struct machine_state *s = state;
	state_io_u64(io, &s->config_digest);
	state_io_u64(io, &s->input_digest);
	state_io_u64(io, &s->clock.anchor_icount);
	state_io_u64(io, &s->clock.anchor_time);
	state_io_u64(io, &s->clock.ticks_per_insn);
	state_io_count(io, &s->nvirtio, BOARD_VIRTIO_SLOTS);
}

/* The whole machine_state but RAM, part after part: what machine_digest hashes. */
static void machine_state_io(struct state_io *io, void *state)
{
	struct machine_state *s = state;
	machine_core_state_io(io, s);
	cpu_state_io(io, &s->cpu);
	clint_state_io(io, &s->clint);
	plic_state_io(io, &s->plic);
	uart_state_io(io, &s->uart);
	finisher_state_io(io, &s->finisher);
	for (uint32_t i = 0; i < s->nvirtio; i++)
		virtio_state_io(io, s->virtio[i]);
}

uint8_t *machine_ram(struct machine *m, size_t *size)
{
	bus_code_forget_all(&m->bus); /* the caller restores RAM: translated code is checked again */
	*size = m->ram_size;
	return m->ram;
}

const uint8_t *machine_ram_const(const struct machine *m, size_t *size)
{
	*size = m->ram_size;
	return m->ram;
}

int machine_ram_drop(struct machine *m)
{
	/* The mapping is private and anonymous (machine_create): MADV_DONTNEED gives its pages back,
	 * and the next access to one sees a fresh zero page. */
	bus_code_forget_all(&m->bus);
	if (madvise(m->ram, m->ram_size, MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

void machine_digests(const struct machine *m, uint64_t *state, uint64_t *full)
{
	struct machine_state *s = m->digest_scratch;
	uint64_t d;
	if (machine_save(m, s))
		d = ~0ull;  /* a device that cannot be saved: a digest no healthy peer computes */
	else
		d = state_io_digest(machine_state_io, s, 0);
	*state = d;
	/* The memory digest continues from the state digest, so one save serves both. */
	if (full)
		*full = ram_digest(m->ram, m->ram_size, d);
}

uint64_t machine_digest(const struct machine *m, bool include_memory)
{
	uint64_t state, full;
	machine_digests(m, &state, include_memory ? &full : NULL);
	return include_memory ? full : state;
}
