/*
 * replayer.c — the replaying world (see replayer.h).
 *
 * The machine asks next_event() at slice boundaries and runs to horizon() in between. The
 * replayer keeps one record of lookahead: horizon() is that record's icount, so the machine stops
 * exactly there. A record whose icount the machine has already passed, a WFI with no record at
 * that icount, or a CHECK that differs are divergences; the first one ends the run (negative
 * return) with its description saved for replayer_finish().
 */
#define DIAG_MODULE "replayer"
#include "replay/replayer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/diag.h"

/* Internal error codes: a divergence, or the log ran out. */
#define ERR_DIVERGED (-EPROTO)
#define ERR_LOG_ENDED (-ENODATA)

struct replayer {
	struct replay_source src;
	struct replayer_options opts;
	struct machine *machine;
	struct evlog_record pending;
	bool have_pending;
	bool source_ended;
	bool saw_end;
	bool perturbed;            /* the test hook has fired */
	struct evlog_end end;
	int failure;               /* first error: ERR_DIVERGED, ERR_LOG_ENDED or a log error */
	char message[512];
	struct evlog_outputs outputs;
	struct replayer_stats stats;
	/* Digest of every record before the lookahead (kind, lsn, icount, payload): a snapshot keeps
	 * it, so a resume proves it skipped exactly the records the snapshot's machine had seen. */
	uint64_t records_digest, lookahead_digest;
	/* The full-memory digest of the latest memory CHECK, while no input has reached the
	 * machine since: the END record right after the final CHECK reuses it. */
	bool full_digest_valid;
	uint64_t full_digest;
	icount_t full_digest_icount;
	uint8_t scratch[EVLOG_MAX_PAYLOAD]; /* perturbed copy of a payload (test hook) */
};

static int file_next(void *ctx, struct evlog_record *rec, char *err, size_t errlen)
{
	return logfile_next(ctx, rec, err, errlen);
}

struct replay_source replay_source_file(struct logfile_reader *reader)
{
	return (struct replay_source){ .next = file_next, .ctx = reader };
}

static int replay_fail(struct replayer *r, int code, const char *fmt, ...) FTVM_PRINTF(3, 4);
static int replay_fail(struct replayer *r, int code, const char *fmt, ...)
{
	if (r->failure == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->message, sizeof(r->message), fmt, ap);
		va_end(ap);
		r->failure = code;
	}
	return r->failure;
}

/* Makes sure a lookahead record is loaded; returns 1, 0 when the log has ended, or an error. */
static int load_pending(struct replayer *r)
{
	char err[256];

	if (r->have_pending)
		return 1;
	if (r->source_ended)
		return 0;
	int ret = r->src.next(r->src.ctx, &r->pending, err, sizeof(err));
	if (ret < 0)
		return replay_fail(r, ret, "%s", err);
	if (ret == 0) {
		r->source_ended = true;
		return 0;
	}
	r->have_pending = true;
	r->records_digest = r->lookahead_digest;
	uint64_t head[4] = { r->pending.kind, r->pending.lsn, r->pending.icount, r->pending.len };
	r->lookahead_digest = XXH3_64bits_withSeed(head, sizeof(head), r->lookahead_digest);
	r->lookahead_digest = XXH3_64bits_withSeed(r->pending.payload, r->pending.len, r->lookahead_digest);
	r->stats.records[r->pending.kind]++;
	r->stats.bytes[r->pending.kind] += EVLOG_RECORD_OVERHEAD + r->pending.len;
	r->stats.last_icount = r->pending.icount;
	r->stats.last_lsn = r->pending.lsn;
	return 1;
}

static const char *output_difference(const struct evlog_outputs *want, const struct evlog_outputs *got)
{
	if (want->console != got->console)
		return "console output";
	if (want->net != got->net)
		return "transmitted frames";
	if (want->disk != got->disk)
		return "disk requests";
	if (want->count != got->count)
		return "number of outputs";
	return NULL;
}

