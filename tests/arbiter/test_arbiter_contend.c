/*
 * test_arbiter_contend.c — many real processes claim the same epochs at once on one area file
 * (O_DIRECT|O_DSYNC through the real I/O layer), over hundreds of epochs, so the ring of epoch slots
 * wraps several times. Every completed claim is written to shared memory; afterwards the parent checks
 * that each epoch has exactly one winner, that every loser names it, and that the decision records
 * on disk say the same.
 *
 * Modes: --lockstep (a barrier before each epoch: all processes fight for every epoch, and none may
 * be refused); free running (fast processes run ahead; a slow one may be refused an epoch older
 * than a decided one, -ESTALE, but never given a different winner); --kill (the parent SIGKILLs
 * random claimants at random moments and restarts them on the epoch they were claiming).
 *
 * Usage: test_arbiter_contend DIR --procs P --epochs E [--lockstep | --kill]
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/arbiter.h"

#define VM "contend-vm"
#define MAX_PROCS ARBITER_MAX_NODES
#define MAX_EPOCHS 2000u
#define NO_RESULT (-1)
#define STALE (-2)
#define FAILED (-3)
#define CLAIM_TIMEOUT_MS 20000
#define KILL_GAP_MAX_US 30000u
#define DECIDED_MAX 256u

struct shared {
	pthread_barrier_t barrier;
	int32_t result[MAX_EPOCHS + 1][MAX_PROCS]; /* winner, or NO_RESULT / STALE / FAILED */
	volatile uint32_t next_epoch[MAX_PROCS];     /* the epoch each process is claiming */
	volatile uint32_t done[MAX_PROCS];
};

static struct shared *sh;
static const char *area;
static unsigned procs, epochs;
static int lockstep, killer;

static void claimant(unsigned node)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a;

	if (arbiter_open(area, VM, &a, err) < 0) {
		fprintf(stderr, "node %u: %s\n", node, err);
		_exit(1);
	}
	for (uint32_t e = sh->next_epoch[node]; e <= epochs; e++) {
		unsigned winner;
		int ret;

		sh->next_epoch[node] = e;
		if (lockstep)
			pthread_barrier_wait(&sh->barrier);
		ret = arbiter_claim(a, e, node, CLAIM_TIMEOUT_MS, &winner);
		if (ret >= 0 && (ret == ARBITER_WON) != (winner == node))
			ret = -EPROTO;
		if (ret == -ESTALE) {
			sh->result[e][node] = STALE;
		} else if (ret < 0) {
			fprintf(stderr, "node %u epoch %u: %s\n", node, e, arbiter_error(a));
			sh->result[e][node] = FAILED;
		} else {
			sh->result[e][node] = (int32_t)winner;
		}
	}
	arbiter_close(a);
	sh->done[node] = 1;
	_exit(0);
}

static pid_t spawn(unsigned node)
{
	pid_t pid = fork();

	if (pid == 0)
		claimant(node);
	return pid;
}

/* SIGKILLs random claimants until all are done; each dead one restarts on its current epoch. */
static unsigned kill_loop(pid_t *pids)
{
	unsigned kills = 0, alive = procs;
	unsigned seed = (unsigned)getpid();

	while (alive) {
		struct timespec gap = { 0, (long)(rand_r(&seed) % KILL_GAP_MAX_US) * 1000L };
		unsigned victim = (unsigned)rand_r(&seed) % procs;
		int status;

		nanosleep(&gap, NULL);
		alive = 0;
		for (unsigned i = 0; i < procs; i++)
			alive += !sh->done[i];
		if (!sh->done[victim] && kill(pids[victim], SIGKILL) == 0) {
			waitpid(pids[victim], &status, 0);
			if (!sh->done[victim]) {
				kills++;
				pids[victim] = spawn(victim);
			}
		}
	}
	return kills;
}

