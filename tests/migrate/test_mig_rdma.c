/*
 * test_mig_rdma.c — a live migration's stream over the RDMA transport (the logging channel's RDMA
 * link, logchannel/link_rdma.c), end to end through the real sender (mig_source.c) and receiver
 * (mig_dest.c), both in this process on the emulated verbs fabric (verbs_emul.c: this machine has
 * no RDMA device, and the emulated fabric does not cross processes).
 *
 * Cases:
 *   - a machine whose RAM holds a pattern (pages of random bytes, pages left zero) migrates over
 *     RDMA: the job and the receiver both succeed, the destination's RAM equals the source's byte
 *     for byte and its digest (state and memory) the source's;
 *   - one side on RDMA and the other on TCP: the migration fails on both sides with a message
 *     naming the transports, and the source's job reports it (so each side's choice reaches its
 *     channel);
 *   - RDMA asked for with the real verbs device where none exists (this machine): the receiver
 *     cannot listen and the sender cannot connect, each with the transport's own message ("no
 *     RDMA device found", or "built without libibverbs"). Skipped where a device exists.
 * The board is the decoders' fuzz board (tests/lib/fuzz_board.h): 16 MiB, no guest build needed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fuzz_board.h"
#include "logchannel/rdma.h"
#include "logchannel/verbs.h"
#include "migrate/mig_dest.h"
#include "migrate/mig_source.h"

#define PAGE 4096u
#define VM_ID "rdma-mig"
#define PORT_WAIT_MS 20000

static struct machine_config config;
static struct channel_key key;

/* ---- the destination, on a thread of its own ---- */

struct dest {
	struct machine *m;
	enum channel_transport transport;
	atomic_uint port; /* 0 until listening */
	pthread_t thread;
	int rc;
	struct mig_dest_result res;
	char err[1024];
};

static void dest_listening(void *ctx, unsigned port)
{
	struct dest *d = ctx;
	atomic_store(&d->port, port);
}

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct mig_dest_config cfg = { .listen = "127.0.0.1:0", .transport = d->transport, .key = &key,
				       .vm_id = VM_ID, .storage = MIG_STORAGE_REFUSED,
				       .listening = dest_listening, .ctx = d };
	d->rc = mig_dest_receive(&cfg, d->m, &d->res, d->err, sizeof(d->err));
	return NULL;
}

static void dest_start(struct dest *d, enum channel_transport transport)
{
	memset(d, 0, sizeof(*d));
	d->transport = transport;
	d->m = fuzz_board_create("test_mig_rdma", &config);
	assert_int_equal(pthread_create(&d->thread, NULL, dest_main, d), 0);
}

