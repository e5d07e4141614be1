/*
 * vm_proc.c — see vm_proc.h. The process is started with posix_spawn (a new session, standard
 * input from /dev/null, output appended to its log, no descriptor of the daemon inherited), so the
 * daemon's threads never run code between fork and exec.
 */
#include "daemon/vm_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/control.h"
#include "util/parse.h"

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static void file_name(char *buf, size_t len, const char *run_dir, const char *name, const char *ext)
{
	snprintf(buf, len, "%s/%s.%s", run_dir, name, ext);
}

int vm_proc_socket(const char *run_dir, const char *name, char *buf, size_t len)
{
	file_name(buf, len, run_dir, name, "sock");
	return strlen(buf) + 1 > SUN_PATH_MAX || strlen(buf) + 1 > len ? -ENAMETOOLONG : 0;
}

static int write_pid_file(const char *run_dir, const char *name, const struct vm_proc *p)
{
	char path[4096], tmp[4200];
	file_name(path, sizeof(path), run_dir, name, "pid");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%d %d %s\n", (int)p->pid, p->id, p->role);
	if (fflush(f) || fsync(fileno(f)) || fclose(f) || rename(tmp, path)) {
		int ret = -errno;
		unlink(tmp);
		return ret;
	}
	return 0;
}

/*
 * A VM's process inherits nothing of the daemon's environment but the sanitizers' options: in a
 * sanitizer build its reports then go where the test running the daemon collects them
 * (tests/lib/sanitizer_check.py), not only into the VM's log. @envp holds ENV_PASSED_MAX + 1.
 */
#define ENV_PASSED_MAX 4

static void passed_env(char *envp[])
{
	static const char *const passed[ENV_PASSED_MAX] = { "TSAN_OPTIONS=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=",
							    "LSAN_OPTIONS=" };
	size_t n = 0;
	for (char **e = environ; *e && n < ENV_PASSED_MAX; e++)
		for (size_t i = 0; i < ENV_PASSED_MAX; i++)
			if (!strncmp(*e, passed[i], strlen(passed[i])))
				envp[n++] = *e;
	envp[n] = NULL;
}

int vm_proc_start(const char *ftvm, const char *run_dir, const char *name, const char *xml_path, const char *role,
		  const char *const *extra, int id, struct vm_proc *p, char *err, size_t errlen)
{
	char sock[SUN_PATH_MAX], log[4096], vm[64], xml[4096], cmd[16], prog[4096];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;

	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
	if (vm_proc_socket(run_dir, name, sock, sizeof(sock))) {
		snprintf(err, errlen, "the control socket %s/%s.sock is too long for a socket address: use a shorter "
				      "--state-dir or VM name", run_dir, name);
		return -ENAMETOOLONG;
	}
	file_name(log, sizeof(log), run_dir, name, "log");
	snprintf(vm, sizeof(vm), "%s", name);
	snprintf(xml, sizeof(xml), "%s", xml_path);
	snprintf(cmd, sizeof(cmd), "%s", role);
	snprintf(prog, sizeof(prog), "%s", ftvm);
	char *argv[8 + VM_PROC_EXTRA_MAX + 1] = { prog, cmd, "--domain", xml, "--vm", vm, "--control", sock, NULL };
	for (size_t i = 0; extra && extra[i] && i < VM_PROC_EXTRA_MAX; i++)
		argv[8 + i] = (char *)extra[i];   /* posix_spawn's argv is not const, and does not write it */

	int ret = -posix_spawn_file_actions_init(&fa);
	if (ret)
		goto out_msg;
	ret = -posix_spawnattr_init(&attr);
	if (ret) {
		posix_spawn_file_actions_destroy(&fa);
		goto out_msg;
	}
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	char *envp[ENV_PASSED_MAX + 1];
	passed_env(envp);
	ret = -posix_spawn(&p->pid, prog, &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		goto out_msg;
	p->id = id;
	p->child = true;
	snprintf(p->role, sizeof(p->role), "%s", role);
	p->pidfd = pidfd_open(p->pid, 0);
	if (p->pidfd < 0 || (ret = write_pid_file(run_dir, name, p)) != 0) {
		ret = p->pidfd < 0 ? -errno : ret;
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		vm_proc_release(p);
		goto out_msg;
	}
	return 0;
out_msg:
	snprintf(err, errlen, "cannot start %s %s for VM %s: %s", ftvm, role, name, strerror(-ret));
	return ret;
}

/* Whether /proc/PID/cmdline is an ftvm command with `--control sock` among its arguments. */
static bool cmdline_is_vm(pid_t pid, const char *sock)
{
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	bool prev_control = false;
	for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
		if (prev_control && !strcmp(a, sock))
			return true;
		prev_control = !strcmp(a, "--control");
	}
	return false;
}