static int verify_check(struct replayer *r, const struct evlog_record *rec)
{
	struct evlog_check want;
	char err[256];

	if (evlog_check_from_record(rec, &want, err, sizeof(err)) < 0)
		return replay_fail(r, -EBADMSG, "%s", err);
	/* One save of the machine gives both digests; the memory one is compared only after the
	 * state and the outputs matched, so the first difference named is the most precise one. */
	uint64_t cpu, full;
	bool with_memory = want.scope & EVLOG_CHECK_MACHINE;
	machine_digests(r->machine, &cpu, with_memory ? &full : NULL);
	if (cpu != want.cpu_digest)
		return replay_fail(r, ERR_DIVERGED,
				   "divergence at icount %llu (CHECK lsn %llu): cpu/device digest recorded %016llx, replayed %016llx",
				   (unsigned long long)rec->icount, (unsigned long long)rec->lsn,
				   (unsigned long long)want.cpu_digest, (unsigned long long)cpu);
	const char *what = output_difference(&want.outputs, &r->outputs);
	if (what)
		return replay_fail(r, ERR_DIVERGED, "divergence at icount %llu (CHECK lsn %llu): %s differ",
				   (unsigned long long)rec->icount, (unsigned long long)rec->lsn, what);
	if (with_memory) {
		if (full != want.machine_digest)
			return replay_fail(r, ERR_DIVERGED,
					   "divergence at icount %llu (CHECK lsn %llu): memory digest recorded %016llx, replayed %016llx",
					   (unsigned long long)rec->icount, (unsigned long long)rec->lsn,
					   (unsigned long long)want.machine_digest, (unsigned long long)full);
		r->stats.machine_checks_verified++;
		r->full_digest_valid = true;
		r->full_digest = full;
		r->full_digest_icount = machine_icount(r->machine);
	}
	r->stats.checks_verified++;
	return 0;
}

/* Test hook: flips the low bit of the record's last payload byte; an event without payload (a
 * write's DISK_DONE) gets its status flipped instead, TIME moves by one tick. */
static void perturb(struct replayer *r, struct vm_event *ev)
{
	if (ev->kind == VM_EV_TIME) {
		ev->time++;
		return;
	}
	if (ev->len == 0) {
		ev->status ^= 1;
		return;
	}
	memcpy(r->scratch, ev->data, ev->len);
	r->scratch[ev->len - 1] ^= 1;
	ev->data = r->scratch;
}

/* A DISK_DIGEST record: the bytes come from the disk's copy, after their digest matched. */
static int disk_digest_event(struct replayer *r, const struct evlog_record *rec, struct vm_event *ev)
{
	struct evlog_disk_digest d;
	struct disk_replica_done done;
	char err[256];

	if (evlog_disk_digest_from_record(rec, &d, err, sizeof(err)) < 0)
		return replay_fail(r, -EBADMSG, "%s", err);
	struct disk_replica *copy = d.disk < MACHINE_MAX_DISKS ? r->opts.disk[d.disk] : NULL;
	if (!copy)
		return replay_fail(r, -EBADMSG,
				   "record lsn %llu (DISK_DIGEST) at icount %llu: disk %u's reads are logged as digests only; "
				   "replaying them needs a copy of that disk as it was when recording started (--disk)",
				   (unsigned long long)rec->lsn, (unsigned long long)rec->icount, d.disk);
	if (disk_replica_take(copy, d.request, &done) < 0)
		return replay_fail(r, ERR_DIVERGED,
				   "divergence at icount %llu (DISK_DIGEST lsn %llu): disk %u request %llu completes, but the replayed guest never submitted it",
				   (unsigned long long)rec->icount, (unsigned long long)rec->lsn, d.disk,
				   (unsigned long long)d.request);
	if (done.shared && done.op == VM_DISK_READ)
		disk_replica_read_shared(copy, &done);
	uint64_t lo = 0, hi = 0;
	if (done.status == VM_DISK_OK && done.op == VM_DISK_READ)
		evlog_disk_data_digest(done.data, done.len, &lo, &hi);
	if (done.status != VM_DISK_OK || done.op != VM_DISK_READ || done.len != d.len || lo != d.digest_lo ||
	    hi != d.digest_hi)
		return replay_fail(r, ERR_DIVERGED,
				   "divergence at icount %llu (DISK_DIGEST lsn %llu): disk %u request %llu: the recorded read of %u bytes "
				   "has digest %016llx%016llx, this node's disk gave %s of %u bytes with digest %016llx%016llx",
				   (unsigned long long)rec->icount, (unsigned long long)rec->lsn, d.disk,
				   (unsigned long long)d.request, d.len, (unsigned long long)d.digest_hi,
				   (unsigned long long)d.digest_lo,
				   done.op != VM_DISK_READ ? "no read" : done.status == VM_DISK_OK ? "a read" : "an I/O error",
				   done.len, (unsigned long long)hi, (unsigned long long)lo);
	*ev = (struct vm_event){ .kind = VM_EV_DISK_DONE, .icount = rec->icount, .device = d.disk,
				 .request = d.request, .status = VM_DISK_OK, .len = done.len, .data = done.data };
	return 0;
}

