/*
 * cmd_replay.c — `ftvm replay --log FILE [run options]`: replay a recorded run, or with --stats
 * print the log's composition.
 *
 * The machine is built from the same run options as the recording (the log header's configuration
 * digest must match) and runs with no live input or output at all: inputs come from the log at
 * their icounts, the console output is reproduced on stdout and its digest compared with the
 * recording's, every CHECK is verified. The disks given with --disk (copies of the disks as they
 * were when the recording started) receive the guest's requests again (replay/disk_replica.h), so
 * their final state can be compared; a log recorded with `--disk-reads digest` has its reads
 * answered from them, each checked against the recorded digest.
 *
 * Snapshots (docs/state-format.md): with --snapshot-at ICOUNT --snapshot FILE the replay runs to
 * exactly that icount, saves the machine and its position in the log (next record, running output
 * digests) to FILE and stops there, exit 0. With --restore FILE the machine starts from such a
 * snapshot instead of power-on, the log is skipped to exactly the saved record, and the replay goes
 * on to END verifying every CHECK, ending as a full replay ends. Disks then receive the writes from
 * the cut on (give copies of the disks as they were at the cut to compare them at the end).
 *
 * Exit status: 0 the replay matched to the END record (or the snapshot was saved); 3 it diverged
 * (the message names the icount, the record and what differed); 4 the log is corrupt, truncated inside a record, or recorded for
 * another configuration; 5 every record matched but the log ends without END; 2 usage errors.
 * The steps shared with the other subcommands that run a VM are vm_command.c's; this file is the
 * role: the disks, the log and the replayer.
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
#include "cmd/snapshot_options.h"
#include "cmd/vm_command.h"
#include "replay/logfile.h"
#include "replay/replay_position.h"
#include "util/diag.h"
#include "vm/clock.h"
#include "vm/machine.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm replay --log FILE [--stats] [--quiet] [run options]\n\n"
		     "Replays the event log FILE written by `ftvm record` on a machine built from the same run\n"
		     "options, with no live input or output: the console output is reproduced (and compared with\n"
		     "the recording's digest), every CHECK record is verified, the guest's disk requests run again\n"
		     "on the --disk files (give copies of the disks as they were when recording started; a log\n"
		     "recorded with --disk-reads digest reads from them, checking every read's digest).\n\n"
		     "  --log FILE          event log to replay (required)\n"
		     "  --stats             only print the log's composition: records and bytes per kind, guest\n"
		     "                      time covered, log bandwidth\n"
		     "  --quiet             do not show the replayed console output\n"
		     "  --snapshot-at N     replay to exactly icount N, save a snapshot (--snapshot) and stop\n"
		     "  --snapshot FILE     where --snapshot-at saves (mode 0600; an existing FILE only with\n"
		     "                      --force, a symlink never)\n"
		     "  --restore FILE      start from a snapshot saved by --snapshot-at instead of power-on and\n"
		     "                      replay the rest of the log to its END\n"
		     "  --perturb-lsn N     (tests) corrupt the first input record at or after LSN N when it is\n"
		     "                      applied: the next CHECK must catch it\n\n"
		     "exit status: 0 matched to the end (or snapshot saved), 3 diverged, 4 bad or mismatched log or\n"
		     "snapshot, 5 log ends without END\n\n"
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

/* Checks the snapshot options against each other and the rest; 0 or a usage error in err. */
static int check_snapshot_options(const struct snapshot_options *so, const struct log_options *lo, char *err,
				  size_t errlen)
{
	if (so->have_at != (so->snapshot != NULL)) {
		snprintf(err, errlen, "--snapshot-at ICOUNT and --snapshot FILE go together");
		return -EINVAL;
	}
	if (lo->force && !so->snapshot) {
		snprintf(err, errlen, "--force applies to ftvm record and to --snapshot (replay writes no other file)");
		return -EINVAL;
	}
	if (lo->stats && (so->snapshot || so->restore)) {
		snprintf(err, errlen, "--stats reads the log only: no --snapshot or --restore with it");
		return -EINVAL;
	}
	return 0;
}

