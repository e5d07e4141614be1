/*
 * test_arbiter_crash.c — crash injection: claimants die at their Nth write, for every N, with the
 * write applied, dropped, garbled or torn (crashio.h), in every order of two such crashes across the
 * nodes; then every node claims again. Checks: the epoch completes, all completed claims name one
 * winner, and the decision records agree with it. Crashes are simulated in this process (a longjmp
 * out of the I/O layer, like SQLite's crash tests) so thousands of them run in seconds; real killed
 * processes are test_arbiter_contend's job.
 *
 * Usage: test_arbiter_crash DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <unistd.h>

#include "common/arbiter.h"
#include "common/arbiter_io.h"
#include "tests/arbiter/crashio.h"

#define VM "crash-vm"
#define SLOTS 2u           /* small, so the scenario's epoch reuses the slot of the first */
#define FIRST_EPOCH 1u     /* decided cleanly before each scenario */
#define EPOCH 3u           /* the epoch the scenario fights over: same slot as FIRST_EPOCH */
#define CLAIM_TIMEOUT_MS 5000
#define MAX_STEPS 2u

static char area[4096];
static unsigned failures, scenarios, crashes;

struct step {
	unsigned node;
	struct crash_plan plan;
};

/* Runs one claimant that may crash as planned; returns its winner (>= 0), -1 if it crashed, -2 on
 * error. The crash is a longjmp out of the I/O layer; the abandoned handle is only closed. */
static int run_claim(unsigned ssz, uint64_t epoch, unsigned node, const struct crash_plan *plan)
{
	static jmp_buf crash_point;
	char err[ARBITER_ERR_MAX];
	struct arbiter_io *io = crashio_open(area, ssz, 0, plan);
	struct arbiter *a = NULL;
	unsigned winner;
	int ret;

	if (!io || arbiter_open_io(io, VM, &a, err) < 0)
		return -2;
	crashio_set_crash_point(io, &crash_point);
	if (setjmp(crash_point)) {
		arbiter_close(a);
		return -1;
	}
	ret = arbiter_claim(a, epoch, node, CLAIM_TIMEOUT_MS, &winner);
	if (ret < 0)
		fprintf(stderr, "node %u: %s\n", node, arbiter_error(a));
	else if (crashio_pending(io))
		ret = -2; /* returned with unsynced writes */
	else if ((ret == ARBITER_WON) != (winner == node))
		ret = -2;
	arbiter_close(a);
	return ret < 0 ? -2 : (int)winner;
}

static void describe(char *buf, size_t len, unsigned nodes, unsigned ssz, const struct step *steps, unsigned n)
{
	int off = snprintf(buf, len, "%u nodes, %u-byte sectors:", nodes, ssz);

	for (unsigned i = 0; i < n && off > 0 && (size_t)off < len; i++)
		off += snprintf(buf + off, len - (size_t)off, " [node %u dies at write %u, %s]", steps[i].node,
				steps[i].plan.at_write, crashio_mode_name(steps[i].plan.mode));
}

static int format_area(unsigned nodes, unsigned ssz)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter_io *io;

	unlink(area);
	io = crashio_open(area, ssz, arbiter_area_sectors(nodes, SLOTS), NULL);
	if (!io || arbiter_init_io(io, VM, nodes, SLOTS, 0, err) < 0) {
		fprintf(stderr, "format: %s\n", io ? err : "cannot open");
		return -1;
	}
	return 0;
}

