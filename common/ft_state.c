/*
 * ft_state.c — the FT state machine of ft_state.h: a mutex, a condition variable on the monotonic
 * clock, and the transition table, checked on every change.
 */
#define DIAG_MODULE "ft_state"
#include "common/ft_state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/diag.h"
#include "util/time.h"

#define B(s) FT_STATE_BIT(FT_STATE_##s)

/* legal[from]: the states `from` may move to (the table in ft_state.h). */
static const unsigned legal[] = {
	[FT_STATE_WAITING] = B(PROTECTED) | B(DONE),
	[FT_STATE_PROTECTED] = B(ARBITRATING) | B(HALTED) | B(DONE),
	[FT_STATE_ARBITRATING] = B(ALONE) | B(GOING_LIVE) | B(HALTED),
	[FT_STATE_GOING_LIVE] = B(ALONE) | B(HALTED),
	[FT_STATE_ALONE] = B(DONE),
	[FT_STATE_HALTED] = 0,
	[FT_STATE_DONE] = 0,
};

bool ft_state_legal(enum ft_role_state from, enum ft_role_state to)
{
	if ((unsigned)from >= ARRAY_SIZE(legal) || (unsigned)to >= ARRAY_SIZE(legal))
		return false;
	return legal[from] & FT_STATE_BIT(to);
}

int ft_state_init(struct ft_state *fs, const char *role, enum ft_role_state initial)
{
	int ret;

	memset(fs, 0, sizeof(*fs));
	ret = time_cond_init(&fs->changed);
	if (ret < 0)
		return ret;
	ret = -pthread_mutex_init(&fs->lock, NULL);
	if (ret < 0) {
		pthread_cond_destroy(&fs->changed);
		return ret;
	}
	fs->state = initial;
	atomic_store(&fs->current, (int)initial);
	snprintf(fs->role, sizeof(fs->role), "%s", role);
	fs->since_ns = time_mono_ns();
	return 0;
}

void ft_state_destroy(struct ft_state *fs)
{
	pthread_cond_destroy(&fs->changed);
	pthread_mutex_destroy(&fs->lock);
}

bool ft_state_set(struct ft_state *fs, unsigned from_mask, enum ft_role_state to, const char *reason)
{
	bool moved = false;

	pthread_mutex_lock(&fs->lock);
	enum ft_role_state from = fs->state;
	if (from_mask & FT_STATE_BIT(from)) {
		if (ft_state_legal(from, to)) {
			fs->state = to;
			atomic_store(&fs->current, (int)to);
			fs->since_ns = time_mono_ns();
			fs->transitions++;
			if (to == FT_STATE_GOING_LIVE)
				fs->went_live = true;
			if (reason)
				snprintf(fs->reason, sizeof(fs->reason), "%s", reason);
			moved = true;
			pthread_cond_broadcast(&fs->changed);
		} else {
			/* A caller's from-mask allowed a change the table does not: a bug, refused. */
			diag_error("refused illegal FT transition %s -> %s", ft_state_name(from), ft_state_name(to));
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return moved;
}

enum ft_role_state ft_state_get(struct ft_state *fs)
{
	return (enum ft_role_state)atomic_load(&fs->current);
}

int ft_state_wait(struct ft_state *fs, unsigned mask, int timeout_ms)
{
	struct timespec until;
	int ret = 0;

	if (timeout_ms >= 0)
		until = time_mono_timespec(time_mono_ns() + (uint64_t)timeout_ms * TIME_NS_PER_MS);
	pthread_mutex_lock(&fs->lock);
	while (!(mask & FT_STATE_BIT(fs->state)) && ret != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&fs->changed, &fs->lock);
		else
			ret = pthread_cond_timedwait(&fs->changed, &fs->lock, &until);
	}
	int out = mask & FT_STATE_BIT(fs->state) ? (int)fs->state : -ETIMEDOUT;
	pthread_mutex_unlock(&fs->lock);
	return out;
}

void ft_state_snapshot(struct ft_state *fs, struct ft_state_snapshot *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&fs->lock);
	uint64_t now = time_mono_ns();
	out->state = fs->state;
	snprintf(out->role, sizeof(out->role), "%s", fs->went_live ? "primary" : fs->role);
	out->transitions = fs->transitions;
	out->state_ms = (now - fs->since_ns) / TIME_NS_PER_MS;
	snprintf(out->reason, sizeof(out->reason), "%s", fs->reason);
	pthread_mutex_unlock(&fs->lock);
}
