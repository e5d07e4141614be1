/*
 * cmd_migrate.c — `ftvm migrate --to HOST:PORT --channel-key FILE [--vm NAME] [--role R |
 * --control PATH] [--downtime-ms MS] [--bandwidth MBIT] [--max-rounds N] [--transport T]`: asks a running VM's
 * control socket to live-migrate it to an `ftvm incoming` (docs/migration.md), then follows the
 * job in the node's status, printing a progress line, and the outcome.
 *
 * The migration itself runs inside the source node (cmd/vm_migrate.c), so this command may be
 * interrupted without harm. Once the VM is handed over, the source exits and its socket goes
 * away; a status that cannot be read after the job reached its hand-over is therefore success.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/control_options.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/control.h"
#include "util/parse.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm migrate --to HOST:PORT --channel-key FILE [--vm NAME] [--role ROLE | --control PATH]\n"
		     "                    [--downtime-ms MS] [--bandwidth MBIT] [--max-rounds N] [--copy-storage]\n"
		     "                    [--transport tcp|rdma]\n\n"
		     "Live-migrates a running VM (ftvm run, or ftvm incoming after its own migration) to an\n"
		     "`ftvm incoming --listen HOST:PORT` on another host: pre-copy of its memory while it runs,\n"
		     "then a stop-and-copy within the downtime target; the VM stays here if anything fails first.\n\n"
		     "  --to HOST:PORT      the destination\n"
		     "  --channel-key FILE  the key the destination uses (the stream runs inside TLS)\n"
		     "  --vm NAME           the VM (default ftvm); its socket is " CONTROL_DEFAULT_DIR "/NAME-ROLE.sock\n"
		     "  --role ROLE         run (default) or incoming\n"
		     "  --control PATH      the node's control socket instead\n"
		     "  --downtime-ms MS    longest pause of the VM to aim for (default 30)\n"
		     "  --bandwidth MBIT    cap on the link's use, Mbit/s (default: none)\n"
		     "  --max-rounds N      give up after N rounds of dirty pages (default 30)\n"
		     "  --copy-storage      copy the disks too, into the destination's own --disk replicas\n"
		     "                      (default: both hosts see the same disk)\n"
		     "  --transport T       tcp (default) or rdma: the stream over RDMA verbs (an RC queue pair\n"
		     "                      after the TLS handshake); the destination must use the same\n");
}

/* The job object of the node's status, or NULL (socket gone: *gone). Caller frees the answer. */
static json_t *job_status(const char *path, json_t **answer, bool *gone)
{
	char err[512];
	char *line = control_request(path, "status", err, sizeof(err));
	*answer = NULL;
	*gone = !line;
	if (!line)
		return NULL;
	*answer = json_loads(line, 0, NULL);
	free(line);
	json_t *job = json_object_get(*answer, "job");
	return json_is_object(job) ? job : NULL;
}