/* A DISK_DONE record while the disk has a copy: the copy ran the request too; a write or flush
 * that failed on one side only leaves the copy different from the recorded disk. A request the
 * copy never saw (a replay resumed from a snapshot taken while it was in flight) is let pass. */
static int disk_done_on_copy(struct replayer *r, const struct evlog_record *rec, const struct vm_event *ev)
{
	struct disk_replica *copy = ev->device < MACHINE_MAX_DISKS ? r->opts.disk[ev->device] : NULL;
	struct disk_replica_done done;
	if (!copy || disk_replica_take(copy, ev->request, &done) < 0 || done.shared || done.status == ev->status)
		return 0;
	return replay_fail(r, ERR_DIVERGED,
			   "divergence at icount %llu (DISK_DONE lsn %llu): disk %u request %llu ended with status %u when recorded, %u on this disk copy",
			   (unsigned long long)rec->icount, (unsigned long long)rec->lsn, ev->device,
			   (unsigned long long)ev->request, ev->status, done.status);
}

static int rep_next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct replayer *r = ctx;
	char err[256];

	if (r->failure)
		return r->failure;
	for (;;) {
		int ret = load_pending(r);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return replay_fail(r, ERR_LOG_ENDED, "the log ends at icount %llu (lsn %llu) without an END record",
					   (unsigned long long)r->stats.last_icount, (unsigned long long)r->stats.last_lsn);
		struct evlog_record *rec = &r->pending;
		if (rec->icount > now)
			return 0;
		if (rec->icount < now)
			return replay_fail(r, ERR_DIVERGED,
					   "divergence: the machine is at icount %llu, past record lsn %llu (%s) at icount %llu",
					   (unsigned long long)now, (unsigned long long)rec->lsn,
					   evlog_kind_name(rec->kind), (unsigned long long)rec->icount);
		switch (rec->kind) {
		case EVLOG_CHECK:
			ret = verify_check(r, rec);
			if (ret < 0)
				return ret;
			r->have_pending = false;
			continue;
		case EVLOG_END:
			if (evlog_end_from_record(rec, &r->end, err, sizeof(err)) < 0)
				return replay_fail(r, -EBADMSG, "%s", err);
			r->saw_end = true;
			return replay_fail(r, ERR_LOG_ENDED, "the recording ended at icount %llu",
					   (unsigned long long)rec->icount);
		case EVLOG_DISK_DIGEST:
			ret = disk_digest_event(r, rec, ev);
			if (ret < 0)
				return ret;
			break;
		default:
			if (evlog_event_from_record(rec, ev, err, sizeof(err)) < 0)
				return replay_fail(r, -EBADMSG, "%s", err);
			if (rec->kind == EVLOG_DISK_DONE && disk_done_on_copy(r, rec, ev) < 0)
				return r->failure;
			break;
		}
		r->full_digest_valid = false;
		if (r->opts.perturb_lsn && rec->lsn >= r->opts.perturb_lsn && !r->perturbed) {
			perturb(r, ev);
			r->perturbed = true;
			diag_warn("test hook: perturbed input record lsn %llu (%s) at icount %llu",
				 (unsigned long long)rec->lsn, evlog_kind_name(rec->kind),
				 (unsigned long long)rec->icount);
		}
		r->have_pending = false; /* ev->data stays valid until the next load */
		return 1;
	}
}

