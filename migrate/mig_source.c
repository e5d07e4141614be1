/*
 * mig_source.c — pre-copy live migration, the sending side (see mig_source.h for the steps).
 *
 * Messages are built in one buffer of MIG_MAX_MESSAGE bytes and queued on the channel with
 * channel_send_wait(), which blocks while the channel's ring is full: the link's pace is the
 * sender's. A round ends by waiting for the destination's ACK of its last message, so a round's
 * time covers the bytes crossing the link and being applied, and the measured rate is the one
 * the stop-and-copy will see. Guest RAM is read while the vCPU runs: a page changed during its
 * copy is marked dirty again and goes in the next round (tracking started before round 0); those
 * reads, racy by design, are util/ram_pages.h's, which ThreadSanitizer does not instrument.
 */
#define DIAG_MODULE "migrate"
#include "migrate/mig_source.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/arbiter.h"
#include "logchannel/channel.h"
#include "migrate/mig_converge.h"
#include "migrate/mig_disks.h"
#include "migrate/mig_frames.h"
#include "migrate/mig_stream.h"
#include "migrate/mig_test_hook.h"
#include "util/byteorder.h"
#include "util/diag.h"
#include "util/ram_pages.h"
#include "util/time.h"
#include "vm/state_format.h"

/* Channel settings of a migration: a small ring, so the link's rate shows at once. */
#define MIG_BUFFER_BYTES (4u << 20)
#define MIG_SEND_TIMEOUT_MS 10000
#define MIG_ROUND_ACK_TIMEOUT_MS 60000
#define MIG_HANDOVER_ACK_TIMEOUT_MS 5000
/* Decided epochs read from the arbiter area to see whether this copy is stale. */
#define MIG_ARBITER_HISTORY 32
/* Auto-converge: the throttle's steps, % of wall time the vCPU is held; the last is the most. A
 * Linux guest dirties some pages however slowed (timers, the network stack), so the steps grow
 * finer near the end, as QEMU's auto-converge does up to 99 %. */
static const unsigned throttle_steps[] = { 20, 40, 60, 80, 90, 95, 99 };
#define MIG_THROTTLE_MAX 99u
/* The throttle's period: held for its share of each, so the guest's timers never starve long. */
#define MIG_THROTTLE_PERIOD_NS (50ull * 1000 * 1000)

struct sender {
	struct mig_job *job;
	struct machine *m;
	struct channel *ch;
	uint64_t lsn;                 /* of the next message */
	uint8_t *msg;                 /* MIG_MAX_MESSAGE bytes: header + body being built */
	size_t body;                  /* body bytes so far */
	unsigned kind;
	uint32_t round;
	const uint8_t *ram;
	size_t ram_pages;
	uint64_t *bitmap;             /* the pages the next round sends */
	uint64_t *fresh;              /* a collection, before it joins bitmap */
	uint64_t *touched;            /* pages the guest has touched: backed at round 0, or dirtied since */
	size_t words;
	bool paused;                  /* this thread holds the vCPU */
	bool tracking;
	uint64_t start_ns, sent_bytes, round_pages;
	uint64_t round_skipped;         /* pages of this round left to the next, written again (written_again()) */
	pthread_mutex_t throttle_lock;  /* throttle, throttle_stop */
	pthread_cond_t throttle_wake;   /* throttle_stop set: the throttle thread's sleeps end at once */
	unsigned throttle;              /* % of wall time the vCPU is held */
	bool throttle_stop;
	pthread_t throttler;
	bool throttler_started;
	struct mig_disks *disks;        /* copy_storage: the disks' readers and their dirty blocks */
	uint64_t disk_left;             /* dirty disk bytes at the last look */
	struct arbiter *arb;            /* the VM's arbiter area (a migration that records its hand-over) */
	unsigned dest_node;             /* the node id the destination claims the new epoch as */
	bool complete_sent;             /* from here the destination may hold the whole state */
	struct mig_stamps stamps;       /* the stop-and-copy's steps (FTVM_DIAG=info) */
	struct machine_state *scratch;  /* the final state, allocated before the pause (state_format.h) */
	struct mig_converge conv;       /* the figures the stop decision weighs (mig_converge.h) */
	uint64_t held_since_ns;         /* when this thread's hold of the vCPU took effect */
	uint64_t pace_due_ns;           /* --bandwidth: when the bytes sent so far have crossed */
	uint64_t held_wall_ns;          /* the wall clock at the stop-and-copy's hold, printed after it */
};

static void set_phase(struct sender *s, const char *phase)
{
	pthread_mutex_lock(&s->job->lock);
	snprintf(s->job->stats.phase, sizeof(s->job->stats.phase), "%s", phase);
	pthread_mutex_unlock(&s->job->lock);
}

