/*
 * cmd_record.c — `ftvm record --log FILE [run options]`: run a VM live and write its event log.
 *
 * The VM runs exactly as under `ftvm run` (same options, same live world); the recorder between
 * the machine and the world appends every input to FILE with its icount, plus CHECK records,
 * and an END record when the guest powers off or resets (a recording ends at the first reset).
 * The exit status is the guest's, like `ftvm run`.
 */
#define DIAG_MODULE "record"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/log_options.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "replay/logfile.h"
#include "replay/recorder.h"
#include "util/diag.h"
#include "vm/machine.h"
#include "host/world_live.h"
#include "util/time.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm record --log FILE [--force] [--vm NAME] [run options]\n\n"
		     "Runs a VM like `ftvm run` and records every nondeterministic input into the event log FILE\n"
		     "(format: docs/log-format.md). `ftvm replay --log FILE` with the same run options replays it.\n"
		     "A recording ends when the guest powers off or resets. Prints the log's size and bandwidth.\n\n"
		     "  --log FILE          event log to write (required), created with mode 0600; an existing\n"
		     "                      file or a symbolic link there is refused\n"
		     "  --force             replace an existing FILE (a symbolic link is still refused)\n"
		     "  --vm NAME           name stored in the log header (default: the kernel's file name)\n\nrun options:\n");
	run_options_help(out);
}

static int file_sink_append(void *ctx, enum evlog_kind kind, icount_t icount, const uint8_t *payload, uint32_t len,
			    uint64_t *lsn)
{
	return logfile_append(ctx, kind, icount, payload, len, lsn);
}

int cmd_record_main(int argc, char **argv)
{
	struct log_options lo;
	struct run_options o;
	struct run_world rw;
	struct world_live *world = NULL;
	struct recorder *rec = NULL;
	struct machine *m = NULL;
	struct logfile_writer *log = NULL;
	char err[512];
	int code = FTVM_EXIT_FAILURE, status = 0;

	rw.scratch_fd = -1;

	if (log_options_extract(&argc, argv, &lo, err, sizeof(err)) ||
	    run_options_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "ftvm record: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (o.help || lo.help) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	if (!lo.log) {
		fprintf(stderr, "ftvm record: --log FILE is required\n");
		return FTVM_EXIT_USAGE;
	}
	struct machine_config mc;
	if (run_options_resolve(&o, err, sizeof(err)) || run_world_open_live(&o, &rw, &world, &mc, err, sizeof(err)))
		goto fail;
	if (machine_create(&mc, &m, err, sizeof(err)))
		goto fail;
	struct evlog_header h = { .config_digest = machine_config_digest(m), .start_lsn = 1 };
	log_options_header_names(&lo, &o, &mc, &h);
	if (logfile_create(lo.log, &h, lo.force, &log, err, sizeof(err)))
		goto fail;
	int ret = recorder_create(m, world_live_world(world),
				  (struct recorder_sink){ .append = file_sink_append, .ctx = log }, &rec);
	if (ret < 0) {
		snprintf(err, sizeof(err), "cannot create the recorder: %s", strerror(-ret));
		goto fail;
	}
	run_world_catch_signals(world);

	double t0 = time_mono_s();
	enum machine_exit why = machine_run(m, recorder_world(rec), ICOUNT_MAX, &status);
	double elapsed = time_mono_s() - t0;
	world_live_flush(world);
	ret = recorder_finish(rec, why, status);
	int close_ret = logfile_close(log);
	log = NULL;
	if (ret < 0 || close_ret < 0) {
		snprintf(err, sizeof(err), "writing the log %s failed: %s", lo.log, strerror(-(ret < 0 ? ret : close_ret)));
		goto fail;
	}
	const struct recorder_stats *rs = recorder_get_stats(rec);
	struct log_composition comp;
	memcpy(comp.records, rs->records, sizeof(comp.records));
	memcpy(comp.bytes, rs->bytes, sizeof(comp.bytes));
	fprintf(stderr, "ftvm record: wrote %s\n", lo.log);
	log_options_print_composition(stderr, &comp, machine_icount(m), elapsed, "recorded for");
	code = run_world_finish("record", &world, why, status, "(the log ends there)");
	goto out;
fail:
	world_live_destroy(world);
	world = NULL;
	fprintf(stderr, "ftvm record: %s\n", err);
	code = FTVM_EXIT_FAILURE;
out:
	run_world_catch_signals(NULL);
	if (log)
		logfile_close(log);
	machine_destroy(m);
	recorder_destroy(rec);
	world_live_destroy(world);
	run_world_release(&rw);
	return code;
}
