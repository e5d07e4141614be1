/*
 * ft_backup.c — the backup of an FT pair (see ft_backup.h for the go-live steps).
 *
 * The machine runs first in the replayer's world. When that run ends because the log ended
 * without END, go-live builds the live world and hands the machine back to the caller, which runs
 * it again in that world from the very icount where the replay stopped: the machine itself never
 * learns that anything changed.
 *
 * Threads: the vCPU thread runs all of this; the control thread reads the status. What they share
 * is the FT state (common/ft_state.h: state, reason, role, under its lock) and atomic counters.
 */
#define DIAG_MODULE "backup"
#include "backup/ft_backup.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay/replayer.h"
#include "common/arbiter.h"
#include "common/ft_state.h"
#include "replay/eventlog.h"
#include "logchannel/channel.h"
#include "util/diag.h"
#include "util/time.h"

struct ft_backup {
	struct ft_backup_config cfg;
	struct ft_backup_golive golive;
	char vm_name[128];
	char vm_id[128];
	struct channel_listener *listener;
	struct channel *ch;
	struct arbiter *arb;
	struct replayer *replayer;
	struct disk_replica *replica[MACHINE_MAX_DISKS];
	struct machine *machine;
	struct ft_state fs;
	bool fs_ready;
	bool log_ended;               /* the primary ended its log itself (not the guest): vCPU thread */
	atomic_uint_fast64_t log_bytes, log_records, last_lsn, failovers;
	uint64_t heard_ns;              /* go-live: when the lost primary was last heard */
	atomic_uint_fast64_t last_gap_us;  /* last failover: from the primary's last frame to running alone */
	uint64_t prev_lsn;              /* vCPU thread only, like prev_icount */
	icount_t prev_icount;
	uint8_t buf[EVLOG_MAX_RECORD];
};

#define S(s) FT_STATE_BIT(FT_STATE_##s)

/* ---- the channel as a replay source ---- */

static int channel_source_next(void *ctx, struct evlog_record *rec, char *err, size_t errlen)
{
	struct ft_backup *b = ctx;
	uint64_t lsn;
	size_t len, used;

	for (;;) {
		channel_report_icount(b->ch, machine_icount(b->machine));
		int ret = channel_recv(b->ch, &lsn, b->buf, sizeof(b->buf), &len, 0);
		if (ret == -ETIMEDOUT) {
			/* Everything received is replayed: waiting for log is not lagging behind. */
			channel_report_caught_up(b->ch, machine_icount(b->machine));
			ret = channel_recv(b->ch, &lsn, b->buf, sizeof(b->buf), &len, 100);
		}
		if (ret == -ETIMEDOUT)
			continue;
		if (ret == -EPIPE)
			return 0; /* every record received before the failure has been returned */
		if (ret < 0) {
			snprintf(err, errlen, "channel: %s", strerror(-ret));
			return ret;
		}
		ret = evlog_decode_record(b->buf, len, rec, &used, err, errlen);
		if (ret == 0 && used != len)
			ret = -EBADMSG, snprintf(err, errlen, "channel record lsn %llu: %zu stray bytes after the record",
						(unsigned long long)lsn, len - used);
		if (ret == 0 && rec->lsn != lsn)
			ret = -EBADMSG, snprintf(err, errlen, "channel frame lsn %llu carries record lsn %llu",
						(unsigned long long)lsn, (unsigned long long)rec->lsn);
		if (ret == 0)
			ret = evlog_check_sequence(rec, b->prev_lsn, b->prev_icount, err, errlen);
		if (ret < 0)
			return ret == -EAGAIN ? -EBADMSG : ret;
		b->prev_lsn = rec->lsn;
		b->prev_icount = rec->icount;
		atomic_fetch_add(&b->log_bytes, len);
		atomic_fetch_add(&b->log_records, 1);
		atomic_store(&b->last_lsn, lsn);
		if (b->cfg.replay_delay_us) {
			struct timespec pause = { .tv_nsec = (long)b->cfg.replay_delay_us * 1000 };
			nanosleep(&pause, NULL);
		}
		return 1;
	}
}

/* ---- RARP announcement ---- */

enum {
	ETH_HEADER = 14,
	ETHERTYPE_RARP = 0x8035,
	ARP_HW_ETHER = 1,
	ARP_PROTO_IPV4 = 0x0800,
	RARP_OP_REQUEST_REVERSE = 3,
	ETH_MIN_FRAME = 60,
};

