/*
 * init.c — PID 1 of the bundled guest.
 *
 * 1. Mounts devtmpfs, proc and sysfs, and makes sure stdio is the console.
 * 2. Reads /proc/cmdline: `ftvm.workload=NAME` picks the workload (default kvd); every other
 *    `ftvm.KEY=VALUE` is handed to the workload as environment variable FTVM_KEY (upper case, dots
 *    as underscores), e.g. `ftvm.peer=10.0.2.2:7001` becomes FTVM_PEER. (Linux treats dotted
 *    parameters as module options and does not pass them to init itself.)
 * 3. Networking: brings lo up; eth0 is left as the kernel's `ip=` autoconfiguration set it.
 * 4. Starts the workload. A service (kvd) reports readiness by writing a byte to the file
 *    descriptor named in FTVM_READY_FD; then, or at once for the other workloads, init prints
 *    exactly "ftvm-guest: ready" on the console.
 * 5. Reaps children. When the workload exits, init syncs and powers off: status 0 is a clean
 *    poweroff (SBI SRST -> sifive,test PASS); a nonzero status N writes the sifive,test FAIL
 *    value (N << 16) | 0x3333 to physical 0x100000 through /dev/mem, which ends QEMU (and ftvm's
 *    board) with exit status N — Linux's own poweroff path can only report PASS. busybox
 *    `poweroff`/`reboot`/`halt` without -f signal init (SIGUSR2/SIGTERM/SIGUSR1) and are honoured.
 */
#include "applets.h"
#include "guestlib.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_LINE "ftvm-guest: ready\n"
#define CMDLINE_MAX 4096
#define CMDLINE_PREFIX "ftvm."
#define DEFAULT_WORKLOAD "kvd"

/* sifive,test finisher (QEMU virt and ftvm's board): a 32-bit register at this physical address. */
#define FINISHER_PHYS_ADDR 0x100000ul
#define FINISHER_FAIL 0x3333u
#define FINISHER_CODE_SHIFT 16
#define FINISHER_CODE_MAX 0xffffu
/* How long to wait for the finisher to stop the machine before halting instead. */
#define FINISHER_GRACE_MS 2000

/* Exit status used when init itself (not the workload) fails. */
#define INIT_FAILURE_STATUS 100

enum workload_kind {
	WORKLOAD_SERVICE, /* runs until poweroff; ready once it says so */
	WORKLOAD_TASK,    /* runs to completion; its exit status is the machine's */
	WORKLOAD_IDLE,    /* nothing runs: timer-rate and log-bandwidth measurements */
	WORKLOAD_SHELL,   /* an interactive shell on the console; poweroff when it exits */
};

struct workload {
	const char *name;
	enum workload_kind kind;
	const char *path;
};

static const struct workload workloads[] = {
	{ "kvd", WORKLOAD_SERVICE, "/usr/bin/kvd" },
	{ "selftest", WORKLOAD_TASK, "/usr/bin/ftvm-selftest" },
	{ "cpu", WORKLOAD_TASK, "/usr/bin/ftvm-cpu" },
	{ "disk", WORKLOAD_TASK, "/usr/bin/ftvm-disk" },
	{ "idle", WORKLOAD_IDLE, NULL },
	{ "shell", WORKLOAD_SHELL, "/bin/sh" },
};

static void console_print(const char *text)
{
	if (guest_write_all(STDOUT_FILENO, text, strlen(text)) < 0)
		return; /* no console: nothing else to tell */
}

static void setup_console(void)
{
	int fd;

	if (fcntl(STDOUT_FILENO, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i <= STDERR_FILENO; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > STDERR_FILENO)
		close(fd);
}

static int mount_one(const char *source, const char *target, const char *type)
{
	mkdir(target, 0755);
	if (mount(source, target, type, MS_NOSUID | MS_NOEXEC, NULL) < 0 && errno != EBUSY) {
		int err = -errno;
		guest_log("mount %s on %s: %s", type, target, strerror(-err));
		return err;
	}
	return 0;
}

static int mount_filesystems(void)
{
	int err = 0;

	/* All three nosuid,noexec: none holds programs (device nodes work on a noexec mount). */
	if (mount_one("devtmpfs", "/dev", "devtmpfs") < 0)
		err = -EIO;
	if (mount_one("proc", "/proc", "proc") < 0)
		err = -EIO;
	if (mount_one("sysfs", "/sys", "sysfs") < 0)
		err = -EIO;
	return err;
}

/* Turns "ftvm.some.key=value" into environment variable FTVM_SOME_KEY=value. */
static void export_param(const char *param)
{
	char name[128];
	const char *eq = strchr(param, '=');
	size_t len;

	if (!eq)
		return;
	len = (size_t)(eq - param);
	if (len >= sizeof(name))
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)param[i];
		name[i] = (c == '.' || c == '-') ? '_' : (char)toupper(c);
	}
	name[len] = '\0';
	setenv(name, eq + 1, 1);
}

