/*
 * test_vmtab.c — the daemon's VM table (daemon/vmtab.h) against real `ftvm` processes running the
 * bare-metal tick.elf (idle in WFI, a '.' on the console every 100 ms of guest time): definitions
 * kept in the state directory and refused when they clash; start, suspend, resume, shutdown and
 * destroy, each seen in the table, in the process and as an event; a process killed from outside
 * reported as a crash; and the table closed and opened again (a daemon restart) finding its
 * running VM, which it can then destroy; a state directory others could write to refused.
 *
 * usage: test_vmtab FTVM TICK_ELF   (TICK_ELF "-": no bare-metal programs, skip: 77)
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/vmtab.h"
#include "util/time.h"

#define WAIT_MS 20000   /* generous: a loaded 2-core machine */

static const char *ftvm, *tick;
static char dir[64];

struct seen {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vmtab_event ev[256];
	enum vmtab_reason detail[256];
	size_t n;
};

static struct seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void on_event(const struct vmtab_info *vm, enum vmtab_event ev, enum vmtab_reason detail, void *opaque)
{
	pthread_mutex_lock(&seen.lock);
	if (seen.n < 256) {
		seen.ev[seen.n] = ev;
		seen.detail[seen.n++] = detail;
	}
	pthread_cond_broadcast(&seen.cond);
	pthread_mutex_unlock(&seen.lock);
}

/* Waits for event ev (with detail, unless detail < 0) among those after *from; moves *from past it. */
static bool wait_event(size_t *from, enum vmtab_event ev, int detail)
{
	uint64_t end = time_mono_ms() + WAIT_MS;
	pthread_mutex_lock(&seen.lock);
	for (;;) {
		for (; *from < seen.n; (*from)++)
			if (seen.ev[*from] == ev && (detail < 0 || (int)seen.detail[*from] == detail)) {
				(*from)++;
				pthread_mutex_unlock(&seen.lock);
				return true;
			}
		if (time_mono_ms() >= end)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&seen.cond, &seen.lock, &ts);
	}
	pthread_mutex_unlock(&seen.lock);
	return false;
}

static size_t events_now(void)
{
	pthread_mutex_lock(&seen.lock);
	size_t n = seen.n;
	pthread_mutex_unlock(&seen.lock);
	return n;
}

static struct vmtab *open_table(int *sub)
{
	struct vmtab *t = NULL;
	char err[512] = "";
	struct vmtab_config cfg = { .state_dir = dir, .ftvm = ftvm, .poll_ms = 100 };
	int ret = vmtab_open(&cfg, &t, err, sizeof(err));
	if (ret)
		fprintf(stderr, "vmtab_open: %s\n", err);
	assert_int_equal(ret, 0);
	*sub = vmtab_subscribe(t, on_event, NULL);
	assert_true(*sub > 0);
	return t;
}

static char *domain(const char *name, const char *uuid)
{
	static char xml[4096];
	snprintf(xml, sizeof(xml),
		 "<domain type='qemu'><name>%s</name>%s%s%s<memory unit='MiB'>16</memory><vcpu>1</vcpu>"
		 "<os><type arch='riscv64' machine='virt'>hvm</type><kernel>%s</kernel><loader>none</loader></os>"
		 "</domain>",
		 name, uuid ? "<uuid>" : "", uuid ? uuid : "", uuid ? "</uuid>" : "", tick);
	return xml;
}

static void define_ok(struct vmtab *t, const char *name, const char *uuid, struct vmtab_info *out)
{
	char err[512] = "";
	int ret = vmtab_define(t, domain(name, uuid), out, err, sizeof(err));
	if (ret)
		fprintf(stderr, "define %s: %s\n", name, err);
	assert_int_equal(ret, 0);
}

static enum vmtab_state state_of(struct vmtab *t, const char *name)
{
	struct vmtab_info i;
	assert_int_equal(vmtab_lookup_name(t, name, &i), 0);
	return i.state;
}