size_t ft_rarp_announce(const uint8_t mac[6], uint8_t *out, size_t cap)
{
	if (cap < ETH_MIN_FRAME)
		return 0;
	memset(out, 0, ETH_MIN_FRAME);
	memset(out, 0xff, 6);               /* destination: broadcast */
	memcpy(out + 6, mac, 6);            /* source: the guest, so switches learn its port */
	out[12] = ETHERTYPE_RARP >> 8;
	out[13] = ETHERTYPE_RARP & 0xff;
	uint8_t *a = out + ETH_HEADER;
	a[0] = 0, a[1] = ARP_HW_ETHER;
	a[2] = ARP_PROTO_IPV4 >> 8, a[3] = ARP_PROTO_IPV4 & 0xff;
	a[4] = 6, a[5] = 4;
	a[6] = 0, a[7] = RARP_OP_REQUEST_REVERSE;
	memcpy(a + 8, mac, 6);              /* sender hardware address */
	memcpy(a + 18, mac, 6);             /* target hardware address */
	return ETH_MIN_FRAME;
}

/* ---- go-live ---- */

static void close_replicas(struct ft_backup *b)
{
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++) {
		disk_replica_close(b->replica[i]);
		b->replica[i] = NULL;
	}
}

/* Steps 1-6 of ft_backup.h; on success *live is the world to run on in. */
static int go_live(struct ft_backup *b, const char *why, struct vm_world *live, char *msg, size_t msglen)
{
	unsigned winner = 0;
	char err[256], reason[256];

	snprintf(reason, sizeof(reason), "primary lost: %.200s", why);
	diag_warn("%s; replayed to icount %llu (lsn %llu); claiming the arbiter for epoch %llu", reason,
		 (unsigned long long)machine_icount(b->machine), (unsigned long long)atomic_load(&b->last_lsn),
		 (unsigned long long)b->cfg.epoch);
	ft_state_set(&b->fs, S(PROTECTED), FT_STATE_ARBITRATING, reason);
	struct channel_stats cs = { 0 };
	if (b->ch)
		channel_get_stats(b->ch, &cs);
	b->heard_ns = cs.last_rx_ns;
	channel_close(b->ch); /* 1. no more log from this primary */
	b->ch = NULL;
	int ret = arbiter_claim(b->arb, b->cfg.epoch, b->cfg.node, ARBITER_FOREVER, &winner);
	if (ret != ARBITER_WON) {
		if (ret == ARBITER_LOST)
			snprintf(msg, msglen, "lost the arbiter for epoch %llu to node %u: halting this VM for good",
				 (unsigned long long)b->cfg.epoch, winner);
		else
			snprintf(msg, msglen, "arbiter failed (%s): halting this VM, no claim is made on doubt",
				 arbiter_error(b->arb));
		ft_state_set(&b->fs, S(ARBITRATING), FT_STATE_HALTED, msg);
		return -ECANCELED;
	}
	ft_state_set(&b->fs, S(ARBITRATING), FT_STATE_GOING_LIVE, NULL);
	/* 4. back ends live; the replicas become the live disks: durable first, then reopened there */
	close_replicas(b);
	ret = b->golive.make_live(b->golive.ctx, machine_icount(b->machine), machine_clock(b->machine), live, err,
				  sizeof(err));
	if (ret < 0) {
		snprintf(msg, msglen, "won the arbiter but cannot go live: %s", err);
		ft_state_set(&b->fs, S(GOING_LIVE), FT_STATE_HALTED, msg);
		return ret;
	}
	unsigned reissued = machine_reissue_disk_requests(b->machine, *live); /* 5. */
	for (unsigned i = 0; i < b->golive.nnics; i++) {                /* 6. */
		uint8_t frame[ETH_MIN_FRAME];
		size_t n = ft_rarp_announce(b->golive.macs[i], frame, sizeof(frame));
		live->ops->net_tx(live->ctx, i, frame, n);
	}
	if (b->heard_ns)
		atomic_store(&b->last_gap_us, (time_mono_ns() - b->heard_ns) / 1000);
	atomic_fetch_add(&b->failovers, 1);
	ft_state_set(&b->fs, S(GOING_LIVE), FT_STATE_ALONE, NULL);
	diag_warn("live as primary at icount %llu: reissued %u disk request(s), announced %u MAC(s)",
		 (unsigned long long)machine_icount(b->machine), reissued, b->golive.nnics);
	return 0;
}

/* machine_reissue_disk_requests() into the replicas alone (ft_backup_create). */
static void pending_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct ft_backup *b = ctx;
	if (disk < MACHINE_MAX_DISKS && b->replica[disk])
		disk_replica_submit(b->replica[disk], req);
}

