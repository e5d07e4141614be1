/*
 * plic.c — the PLIC's register file, claim/complete and output lines (see plic.h).
 *
 * Register map (offsets from the base; 4-byte accesses only, as in QEMU):
 *   0x000000 + 4*s       priority of source s (3 bits)
 *   0x001000 + 4*w       pending bits of sources 32w..32w+31 (read-only)
 *   0x002000 + 0x80*c    enable bits of context c
 *   0x200000 + 0x1000*c  priority threshold of context c
 *   0x200004 + 0x1000*c  claim (read) / complete (write) of context c
 */
#include "vm/plic.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm/state_io.h"

#define PLIC_PRIORITY_BASE 0x000000u
#define PLIC_PENDING_BASE 0x001000u
#define PLIC_ENABLE_BASE 0x002000u
#define PLIC_ENABLE_STRIDE 0x80u
#define PLIC_CONTEXT_BASE 0x200000u
#define PLIC_CONTEXT_STRIDE 0x1000u
#define PLIC_CONTEXT_THRESHOLD 0x0u
#define PLIC_CONTEXT_CLAIM 0x4u
#define PLIC_PRIORITY_MASK 0x7u   /* 7 levels, as QEMU virt */

static const enum cpu_irq context_line[BOARD_PLIC_CONTEXTS] = { IRQ_M_EXT, IRQ_S_EXT };

void plic_init(struct plic *p, struct cpu *cpu)
{
	memset(p, 0, sizeof(*p));
	p->cpu = cpu;
}

static bool bit_test(const uint32_t *words, unsigned i)
{
	return words[i / 32] & (1u << (i % 32));
}

static void bit_assign(uint32_t *words, unsigned i, bool v)
{
	if (v)
		words[i / 32] |= 1u << (i % 32);
	else
		words[i / 32] &= ~(1u << (i % 32));
}

static uint32_t pending_word(const struct plic *p, unsigned w)
{
	uint32_t pend = p->level[w] & ~p->claimed[w];
	return w == 0 ? pend & ~1u : pend;  /* source 0 does not exist */
}

/* The source a claim on context c would return, 0 if none. Ties go to the lowest id. */
static unsigned best_source(const struct plic *p, unsigned c)
{
	unsigned best = 0;
	uint32_t best_prio = p->threshold[c];
	for (unsigned w = 0; w < PLIC_WORDS; w++) {
		uint32_t cand = pending_word(p, w) & p->enable[c][w];
		while (cand) {
			unsigned s = w * 32 + (unsigned)__builtin_ctz(cand);
			cand &= cand - 1;
			if (p->priority[s] > best_prio) {
				best = s;
				best_prio = p->priority[s];
			}
		}
	}
	return best;
}

static void update_outputs(struct plic *p)
{
	for (unsigned c = 0; c < BOARD_PLIC_CONTEXTS; c++) {
		bool out = best_source(p, c) != 0;
		if (out == p->output[c])
			continue;
		p->output[c] = out;
		if (p->cpu) {
			cpu_set_irq_line(p->cpu, context_line[c], out);
			cpu_request_stop(p->cpu);
		}
	}
}

void plic_set_irq(struct plic *p, unsigned irq, bool level)
{
	if (irq == 0 || irq >= BOARD_PLIC_SOURCES || bit_test(p->level, irq) == level)
		return;
	bit_assign(p->level, irq, level);
	update_outputs(p);
}

