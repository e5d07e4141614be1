/*
 * vm_migrate.c — the "migrate" control command (see vm_migrate.h). The handler checks the request
 * and loads the channel key on the server thread; the job holds the node's machine (the read side
 * of vm_control's lock, so a guest reset cannot replace it meanwhile), runs the migration on a thread of its own
 * and copies its statistics into the job's status every 100 ms until it ends.
 */
#include "cmd/vm_migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/ft_node.h"
#include "cmd/vm_control.h"
#include "logchannel/channel.h"
#include "migrate/mig_source.h"
#include "migrate/mig_stream.h"

#define MIGRATE_MAX_DOWNTIME_MS 60000
#define MIGRATE_MAX_BANDWIDTH_MBIT 1000000

struct migrate_arg {
	char to[256];
	struct channel_key key;
	unsigned downtime_ms, max_rounds;
	uint64_t bandwidth_mbit;
	bool copy_storage;
	enum channel_transport transport;
};

/* An integer member in [lo, hi], or def when absent. */
static int int_member(const json_t *req, const char *name, long long lo, long long hi, long long def, long long *out,
		      char *err, size_t errlen)
{
	const json_t *v = json_object_get(req, name);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "\"%s\" must be an integer in %lld..%lld", name, lo, hi);
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

static int migrate_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct vm_control *vc = ctx;
	const json_t *to = json_object_get(req, "to"), *key = json_object_get(req, "channel_key");
	const json_t *copy = json_object_get(req, "copy_storage");
	const json_t *transport = json_object_get(req, "transport");
	long long downtime, bw, rounds;
	(void)answer;
	if (vc->ft_status && vc->ft_status != ft_node_status) {
		struct ft_status st;
		vc->ft_status(vc->ft_ctx, &st);
		snprintf(err, errlen, "migrate: refused on an FT %s (%s): migrate its primary", vc->role,
			 ft_state_name(st.state));
		return -EBUSY;
	}
	if (!json_is_string(to) || !json_string_length(to) || json_string_length(to) >= sizeof(((struct migrate_arg *)0)->to)) {
		snprintf(err, errlen, "\"to\" must be HOST:PORT of an `ftvm incoming`");
		return -EINVAL;
	}
	if (!json_is_string(key)) {
		snprintf(err, errlen, "\"channel_key\" must name the key file the destination uses");
		return -EINVAL;
	}
	if (copy && !json_is_boolean(copy)) {
		snprintf(err, errlen, "\"copy_storage\" must be true or false");
		return -EINVAL;
	}
	bool rdma = transport && json_is_string(transport) && !strcmp(json_string_value(transport), "rdma");
	if (transport && !rdma && !(json_is_string(transport) && !strcmp(json_string_value(transport), "tcp"))) {
		snprintf(err, errlen, "\"transport\" must be \"tcp\" or \"rdma\"");
		return -EINVAL;
	}
	if (int_member(req, "downtime_ms", 1, MIGRATE_MAX_DOWNTIME_MS, MIG_DEFAULT_DOWNTIME_MS, &downtime, err, errlen) ||
	    int_member(req, "bandwidth_mbit", 0, MIGRATE_MAX_BANDWIDTH_MBIT, 0, &bw, err, errlen) ||
	    int_member(req, "max_rounds", 2, MIG_MAX_ROUNDS, MIG_DEFAULT_MAX_ROUNDS, &rounds, err, errlen))
		return -EINVAL;
	struct migrate_arg *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(a->to, sizeof(a->to), "%s", json_string_value(to));
	a->downtime_ms = (unsigned)downtime;
	a->bandwidth_mbit = (uint64_t)bw;
	a->max_rounds = (unsigned)rounds;
	a->copy_storage = json_is_true(copy);
	a->transport = rdma ? CHANNEL_RDMA : CHANNEL_TCP;
	struct channel_err cerr = { 0 };
	int ret = channel_key_load(json_string_value(key), &a->key, &cerr);
	if (ret) {
		snprintf(err, errlen, "%s", cerr.msg);
		free(a);
		return ret;
	}
	*job_arg = a;
	return 0;
}