static int check(void)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter_decision d[DECIDED_MAX];
	struct arbiter *a;
	size_t count = 0;
	unsigned stale = 0, decided = 0, bad = 0;

	for (unsigned e = 1; e <= epochs; e++) {
		int winner = NO_RESULT, winner_says_won = 0, results = 0;

		for (unsigned n = 0; n < procs; n++) {
			int32_t r = sh->result[e][n];

			if (r == STALE) {
				stale++;
				continue;
			}
			if (r == FAILED || (r == NO_RESULT && !killer)) {
				fprintf(stderr, "FAIL epoch %u: node %u %s\n", e, n, r == FAILED ? "failed" : "has no result");
				bad++;
				continue;
			}
			if (r == NO_RESULT)
				continue;
			results++;
			if (winner != NO_RESULT && r != winner) {
				fprintf(stderr, "FAIL epoch %u: node %u says %d won, another says %d\n", e, n, r, winner);
				bad++;
			}
			winner = r;
			winner_says_won |= (unsigned)r == n;
		}
		if (results)
			decided++;
		/* free running, the winner itself may be refused as stale: a retry after a duel found
		 * a later epoch decided by the processes that ran ahead */
		if (results && !winner_says_won && lockstep) {
			fprintf(stderr, "FAIL epoch %u: winner %d did not itself report winning\n", e, winner);
			bad++;
		}
		if (!results && !killer) {
			fprintf(stderr, "FAIL epoch %u: nobody completed it\n", e);
			bad++;
		}
	}
	if (lockstep && stale) {
		fprintf(stderr, "FAIL: %u claims refused as stale in lockstep\n", stale);
		bad++;
	}
	if (arbiter_open(area, VM, &a, err) < 0 || arbiter_decided(a, d, DECIDED_MAX, &count) < 0) {
		fprintf(stderr, "FAIL: cannot read the decisions back: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < count; i++)
		for (unsigned n = 0; n < procs; n++) {
			int32_t r = d[i].epoch <= epochs ? sh->result[d[i].epoch][n] : FAILED;

			if (r >= 0 && r != (int32_t)d[i].winner) {
				fprintf(stderr, "FAIL epoch %llu: on disk node %u won, node %u was told %d\n",
					(unsigned long long)d[i].epoch, d[i].winner, n, r);
				bad++;
			}
		}
	if (count == 0 || d[0].epoch != epochs) {
		fprintf(stderr, "FAIL: the newest decision on disk is not epoch %u\n", epochs);
		bad++;
	}
	arbiter_close(a);
	printf("%u processes, %u epochs: %u decided, %u stale refusals, %zu decisions on disk, %u failures\n",
	       procs, epochs, decided, stale, count, bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	char err[ARBITER_ERR_MAX], path[4096];
	pthread_barrierattr_t attr;
	pid_t pids[MAX_PROCS];
	unsigned kills = 0;
	int status, failed = 0;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc)
			procs = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
			epochs = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--lockstep") == 0)
			lockstep = 1;
		else if (strcmp(argv[i], "--kill") == 0)
			killer = 1;
		else
			procs = 0;
	}
	if (argc < 2 || procs < 2 || procs > MAX_PROCS || epochs < 1 || epochs > MAX_EPOCHS || (lockstep && killer)) {
		fprintf(stderr, "usage: %s DIR --procs 2..16 --epochs 1..%u [--lockstep | --kill]\n", argv[0],
			MAX_EPOCHS);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/contend-%d.img", argv[1], (int)getpid());
	area = path;
	unlink(area);
	if (arbiter_init(area, VM, procs, 0, err) < 0) {
		fprintf(stderr, "init: %s\n", err);
		return 1;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	for (unsigned e = 0; e <= epochs; e++)
		for (unsigned n = 0; n < MAX_PROCS; n++)
			sh->result[e][n] = NO_RESULT;
	for (unsigned n = 0; n < MAX_PROCS; n++)
		sh->next_epoch[n] = 1;
	pthread_barrierattr_init(&attr);
	pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_barrier_init(&sh->barrier, &attr, procs);

	for (unsigned n = 0; n < procs; n++)
		pids[n] = spawn(n);
	if (killer)
		kills = kill_loop(pids);
	for (unsigned n = 0; n < procs; n++) {
		if (waitpid(pids[n], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = !killer;
	}
	if (killer)
		printf("%u claimants killed and restarted\n", kills);
	if (failed) {
		fprintf(stderr, "FAIL: a claimant process failed\n");
		return 1;
	}
	status = check();
	if (killer && kills == 0) {
		fprintf(stderr, "FAIL: nobody was killed\n");
		status = 1;
	}
	unlink(area);
	return status;
}
