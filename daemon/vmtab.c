/*
 * vmtab.c — the host daemon's table of VMs (vmtab.h): definitions in STATE_DIR/vms, one `ftvm`
 * process per running VM (vm_proc.h), and a monitor thread that notices what happens to them.
 *
 * 1. One mutex guards the table, every VM in it and the subscriber list; `changed` is broadcast on
 *    every change of a VM's run state, so that destroy can wait for the process to be gone.
 * 2. Nothing slow runs under the mutex: a request to a VM's control socket (status, pause, resume)
 *    is made with the mutex released, and its outcome applied only if the VM is still in the same
 *    run (same id) when the mutex is taken again.
 * 3. Events are delivered under the mutex, so every subscriber sees them in the order they
 *    happened; a subscriber must not block or call back into the table (vmtab.h).
 * 4. The monitor thread sleeps in poll() on the running VMs' pidfds and an eventfd (woken when a VM
 *    starts and when the table closes), at most poll_ms: each round it collects the processes that
 *    ended, then reads every running VM's status, which tells a pause made by someone else, a
 *    backup that went live after a failover, and the figures `stats` and the metrics report.
 */
#define DIAG_MODULE "vmtab"
#include "daemon/vmtab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/domain_doc.h"
#include "daemon/vm_proc.h"
#include "util/diag.h"
#include "util/time.h"

#define DEFAULT_POLL_MS 500
#define DESTROY_WAIT_MS 4000    /* SIGKILLed process: reaped by the monitor well before this */

enum ask { ASK_NONE, ASK_SHUTDOWN, ASK_DESTROY };

struct vm {
	char name[VMTAB_NAME_MAX];
	uint8_t uuid[16];
	uint64_t mem_kib;
	char role[16];              /* the ftvm command it runs under */
	char *xml;
	enum vmtab_state state;
	enum vmtab_reason reason;
	struct vm_proc proc;        /* pid 0: no process */
	enum ask asked;
	bool control_busy;          /* a pause or resume request is out (2.) */
	bool failed_over;           /* this run's backup went live */
	char ft_role[16];
	uint64_t instructions;
};

struct subscriber {
	int handle;
	vmtab_event_fn fn;
	void *opaque;
};

struct vmtab {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	char vms_dir[4096], run_dir[4096], ftvm[4096];
	unsigned poll_ms;
	struct vm **vms;            /* sorted by name */
	size_t n, cap;
	int next_id;
	struct subscriber *subs;
	size_t nsubs;
	int next_handle;
	int wake_fd;
	bool stop;
	pthread_t monitor;
};

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

static bool has_process(const struct vm *vm)
{
	return vm->proc.pid > 0;
}

static void info_of(const struct vm *vm, struct vmtab_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", vm->name);
	memcpy(out->uuid, vm->uuid, 16);
	out->id = has_process(vm) ? vm->proc.id : -1;
	out->state = vm->state;
	out->reason = vm->reason;
	out->max_mem_kib = out->mem_kib = vm->mem_kib;
	out->vcpus = 1;
	out->cpu_time_ns = has_process(vm) ? vm_proc_cpu_ns(&vm->proc) : 0;
	out->instructions = has_process(vm) ? vm->instructions : 0;
	out->persistent = true;
	out->autostart = false;
	snprintf(out->ft_role, sizeof(out->ft_role), "%s", has_process(vm) ? vm->ft_role : "");
}

/* Under the lock (3.). */
static void emit(struct vmtab *t, const struct vm *vm, enum vmtab_event ev, enum vmtab_reason detail)
{
	struct vmtab_info info;
	info_of(vm, &info);
	diag_info("%s: %s (%s)", vm->name, vmtab_event_name(ev), vmtab_reason_name(detail));
	for (size_t i = 0; i < t->nsubs; i++)
		t->subs[i].fn(&info, ev, detail, t->subs[i].opaque);
}

