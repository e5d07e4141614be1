/*
 * run_world.c — live-world configuration from run options (see run_world.h).
 */
#include "cmd/run_world.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/exit_code.h"
#include "util/disk_image.h"

/* A sparse scratch disk that disappears with the process: unlinked at once, reached by fd path. */
static int open_scratch_disk(struct run_world *rw, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	char name[RUN_PATH_MAX];
	snprintf(name, sizeof(name), "%s/ftvm-scratch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkostemp(name, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "scratch disk %s: %s", name, strerror(e));
		return -e;
	}
	unlink(name);
	if (ftruncate(fd, (off_t)RUN_SCRATCH_DISK_BYTES) != 0) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "scratch disk: %s", strerror(e));
		return -e;
	}
	snprintf(rw->scratch_path, sizeof(rw->scratch_path), "/proc/self/fd/%d", fd);
	rw->scratch_fd = fd;
	return 0;
}

int run_world_prepare(const struct run_options *o, struct run_world *rw, char *err, size_t errlen)
{
	memset(rw, 0, sizeof(*rw));
	rw->scratch_fd = -1;
	rw->config.clock = o->clock;
	rw->config.ndisks = o->ndisks;
	rw->config.nnics = o->nnics;
	rw->config.rng_seed = o->rng_seed;
	rw->config.console_in_fd = STDIN_FILENO;
	rw->config.console_out_fd = STDOUT_FILENO;
	for (unsigned i = 0; i < o->ndisks; i++)
		rw->config.disk_path[i] = o->disk[i];
	for (unsigned i = 0; i < o->nnics; i++)
		rw->config.tap_ifname[i] = o->nic[i].ifname;
	if (o->bundled && o->ndisks == 0) {
		int ret = open_scratch_disk(rw, err, errlen);
		if (ret < 0)
			return ret;
		rw->config.disk_path[0] = rw->scratch_path;
		rw->config.ndisks = 1;
	}
	return 0;
}

void run_world_release(struct run_world *rw)
{
	if (rw->scratch_fd >= 0)
		close(rw->scratch_fd);
	rw->scratch_fd = -1;
}

int run_world_machine_config(const struct run_options *o, const struct run_world *rw, const struct world_live *w,
			     struct machine_config *mc, char *err, size_t errlen)
{
	run_options_machine_config(o, mc);
	mc->ndisks = rw->config.ndisks;
	for (unsigned i = 0; i < rw->config.ndisks; i++) {
		if (w) {
			mc->disk_bytes[i] = world_live_disk_size(w, i);
			continue;
		}
		int ret = disk_image_probe_size(rw->config.disk_path[i], &mc->disk_bytes[i], err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int run_world_open_live(const struct run_options *o, struct run_world *rw, struct world_live **world,
			struct machine_config *mc, char *err, size_t errlen)
{
	int ret;

	*world = NULL;
	ret = run_world_prepare(o, rw, err, errlen);
	if (ret == 0)
		ret = world_live_create(&rw->config, world, err, errlen);
	run_world_release(rw); /* the disk back end holds its own descriptor of the scratch disk */
	if (ret == 0)
		ret = run_world_machine_config(o, rw, *world, mc, err, errlen);
	if (ret < 0) {
		world_live_destroy(*world);
		*world = NULL;
	}
	return ret;
}

/* The world a termination signal asks to quit (one VM per process). */
static struct world_live *volatile signal_world;

static void on_signal(int signo)
{
	struct world_live *w = signal_world;
	if (w)
		world_live_request_quit(w, signo);
}

void run_world_catch_signals(struct world_live *w)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	signal_world = w;
	if (!w)
		return;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int run_world_finish(const char *cmd, struct world_live **w, enum machine_exit why, int status, const char *error_note)
{
	int signo = *w ? world_live_quit_signal(*w) : 0;
	bool stopped = *w && world_live_stop_requested(*w);
	bool handed_over = *w && world_live_handed_over(*w);
	bool quit = *w && (signo || stopped || world_live_quit_requested(*w));
	run_world_catch_signals(NULL);
	world_live_destroy(*w);  /* restores the terminal before anything is printed */
	*w = NULL;
	if (why == MACHINE_EXIT_POWEROFF)
		return ftvm_exit_of_guest(status);
	if (why != MACHINE_EXIT_ERROR)
		return FTVM_EXIT_OK;
	if (status == -ECANCELED && handed_over) {
		fprintf(stderr, "\nftvm %s: the VM was handed over to its migration's destination; this copy "
				"has stopped\n", cmd);
		return FTVM_EXIT_OK;
	}
	if (status == -ECANCELED && quit) {
		if (stopped && !signo)
			fprintf(stderr, "\nftvm %s: stopped for good after its snapshot (ftvm snapshot --stop)\n", cmd);
		else if (signo)
			fprintf(stderr, "\nftvm %s: terminated by signal %d (%s)\n", cmd, signo, strsignal(signo));
		else
			fprintf(stderr, "\nftvm %s: terminated (Ctrl-A x)\n", cmd);
		return signo ? FTVM_EXIT_SIGNAL_BASE + signo : FTVM_EXIT_OK;
	}
	if (status == -EDEADLK)
		fprintf(stderr, "ftvm %s: the guest halted: it waits for an interrupt that cannot come%s%s\n", cmd,
			error_note ? " " : "", error_note ? error_note : "");
	else
		fprintf(stderr, "ftvm %s: the run stopped with an error: %s%s%s\n", cmd, strerror(-status),
			error_note ? " " : "", error_note ? error_note : "");
	return FTVM_EXIT_FAILURE;
}
