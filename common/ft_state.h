/*
 * ft_state.h — the FT state machine both roles run: one lock, one condition variable, one table
 * of legal transitions. Every change of a node's place in the pair goes through ft_state_set();
 * every thread that must wait for one sleeps in ft_state_wait() and is woken by the change itself.
 *
 * States (names as `ftvm status` prints them, ft_state_name()):
 *   waiting      the primary has not paired yet (backup: listening, primary: connecting)
 *   protected    paired: the primary records and sends, the backup replays in lockstep
 *   arbitrating  the peer is lost: outputs are held and the arbiter is being claimed
 *   going-live   backup only: won the arbiter, switching the back ends live (ft_backup.h 4-6)
 *   alone        runs without a backup: the primary that won, or a backup that went live
 *   halted       final: lost the arbiter, arbiter failure, divergence or a failed go-live
 *   done         final: the guest powered off, or the node shut down without a verdict
 *
 * Transitions (anything else is refused and logged as a bug):
 *   from          to           who, when
 *   waiting       protected    primary connected / backup accepted its primary
 *   waiting       done         shut down before pairing
 *   protected     arbitrating  primary: the channel failed; backup: the log ended without END
 *   protected     halted       backup: the replay diverged (FT ends without a claim)
 *   protected     done         the guest powered off while paired, or shutdown
 *   arbitrating   alone        primary won the arbiter
 *   arbitrating   going-live   backup won the arbiter
 *   arbitrating   halted       lost the arbiter, or the arbiter failed (no claim on doubt)
 *   going-live    alone        back ends live, disk requests reissued, MACs announced
 *   going-live    halted       won but the live back ends could not be built
 *   alone         done         the guest powered off
 *
 * Locking: `lock` guards every field; `current` mirrors `state` as an atomic written only under
 * the lock, so the vCPU's per-record check (ft_state_get) takes no lock. The reason, role and
 * timestamps are read only through ft_state_snapshot(), under the lock, in one copy. Shared
 * state a role keeps beside this (counters) is atomic; nothing else crosses threads unlocked.
 */
#ifndef FTVM_COMMON_FT_STATE_H
#define FTVM_COMMON_FT_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/ft_status.h"
#include "util/compiler.h"

/* A set of states, for from-masks and wait-masks. */
#define FT_STATE_BIT(s) (1u << (s))
#define FT_STATES_FINAL (FT_STATE_BIT(FT_STATE_HALTED) | FT_STATE_BIT(FT_STATE_DONE))

struct ft_state {
	pthread_mutex_t lock;
	pthread_cond_t changed;      /* broadcast on every transition; waits on CLOCK_MONOTONIC */
	enum ft_role_state state;
	_Atomic int current;         /* == state; stored under the lock, loaded without it */
	bool went_live;              /* entered going-live: this node is the primary now */
	uint64_t transitions;        /* how many changes happened */
	uint64_t since_ns;           /* time_mono_ns() when `state` was entered */
	char role[16];               /* the role the node started in: "primary" or "backup" */
	char reason[256];            /* why FT ended (empty while it has not) */
};

/* What a status request needs, copied under the lock at one instant. */
struct ft_state_snapshot {
	enum ft_role_state state;
	char role[16];               /* "primary" once a backup went live, else the starting role */
	uint64_t transitions;
	uint64_t state_ms;           /* time spent in the current state */
	char reason[256];
};

int ft_state_init(struct ft_state *fs, const char *role, enum ft_role_state initial) FTVM_MUST_CHECK;
void ft_state_destroy(struct ft_state *fs);

/* Moves to `to` if the current state is in from_mask and the transition is in the table above;
 * `reason` (NULL: unchanged) is stored with it. Returns whether the transition happened. */
bool ft_state_set(struct ft_state *fs, unsigned from_mask, enum ft_role_state to, const char *reason);
/* The current state, without the lock (it may change right after). */
enum ft_role_state ft_state_get(struct ft_state *fs);
/* Sleeps until the state is in mask or timeout_ms pass (< 0: no limit). Returns the state
 * (>= 0) or -ETIMEDOUT. */
int ft_state_wait(struct ft_state *fs, unsigned mask, int timeout_ms);
void ft_state_snapshot(struct ft_state *fs, struct ft_state_snapshot *out);
/* Whether `from` -> `to` is in the table above. */
bool ft_state_legal(enum ft_role_state from, enum ft_role_state to);

#endif
