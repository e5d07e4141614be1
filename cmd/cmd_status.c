/*
 * cmd_status.c — `ftvm status [--json] [--vm NAME] [--role run|primary|backup] [--control PATH]`:
 * ask a running node for its status over its control socket.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/control_options.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/control.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm status [--json] [--vm NAME] [--role run|primary|backup] [--control PATH]\n\n"
		     "Prints a running node's status: role, state, icount and, for an FT node, epoch, backup lag,\n"
		     "log bandwidth, outputs held, peer state, failovers; and its job (a snapshot), if any.\n"
		     "Without --control it asks " CONTROL_DEFAULT_DIR "/NAME-ROLE.sock (default NAME ftvm,\n"
		     "role: run, then primary, then backup). --json prints the answer as received.\n"
		     "Exit status 1 when the node cannot be reached or answers an error. Protocol: docs/control.md.\n");
}

static void print_human(json_t *o)
{
	static const char *const fields[] = { "role", "state", "state_ms", "epoch", "icount", "peer_icount", "backup_lag_insns", "backup_lag_ms",
					       "log_mbit_s", "log_bytes", "log_records", "last_lsn", "acked_lsn",
					       "outputs_held", "outputs_released", "peer_state", "failovers",
					       "throttled_ms", "unprotected_ms", "clones", "clone_phase", "clone_bytes",
					       "clone_remaining", "clone_error", "reason" };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		json_t *v = json_object_get(o, fields[i]);
		if (!v)
			continue;
		if (json_is_string(v))
			printf("%-18s %s\n", fields[i], json_string_value(v));
		else if (json_is_integer(v))
			printf("%-18s %lld\n", fields[i], (long long)json_integer_value(v));
		else if (json_is_real(v))
			printf("%-18s %.4f\n", fields[i], json_real_value(v));
	}
	json_t *job = json_object_get(o, "job");
	if (json_is_object(job))
		printf("%-18s %s %s (%s, %lld/%lld bytes, %lld ms)%s%s\n", "job",
		       json_string_value(json_object_get(job, "kind")), json_string_value(json_object_get(job, "state")),
		       json_string_value(json_object_get(job, "phase")),
		       (long long)json_integer_value(json_object_get(job, "bytes_done")),
		       (long long)json_integer_value(json_object_get(job, "bytes_total")),
		       (long long)json_integer_value(json_object_get(job, "elapsed_ms")),
		       json_string_length(json_object_get(job, "error")) ? ": " : "",
		       json_string_length(json_object_get(job, "error")) ? json_string_value(json_object_get(job, "error")) : "");
}

int cmd_status_main(int argc, char **argv)
{
	const char *vm = "ftvm", *role = NULL, *path = NULL;
	int as_json = 0;
	char buf[256], err[512];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			as_json = 1;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return FTVM_EXIT_OK;
		} else if (i + 1 < argc && !strcmp(argv[i], "--vm")) {
			vm = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--role")) {
			role = argv[++i];
		} else if (i + 1 < argc && !strcmp(argv[i], "--control")) {
			path = argv[++i];
		} else {
			fprintf(stderr, "ftvm status: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return FTVM_EXIT_USAGE;
		}
	}
	json_t *req = json_pack("{s:s}", "cmd", "status");
	char *answer = req ? control_options_ask(vm, role, path, req, buf, sizeof(buf), err, sizeof(err)) : NULL;
	json_decref(req);
	if (!answer) {
		fprintf(stderr, "ftvm status: %s\n", err);
		return FTVM_EXIT_FAILURE;
	}
	json_error_t jerr;
	json_t *o = json_loads(answer, 0, &jerr);
	if (as_json) {
		/* The answer as it came; an error answer ({"ok":false,...}) is still a failure. */
		printf("%s\n", answer);
		free(answer);
		int ok = json_is_true(json_object_get(o, "ok"));
		json_decref(o);
		return ok ? FTVM_EXIT_OK : FTVM_EXIT_FAILURE;
	}
	free(answer);
	if (!o || !json_is_true(json_object_get(o, "ok"))) {
		fprintf(stderr, "ftvm status: bad answer: %s\n", o ? json_string_value(json_object_get(o, "error")) : jerr.text);
		json_decref(o);
		return FTVM_EXIT_FAILURE;
	}
	print_human(o);
	json_decref(o);
	return FTVM_EXIT_OK;
}
