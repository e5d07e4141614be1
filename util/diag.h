/*
 * diag.h — leveled, printf-checked diagnostics to stderr (the event log is a different thing: replay/).
 *
 * Messages carry the module name and level. The level comes from FTVM_DIAG (error, warn, info,
 * debug) or diag_set_level(). DIAG_RATELIMITED() is for data paths a guest or peer can drive: it
 * prints at most a few messages per second per call site and counts the ones it dropped.
 */
#ifndef FTVM_UTIL_DIAG_H
#define FTVM_UTIL_DIAG_H

#include <stdint.h>
#include "util/compiler.h"

enum diag_level { DIAG_ERROR = 0, DIAG_WARN = 1, DIAG_INFO = 2, DIAG_DEBUG = 3 };

extern enum diag_level diag_threshold;

void diag_set_level(enum diag_level level);
void diag_message(enum diag_level level, const char *module, const char *fmt, ...) FTVM_PRINTF(3, 4);
/* True when this call site may print now; used by DIAG_RATELIMITED. */
int diag_ratelimit_ok(uint64_t *window_start_ns, unsigned *count_in_window);

#ifndef DIAG_MODULE
#define DIAG_MODULE "ftvm"
#endif

#define DIAG_AT(level, ...)                                                                        \
	do {                                                                                      \
		if ((level) <= diag_threshold)                                                     \
			diag_message((level), DIAG_MODULE, __VA_ARGS__);                            \
	} while (0)
#define diag_error(...) DIAG_AT(DIAG_ERROR, __VA_ARGS__)
#define diag_warn(...) DIAG_AT(DIAG_WARN, __VA_ARGS__)
#define diag_info(...) DIAG_AT(DIAG_INFO, __VA_ARGS__)
#define diag_debug(...) DIAG_AT(DIAG_DEBUG, __VA_ARGS__)

#define DIAG_RATELIMITED(level, ...)                                                               \
	do {                                                                                      \
		static uint64_t rl_window_;                                                       \
		static unsigned rl_count_;                                                        \
		if ((level) <= diag_threshold && diag_ratelimit_ok(&rl_window_, &rl_count_))        \
			diag_message((level), DIAG_MODULE, __VA_ARGS__);                            \
	} while (0)

#endif
