/*
 * vm_control.c — see vm_control.h. The commands: `snapshot` (docs/control.md), a job whose work is
 * host/snapshot_live.c's, run with the machine lock held so the machine cannot be replaced under it;
 * `pause` and `resume`, which hold and let go the vCPU.
 */
#define DIAG_MODULE "run"
#include "cmd/vm_control.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/snapshot_live.h"
#include "host/state_file.h"
#include "host/world_live.h"
#include "util/diag.h"
#include "vm/machine.h"

struct snapshot_request {
	char path[PATH_MAX];
	bool force, stop;
};

/* An optional boolean member: absent is false; anything but a boolean is refused. */
static int optional_bool(const json_t *req, const char *key, bool *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(req, key);
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "snapshot: \"%s\" must be true or false", key);
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

static int snapshot_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct vm_control *vc = ctx;
	uid_t peer = control_peer_uid();
	(void)answer;
	/* The file is written by this node, as its user: only that user and root may name one. */
	if (peer != 0 && peer != geteuid()) {
		snprintf(err, errlen, "snapshot: only root and the node's user may save its VM (uid %u may not)",
			 (unsigned)peer);
		return -EPERM;
	}
	const char *path = json_string_value(json_object_get(req, "path"));
	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX - 64) {
		snprintf(err, errlen, "snapshot: \"path\" must be an absolute file name (at most %d bytes)", PATH_MAX - 65);
		return -EINVAL;
	}
	struct snapshot_request *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->path, sizeof(r->path), "%s", path);
	int ret = optional_bool(req, "force", &r->force, err, errlen);
	if (!ret)
		ret = optional_bool(req, "stop", &r->stop, err, errlen);
	if (!ret && r->stop && vc->ft_status) {
		snprintf(err, errlen, "snapshot: --stop is refused on an FT primary: its backup would take over; "
				      "stop the pair, or snapshot without --stop");
		ret = -EINVAL;
	}
	if (!ret && !vc->c->world) {
		snprintf(err, errlen, "snapshot: this node has no live VM to save");
		ret = -EINVAL;
	}
	if (!ret)
		ret = state_file_check_target(path, r->force, err, errlen);
	if (ret) {
		free(r);
		return ret;
	}
	*job_arg = r;
	return 0;
}

static void job_phase(void *ctx, const char *phase)
{
	control_job_phase(ctx, phase);
}

static void job_bytes(void *ctx, uint64_t done, uint64_t total)
{
	control_job_progress(ctx, done, total);
}

static bool job_cancelled(void *ctx)
{
	return control_job_cancelled(ctx);
}

static int snapshot_job(void *ctx, void *arg, struct control_job *job, char *err, size_t errlen)
{
	struct vm_control *vc = ctx;
	struct snapshot_request *r = arg;
	struct snapshot_live_progress progress = {
		.phase = job_phase, .bytes = job_bytes, .cancelled = job_cancelled, .ctx = job,
	};
	struct snapshot_live_result res;

	pthread_rwlock_rdlock(&vc->lock);
	struct machine *m = vc->c->m;
	int ret = m ? snapshot_live_save(m, r->path, r->force, r->stop, &progress, &res, err, errlen) : -ESRCH;
	if (!m)
		snprintf(err, errlen, "snapshot: the VM is being rebuilt, try again");
	if (ret == 0 && r->stop) {
		/* The file is complete: the VM ends here, without executing anything more. */
		world_live_request_stop(vc->c->world);
		machine_resume(m);
	}
	pthread_rwlock_unlock(&vc->lock);
	if (ret == 0) {
		control_job_result(job, "path", json_string(r->path));
		control_job_result(job, "icount", json_integer((json_int_t)res.icount));
		control_job_result(job, "bytes", json_integer((json_int_t)res.bytes));
		control_job_result(job, "ram_touched", json_integer((json_int_t)res.ram_touched));
		control_job_result(job, "pages_copied", json_integer((json_int_t)res.pages_copied));
		control_job_result(job, "pages_final", json_integer((json_int_t)res.pages_final));
		control_job_result(job, "rounds", json_integer(res.rounds));
		control_job_result(job, "pause_ms", json_real((double)res.pause_ns / 1e6));
		control_job_result(job, "total_ms", json_real((double)res.total_ns / 1e6));
		control_job_result(job, "stopped", json_boolean(r->stop));
		control_job_phase(job, "saved");
	}
	free(r);
	return ret;
}

/* pause / resume: the vCPU held at a slice boundary by machine_pause() (nothing is injected, the
 * guest sees only time passing), let go by machine_resume(). vc->paused is the server thread's:
 * handlers and status run there, one at a time. */
