/*
 * cmd_record.c — `ftvm record --log FILE [run options]`: run a VM live and write its event log.
 *
 * The VM runs exactly as under `ftvm run` (same options, same live world); the recorder between
 * the machine and the world appends every input to FILE with its icount, plus CHECK records,
 * and an END record when the guest powers off or resets (a recording ends at the first reset).
 * The exit status is the guest's, like `ftvm run`. The steps shared with the other subcommands
 * that run a VM are vm_command.c's; this file is the role: the log file and the recorder.
 */
#define DIAG_MODULE "record"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/log_options.h"
#include "cmd/run_options.h"
#include "cmd/vm_command.h"
#include "host/world_live.h"
#include "replay/logfile.h"
#include "replay/recorder.h"
#include "util/diag.h"
#include "util/time.h"
#include "vm/machine.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm record --log FILE [--force] [--vm NAME] [--disk-reads data|digest] [run options]\n\n"
		     "Runs a VM like `ftvm run` and records every nondeterministic input into the event log FILE\n"
		     "(format: docs/log-format.md). `ftvm replay --log FILE` with the same run options replays it.\n"
		     "A recording ends when the guest powers off or resets. Prints the log's size and bandwidth.\n\n"
		     "  --log FILE          event log to write (required), created with mode 0600; an existing\n"
		     "                      file or a symbolic link there is refused\n"
		     "  --force             replace an existing FILE (a symbolic link is still refused)\n"
		     "  --vm NAME           name stored in the log header (default: the kernel's file name)\n"
		     "  --disk-reads data|digest  log each disk read with its bytes (default: the log alone\n"
		     "                      replays) or only their XXH3-128 digest (a far smaller log; the replay\n"
		     "                      then needs --disk copies of the disks as they were when recording started)\n"
		     "\nrun options:\n");
	run_options_help(out);
}

static int file_sink_append(void *ctx, enum evlog_kind kind, icount_t icount, const uint8_t *payload, uint32_t len,
			    uint64_t *lsn)
{
	return logfile_append(ctx, kind, icount, payload, len, lsn);
}

struct record_cmd {
	struct log_options lo;
	struct logfile_writer *log;
	struct recorder *rec;
};

static int record_options(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen)
{
	struct record_cmd *r = self;
	int ret = log_options_extract(argc, argv, &r->lo, err, errlen);
	*help = r->lo.help;
	return ret;
}

static int record_check(void *self, struct vm_command *c, bool *done, char *err, size_t errlen)
{
	struct record_cmd *r = self;
	if (!r->lo.log) {
		snprintf(err, errlen, "--log FILE is required");
		return -EINVAL;
	}
	return 0;
}

/* The log file (its header names the machine's configuration) and the recorder over the live world. */
static int record_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct record_cmd *r = self;
	struct evlog_header h = { .config_digest = machine_config_digest(c->m), .start_lsn = 1 };
	log_options_header_names(&r->lo, &c->opts, &c->mc, &h);
	if (logfile_create(r->lo.log, &h, r->lo.force, &r->log, err, errlen))
		return FTVM_EXIT_FAILURE;
	int ret = recorder_create(c->m, world_live_world(c->world),
				  (struct recorder_sink){ .append = file_sink_append, .ctx = r->log }, &r->rec);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create the recorder: %s", strerror(-ret));
		return FTVM_EXIT_FAILURE;
	}
	if (recorder_set_disk_reads(r->rec, r->lo.disk_digests ? RECORDER_READS_DIGEST : RECORDER_READS_DATA)) {
		snprintf(err, errlen, "out of memory");
		return FTVM_EXIT_FAILURE;
	}
	return 0;
}

static int record_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct record_cmd *r = self;
	int status = 0;

	double t0 = time_mono_s();
	enum machine_exit why = machine_run(c->m, recorder_world(r->rec), ICOUNT_MAX, &status);
	double elapsed = time_mono_s() - t0;
	world_live_flush(c->world);
	int ret = recorder_finish(r->rec, why, status);
	int close_ret = logfile_close(r->log);
	r->log = NULL;
	if (ret < 0 || close_ret < 0) {
		ret = ret < 0 ? ret : close_ret;
		snprintf(err, errlen, "writing the log %s failed: %s", r->lo.log, strerror(-ret));
		return ret;
	}
	const struct recorder_stats *rs = recorder_get_stats(r->rec);
	struct log_composition comp;
	memcpy(comp.records, rs->records, sizeof(comp.records));
	memcpy(comp.bytes, rs->bytes, sizeof(comp.bytes));
	fprintf(stderr, "ftvm record: wrote %s\n", r->lo.log);
	log_options_print_composition(stderr, &comp, machine_icount(c->m), elapsed, "recorded for");
	return vm_command_finish(c, why, status, "(the log ends there)");
}

static void record_stop(void *self)
{
	struct record_cmd *r = self;
	if (r->log)
		logfile_close(r->log);
	recorder_destroy(r->rec);
}

static const struct vm_role record_role = {
	.name = "record",
	.usage = usage,
	.world = VM_WORLD_LIVE,
	.catch_signals = true,
	.options = record_options,
	.check = record_check,
	.start = record_start,
	.run = record_run,
	.stop = record_stop,
};

int cmd_record_main(int argc, char **argv)
{
	struct record_cmd r = { 0 };
	return vm_command_main(&record_role, &r, argc, argv);
}
