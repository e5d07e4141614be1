/*
 * diag.c — the stderr diagnostics printer behind diag.h. One fprintf per message so lines from different
 * threads do not interleave.
 */
#include "util/diag.h"
#include "util/time.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum diag_level diag_threshold = DIAG_WARN;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void diag_set_level(enum diag_level level)
{
	diag_threshold = level;
}

__attribute__((constructor)) static void log_read_environment(void)
{
	const char *env = getenv("FTVM_DIAG");
	if (!env)
		return;
	for (unsigned i = 0; i < ARRAY_SIZE(level_names); i++)
		if (strcmp(env, level_names[i]) == 0)
			diag_threshold = (enum diag_level)i;
}

void diag_message(enum diag_level level, const char *module, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ftvm: %s: %s: %s\n", module, level_names[level], text);
}

enum { RATELIMIT_WINDOW_NS = 1000000000, RATELIMIT_BURST = 5 };

int diag_ratelimit_ok(uint64_t *window_start_ns, unsigned *count_in_window)
{
	uint64_t now = time_mono_ns();

	if (now - *window_start_ns > RATELIMIT_WINDOW_NS) {
		*window_start_ns = now;
		*count_in_window = 0;
	}
	return ++*count_in_window <= RATELIMIT_BURST;
}