/* The port the destination listens on; 0 if it ended (failed) without listening. */
static unsigned dest_port(struct dest *d)
{
	for (int waited = 0; waited < PORT_WAIT_MS; waited++) {
		unsigned port = atomic_load(&d->port);
		if (port)
			return port;
		if (pthread_tryjoin_np(d->thread, NULL) == 0) {
			d->thread = 0;
			return 0;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	fail_msg("the destination neither listened nor ended within %d ms", PORT_WAIT_MS);
	return 0;
}

/* Joins the destination (its machine is the caller's to destroy). */
static void dest_join(struct dest *d)
{
	if (d->thread)
		assert_int_equal(pthread_join(d->thread, NULL), 0);
	d->thread = 0;
}

/* ---- the source ---- */

/* Fills @pages pages spread over RAM with random bytes (every third page stays zero). */
static void fill_ram(struct machine *m, unsigned pages)
{
	size_t size;
	uint8_t *ram = machine_ram(m, &size);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (unsigned p = 0; p < pages; p++) {
		size_t page = (size_t)p * 7 % (size / PAGE);
		if (p % 3 == 2)
			continue;
		for (unsigned i = 0; i < PAGE; i += 8) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			memcpy(ram + page * PAGE + i, &x, 8);
		}
	}
}

/* Migrates @src to 127.0.0.1:@port over @transport; the job's result, its stats in *st. */
static int migrate_to(struct machine *src, unsigned port, enum channel_transport transport, struct mig_stats *st)
{
	char to[32];
	snprintf(to, sizeof(to), "127.0.0.1:%u", port);
	struct mig_source_config cfg = { .m = src, .to = to, .transport = transport, .key = &key, .vm_id = VM_ID,
					 .epoch = 1, .downtime_ms = MIG_DEFAULT_DOWNTIME_MS,
					 .max_rounds = MIG_DEFAULT_MAX_ROUNDS };
	struct mig_job *job = calloc(1, sizeof(*job));
	assert_non_null(job);
	assert_int_equal(mig_job_start(job, &cfg), 0);
	int rc = mig_job_join(job);
	mig_job_get_stats(job, st);
	free(job);
	return rc;
}

static void assert_contains(const char *text, const char *part)
{
	if (!strstr(text, part))
		fail_msg("expected \"%s\" in: %s", part, text);
}

/*
 * A destination listening on @dest_transport first refuses a source on the other transport (the
 * source's job fails, naming both), then takes a migration on its own transport whole: RAM and
 * digests equal the source's.
 */
static void migrate_after_mismatch(enum channel_transport dest_transport)
{
	enum channel_transport other = dest_transport == CHANNEL_RDMA ? CHANNEL_TCP : CHANNEL_RDMA;
	struct machine *src = fuzz_board_create("test_mig_rdma", &config);
	fill_ram(src, 900);
	struct dest d;
	dest_start(&d, dest_transport);
	unsigned port = dest_port(&d);
	if (!port)
		fail_msg("the destination could not listen: %s", d.err);

	struct mig_stats st;
	assert_int_not_equal(migrate_to(src, port, other, &st), 0);
	assert_contains(st.error, "wrong transport");
	assert_contains(st.error, dest_transport == CHANNEL_RDMA ? "expects RDMA" : "expects TCP");

	if (migrate_to(src, port, dest_transport, &st))
		fail_msg("the migration failed: %s", st.error);
	dest_join(&d);
	if (d.rc)
		fail_msg("the destination failed: %s", d.err);
	assert_int_equal(d.res.phase, MIG_PHASE_RUN);
	assert_true(d.res.pages >= 600); /* the 600 pages that are not zero came in round 0 */

	size_t sa, sb;
	const uint8_t *ra = machine_ram_const(src, &sa), *rb = machine_ram_const(d.m, &sb);
	assert_int_equal(sa, sb);
	assert_memory_equal(ra, rb, sa);
	assert_true(machine_digest(src, true) == machine_digest(d.m, true));
	assert_true(st.data_transferred >= 600ull * PAGE);
	machine_destroy(d.m);
	machine_destroy(src);
}

static void test_rdma_migration(void **unused)
{
	(void)unused;
	chrdma_select_device(chrdma_emul_ops());
	migrate_after_mismatch(CHANNEL_RDMA);
}

static void test_tcp_destination_refuses_rdma(void **unused)
{
	(void)unused;
	chrdma_select_device(chrdma_emul_ops());
	migrate_after_mismatch(CHANNEL_TCP);
}

/* RDMA on the real verbs device where there is none: both sides fail at once, saying why. */
static void test_no_device(void **unused)
{
	(void)unused;
	chrdma_select_device(NULL);
	struct channel_err probe = { 0 };
	if (chrdma_probe(&probe) == 0)
		skip(); /* this machine has a device: nothing to refuse */

	struct dest d;
	dest_start(&d, CHANNEL_RDMA);
	assert_int_equal(dest_port(&d), 0);
	dest_join(&d);
	assert_int_not_equal(d.rc, 0);
	assert_contains(d.err, probe.msg);
	machine_destroy(d.m);

	struct machine *src = fuzz_board_create("test_mig_rdma", &config);
	struct mig_stats st;
	assert_int_not_equal(migrate_to(src, 9, CHANNEL_RDMA, &st), 0);
	assert_contains(st.error, probe.msg);
	assert_string_equal(st.phase, "failed");
	machine_destroy(src);
	chrdma_select_device(chrdma_emul_ops());
}

int main(void)
{
	fuzz_board_init("test_mig_rdma", &config);
	for (unsigned i = 0; i < sizeof(key.bytes); i++)
		key.bytes[i] = (uint8_t)(i * 37 + 11);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rdma_migration),
		cmocka_unit_test(test_tcp_destination_refuses_rdma),
		cmocka_unit_test(test_no_device),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	fuzz_board_cleanup();
	return rc;
}
