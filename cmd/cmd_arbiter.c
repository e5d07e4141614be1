/*
 * cmd_arbiter.c — `ftvm arbiter init|claim|show`: format a VM's arbiter area on a shared file or
 * block device, run the per-epoch test-and-set by hand, and list the decided epochs.
 *
 * Exit status of claim: 0 won, 1 lost; every command: 2 bad usage, 3 failed (one line on stderr).
 * Without --timeout, claim waits for an unreachable disk for ever, printing why it is waiting: a
 * node that cannot reach the disk must not guess.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/arbiter.h"
#include "util/parse.h"

#define SHOW_MAX 256u
#define OPEN_BACKOFF_FIRST_MS 10u
#define OPEN_BACKOFF_MAX_MS 1000u
#define MS_PER_S 1000u

static const char arbiter_usage[] =
	"usage: ftvm arbiter init PATH --vm NAME [--nodes N] [--force]\n"
	"       ftvm arbiter claim PATH --epoch E --node ID [--vm NAME] [--timeout SECONDS]\n"
	"       ftvm arbiter show PATH [--json]\n"
	"\n"
	"The shared-disk test-and-set that decides which node of a VM goes on after a failure\n"
	"(docs/arbiter.md). PATH is a regular file or block device every node can reach.\n"
	"\n"
	"  init    format PATH for VM NAME with N nodes (default 2, ids 0..N-1); refuses an existing\n"
	"          area unless --force (which erases its decisions)\n"
	"  claim   test-and-set for failover epoch E as node ID; exit 0 won, 1 lost (the winner is\n"
	"          printed); waits for an unreachable disk for ever unless --timeout is given\n"
	"  show    the area's parameters and decided epochs, newest first\n"
	"\n"
	"exit status: 0 success (claim: won), 1 claim lost, 2 bad usage, 3 failed\n";

static int usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "ftvm arbiter%s%s: %s (ftvm arbiter --help)\n", cmd ? " " : "", cmd ? cmd : "", msg);
	return FTVM_EXIT_USAGE;
}

static int arbiter_init_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[ARBITER_ERR_MAX];
	const char *vm = NULL;
	uint64_t nodes = ARBITER_DEFAULT_NODES;
	int force = 0, c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			vm = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, 1, ARBITER_MAX_NODES, &nodes) < 0)
				return usage_error("init", "--nodes takes a number from 1 to 16");
			break;
		case 'f':
			force = 1;
			break;
		case 'h':
			fputs(arbiter_usage, stdout);
			return 0;
		default:
			return usage_error("init", "bad option");
		}
	}
	if (optind != argc - 1)
		return usage_error("init", "exactly one PATH expected");
	if (!vm)
		return usage_error("init", "--vm NAME is required");
	ret = arbiter_init(argv[optind], vm, (unsigned)nodes, force, err);
	if (ret < 0) {
		fprintf(stderr, "ftvm arbiter init: %s: %s\n", argv[optind], err);
		return FTVM_EXIT_ARBITER_FAILED;
	}
	printf("%s: arbiter area for VM '%s' with %u nodes\n", argv[optind], vm, (unsigned)nodes);
	return 0;
}

/* Open errors worth waiting out: the disk or its path may come back. Format errors are final. */
static int open_retryable(int ret)
{
	switch (-ret) {
	case EIO: case ENXIO: case ENODEV: case ENOMEDIUM: case ETIMEDOUT: case EAGAIN: case EBUSY:
	case ENOENT: case ENOTCONN: case EHOSTDOWN: case ESHUTDOWN:
		return 1;
	default:
		return 0;
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / MS_PER_S, .tv_nsec = (long)(ms % MS_PER_S) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int arbiter_claim_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "epoch", required_argument, NULL, 'e' },
		{ "node", required_argument, NULL, 'n' },
		{ "vm", required_argument, NULL, 'v' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;
	const char *vm = NULL, *path;
	uint64_t epoch = 0, node = UINT64_MAX, timeout_s = 0;
	int64_t timeout_ms = ARBITER_FOREVER;
	unsigned winner = 0, backoff = OPEN_BACKOFF_FIRST_MS, waited = 0;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (parse_u64(optarg, 1, UINT64_MAX, &epoch) < 0)
				return usage_error("claim", "--epoch takes a number >= 1");
			break;
		case 'n':
			if (parse_u64(optarg, 0, ARBITER_MAX_NODES - 1, &node) < 0)
				return usage_error("claim", "--node takes a node id from 0 to 15");
			break;
		case 'v':
			vm = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 0, INT32_MAX, &timeout_s) < 0)
				return usage_error("claim", "--timeout takes a number of seconds");
			timeout_ms = (int64_t)timeout_s * MS_PER_S;
			break;
		case 'h':
			fputs(arbiter_usage, stdout);
			return 0;
		default:
			return usage_error("claim", "bad option");
		}
	}
	if (optind != argc - 1)
		return usage_error("claim", "exactly one PATH expected");
	if (epoch == 0 || node == UINT64_MAX)
		return usage_error("claim", "--epoch and --node are required");
	path = argv[optind];

	for (;;) {
		ret = arbiter_open(path, vm, &a, err);
		if (ret == 0)
			break;
		if (!open_retryable(ret) || (timeout_ms >= 0 && (int64_t)waited + backoff > timeout_ms)) {
			fprintf(stderr, "ftvm arbiter claim: %s\n", err);
			return FTVM_EXIT_ARBITER_FAILED;
		}
		fprintf(stderr, "ftvm arbiter claim: %s; retrying in %u ms\n", err, backoff);
		sleep_ms(backoff);
		waited += backoff;
		backoff = backoff * 2 > OPEN_BACKOFF_MAX_MS ? OPEN_BACKOFF_MAX_MS : backoff * 2;
	}
	if (timeout_ms >= 0)
		timeout_ms = timeout_ms > (int64_t)waited ? timeout_ms - waited : 0;
	ret = arbiter_claim(a, epoch, (unsigned)node, timeout_ms, &winner);
	if (ret < 0) {
		fprintf(stderr, "ftvm arbiter claim: %s: %s\n", path, arbiter_error(a));
		arbiter_close(a);
		return FTVM_EXIT_ARBITER_FAILED;
	}
	arbiter_close(a);
	if (ret == ARBITER_WON) {
		printf("epoch %llu: node %u won\n", (unsigned long long)epoch, winner);
		return FTVM_EXIT_OK;
	}
	printf("epoch %llu: node %u lost, node %u won\n", (unsigned long long)epoch, (unsigned)node, winner);
	return FTVM_EXIT_CLAIM_LOST;
}

