/*
 * ft_status.c — names of FT states, as `ftvm status` prints them, and the hold-time buckets.
 */
#include "common/ft_status.h"

const uint64_t ft_hold_bucket_us[FT_HOLD_BUCKETS] = {
	100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

const char *ft_state_name(enum ft_role_state state)
{
	switch (state) {
	case FT_STATE_WAITING: return "waiting";
	case FT_STATE_PROTECTED: return "protected";
	case FT_STATE_ARBITRATING: return "arbitrating";
	case FT_STATE_GOING_LIVE: return "going-live";
	case FT_STATE_ALONE: return "alone";
	case FT_STATE_HALTED: return "halted";
	case FT_STATE_DONE: return "done";
	}
	return "unknown";
}