static json_t *stats_json(const struct mig_stats *s)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "phase", s->phase,
			 "iteration", (json_int_t)s->iteration, "memory_total", (json_int_t)s->memory_total,
			 "memory_processed", (json_int_t)s->memory_processed, "memory_remaining",
			 (json_int_t)s->memory_remaining, "memory_touched", (json_int_t)s->memory_touched,
			 "memory_dirty_rate", (json_int_t)s->dirty_rate,
			 "data_transferred", (json_int_t)s->data_transferred, "link_bps", (json_int_t)s->link_bps,
			 "downtime_expected_ms", (json_int_t)s->expected_downtime_ms, "downtime_ms",
			 (json_int_t)s->downtime_ms, "time_elapsed_ms", (json_int_t)s->total_time_ms,
			 "throttle_pct", (json_int_t)s->throttle_pct, "disk_total", (json_int_t)s->disk_total,
			 "disk_processed", (json_int_t)s->disk_processed, "disk_remaining", (json_int_t)s->disk_remaining,
			 "arbiter_epoch", (json_int_t)s->arbiter_epoch, "frames_forwarded", (json_int_t)s->frames_forwarded,
			 "frames_dropped", (json_int_t)s->frames_dropped, "downtime_us", (json_int_t)s->downtime_us,
			 "downtime_sent_us", (json_int_t)s->downtime_sent_us, "downtime_fixed_ms",
			 (json_int_t)s->expected_fixed_ms);
}

static void publish(struct control_job *job, const struct mig_stats *s)
{
	control_job_phase(job, s->phase);
	control_job_progress(job, s->memory_processed + s->disk_processed, s->memory_total + s->disk_total);
	json_t *o = stats_json(s);
	if (o)
		control_job_result(job, "migration", o);
}

static int migrate_job(void *ctx, void *arg, struct control_job *job, char *err, size_t errlen)
{
	struct vm_control *vc = ctx;
	struct migrate_arg *a = arg;
	struct mig_job *mj = calloc(1, sizeof(*mj));
	struct mig_stats s;
	int ret;
	if (!mj) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_rwlock_rdlock(&vc->lock);
	struct mig_source_config cfg = {
		.m = vc->c->m, .world = vc->c->world, .to = a->to, .transport = a->transport, .key = &a->key,
		.vm_id = vc->vm_name,
		.epoch = 0, .downtime_ms = a->downtime_ms, .bandwidth_mbit = a->bandwidth_mbit,
		.max_rounds = a->max_rounds, .copy_storage = a->copy_storage, .arbiter = vc->arbiter,
	};
	/* An FT node (docs/migration.md, "Migrating an FT node"): its own arbiter area judges. */
	struct ft_node *node = vc->ft_status == ft_node_status ? vc->ft_ctx : NULL;
	if (node && (ret = ft_node_migrate_begin(node, &cfg, err, errlen)) != 0) {
		pthread_rwlock_unlock(&vc->lock);
		goto out;
	}
	ret = cfg.m ? mig_job_start(mj, &cfg) : -ESRCH;
	if (ret) {
		if (node)
			ft_node_migrate_end(node, ret, 0);
		pthread_rwlock_unlock(&vc->lock);
		snprintf(err, errlen, "cannot start the migration: %s", strerror(-ret));
		goto out;
	}
	while (!mig_job_done(mj)) {
		mig_job_get_stats(mj, &s);
		publish(job, &s);
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	}
	ret = mig_job_join(mj);
	mig_job_get_stats(mj, &s);
	if (node)
		ft_node_migrate_end(node, ret, s.arbiter_epoch);
	pthread_rwlock_unlock(&vc->lock);
	publish(job, &s);
	/* The arbiter kept the VM here in the epoch its hand-over would have opened. */
	if (vc->arbiter.path && s.arbiter_epoch > vc->arbiter.epoch)
		vc->arbiter.epoch = s.arbiter_epoch;
	if (ret)
		snprintf(err, errlen, "%s (the VM runs on here)", s.error);
out:
	if (mj->lock_inited)
		pthread_mutex_destroy(&mj->lock);
	free(mj);
	free(a);
	return ret;
}

static void migrate_arg_free(void *arg)
{
	free(arg);
}

const struct control_command vm_migrate_command = {
	.name = "migrate",
	.handler = migrate_handler,
	.job = migrate_job,
	.job_arg_free = migrate_arg_free,
};
