/*
 * mig_dest.c — the destination of a live migration (see mig_dest.h): the channel as the
 * stream decoder's message source. Each message is acknowledged once applied, so the source's
 * wait for the ACK of COMPLETE is the destination's confirmation that it holds the whole state.
 */
#define DIAG_MODULE "incoming"
#include "migrate/mig_dest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arbiter.h"
#include "host/backend.h"
#include "logchannel/channel.h"
#include "migrate/mig_test_hook.h"
#include "migrate/replica_mark.h"
#include "util/disk_digest.h"
#include "util/disk_image.h"
#include "util/byteorder.h"
#include "util/diag.h"
#include "util/time.h"

struct chan_source {
	struct channel *ch;
	uint8_t *buf;
	uint64_t lsn;
	const struct mig_dest_config *cfg;
	const struct mig_dest_result *res;
	bool state_seen;
	struct mig_stamps stamps;       /* the stop-and-copy's steps here (FTVM_DIAG=info) */
};

static int chan_next(void *ctx, const uint8_t **buf, size_t *len, char *why, size_t whylen)
{
	struct chan_source *cs = ctx;
	uint64_t lsn;
	uint64_t t0 = time_mono_ns();
	/* No deadline here: a silent source fails the channel (its heartbeat timeout). */
	int ret = channel_recv(cs->ch, &lsn, cs->buf, MIG_MAX_MESSAGE, len, -1);
	if (ret) {
		snprintf(why, whylen, "%s", ret == -EPIPE ? channel_error(cs->ch) : strerror(-ret));
		return ret == -EMSGSIZE ? -EBADMSG : ret;
	}
	cs->lsn = lsn;
	*buf = cs->buf;
	unsigned kind = *len >= MIG_HDR_SIZE ? get_le16(cs->buf + 6) : 0;
	if (kind == MIG_STATE && !cs->state_seen)
		mig_stamp(&cs->stamps, "state-in");
	cs->state_seen |= kind == MIG_STATE;
	if (kind == MIG_COMPLETE)
		mig_stamp(&cs->stamps, "complete-in");
	else if (kind == MIG_HANDOVER)
		mig_stamp(&cs->stamps, "handover-in");
	diag_debug("message %llu (%zu bytes) after %.2f ms", (unsigned long long)lsn, *len, (time_mono_ns() - t0) / 1e6);
	return 0;
}

static void chan_confirm(void *ctx)
{
	struct chan_source *cs = ctx;
	/* With an arbiter, HANDOVER is acknowledged once the epoch is won (judge()). */
	if (cs->res->phase == MIG_PHASE_RUN && cs->cfg->arbiter)
		return;
	diag_debug("confirm %llu", (unsigned long long)cs->lsn);
	channel_ack(cs->ch, cs->lsn);
	if (cs->res->phase == MIG_PHASE_COMPLETE)
		mig_stamp(&cs->stamps, "complete-acked");
	else if (cs->res->phase == MIG_PHASE_RUN)
		mig_stamp(&cs->stamps, "handover-acked");
	if (cs->res->phase == MIG_PHASE_COMPLETE)
		mig_test_stall("dest-complete");
}

static const struct mig_source_ops chan_ops = { .next = chan_next, .confirm = chan_confirm };

/* Differing ranges a refusal names for repair (the list must fit its 256 bytes): more, and the
 * whole replica comes again. */
#define REPAIR_RANGES_MAX 12
#define REPAIR_TEXT_MAX 100

/* This host's replicas, opened for writing while a STORAGE stream comes in. A spare's replica
 * files carry pairing marks (replica_mark.h): a full copy removes them before it writes, the
 * confirmed copy writes the new pairing's. */
struct replicas {
	const struct mig_dest_config *cfg;
	const struct mig_dest_result *res;
	struct disk_image *img[MACHINE_MAX_DISKS];
	bool sync_due;                  /* an FT clone's: made durable after HANDOVER (replicas_sync()) */
	uint64_t size[MACHINE_MAX_DISKS];
	uint8_t *check_buf;          /* MIG_DISK_RUN_MAX bytes, for resync digests */
	/* A resync's round 0: the blocks that differ from the source's where it did not write since
	 * the pairing, refused at the round's end with their list (docs/disks.md, Resync) */
	struct repair_range {
		unsigned disk;
		uint64_t first, count;      /* DISK_DIRTY_BLOCK blocks */
	} repair[REPAIR_RANGES_MAX];
	unsigned nrepair;
	uint64_t repair_blocks;
};