static const struct vm_world_ops pending_ops = { .disk_submit = pending_submit };

int ft_backup_create(const struct ft_backup_config *cfg, struct machine *m, const struct ft_backup_golive *golive,
		     struct ft_backup **out, char *err, size_t errlen)
{
	struct ft_backup *b = calloc(1, sizeof(*b));
	char aerr[ARBITER_ERR_MAX];
	int ret;

	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	b->cfg = *cfg;
	b->golive = *golive;
	b->machine = m;
	snprintf(b->vm_name, sizeof(b->vm_name), "%s", cfg->vm_name);
	snprintf(b->vm_id, sizeof(b->vm_id), "%s", cfg->vm_id);
	b->cfg.vm_name = b->vm_name;
	b->cfg.vm_id = b->vm_id;
	ret = ft_state_init(&b->fs, "backup", FT_STATE_WAITING);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create the FT state: %s", strerror(-ret));
		goto fail;
	}
	b->fs_ready = true;
	ret = arbiter_open(cfg->arbiter, cfg->vm_name, &b->arb, aerr);
	if (ret < 0) {
		snprintf(err, errlen, "arbiter %s: %s", cfg->arbiter, aerr);
		goto fail;
	}
	struct replayer_options ro = { .console_fd = -1, .perturb_lsn = cfg->perturb_lsn };
	for (unsigned i = 0; i < cfg->nreplicas && i < MACHINE_MAX_DISKS; i++) {
		ret = disk_replica_open(cfg->replica[i], i, cfg->disks_shared ? DISK_REPLICA_SHARED : DISK_REPLICA_COPY,
					&b->replica[i], err, errlen);
		if (ret < 0)
			goto fail;
		ro.disk[i] = b->replica[i];
	}
	ret = replayer_create(m, (struct replay_source){ .next = channel_source_next, .ctx = b }, &ro, &b->replayer);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create the replayer: %s", strerror(-ret));
		goto fail;
	}
	/* A backup restored from an FT clone's state at N: the disk requests the guest submitted
	 * before N and whose completions come after it are in the state. The primary's back end ran
	 * them (drained before the state) ahead of every request after N, so the replicas take them
	 * first too, and their completions in the log find them. Not outputs: the replayer's output
	 * record stays the guest's from N. A pair started together has none. */
	unsigned pending = machine_reissue_disk_requests(m, (struct vm_world){ .ops = &pending_ops, .ctx = b });
	if (pending)
		diag_info("%u disk request(s) in flight in the restored state taken by the replicas", pending);
	*out = b;
	return 0;
fail:
	ft_backup_destroy(b);
	return ret;
}

void ft_backup_channel_config(const struct ft_backup_config *cfg, struct channel_config *cc)
{
	channel_config_init(cc);
	cc->vm_id = cfg->vm_id;
	cc->epoch = cfg->epoch;
	/* The Output Rule needs receipt, not replay: ack what the channel holds, so a reply leaves
	 * the primary as soon as the backup has the log, however far its replay is behind. */
	cc->ack_on_receipt = true;
	cc->transport = cfg->rdma ? CHANNEL_RDMA : CHANNEL_TCP;
	cc->key = cfg->key;
	if (cfg->timeout_ms)
		cc->timeout_ms = cfg->timeout_ms;
	if (cfg->heartbeat_ms)
		cc->heartbeat_ms = cfg->heartbeat_ms;
}

int ft_backup_listen(struct ft_backup *b, char *err, size_t errlen)
{
	struct channel_config cc;

	ft_backup_channel_config(&b->cfg, &cc);
	struct channel_err cerr = { 0 };
	int ret = channel_listen(&cc, b->cfg.listen, &b->listener, &cerr);
	if (ret < 0)
		snprintf(err, errlen, "cannot listen on %s: %s", b->cfg.listen, cerr.msg);
	return ret;
}

bool ft_backup_refused(int ret)
{
	return ret == -EPERM || ret == -ESTALE || ret == -EPROTONOSUPPORT || ret == -EPROTOTYPE || ret == -EPROTO ||
	       ret == -ENOPROTOOPT;
}

