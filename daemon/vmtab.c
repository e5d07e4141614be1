/*
 * vmtab.c — the host daemon's table of VMs (vmtab.h): definitions in STATE_DIR/vms (vmtab_store.c),
 * one `ftvm` process per running VM (vm_proc.h), and a monitor thread that notices what happens to
 * them (vmtab_watch.c). This file: the table, its lookups, its verbs, its subscribers.
 *
 * 1. One mutex guards the table, every VM in it and the subscriber list; `changed` is broadcast on
 *    every change of a VM's run state, so that destroy can wait for the process to be gone.
 * 2. Nothing slow runs under the mutex: a request to a VM's control socket (status, pause, resume)
 *    is made with the mutex released, and its outcome applied only if the VM is still in the same
 *    run (same id) when the mutex is taken again.
 * 3. Events are delivered under the mutex, so every subscriber sees them in the order they
 *    happened; a subscriber must not block or call back into the table (vmtab.h).
 * 4. The monitor thread (vmtab_watch.c) sleeps in poll() on the running VMs' pidfds and an eventfd
 *    (woken when a VM starts and when the table closes), at most poll_ms: each round it collects
 *    the processes that ended, then reads every running VM's status, which tells a pause made by
 *    someone else, a backup that went live after a failover, and the figures `stats` and the
 *    metrics report.
 */
#define DIAG_MODULE "vmtab"
#include "daemon/vmtab_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util/diag.h"
#include "util/time.h"

#define DEFAULT_POLL_MS 500
#define DESTROY_WAIT_MS 4000    /* SIGKILLed process: reaped by the monitor well before this */