static void replicas_close(struct replicas *r)
{
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++) {
		disk_image_close(r->img[i]);
		r->img[i] = NULL;
	}
	free(r->check_buf);
	r->check_buf = NULL;
}

/* Marks are kept for a spare's replica files only (not `ftvm incoming`'s live disks). */
static bool marked(const struct replicas *r)
{
	return !r->cfg->world && r->cfg->pairing_marks;
}

static int replicas_begin(void *ctx, unsigned ndisks, const uint64_t *sizes, char *why, size_t whylen)
{
	struct replicas *r = ctx;
	const struct mig_dest_config *cfg = r->cfg;
	unsigned have_disks = cfg->world ? world_live_ndisks(cfg->world) : cfg->ndisks;
	if (ndisks != have_disks) {
		snprintf(why, whylen, "the source copies %u disk(s), this host has %u", ndisks, have_disks);
		return -EINVAL;
	}
	replicas_close(r);
	for (unsigned i = 0; i < ndisks; i++) {
		char err[320];
		struct disk_backend *be = cfg->world ? world_live_disk_backend(cfg->world, i) : NULL;
		int ret = be ? disk_backend_reopen(be, false, &r->img[i], err, sizeof(err))
			     : cfg->world ? (snprintf(err, sizeof(err), "no back end"), -ENODEV)
					  : disk_image_open(cfg->disk_path[i], false, &r->img[i], err, sizeof(err));
		if (ret) {
			/* A refusal the source hears (REFUSE), not a broken stream. */
			snprintf(why, whylen, "disk %u: this host cannot write its replica: %s", i, err);
			return -EINVAL;
		}
		uint64_t have = disk_image_size(r->img[i]);
		if (have < sizes[i]) {
			snprintf(why, whylen, "disk %u: this host's replica%s%s holds %llu bytes, less than the source's %llu",
				 i, cfg->world ? "" : " ", cfg->world ? "" : cfg->disk_path[i], (unsigned long long)have,
				 (unsigned long long)sizes[i]);
			return -EINVAL;
		}
		r->size[i] = sizes[i];
		if (marked(r) && !r->res->resync)
			replica_mark_clear(cfg->disk_path[i]);
	}
	return 0;
}