static int fail(struct sender *s, int ret, const char *fmt, ...) FTVM_PRINTF(3, 4);
static int fail(struct sender *s, int ret, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&s->job->lock);
	if (!s->job->stats.error[0]) {
		va_start(ap, fmt);
		vsnprintf(s->job->stats.error, sizeof(s->job->stats.error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->job->lock);
	return ret;
}

/* Why the channel failed, or the errno's text. */
static const char *channel_why(struct sender *s, int ret)
{
	if (s->ch && channel_state(s->ch) != CHANNEL_UP)
		return channel_error(s->ch);
	return strerror(-ret);
}

static int hold(struct sender *s)
{
	int ret = machine_pause(s->m);
	if (ret)
		return fail(s, ret, "cannot hold the vCPU: %s", strerror(-ret));
	s->paused = true;
	return 0;
}

static void release(struct sender *s)
{
	if (s->paused)
		machine_resume(s->m);
	s->paused = false;
}

/* The throttle thread sleeps @ns, under throttle_lock, or less once it is told to stop. */
static void throttle_sleep(struct sender *s, uint64_t ns)
{
	struct timespec until = time_mono_timespec(time_mono_ns() + ns);
	while (!s->throttle_stop && pthread_cond_timedwait(&s->throttle_wake, &s->throttle_lock, &until) == 0)
		;
}

/*
 * Auto-converge: a thread of its own holds the vCPU for throttle % of every period, whatever the
 * sender is doing (waiting for the link included). Wall time only: the guest sees time pass, as
 * on a busy host, and nothing else. Told to stop, it lets go at once: the stop-and-copy takes
 * its own hold first (pauses nest), so a guest held by the throttle stays held into the pause
 * and dirties nothing after the last look.
 */
static void *throttle_thread(void *arg)
{
	struct sender *s = arg;
	pthread_mutex_lock(&s->throttle_lock);
	while (!s->throttle_stop) {
		uint64_t held = MIG_THROTTLE_PERIOD_NS * s->throttle / 100;
		bool paused = false;
		if (held) {
			pthread_mutex_unlock(&s->throttle_lock);
			paused = machine_pause(s->m) == 0;
			pthread_mutex_lock(&s->throttle_lock);
		}
		if (paused) {
			throttle_sleep(s, held);
			machine_resume(s->m);
		} else {
			held = 0;
		}
		throttle_sleep(s, MIG_THROTTLE_PERIOD_NS - held);
	}
	pthread_mutex_unlock(&s->throttle_lock);
	return NULL;
}

static void set_throttle(struct sender *s, unsigned pct)
{
	pthread_mutex_lock(&s->throttle_lock);
	s->throttle = pct;
	pthread_mutex_unlock(&s->throttle_lock);
}

static void stop_throttle(struct sender *s)
{
	if (!s->throttler_started)
		return;
	pthread_mutex_lock(&s->throttle_lock);
	s->throttle_stop = true;
	pthread_cond_signal(&s->throttle_wake);
	pthread_mutex_unlock(&s->throttle_lock);
	pthread_join(s->throttler, NULL);
	s->throttler_started = false;
}

/* The auto-converge step after pct. */
static unsigned next_throttle(unsigned pct)
{
	for (size_t i = 0; i < sizeof(throttle_steps) / sizeof(throttle_steps[0]); i++)
		if (throttle_steps[i] > pct)
			return throttle_steps[i];
	return MIG_THROTTLE_MAX;
}

/*
 * --bandwidth: sleep until a message of @len bytes, sent now, has crossed a link of that rate.
 * Time spent idle (waiting for an ACK, collecting) earns no credit: a link left idle is not
 * faster afterwards, so every round, and the stop-and-copy, measures and gets the capped rate.
 */
static void pace(struct sender *s, size_t len)
{
	uint64_t mbit = s->job->cfg.bandwidth_mbit;
	if (!mbit)
		return;
	uint64_t now = time_mono_ns();
	if (s->pace_due_ns < now)
		s->pace_due_ns = now;
	s->pace_due_ns += (uint64_t)len * 8 * 1000 / mbit; /* bits / (Mbit/s) in us -> ns */
	if (s->pace_due_ns > now) {
		uint64_t d = s->pace_due_ns - now;
		struct timespec ts = { .tv_sec = (time_t)(d / 1000000000ull), .tv_nsec = (long)(d % 1000000000ull) };
		nanosleep(&ts, NULL);
	}
}

static void begin(struct sender *s, unsigned kind)
{
	s->kind = kind;
	s->body = 0;
}

/* Sends the message being built (if it has a body, or always when @empty_ok). */
static int flush(struct sender *s, bool empty_ok)
{
	if (!s->body && !empty_ok)
		return 0;
	mig_hdr_encode(s->msg, s->kind, s->round, (uint32_t)s->body);
	size_t len = MIG_HDR_SIZE + s->body;
	int ret = channel_send_wait(s->ch, s->lsn, s->msg, len, MIG_SEND_TIMEOUT_MS);
	if (ret)
		return fail(s, ret, "sending %s to %s: %s", mig_kind_name(s->kind), s->job->cfg.to,
			    channel_why(s, ret));
	s->lsn++;
	s->sent_bytes += len;
	s->body = 0;
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.data_transferred = s->sent_bytes;
	pthread_mutex_unlock(&s->job->lock);
	pace(s, len);
	return 0;
}

/* Appends a RAM section of pages [first, first + count) to a PAGES message. */
static int add_run(struct sender *s, size_t first, size_t count)
{
	while (count) {
		uint32_t n = count > STATE_RAM_RUN_MAX ? STATE_RAM_RUN_MAX : (uint32_t)count;
		if (s->body + STATE_RAM_SECTION_SIZE(n) > MIG_MAX_BODY) {
			int ret = flush(s, false);
			if (ret)
				return ret;
		}
		/* Read beside the running vCPU (the final round's with it held): racy by design. */
		uint8_t *sec = s->msg + MIG_HDR_SIZE + s->body;
		ram_copy_racy(sec + STATE_RAM_SECTION_DATA, s->ram + first * RAM_PAGE_SIZE, (size_t)n * RAM_PAGE_SIZE);
		s->body += state_ram_section_seal(sec, first, n);
		first += n;
		count -= n;
		s->round_pages += n;
		pthread_mutex_lock(&s->job->lock);
		s->job->stats.memory_processed += (uint64_t)n * RAM_PAGE_SIZE;
		pthread_mutex_unlock(&s->job->lock);
	}
	return 0;
}

/* mig_disk_sink: disk sections go into BLOCKS messages. */
static uint8_t *disk_room(void *ctx, size_t need)
{
	struct sender *s = ctx;
	if (s->body + need > MIG_MAX_BODY && flush(s, false))
		return NULL;
	return s->msg + MIG_HDR_SIZE + s->body;
}

static int disk_used(void *ctx, size_t len, uint64_t disk_bytes)
{
	struct sender *s = ctx;
	s->body += len;
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.disk_processed += disk_bytes;
	pthread_mutex_unlock(&s->job->lock);
	return 0;
}

/* The disk blocks of a round (all of every disk in round 0), as BLOCKS messages. */
static int round_disks(struct sender *s, bool all)
{
	if (!s->disks)
		return 0;
	struct mig_disk_sink sink = { .room = disk_room, .used = disk_used, .ctx = s };
	begin(s, MIG_BLOCKS);
	int ret = mig_disks_send(s->disks, all, &sink);
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.disk_digested = mig_disks_digested(s->disks);
	pthread_mutex_unlock(&s->job->lock);
	if (ret && !s->job->stats.error[0])
		fail(s, ret, "copying the disks: %s", strerror(-ret));
	return ret ? ret : flush(s, false);
}

/* Sends, in runs, the pages of [first, first + count) that want() picks. */
static int send_picked(struct sender *s, size_t first, size_t count, bool (*want)(struct sender *s, size_t p))
{
	size_t run = 0;
	for (size_t p = first; p < first + count; p++) {
		if (want(s, p)) {
			run++;
			continue;
		}
		int ret = run ? add_run(s, p - run, run) : 0;
		run = 0;
		if (ret)
			return ret;
	}
	return run ? add_run(s, first + count - run, run) : 0;
}

/* A page the guest wrote again since the last look goes in the next round (or the stop-and-copy,
 * with the vCPU held, where nothing is marked): sending it now too would send it twice. */
static bool written_again(struct sender *s, size_t p)
{
	if (!machine_dirty_marked_racy(s->m, p))
		return false;
	s->round_skipped++;
	return true;
}

static bool is_nonzero(struct sender *s, size_t p)
{
	return !written_again(s, p) && !ram_page_zero_racy(s->ram + p * RAM_PAGE_SIZE);
}

static bool is_dirty(struct sender *s, size_t p)
{
	return (s->bitmap[p / 64] >> (p % 64) & 1) && !written_again(s, p);
}

/* Round 0: every backed page that is not all zeros (the destination's RAM starts all zeros). */
static int round0_pages(void *ctx, size_t first, size_t count, bool touched)
{
	struct sender *s = ctx;
	if (!touched)
		return 0;
	for (size_t p = first; p < first + count; p++)
		s->touched[p / 64] |= 1ull << (p % 64);
	return send_picked(s, first, count, is_nonzero);
}

/* A later round: the pages of the bitmap, zeros included; then the bitmap is empty. */
static int round_dirty(struct sender *s)
{
	int ret = send_picked(s, 0, s->ram_pages, is_dirty);
	memset(s->bitmap, 0, s->words * sizeof(*s->bitmap));
	return ret;
}

/*
 * Adds the pages dirtied since the last look to the bitmap of pages to send (the vCPU held by
 * the caller): the pages not yet sent stay in it. Returns how many it holds.
 */
static long collect(struct sender *s)
{
	long n = machine_dirty_collect(s->m, s->fresh, s->words);
	if (n < 0)
		return fail(s, (int)n, "cannot collect dirty pages: %s", strerror((int)-n));
	long total = 0;
	uint64_t touched = 0;
	for (size_t i = 0; i < s->words; i++) {
		s->bitmap[i] |= s->fresh[i];
		s->touched[i] |= s->fresh[i];
		total += __builtin_popcountll(s->bitmap[i]);
		touched += (uint64_t)__builtin_popcountll(s->touched[i]);
	}
	s->disk_left = s->disks ? mig_disks_collect(s->disks) : 0;
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.memory_touched = touched * RAM_PAGE_SIZE;
	pthread_mutex_unlock(&s->job->lock);
	return total;
}

/* Waits for the destination to confirm every message sent so far. */
static int confirmed(struct sender *s, int timeout_ms, const char *what)
{
	int ret = channel_wait_acked(s->ch, s->lsn - 1, timeout_ms);
	if (ret)
		return fail(s, ret, "waiting for the destination to confirm %s: %s", what,
			    ret == -ETIMEDOUT ? "no confirmation in time" : channel_why(s, ret));
	return 0;
}

/* confirmed(), timing the wait from the moment all of it was written to the socket: the
 * destination applying what it still holds and the confirmation's trip back, a sample for the
 * stop decision (mig_converge_confirmed(); the drain before it is the link's, which a round's
 * rate already counts). */
static int confirmed_timed(struct sender *s, int timeout_ms, const char *what)
{
	uint64_t written = channel_flush(s->ch, timeout_ms) == 0 ? time_mono_ns() : 0;
	int ret = confirmed(s, timeout_ms, what);
	if (!ret && written)
		mig_converge_confirmed(&s->conv, time_mono_ns() - written);
	return ret;
}

/* A state sink that keeps nothing: the encoder's own count (state_stats.bytes) is what is wanted. */
static int discard(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return 0;
}

/*
 * The stop-and-copy's device state, measured with the vCPU held: its size (the state without
 * pages: the empty bitmap of a tracking just started) and the time its encoding takes. The first
 * encoding fills the scratch state the final one reuses, so the second is the one timed.
 */
static int measure_state(struct sender *s)
{
	char why[512];
	for (int i = 0; i < 2; i++) {
		struct state_stats st;
		uint64_t t0 = time_mono_ns();
		int ret = state_encode_pages(s->m, (struct state_sink){ .write = discard }, s->bitmap, s->scratch, &st,
					     why, sizeof(why));
		if (ret)
			return fail(s, ret, "%s", why);
		s->conv.encode_ns = time_mono_ns() - t0;
		/* Each STATE message adds its header. */
		s->conv.state_bytes = st.bytes + (st.bytes / MIG_MAX_BODY + 2) * MIG_HDR_SIZE + MIG_COMPLETE_SIZE;
	}
	return 0;
}

static int send_start(struct sender *s)
{
	int ret = hold(s);
	if (ret)
		return ret;
	ret = machine_dirty_start(s->m);
	int dret = s->disks ? mig_disks_track(s->disks) : 0;
	int sret = !ret && !dret ? measure_state(s) : 0;
	release(s);
	if (ret)
		return fail(s, ret, "cannot start dirty-page tracking: %s", strerror(-ret));
	if (dret)
		return fail(s, dret, "cannot start dirty-block tracking: %s", strerror(-dret));
	s->tracking = true;
	if (sret)
		return sret;
	begin(s, MIG_START);
	uint8_t *b = s->msg + MIG_HDR_SIZE;
	put_le64(b, s->job->cfg.epoch);
	put_le64(b + 8, (uint64_t)s->ram_pages * RAM_PAGE_SIZE);
	put_le32(b + 16, (s->job->cfg.clone ? MIG_FLAG_CLONE : 0) | (s->disks ? MIG_FLAG_STORAGE : 0) |
				 (s->disks && mig_disks_resyncing(s->disks) ? MIG_FLAG_RESYNC : 0) |
				 (s->arb ? MIG_FLAG_ARBITER : 0));
	put_le32(b + 20, s->arb ? s->dest_node : 0);
	size_t config_at = MIG_START_FIXED;
	if (s->arb) {
		struct arbiter_info info;
		arbiter_get_info(s->arb, &info);
		memcpy(b + config_at, info.area_id, ARBITER_AREA_ID_LEN);
		config_at += ARBITER_AREA_ID_LEN;
	}
	int n = state_config_section(s->m, b + config_at, MIG_MAX_BODY - config_at);
	if (n < 0)
		return fail(s, n, "cannot encode the configuration: %s", strerror(-n));
	s->body = config_at + (size_t)n;
	ret = flush(s, true);
	if (!ret && s->disks) {
		begin(s, MIG_DISKS);
		s->body = mig_disks_describe(s->disks, b);
		ret = flush(s, true);
	}
	/* The destination checks the configuration first: its refusal, naming the difference, must
	 * come back before pages flood a connection it is about to close. Its ACK, for a message of a
	 * few KB, times a confirmation with no backlog behind it. */
	return ret ? ret : confirmed_timed(s, MIG_SEND_TIMEOUT_MS, "the start of the stream");
}

/* The state sink of the stop-and-copy: STATE messages. */
static int state_write(void *ctx, const void *buf, size_t len)
{
	struct sender *s = ctx;
	const uint8_t *p = buf;
	while (len) {
		size_t room = MIG_MAX_BODY - s->body;
		size_t n = len < room ? len : room;
		memcpy(s->msg + MIG_HDR_SIZE + s->body, p, n);
		s->body += n;
		p += n;
		len -= n;
		if (s->body == MIG_MAX_BODY) {
			int ret = flush(s, false);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static void set_round_stats(struct sender *s, long dirty, uint64_t round_ns, uint64_t round_bytes,
			    const struct mig_converge_verdict *v)
{
	pthread_mutex_lock(&s->job->lock);
	struct mig_stats *st = &s->job->stats;
	st->iteration = s->round;
	st->memory_remaining = (uint64_t)dirty * RAM_PAGE_SIZE;
	st->disk_remaining = s->disk_left;
	st->dirty_rate = round_ns ? (uint64_t)dirty * 1000000000ull / round_ns : 0;
	st->link_bps = round_ns ? round_bytes * 1000000000ull / round_ns : 0;
	st->expected_downtime_ms = (v->expected_us + 999) / 1000;
	st->expected_fixed_ms = (v->fixed_us + 999) / 1000;
	st->throttle_pct = s->throttle;
	st->total_time_ms = (time_mono_ns() - s->start_ns) / 1000000;
	pthread_mutex_unlock(&s->job->lock);
}

/* Steps 2-4: rounds until the rest fits the downtime. 1: converged, 0 never (errors < 0). */
static int precopy(struct sender *s)
{
	const struct mig_source_config *cfg = &s->job->cfg;
	size_t ram_size;
	s->ram = machine_ram_const(s->m, &ram_size);
	set_phase(s, "precopy");
	for (s->round = 0;; s->round++) {
		uint64_t t0 = time_mono_ns(), b0 = s->sent_bytes;
		if (atomic_load(&s->job->cancel))
			return fail(s, -ECANCELED, "cancelled");
		s->round_pages = s->round_skipped = 0;
		begin(s, MIG_PAGES);
		int ret = s->round == 0 ? ram_pages_walk(s->ram, ram_size, round0_pages, s) : round_dirty(s);
		if (!ret)
			ret = flush(s, false);
		if (!ret)
			ret = round_disks(s, s->round == 0);
		if (!ret && s->sent_bytes > b0)
			ret = confirmed_timed(s, MIG_ROUND_ACK_TIMEOUT_MS, "a round of pages");
		if (ret)
			return ret;
		uint64_t now = time_mono_ns(), dt = now - t0, bytes = s->sent_bytes - b0;
		/* The look is taken with the vCPU held, and when the rest fits it stays held into the
		 * stop-and-copy: nothing is dirtied between the last look and the pause. */
		ret = hold(s);
		if (ret)
			return ret;
		s->held_since_ns = time_mono_ns();
		long dirty = collect(s);
		if (dirty < 0) {
			release(s);
			return (int)dirty;
		}
		mig_converge_round(&s->conv, bytes, dt, s->held_since_ns - now);
		uint64_t rate = dt ? bytes * 1000000000ull / dt : 0;
		uint64_t left = (uint64_t)dirty * RAM_PAGE_SIZE + s->disk_left;
		struct mig_converge_verdict v = mig_converge_judge(&s->conv, left, cfg->downtime_ms);
		/* A resync's round 0 is never the last: the spare judges its digests when a later round
		 * begins, and a refusal then comes while the guest runs, not in the stop-and-copy. */
		bool judged = s->round > 0 || !s->disks || !mig_disks_resyncing(s->disks);
		bool go = judged && v.go;
		if (!go)
			release(s);
		set_round_stats(s, dirty, dt, bytes, &v);
		diag_info("round %u: %llu pages in %.1f ms (%.1f MB/s), %llu left for the next (written again), %ld "
			  "dirty pages, %llu dirty disk bytes, throttle %u%%; a stop now: %.1f ms expected (%.1f fixed: "
			  "hold, state, confirmation) at %.1f MB/s",
			  s->round, (unsigned long long)s->round_pages, dt / 1e6, rate / 1e6,
			  (unsigned long long)s->round_skipped, dirty,
			  (unsigned long long)s->disk_left, s->throttle, v.expected_us / 1e3, v.fixed_us / 1e3,
			  v.rate / 1e6);
		/* The whole pause is expected to fit the target (mig_converge.h). */
		if (go) {
			if (v.fixed_us > (uint64_t)cfg->downtime_ms * 1000)
				diag_warn("the pause's fixed costs alone (%.1f ms: holding the vCPU, the device state, the "
					  "confirmation) exceed the downtime target of %u ms", v.fixed_us / 1e3,
					  cfg->downtime_ms);
			return 1;
		}
		if (s->round + 1 >= cfg->max_rounds)
			return fail(s, -ETIME, "no convergence after %u rounds: the guest dirties %llu pages/s, the "
					       "link carries %.1f MB/s (throttle %u%%)",
				    cfg->max_rounds, (unsigned long long)(dt ? (uint64_t)dirty * 1000000000ull / dt : 0),
				    rate / 1e6, s->throttle);
		/* The guest dirties faster than half the link drains: slow the vCPU one step more. */
		if (s->round >= 1 && left * 2 > bytes && s->throttle < MIG_THROTTLE_MAX) {
			set_throttle(s, next_throttle(s->throttle));
			diag_info("auto-converge: vCPU held %u%% of the time", s->throttle);
		}
	}
}

/* Steps 5 and 6: the vCPU stays held from here. 0: the destination confirmed the whole state. */
static int stop_and_copy(struct sender *s, uint64_t *held_at)
{
	const struct mig_source_config *cfg = &s->job->cfg;
	set_phase(s, "stop-and-copy");
	int ret = 0;
	if (!s->paused) { /* else held since the pre-copy's last look */
		mig_stamp(&s->stamps, "ask");
		ret = hold(s);
		if (ret)
			return ret;
		s->held_since_ns = time_mono_ns();
	}
	*held_at = s->held_since_ns;
	/* The wall clock at that moment, for the bench's comparison with other systems. */
	s->held_wall_ns = time_wall_ns() - (time_mono_ns() - s->held_since_ns);
	mig_stamp(&s->stamps, "held");
	stop_throttle(s);
	if (cfg->held) {
		char why[256];
		ret = cfg->held(cfg->commit_ctx, why, sizeof(why));
		if (ret)
			return fail(s, ret, "%s", why);
	}
	if (cfg->world)
		world_live_drain_disks(cfg->world);
	long dirty = collect(s);
	mig_stamp(&s->stamps, "collected");
	if (dirty < 0)
		return (int)dirty;
	s->round++;
	uint64_t disk_last = s->disk_left;
	ret = round_disks(s, false);
	if (ret)
		return ret;
	mig_stamp(&s->stamps, "disks");
	begin(s, MIG_STATE);
	struct state_stats st;
	char why[512];
	ret = state_encode_pages(s->m, (struct state_sink){ .write = state_write, .ctx = s }, s->bitmap, s->scratch, &st,
				 why, sizeof(why));
	if (ret)
		return s->job->stats.error[0] ? ret : fail(s, ret, "%s", why);
	ret = flush(s, false);
	if (ret)
		return ret;
	mig_stamp(&s->stamps, "state");
	begin(s, MIG_COMPLETE);
	put_le64(s->msg + MIG_HDR_SIZE, st.bytes);
	put_le64(s->msg + MIG_HDR_SIZE + 8, s->round);
	s->body = MIG_COMPLETE_SIZE;
	s->complete_sent = true;
	ret = flush(s, true);
	mig_stamp(&s->stamps, "complete");
	/* Written out: the source's part of the pause ends here (the ACK comes later anyway). */
	if (!ret && channel_flush(s->ch, MIG_SEND_TIMEOUT_MS) == 0) {
		mig_stamp(&s->stamps, "complete-sent");
		pthread_mutex_lock(&s->job->lock);
		s->job->stats.downtime_sent_us = (time_mono_ns() - *held_at) / 1000;
		pthread_mutex_unlock(&s->job->lock);
	}
	mig_test_stall("source-complete");
	if (!ret)
		ret = confirmed(s, MIG_ROUND_ACK_TIMEOUT_MS, "the whole state");
	mig_stamp(&s->stamps, "complete-acked");
	diag_info("stop-and-copy: %ld pages (%llu disk bytes) and a state of %llu bytes", dirty,
		  (unsigned long long)disk_last, (unsigned long long)st.bytes);
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.memory_processed += (uint64_t)dirty * RAM_PAGE_SIZE;
	s->job->stats.memory_remaining = 0;
	s->job->stats.disk_remaining = 0;
	pthread_mutex_unlock(&s->job->lock);
	return ret;
}

/* Before the hand-over: tell the destination (best effort), stop tracking, let the vCPU go. */
static void give_up(struct sender *s, bool cancel)
{
	if (cancel && s->ch && channel_state(s->ch) == CHANNEL_UP) {
		begin(s, MIG_CANCEL);
		int n = snprintf((char *)s->msg + MIG_HDR_SIZE, MIG_CANCEL_MAX, "%s", s->job->stats.error);
		s->body = n < 0 ? 0 : (size_t)n >= MIG_CANCEL_MAX ? MIG_CANCEL_MAX - 1 : (size_t)n;
		if (flush(s, true) == 0 && channel_flush(s->ch, 1000) != 0)
			diag_debug("CANCEL not flushed");
	}
	if (s->tracking) {
		bool was = s->paused;
		if (was || hold(s) == 0) {
			machine_dirty_stop(s->m);
			if (!was)
				release(s);
		}
		s->tracking = false;
	}
	release(s);
}

int mig_arbiter_open(const struct mig_arbiter *a, const char *vm, struct arbiter **out, char *err, size_t errlen)
{
	char aerr[ARBITER_ERR_MAX];
	struct arbiter *arb = NULL;
	int ret = arbiter_open(a->path, vm, &arb, aerr);
	if (ret) {
		snprintf(err, errlen, "arbiter %s: %s", a->path, aerr);
		return ret;
	}
	struct arbiter_info info;
	arbiter_get_info(arb, &info);
	struct arbiter_decision d[MIG_ARBITER_HISTORY];
	size_t n = 0;
	if (info.nodes < 2 || a->node >= info.nodes) {
		snprintf(err, errlen, "arbiter %s: node %u in an area of %u node(s): a migration needs two", a->path, a->node,
			 info.nodes);
		ret = -EINVAL;
	} else if ((ret = arbiter_decided(arb, d, MIG_ARBITER_HISTORY, &n)) != 0) {
		snprintf(err, errlen, "arbiter %s: %s", a->path, arbiter_error(arb));
	}
	for (size_t i = 0; !ret && i < n; i++) {
		if (d[i].epoch < a->epoch || (d[i].epoch == a->epoch && d[i].winner == a->node))
			continue;
		snprintf(err, errlen, "this copy runs in epoch %llu as node %u, but the arbiter already decided epoch %llu "
				      "for node %u: a newer copy of the VM may run; a stale copy neither starts nor migrates",
			 (unsigned long long)a->epoch, a->node, (unsigned long long)d[i].epoch, d[i].winner);
		ret = -ESTALE;
	}
	if (ret)
		arbiter_close(arb);
	else
		*out = arb;
	return ret;
}

/* A migration that records its hand-over: the VM's arbiter area (this copy current in it), and the
 * node id the destination will claim the next epoch as. */
static int open_arbiter(struct sender *s)
{
	const struct mig_source_config *cfg = &s->job->cfg;
	char why[sizeof(s->job->stats.error)];
	int ret = mig_arbiter_open(&cfg->arbiter, cfg->vm_id, &s->arb, why, sizeof(why));
	if (ret)
		return fail(s, ret, "%s", why);
	struct arbiter_info info;
	arbiter_get_info(s->arb, &info);
	s->dest_node = (cfg->arbiter.node + 1) % info.nodes;
	return 0;
}

/* After the confirmed hand-over: the guest's frames that reached this host from the stop on go to
 * the destination, which runs (mig_frames.h). A failure loses only those frames. */
static void forward_frames(struct sender *s)
{
	struct mig_forward_stats st;
	int ret = mig_frames_forward(s->ch, &s->lsn, s->job->cfg.world, s->msg, &st);
	mig_stamp(&s->stamps, "forwarded");
	diag_info("frames for the guest forwarded after the hand-over: %llu (%llu bytes) in %llu ms, %llu dropped%s%s",
		  (unsigned long long)st.frames, (unsigned long long)st.bytes, (unsigned long long)st.ms,
		  (unsigned long long)st.dropped, ret ? ": " : "", ret ? channel_why(s, ret) : "");
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.frames_forwarded = st.frames;
	s->job->stats.frames_dropped = st.dropped;
	pthread_mutex_unlock(&s->job->lock);
}

static void set_done_stats(struct sender *s, uint64_t held_at, const char *phase, uint64_t epoch)
{
	uint64_t now = time_mono_ns();
	pthread_mutex_lock(&s->job->lock);
	s->job->stats.downtime_ms = held_at ? (now - held_at) / 1000000 : 0;
	s->job->stats.downtime_us = held_at ? (now - held_at) / 1000 : 0;
	s->job->stats.total_time_ms = (now - s->start_ns) / 1000000;
	s->job->stats.arbiter_epoch = epoch;
	snprintf(s->job->stats.phase, sizeof(s->job->stats.phase), "%s", phase);
	pthread_mutex_unlock(&s->job->lock);
}

/*
 * Step 6 with an arbiter (mig_source.h): COMPLETE went out, so the destination may hold the whole
 * state and claim the new epoch; the vCPU stays held until the outcome is known. The ACK of
 * HANDOVER comes only once the destination won the epoch; without it this copy claims the epoch
 * itself: won, the VM runs on here (CANCEL tells the destination, which then loses its claim);
 * lost, or no answer from the area, this copy stops for good. `ret` is the stop-and-copy's.
 */
static int judged_hand_over(struct sender *s, int ret, uint64_t held_at)
{
	const struct mig_source_config *cfg = &s->job->cfg;
	if (!ret && atomic_load(&s->job->cancel))
		ret = fail(s, -ECANCELED, "cancelled");
	if (!ret) {
		mig_test_stall("source-handover");
		begin(s, MIG_HANDOVER);
		put_le64(s->msg + MIG_HDR_SIZE, cfg->epoch);
		s->body = MIG_HANDOVER_SIZE;
		ret = flush(s, true);
		mig_stamp(&s->stamps, "handover");
		if (!ret)
			ret = confirmed(s, MIG_HANDOVER_ACK_TIMEOUT_MS, "the hand-over");
		mig_stamp(&s->stamps, "handover-acked");
	}
	if (ret) {
		unsigned winner = s->dest_node;
		diag_warn("hand-over to %s not confirmed (%s): asking the arbiter for epoch %llu", cfg->to,
			  s->job->stats.error, (unsigned long long)cfg->epoch);
		int won = arbiter_claim(s->arb, cfg->epoch, cfg->arbiter.node, ARBITER_FOREVER, &winner);
		mig_test_stall("source-judged");
		if (won == ARBITER_WON) {
			char why[sizeof(s->job->stats.error)];
			pthread_mutex_lock(&s->job->lock);
			snprintf(why, sizeof(why), "%s", s->job->stats.error);
			snprintf(s->job->stats.error, sizeof(s->job->stats.error), "%.200s; the arbiter gave epoch %llu to "
				 "this host (node %u)", why, (unsigned long long)cfg->epoch, cfg->arbiter.node);
			pthread_mutex_unlock(&s->job->lock);
			give_up(s, true);
			set_done_stats(s, held_at, "failed", cfg->epoch);
			return ret;
		}
		if (won == ARBITER_LOST)
			diag_warn("the arbiter gave epoch %llu to node %u, the destination: this copy stops for good",
				  (unsigned long long)cfg->epoch, winner);
		else
			diag_error("the arbiter cannot judge epoch %llu (%s): this copy stops for good; the destination "
				   "runs if it won the epoch", (unsigned long long)cfg->epoch, arbiter_error(s->arb));
	}
	/* The destination holds the epoch (or may): from here this copy never runs again. */
	world_live_hand_over(cfg->world);
	machine_dirty_stop(cfg->m);
	s->tracking = false;
	set_done_stats(s, held_at, "completed", cfg->epoch);
	release(s);
	mig_stamp(&s->stamps, "released");
	if (!ret)
		forward_frames(s);
	return 0;
}

int mig_source_run(struct mig_job *job)
{
	const struct mig_source_config *cfg = &job->cfg;
	struct sender s = { .job = job, .m = cfg->m, .lsn = 1 };
	struct channel_config cc;
	struct channel_err cerr = { 0 };
	uint64_t held_at = 0;
	int ret;

	s.start_ns = time_mono_ns();
	pthread_mutex_init(&s.throttle_lock, NULL);
	bool wake = time_cond_init(&s.throttle_wake) == 0;
	s.throttler_started = wake && pthread_create(&s.throttler, NULL, throttle_thread, &s) == 0;
	size_t ram_size;
	s.ram = machine_ram_const(cfg->m, &ram_size);
	s.ram_pages = ram_size / RAM_PAGE_SIZE;
	s.words = machine_dirty_words(cfg->m);
	s.msg = malloc(MIG_MAX_MESSAGE);
	s.bitmap = calloc(s.words ? s.words : 1, sizeof(*s.bitmap));
	s.fresh = calloc(s.words ? s.words : 1, sizeof(*s.fresh));
	s.touched = calloc(s.words ? s.words : 1, sizeof(*s.touched));
	s.scratch = machine_state_alloc();
	pthread_mutex_lock(&job->lock);
	job->stats.memory_total = ram_size;
	snprintf(job->stats.phase, sizeof(job->stats.phase), "setup");
	pthread_mutex_unlock(&job->lock);
	if (!s.msg || !s.bitmap || !s.fresh || !s.touched || !s.scratch) {
		ret = fail(&s, -ENOMEM, "out of memory");
		goto out;
	}

	if (cfg->copy_storage) {
		char why[400];
		ret = cfg->world ? mig_disks_open(cfg->world, &s.disks, why, sizeof(why)) : -ENODEV;
		if (!ret && cfg->resync && mig_disks_resync(s.disks, cfg->resync_epoch))
			diag_warn("no record of the blocks written since the pairing: the disks are copied whole");
		uint64_t repair = 0;
		if (!ret && cfg->resync_repair && mig_disks_resyncing(s.disks)) {
			if (mig_disks_repair(s.disks, cfg->resync_repair, &repair))
				diag_warn("the spare's list of differing blocks is malformed: they go by digest again");
			else
				diag_info("%llu block(s) the spare named as differing go as data", (unsigned long long)repair);
		}
		if (ret) {
			fail(&s, ret, "cannot copy the disks: %s", cfg->world ? why : "no live world");
			goto out;
		}
		pthread_mutex_lock(&job->lock);
		job->stats.disk_total = mig_disks_total(s.disks);
		pthread_mutex_unlock(&job->lock);
	}

	if (cfg->arbiter.path && !cfg->clone && cfg->world) {
		ret = open_arbiter(&s);
		if (ret)
			goto out;
	}

	channel_config_init(&cc);
	cc.vm_id = cfg->vm_id;
	cc.epoch = cfg->epoch;
	cc.key = cfg->key;
	cc.purpose = CHANNEL_PURPOSE_MIGRATION;
	cc.transport = cfg->transport;
	cc.heartbeat_ms = MIG_HEARTBEAT_MS;
	cc.timeout_ms = MIG_TIMEOUT_MS;
	cc.buffer_bytes = MIG_BUFFER_BYTES;
	ret = channel_connect(&cc, cfg->to, &s.ch, &cerr);
	if (ret) {
		fail(&s, ret, "%s", cerr.msg);
		goto out;
	}
	ret = send_start(&s);
	/* An FT clone records its new pairing once the spare accepted START, before any page: the
	 * arbiter's synchronous writes stay out of the guest's pause. */
	if (!ret && cfg->clone && cfg->commit) {
		char why[256];
		ret = cfg->commit(cfg->commit_ctx, why, sizeof(why));
		if (ret)
			fail(&s, ret, "%s", why);
	}
	if (!ret)
		ret = precopy(&s);
	if (ret < 0)
		stop_throttle(&s);
	if (ret >= 0)
		ret = stop_and_copy(&s, &held_at);
	if (s.arb && s.complete_sent) {
		ret = judged_hand_over(&s, ret < 0 ? ret : 0, held_at);
		goto out;
	}
	if (ret) {
		give_up(&s, true);
		goto out;
	}

	if (atomic_load(&job->cancel))
		ret = fail(&s, -ECANCELED, "cancelled");
	if (!ret && cfg->clone && cfg->cut_ready) {
		char why[256];
		ret = cfg->cut_ready(cfg->commit_ctx, why, sizeof(why));
		if (ret)
			fail(&s, ret, "%s", why);
	}
	if (ret) {
		give_up(&s, true);
		goto out;
	}
	/* 6. The destination holds the whole state: from here this copy never runs again; or, for an
	 * FT clone, this copy's run ends here, at the very icount of the state sent, and goes on
	 * recorded for its new backup. */
	if (cfg->world && cfg->clone)
		world_live_cut(cfg->world);
	else if (cfg->world)
		world_live_hand_over(cfg->world);
	machine_dirty_stop(cfg->m);
	s.tracking = false;
	mig_stamp(&s.stamps, "handed");
	begin(&s, MIG_HANDOVER);
	put_le64(s.msg + MIG_HDR_SIZE, cfg->epoch);
	s.body = MIG_HANDOVER_SIZE;
	ret = flush(&s, true);
	mig_stamp(&s.stamps, "handover");
	if (!ret)
		ret = confirmed(&s, MIG_HANDOVER_ACK_TIMEOUT_MS, "the hand-over");
	mig_stamp(&s.stamps, "handover-acked");
	uint64_t now = time_mono_ns();
	pthread_mutex_lock(&job->lock);
	job->stats.downtime_ms = (now - held_at) / 1000000;
	job->stats.downtime_us = (now - held_at) / 1000;
	job->stats.total_time_ms = (now - s.start_ns) / 1000000;
	snprintf(job->stats.phase, sizeof(job->stats.phase), "completed");
	pthread_mutex_unlock(&job->lock);
	bool confirmed_run = !ret;
	if (ret) {
		/* Sent or not, the destination may run: this copy stays stopped. */
		if (cfg->clone)
			diag_warn("clone to %s: HANDOVER not confirmed (%s); the log connection decides", cfg->to,
				  job->stats.error);
		else
			diag_warn("hand-over to %s not confirmed (%s): this copy stays stopped; the VM runs on the "
				  "destination if HANDOVER reached it", cfg->to, job->stats.error);
		ret = 0;
	}
	release(&s); /* the run ends at its next boundary: the world has been handed over (or cut) */
	mig_stamp(&s.stamps, "released");
	if (confirmed_run && cfg->world && !cfg->clone)
		forward_frames(&s);
out:
	mig_stamps_log(&s.stamps, "stop-and-copy at the source");
	/* For a comparison with other systems' stop (bench/migrate): the wall clock. */
	if (s.held_wall_ns)
		diag_info("stop-and-copy: vCPU held at wall %.6f s", s.held_wall_ns / 1e9);
	if (ret) {
		pthread_mutex_lock(&job->lock);
		snprintf(job->stats.phase, sizeof(job->stats.phase), ret == -ETIME ? "cancelled" : "failed");
		job->stats.total_time_ms = (time_mono_ns() - s.start_ns) / 1000000;
		job->stats.refused = s.ch && channel_state(s.ch) == CHANNEL_REFUSED;
		pthread_mutex_unlock(&job->lock);
		diag_error("migration to %s failed, the VM runs on here: %s", cfg->to, job->stats.error);
	}
	stop_throttle(&s);
	if (wake)
		pthread_cond_destroy(&s.throttle_wake);
	pthread_mutex_destroy(&s.throttle_lock);
	if (s.arb)
		arbiter_close(s.arb);
	mig_disks_close(s.disks);
	channel_close(s.ch);
	free(s.msg);
	free(s.bitmap);
	free(s.fresh);
	free(s.touched);
	machine_state_free(s.scratch);
	return ret;
}

void mig_job_init(struct mig_job *job, const struct mig_source_config *cfg)
{
	memset(job, 0, sizeof(*job));
	job->cfg = *cfg;
	if (!job->cfg.downtime_ms)
		job->cfg.downtime_ms = MIG_DEFAULT_DOWNTIME_MS;
	if (!job->cfg.max_rounds)
		job->cfg.max_rounds = MIG_DEFAULT_MAX_ROUNDS;
	if (job->cfg.arbiter.path && !job->cfg.clone)
		job->cfg.epoch = job->cfg.arbiter.epoch + 1;
	job->stats.arbiter_epoch = job->cfg.arbiter.epoch;
	job->lock_inited = pthread_mutex_init(&job->lock, NULL) == 0;
}

static void *job_thread(void *arg)
{
	struct mig_job *job = arg;
	int ret = mig_source_run(job);
	pthread_mutex_lock(&job->lock);
	job->result = ret;
	job->done = true;
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

int mig_job_start(struct mig_job *job, const struct mig_source_config *cfg)
{
	mig_job_init(job, cfg);
	int ret = pthread_create(&job->thread, NULL, job_thread, job);
	if (ret)
		return -ret;
	job->started = true;
	return 0;
}

void mig_job_get_stats(struct mig_job *job, struct mig_stats *out)
{
	pthread_mutex_lock(&job->lock);
	*out = job->stats;
	pthread_mutex_unlock(&job->lock);
}

void mig_job_cancel(struct mig_job *job)
{
	atomic_store(&job->cancel, true);
}

bool mig_job_done(struct mig_job *job)
{
	pthread_mutex_lock(&job->lock);
	bool done = job->done;
	pthread_mutex_unlock(&job->lock);
	return done;
}

int mig_job_join(struct mig_job *job)
{
	if (job->started) {
		pthread_join(job->thread, NULL);
		job->started = false;
	}
	return job->result;
}
