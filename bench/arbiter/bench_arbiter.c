/*
 * bench_arbiter.c — latency of arbiter_claim() on a local file: uncontended, a loser learning a
 * decided epoch, and two processes racing for every epoch. The baseline measured in the same run is
 * one raw O_DIRECT|O_DSYNC sector write on the same file system (the floor for anything durable);
 * the reference is sanlock's documented 140 s to take over the lease of a dead host by default.
 *
 * Usage: bench_arbiter [DIR] [EPOCHS]   (DIR defaults to ., EPOCHS to 300)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/arbiter.h"

#define VM "bench-vm"
#define DEFAULT_EPOCHS 300u
#define MAX_EPOCHS 5000u
#define SECTOR 4096u
#define SANLOCK_TAKEOVER_S 140.0
#define TIMEOUT_MS 60000
#define CONTENDERS 2u

struct shared {
	pthread_barrier_t barrier;
	double lat_ms[CONTENDERS][MAX_EPOCHS];
	int winner[CONTENDERS][MAX_EPOCHS];
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

static void report(const char *what, double *v, size_t n, double base_p50)
{
	double p50 = pct(v, n, 0.50), p99 = pct(v, n, 0.99), max = v[n - 1];

	printf("%-34s p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%zu)  p50 = %.1f raw writes  "
	       "sanlock 140 s / p99 = %.0fx\n",
	       what, p50, p99, max, n, p50 / base_p50, SANLOCK_TAKEOVER_S * 1e3 / p99);
}

/* Baseline: raw single-sector O_DIRECT|O_DSYNC writes. */
static double raw_write_p50(const char *dir, unsigned n)
{
	char path[4200];
	double *v = calloc(n, sizeof(double)), p50 = -1;
	void *buf = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/bench-raw.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_DSYNC, 0600);
	if (fd < 0 || !v || posix_memalign(&buf, SECTOR, SECTOR) != 0)
		goto out;
	memset(buf, 0xab, SECTOR);
	for (unsigned i = 0; i < n; i++) {
		double t = now_ms();

		if (pwrite(fd, buf, SECTOR, (off_t)(i % 64) * SECTOR) != SECTOR)
			goto out;
		v[i] = now_ms() - t;
	}
	p50 = pct(v, n, 0.50);
	printf("%-34s p50 %7.3f ms  p99 %7.3f ms  (%u)\n", "baseline: one O_DSYNC sector write", p50,
	       pct(v, n, 0.99), n);
out:
	if (fd >= 0)
		close(fd);
	unlink(path);
	free(buf);
	free(v);
	return p50;
}

static int contend(const char *area, unsigned epochs, double base)
{
	pthread_barrierattr_t attr;
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double *all;
	unsigned agree = 1;

	if (sh == MAP_FAILED)
		return -1;
	pthread_barrierattr_init(&attr);
	pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_barrier_init(&sh->barrier, &attr, CONTENDERS);
	for (unsigned c = 0; c < CONTENDERS; c++) {
		if (fork() == 0) {
			char err[ARBITER_ERR_MAX];
			struct arbiter *a;

			if (arbiter_open(area, VM, &a, err) < 0)
				_exit(1);
			for (unsigned e = 0; e < epochs; e++) {
				unsigned w;
				double t;

				pthread_barrier_wait(&sh->barrier);
				t = now_ms();
				if (arbiter_claim(a, e + 1, c, TIMEOUT_MS, &w) < 0)
					_exit(1);
				sh->lat_ms[c][e] = now_ms() - t;
				sh->winner[c][e] = (int)w;
			}
			arbiter_close(a);
			_exit(0);
		}
	}
	for (unsigned c = 0; c < CONTENDERS; c++) {
		int status;

		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return -1;
	}
	all = calloc(CONTENDERS * epochs, sizeof(double));
	if (!all)
		return -1;
	for (unsigned e = 0; e < epochs; e++) {
		agree &= sh->winner[0][e] == sh->winner[1][e];
		for (unsigned c = 0; c < CONTENDERS; c++)
			all[c * epochs + e] = sh->lat_ms[c][e];
	}
	report("2 contenders, every claim", all, CONTENDERS * epochs, base);
	for (unsigned e = 0; e < epochs; e++)
		all[e] = MAX(sh->lat_ms[0][e], sh->lat_ms[1][e]);
	report("2 contenders, both answered", all, epochs, base);
	free(all);
	munmap(sh, sizeof(*sh));
	return agree ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	unsigned epochs = argc > 2 ? (unsigned)atoi(argv[2]) : DEFAULT_EPOCHS;
	char area[4200], err[ARBITER_ERR_MAX], commit[64] = "unknown", cmd[4400];
	struct utsname u;
	struct arbiter *a;
	double *lat, *learn, base;
	FILE *git;

	if (epochs < 2 || epochs > MAX_EPOCHS) {
		fprintf(stderr, "usage: %s [DIR] [EPOCHS 2..%u]\n", argv[0], MAX_EPOCHS);
		return 2;
	}
	snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse --short HEAD 2>/dev/null", FTVM_SOURCE_DIR);
	git = popen(cmd, "r");
	if (git) {
		if (fgets(commit, sizeof(commit), git))
			commit[strcspn(commit, "\n")] = '\0';
		pclose(git);
	}
	uname(&u);
	printf("bench_arbiter: host %s %s, commit %s, %u epochs, area in %s\n", u.nodename, u.release, commit,
	       epochs, dir);

	base = raw_write_p50(dir, epochs);
	snprintf(area, sizeof(area), "%s/bench-arbiter.img", dir);
	lat = calloc(epochs, sizeof(double));
	learn = calloc(epochs, sizeof(double));
	unlink(area);
	if (base <= 0 || !lat || !learn || arbiter_init(area, VM, CONTENDERS, 0, err) < 0 ||
	    arbiter_open(area, VM, &a, err) < 0) {
		fprintf(stderr, "bench_arbiter: setup failed: %s\n", err);
		return 1;
	}
	for (unsigned e = 0; e < epochs; e++) {
		unsigned w;
		double t = now_ms();

		if (arbiter_claim(a, e + 1, 0, TIMEOUT_MS, &w) != ARBITER_WON)
			return 1;
		lat[e] = now_ms() - t;
		t = now_ms();
		if (arbiter_claim(a, e + 1, 1, TIMEOUT_MS, &w) != ARBITER_LOST || w != 0)
			return 1;
		learn[e] = now_ms() - t;
	}
	arbiter_close(a);
	report("uncontended claim (wins)", lat, epochs, base);
	report("loser learning a decided epoch", learn, epochs, base);

	unlink(area);
	if (arbiter_init(area, VM, CONTENDERS, 0, err) < 0 || contend(area, epochs, base) < 0) {
		fprintf(stderr, "bench_arbiter: contention run failed\n");
		return 1;
	}
	unlink(area);
	free(lat);
	free(learn);
	return 0;
}