static int show_json(const char *path, const struct arbiter_info *info, const struct arbiter_decision *d,
		     size_t count)
{
	json_t *root = json_object(), *list = json_array();
	int ret = FTVM_EXIT_ARBITER_FAILED;

	if (!root || !list)
		goto out;
	for (size_t i = 0; i < count; i++) {
		json_t *e = json_pack("{s:I, s:i}", "epoch", (json_int_t)d[i].epoch, "winner", (int)d[i].winner);

		if (!e || json_array_append_new(list, e) < 0)
			goto out;
	}
	if (json_object_set_new(root, "path", json_string(path)) < 0 ||
	    json_object_set_new(root, "vm", json_string(info->vm_name)) < 0 ||
	    json_object_set_new(root, "nodes", json_integer(info->nodes)) < 0 ||
	    json_object_set_new(root, "slots", json_integer(info->slots)) < 0 ||
	    json_object_set_new(root, "sector_size", json_integer(info->sector_size)) < 0 ||
	    json_object_set_new(root, "sectors", json_integer((json_int_t)info->sectors)) < 0 ||
	    json_object_set(root, "decided", list) < 0)
		goto out;
	if (json_dumpf(root, stdout, JSON_INDENT(2)) < 0)
		goto out;
	fputc('\n', stdout);
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "ftvm arbiter show: cannot build JSON\n");
	json_decref(list);
	json_decref(root);
	return ret;
}

static int arbiter_show_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct arbiter_decision decided[SHOW_MAX];
	char err[ARBITER_ERR_MAX];
	struct arbiter_info info;
	struct arbiter *a = NULL;
	size_t count = 0;
	int json = 0, c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(arbiter_usage, stdout);
			return 0;
		default:
			return usage_error("show", "bad option");
		}
	}
	if (optind != argc - 1)
		return usage_error("show", "exactly one PATH expected");
	ret = arbiter_open(argv[optind], NULL, &a, err);
	if (ret < 0) {
		fprintf(stderr, "ftvm arbiter show: %s\n", err);
		return FTVM_EXIT_ARBITER_FAILED;
	}
	arbiter_get_info(a, &info);
	ret = arbiter_decided(a, decided, SHOW_MAX, &count);
	if (ret < 0) {
		fprintf(stderr, "ftvm arbiter show: %s: %s\n", argv[optind], arbiter_error(a));
		arbiter_close(a);
		return FTVM_EXIT_ARBITER_FAILED;
	}
	arbiter_close(a);
	if (json)
		return show_json(argv[optind], &info, decided, count);
	printf("%s: arbiter area of VM '%s'\n", argv[optind], info.vm_name);
	printf("  nodes %u, epoch slots %u, %u-byte sectors, %llu sectors\n", info.nodes, info.slots,
	       info.sector_size, (unsigned long long)info.sectors);
	if (count == 0)
		printf("  no epoch decided yet\n");
	for (size_t i = 0; i < count; i++)
		printf("  epoch %llu: node %u won\n", (unsigned long long)decided[i].epoch, decided[i].winner);
	return 0;
}

int cmd_arbiter_main(int argc, char **argv)
{
	optind = 0; /* glibc: re-initialise; each subcommand parses its own argv */
	if (argc < 2)
		return usage_error(NULL, "a command is required: init, claim or show");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(arbiter_usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "init") == 0)
		return arbiter_init_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "claim") == 0)
		return arbiter_claim_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return arbiter_show_main(argc - 1, argv + 1);
	return usage_error(NULL, "unknown command (init, claim or show)");
}
