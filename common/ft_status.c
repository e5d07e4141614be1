/*
 * ft_status.c — names of FT states, as `ftvm status` prints them.
 */
#include "common/ft_status.h"

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