const char *vmtab_state_name(enum vmtab_state s)
{
	static const char *const names[] = { "shutoff", "running", "paused", "stopping", "crashed" };
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

const char *vmtab_reason_name(enum vmtab_reason r)
{
	static const char *const names[] = { "unknown", "booted", "failed-over", "user", "shutdown", "destroyed",
					     "failed" };
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

const char *vmtab_event_name(enum vmtab_event e)
{
	static const char *const names[] = { "defined", "undefined", "started", "suspended", "resumed", "stopped" };
	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "unknown";
}

bool vmtab_has_process(const struct vm *vm)
{
	return vm->proc.pid > 0;
}

static void info_of(const struct vm *vm, struct vmtab_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", vm->name);
	memcpy(out->uuid, vm->uuid, 16);
	out->id = vmtab_has_process(vm) ? vm->proc.id : -1;
	out->state = vm->state;
	out->reason = vm->reason;
	out->max_mem_kib = out->mem_kib = vm->mem_kib;
	out->vcpus = 1;
	out->cpu_time_ns = vmtab_has_process(vm) ? vm_proc_cpu_ns(&vm->proc) : 0;
	out->instructions = vmtab_has_process(vm) ? vm->instructions : 0;
	out->persistent = !vm->transient;
	out->autostart = vm->autostart;
	out->ft_spare = vm->spare;
	snprintf(out->ft_pair, sizeof(out->ft_pair), "%s", vm->pair);
	snprintf(out->ft_role, sizeof(out->ft_role), "%s", vmtab_has_process(vm) ? vm->ft_role : "");
}

/* Under the lock (3.). */
void vmtab_emit(struct vmtab *t, const struct vm *vm, enum vmtab_event ev, enum vmtab_reason detail)
{
	struct vmtab_info info;
	info_of(vm, &info);
	diag_info("%s: %s (%s)", vm->name, vmtab_event_name(ev), vmtab_reason_name(detail));
	for (size_t i = 0; i < t->nsubs; i++)
		t->subs[i].fn(&info, ev, detail, t->subs[i].opaque);
}

struct vm *vmtab_find_name(struct vmtab *t, const char *name, size_t *pos)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(t->vms[mid]->name, name);
		if (c == 0) {
			if (pos)
				*pos = mid;
			return t->vms[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

struct vm *vmtab_find_uuid(struct vmtab *t, const uint8_t uuid[16])
{
	for (size_t i = 0; i < t->n; i++)
		if (!memcmp(t->vms[i]->uuid, uuid, 16))
			return t->vms[i];
	return NULL;
}

int vmtab_insert(struct vmtab *t, struct vm *vm)
{
	size_t pos;
	if (vmtab_find_name(t, vm->name, &pos))
		return -EEXIST;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct vm **v = realloc(t->vms, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->vms = v;
		t->cap = cap;
	}
	memmove(&t->vms[pos + 1], &t->vms[pos], (t->n - pos) * sizeof(*t->vms));
	t->vms[pos] = vm;
	t->n++;
	return 0;
}

void vmtab_vm_free(struct vm *vm)
{
	if (!vm)
		return;
	vm_proc_release(&vm->proc);
	free(vm->xml);
	free(vm->run_ft);
	free(vm);
}

void vmtab_take_doc(struct vm *vm, struct domain_doc *doc)
{
	snprintf(vm->name, sizeof(vm->name), "%s", doc->name);
	memcpy(vm->uuid, doc->uuid, 16);
	vm->mem_kib = doc->mem_kib;
	snprintf(vm->role, sizeof(vm->role), "%s", doc->role);
	free(vm->xml);
	free(vm->run_ft);
	vm->xml = doc->xml;
	vm->run_ft = doc->run_ft;
	doc->xml = NULL;
	doc->run_ft = NULL;
}

void vmtab_wake_monitor(struct vmtab *t)
{
	uint64_t one = 1;
	(void)!write(t->wake_fd, &one, sizeof(one));
}

int vmtab_list(struct vmtab *t, struct vmtab_info **out, size_t *n)
{
	pthread_mutex_lock(&t->lock);
	struct vmtab_info *v = calloc(t->n ? t->n : 1, sizeof(*v));
	if (v) {
		for (size_t i = 0; i < t->n; i++)
			info_of(t->vms[i], &v[i]);
		*n = t->n;
	}
	pthread_mutex_unlock(&t->lock);
	*out = v;
	return v ? 0 : -ENOMEM;
}

int vmtab_lookup_name(struct vmtab *t, const char *name, struct vmtab_info *out)
{
	pthread_mutex_lock(&t->lock);
	struct vm *vm = vmtab_find_name(t, name, NULL);
	if (vm)
		info_of(vm, out);
	pthread_mutex_unlock(&t->lock);
	return vm ? 0 : -ENOENT;
}

int vmtab_lookup_uuid(struct vmtab *t, const uint8_t uuid[16], struct vmtab_info *out)
{
	pthread_mutex_lock(&t->lock);
	struct vm *vm = vmtab_find_uuid(t, uuid);
	if (vm)
		info_of(vm, out);
	pthread_mutex_unlock(&t->lock);
	return vm ? 0 : -ENOENT;
}

int vmtab_lookup_id(struct vmtab *t, int id, struct vmtab_info *out)
{
	struct vm *vm = NULL;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->n && !vm && id > 0; i++)
		if (vmtab_has_process(t->vms[i]) && t->vms[i]->proc.id == id)
			vm = t->vms[i];
	if (vm)
		info_of(vm, out);
	pthread_mutex_unlock(&t->lock);
	return vm ? 0 : -ENOENT;
}

static bool stopped(const struct vm *vm)
{
	return !vmtab_has_process(vm);
}

int vmtab_define(struct vmtab *t, const char *xml, struct vmtab_info *out, char *err, size_t errlen)
{
	struct domain_doc doc;
	int ret = domain_doc_parse(xml, strlen(xml), t->run_dir, &doc, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&t->lock);
	struct vm *old = vmtab_find_name(t, doc.name, NULL), *other = vmtab_find_uuid(t, doc.uuid), *vm = NULL;
	char uuid[37];
	if (old && memcmp(old->uuid, doc.uuid, 16)) {
		domain_uuid_format(old->uuid, uuid);
		snprintf(err, errlen, "VM %s is already defined with UUID %s", doc.name, uuid);
		ret = -EEXIST;
	} else if (other && other != old) {
		domain_uuid_format(doc.uuid, uuid);
		snprintf(err, errlen, "UUID %s is already VM %s's", uuid, other->name);
		ret = -EEXIST;
	} else if (old && !stopped(old)) {
		snprintf(err, errlen, "VM %s is running: stop it before redefining it", doc.name);
		ret = -EBUSY;
	} else if (!old && !(vm = calloc(1, sizeof(*vm)))) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	}
	if (ret)
		goto out;
	if (old) {
		char *keep = old->xml;
		old->xml = doc.xml;
		ret = vmtab_store_xml(t, old, err, errlen);
		old->xml = keep;
		if (!ret)
			vmtab_take_doc(old, &doc);
		vm = old;
	} else {
		vm->proc.pidfd = -1;
		vm->state = VMTAB_SHUTOFF;
		vmtab_take_doc(vm, &doc);
		ret = vmtab_store_xml(t, vm, err, errlen);
		if (!ret && (ret = vmtab_insert(t, vm)) != 0)
			snprintf(err, errlen, "out of memory");
		if (ret) {
			char path[4200];
			vmtab_xml_path(t, vm->name, path, sizeof(path));
			if (ret == -ENOMEM)
				unlink(path);
			vmtab_vm_free(vm);
			vm = NULL;
		}
	}
	if (!ret) {
		vmtab_emit(t, vm, VMTAB_EV_DEFINED, VMTAB_REASON_UNKNOWN);
		if (out)
			info_of(vm, out);
	}
out:
	pthread_mutex_unlock(&t->lock);
	domain_doc_free(&doc);
	return ret;
}

static struct vm *find_or_err(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	struct vm *vm = vmtab_find_name(t, name, NULL);
	if (!vm)
		snprintf(err, errlen, "no VM named '%.64s'", name);
	return vm;
}

int vmtab_undefine(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	int ret = 0;
	size_t pos;
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	if (!vm) {
		ret = -ENOENT;
	} else if (!stopped(vm)) {
		snprintf(err, errlen, "VM %s is running: stop it before undefining it", name);
		ret = -EBUSY;
	} else {
		char path[4200];
		vmtab_xml_path(t, vm->name, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
		} else {
			static const char *const notes[] = { VMTAB_NOTE_AUTOSTART, VMTAB_NOTE_SPARE, VMTAB_NOTE_PAIR };
			char why[512];
			for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++)
				if (vmtab_store_note(t, name, notes[i], NULL, why, sizeof(why)))
					diag_warn("%s", why);
			vmtab_find_name(t, name, &pos);
			memmove(&t->vms[pos], &t->vms[pos + 1], (t->n - pos - 1) * sizeof(*t->vms));
			t->n--;
			vmtab_emit(t, vm, VMTAB_EV_UNDEFINED, VMTAB_REASON_UNKNOWN);
			vmtab_vm_free(vm);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

char *vmtab_xml(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	char *xml = NULL;
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	if (vm && !(xml = strdup(vm->xml)))
		snprintf(err, errlen, "out of memory");
	pthread_mutex_unlock(&t->lock);
	return xml;
}

/* Spawns vm's process (under the lock, vm stopped). */
static int start_locked(struct vmtab *t, struct vm *vm, char *err, size_t errlen)
{
	char path[4200];
	vmtab_def_path(t, vm, path, sizeof(path));
	const char *role = vm->spare ? "spare" : vm->role;
	/* `ftvm run` takes FT settings from its command line only: an FT node alone, FT can be enabled. */
	const char *ft[DOMAIN_RUN_FT_ARGS + 1];
	bool with_ft = !strcmp(role, "run") && vm->run_ft;
	if (with_ft)
		domain_run_ft_argv(vm->run_ft, ft);
	int ret = vm_proc_start(t->ftvm, t->run_dir, vm->name, path, role, with_ft ? ft : NULL, t->next_id, &vm->proc,
				err, errlen);
	if (!ret) {
		t->next_id++;
		vm->state = VMTAB_RUNNING;
		vm->reason = VMTAB_REASON_BOOTED;
		vm->asked = ASK_NONE;
		vm->failed_over = false;
		snprintf(vm->ft_role, sizeof(vm->ft_role), "%s", !strcmp(role, "run") ? "off" : role);
		vmtab_emit(t, vm, VMTAB_EV_STARTED, VMTAB_REASON_BOOTED);
		vmtab_wake_monitor(t);
	}
	return ret;
}

int vmtab_start(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	if (vm && !stopped(vm)) {
		snprintf(err, errlen, "VM %s is already running", name);
		ret = -EBUSY;
	} else if (vm) {
		ret = start_locked(t, vm, err, errlen);
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void vmtab_forget_transient(struct vmtab *t, struct vm *vm)
{
	char path[4200];
	size_t pos;
	vmtab_def_path(t, vm, path, sizeof(path));
	unlink(path);
	vmtab_emit(t, vm, VMTAB_EV_UNDEFINED, VMTAB_REASON_UNKNOWN);
	if (vmtab_find_name(t, vm->name, &pos) == vm) {
		memmove(&t->vms[pos], &t->vms[pos + 1], (t->n - pos - 1) * sizeof(*t->vms));
		t->n--;
	}
	vmtab_vm_free(vm);
}

int vmtab_create(struct vmtab *t, const char *xml, struct vmtab_info *out, char *err, size_t errlen)
{
	struct domain_doc doc;
	int ret = domain_doc_parse(xml, strlen(xml), t->run_dir, &doc, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&t->lock);
	struct vm *vm = NULL, *other = vmtab_find_uuid(t, doc.uuid);
	if (vmtab_find_name(t, doc.name, NULL) || other) {
		snprintf(err, errlen, "VM %s already exists%s: start it, or choose another name and UUID",
			 other ? other->name : doc.name, other && strcmp(other->name, doc.name) ? " with that UUID" : "");
		ret = -EEXIST;
	} else if (!(vm = calloc(1, sizeof(*vm)))) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	}
	if (!ret) {
		vm->proc.pidfd = -1;
		vm->state = VMTAB_SHUTOFF;
		vm->transient = true;
		vmtab_take_doc(vm, &doc);
		ret = vmtab_store_xml(t, vm, err, errlen);
		if (!ret && (ret = vmtab_insert(t, vm)) != 0)
			snprintf(err, errlen, "out of memory");
		if (ret) {
			vmtab_vm_free(vm);
			vm = NULL;
		}
	}
	if (!ret) {
		vmtab_emit(t, vm, VMTAB_EV_DEFINED, VMTAB_REASON_UNKNOWN);
		ret = start_locked(t, vm, err, errlen);
		if (ret)
			vmtab_forget_transient(t, vm);
		else if (out)
			info_of(vm, out);
	}
	pthread_mutex_unlock(&t->lock);
	domain_doc_free(&doc);
	return ret;
}

int vmtab_set_autostart(struct vmtab *t, const char *name, bool on, char *err, size_t errlen)
{
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	int ret = !vm ? -ENOENT : vm->transient ? -EINVAL : 0;
	if (ret == -EINVAL)
		snprintf(err, errlen, "VM %s is transient: it has no definition to start with the daemon", name);
	if (!ret)
		ret = vmtab_store_note(t, name, VMTAB_NOTE_AUTOSTART, on ? "" : NULL, err, errlen);
	if (!ret)
		vm->autostart = on;
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int vmtab_set_spare(struct vmtab *t, const char *name, bool on, char *err, size_t errlen)
{
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	int ret = vm ? 0 : -ENOENT;
	if (vm && !stopped(vm) && vm->spare != on) {
		snprintf(err, errlen, "VM %s is running: stop it before changing which half of its pair this host holds",
			 name);
		ret = -EBUSY;
	}
	if (!ret)
		ret = vmtab_store_note(t, name, VMTAB_NOTE_SPARE, on ? "" : NULL, err, errlen);
	if (!ret)
		vm->spare = on;
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int vmtab_set_pair(struct vmtab *t, const char *name, const char *hostport, char *err, size_t errlen)
{
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	int ret = vm ? 0 : -ENOENT;
	if (vm && hostport && strlen(hostport) >= sizeof(vm->pair)) {
		snprintf(err, errlen, "the pair's address is longer than %zu bytes", sizeof(vm->pair) - 1);
		ret = -EINVAL;
	}
	if (!ret)
		ret = vmtab_store_note(t, name, VMTAB_NOTE_PAIR, hostport, err, errlen);
	if (!ret)
		snprintf(vm->pair, sizeof(vm->pair), "%s", hostport ? hostport : "");
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int vmtab_ft(struct vmtab *t, const char *name, const char *action, const char *peer, char *err, size_t errlen)
{
	struct vm *vm;
	struct running r;
	pthread_mutex_lock(&t->lock);
	int ret = vmtab_running_vm(t, name, "change FT of", &vm, err, errlen);
	if (!ret) {
		snprintf(r.name, sizeof(r.name), "%s", vm->name);
		r.id = vm->proc.id;
	}
	pthread_mutex_unlock(&t->lock);
	if (ret)
		return ret;
	json_t *req = json_pack("{s:s, s:s}", "cmd", "ft", "action", action);
	if (req && peer)
		json_object_set_new(req, "peer", json_string(peer));
	json_t *answer = req ? vm_proc_ask_json(t->run_dir, r.name, req, err, errlen) : NULL;
	if (!req)
		snprintf(err, errlen, "out of memory");
	json_decref(req);
	json_decref(answer);
	vmtab_wake_monitor(t);
	return answer ? 0 : -EIO;
}

void vmtab_autostart_all(struct vmtab *t)
{
	char err[512];
	size_t n;
	pthread_mutex_lock(&t->lock);
	char (*names)[VMTAB_NAME_MAX] = calloc(t->n ? t->n : 1, sizeof(*names));
	n = 0;
	for (size_t i = 0; names && i < t->n; i++)
		if (t->vms[i]->autostart && stopped(t->vms[i]))
			snprintf(names[n++], VMTAB_NAME_MAX, "%s", t->vms[i]->name);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		if (vmtab_start(t, names[i], err, sizeof(err)))
			diag_warn("autostart of %s failed: %s", names[i], err);
		else
			diag_info("%s: autostarted", names[i]);
	}
	free(names);
}

/* A running VM for shutdown/destroy/suspend/resume, under the lock: the error otherwise. */
int vmtab_running_vm(struct vmtab *t, const char *name, const char *verb, struct vm **out, char *err, size_t errlen)
{
	struct vm *vm = find_or_err(t, name, err, errlen);
	*out = vm;
	if (!vm)
		return -ENOENT;
	if (stopped(vm)) {
		snprintf(err, errlen, "cannot %s VM %s: it is not running", verb, name);
		return -EBUSY;
	}
	return 0;
}

/* pause or resume through the VM's control socket, the lock released meanwhile (2.). */
static int control_verb(struct vmtab *t, struct vm *vm, const char *cmd, char *err, size_t errlen)
{
	struct running r;
	snprintf(r.name, sizeof(r.name), "%s", vm->name);
	r.id = vm->proc.id;
	vm->control_busy = true;
	pthread_mutex_unlock(&t->lock);
	json_t *answer = vm_proc_ask(t->run_dir, r.name, cmd, err, errlen);
	pthread_mutex_lock(&t->lock);
	struct vm *now = vmtab_same_run(t, &r);
	if (now)
		now->control_busy = false;
	if (!answer)
		return strstr(err, "unknown command") ? -ENOTSUP : -EIO;
	json_decref(answer);
	return now ? 0 : -ESRCH;
}

int vmtab_shutdown(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	struct vm *vm;
	pthread_mutex_lock(&t->lock);
	int ret = vmtab_running_vm(t, name, "shut down", &vm, err, errlen);
	if (!ret) {
		/* SIGTERM asks the node to stop; a paused vCPU stops as soon as it is let go. */
		ret = vm_proc_signal(&vm->proc, SIGTERM);
		if (!ret) {
			vm->asked = vm->asked == ASK_DESTROY ? ASK_DESTROY : ASK_SHUTDOWN;
			bool paused = vm->state == VMTAB_PAUSED;
			vm->state = VMTAB_STOPPING;
			vm->reason = VMTAB_REASON_USER;
			int r = paused ? control_verb(t, vm, "resume", err, errlen) : 0;
			if (r && r != -ESRCH)   /* -ESRCH: it ended meanwhile, which was the point */
				ret = r;
		} else {
			snprintf(err, errlen, "cannot signal VM %s: %s", name, strerror(-ret));
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int vmtab_destroy(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	struct vm *vm;
	pthread_mutex_lock(&t->lock);
	int ret = vmtab_running_vm(t, name, "destroy", &vm, err, errlen);
	if (ret == -EBUSY && vm->state == VMTAB_CRASHED) {
		vm->state = VMTAB_SHUTOFF;
		vm->reason = VMTAB_REASON_DESTROYED;
		ret = 0;
	} else if (!ret) {
		int id = vm->proc.id;
		ret = vm_proc_signal(&vm->proc, SIGKILL);
		if (!ret) {
			vm->asked = ASK_DESTROY;
			vmtab_wake_monitor(t);
			/* destroy returns once the process is gone (the monitor reaps it within a poll). */
			struct timespec until = time_mono_timespec(time_mono_ns() + DESTROY_WAIT_MS * 1000000ull);
			while ((vm = vmtab_find_name(t, name, NULL)) && vmtab_has_process(vm) && vm->proc.id == id &&
			       pthread_cond_timedwait(&t->changed, &t->lock, &until) != ETIMEDOUT)
				;
			if (vm && vmtab_has_process(vm) && vm->proc.id == id) {
				snprintf(err, errlen, "VM %s was killed but its process has not ended yet", name);
				ret = -EBUSY;
			}
		} else {
			snprintf(err, errlen, "cannot kill VM %s: %s", name, strerror(-ret));
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static int suspend_resume(struct vmtab *t, const char *name, bool suspend, char *err, size_t errlen)
{
	struct vm *vm;
	const char *verb = suspend ? "suspend" : "resume";
	pthread_mutex_lock(&t->lock);
	int ret = vmtab_running_vm(t, name, verb, &vm, err, errlen);
	if (!ret && (vm->state != (suspend ? VMTAB_RUNNING : VMTAB_PAUSED) || vm->control_busy)) {
		snprintf(err, errlen, "cannot %s VM %s: it is %s", verb, name,
			 vm->control_busy ? "being paused or resumed" : vmtab_state_name(vm->state));
		ret = -EBUSY;
	}
	if (!ret) {
		ret = control_verb(t, vm, suspend ? "pause" : "resume", err, errlen);
		vm = vmtab_find_name(t, name, NULL);
		if (ret == -ENOTSUP)
			snprintf(err, errlen, "VM %s cannot be %s: its node (a backup) has no vCPU of its own to hold",
				 name, suspend ? "suspended" : "resumed");
		if (ret == -ESRCH)
			snprintf(err, errlen, "VM %s stopped meanwhile", name);
		if (!ret) {
			vm->state = suspend ? VMTAB_PAUSED : VMTAB_RUNNING;
			vm->reason = VMTAB_REASON_USER;
			vmtab_emit(t, vm, suspend ? VMTAB_EV_SUSPENDED : VMTAB_EV_RESUMED, VMTAB_REASON_USER);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int vmtab_suspend(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	return suspend_resume(t, name, true, err, errlen);
}

int vmtab_resume(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	return suspend_resume(t, name, false, err, errlen);
}

static unsigned cpu_mhz(void)
{
	char line[256];
	double mhz = 0;
	FILE *f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	if (f)
		fclose(f);
	return (unsigned)mhz;
}

int vmtab_node_info(struct vmtab *t, struct vmtab_node *out)
{
	struct utsname u;
	struct sysinfo si;
	memset(out, 0, sizeof(*out));
	if (uname(&u) < 0 || sysinfo(&si) < 0)
		return -errno;
	snprintf(out->model, sizeof(out->model), "%.31s", u.machine);
	out->memory_kib = (uint64_t)si.totalram * si.mem_unit / 1024;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	out->cpus = n > 0 ? (unsigned)n : 1;
	out->mhz = cpu_mhz();
	out->nodes = out->sockets = out->threads = 1;
	out->cores = out->cpus;
	return 0;
}

int vmtab_subscribe(struct vmtab *t, vmtab_event_fn fn, void *opaque)
{
	int ret = -ENOMEM;
	pthread_mutex_lock(&t->lock);
	struct subscriber *s = realloc(t->subs, (t->nsubs + 1) * sizeof(*s));
	if (s) {
		t->subs = s;
		ret = ++t->next_handle;
		s[t->nsubs++] = (struct subscriber){ .handle = ret, .fn = fn, .opaque = opaque };
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void vmtab_unsubscribe(struct vmtab *t, int handle)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nsubs; i++)
		if (t->subs[i].handle == handle) {
			memmove(&t->subs[i], &t->subs[i + 1], (t->nsubs - i - 1) * sizeof(*t->subs));
			t->nsubs--;
			break;
		}
	pthread_mutex_unlock(&t->lock);
}

int vmtab_open(const struct vmtab_config *cfg, struct vmtab **out, char *err, size_t errlen)
{
	struct vmtab *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(t->vms_dir, sizeof(t->vms_dir), "%s/vms", cfg->state_dir);
	snprintf(t->run_dir, sizeof(t->run_dir), "%s/run", cfg->state_dir);
	snprintf(t->ftvm, sizeof(t->ftvm), "%s", cfg->ftvm);
	t->poll_ms = cfg->poll_ms ? cfg->poll_ms : DEFAULT_POLL_MS;
	t->next_id = 1;
	t->wake_fd = -1;
	int ret = vmtab_make_dir(cfg->state_dir, err, errlen);
	if (!ret)
		ret = vmtab_make_dir(t->vms_dir, err, errlen);
	if (!ret)
		ret = vmtab_make_dir(t->run_dir, err, errlen);
	if (ret) {
		free(t);
		return ret;
	}
	pthread_mutex_init(&t->lock, NULL);
	ret = -time_cond_init(&t->changed);
	if (!ret)
		ret = vmtab_load_all(t, err, errlen);
	if (!ret) {
		vmtab_refresh_all(t);   /* the found VMs' state (paused?) before anyone subscribes */
		t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ret = t->wake_fd < 0 ? -errno : -pthread_create(&t->monitor, NULL, vmtab_watch_main, t);
		if (ret)
			snprintf(err, errlen, "cannot start the VM monitor: %s", strerror(-ret));
	}
	if (ret) {
		if (t->wake_fd >= 0)
			close(t->wake_fd);
		t->wake_fd = -1;
		t->monitor = 0;
		t->stop = true;
		vmtab_close(t);
		return ret;
	}
	*out = t;
	return 0;
}

void vmtab_close(struct vmtab *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_mutex_unlock(&t->lock);
	if (t->wake_fd >= 0) {
		vmtab_wake_monitor(t);
		pthread_join(t->monitor, NULL);
		close(t->wake_fd);
	}
	for (size_t i = 0; i < t->n; i++)
		vmtab_vm_free(t->vms[i]);   /* the processes run on (vmtab.h) */
	free(t->vms);
	free(t->subs);
	pthread_cond_destroy(&t->changed);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
