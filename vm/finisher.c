/*
 * finisher.c — the SiFive test finisher (see finisher.h).
 */
#include "vm/finisher.h"

#include <errno.h>
#include <stdio.h>

#include "vm/board.h"
#include "vm/state_io.h"

#define FINISHER_REG_STATUS 0x0
#define FINISHER_CODE_SHIFT 16
#define FINISHER_STATUS_MASK 0xffffu

void finisher_init(struct finisher *f, void (*fired)(void *ctx), void *ctx)
{
	f->action = FINISHER_NONE;
	f->status = 0;
	f->fired = fired;
	f->ctx = ctx;
}

static int finisher_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	*value = 0;
	return 0;
}

static int finisher_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct finisher *f = opaque;
	if (size != 2 && size != 4)
		return -1;  /* QEMU takes 2- and 4-byte accesses only */
	if (offset != FINISHER_REG_STATUS)
		return 0;
	uint32_t v = (uint32_t)value;
	switch (v & FINISHER_STATUS_MASK) {
	case BOARD_FINISHER_PASS:
		f->action = FINISHER_POWEROFF;
		f->status = 0;
		break;
	case BOARD_FINISHER_FAIL:
		f->action = FINISHER_POWEROFF;
		f->status = (int)(v >> FINISHER_CODE_SHIFT);
		break;
	case BOARD_FINISHER_RESET:
		f->action = FINISHER_RESET;
		f->status = 0;
		break;
	default:
		return 0;
	}
	if (f->fired)
		f->fired(f->ctx);
	return 0;
}

struct bus_region finisher_region(struct finisher *f, uint64_t base, uint64_t size)
{
	return (struct bus_region){ .name = "test", .base = base, .size = size, .opaque = f,
				    .read = finisher_read, .write = finisher_write };
}

void finisher_save(const struct finisher *f, struct finisher_state *s)
{
	*s = (struct finisher_state){ .action = (uint32_t)f->action, .status = f->status };
}

int finisher_restore(struct finisher *f, const struct finisher_state *s, char *err, size_t errlen)
{
	bool known = s->action == FINISHER_NONE || s->action == FINISHER_POWEROFF || s->action == FINISHER_RESET;
	if (!known || s->status < 0 || s->status > (int32_t)FINISHER_STATUS_MASK ||
	    (s->action != FINISHER_POWEROFF && s->status)) {
		snprintf(err, errlen, "test finisher: action %u status %d is not one a guest can request", s->action,
			 s->status);
		return -EINVAL;
	}
	f->action = (enum finisher_action)s->action;
	f->status = s->status;
	return 0;
}

void finisher_state_io(struct state_io *io, void *state)
{
	struct finisher_state *s = state;
	uint32_t status = (uint32_t)s->status;
	state_io_u32(io, &s->action);
	state_io_u32(io, &status);
	s->status = (int32_t)status;
}

uint64_t finisher_digest(const struct finisher *f, uint64_t seed)
{
	struct finisher_state s;
	finisher_save(f, &s);
	return state_io_digest(finisher_state_io, &s, seed);
}