static int pause_resume(struct vm_control *vc, bool pause, json_t *answer, char *err, size_t errlen)
{
	const char *verb = pause ? "pause" : "resume";
	uid_t peer = control_peer_uid();
	if (peer != 0 && peer != geteuid()) {
		snprintf(err, errlen, "%s: only root and the node's user may %s its VM (uid %u may not)", verb, verb,
			 (unsigned)peer);
		return -EPERM;
	}
	if (vc->paused == pause) {
		snprintf(err, errlen, "%s: the VM is %s", verb, pause ? "already paused" : "not paused");
		return -EBUSY;
	}
	int ret = 0;
	pthread_rwlock_rdlock(&vc->lock);
	struct machine *m = vc->c->m;
	if (!m) {
		snprintf(err, errlen, "%s: the VM is being rebuilt, try again", verb);
		ret = -EBUSY;
	} else if (pause) {
		ret = machine_pause(m);
		if (ret)
			snprintf(err, errlen, "pause: %s", strerror(-ret));
	} else {
		machine_resume(m);
	}
	pthread_rwlock_unlock(&vc->lock);
	if (ret == 0) {
		vc->paused = pause;
		json_object_set_new(answer, "paused", json_boolean(pause));
	}
	return ret;
}

static int pause_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	return pause_resume(ctx, true, answer, err, errlen);
}

static int resume_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	return pause_resume(ctx, false, answer, err, errlen);
}

static const struct control_command vm_commands[] = {
	{ .name = "snapshot", .handler = snapshot_handler, .job = snapshot_job, .job_arg_free = free },
	{ .name = "pause", .handler = pause_handler },
	{ .name = "resume", .handler = resume_handler },
};

int vm_control_init(struct vm_control *vc, const char *role, struct vm_command *c, control_status_fn *ft_status,
		    void *ft_ctx)
{
	memset(vc, 0, sizeof(*vc));
	int ret = pthread_rwlock_init(&vc->lock, NULL);
	if (ret)
		return -ret;
	vc->role = role;
	vc->c = c;
	vc->ft_status = ft_status;
	vc->ft_ctx = ft_ctx;
	vc->inited = true;
	return 0;
}

void vm_control_lock(struct vm_control *vc)
{
	if (vc->inited)
		pthread_rwlock_wrlock(&vc->lock);
}

void vm_control_unlock(struct vm_control *vc)
{
	if (vc->inited)
		pthread_rwlock_unlock(&vc->lock);
}

void vm_control_destroy(struct vm_control *vc)
{
	if (vc->inited)
		pthread_rwlock_destroy(&vc->lock);
	vc->inited = false;
}

static void ft_status(void *ctx, struct ft_status *st)
{
	struct vm_control *vc = ctx;
	vc->ft_status(vc->ft_ctx, st);
}

/* A node without FT: who it is and how far its guest got. */
static void status_fields(void *ctx, json_t *answer)
{
	struct vm_control *vc = ctx;
	json_object_set_new(answer, "paused", json_boolean(vc->paused));
	if (vc->ft_status)
		return;
	pthread_rwlock_rdlock(&vc->lock);
	icount_t now = vc->c->m ? machine_progress(vc->c->m) : 0;
	pthread_rwlock_unlock(&vc->lock);
	json_object_set_new(answer, "role", json_string(vc->role));
	json_object_set_new(answer, "state", json_string(vc->paused ? "paused" : "running"));
	json_object_set_new(answer, "icount", json_integer((json_int_t)now));
}

void vm_control_start(struct vm_control *vc, const struct control_options *co, struct control_server **ctl)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(vm_commands) / sizeof(vm_commands[0]) && n < CONTROL_MAX_COMMANDS; i++)
		vc->commands[n++] = vm_commands[i];
	for (size_t i = 0; i < vc->nextra && n < CONTROL_MAX_COMMANDS; i++)
		vc->commands[n++] = vc->extra[i];
	struct control_config cc = {
		.status = vc->ft_status ? ft_status : NULL,
		.status_fields = status_fields,
		.ctx = vc,
		.commands = vc->commands,
		.ncommands = n,
	};
	vc->vm_name = co->vm;
	control_options_start(co, vc->role, &cc, ctl);
}

int vm_control_run_live(struct vm_control *vc, char *err, size_t errlen)
{
	struct vm_command *c = vc->c;
	enum machine_exit why;
	int status;
	for (;;) {
		why = machine_run(c->m, world_live_world(c->world), ICOUNT_MAX, &status);
		diag_info("machine stopped (%d, status %d) at icount %llu", why, status,
			  (unsigned long long)machine_icount(c->m));
		world_live_flush(c->world);
		if (why != MACHINE_EXIT_RESET || c->opts.no_reboot)
			break;
		vm_control_lock(vc);
		machine_destroy(c->m);
		c->m = NULL;
		world_live_reset(c->world);
		int ret = machine_create(&c->mc, &c->m, err, errlen);
		vm_control_unlock(vc);
		if (ret)
			return ret;
	}
	if (vc->run_ended)
		vc->run_ended(vc->run_ended_ctx);
	/* A job (a migration) uses the machine and the live world under the lock: let it end before
	 * the world goes away (a guest that powered off meanwhile is migrated powered off). */
	vm_control_lock(vc);
	vm_control_unlock(vc);
	return vm_command_finish(c, why, status, NULL);
}