/* Parses /proc/cmdline; returns the workload name (static storage). */
static const char *read_cmdline(void)
{
	static char buf[CMDLINE_MAX];
	static char workload[64] = DEFAULT_WORKLOAD;
	ssize_t n = 0;
	int fd = open("/proc/cmdline", O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n <= 0) {
		guest_log("cannot read /proc/cmdline; using defaults");
		return workload;
	}
	buf[n] = '\0';
	for (char *save = NULL, *tok = strtok_r(buf, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(tok, CMDLINE_PREFIX, strlen(CMDLINE_PREFIX)) != 0)
			continue;
		export_param(tok);
		if (strncmp(tok, "ftvm.workload=", strlen("ftvm.workload=")) == 0)
			snprintf(workload, sizeof(workload), "%s", tok + strlen("ftvm.workload="));
	}
	return workload;
}

static int interface_flags(int sock, const char *ifname, short *flags)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	*flags = ifr.ifr_flags;
	return 0;
}

/* lo up (the kernel gives it 127.0.0.1 on its own); eth0 untouched if ip= configured it. */
static void setup_network(void)
{
	struct ifreq ifr;
	short flags = 0;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sock < 0) {
		guest_log("no IPv4 sockets: %s", strerror(errno));
		return;
	}
	if (interface_flags(sock, "lo", &flags) == 0 && !(flags & IFF_UP)) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
		ifr.ifr_flags = (short)(flags | IFF_UP);
		if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
			guest_log("cannot bring lo up: %s", strerror(errno));
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	if (ioctl(sock, SIOCGIFADDR, &ifr) == 0) {
		char addr[INET_ADDRSTRLEN];
		struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
		if (inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr)))
			guest_log("eth0 is %s", addr);
	}
	close(sock);
}

static void finisher_fail(unsigned code)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	volatile uint32_t *reg;
	void *map;

	if (fd < 0) {
		guest_log("/dev/mem: %s", strerror(errno));
		return;
	}
	map = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(FINISHER_PHYS_ADDR & ~((unsigned long)page - 1)));
	close(fd);
	if (map == MAP_FAILED) {
		guest_log("mapping the test finisher: %s", strerror(errno));
		return;
	}
	reg = (volatile uint32_t *)((char *)map + (FINISHER_PHYS_ADDR & ((unsigned long)page - 1)));
	*reg = (code << FINISHER_CODE_SHIFT) | FINISHER_FAIL;
	guest_sleep_ms(FINISHER_GRACE_MS);
	munmap(map, (size_t)page);
}

/* Ends the machine: status 0 powers off, anything else reports it through the finisher. */
static void __attribute__((noreturn)) power_off(int status)
{
	char line[96];
	unsigned code = status > 0 && (unsigned)status <= FINISHER_CODE_MAX ? (unsigned)status : 1;

	snprintf(line, sizeof(line), "ftvm-guest: power off (status %d)\n", status);
	console_print(line);
	sync();
	if (status != 0) {
		finisher_fail(code);
		/* Still running: the board ignored the finisher. Halting is not a false "pass". */
		console_print("ftvm-guest: test finisher did not stop the machine; halting\n");
		reboot(RB_HALT_SYSTEM);
	} else {
		reboot(RB_POWER_OFF);
	}
	for (;;)
		pause();
}

static const struct workload *find_workload(const char *name)
{
	for (size_t i = 0; i < GUEST_ARRAY_SIZE(workloads); i++)
		if (strcmp(workloads[i].name, name) == 0)
			return &workloads[i];
	return NULL;
}

/* The console device behind /dev/console ("ttyS0", "hvc0"), for a shell with job control. */
static int open_console_tty(void)
{
	char name[64] = "console";
	char path[80];
	int fd = open("/sys/class/tty/console/active", O_RDONLY);

	if (fd >= 0) {
		ssize_t n = read(fd, name, sizeof(name) - 1);
		close(fd);
		if (n > 0) {
			name[n] = '\0';
			/* Several consoles: the last one listed is /dev/console. */
			char *last = strrchr(name, ' ');
			memmove(name, last ? last + 1 : name, strlen(last ? last + 1 : name) + 1);
			name[strcspn(name, "\n")] = '\0';
		}
	}
	snprintf(path, sizeof(path), "/dev/%s", name);
	return open(path, O_RDWR);
}

