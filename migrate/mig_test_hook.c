/*
 * mig_test_hook.c — see mig_test_hook.h: the test-only stall of FTVM_TEST_MIGRATE_STALL.
 */
#include "migrate/mig_test_hook.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STALL_FILE_MAX 512
#define STALL_POLL_MS 20
#define STALL_MAX_MS 120000

/* Does the file name this step (as one of its whitespace-separated words)? */
static bool names_step(const char *path, const char *step)
{
	char buf[STALL_FILE_MAX + 1];
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, STALL_FILE_MAX, f);
	fclose(f);
	buf[n] = '\0';
	char *save = NULL;
	for (char *w = strtok_r(buf, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save))
		if (!strcmp(w, step))
			return true;
	return false;
}

void mig_test_stall(const char *step)
{
	const char *path = getenv("FTVM_TEST_MIGRATE_STALL");
	if (!path || !names_step(path, step))
		return;
	fprintf(stderr, "migration test hook: at %s\n", step);
	for (unsigned waited = 0; waited < STALL_MAX_MS && names_step(path, step); waited += STALL_POLL_MS)
		nanosleep(&(struct timespec){ .tv_nsec = STALL_POLL_MS * 1000000L }, NULL);
	fprintf(stderr, "migration test hook: past %s\n", step);
}