static icount_t rep_horizon(void *ctx, icount_t now)
{
	struct replayer *r = ctx;
	if (load_pending(r) == 1 && r->pending.icount > now)
		return r->pending.icount;
	/* No record ahead: next_event() will report why at the next boundary. */
	return now + 1;
}

static int rep_idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct replayer *r = ctx;
	int ret = load_pending(r);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return replay_fail(r, ERR_LOG_ENDED,
				   "the log ends at icount %llu (lsn %llu) without an END record, while the guest waits",
				   (unsigned long long)r->stats.last_icount, (unsigned long long)r->stats.last_lsn);
	if (r->pending.icount != now)
		return replay_fail(r, ERR_DIVERGED,
				   "divergence: the guest waits in WFI at icount %llu, but the next record (lsn %llu, %s) is at icount %llu",
				   (unsigned long long)now, (unsigned long long)r->pending.lsn,
				   evlog_kind_name(r->pending.kind), (unsigned long long)r->pending.icount);
	return 0;
}

static void rep_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	struct replayer *r = ctx;
	evlog_outputs_console(&r->outputs, buf, len);
	if (r->opts.console_fd >= 0 && write(r->opts.console_fd, buf, len) < 0)
		r->opts.console_fd = -1;
}

static void rep_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct replayer *r = ctx;
	evlog_outputs_net(&r->outputs, nic, frame, len);
}

static void rep_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct replayer *r = ctx;
	evlog_outputs_disk(&r->outputs, disk, req);
	if (disk < MACHINE_MAX_DISKS && r->opts.disk[disk])
		disk_replica_submit(r->opts.disk[disk], req);
}

static void rep_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	/* The entropy comes from the log. */
}

static const struct vm_world_ops replayer_ops = {
	.console_out = rep_console_out,
	.net_tx = rep_net_tx,
	.disk_submit = rep_disk_submit,
	.rng_request = rep_rng_request,
	.next_event = rep_next_event,
	.horizon = rep_horizon,
	.idle = rep_idle,
};

int replayer_create(struct machine *m, struct replay_source src, const struct replayer_options *opts,
		    struct replayer **out)
{
	struct replayer *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->machine = m;
	r->src = src;
	r->opts = *opts;
	*out = r;
	return 0;
}

void replayer_destroy(struct replayer *r)
{
	free(r);
}

struct vm_world replayer_world(struct replayer *r)
{
	return (struct vm_world){ .ops = &replayer_ops, .ctx = r };
}

static const char *const exit_names[] = { "power-off", "reset", "stop at icount", "error" };

enum replay_result replayer_finish(struct replayer *r, enum machine_exit exit, int status, char *msg, size_t msglen)
{
	/* The machine stopped by itself (power-off, reset): the log's next records must be the
	 * final CHECK and END at this very icount. */
	if (exit != MACHINE_EXIT_ERROR && !r->failure) {
		struct vm_event ev;
		int ret = rep_next_event(r, machine_icount(r->machine), &ev);
		if (ret == 1)
			replay_fail(r, ERR_DIVERGED, "divergence: the machine ended (%s) at icount %llu before input lsn %llu",
				    exit_names[exit], (unsigned long long)machine_icount(r->machine),
				    (unsigned long long)r->stats.last_lsn);
		else if (ret == 0)
			replay_fail(r, ERR_DIVERGED, "divergence: the machine ended (%s) at icount %llu, the log goes on to icount %llu",
				    exit_names[exit], (unsigned long long)machine_icount(r->machine),
				    (unsigned long long)r->pending.icount);
	}
	if (r->failure == ERR_LOG_ENDED && r->saw_end) {
		bool cached = r->full_digest_valid && r->full_digest_icount == machine_icount(r->machine);
		uint64_t full = cached ? r->full_digest : machine_digest(r->machine, true);
		enum machine_exit recorded = (enum machine_exit)r->end.exit;
		bool machine_stopped_same = exit == recorded ||
					    (recorded == MACHINE_EXIT_STOP_ICOUNT && exit == MACHINE_EXIT_ERROR);
		if (!machine_stopped_same || (exit != MACHINE_EXIT_ERROR && status != r->end.status)) {
			snprintf(msg, msglen, "divergence: recorded run ended by %s (status %d), replay by %s (status %d)",
				 exit_names[recorded], r->end.status, exit_names[exit], status);
			return REPLAY_DIVERGED;
		}
		if (full != r->end.machine_digest || r->outputs.count != r->end.outputs) {
			snprintf(msg, msglen, "divergence at the END record: final machine digest or output count differs");
			return REPLAY_DIVERGED;
		}
		snprintf(msg, msglen, "replay matched: %llu records, %llu checks (%llu with memory), ended by %s at icount %llu",
			 (unsigned long long)r->stats.last_lsn, (unsigned long long)r->stats.checks_verified,
			 (unsigned long long)r->stats.machine_checks_verified, exit_names[recorded],
			 (unsigned long long)machine_icount(r->machine));
		return REPLAY_MATCHED;
	}
	snprintf(msg, msglen, "%s", r->message);
	if (r->failure == ERR_LOG_ENDED)
		return REPLAY_INCOMPLETE;
	if (r->failure == ERR_DIVERGED)
		return REPLAY_DIVERGED;
	if (r->failure == 0) {
		snprintf(msg, msglen, "divergence at icount %llu: the machine stopped (%s, status %d) before the log ended",
			 (unsigned long long)machine_icount(r->machine), exit_names[exit], status);
		return REPLAY_DIVERGED;
	}
	return REPLAY_BAD_LOG;
}

