/*
 * log.h — leveled, printf-checked logging to stderr.
 *
 * Messages carry the module name and level. The level comes from FTVM_LOG (error, warn, info,
 * debug) or log_set_level(). LOG_RATELIMITED() is for data paths a guest or peer can drive: it
 * prints at most a few messages per second per call site and counts the ones it dropped.
 */
#ifndef FTVM_UTIL_LOG_H
#define FTVM_UTIL_LOG_H

#include <stdint.h>
#include "util/compiler.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_threshold;

void log_set_level(enum log_level level);
void log_message(enum log_level level, const char *module, const char *fmt, ...) FTVM_PRINTF(3, 4);
/* True when this call site may print now; used by LOG_RATELIMITED. */
int log_ratelimit_ok(uint64_t *window_start_ns, unsigned *count_in_window);

#ifndef LOG_MODULE
#define LOG_MODULE "ftvm"
#endif

#define LOG_AT(level, ...)                                                                        \
	do {                                                                                      \
		if ((level) <= log_threshold)                                                     \
			log_message((level), LOG_MODULE, __VA_ARGS__);                            \
	} while (0)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)

#define LOG_RATELIMITED(level, ...)                                                               \
	do {                                                                                      \
		static uint64_t rl_window_;                                                       \
		static unsigned rl_count_;                                                        \
		if ((level) <= log_threshold && log_ratelimit_ok(&rl_window_, &rl_count_))        \
			log_message((level), LOG_MODULE, __VA_ARGS__);                            \
	} while (0)

#endif
