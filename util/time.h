/*
 * time.h — the host's monotonic clock, read one way everywhere outside vm/ (which never reads it:
 * guest time is a function of icount). Nanoseconds since an arbitrary start; never goes back.
 * Condition variables that wait with a deadline wait on this clock too.
 */
#ifndef FTVM_UTIL_TIME_H
#define FTVM_UTIL_TIME_H

#include <pthread.h>
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

/* CPU time the calling thread has used, in nanoseconds (for what a step costs, apart from the
 * time it waited for a core). */
static inline uint64_t time_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * TIME_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* The wall clock (CLOCK_REALTIME) in nanoseconds since the epoch: only for stamps printed to line
 * up with other programs' (QEMU's QMP events), never for durations or deadlines. */
static inline uint64_t time_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * TIME_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Seconds, for rates and durations that are printed. */
static inline double time_mono_s(void)
{
	return (double)time_mono_ns() / 1e9;
}

/* The instant t_ns of this clock as pthread_cond_timedwait() takes it, for a condition made by
 * time_cond_init(). */
static inline struct timespec time_mono_timespec(uint64_t t_ns)
{
	return (struct timespec){ .tv_sec = (time_t)(t_ns / TIME_NS_PER_S), .tv_nsec = (long)(t_ns % TIME_NS_PER_S) };
}

/* A condition variable whose timed waits run on this clock, so a change of the wall clock
 * neither cuts a wait short nor stretches it. 0 or -errno. */
static inline int time_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int ret = -pthread_condattr_init(&attr);
	if (ret < 0)
		return ret;
	ret = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (ret == 0)
		ret = -pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return ret;
}

#endif
