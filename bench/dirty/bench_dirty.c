/*
 * bench_dirty.c — what dirty-page tracking costs the guest.
 *
 * Two workloads, each run to a fixed icount in the live world with the virtual clock (so every
 * mode executes exactly the same instructions): the store-heavy loop of stores.S, and the bundled
 * Linux guest from power-on (OpenSBI, kernel, init) when it is built. Three modes, measured
 * interleaved in the same run, best of REPEATS by the vCPU thread's CPU time: tracking off; on with a collection every 100 ms;
 * on with a collection every 10 ms. A collection is what pre-copy does: a control thread holds
 * the vCPU (machine_pause), collects the bitmap, lets it go. Prints guest MIPS, the ratio to
 * "off", and the collections' average number of dirty pages and hold time. Not run by ctest.
 *
 * Usage: bench_dirty [GUEST_DIR]   (default: the build's guest/ link)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "host/world_live.h"
#include "vm/machine.h"

#define REPEATS 5
#define LINUX_ICOUNT 250000000ull
#define MIB (1024ull * 1024ull)

struct workload {
	const char *name;
	struct machine_config mc;
	icount_t stop;               /* ICOUNT_MAX: until the guest powers off */
	char paths[3][4096];
};

struct mode {
	const char *name;
	unsigned period_ms;          /* 0: tracking off */
};

static const struct mode modes[] = {
	{ "off", 0 },
	{ "on, collect every 100 ms", 100 },
	{ "on, collect every 10 ms", 10 },
};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

struct result {
	double seconds;              /* wall time of the run */
	double cpu_seconds;          /* CPU time of the vCPU thread: without other processes' share */
	enum machine_exit exit;
	icount_t icount;
	unsigned collections;
	double pages_per_collection;
	double hold_us;              /* pause, collect, resume */
	double collect_us;           /* machine_dirty_collect alone */
};

struct vcpu {
	struct machine *m;
	struct vm_world world;
	icount_t stop;
	enum machine_exit exit;
	int status;
	double cpu_seconds;
	atomic_bool done;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	double c0 = thread_cpu_s();
	v->exit = machine_run(v->m, v->world, v->stop, &v->status);
	v->cpu_seconds = thread_cpu_s() - c0;
	atomic_store(&v->done, true);
	return NULL;
}

static int run_once(const struct workload *wl, const struct mode *mode, const char *disk, struct result *out)
{
	char err[256];
	struct machine *m;
	struct world_live *w;
	int ret = machine_create(&wl->mc, &m, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "bench_dirty: %s: %s\n", wl->name, err);
		return ret;
	}
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct world_live_config wc = { .clock = WORLD_CLOCK_VIRTUAL, .ndisks = wl->mc.ndisks, .rng_seed = 1,
					.console_in_fd = -1, .console_out_fd = devnull };
	if (wl->mc.ndisks)
		wc.disk_path[0] = disk;
	ret = world_live_create(&wc, &w, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "bench_dirty: %s: %s\n", wl->name, err);
		machine_destroy(m);
		close(devnull);
		return ret;
	}
	size_t words = machine_dirty_words(m);
	uint64_t *bitmap = calloc(words, sizeof(*bitmap));
	*out = (struct result){ 0 };
	double pages = 0, hold = 0, collect = 0;
	if (!bitmap || (mode->period_ms && (ret = machine_dirty_start(m)) != 0)) {
		fprintf(stderr, "bench_dirty: cannot start tracking\n");
		ret = ret ? ret : -ENOMEM;
		goto out;
	}
	struct vcpu v = { .m = m, .world = world_live_world(w), .stop = wl->stop };
	atomic_init(&v.done, false);
	pthread_t thread;
	double t0 = now_s();
	if (pthread_create(&thread, NULL, vcpu_main, &v)) {
		ret = -EAGAIN;
		goto out;
	}
	while (!atomic_load(&v.done)) {
		unsigned ms = mode->period_ms ? mode->period_ms : 50;
		struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
		nanosleep(&ts, NULL);
		if (!mode->period_ms || atomic_load(&v.done))
			continue;
		double h0 = now_s();
		if (machine_pause(m) == 0) {
			double c0 = now_s();
			long n = machine_dirty_collect(m, bitmap, words);
			collect += now_s() - c0;
			machine_resume(m);
			hold += now_s() - h0;
			pages += n > 0 ? (double)n : 0;
			out->collections++;
		}
	}
	pthread_join(thread, NULL);
	out->seconds = now_s() - t0;
	out->cpu_seconds = v.cpu_seconds;
	out->exit = v.exit;
	out->icount = machine_icount(m);
	out->pages_per_collection = out->collections ? pages / out->collections : 0;
	out->hold_us = out->collections ? hold / out->collections * 1e6 : 0;
	out->collect_us = out->collections ? collect / out->collections * 1e6 : 0;
	if (v.exit == MACHINE_EXIT_ERROR) {
		fprintf(stderr, "bench_dirty: %s: run failed: %s\n", wl->name, strerror(-v.status));
		ret = v.status;
	}