int ft_backup_accept(struct ft_backup *b, int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = time_mono_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
	for (;;) {
		struct channel_err cerr = { 0 };
		int wait = -1;
		if (timeout_ms >= 0) {
			uint64_t now = time_mono_ns();
			wait = now >= deadline ? 0 : (int)((deadline - now) / 1000000u);
		}
		int ret = channel_accept(b->listener, wait, &b->ch, &cerr);
		if (ret == 0)
			break;
		if (ft_backup_refused(ret)) {
			diag_warn("refused a primary: %s", cerr.msg);
			continue;
		}
		snprintf(err, errlen, "accepting the primary: %s", cerr.msg);
		return ret;
	}
	channel_listener_close(b->listener);
	b->listener = NULL;
	ft_state_set(&b->fs, S(WAITING), FT_STATE_PROTECTED, NULL);
	return 0;
}

void ft_backup_adopt(struct ft_backup *b, struct channel *ch)
{
	b->ch = ch;
	ft_state_set(&b->fs, S(WAITING), FT_STATE_PROTECTED, NULL);
}

int ft_backup_run(struct ft_backup *b, char *msg, size_t msglen)
{
	int status = 0;
	enum machine_exit exit = machine_run(b->machine, replayer_world(b->replayer), ICOUNT_MAX, &status);

	enum replay_result res = replayer_finish(b->replayer, exit, status, msg, msglen);
	switch (res) {
	case REPLAY_MATCHED:
		ft_state_set(&b->fs, S(PROTECTED), FT_STATE_DONE, NULL);
		if (exit == MACHINE_EXIT_ERROR) {
			/* Not the guest: the primary ended its log (`ftvm ft disable`, or it was stopped). */
			char verdict[256];
			b->log_ended = true;
			snprintf(verdict, sizeof(verdict), "%s", msg);
			snprintf(msg, msglen, "the primary ended the log at icount %llu (%s): this backup stops, "
					      "never going live", (unsigned long long)machine_icount(b->machine), verdict);
			return 0;
		}
		return status;
	case REPLAY_DIVERGED:
	case REPLAY_BAD_LOG:
		/* End FT without claiming: the primary wins the arbiter and runs on. */
		diag_error("FT ended: %s", msg);
		ft_state_set(&b->fs, S(PROTECTED), FT_STATE_HALTED, msg);
		channel_close(b->ch);
		b->ch = NULL;
		return -EPROTO;
	case REPLAY_INCOMPLETE:
		break;
	}
	/* The log ended without END: the primary is lost. */
	const char *why = b->ch ? channel_error(b->ch) : "log ended";
	char reason[256];
	snprintf(reason, sizeof(reason), "%s", why && *why ? why : "log ended");
	struct vm_world live;
	int ret = go_live(b, reason, &live, msg, msglen);
	if (ret < 0)
		return ret;
	snprintf(msg, msglen, "live as primary at icount %llu", (unsigned long long)machine_icount(b->machine));
	return FT_BACKUP_LIVE;
}

bool ft_backup_superseded(struct ft_backup *b)
{
	struct arbiter_decision d[8];
	size_t n = 0;
	if (!b->log_ended || !b->arb || arbiter_decided(b->arb, d, 8, &n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (d[i].epoch > b->cfg.epoch)
			return true;
	return false;
}

void ft_backup_get_status(struct ft_backup *b, struct ft_status *st)
{
	struct ft_state_snapshot fss;

	memset(st, 0, sizeof(*st));
	ft_state_snapshot(&b->fs, &fss);
	snprintf(st->role, sizeof(st->role), "%s", fss.role);
	st->state = fss.state;
	st->state_ms = fss.state_ms;
	snprintf(st->reason, sizeof(st->reason), "%s", fss.reason);
	st->epoch = b->cfg.epoch;
	st->icount = machine_progress(b->machine);
	st->log_bytes = atomic_load(&b->log_bytes);
	st->log_records = atomic_load(&b->log_records);
	st->last_lsn = atomic_load(&b->last_lsn);
	st->acked_lsn = st->last_lsn;
	st->failovers = atomic_load(&b->failovers);
	st->last_failover_gap_ms = (double)atomic_load(&b->last_gap_us) / 1e3;
	snprintf(st->peer_state, sizeof(st->peer_state), "%s",
		 st->state == FT_STATE_PROTECTED ? "up" : st->state == FT_STATE_WAITING ? "waiting" : "gone");
}

void ft_backup_destroy(struct ft_backup *b)
{
	if (!b)
		return;
	if (b->ch)
		channel_close(b->ch);
	if (b->listener)
		channel_listener_close(b->listener);
	replayer_destroy(b->replayer);
	close_replicas(b);
	if (b->arb)
		arbiter_close(b->arb);
	if (b->fs_ready)
		ft_state_destroy(&b->fs);
	free(b);
}
