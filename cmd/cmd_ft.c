/*
 * cmd_ft.c — `ftvm ft enable --vm NAME --peer HOST:PORT` and `ftvm ft disable --vm NAME`: fault
 * tolerance on and off for a running VM, through its control socket (the "ft" command,
 * cmd/vm_ft.h; docs/ft-clone.md). Enable starts an FT clone to the `ftvm spare` at HOST:PORT and
 * returns; `ftvm status` shows the clone's progress and, once done, the state `protected`.
 * Disable drops the backup: it exits without going live, and the VM runs on alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/control_options.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/control.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm ft enable --peer HOST:PORT [--vm NAME] [--role ROLE] [--control PATH]\n"
		     "       ftvm ft disable [--vm NAME] [--role ROLE] [--control PATH]\n\n"
		     "Turns fault tolerance on for a running VM (an FT clone to the `ftvm spare` at HOST:PORT,\n"
		     "which becomes its backup; redundancy is restored to it again after every loss) or off (the\n"
		     "backup exits without going live, the VM runs on alone). The VM must run on a node started\n"
		     "with --arbiter and --channel-key (`ftvm run`, `primary`, `backup`). Without --control it asks\n"
		     CONTROL_DEFAULT_DIR "/NAME-ROLE.sock (role: run, then primary, then backup).\n");
}

int cmd_ft_main(int argc, char **argv)
{
	const char *vm = "ftvm", *role = NULL, *path = NULL, *peer = NULL, *action = argc > 1 ? argv[1] : NULL;
	char used[256], err[512];

	if (action && (!strcmp(action, "--help") || !strcmp(action, "-h"))) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	if (!action || (strcmp(action, "enable") != 0 && strcmp(action, "disable") != 0)) {
		fprintf(stderr, "ftvm ft: the first argument must be enable or disable\n");
		usage(stderr);
		return FTVM_EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc) {
			fprintf(stderr, "ftvm ft: unknown option or missing value '%s'\n", o);
			return FTVM_EXIT_USAGE;
		}
		const char *v = argv[++i];
		if (control_options_take_target(o, v, &vm, &role, &path))
			continue;
		if (!strcmp(o, "--peer") && !strcmp(action, "enable"))
			peer = v;
		else {
			fprintf(stderr, "ftvm ft %s: unknown option '%s'\n", action, o);
			return FTVM_EXIT_USAGE;
		}
	}
	if (!strcmp(action, "enable") && !peer) {
		fprintf(stderr, "ftvm ft enable: --peer HOST:PORT (an `ftvm spare`) is required\n");
		return FTVM_EXIT_USAGE;
	}
	json_t *req = json_pack("{s:s, s:s}", "cmd", "ft", "action", action);
	if (req && peer)
		json_object_set_new(req, "peer", json_string(peer));
	char *line = req ? control_options_ask(vm, role, path, req, used, sizeof(used), err, sizeof(err)) : NULL;
	json_decref(req);
	if (!line) {
		fprintf(stderr, "ftvm ft %s: %s\n", action, req ? err : "out of memory");
		return FTVM_EXIT_FAILURE;
	}
	json_t *ans = json_loads(line, 0, NULL);
	int rc = FTVM_EXIT_OK;
	if (!json_is_true(json_object_get(ans, "ok"))) {
		const char *e = json_string_value(json_object_get(ans, "error"));
		fprintf(stderr, "ftvm ft %s: %s\n", action, e ? e : line);
		rc = FTVM_EXIT_FAILURE;
	} else {
		fprintf(stderr, "ftvm ft %s: done (%s)%s\n", action, used,
			peer ? "; `ftvm status` shows the clone and then the state protected" : "");
	}
	json_decref(ans);
	free(line);
	return rc;
}