/* Restores the snapshot into m and skips the log to where it was taken. FTVM_EXIT_OK or the exit
 * status, with the reason in err. */
static int resume_from(const char *path, struct machine *m, struct replayer *rep, const struct evlog_header *h,
		       char *err, size_t errlen)
{
	struct state_extra *extra = malloc(sizeof(*extra));
	struct replay_position pos;
	char why[512];
	int code = FTVM_EXIT_BAD_LOG;
	if (!extra) {
		snprintf(err, errlen, "out of memory");
		return FTVM_EXIT_FAILURE;
	}
	if (snapshot_restore("replay", path, m, extra, why, sizeof(why))) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	if (replay_position_from_extra(extra, &pos, why, sizeof(why))) {
		snprintf(err, errlen, "snapshot %s: %s", path, why);
		goto out;
	}
	if (pos.log_config_digest != h->config_digest || pos.log_start_lsn != h->start_lsn) {
		snprintf(err, errlen, "snapshot %s was taken replaying another log (start lsn %llu, digest %016llx)", path,
			 (unsigned long long)pos.log_start_lsn, (unsigned long long)pos.log_config_digest);
		goto out;
	}
	if (replayer_resume(rep, &pos, why, sizeof(why))) {
		snprintf(err, errlen, "snapshot %s: %s", path, why);
		goto out;
	}
	code = FTVM_EXIT_OK;
out:
	free(extra);
	return code;
}

/* At the cut: saves the machine with the replayer's position. FTVM_EXIT_OK or FTVM_EXIT_FAILURE. */
static int save_cut(const struct snapshot_options *so, bool force, struct machine *m, struct replayer *rep,
		    const struct evlog_header *h, char *err, size_t errlen)
{
	struct state_extra *extra = malloc(sizeof(*extra));
	struct replay_position pos;
	int code = FTVM_EXIT_FAILURE;
	if (!extra) {
		snprintf(err, errlen, "out of memory");
		return code;
	}
	if (!replayer_position(rep, &pos, err, errlen)) {
		pos.log_config_digest = h->config_digest;
		pos.log_start_lsn = h->start_lsn;
		replay_position_to_extra(&pos, extra);
		if (snapshot_save("replay", so->snapshot, force, m, extra, err, errlen) == 0) {
			fprintf(stderr, "ftvm replay: stopped at icount %llu for the snapshot (next record lsn %llu); "
					"--restore %s replays the rest\n",
				(unsigned long long)machine_icount(m), (unsigned long long)pos.next_lsn, so->snapshot);
			code = FTVM_EXIT_OK;
		}
	}
	free(extra);
	return code;
}

struct replay_cmd {
	struct log_options lo;
	struct snapshot_options so;
	struct replayer_options ro;
	struct evlog_header h;
	struct logfile_reader *log;
	struct replayer *rep;
};

static int replay_options(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen)
{
	struct replay_cmd *r = self;
	int ret = snapshot_options_extract(argc, argv, &r->so, err, errlen);
	if (ret)
		return ret;
	ret = log_options_extract(argc, argv, &r->lo, err, errlen);
	*help = r->lo.help;
	return ret;
}

/* --log is required, the snapshot options go together; --stats ends the command here. */
static int replay_check(void *self, struct vm_command *c, bool *done, char *err, size_t errlen)
{
	struct replay_cmd *r = self;
	(void)c;
	if (!r->lo.log) {
		snprintf(err, errlen, "--log FILE is required");
		return -EINVAL;
	}
	int ret = check_snapshot_options(&r->so, &r->lo, err, errlen);
	if (ret)
		return ret;
	if (!r->lo.stats)
		return 0;
	*done = true;
	return print_stats(r->lo.log);
}

/* The disks (copies of the recording's), the log, checked against this machine, the replayer,
 * and with --restore the snapshot's machine and position in the log. */