static void child_setup_shell(void)
{
	int fd;

	setsid();
	fd = open_console_tty();
	if (fd < 0)
		return;
	ioctl(fd, TIOCSCTTY, 0);
	for (int i = 0; i <= STDERR_FILENO; i++)
		dup2(fd, i);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* Starts the workload; for a service, *ready_fd is the read end it reports readiness on. */
static pid_t start_workload(const struct workload *w, int *ready_fd)
{
	int pipefd[2] = { -1, -1 };
	pid_t pid;

	*ready_fd = -1;
	if (w->kind == WORKLOAD_SERVICE && pipe2(pipefd, O_CLOEXEC) < 0) {
		guest_log("pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		sigset_t none;
		char fdtext[16];
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (w->kind == WORKLOAD_SERVICE) {
			int fd = dup(pipefd[1]); /* without O_CLOEXEC */
			snprintf(fdtext, sizeof(fdtext), "%d", fd);
			setenv("FTVM_READY_FD", fdtext, 1);
		}
		if (w->kind == WORKLOAD_SHELL)
			child_setup_shell();
		else
			setsid();
		execl(w->path, w->path, (char *)NULL);
		guest_log("exec %s: %s", w->path, strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		guest_log("fork: %s", strerror(errno));
	if (w->kind == WORKLOAD_SERVICE) {
		close(pipefd[1]);
		if (pid < 0)
			close(pipefd[0]);
		else
			*ready_fd = pipefd[0];
	}
	return pid;
}

/* Waits until the service writes its readiness byte; false when it exits first. */
static int wait_ready(int ready_fd)
{
	char c;
	ssize_t n;

	do
		n = read(ready_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	close(ready_fd);
	return n == 1;
}

static int exit_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	return 128 + WTERMSIG(wstatus);
}

/* Reaps every child; returns the workload's exit status when it has ended, -1 otherwise. */
static int reap_children(pid_t workload_pid)
{
	int wstatus, result = -1;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		if (pid == workload_pid)
			result = exit_status(wstatus);
	}
	return result;
}

int init_main(int argc, char **argv)
{
	const struct workload *w;
	const char *name;
	sigset_t set;
	pid_t pid = -1;
	int ready_fd;

	setup_console();
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);

	if (mount_filesystems() < 0)
		power_off(INIT_FAILURE_STATUS);
	setup_console();
	name = read_cmdline();
	w = find_workload(name);
	if (!w) {
		guest_log("unknown workload '%s' (kvd, selftest, cpu, disk, idle, shell)", name);
		power_off(INIT_FAILURE_STATUS);
	}
	setenv("PATH", "/usr/bin:/usr/sbin:/bin:/sbin", 1);
	setenv("HOME", "/root", 1);
	setenv("TERM", "vt100", 0);
	setup_network();
	guest_log("workload %s", w->name);

	if (w->kind != WORKLOAD_IDLE) {
		pid = start_workload(w, &ready_fd);
		if (pid < 0)
			power_off(INIT_FAILURE_STATUS);
		if (ready_fd >= 0 && !wait_ready(ready_fd)) {
			guest_log("%s exited before it was ready", w->name);
			int wstatus;
			while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
				;
			int status = exit_status(wstatus);
			power_off(status ? status : INIT_FAILURE_STATUS);
		}
	}
	struct timespec up;
	clock_gettime(CLOCK_BOOTTIME, &up);
	guest_log("up %lld ms after kernel start", (long long)up.tv_sec * 1000 + up.tv_nsec / 1000000);
	console_print(READY_LINE);

	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&set, &info);
		int status;

		switch (sig) {
		case SIGCHLD:
			status = reap_children(pid);
			if (status < 0)
				break;
			if (w->kind == WORKLOAD_SERVICE) {
				guest_log("%s ended (status %d)", w->name, status);
				power_off(status ? status : INIT_FAILURE_STATUS);
			}
			power_off(status);
		case SIGUSR2: /* busybox poweroff */
		case SIGUSR1: /* busybox halt */
			power_off(0);
		case SIGTERM: /* busybox reboot */
		case SIGINT:  /* ctrl-alt-del */
			console_print("ftvm-guest: reboot\n");
			sync();
			reboot(RB_AUTOBOOT);
			break;
		default:
			break;
		}
	}
}