static int plic_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	struct plic *p = opaque;
	*value = 0;
	if (size != 4)
		return -1;
	if (offset < PLIC_PENDING_BASE) {
		unsigned s = (unsigned)(offset - PLIC_PRIORITY_BASE) / 4;
		if (s < BOARD_PLIC_SOURCES)
			*value = p->priority[s];
	} else if (offset < PLIC_ENABLE_BASE) {
		unsigned w = (unsigned)(offset - PLIC_PENDING_BASE) / 4;
		if (w < PLIC_WORDS)
			*value = pending_word(p, w);
	} else if (offset < PLIC_CONTEXT_BASE) {
		unsigned c = (unsigned)(offset - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE;
		unsigned w = (unsigned)(offset - PLIC_ENABLE_BASE) % PLIC_ENABLE_STRIDE / 4;
		if (c < BOARD_PLIC_CONTEXTS && w < PLIC_WORDS)
			*value = p->enable[c][w];
	} else {
		unsigned c = (unsigned)(offset - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE;
		unsigned reg = (unsigned)(offset - PLIC_CONTEXT_BASE) % PLIC_CONTEXT_STRIDE;
		if (c >= BOARD_PLIC_CONTEXTS)
			return 0;
		if (reg == PLIC_CONTEXT_THRESHOLD) {
			*value = p->threshold[c];
		} else if (reg == PLIC_CONTEXT_CLAIM) {
			unsigned s = best_source(p, c);
			if (s) {
				bit_assign(p->claimed, s, true);
				update_outputs(p);
			}
			*value = s;
		}
	}
	return 0;
}

static int plic_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct plic *p = opaque;
	uint32_t v = (uint32_t)value;
	if (size != 4)
		return -1;
	if (offset < PLIC_PENDING_BASE) {
		unsigned s = (unsigned)(offset - PLIC_PRIORITY_BASE) / 4;
		if (s > 0 && s < BOARD_PLIC_SOURCES)
			p->priority[s] = v & PLIC_PRIORITY_MASK;
	} else if (offset < PLIC_ENABLE_BASE) {
		return 0;  /* pending is read-only */
	} else if (offset < PLIC_CONTEXT_BASE) {
		unsigned c = (unsigned)(offset - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE;
		unsigned w = (unsigned)(offset - PLIC_ENABLE_BASE) % PLIC_ENABLE_STRIDE / 4;
		if (c < BOARD_PLIC_CONTEXTS && w < PLIC_WORDS)
			p->enable[c][w] = w == 0 ? v & ~1u : v;
	} else {
		unsigned c = (unsigned)(offset - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE;
		unsigned reg = (unsigned)(offset - PLIC_CONTEXT_BASE) % PLIC_CONTEXT_STRIDE;
		if (c >= BOARD_PLIC_CONTEXTS)
			return 0;
		if (reg == PLIC_CONTEXT_THRESHOLD)
			p->threshold[c] = v & PLIC_PRIORITY_MASK;
		else if (reg == PLIC_CONTEXT_CLAIM && v > 0 && v < BOARD_PLIC_SOURCES && bit_test(p->enable[c], v))
			bit_assign(p->claimed, v, false);  /* complete: ignored unless enabled (spec) */
	}
	update_outputs(p);
	return 0;
}

struct bus_region plic_region(struct plic *p, uint64_t base, uint64_t size)
{
	return (struct bus_region){ .name = "plic", .base = base, .size = size, .opaque = p,
				    .read = plic_read, .write = plic_write };
}

void plic_save(const struct plic *p, struct plic_state *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->priority, p->priority, sizeof(s->priority));
	memcpy(s->level, p->level, sizeof(s->level));
	memcpy(s->claimed, p->claimed, sizeof(s->claimed));
	memcpy(s->enable, p->enable, sizeof(s->enable));
	memcpy(s->threshold, p->threshold, sizeof(s->threshold));
	memcpy(s->output, p->output, sizeof(s->output));
}

/* Bits of sources past the last one (or source 0) set in a word array. */
static bool beyond_sources(const uint32_t *words)
{
	if (words[0] & 1u)
		return true;
	for (unsigned i = BOARD_PLIC_SOURCES; i < PLIC_WORDS * 32; i++)
		if (bit_test(words, i))
			return true;
	return false;
}

static const char *plic_impossible(const struct plic_state *s)
{
	if (s->priority[0])
		return "a priority for source 0, which does not exist";
	for (unsigned i = 0; i < BOARD_PLIC_SOURCES; i++)
		if (s->priority[i] & ~PLIC_PRIORITY_MASK)
			return "a source priority above the 7 levels";
	if (beyond_sources(s->level) || beyond_sources(s->claimed))
		return "lines of sources that do not exist";
	for (unsigned c = 0; c < BOARD_PLIC_CONTEXTS; c++) {
		if (s->threshold[c] & ~PLIC_PRIORITY_MASK)
			return "a threshold above the 7 levels";
		if (beyond_sources(s->enable[c]))
			return "enable bits of sources that do not exist";
	}
	return NULL;
}

int plic_restore(struct plic *p, const struct plic_state *s, char *err, size_t errlen)
{
	const char *why = plic_impossible(s);
	if (why) {
		snprintf(err, errlen, "plic: %s", why);
		return -EINVAL;
	}
	memcpy(p->priority, s->priority, sizeof(p->priority));
	memcpy(p->level, s->level, sizeof(p->level));
	memcpy(p->claimed, s->claimed, sizeof(p->claimed));
	memcpy(p->enable, s->enable, sizeof(p->enable));
	memcpy(p->threshold, s->threshold, sizeof(p->threshold));
	memcpy(p->output, s->output, sizeof(p->output));
	for (unsigned c = 0; c < BOARD_PLIC_CONTEXTS; c++)
		cpu_set_irq_line(p->cpu, context_line[c], p->output[c]);
	return 0;
}

void plic_state_io(struct state_io *io, void *state)
{
	struct plic_state *s = state;
	state_io_u32s(io, s->priority, BOARD_PLIC_SOURCES);
	state_io_u32s(io, s->level, PLIC_WORDS);
	state_io_u32s(io, s->claimed, PLIC_WORDS);
	for (unsigned c = 0; c < BOARD_PLIC_CONTEXTS; c++)
		state_io_u32s(io, s->enable[c], PLIC_WORDS);
	state_io_u32s(io, s->threshold, BOARD_PLIC_CONTEXTS);
	for (unsigned c = 0; c < BOARD_PLIC_CONTEXTS; c++)
		state_io_bool(io, &s->output[c]);
}

uint64_t plic_digest(const struct plic *p, uint64_t seed)
{
	struct plic_state s;
	plic_save(p, &s);
	return state_io_digest(plic_state_io, &s, seed);
}