static void run_scenario(unsigned nodes, unsigned ssz, const struct step *steps, unsigned nsteps)
{
	char what[512];
	int winner = -1, w;

	describe(what, sizeof(what), nodes, ssz, steps, nsteps);
	scenarios++;
	if (format_area(nodes, ssz) < 0 || run_claim(ssz, FIRST_EPOCH, nodes - 1, NULL) != (int)nodes - 1) {
		fprintf(stderr, "FAIL %s: cannot prepare the area\n", what);
		failures++;
		return;
	}
	for (unsigned i = 0; i < nsteps; i++) {
		w = run_claim(ssz, EPOCH, steps[i].node, &steps[i].plan);
		if (w == -1) {
			crashes++;
			continue;
		}
		if (w < 0 || (winner >= 0 && w != winner)) {
			fprintf(stderr, "FAIL %s: step %u returned %d, earlier winner %d\n", what, i, w, winner);
			failures++;
			return;
		}
		winner = w;
	}
	/* every node completes the epoch afterwards, in both orders of arrival */
	for (unsigned k = 0; k < 2 * nodes; k++) {
		unsigned node = k < nodes ? k : 2 * nodes - 1 - k;

		w = run_claim(ssz, EPOCH, node, NULL);
		if (w < 0 || (winner >= 0 && w != winner)) {
			fprintf(stderr, "FAIL %s: final claim by node %u returned %d, winner %d\n", what, node, w,
				winner);
			failures++;
			return;
		}
		winner = w;
	}
	/* the records agree */
	{
		char err[ARBITER_ERR_MAX];
		struct arbiter_decision d[8];
		struct arbiter *a;
		size_t count = 0;

		if (arbiter_open_io(crashio_open(area, ssz, 0, NULL), VM, &a, err) < 0) {
			fprintf(stderr, "FAIL %s: reopen: %s\n", what, err);
			failures++;
			return;
		}
		if (arbiter_decided(a, d, 8, &count) < 0 || count < 2 || d[0].epoch != EPOCH ||
		    (int)d[0].winner != winner || d[1].epoch != FIRST_EPOCH) {
			fprintf(stderr, "FAIL %s: records disagree (%zu entries, newest %llu -> %u; winner %d)\n",
				what, count, count ? (unsigned long long)d[0].epoch : 0ull, count ? d[0].winner : 0,
				winner);
			failures++;
		}
		arbiter_close(a);
	}
}

/* Writes one uncontended claim makes: the range of N worth crashing at. */
static unsigned writes_per_claim(unsigned nodes, unsigned ssz)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter_io *io;
	struct arbiter *a;
	unsigned winner, writes = 0;

	if (format_area(nodes, ssz) < 0)
		return 0;
	io = crashio_open(area, ssz, 0, NULL);
	if (arbiter_open_io(io, VM, &a, err) < 0)
		return 0;
	if (arbiter_claim(a, EPOCH, 0, CLAIM_TIMEOUT_MS, &winner) == ARBITER_WON)
		writes = crashio_writes(io);
	arbiter_close(a);
	return writes;
}

/* All sequences of `depth` steps, each a node dying at write 1..max_write in some mode. */
static void enumerate(unsigned nodes, unsigned ssz, unsigned max_write, struct step *steps, unsigned depth,
		      unsigned at)
{
	if (at == depth || at >= MAX_STEPS) {
		run_scenario(nodes, ssz, steps, at);
		return;
	}
	for (unsigned node = 0; node < nodes; node++)
		for (unsigned n = 1; n <= max_write; n++)
			for (unsigned m = CRASH_AFTER_WRITE; m < CRASH_MODES; m++) {
				steps[at].node = node;
				steps[at].plan = (struct crash_plan){ .mode = m, .at_write = n, .seed = scenarios };
				enumerate(nodes, ssz, max_write, steps, depth, at + 1);
			}
}

/* Which fights to enumerate: every sequence of `depth` crashing claimants. */
static const struct {
	unsigned sector_size;
	unsigned nodes;
	unsigned depth;
} plans[] = {
	{ 512, 2, 2 },  { 512, 3, 2 },
	{ 4096, 2, 2 }, { 4096, 3, 2 },
};

int main(int argc, char **argv)
{
	struct step steps[MAX_STEPS];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	snprintf(area, sizeof(area), "%s/crash-area.img", argv[1]);
	for (unsigned p = 0; p < sizeof(plans) / sizeof(plans[0]); p++) {
		unsigned w = writes_per_claim(plans[p].nodes, plans[p].sector_size);

		if (w < 3) {
			fprintf(stderr, "FAIL: an uncontended claim made %u writes\n", w);
			return 1;
		}
		for (unsigned depth = 1; depth <= plans[p].depth; depth++)
			enumerate(plans[p].nodes, plans[p].sector_size, w, steps, depth, 0);
	}
	unlink(area);
	printf("%u scenarios, %u planned crashes, %u failures\n", scenarios, crashes, failures);
	if (crashes == 0)
		failures++;
	return failures ? 1 : 0;
}