int vm_proc_adopt(const char *run_dir, const char *name, struct vm_proc *p)
{
	char path[4096], sock[SUN_PATH_MAX], line[128], role[16];
	int pid, id;

	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
	file_name(path, sizeof(path), run_dir, name, "pid");
	FILE *f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	bool parsed = fgets(line, sizeof(line), f) && sscanf(line, "%d %d %15s", &pid, &id, role) == 3 && pid > 1 &&
		      id > 0;
	fclose(f);
	if (parsed && !vm_proc_socket(run_dir, name, sock, sizeof(sock)) && cmdline_is_vm(pid, sock)) {
		p->pidfd = pidfd_open(pid, 0);
		/* The check raced with an exit and a reuse of the pid only if the pidfd's process is
		 * not the VM: look again through the pidfd's pid. */
		if (p->pidfd >= 0 && cmdline_is_vm(pid, sock)) {
			p->pid = pid;
			p->id = id;
			snprintf(p->role, sizeof(p->role), "%s", role);
			return 0;
		}
		vm_proc_release(p);
	}
	unlink(path);
	return -ESRCH;
}

bool vm_proc_reap(const char *run_dir, const char *name, struct vm_proc *p, int *wstatus)
{
	char path[4096];
	*wstatus = -1;
	if (p->child) {
		int st;
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == 0)
			return false;
		if (r == p->pid)
			*wstatus = st;
	} else {
		struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
		if (p->pidfd >= 0 && poll(&pfd, 1, 0) == 0)
			return false;
		/* Found by this process after all (the table reopened in the same process): collected. */
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid)
			*wstatus = st;
	}
	file_name(path, sizeof(path), run_dir, name, "pid");
	unlink(path);
	return true;
}

void vm_proc_release(struct vm_proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->pid = 0;
}

int vm_proc_signal(const struct vm_proc *p, int sig)
{
	if (p->pidfd < 0)
		return -ESRCH;
	return pidfd_send_signal(p->pidfd, sig, NULL, 0) ? -errno : 0;
}

uint64_t vm_proc_cpu_ns(const struct vm_proc *p)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* The fields after the command name (which may hold spaces and parentheses): state is the
	 * 3rd field of the file, utime and stime the 14th and 15th. */
	char *s = strrchr(buf, ')');
	unsigned long long ut, st;
	if (!s || sscanf(s + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
		return 0;
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? (uint64_t)(ut + st) * (1000000000ull / (uint64_t)hz) : 0;
}

/* The answer line as an object when "ok" is true (frees line). */
static json_t *answer_object(char *line, char *err, size_t errlen)
{
	if (!line)
		return NULL;
	json_error_t jerr;
	json_t *o = json_loads(line, 0, &jerr);
	free(line);
	if (!json_is_object(o)) {
		snprintf(err, errlen, "the VM's control socket answered no JSON object");
	} else if (!json_is_true(json_object_get(o, "ok"))) {
		const char *e = json_string_value(json_object_get(o, "error"));
		snprintf(err, errlen, "%s", e ? e : "the VM refused");
	} else {
		return o;
	}
	json_decref(o);
	return NULL;
}

json_t *vm_proc_ask_json(const char *run_dir, const char *name, const json_t *req, char *err, size_t errlen)
{
	char sock[SUN_PATH_MAX];
	if (vm_proc_socket(run_dir, name, sock, sizeof(sock))) {
		snprintf(err, errlen, "control socket path too long");
		return NULL;
	}
	return answer_object(control_request_json(sock, req, err, errlen), err, errlen);
}

json_t *vm_proc_ask(const char *run_dir, const char *name, const char *cmd, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	json_t *answer = req ? vm_proc_ask_json(run_dir, name, req, err, errlen) : NULL;
	if (!req)
		snprintf(err, errlen, "out of memory");
	json_decref(req);
	return answer;
}