static int replay_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct replay_cmd *r = self;

	for (unsigned i = 0; i < c->rw.config.ndisks; i++)
		if (disk_replica_open(c->rw.config.disk_path[i], i, DISK_REPLICA_COPY, &r->ro.disk[i], err, errlen))
			return FTVM_EXIT_FAILURE;
	run_world_release(&c->rw);
	r->ro.console_fd = r->lo.quiet ? -1 : STDOUT_FILENO;
	r->ro.perturb_lsn = r->lo.perturb_lsn;
	if (logfile_open(r->lo.log, &r->log, &r->h, err, errlen))
		return FTVM_EXIT_BAD_LOG;
	uint64_t digest = machine_config_digest(c->m);
	if (digest != r->h.config_digest) {
		struct evlog_header mine = { 0 };
		log_options_header_names(&r->lo, &c->opts, &c->mc, &mine);
		snprintf(err, errlen,
			 "the log was recorded for another configuration: log [%s] digest %016llx, this machine [%s] digest %016llx",
			 r->h.config_summary, (unsigned long long)r->h.config_digest, mine.config_summary,
			 (unsigned long long)digest);
		return FTVM_EXIT_BAD_LOG;
	}
	if (replayer_create(c->m, replay_source_file(r->log), &r->ro, &r->rep)) {
		snprintf(err, errlen, "out of memory");
		return FTVM_EXIT_BAD_LOG;
	}
	if (r->so.restore) {
		int code = resume_from(r->so.restore, c->m, r->rep, &r->h, err, errlen);
		if (code != FTVM_EXIT_OK)
			return code;
	}
	if (r->so.have_at && r->so.snapshot_at <= machine_icount(c->m)) {
		snprintf(err, errlen, "--snapshot-at %llu: the machine is already at icount %llu",
			 (unsigned long long)r->so.snapshot_at, (unsigned long long)machine_icount(c->m));
		return FTVM_EXIT_USAGE;
	}
	return 0;
}

/* There is no live world: a failure is printed here with the exit status it calls for. */
static int replay_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct replay_cmd *r = self;
	char msg[600];
	int status = 0, code;

	icount_t stop_at = r->so.have_at ? r->so.snapshot_at : ICOUNT_MAX;
	enum machine_exit why = machine_run(c->m, replayer_world(r->rep), stop_at, &status);
	if (r->so.have_at && why == MACHINE_EXIT_STOP_ICOUNT) {
		fflush(stdout);
		code = save_cut(&r->so, r->lo.force, c->m, r->rep, &r->h, err, errlen);
		if (code != FTVM_EXIT_OK)
			fprintf(stderr, "ftvm replay: %s\n", err);
		return code;
	}
	enum replay_result res = replayer_finish(r->rep, why, status, msg, sizeof(msg));
	fflush(stdout);
	fprintf(stderr, "ftvm replay: %s\n", msg);
	if (r->so.have_at && res == REPLAY_MATCHED) {
		fprintf(stderr, "ftvm replay: the recording ended at icount %llu, before --snapshot-at %llu: no snapshot written\n",
			(unsigned long long)machine_icount(c->m), (unsigned long long)r->so.snapshot_at);
		return FTVM_EXIT_FAILURE;
	}
	switch (res) {
	case REPLAY_MATCHED: return FTVM_EXIT_OK;
	case REPLAY_DIVERGED: return FTVM_EXIT_DIVERGED;
	case REPLAY_INCOMPLETE: return FTVM_EXIT_INCOMPLETE;
	case REPLAY_BAD_LOG: return FTVM_EXIT_BAD_LOG;
	}
	return FTVM_EXIT_BAD_LOG;
}

static void replay_stop(void *self)
{
	struct replay_cmd *r = self;
	replayer_destroy(r->rep);
	logfile_close_reader(r->log);
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++)
		disk_replica_close(r->ro.disk[i]);
}

static const struct vm_role replay_role = {
	.name = "replay",
	.usage = usage,
	.world = VM_WORLD_CONFIG,
	.options = replay_options,
	.check = replay_check,
	.start = replay_start,
	.run = replay_run,
	.stop = replay_stop,
};

int cmd_replay_main(int argc, char **argv)
{
	struct replay_cmd r = { .ro = { .console_fd = STDOUT_FILENO } };
	return vm_command_main(&replay_role, &r, argc, argv);
}