const struct replayer_stats *replayer_get_stats(const struct replayer *r)
{
	return &r->stats;
}

/* ---- cut and resume (snapshots) ---- */

int replayer_position(struct replayer *r, struct replay_position *p, char *err, size_t errlen)
{
	icount_t now = machine_icount(r->machine);
	/* Every record at or before `now` has been consumed at the last boundary; the lookahead holds
	 * the first one after it. */
	if (!r->failure && load_pending(r) == 1 && r->pending.icount > now) {
		*p = (struct replay_position){ .next_lsn = r->pending.lsn, .next_icount = r->pending.icount,
					       .records_digest = r->records_digest,
					       .outputs = r->outputs, .checks_verified = r->stats.checks_verified,
					       .machine_checks_verified = r->stats.machine_checks_verified };
		return 0;
	}
	snprintf(err, errlen, "no replay position at icount %llu: %s", (unsigned long long)now,
		 r->failure ? r->message : "the log has no record after it");
	return -EINVAL;
}

int replayer_resume(struct replayer *r, const struct replay_position *p, char *err, size_t errlen)
{
	int ret;
	while ((ret = load_pending(r)) == 1 && r->pending.lsn < p->next_lsn)
		r->have_pending = false;
	if (ret < 0) {
		snprintf(err, errlen, "%s", r->message);
		return ret;
	}
	if (ret == 0 || r->pending.lsn != p->next_lsn || r->pending.icount != p->next_icount) {
		if (ret == 0)
			snprintf(err, errlen, "the log ends at lsn %llu, before lsn %llu where the snapshot resumes",
				 (unsigned long long)r->stats.last_lsn, (unsigned long long)p->next_lsn);
		else
			snprintf(err, errlen, "the snapshot resumes at lsn %llu, icount %llu; the log has lsn %llu at icount %llu",
				 (unsigned long long)p->next_lsn, (unsigned long long)p->next_icount,
				 (unsigned long long)r->pending.lsn, (unsigned long long)r->pending.icount);
		return -EINVAL;
	}
	if (r->records_digest != p->records_digest) {
		snprintf(err, errlen, "the log's records before lsn %llu are not the ones the snapshot was taken on",
			 (unsigned long long)p->next_lsn);
		return -EINVAL;
	}
	if (machine_icount(r->machine) >= p->next_icount) {
		snprintf(err, errlen, "the machine is at icount %llu, not before the next record's icount %llu",
			 (unsigned long long)machine_icount(r->machine), (unsigned long long)p->next_icount);
		return -EINVAL;
	}
	r->outputs = p->outputs;
	r->stats.checks_verified = p->checks_verified;
	r->stats.machine_checks_verified = p->machine_checks_verified;
	return 0;
}