static int replicas_resync(void *ctx, uint64_t epoch, char *why, size_t whylen)
{
	struct replicas *r = ctx;
	for (unsigned i = 0; i < MACHINE_MAX_DISKS && r->img[i]; i++) {
		struct replica_mark mk;
		char err[320];
		int ret = marked(r) ? replica_mark_read(r->cfg->disk_path[i], &mk, err, sizeof(err)) : -ENOENT;
		if (ret == -ENOENT && !marked(r))
			snprintf(err, sizeof(err), "this destination keeps no pairing marks");
		if (!ret && (strcmp(mk.name, r->cfg->vm_id) || mk.disk != i || mk.disk_size != r->size[i]))
			snprintf(err, sizeof(err), "its pairing mark is for VM %s, disk %u of %llu bytes", mk.name, mk.disk,
				 (unsigned long long)mk.disk_size), ret = -EINVAL;
		else if (!ret && mk.epoch != epoch)
			snprintf(err, sizeof(err), "its pairing mark names epoch %llu, the source's writes date from %llu",
				 (unsigned long long)mk.epoch, (unsigned long long)epoch), ret = -EINVAL;
		if (ret) {
			snprintf(why, whylen, "resync refused, a full copy is needed: disk %u: %s", i, err);
			return -EINVAL;
		}
	}
	r->check_buf = malloc(MIG_DISK_RUN_MAX);
	if (!r->check_buf) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int replicas_check(void *ctx, unsigned disk, uint64_t off, uint64_t len, uint64_t lo, uint64_t hi, char *why,
			  size_t whylen)
{
	struct replicas *r = ctx;
	uint64_t mine_lo, mine_hi;
	int ret = disk_image_read(r->img[disk], r->check_buf, (size_t)len, off);
	if (ret) {
		snprintf(why, whylen, "resync: reading disk %u at byte %llu: %s", disk, (unsigned long long)off,
			 strerror(-ret));
		return ret;
	}
	disk_digest_range(r->check_buf, (size_t)len, &mine_lo, &mine_hi);
	if (mine_lo == lo && mine_hi == hi)
		return 0;
	/* Not written by the source since the pairing, yet different: the old primary's writes its
	 * backup never replayed, changed while away, or writes a crash lost. A few such blocks are
	 * named for repair when round 0 ends (replicas_compared()); many cost the whole replica. */
	uint64_t first = off / DISK_DIRTY_BLOCK, count = (off + len - 1) / DISK_DIRTY_BLOCK - first + 1;
	struct repair_range *last = r->nrepair ? &r->repair[r->nrepair - 1] : NULL;
	if (last && last->disk == disk && last->first + last->count >= first) {
		uint64_t end = first + count > last->first + last->count ? first + count : last->first + last->count;
		r->repair_blocks += end - (last->first + last->count);
		last->count = end - last->first;
		return 0;
	}
	if (r->nrepair < REPAIR_RANGES_MAX) {
		r->repair[r->nrepair++] = (struct repair_range){ .disk = disk, .first = first, .count = count };
		r->repair_blocks += count;
		return 0;
	}
	snprintf(why, whylen, "resync refused, a full copy is needed: disk %u differs from the source's at bytes "
		 "%llu..%llu, which the source did not write since the pairing (and more than %u other ranges)", disk,
		 (unsigned long long)off, (unsigned long long)(off + len - 1), REPAIR_RANGES_MAX);
	for (unsigned i = 0; marked(r) && i < MACHINE_MAX_DISKS && r->img[i]; i++)
		replica_mark_clear(r->cfg->disk_path[i]);
	return -EINVAL;
}

/*
 * Round 0 of a resync is over: every block it did not send was compared. Blocks that differed
 * refuse the resync now, named in a list the source's next try sends as data ("repair=DISK:BLOCK
 * [+COUNT],... ." in DISK_DIRTY_BLOCK blocks, mig_disks_repair()); that try compares every other
 * block again, so nothing is ever taken unchecked. The marks stay: the replicas still date from
 * the pairing outside those blocks (the digests decide anyway).
 */
static int replicas_compared(void *ctx, char *why, size_t whylen)
{
	struct replicas *r = ctx;
	if (!r->nrepair)
		return 0;
	char list[REPAIR_TEXT_MAX];
	size_t n = 0;
	for (unsigned i = 0; i < r->nrepair && n < sizeof(list); i++) {
		const struct repair_range *x = &r->repair[i];
		n += (size_t)snprintf(list + n, sizeof(list) - n, x->count > 1 ? "%s%u:%llu+%llu" : "%s%u:%llu", i ? "," : "",
				      x->disk, (unsigned long long)x->first, (unsigned long long)x->count);
	}
	const struct repair_range *x = &r->repair[0];
	if (n + 1 >= sizeof(list)) {
		snprintf(why, whylen, "resync refused, a full copy is needed: %llu blocks in %u ranges differ from the "
			 "source's where it did not write since the pairing", (unsigned long long)r->repair_blocks, r->nrepair);
		for (unsigned i = 0; marked(r) && i < MACHINE_MAX_DISKS && r->img[i]; i++)
			replica_mark_clear(r->cfg->disk_path[i]);
		return -EINVAL;
	}
	snprintf(why, whylen, "resync refused: %llu block(s) differ where the source did not write since the pairing "
		 "(disk %u at byte %llu first); repair=%s.", (unsigned long long)r->repair_blocks, x->disk,
		 (unsigned long long)(x->first * DISK_DIRTY_BLOCK), list);
	return -EINVAL;
}

static int replicas_write(void *ctx, unsigned disk, uint64_t off, const uint8_t *data, uint64_t len, char *why,
			  size_t whylen)
{
	struct replicas *r = ctx;
	int ret = data ? disk_image_write(r->img[disk], data, (size_t)len, off) : disk_image_zero(r->img[disk], off, len);
	if (ret)
		snprintf(why, whylen, "%s", strerror(-ret));
	else if (data) /* the sync before COMPLETE's confirmation, inside the guest's pause, waits less */
		disk_image_start_writeback(r->img[disk], off, len);
	return ret;
}

/* After the replicas were made durable: they equal the source's at the new pairing's start,
 * marked so (a hint for a later resync; the digests decide). A mark that cannot be written costs
 * a full copy then. */
static void replicas_mark(struct replicas *r)
{
	for (unsigned i = 0; marked(r) && i < MACHINE_MAX_DISKS && r->img[i]; i++) {
		struct replica_mark mk = { .epoch = r->res->epoch, .disk_size = r->size[i], .disk = i };
		char err[320];
		snprintf(mk.name, sizeof(mk.name), "%s", r->cfg->vm_id);
		int ret = replica_mark_write(r->cfg->disk_path[i], &mk, err, sizeof(err));
		if (ret && ret != -EOPNOTSUPP)
			diag_warn("%s", err);
	}
}

static int replicas_flush(struct replicas *r, char *why, size_t whylen)
{
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++) {
		int ret = r->img[i] ? disk_image_flush(r->img[i]) : 0;
		if (ret) {
			snprintf(why, whylen, "disk %u: %s", i, strerror(-ret));
			return ret;
		}
	}
	replicas_mark(r);
	return 0;
}