static pid_t pid_of(const char *name)
{
	char path[256];
	int pid = 0, id;
	snprintf(path, sizeof(path), "%s/run/%s.pid", dir, name);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d %d", &pid, &id) != 2)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* The VM's guest runs: its instructions count goes up (it retires a few per 100 ms tick). */
static bool guest_runs(struct vmtab *t, const char *name)
{
	uint64_t end = time_mono_ms() + WAIT_MS;
	while (time_mono_ms() < end) {
		json_t *st = NULL;
		if (vmtab_stats(t, name, &st) == 0 && json_integer_value(json_object_get(st, "icount")) > 100) {
			json_decref(st);
			return true;
		}
		json_decref(st);
		usleep(100 * 1000);
	}
	return false;
}

static void test_definitions(void **state)
{
	int sub;
	char err[512] = "";
	struct vmtab_info a, b;
	struct vmtab *t = open_table(&sub);

	assert_int_equal(vmtab_define(t, "<domain><name>x</name>", &a, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	assert_int_equal(vmtab_define(t, domain("bad/name", NULL), &a, err, sizeof(err)), -EINVAL);
	define_ok(t, "alpha", NULL, &a);
	assert_int_equal(a.state, VMTAB_SHUTOFF);
	assert_int_equal(a.id, -1);
	assert_true(a.persistent);
	assert_int_equal(a.max_mem_kib, 16 * 1024);
	define_ok(t, "beta", "0b8a4c6e-1d2f-4a3b-9c5d-6e7f8091a2b3", &b);
	assert_int_equal(b.uuid[0], 0x0b);
	/* Same name, another UUID; same UUID, another name: refused. */
	assert_int_equal(vmtab_define(t, domain("beta", "11111111-2222-4333-8444-555555555555"), NULL, err, sizeof(err)),
			 -EEXIST);
	assert_int_equal(vmtab_define(t, domain("gamma", "0b8a4c6e-1d2f-4a3b-9c5d-6e7f8091a2b3"), NULL, err, sizeof(err)),
			 -EEXIST);
	/* Redefining with the same name and UUID is allowed while shut off. */
	define_ok(t, "beta", "0b8a4c6e-1d2f-4a3b-9c5d-6e7f8091a2b3", &b);
	char *xml = vmtab_xml(t, "alpha", err, sizeof(err));
	assert_non_null(xml);
	assert_non_null(strstr(xml, "<uuid>"));
	free(xml);

	struct vmtab_info *list;
	size_t n;
	assert_int_equal(vmtab_list(t, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "alpha");
	assert_string_equal(list[1].name, "beta");
	free(list);

	/* They survive a restart, with their UUIDs; an undefined one does not. */
	vmtab_close(t);
	t = open_table(&sub);
	struct vmtab_info a2;
	assert_int_equal(vmtab_lookup_name(t, "alpha", &a2), 0);
	assert_memory_equal(a.uuid, a2.uuid, 16);
	assert_int_equal(vmtab_lookup_uuid(t, b.uuid, &a2), 0);
	assert_string_equal(a2.name, "beta");
	assert_int_equal(vmtab_undefine(t, "beta", err, sizeof(err)), 0);
	assert_int_equal(vmtab_undefine(t, "beta", err, sizeof(err)), -ENOENT);
	vmtab_close(t);
	t = open_table(&sub);
	assert_int_equal(vmtab_lookup_name(t, "beta", &a2), -ENOENT);
	assert_int_equal(vmtab_lookup_name(t, "alpha", &a2), 0);
	vmtab_close(t);
}

static void test_lifecycle(void **state)
{
	int sub;
	char err[512] = "";
	struct vmtab_info i;
	struct vmtab *t = open_table(&sub);
	size_t from = events_now();

	assert_int_equal(vmtab_shutdown(t, "alpha", err, sizeof(err)), -EBUSY);   /* not running */
	assert_int_equal(vmtab_start(t, "nosuch", err, sizeof(err)), -ENOENT);
	assert_int_equal(vmtab_start(t, "alpha", err, sizeof(err)), 0);
	assert_true(wait_event(&from, VMTAB_EV_STARTED, VMTAB_REASON_BOOTED));
	assert_int_equal(vmtab_start(t, "alpha", err, sizeof(err)), -EBUSY);
	assert_int_equal(vmtab_undefine(t, "alpha", err, sizeof(err)), -EBUSY);
	assert_true(guest_runs(t, "alpha"));
	assert_int_equal(vmtab_lookup_name(t, "alpha", &i), 0);
	assert_true(i.id > 0);
	assert_string_equal(i.ft_role, "off");
	assert_int_equal(vmtab_lookup_id(t, i.id, &i), 0);
	pid_t pid = pid_of("alpha");
	assert_true(pid > 0 && kill(pid, 0) == 0);

	/* Suspend holds the guest: its instruction count stands still. */
	assert_int_equal(vmtab_suspend(t, "alpha", err, sizeof(err)), 0);
	assert_true(wait_event(&from, VMTAB_EV_SUSPENDED, VMTAB_REASON_USER));
	assert_int_equal(state_of(t, "alpha"), VMTAB_PAUSED);
	assert_int_equal(vmtab_suspend(t, "alpha", err, sizeof(err)), -EBUSY);
	json_t *s1, *s2;
	assert_int_equal(vmtab_stats(t, "alpha", &s1), 0);
	usleep(400 * 1000);
	assert_int_equal(vmtab_stats(t, "alpha", &s2), 0);
	assert_int_equal(json_integer_value(json_object_get(s1, "icount")), json_integer_value(json_object_get(s2, "icount")));
	assert_int_equal(json_integer_value(json_object_get(s2, "paused")), 1);
	json_decref(s1);
	json_decref(s2);
	assert_int_equal(vmtab_resume(t, "alpha", err, sizeof(err)), 0);
	assert_true(wait_event(&from, VMTAB_EV_RESUMED, VMTAB_REASON_USER));
	assert_int_equal(state_of(t, "alpha"), VMTAB_RUNNING);

	/* Shutdown of a suspended VM: it is let go and stops. */
	assert_int_equal(vmtab_suspend(t, "alpha", err, sizeof(err)), 0);
	assert_int_equal(vmtab_shutdown(t, "alpha", err, sizeof(err)), 0);
	assert_true(wait_event(&from, VMTAB_EV_STOPPED, VMTAB_REASON_SHUTDOWN));
	assert_int_equal(state_of(t, "alpha"), VMTAB_SHUTOFF);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(pid_of("alpha"), 0);

	/* Killed from outside: a crash. Destroy then clears it. */
	assert_int_equal(vmtab_start(t, "alpha", err, sizeof(err)), 0);
	assert_true(guest_runs(t, "alpha"));
	assert_int_equal(kill(pid_of("alpha"), SIGKILL), 0);
	assert_true(wait_event(&from, VMTAB_EV_STOPPED, VMTAB_REASON_FAILED));
	assert_int_equal(state_of(t, "alpha"), VMTAB_CRASHED);
	assert_int_equal(vmtab_start(t, "alpha", err, sizeof(err)), 0);   /* a crashed VM can start again */
	assert_int_equal(vmtab_destroy(t, "alpha", err, sizeof(err)), 0);
	assert_int_equal(state_of(t, "alpha"), VMTAB_SHUTOFF);             /* destroy returns once it is gone */
	assert_true(wait_event(&from, VMTAB_EV_STOPPED, VMTAB_REASON_DESTROYED));
	vmtab_close(t);
}

static void test_restart(void **state)
{
	int sub;
	char err[512] = "";
	struct vmtab_info before, after;
	struct vmtab *t = open_table(&sub);
	size_t from = events_now();

	assert_int_equal(vmtab_start(t, "alpha", err, sizeof(err)), 0);
	assert_true(guest_runs(t, "alpha"));
	assert_int_equal(vmtab_suspend(t, "alpha", err, sizeof(err)), 0);
	assert_int_equal(vmtab_lookup_name(t, "alpha", &before), 0);
	pid_t pid = pid_of("alpha");
	vmtab_close(t);
	assert_int_equal(kill(pid, 0), 0);   /* the VM outlives the table */

	t = open_table(&sub);
	assert_int_equal(vmtab_lookup_name(t, "alpha", &after), 0);
	assert_int_equal(after.state, VMTAB_PAUSED);   /* read from the VM itself */
	assert_int_equal(after.id, before.id);
	assert_int_equal(vmtab_resume(t, "alpha", err, sizeof(err)), 0);
	assert_true(guest_runs(t, "alpha"));
	/* A start after the restart gets a new id, not the found VM's. */
	define_ok(t, "delta", NULL, NULL);
	assert_int_equal(vmtab_start(t, "delta", err, sizeof(err)), 0);
	struct vmtab_info d;
	assert_int_equal(vmtab_lookup_name(t, "delta", &d), 0);
	assert_true(d.id > after.id);
	assert_int_equal(vmtab_destroy(t, "delta", err, sizeof(err)), 0);

	from = events_now();
	assert_int_equal(vmtab_destroy(t, "alpha", err, sizeof(err)), 0);
	assert_true(wait_event(&from, VMTAB_EV_STOPPED, VMTAB_REASON_DESTROYED));
	assert_int_equal(kill(pid, 0), -1);

	/* A stale pid file (a dead process, or a live one that is not this VM) is not taken for it. */
	char path[256];
	snprintf(path, sizeof(path), "%s/run/alpha.pid", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%d 7 run\n", (int)getpid());
	fclose(f);
	vmtab_close(t);
	t = open_table(&sub);
	assert_int_equal(state_of(t, "alpha"), VMTAB_SHUTOFF);
	assert_int_equal(access(path, F_OK), -1);
	vmtab_close(t);
}

/* A state directory someone else could write to is refused, and so is one that is a symlink. */
static void test_unsafe_dir(void **state)
{
	char bad[128], err[512] = "", link[160];
	struct vmtab *t = NULL;
	snprintf(bad, sizeof(bad), "%s/open", dir);
	assert_int_equal(mkdir(bad, 0700), 0);
	assert_int_equal(chmod(bad, 0777), 0);
	struct vmtab_config cfg = { .state_dir = bad, .ftvm = ftvm };
	assert_int_equal(vmtab_open(&cfg, &t, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "writable by no one else"));
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(dir, link), 0);
	cfg.state_dir = link;
	assert_int_equal(vmtab_open(&cfg, &t, err, sizeof(err)), -ENOTDIR);
}

static void test_node(void **state)
{
	int sub;
	struct vmtab_node n;
	struct vmtab *t = open_table(&sub);
	assert_int_equal(vmtab_node_info(t, &n), 0);
	assert_true(n.cpus >= 1 && n.memory_kib > 0 && n.model[0]);
	vmtab_close(t);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: test_vmtab FTVM TICK_ELF\n");
		return 2;
	}
	ftvm = argv[1];
	tick = argv[2];
	if (!strcmp(tick, "-")) {
		printf("no bare-metal programs (riscv64-unknown-elf-gcc): skipped\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/ftvm-vmtab-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_definitions),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_unsafe_dir),
		cmocka_unit_test(test_node),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (!failed && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return failed ? 1 : 0;
}
