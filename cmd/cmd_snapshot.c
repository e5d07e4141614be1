/*
 * cmd_snapshot.c — `ftvm snapshot [--vm NAME] [--role run|primary] [--control PATH] [--force]
 * [--stop] FILE`: save a running VM to FILE through its control socket while it keeps running.
 *
 * The node does the work (cmd/vm_control.c, host/snapshot_live.c) as a job; this client sends the
 * request with FILE made absolute (the node's working directory is not ours), then follows the
 * job in the node's status until it ends, and prints what the node reports: the file's size, how
 * long the vCPU was held, the total time. With --stop the VM is powered off for good once the file
 * is complete (cold migration: `ftvm run --restore FILE` elsewhere continues it). Exit status 0
 * when saved, 1 when the node cannot be reached or the snapshot failed (the VM runs on), 2 on bad
 * usage.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/control_options.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/control.h"

#define SNAPSHOT_POLL_US 20000          /* between two looks at the job */
#define SNAPSHOT_LOST_TRIES 10          /* status requests that may fail in a row */

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm snapshot [--vm NAME] [--role run|primary] [--control PATH] [--force] [--stop] FILE\n\n"
		     "Saves the running VM to FILE (docs/state-format.md) while it keeps running: the node copies\n"
		     "its RAM beside the running vCPU and holds the vCPU only for the last dirty pages and the\n"
		     "devices. FILE is created mode 0600 by the node, never through a symbolic link, and appears\n"
		     "only once complete; `ftvm run --restore FILE` continues the VM there.\n\n"
		     "  --vm NAME        the VM's name (default " CONTROL_DEFAULT_VM ")\n"
		     "  --role R         the node's role: run or primary (default: run, then primary); a backup\n"
		     "                   refuses (snapshot its primary)\n"
		     "  --control PATH   the node's control socket instead of " CONTROL_DEFAULT_DIR "/NAME-ROLE.sock\n"
		     "  --force          replace an existing FILE (a regular file)\n"
		     "  --stop           power the VM off for good once FILE is complete, without running\n"
		     "                   another instruction (cold migration; not for an FT primary)\n\n"
		     "exit status: 0 saved; 1 the node is unreachable or the snapshot failed (the VM runs on);\n"
		     "2 bad usage\n");
}

static double mib(json_int_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

/* Follows job `id` in the node's status until it ends: 0 done, 1 failed or lost. */
static int follow(const char *path, json_int_t id, const char *file)
{
	char err[512];
	int lost = 0;
	json_t *req = json_pack("{s:s}", "cmd", "status");
	for (;;) {
		char *line = control_request_json(path, req, err, sizeof(err));
		bool answered = line != NULL;
		json_t *o = line ? json_loads(line, 0, NULL) : NULL;
		free(line);
		json_t *job = json_object_get(o, "job");
		if (!json_is_object(job) || json_integer_value(json_object_get(job, "id")) != id) {
			json_decref(o);
			if (++lost > SNAPSHOT_LOST_TRIES) {
				fprintf(stderr, "ftvm snapshot: lost the node during the snapshot: %s\n",
					answered ? "its status no longer shows the job" : err);
				json_decref(req);
				return FTVM_EXIT_FAILURE;
			}
			usleep(SNAPSHOT_POLL_US * 5);
			continue;
		}
		lost = 0;
		const char *state = json_string_value(json_object_get(job, "state"));
		if (state && strcmp(state, "running") == 0) {
			json_decref(o);
			usleep(SNAPSHOT_POLL_US);
			continue;
		}
		int code = FTVM_EXIT_FAILURE;
		json_t *r = json_object_get(job, "result");
		if (state && strcmp(state, "done") == 0) {
			fprintf(stderr, "ftvm snapshot: saved %s at icount %lld: %.1f MiB (%.1f MiB of RAM touched), "
					"vCPU held %.2f ms, total %.0f ms, %lld rounds (%lld pages copied live, %lld held)%s\n",
				file, (long long)json_integer_value(json_object_get(r, "icount")),
				mib(json_integer_value(json_object_get(r, "bytes"))),
				mib(json_integer_value(json_object_get(r, "ram_touched"))),
				json_real_value(json_object_get(r, "pause_ms")), json_real_value(json_object_get(r, "total_ms")),
				(long long)json_integer_value(json_object_get(r, "rounds")),
				(long long)json_integer_value(json_object_get(r, "pages_copied")),
				(long long)json_integer_value(json_object_get(r, "pages_final")),
				json_is_true(json_object_get(r, "stopped")) ? "; the VM stopped for good" : "");
			code = FTVM_EXIT_OK;
		} else {
			fprintf(stderr, "ftvm snapshot: %s (the VM runs on)\n", json_string_value(json_object_get(job, "error")));
		}
		json_decref(o);
		json_decref(req);
		return code;
	}
}

int cmd_snapshot_main(int argc, char **argv)
{
	const char *vm = CONTROL_DEFAULT_VM, *role = NULL, *path = NULL, *file = NULL;
	bool force = false, stop = false;
	char abs[PATH_MAX], used[256], err[512];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return FTVM_EXIT_OK;
		} else if (!strcmp(a, "--force")) {
			force = true;
		} else if (!strcmp(a, "--stop")) {
			stop = true;
		} else if (!strcmp(a, "--vm") || !strcmp(a, "--role") || !strcmp(a, "--control")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "ftvm snapshot: %s needs a value\n", a);
				return FTVM_EXIT_USAGE;
			}
			*(!strcmp(a, "--vm") ? &vm : !strcmp(a, "--role") ? &role : &path) = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "ftvm snapshot: unknown option '%s'\n", a);
			return FTVM_EXIT_USAGE;
		} else if (file) {
			fprintf(stderr, "ftvm snapshot: one FILE only ('%s' and '%s')\n", file, a);
			return FTVM_EXIT_USAGE;
		} else {
			file = a;
		}
	}
	if (!file || !file[0]) {
		fprintf(stderr, "ftvm snapshot: FILE is required\n");
		usage(stderr);
		return FTVM_EXIT_USAGE;
	}
	if (file[0] == '/') {
		snprintf(abs, sizeof(abs), "%s", file);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) || snprintf(abs, sizeof(abs), "%s/%s", cwd, file) >= (int)sizeof(abs)) {
			fprintf(stderr, "ftvm snapshot: cannot make %s an absolute name\n", file);
			return FTVM_EXIT_USAGE;
		}
	}
	json_t *req = json_pack("{s:s, s:s, s:b, s:b}", "cmd", "snapshot", "path", abs, "force", force, "stop", stop);
	char *line = req ? control_options_ask(vm, role, path, req, used, sizeof(used), err, sizeof(err)) : NULL;
	json_decref(req);
	if (!line) {
		fprintf(stderr, "ftvm snapshot: %s\n", req ? err : "out of memory");
		return role && strstr(err, "--role") ? FTVM_EXIT_USAGE : FTVM_EXIT_FAILURE;
	}
	json_t *o = json_loads(line, 0, NULL);
	free(line);
	if (!json_is_true(json_object_get(o, "ok"))) {
		fprintf(stderr, "ftvm snapshot: %s\n", o ? json_string_value(json_object_get(o, "error")) : "bad answer");
		json_decref(o);
		return FTVM_EXIT_FAILURE;
	}
	json_int_t id = json_integer_value(json_object_get(o, "job_id"));
	json_decref(o);
	return follow(used, id, abs);
}
