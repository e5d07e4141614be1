/*
 * recorder.c — the recording world (see recorder.h).
 *
 * At each slice boundary rec_next_event() first appends the CHECK that is due, then asks the live
 * world for inputs: the order at one icount that docs/log-format.md ("Order at one icount") fixes.
 */
#define DIAG_MODULE "recorder"
#include "replay/recorder.h"

#include <errno.h>
#include <stdlib.h>

#include "util/diag.h"

struct recorder {
	struct vm_world live;
	struct recorder_sink sink;
	struct machine *machine;
	enum recorder_disk_reads disk_reads;
	struct shared_reads *shared;  /* RECORDER_READS_SHARED */
	icount_t write_wait_past;     /* of the disk request being submitted */
	icount_t next_cpu_check;
	icount_t next_machine_check;
	struct evlog_outputs outputs;
	struct recorder_stats stats;
	uint8_t payload[EVLOG_MAX_PAYLOAD];
};

static int recorder_append(struct recorder *rec, enum evlog_kind kind, icount_t icount, uint32_t len)
{
	uint64_t lsn;
	int ret = rec->sink.append(rec->sink.ctx, kind, icount, rec->payload, len, &lsn);
	if (ret < 0) {
		diag_error("cannot append %s record at icount %llu: %d", evlog_kind_name(kind),
			  (unsigned long long)icount, ret);
		return ret;
	}
	rec->stats.records[kind]++;
	rec->stats.bytes[kind] += EVLOG_RECORD_OVERHEAD + len;
	return 0;
}

/* Appends a CHECK at `now`; the full machine digest, when computed, is returned in *full. */
static int recorder_check(struct recorder *rec, icount_t now, bool with_machine, uint64_t *full)
{
	struct evlog_check c = { .scope = EVLOG_CHECK_CPU, .outputs = rec->outputs };
	/* One save of the machine gives both digests. */
	machine_digests(rec->machine, &c.cpu_digest, with_machine ? &c.machine_digest : NULL);
	if (with_machine) {
		c.scope |= EVLOG_CHECK_MACHINE;
		if (full)
			*full = c.machine_digest;
	}
	uint32_t len = evlog_payload_from_check(&c, rec->payload, sizeof(rec->payload));
	return recorder_append(rec, EVLOG_CHECK, now, len);
}

static void rec_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	struct recorder *rec = ctx;
	evlog_outputs_console(&rec->outputs, buf, len);
	rec->live.ops->console_out(rec->live.ctx, buf, len);
}

static void rec_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct recorder *rec = ctx;
	evlog_outputs_net(&rec->outputs, nic, frame, len);
	rec->live.ops->net_tx(rec->live.ctx, nic, frame, len);
}

static void rec_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct recorder *rec = ctx;
	evlog_outputs_disk(&rec->outputs, disk, req);
	rec->write_wait_past = rec->shared ? shared_reads_submit(rec->shared, disk, req) : 0;
	/* A held write waits for the backup to pass that icount: make sure the log gets there even
	 * if the guest only waits for the write (a CHECK at the next slice boundary). */
	if (rec->write_wait_past) {
		icount_t soon = machine_icount(rec->machine) + 1;
		if (soon < rec->next_cpu_check)
			rec->next_cpu_check = soon;
	}
	rec->live.ops->disk_submit(rec->live.ctx, disk, req);
	rec->write_wait_past = 0;
}

static void rec_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct recorder *rec = ctx;
	rec->live.ops->rng_request(rec->live.ctx, dev, len);
}

