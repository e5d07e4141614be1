/*
 * vmtab_watch.c — the table's monitor thread (vmtab.c, 4.) and what it learns: processes that
 * ended, each running VM's status (a pause made by someone else, the FT role, a backup that went
 * live) and the figures vmtab_stats() reports.
 */
#define DIAG_MODULE "vmtab"
#include "daemon/vmtab_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/diag.h"
#include "util/time.h"

static const char *ft_role_of(const struct vm *vm, const json_t *st)
{
	const char *role = json_string_value(json_object_get(st, "role"));
	const char *state = json_string_value(json_object_get(st, "state"));
	if (!role || !json_object_get(st, "epoch"))
		return "off";   /* not an FT node (an `ftvm run` with --arbiter is one: FT can be enabled) */
	if (!strcmp(role, "spare"))
		return "spare";   /* waiting for its primary's clone */
	if (state && (!strcmp(state, "alone") || !strcmp(state, "going-live") || !strcmp(state, "arbitrating")))
		return "alone";
	return !strcmp(role, "backup") ? "backup" : "primary";
}

/* A status answer of the VM's current run, under the lock (4.). */
static void apply_status(struct vmtab *t, struct vm *vm, const json_t *st)
{
	snprintf(vm->ft_role, sizeof(vm->ft_role), "%s", ft_role_of(vm, st));
	json_t *ic = json_object_get(st, "icount");
	if (json_is_integer(ic) && json_integer_value(ic) >= 0)
		vm->instructions = (uint64_t)json_integer_value(ic);
	const char *role = json_string_value(json_object_get(st, "role"));
	const char *state = json_string_value(json_object_get(st, "state"));
	bool backup_half = !strcmp(vm->proc.role, "backup") || !strcmp(vm->proc.role, "spare");
	if (!vm->failed_over && backup_half && role && state &&
	    (!strcmp(role, "primary") || !strcmp(state, "going-live") || !strcmp(state, "alone"))) {
		/* This host's backup took over: the VM resumed here (vmtab.h). */
		vm->failed_over = true;
		if (vm->state == VMTAB_RUNNING) {
			vm->reason = VMTAB_REASON_FAILED_OVER;
			vmtab_emit(t, vm, VMTAB_EV_RESUMED, VMTAB_REASON_FAILED_OVER);
		}
	}
	if (vm->control_busy)
		return;
	bool paused = json_is_true(json_object_get(st, "paused"));
	if (paused && vm->state == VMTAB_RUNNING) {
		vm->state = VMTAB_PAUSED;
		vm->reason = VMTAB_REASON_USER;
		vmtab_emit(t, vm, VMTAB_EV_SUSPENDED, VMTAB_REASON_USER);
	} else if (!paused && vm->state == VMTAB_PAUSED) {
		vm->state = VMTAB_RUNNING;
		vm->reason = VMTAB_REASON_USER;
		vmtab_emit(t, vm, VMTAB_EV_RESUMED, VMTAB_REASON_USER);
	}
	pthread_cond_broadcast(&t->changed);
}