/*
 * Before COMPLETE is confirmed. A migration's source stops for good once it hears that ACK, so
 * the replicas are durable first. An FT clone's source runs on whatever happens here, and its
 * guest is held until the ACK: every byte is written by now (the backup reads it back through
 * its own descriptors), so the sync waits until HANDOVER has been confirmed, before the backup
 * runs; should it fail, the spare drops the clone and its primary loses this backup.
 */
static int replicas_sync(void *ctx, char *why, size_t whylen)
{
	struct replicas *r = ctx;
	if (r->cfg->clone && !r->cfg->arbiter) { /* a spare's (a judged hand-over acks HANDOVER itself) */
		r->sync_due = true;
		return 0;
	}
	return replicas_flush(r, why, whylen);
}

/*
 * The arbiter's verdict on a stream that reached COMPLETE (ret: the decoder's; 0 after HANDOVER):
 * 0 when this side won the epoch (HANDOVER, if it came, is acknowledged now), else -errno with err.
 */
static int judge(struct arbiter *arb, struct chan_source *cs, int ret, const struct mig_dest_result *res, char *err,
		 size_t errlen)
{
	if (!ret)
		mig_test_stall("dest-handover");
	else
		diag_warn("the whole state is here but no hand-over came (%s): asking the arbiter for epoch %llu", err,
			  (unsigned long long)res->epoch);
	unsigned winner = res->arbiter_node;
	int won = arbiter_claim(arb, res->epoch, res->arbiter_node, ARBITER_FOREVER, &winner);
	if (won == ARBITER_WON) {
		diag_warn("the arbiter gave epoch %llu to this host (node %u): the VM runs here",
			  (unsigned long long)res->epoch, res->arbiter_node);
		if (!ret)
			channel_ack(cs->ch, cs->lsn);
		return 0;
	}
	if (won == ARBITER_LOST) {
		snprintf(err, errlen, "the arbiter gave epoch %llu to node %u, the source: the VM runs there; nothing ran "
				      "here", (unsigned long long)res->epoch, winner);
		return -EPERM;
	}
	snprintf(err, errlen, "the arbiter cannot judge epoch %llu (%s): nothing ran here", (unsigned long long)res->epoch,
		 arbiter_error(arb));
	return won;
}

static const struct mig_disk_ops replica_ops = {
	.begin = replicas_begin, .write = replicas_write, .sync = replicas_sync,
	.resync = replicas_resync, .check = replicas_check, .compared = replicas_compared,
};