static long long member(json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

static void print_summary(json_t *m)
{
	fprintf(stderr, "ftvm migrate: done: %lld round(s), %.1f MiB of RAM sent of %.1f MiB, %.1f MiB of disk of "
			"%.1f MiB, %.1f MiB on the wire, downtime %lld ms, total %lld ms; held %.2f ms until the "
			"destination confirmed, %.2f ms until the state was sent; %lld frame(s) forwarded; the "
			"estimate was %lld ms; the guest had touched %.1f MiB of RAM\n",
		member(m, "iteration") + 1, member(m, "memory_processed") / 1048576.0,
		member(m, "memory_total") / 1048576.0, member(m, "disk_processed") / 1048576.0,
		member(m, "disk_total") / 1048576.0, member(m, "data_transferred") / 1048576.0,
		member(m, "downtime_ms"), member(m, "time_elapsed_ms"), member(m, "downtime_us") / 1000.0,
		member(m, "downtime_sent_us") / 1000.0, member(m, "frames_forwarded"), member(m, "downtime_expected_ms"),
		member(m, "memory_touched") / 1048576.0);
}

int cmd_migrate_main(int argc, char **argv)
{
	const char *vm = "ftvm", *role = "run", *path = NULL, *to = NULL, *key = NULL, *transport = NULL;
	uint64_t downtime = 0, bandwidth = 0, rounds = 0;
	char buf[256], err[512];
	bool copy_storage = false;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			usage(stdout);
			return FTVM_EXIT_OK;
		}
		if (!strcmp(o, "--copy-storage")) {
			copy_storage = true;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ftvm migrate: unknown option or missing value '%s'\n", o);
			usage(stderr);
			return FTVM_EXIT_USAGE;
		}
		const char *v = argv[++i];
		int bad = 0;
		if (control_options_take_target(o, v, &vm, &role, &path))
			continue;
		if (!strcmp(o, "--to"))
			to = v;
		else if (!strcmp(o, "--channel-key"))
			key = v;
		else if (!strcmp(o, "--transport")) {
			transport = v;
			bad = strcmp(v, "tcp") && strcmp(v, "rdma");
		}
		else if (!strcmp(o, "--downtime-ms"))
			bad = parse_u64(v, 1, 60000, &downtime);
		else if (!strcmp(o, "--bandwidth"))
			bad = parse_u64(v, 1, 1000000, &bandwidth);
		else if (!strcmp(o, "--max-rounds"))
			bad = parse_u64(v, 2, 1000, &rounds);
		else
			bad = -1;
		if (bad) {
			fprintf(stderr, "ftvm migrate: bad option '%s %s'\n", o, v);
			return FTVM_EXIT_USAGE;
		}
	}
	if (!to || !key) {
		fprintf(stderr, "ftvm migrate: --to HOST:PORT and --channel-key FILE are required\n");
		return FTVM_EXIT_USAGE;
	}
	char keypath[4096];
	if (!realpath(key, keypath)) {
		fprintf(stderr, "ftvm migrate: --channel-key %s: %s\n", key, strerror(errno));
		return FTVM_EXIT_FAILURE;
	}
	if (!path) {
		snprintf(buf, sizeof(buf), "%s/%s-%s.sock", CONTROL_DEFAULT_DIR, vm, role);
		path = buf;
	}
	json_t *req = json_pack("{s:s, s:s, s:s}", "cmd", "migrate", "to", to, "channel_key", keypath);
	if (req && downtime)
		json_object_set_new(req, "downtime_ms", json_integer((json_int_t)downtime));
	if (req && bandwidth)
		json_object_set_new(req, "bandwidth_mbit", json_integer((json_int_t)bandwidth));
	if (req && rounds)
		json_object_set_new(req, "max_rounds", json_integer((json_int_t)rounds));
	if (req && copy_storage)
		json_object_set_new(req, "copy_storage", json_true());
	if (req && transport)
		json_object_set_new(req, "transport", json_string(transport));
	char *line = req ? control_request_json(path, req, err, sizeof(err)) : NULL;
	json_decref(req);
	if (!line) {
		fprintf(stderr, "ftvm migrate: %s\n", req ? err : "out of memory");
		return FTVM_EXIT_FAILURE;
	}
	json_t *ans = json_loads(line, 0, NULL);
	free(line);
	if (!json_is_true(json_object_get(ans, "ok"))) {
		fprintf(stderr, "ftvm migrate: refused: %s\n", json_string_value(json_object_get(ans, "error")));
		json_decref(ans);
		return FTVM_EXIT_FAILURE;
	}
	json_decref(ans);

	bool tty = isatty(STDERR_FILENO), handed = false;
	char last_phase[32] = "";
	json_t *last = NULL;
	for (;;) {
		json_t *answer;
		bool gone;
		json_t *job = job_status(path, &answer, &gone);
		if (gone) {
			if (handed && last) {
				print_summary(last);
				json_decref(last);
				return FTVM_EXIT_OK;
			}
			fprintf(stderr, "ftvm migrate: the source's control socket went away during the migration; "
					"see the source and the destination\n");
			json_decref(last);
			return FTVM_EXIT_FAILURE;
		}
		const char *state = json_string_value(json_object_get(job, "state"));
		json_t *m = json_object_get(json_object_get(job, "result"), "migration");
		if (json_is_object(m)) {
			json_decref(last);
			last = json_deep_copy(m);
			const char *phase = json_string_value(json_object_get(m, "phase"));
			handed = handed || (phase && (!strcmp(phase, "completed") || !strcmp(phase, "stop-and-copy")));
			if (tty || (phase && strcmp(phase, last_phase)))
				fprintf(stderr, "%sftvm migrate: %s round %lld, %.1f/%.1f MiB sent, %.1f MiB dirty, %lld pages/s, "
						"%.1f MB/s, throttle %lld%%%s",
					tty ? "\r" : "", phase ? phase : "?", member(m, "iteration"),
					(member(m, "memory_processed") + member(m, "disk_processed")) / 1048576.0,
					(member(m, "memory_total") + member(m, "disk_total")) / 1048576.0,
					(member(m, "memory_remaining") + member(m, "disk_remaining")) / 1048576.0, member(m, "memory_dirty_rate"),
					member(m, "link_bps") / 1e6, member(m, "throttle_pct"), tty ? "   " : "\n");
			snprintf(last_phase, sizeof(last_phase), "%s", phase ? phase : "");
		}
		if (state && strcmp(state, "running")) {
			if (tty)
				fprintf(stderr, "\n");
			int code = FTVM_EXIT_OK;
			if (!strcmp(state, "done")) {
				print_summary(last);
			} else {
				fprintf(stderr, "ftvm migrate: %s: %s\n", state,
					json_string_value(json_object_get(job, "error")));
				code = FTVM_EXIT_FAILURE;
			}
			json_decref(answer);
			json_decref(last);
			return code;
		}
		json_decref(answer);
		nanosleep(&(struct timespec){ .tv_nsec = 200 * 1000 * 1000 }, NULL);
	}
}