/* The process ended, under the lock. A transient VM goes with it: true then (vm is freed). */
static bool process_ended(struct vmtab *t, struct vm *vm, int wstatus)
{
	enum vmtab_reason why;
	if (vm->asked == ASK_DESTROY)
		why = VMTAB_REASON_DESTROYED;
	else if (vm->asked == ASK_SHUTDOWN || (wstatus != -1 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
		why = VMTAB_REASON_SHUTDOWN;
	else if (wstatus == -1)
		why = VMTAB_REASON_UNKNOWN;   /* a process of an earlier daemon: its exit status is lost */
	else
		why = VMTAB_REASON_FAILED;
	diag_info("%s: process %d ended (wait status %d)", vm->name, (int)vm->proc.pid, wstatus);
	vm->state = why == VMTAB_REASON_FAILED ? VMTAB_CRASHED : VMTAB_SHUTOFF;
	vm->reason = why;
	vmtab_emit(t, vm, VMTAB_EV_STOPPED, why);
	vm_proc_release(&vm->proc);
	vm->asked = ASK_NONE;
	vm->ft_role[0] = 0;
	vm->instructions = 0;
	pthread_cond_broadcast(&t->changed);
	if (!vm->transient)
		return false;
	vmtab_forget_transient(t, vm);
	return true;
}


/* The running VMs, copied under the lock for requests made without it. */
static struct running *running_list(struct vmtab *t, size_t *n)
{
	struct running *r = calloc(t->n ? t->n : 1, sizeof(*r));
	*n = 0;
	for (size_t i = 0; r && i < t->n; i++)
		if (vmtab_has_process(t->vms[i])) {
			snprintf(r[*n].name, sizeof(r[*n].name), "%s", t->vms[i]->name);
			r[(*n)++].id = t->vms[i]->proc.id;
		}
	return r;
}

struct vm *vmtab_same_run(struct vmtab *t, const struct running *r)
{
	struct vm *vm = vmtab_find_name(t, r->name, NULL);
	return vm && vmtab_has_process(vm) && vm->proc.id == r->id ? vm : NULL;
}

/* Reads every running VM's status (called without the lock). */
void vmtab_refresh_all(struct vmtab *t)
{
	size_t n;
	char err[256];
	pthread_mutex_lock(&t->lock);
	struct running *r = running_list(t, &n);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; r && i < n; i++) {
		json_t *st = vm_proc_ask(t->run_dir, r[i].name, "status", err, sizeof(err));
		if (!st)
			continue;   /* starting, or ending: the next round tells */
		pthread_mutex_lock(&t->lock);
		struct vm *vm = vmtab_same_run(t, &r[i]);
		if (vm)
			apply_status(t, vm, st);
		pthread_mutex_unlock(&t->lock);
		json_decref(st);
	}
	free(r);
}

static void reap_all(struct vmtab *t)
{
	int wstatus;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->n; i++) {
		struct vm *vm = t->vms[i];
		if (vmtab_has_process(vm) && vm_proc_reap(t->run_dir, vm->name, &vm->proc, &wstatus) &&
		    process_ended(t, vm, wstatus))
			i--;   /* it left the table: the next VM is at i now */
	}
	pthread_mutex_unlock(&t->lock);
}

void *vmtab_watch_main(void *arg)
{
	struct vmtab *t = arg;
	struct pollfd *fds = NULL;
	size_t cap = 0;
	uint64_t next_refresh = 0;

	for (;;) {
		pthread_mutex_lock(&t->lock);
		if (t->stop) {
			pthread_mutex_unlock(&t->lock);
			break;
		}
		if (cap < t->n + 1) {
			struct pollfd *f = realloc(fds, (t->n + 1) * sizeof(*f));
			if (f) {
				fds = f;
				cap = t->n + 1;
			}
		}
		size_t n = 0;
		if (fds) {
			fds[n++] = (struct pollfd){ .fd = t->wake_fd, .events = POLLIN };
			for (size_t i = 0; i < t->n && n < cap; i++)
				if (t->vms[i]->proc.pidfd >= 0)
					fds[n++] = (struct pollfd){ .fd = t->vms[i]->proc.pidfd, .events = POLLIN };
		}
		pthread_mutex_unlock(&t->lock);
		uint64_t now = time_mono_ms();
		int timeout = next_refresh > now ? (int)(next_refresh - now) : 0;
		if (fds && poll(fds, n, timeout) > 0 && (fds[0].revents & POLLIN)) {
			uint64_t v;
			(void)!read(t->wake_fd, &v, sizeof(v));
		}
		reap_all(t);
		if (time_mono_ms() >= next_refresh) {
			vmtab_refresh_all(t);
			reap_all(t);
			next_refresh = time_mono_ms() + t->poll_ms;
		}
	}
	free(fds);
	return NULL;
}

/* An FT node's state as its number in the order of common/ft_status.h (the names ftvm status
 * prints), -1 for another word. */
