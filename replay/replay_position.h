/*
 * replay_position.h — a replayer's position (replayer.h) as the REPLAY section of a state
 * (docs/state-format.md): what `ftvm replay --snapshot-at` saves beside the machine and
 * `ftvm replay --restore` resumes from.
 */
#ifndef FTVM_REPLAY_REPLAY_POSITION_H
#define FTVM_REPLAY_REPLAY_POSITION_H

#include <stddef.h>
#include "replay/replayer.h"
#include "util/compiler.h"
#include "vm/state_format.h"

void replay_position_to_extra(const struct replay_position *p, struct state_extra *x);
/* -EBADMSG with the reason in err when x is absent or not a position. */
int replay_position_from_extra(const struct state_extra *x, struct replay_position *p, char *err,
			       size_t errlen) FTVM_MUST_CHECK;

#endif
