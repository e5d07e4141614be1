/*
 * cmd_replay.c — `ftvm replay --log FILE [run options]`: replay a recorded run, or with --stats
 * print the log's composition.
 *
 * The machine is built from the same run options as the recording (the log header's configuration
 * digest must match) and runs with no live input or output at all: inputs come from the log at
 * their icounts, the console output is reproduced on stdout and its digest compared with the
 * recording's, every CHECK is verified. Disk writes go to the disks given with --disk (a copy of
 * the disks as they were when the recording started), so their final state can be compared.
 *
 * Exit status: 0 the replay matched to the END record; 3 it diverged (the message names the icount,
 * the record and what differed); 4 the log is corrupt, truncated inside a record, or recorded for
 * another configuration; 5 every record matched but the log ends without END; 2 usage errors.
 */
#define DIAG_MODULE "replay"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replay/replayer.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/log_options.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "replay/logfile.h"
#include "util/diag.h"
#include "vm/clock.h"
#include "vm/machine.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm replay --log FILE [--stats] [--quiet] [run options]\n\n"
		     "Replays the event log FILE written by `ftvm record` on a machine built from the same run\n"
		     "options, with no live input or output: the console output is reproduced (and compared with\n"
		     "the recording's digest), every CHECK record is verified, disk writes go to the --disk files\n"
		     "(give copies of the disks as they were when recording started).\n\n"
		     "  --log FILE          event log to replay (required)\n"
		     "  --stats             only print the log's composition: records and bytes per kind, guest\n"
		     "                      time covered, log bandwidth\n"
		     "  --quiet             do not show the replayed console output\n"
		     "  --perturb-lsn N     (tests) corrupt the first input record at or after LSN N when it is\n"
		     "                      applied: the next CHECK must catch it\n\n"
		     "exit status: 0 matched to the end, 3 diverged, 4 bad or mismatched log, 5 log ends without END\n\n"
		     "run options:\n");
	run_options_help(out);
}

/* --stats: reads the whole log; guest time follows the TIME anchors like the machine's clock. */
static int print_stats(const char *path)
{
	struct logfile_reader *r;
	struct evlog_header h;
	struct evlog_record rec;
	struct log_composition comp = { 0 };
	struct vm_clock clock;
	char err[512];
	icount_t last = 0;
	int ret;

	if (logfile_open(path, &r, &h, err, sizeof(err)) < 0) {
		fprintf(stderr, "ftvm replay: %s\n", err);
		return FTVM_EXIT_BAD_LOG;
	}
	clock_init(&clock);
	while ((ret = logfile_next(r, &rec, err, sizeof(err))) == 1) {
		comp.records[rec.kind]++;
		comp.bytes[rec.kind] += EVLOG_RECORD_OVERHEAD + rec.len;
		last = rec.icount;
		if (rec.kind == EVLOG_TIME) {
			struct vm_event ev;
			if (evlog_event_from_record(&rec, &ev, err, sizeof(err)) < 0) {
				ret = -EBADMSG;
				break;
			}
			clock_anchor(&clock, rec.icount, ev.time, ev.ticks_per_insn);
		}
	}
	logfile_close_reader(r);
	printf("log %s: vm %s, %s\n", path, h.vm_name, h.config_summary);
	double guest_seconds = (double)clock_time_at(&clock, last) / CLOCK_TIMEBASE_HZ;
	log_options_print_composition(stdout, &comp, last, guest_seconds, "guest time");
	if (ret < 0) {
		fprintf(stderr, "ftvm replay: %s\n", err);
		return FTVM_EXIT_BAD_LOG;
	}
	if (comp.records[EVLOG_END] == 0)
		printf("the log has no END record: the recording did not finish\n");
	return 0;
}

int cmd_replay_main(int argc, char **argv)
{
	struct log_options lo;
	struct run_options o;
	struct run_world rw = { .scratch_fd = -1 };
	struct logfile_reader *log = NULL;
	struct replayer *rep = NULL;
	struct machine *m = NULL;
	struct evlog_header h;
	struct replayer_options ro = { .console_fd = STDOUT_FILENO };
	char err[512], msg[600];
	int code = FTVM_EXIT_BAD_LOG, status = 0;

	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++)
		ro.disk_fd[i] = -1;
	if (log_options_extract(&argc, argv, &lo, err, sizeof(err)) ||
	    run_options_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "ftvm replay: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (o.help || lo.help) {
		usage(stdout);
		return 0;
	}
	if (!lo.log) {
		fprintf(stderr, "ftvm replay: --log FILE is required\n");
		return FTVM_EXIT_USAGE;
	}
	if (lo.force) {
		fprintf(stderr, "ftvm replay: --force applies to ftvm record (replay writes no file)\n");
		return FTVM_EXIT_USAGE;
	}
	if (lo.stats)
		return print_stats(lo.log);
	if (run_options_resolve(&o, err, sizeof(err)) || run_world_prepare(&o, &rw, err, sizeof(err))) {
		code = FTVM_EXIT_FAILURE;
		goto fail;
	}
	struct machine_config mc;
	if (run_world_machine_config(&o, &rw, NULL, &mc, err, sizeof(err))) {
		code = FTVM_EXIT_FAILURE;
		goto fail;
	}
	ro.ndisks = rw.config.ndisks;
	for (unsigned i = 0; i < rw.config.ndisks; i++) {
		ro.disk_fd[i] = open(rw.config.disk_path[i], O_RDWR | O_CLOEXEC);
		if (ro.disk_fd[i] < 0) {
			snprintf(err, sizeof(err), "disk %s: %s", rw.config.disk_path[i], strerror(errno));
			code = FTVM_EXIT_FAILURE;
			goto fail;
		}
	}
	run_world_release(&rw);
	ro.console_fd = lo.quiet ? -1 : STDOUT_FILENO;
	ro.perturb_lsn = lo.perturb_lsn;
	if (logfile_open(lo.log, &log, &h, err, sizeof(err)))
		goto fail;
	if (machine_create(&mc, &m, err, sizeof(err))) {
		code = FTVM_EXIT_FAILURE;
		goto fail;
	}
	uint64_t digest = machine_config_digest(m);
	if (digest != h.config_digest) {
		struct evlog_header mine = { 0 };
		log_options_header_names(&lo, &o, &mc, &mine);
		snprintf(err, sizeof(err),
			 "the log was recorded for another configuration: log [%s] digest %016llx, this machine [%s] digest %016llx",
			 h.config_summary, (unsigned long long)h.config_digest, mine.config_summary,
			 (unsigned long long)digest);
		goto fail;
	}
	if (replayer_create(m, replay_source_file(log), &ro, &rep)) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	enum machine_exit why = machine_run(m, replayer_world(rep), ICOUNT_MAX, &status);
	enum replay_result res = replayer_finish(rep, why, status, msg, sizeof(msg));
	fflush(stdout);
	fprintf(stderr, "ftvm replay: %s\n", msg);
	switch (res) {
	case REPLAY_MATCHED: code = FTVM_EXIT_OK; break;
	case REPLAY_DIVERGED: code = FTVM_EXIT_DIVERGED; break;
	case REPLAY_INCOMPLETE: code = FTVM_EXIT_INCOMPLETE; break;
	case REPLAY_BAD_LOG: code = FTVM_EXIT_BAD_LOG; break;
	}
	goto out;
fail:
	fprintf(stderr, "ftvm replay: %s\n", err);
out:
	machine_destroy(m);
	replayer_destroy(rep);
	logfile_close_reader(log);
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++)
		if (ro.disk_fd[i] >= 0)
			close(ro.disk_fd[i]);
	run_world_release(&rw);
	return code;
}