static int ft_state_index(const char *name)
{
	static const char *const names[] = { "waiting", "protected", "arbitrating", "going-live", "alone", "halted",
					     "done" };
	for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], name))
			return (int)i;
	return -1;
}

/* The clone's phase (docs/migration.md) as its number in clone_phases, -1 for none or another word. */
static const char *const clone_phases[] = { "setup", "precopy", "stop-and-copy", "completed", "failed", "cancelled" };

static int clone_phase_index(const char *name)
{
	for (size_t i = 0; name && i < sizeof(clone_phases) / sizeof(clone_phases[0]); i++)
		if (!strcmp(clone_phases[i], name))
			return (int)i;
	return -1;
}

const char *vmtab_clone_phase_name(int i)
{
	return i >= 0 && (size_t)i < sizeof(clone_phases) / sizeof(clone_phases[0]) ? clone_phases[i] : NULL;
}

/* A migration job's progress (the node's "job" of kind migrate) as migration_* numbers. */
static void migration_fields(json_t *out, const json_t *st)
{
	const json_t *job = json_object_get(st, "job");
	const char *kind = json_string_value(json_object_get(job, "kind"));
	const char *state = json_string_value(json_object_get(job, "state"));
	json_int_t done = json_integer_value(json_object_get(job, "bytes_done"));
	json_int_t total = json_integer_value(json_object_get(job, "bytes_total"));
	if (!kind || strcmp(kind, "migrate"))
		return;
	json_object_set_new(out, "migration_bytes", json_integer(done));
	json_object_set_new(out, "migration_remaining_bytes", json_integer(total > done ? total - done : 0));
	json_object_set_new(out, "migration_running", json_integer(state && !strcmp(state, "running")));
}

/* The status object flattened to numbers: nested objects as PARENT_KEY, booleans as 0/1. */
static void flatten(json_t *out, const char *prefix, const json_t *o)
{
	const char *key;
	json_t *v;
	char name[128];
	json_object_foreach((json_t *)o, key, v) {
		snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "_" : "", key);
		if (json_is_number(v))
			json_object_set_new(out, name, json_copy(v));
		else if (json_is_boolean(v) && strcmp(key, "ok") != 0)
			json_object_set_new(out, name, json_integer(json_is_true(v)));
		else if (json_is_object(v))
			flatten(out, name, v);
	}
}

int vmtab_stats(struct vmtab *t, const char *name, json_t **out)
{
	struct vm *vm;
	struct running r;
	char err[256];
	uint64_t cpu_ns = 0;

	*out = NULL;
	pthread_mutex_lock(&t->lock);
	int ret = vmtab_running_vm(t, name, "read", &vm, err, sizeof(err));
	if (!ret) {
		snprintf(r.name, sizeof(r.name), "%s", vm->name);
		r.id = vm->proc.id;
		cpu_ns = vm_proc_cpu_ns(&vm->proc);
	}
	pthread_mutex_unlock(&t->lock);
	if (ret)
		return ret;
	json_t *st = vm_proc_ask(t->run_dir, r.name, "status", err, sizeof(err));
	if (!st)
		return -EIO;
	json_t *o = json_object();
	if (o) {
		flatten(o, "", st);
		int fs = ft_state_index(json_string_value(json_object_get(st, "state")));
		if (json_object_get(st, "epoch") && fs >= 0)
			json_object_set_new(o, "ft_state", json_integer(fs));
		int cp = clone_phase_index(json_string_value(json_object_get(st, "clone_phase")));
		if (cp >= 0)
			json_object_set_new(o, "clone_phase", json_integer(cp));
		migration_fields(o, st);
		json_object_set_new(o, "cpu_time_ns", json_integer((json_int_t)cpu_ns));
	}
	pthread_mutex_lock(&t->lock);
	vm = vmtab_same_run(t, &r);
	if (vm)
		apply_status(t, vm, st);
	pthread_mutex_unlock(&t->lock);
	json_decref(st);
	*out = o;
	return o ? 0 : -ENOMEM;
}