static struct vm *find_name(struct vmtab *t, const char *name, size_t *pos)
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

static struct vm *find_uuid(struct vmtab *t, const uint8_t uuid[16])
{
	for (size_t i = 0; i < t->n; i++)
		if (!memcmp(t->vms[i]->uuid, uuid, 16))
			return t->vms[i];
	return NULL;
}

static int insert(struct vmtab *t, struct vm *vm)
{
	size_t pos;
	if (find_name(t, vm->name, &pos))
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

static void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	vm_proc_release(&vm->proc);
	free(vm->xml);
	free(vm);
}

static void take_doc(struct vm *vm, struct domain_doc *doc)
{
	snprintf(vm->name, sizeof(vm->name), "%s", doc->name);
	memcpy(vm->uuid, doc->uuid, 16);
	vm->mem_kib = doc->mem_kib;
	snprintf(vm->role, sizeof(vm->role), "%s", doc->role);
	free(vm->xml);
	vm->xml = doc->xml;
	doc->xml = NULL;
}

static void xml_path(const struct vmtab *t, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.xml", t->vms_dir, name);
}

/* The definition, durably: a scratch file synced and renamed over the old one. */
static int store_xml(struct vmtab *t, const struct vm *vm, char *err, size_t errlen)
{
	char path[4200], tmp[4300];
	xml_path(t, vm->name, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(vm->xml), done = 0;
	while (fd >= 0 && done < len) {
		ssize_t n = write(fd, vm->xml + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	int ret = fd < 0 || done < len || fsync(fd) < 0 ? -errno : 0;
	if (fd >= 0 && close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "cannot store the definition %s: %s", path, strerror(-ret ? -ret : EIO));
		unlink(tmp);
	}
	return ret ? ret : 0;
}

static void wake_monitor(struct vmtab *t)
{
	uint64_t one = 1;
	(void)!write(t->wake_fd, &one, sizeof(one));
}

static const char *ft_role_of(const struct vm *vm, const json_t *st)
{
	const char *role = json_string_value(json_object_get(st, "role"));
	const char *state = json_string_value(json_object_get(st, "state"));
	if (!role || !strcmp(vm->role, "run"))
		return "off";
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
	if (!vm->failed_over && !strcmp(vm->proc.role, "backup") && role && state &&
	    (!strcmp(role, "primary") || !strcmp(state, "going-live") || !strcmp(state, "alone"))) {
		/* This host's backup took over: the VM resumed here (vmtab.h). */
		vm->failed_over = true;
		if (vm->state == VMTAB_RUNNING) {
			vm->reason = VMTAB_REASON_FAILED_OVER;
			emit(t, vm, VMTAB_EV_RESUMED, VMTAB_REASON_FAILED_OVER);
		}
	}
	if (vm->control_busy)
		return;
	bool paused = json_is_true(json_object_get(st, "paused"));
	if (paused && vm->state == VMTAB_RUNNING) {
		vm->state = VMTAB_PAUSED;
		vm->reason = VMTAB_REASON_USER;
		emit(t, vm, VMTAB_EV_SUSPENDED, VMTAB_REASON_USER);
	} else if (!paused && vm->state == VMTAB_PAUSED) {
		vm->state = VMTAB_RUNNING;
		vm->reason = VMTAB_REASON_USER;
		emit(t, vm, VMTAB_EV_RESUMED, VMTAB_REASON_USER);
	}
	pthread_cond_broadcast(&t->changed);
}

/* The process ended, under the lock. */
static void process_ended(struct vmtab *t, struct vm *vm, int wstatus)
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
	emit(t, vm, VMTAB_EV_STOPPED, why);
	vm_proc_release(&vm->proc);
	vm->asked = ASK_NONE;
	vm->ft_role[0] = 0;
	vm->instructions = 0;
	pthread_cond_broadcast(&t->changed);
}

struct running {
	char name[VMTAB_NAME_MAX];
	int id;
};

/* The running VMs, copied under the lock for requests made without it. */
static struct running *running_list(struct vmtab *t, size_t *n)
{
	struct running *r = calloc(t->n ? t->n : 1, sizeof(*r));
	*n = 0;
	for (size_t i = 0; r && i < t->n; i++)
		if (has_process(t->vms[i])) {
			snprintf(r[*n].name, sizeof(r[*n].name), "%s", t->vms[i]->name);
			r[(*n)++].id = t->vms[i]->proc.id;
		}
	return r;
}

static struct vm *same_run(struct vmtab *t, const struct running *r)
{
	struct vm *vm = find_name(t, r->name, NULL);
	return vm && has_process(vm) && vm->proc.id == r->id ? vm : NULL;
}

/* Reads every running VM's status (called without the lock). */
static void refresh_all(struct vmtab *t)
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
		struct vm *vm = same_run(t, &r[i]);
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
		if (has_process(vm) && vm_proc_reap(t->run_dir, vm->name, &vm->proc, &wstatus))
			process_ended(t, vm, wstatus);
	}
	pthread_mutex_unlock(&t->lock);
}

