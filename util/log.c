/*
 * log.c — the stderr logger behind log.h. One fprintf per message so lines from different
 * threads do not interleave.
 */
#include "util/log.h"
#include "util/time.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum log_level log_threshold = LOG_WARN;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

__attribute__((constructor)) static void log_read_environment(void)
{
	const char *env = getenv("FTVM_LOG");
	if (!env)
		return;
	for (unsigned i = 0; i < ARRAY_SIZE(level_names); i++)
		if (strcmp(env, level_names[i]) == 0)
			log_threshold = (enum log_level)i;
}

void log_message(enum log_level level, const char *module, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ftvm: %s: %s: %s\n", module, level_names[level], text);
}

enum { RATELIMIT_WINDOW_NS = 1000000000, RATELIMIT_BURST = 5 };

int log_ratelimit_ok(uint64_t *window_start_ns, unsigned *count_in_window)
{
	uint64_t now = time_mono_ns();

	if (now - *window_start_ns > RATELIMIT_WINDOW_NS) {
		*window_start_ns = now;
		*count_in_window = 0;
	}
	return ++*count_in_window <= RATELIMIT_BURST;
}
