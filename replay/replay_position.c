/*
 * replay_position.c — see replay_position.h. One field walk (vm/state_io.h) both ways.
 */
#include "replay/replay_position.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm/state_io.h"

static void position_state_io(struct state_io *io, void *state)
{
	struct replay_position *p = state;
	state_io_u64(io, &p->log_config_digest);
	state_io_u64(io, &p->log_start_lsn);
	state_io_u64(io, &p->next_lsn);
	state_io_u64(io, &p->next_icount);
	state_io_u64(io, &p->records_digest);
	state_io_u64(io, &p->outputs.console);
	state_io_u64(io, &p->outputs.net);
	state_io_u64(io, &p->outputs.disk);
	state_io_u64(io, &p->outputs.count);
	state_io_u64(io, &p->checks_verified);
	state_io_u64(io, &p->machine_checks_verified);
}

void replay_position_to_extra(const struct replay_position *p, struct state_extra *x)
{
	struct state_io io;
	state_io_save_init(&io, x->data, sizeof(x->data));
	position_state_io(&io, (void *)p);  /* saving only reads it */
	x->len = (uint32_t)io.len;
	x->present = !io.err && !io.heap;
	state_io_release(&io);
}

int replay_position_from_extra(const struct state_extra *x, struct replay_position *p, char *err, size_t errlen)
{
	if (!x->present) {
		snprintf(err, errlen, "the state has no REPLAY section (it was not saved by ftvm replay --snapshot-at)");
		return -EBADMSG;
	}
	struct state_io io;
	state_io_load_init(&io, x->data, x->len);
	position_state_io(&io, p);
	if (io.err || io.pos != x->len) {
		snprintf(err, errlen, "the REPLAY section (%u bytes) is not a replay position", x->len);
		return -EBADMSG;
	}
	return 0;
}