out:
	free(bitmap);
	world_live_destroy(w);
	machine_destroy(m);
	close(devnull);
	return ret;
}

static int bench(const struct workload *wl, const char *disk)
{
	struct result best[NMODES];
	for (unsigned r = 0; r < REPEATS; r++)
		for (unsigned k = 0; k < NMODES; k++) {
			struct result res;
			int ret = run_once(wl, &modes[k], disk, &res);
			if (ret)
				return ret;
			if (r == 0 || res.cpu_seconds < best[k].cpu_seconds)
				best[k] = res;
		}
	static const char *const exits[] = { "power-off", "reset", "the icount limit", "an error" };
	printf("\n%s: %llu instructions to %s, best of %d by vCPU CPU time:\n", wl->name,
	       (unsigned long long)best[0].icount, exits[best[0].exit], REPEATS);
	for (unsigned k = 0; k < NMODES; k++) {
		if (best[k].icount != best[0].icount)
			printf("  (%s ran %llu instructions: not comparable)\n", modes[k].name,
			       (unsigned long long)best[k].icount);
		printf("  %-26s cpu %6.3f s %6.1f MIPS ratio %.3f | wall %6.3f s ratio %.3f", modes[k].name,
		       best[k].cpu_seconds, (double)best[k].icount / best[k].cpu_seconds / 1e6,
		       best[0].cpu_seconds / best[k].cpu_seconds, best[k].seconds, best[0].seconds / best[k].seconds);
		if (modes[k].period_ms)
			printf(" | %u collections: %.0f dirty pages, %.0f us held (collect alone %.1f us)",
			       best[k].collections, best[k].pages_per_collection, best[k].hold_us, best[k].collect_us);
		printf("\n");
	}
	return 0;
}

static int have(const char *path)
{
	return access(path, R_OK) == 0;
}

int main(int argc, char **argv)
{
	const char *guest = argc > 1 ? argv[1] : GUEST_DIR;
	char commit[64] = "unknown";
	FILE *f = popen("git -C " FTVM_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null", "r");
	if (f) {
		if (fgets(commit, sizeof(commit), f))
			commit[strcspn(commit, "\n")] = '\0';
		pclose(f);
	}
	struct utsname u;
	uname(&u);
	printf("host: %s %s %s, %ld CPUs; commit %s\n", u.nodename, u.sysname, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), commit);
	printf("ratio = time with tracking off / time in the mode (1.000: free). cpu: the vCPU thread's CPU\n"
	       "time (the tracking cost itself); wall: also the waits for holds (up to a slice each) and\n"
	       "whatever else the host runs\n");

	char disk[] = "/tmp/bench_dirty_disk.XXXXXX";
	int fd = mkstemp(disk);
	if (fd < 0 || ftruncate(fd, 16 * MIB) != 0) {
		perror("bench_dirty: scratch disk");
		return 1;
	}
	close(fd);
	int ret = 0;
	static struct workload stores = { .name = "store-heavy loop (stores.S)",
					  .mc = { .kernel = STORES_ELF, .mem_mib = 64 }, .stop = ICOUNT_MAX };
	if (have(STORES_ELF))
		ret = bench(&stores, disk);
	else
		printf("%s missing (no riscv64-unknown-elf-gcc): store loop skipped\n", STORES_ELF);

	static struct workload linux_boot = { .name = "Linux (bundled guest, self-test workload, from power-on)",
					      .stop = LINUX_ICOUNT };
	struct workload *wl = &linux_boot;
	snprintf(wl->paths[0], sizeof(wl->paths[0]), "%s/Image", guest);
	snprintf(wl->paths[1], sizeof(wl->paths[1]), "%s/fw_dynamic.bin", guest);
	snprintf(wl->paths[2], sizeof(wl->paths[2]), "%s/initramfs.cpio", guest);
	if (!ret && have(wl->paths[0]) && have(wl->paths[1]) && have(wl->paths[2])) {
		wl->mc = (struct machine_config){ .kernel = wl->paths[0], .bios = wl->paths[1], .initrd = wl->paths[2],
						  .append = "console=ttyS0 panic=1 ftvm.workload=selftest",
						  .mem_mib = 256, .ndisks = 1, .disk_bytes = { 16 * MIB }, .rng = true };
		ret = bench(wl, disk);
	} else if (!ret) {
		printf("no guest in %s: Linux boot skipped\n", guest);
	}
	unlink(disk);
	return ret ? 1 : 0;
}
