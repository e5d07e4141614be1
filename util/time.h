/*
 * time.h — the host's monotonic clock, read one way everywhere outside vm/ (which never reads it:
 * guest time is a function of icount). Nanoseconds since an arbitrary start; never goes back.
 */
#ifndef FTVM_UTIL_TIME_H
#define FTVM_UTIL_TIME_H

#include <stdint.h>
#include <time.h>

#define TIME_NS_PER_S 1000000000ull
#define TIME_NS_PER_MS 1000000ull

static inline uint64_t time_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * TIME_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t time_mono_ms(void)
{
	return time_mono_ns() / TIME_NS_PER_MS;
}

/* Seconds, for rates and durations that are printed. */
static inline double time_mono_s(void)
{
	return (double)time_mono_ns() / 1e9;
}

#endif