int mig_dest_receive(const struct mig_dest_config *cfg, struct machine *m, struct mig_dest_result *res, char *err,
		     size_t errlen)
{
	struct channel_config cc;
	struct channel_listener *l = NULL;
	struct channel_err cerr = { 0 };
	struct chan_source cs = { .cfg = cfg, .res = res };
	struct arbiter *arb = NULL;
	int ret;

	memset(res, 0, sizeof(*res));
	channel_config_init(&cc);
	cc.vm_id = cfg->vm_id;
	cc.key = cfg->key;
	cc.purpose = CHANNEL_PURPOSE_MIGRATION;
	cc.transport = cfg->transport;
	cc.heartbeat_ms = MIG_HEARTBEAT_MS;
	cc.timeout_ms = MIG_TIMEOUT_MS;
	cs.buf = malloc(MIG_MAX_MESSAGE);
	if (!cs.buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (cfg->arbiter) {
		char aerr[ARBITER_ERR_MAX];
		ret = arbiter_open(cfg->arbiter, cfg->vm_id, &arb, aerr);
		if (ret) {
			snprintf(err, errlen, "arbiter %s: %s", cfg->arbiter, aerr);
			goto out;
		}
	}
	/* Out of every pause: the hart's caches backed now, not faulted in while the guest answers
	 * its first requests here (machine_warm()). */
	machine_warm(m);
	ret = channel_listen(&cc, cfg->listen, &l, &cerr);
	if (ret) {
		snprintf(err, errlen, "%s", cerr.msg);
		goto out;
	}
	if (cfg->listening)
		cfg->listening(cfg->ctx, channel_listener_port(l));
	/* Strangers (dropped inside the accept) and refused sources do not end the wait. */
	for (;;) {
		ret = channel_accept(l, -1, &cs.ch, &cerr);
		if (ret != -EPERM && ret != -ESTALE && ret != -EPROTONOSUPPORT && ret != -EPROTOTYPE &&
		    ret != -EPROTO && ret != -ENOPROTOOPT)
			break;
		diag_warn("%s", cerr.msg);
	}
	if (ret) {
		snprintf(err, errlen, "%s", cerr.msg);
		goto out;
	}
	channel_listener_close(l);
	l = NULL;
	diag_info("migration of VM %s from epoch %llu coming in", cfg->vm_id,
		  (unsigned long long)channel_peer_epoch(cs.ch));
	if (cfg->accepted) {
		ret = cfg->accepted(cfg->ctx, channel_peer_epoch(cs.ch), err, errlen);
		if (ret) {
			if (channel_refuse(cs.ch, err))
				diag_debug("refusal not sent");
			goto out;
		}
	}
	struct replicas reps = { .cfg = cfg, .res = res };
	struct arbiter_info area;
	if (arb)
		arbiter_get_info(arb, &area);
	/* The final state's scratch: allocated now, out of the guest's pause (state_format.h). */
	struct mig_dest_want want = { .clone = cfg->clone, .storage = cfg->storage,
				      .arbiter_id = arb ? area.area_id : NULL, .disk = &replica_ops, .disk_ctx = &reps,
				      .scratch = cfg->scratch ? cfg->scratch : machine_state_alloc() };
	ret = mig_dest_decode_want(m, &want, &chan_ops, &cs, res, err, errlen);
	mig_stamp(&cs.stamps, "decoded");
	if (!cfg->scratch)
		machine_state_free(want.scratch);
	if (!ret && reps.sync_due) {
		channel_close(cs.ch); /* the ACK of HANDOVER leaves first */
		cs.ch = NULL;
		char why[256];
		ret = replicas_flush(&reps, why, sizeof(why));
		if (ret)
			snprintf(err, errlen, "cannot make the disk replicas durable: %s", why);
	}
	replicas_close(&reps);
	if (arb && (res->phase == MIG_PHASE_RUN || res->phase == MIG_PHASE_COMPLETE))
		ret = judge(arb, &cs, ret, res, err, errlen);
	/* On success the close sends the ACK of HANDOVER, then BYE: the VM may start at once. */
	if ((ret == -EBADMSG || ret == -EINVAL) && cs.ch && channel_state(cs.ch) == CHANNEL_UP) {
		if (channel_refuse(cs.ch, err))
			diag_debug("refusal not sent");
	}
	/* The VM may start at once: the ACK of HANDOVER has gone (or goes with the close). The frames
	 * the source still forwards arrive beside the running VM, and the channel closes off its path. */
	if (!ret && cfg->frames && cfg->world && !cfg->clone && cs.ch &&
	    mig_frames_receiver_start(cs.ch, cfg->world, world_live_nnics(cfg->world), cfg->frames) == 0)
		cs.ch = NULL;
out:
	channel_close(cs.ch);
	mig_stamp(&cs.stamps, "closed");
	mig_stamps_log(&cs.stamps, "stop-and-copy at the destination");
	channel_listener_close(l);
	if (arb)
		arbiter_close(arb);
	free(cs.buf);
	return ret;
}
