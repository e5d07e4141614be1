/*
 * log_options.h — options and printing shared by `ftvm record` and `ftvm replay`: the log file
 * (and --force to replace one), the VM name in its header, how disk reads are logged (their data,
 * or only a digest), the test-only perturbation switch, and the log-composition summary.
 */
#ifndef FTVM_CMD_LOG_OPTIONS_H
#define FTVM_CMD_LOG_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "cmd/run_options.h"
#include "replay/eventlog.h"
#include "util/compiler.h"
#include "vm/machine.h"

struct log_options {
	const char *log;
	const char *vm_name;
	bool stats;            /* replay: print the log's composition only */
	bool quiet;            /* replay: do not show the console */
	bool force;            /* record: replace an existing log file (never through a symlink) */
	bool disk_digests;     /* record: `--disk-reads digest`, reads logged as DISK_DIGEST records */
	uint64_t perturb_lsn;  /* replay, tests only: corrupt this input record when applied */
	bool help;
};

/* Per-kind totals of a log, printed by both commands. */
struct log_composition {
	uint64_t records[EVLOG_END + 1];
	uint64_t bytes[EVLOG_END + 1];
};

/* Takes the log options out of argv (argc adjusted) so run_options_parse() sees only its own. */
int log_options_extract(int *argc, char **argv, struct log_options *lo, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Removes argv[i..i+n) (argc adjusted, the terminating NULL kept): for the extractors of options. */
void log_options_drop_args(int *argc, char **argv, int i, int n);
/* VM name and human-readable configuration for the log header. */
void log_options_header_names(const struct log_options *lo, const struct run_options *o,
			      const struct machine_config *mc, struct evlog_header *h);
/* Records and bytes per kind, the guest time covered, and the bandwidth over `seconds`. */
void log_options_print_composition(FILE *out, const struct log_composition *c, icount_t icount, double seconds,
				   const char *seconds_what);

#endif