static int rec_next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct recorder *rec = ctx;
	int ret;

	if (now >= rec->next_cpu_check) {
		bool with_machine = now >= rec->next_machine_check;
		ret = recorder_check(rec, now, with_machine, NULL);
		if (ret < 0)
			return ret;
		rec->next_cpu_check = (now / RECORDER_CHECK_CPU_EVERY + 1) * RECORDER_CHECK_CPU_EVERY;
		if (with_machine)
			rec->next_machine_check = (now / RECORDER_CHECK_MACHINE_EVERY + 1) * RECORDER_CHECK_MACHINE_EVERY;
	}
	ret = rec->live.ops->next_event(rec->live.ctx, now, ev);
	if (ret <= 0)
		return ret;
	/* The machine gets the bytes read either way; only the log leaves them out. */
	enum evlog_kind kind = (enum evlog_kind)ev->kind;
	uint32_t len;
	bool read_ok = ev->kind == VM_EV_DISK_DONE && ev->status == VM_DISK_OK && ev->len;
	bool digest = rec->disk_reads == RECORDER_READS_DIGEST && read_ok;
	if (rec->shared && ev->kind == VM_EV_DISK_DONE)
		digest = shared_reads_complete(rec->shared, ev->device, ev->request, read_ok, now);
	if (digest) {
		kind = EVLOG_DISK_DIGEST;
		len = evlog_payload_from_disk_read(ev, rec->payload, sizeof(rec->payload));
	} else {
		len = evlog_payload_from_event(ev, rec->payload, sizeof(rec->payload));
	}
	if (len == 0) {
		diag_error("event kind %d at icount %llu does not fit a log record", ev->kind, (unsigned long long)now);
		return -EMSGSIZE;
	}
	ret = recorder_append(rec, kind, now, len);
	return ret < 0 ? ret : 1;
}

static icount_t rec_horizon(void *ctx, icount_t now)
{
	struct recorder *rec = ctx;
	icount_t h = rec->live.ops->horizon(rec->live.ctx, now);
	return h < rec->next_cpu_check ? h : rec->next_cpu_check;
}

static int rec_idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct recorder *rec = ctx;
	return rec->live.ops->idle(rec->live.ctx, now, deadline, deadline_time);
}

static const struct vm_world_ops recorder_ops = {
	.console_out = rec_console_out,
	.net_tx = rec_net_tx,
	.disk_submit = rec_disk_submit,
	.rng_request = rec_rng_request,
	.next_event = rec_next_event,
	.horizon = rec_horizon,
	.idle = rec_idle,
};

int recorder_create(struct machine *m, struct vm_world live, struct recorder_sink sink, struct recorder **out)
{
	struct recorder *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	rec->machine = m;
	rec->live = live;
	rec->sink = sink;
	rec->next_cpu_check = RECORDER_CHECK_CPU_EVERY;
	rec->next_machine_check = RECORDER_CHECK_MACHINE_EVERY;
	*out = rec;
	return 0;
}

void recorder_destroy(struct recorder *rec)
{
	if (rec)
		shared_reads_destroy(rec->shared);
	free(rec);
}

int recorder_set_disk_reads(struct recorder *rec, enum recorder_disk_reads mode)
{
	if (mode == RECORDER_READS_SHARED && !rec->shared) {
		int ret = shared_reads_create(&rec->shared);
		if (ret < 0)
			return ret;
	}
	rec->disk_reads = mode;
	return 0;
}

icount_t recorder_write_wait_past(const struct recorder *rec)
{
	return rec->write_wait_past;
}

void recorder_backup_replayed(struct recorder *rec, icount_t backup_icount)
{
	if (rec->shared)
		shared_reads_replayed(rec->shared, backup_icount);
}

const struct shared_reads_stats *recorder_shared_reads_stats(const struct recorder *rec)
{
	return rec->shared ? shared_reads_get_stats(rec->shared) : NULL;
}

struct vm_world recorder_world(struct recorder *rec)
{
	return (struct vm_world){ .ops = &recorder_ops, .ctx = rec };
}

int recorder_finish(struct recorder *rec, enum machine_exit exit, int status)
{
	icount_t now = machine_icount(rec->machine);
	uint64_t full = 0;
	int ret = recorder_check(rec, now, true, &full);
	if (ret < 0)
		return ret;
	/* Nothing runs between the final CHECK and END: the same digest serves both. */
	struct evlog_end e = { .exit = (uint32_t)exit, .status = status, .machine_digest = full,
			       .outputs = rec->outputs.count };
	uint32_t len = evlog_payload_from_end(&e, rec->payload, sizeof(rec->payload));
	return recorder_append(rec, EVLOG_END, now, len);
}

const struct recorder_stats *recorder_get_stats(const struct recorder *rec)
{
	return &rec->stats;
}

const struct evlog_outputs *recorder_outputs(const struct recorder *rec)
{
	return &rec->outputs;
}