static void *monitor_main(void *arg)
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
			refresh_all(t);
			reap_all(t);
			next_refresh = time_mono_ms() + t->poll_ms;
		}
	}
	free(fds);
	return NULL;
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
	struct vm *vm = find_name(t, name, NULL);
	if (vm)
		info_of(vm, out);
	pthread_mutex_unlock(&t->lock);
	return vm ? 0 : -ENOENT;
}

int vmtab_lookup_uuid(struct vmtab *t, const uint8_t uuid[16], struct vmtab_info *out)
{
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_uuid(t, uuid);
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
		if (has_process(t->vms[i]) && t->vms[i]->proc.id == id)
			vm = t->vms[i];
	if (vm)
		info_of(vm, out);
	pthread_mutex_unlock(&t->lock);
	return vm ? 0 : -ENOENT;
}

static bool stopped(const struct vm *vm)
{
	return !has_process(vm);
}

int vmtab_define(struct vmtab *t, const char *xml, struct vmtab_info *out, char *err, size_t errlen)
{
	struct domain_doc doc;
	int ret = domain_doc_parse(xml, strlen(xml), t->run_dir, &doc, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&t->lock);
	struct vm *old = find_name(t, doc.name, NULL), *other = find_uuid(t, doc.uuid), *vm = NULL;
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
		ret = store_xml(t, old, err, errlen);
		old->xml = keep;
		if (!ret)
			take_doc(old, &doc);
		vm = old;
	} else {
		vm->proc.pidfd = -1;
		vm->state = VMTAB_SHUTOFF;
		take_doc(vm, &doc);
		ret = store_xml(t, vm, err, errlen);
		if (!ret && (ret = insert(t, vm)) != 0)
			snprintf(err, errlen, "out of memory");
		if (ret) {
			char path[4200];
			xml_path(t, vm->name, path, sizeof(path));
			if (ret == -ENOMEM)
				unlink(path);
			vm_free(vm);
			vm = NULL;
		}
	}
	if (!ret) {
		emit(t, vm, VMTAB_EV_DEFINED, VMTAB_REASON_UNKNOWN);
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
	struct vm *vm = find_name(t, name, NULL);
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
		xml_path(t, vm->name, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
		} else {
			find_name(t, name, &pos);
			memmove(&t->vms[pos], &t->vms[pos + 1], (t->n - pos - 1) * sizeof(*t->vms));
			t->n--;
			emit(t, vm, VMTAB_EV_UNDEFINED, VMTAB_REASON_UNKNOWN);
			vm_free(vm);
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

int vmtab_start(struct vmtab *t, const char *name, char *err, size_t errlen)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&t->lock);
	struct vm *vm = find_or_err(t, name, err, errlen);
	if (vm && !stopped(vm)) {
		snprintf(err, errlen, "VM %s is already running", name);
		ret = -EBUSY;
	} else if (vm) {
		char path[4200];
		xml_path(t, vm->name, path, sizeof(path));
		ret = vm_proc_start(t->ftvm, t->run_dir, vm->name, path, vm->role, t->next_id, &vm->proc, err, errlen);
		if (!ret) {
			t->next_id++;
			vm->state = VMTAB_RUNNING;
			vm->reason = VMTAB_REASON_BOOTED;
			vm->asked = ASK_NONE;
			vm->failed_over = false;
			snprintf(vm->ft_role, sizeof(vm->ft_role), "%s", !strcmp(vm->role, "run") ? "off" : vm->role);
			emit(t, vm, VMTAB_EV_STARTED, VMTAB_REASON_BOOTED);
			wake_monitor(t);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

/* A running VM for shutdown/destroy/suspend/resume, under the lock: the error otherwise. */
static int running_vm(struct vmtab *t, const char *name, const char *verb, struct vm **out, char *err, size_t errlen)
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
	struct vm *now = same_run(t, &r);
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
	int ret = running_vm(t, name, "shut down", &vm, err, errlen);
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
	int ret = running_vm(t, name, "destroy", &vm, err, errlen);
	if (ret == -EBUSY && vm->state == VMTAB_CRASHED) {
		vm->state = VMTAB_SHUTOFF;
		vm->reason = VMTAB_REASON_DESTROYED;
		ret = 0;
	} else if (!ret) {
		int id = vm->proc.id;
		ret = vm_proc_signal(&vm->proc, SIGKILL);
		if (!ret) {
			vm->asked = ASK_DESTROY;
			wake_monitor(t);
			/* destroy returns once the process is gone (the monitor reaps it within a poll). */
			struct timespec until = time_mono_timespec(time_mono_ns() + DESTROY_WAIT_MS * 1000000ull);
			while ((vm = find_name(t, name, NULL)) && has_process(vm) && vm->proc.id == id &&
			       pthread_cond_timedwait(&t->changed, &t->lock, &until) != ETIMEDOUT)
				;
			if (vm && has_process(vm) && vm->proc.id == id) {
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
	int ret = running_vm(t, name, verb, &vm, err, errlen);
	if (!ret && (vm->state != (suspend ? VMTAB_RUNNING : VMTAB_PAUSED) || vm->control_busy)) {
		snprintf(err, errlen, "cannot %s VM %s: it is %s", verb, name,
			 vm->control_busy ? "being paused or resumed" : vmtab_state_name(vm->state));
		ret = -EBUSY;
	}
	if (!ret) {
		ret = control_verb(t, vm, suspend ? "pause" : "resume", err, errlen);
		vm = find_name(t, name, NULL);
		if (ret == -ENOTSUP)
			snprintf(err, errlen, "VM %s cannot be %s: its node (a backup) has no vCPU of its own to hold",
				 name, suspend ? "suspended" : "resumed");
		if (ret == -ESRCH)
			snprintf(err, errlen, "VM %s stopped meanwhile", name);
		if (!ret) {
			vm->state = suspend ? VMTAB_PAUSED : VMTAB_RUNNING;
			vm->reason = VMTAB_REASON_USER;
			emit(t, vm, suspend ? VMTAB_EV_SUSPENDED : VMTAB_EV_RESUMED, VMTAB_REASON_USER);
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
	int ret = running_vm(t, name, "read", &vm, err, sizeof(err));
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
		json_object_set_new(o, "cpu_time_ns", json_integer((json_int_t)cpu_ns));
	}
	pthread_mutex_lock(&t->lock);
	vm = same_run(t, &r);
	if (vm)
		apply_status(t, vm, st);
	pthread_mutex_unlock(&t->lock);
	json_decref(st);
	*out = o;
	return o ? 0 : -ENOMEM;
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

static int make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

/* One stored definition, and its process if an earlier daemon left it running. */
static void load_one(struct vmtab *t, const char *file)
{
	char path[8192], err[512];
	size_t len = strlen(file);
	if (len < 5 || strcmp(file + len - 4, ".xml") != 0 || file[0] == '.')
		return;
	snprintf(path, sizeof(path), "%s/%s", t->vms_dir, file);
	FILE *f = fopen(path, "re");
	char *buf = f ? malloc(DOMAIN_DOC_MAX + 1) : NULL;
	size_t n = buf ? fread(buf, 1, DOMAIN_DOC_MAX + 1, f) : 0;
	if (f)
		fclose(f);
	struct domain_doc doc = { 0 };
	struct vm *vm = NULL;
	int ret = !buf ? -EIO : n > DOMAIN_DOC_MAX ? -EFBIG : 0;
	if (!ret) {
		buf[n] = 0;
		ret = domain_doc_parse(buf, n, t->run_dir, &doc, err, sizeof(err));
	}
	if (!ret && (strncmp(file, doc.name, len - 4) || strlen(doc.name) != len - 4)) {
		snprintf(err, sizeof(err), "it defines VM %s", doc.name);
		ret = -EINVAL;
	}
	if (!ret && find_uuid(t, doc.uuid)) {
		snprintf(err, sizeof(err), "its UUID is another VM's");
		ret = -EEXIST;
	}
	if (!ret && !(vm = calloc(1, sizeof(*vm))))
		ret = -ENOMEM;
	if (!ret) {
		take_doc(vm, &doc);
		vm->state = VMTAB_SHUTOFF;
		if (vm_proc_adopt(t->run_dir, vm->name, &vm->proc) == 0) {
			vm->state = VMTAB_RUNNING;
			vm->reason = VMTAB_REASON_UNKNOWN;
			snprintf(vm->ft_role, sizeof(vm->ft_role), "%s", !strcmp(vm->role, "run") ? "off" : vm->role);
			if (vm->proc.id >= t->next_id)
				t->next_id = vm->proc.id + 1;
			diag_info("%s: found running as process %d", vm->name, (int)vm->proc.pid);
		}
		if (insert(t, vm)) {
			vm_free(vm);
			ret = -ENOMEM;
		}
	}
	if (ret)
		diag_warn("definition %s ignored: %s", path, ret == -ENOMEM ? "out of memory" : err);
	domain_doc_free(&doc);
	free(buf);
}

static int load_all(struct vmtab *t, char *err, size_t errlen)
{
	DIR *d = opendir(t->vms_dir);
	if (!d) {
		snprintf(err, errlen, "cannot read %s: %s", t->vms_dir, strerror(errno));
		return -errno;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		load_one(t, e->d_name);
	closedir(d);
	return 0;
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
	int ret = make_dir(cfg->state_dir, err, errlen);
	if (!ret)
		ret = make_dir(t->vms_dir, err, errlen);
	if (!ret)
		ret = make_dir(t->run_dir, err, errlen);
	if (ret) {
		free(t);
		return ret;
	}
	pthread_mutex_init(&t->lock, NULL);
	ret = -time_cond_init(&t->changed);
	if (!ret)
		ret = load_all(t, err, errlen);
	if (!ret) {
		refresh_all(t);   /* the found VMs' state (paused?) before anyone subscribes */
		t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ret = t->wake_fd < 0 ? -errno : -pthread_create(&t->monitor, NULL, monitor_main, t);
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
		wake_monitor(t);
		pthread_join(t->monitor, NULL);
		close(t->wake_fd);
	}
	for (size_t i = 0; i < t->n; i++)
		vm_free(t->vms[i]);   /* the processes run on (vmtab.h) */
	free(t->vms);
	free(t->subs);
	pthread_cond_destroy(&t->changed);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
