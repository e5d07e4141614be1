/*
 * cmd_ft.c — `ftvm ft enable --vm NAME --peer HOST:PORT` and `ftvm ft disable --vm NAME`: fault
 * tolerance on and off for a running VM, through its control socket (the "ft" command,
 * cmd/vm_ft.h; docs/ft-clone.md). Enable starts an FT clone to the `ftvm spare` at HOST:PORT and
 * returns; `ftvm status` shows the clone's progress and, once done, the state `protected`.
 * Disable drops the backup: it exits without going live, and the VM runs on alone.
 * With --host B:PORT the local host daemon does it (its `ft` verb, docs/daemon.md "FT pairing"):
 * it has the daemon at B define the VM's backup half and start its spare, then enables FT to it;
 * disable through the daemon (--daemon, or a VM the daemon paired) also removes that half.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/control_options.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/control.h"

#define FT_DEFAULT_SPARE_PORT 7700u   /* where the other host's spare listens (--host) */

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm ft enable --peer HOST:PORT [--vm NAME] [--role ROLE] [--control PATH]\n"
		     "       ftvm ft enable --vm NAME --host HOST:PORT [--spare-port N] [--daemon-socket PATH]\n"
		     "       ftvm ft disable [--vm NAME] [--role ROLE] [--control PATH] [--daemon] [--daemon-socket PATH]\n\n"
		     "Turns fault tolerance on for a running VM (an FT clone to the `ftvm spare` at HOST:PORT,\n"
		     "which becomes its backup; redundancy is restored to it again after every loss) or off (the\n"
		     "backup exits without going live, the VM runs on alone). The VM must run on a node started\n"
		     "with --arbiter and --channel-key (`ftvm run`, `primary`, `backup`). Without --control it asks\n"
		     CONTROL_DEFAULT_DIR "/NAME-ROLE.sock (role: run, then primary, then backup).\n\n"
		     "With --host the host daemon (default socket " CONTROL_DAEMON_SOCKET ") pairs the VM with the daemon\n"
		     "at HOST:PORT (ftvmd --pair-listen): that daemon defines the VM's backup half and starts its spare\n"
		     "on HOST:N (--spare-port, default %u), then the VM is cloned to it. Disable goes through the daemon\n"
		     "with --daemon or --daemon-socket, or when the daemon knows the VM as paired: it also removes the\n"
		     "half on the other host. See docs/daemon.md.\n", FT_DEFAULT_SPARE_PORT);
}

/* The answer line (freed here) printed as the outcome: FTVM_EXIT_OK or FTVM_EXIT_FAILURE. */
static int outcome(const char *action, char *line, const char *err, const char *done, const char *hint)
{
	json_t *ans = line ? json_loads(line, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(ans, "error"));
	int rc = FTVM_EXIT_OK;
	if (!line || !json_is_true(json_object_get(ans, "ok"))) {
		fprintf(stderr, "ftvm ft %s: %s\n", action, !line ? err : e ? e : line);
		rc = FTVM_EXIT_FAILURE;
	} else {
		fprintf(stderr, "ftvm ft %s: done (%s)%s\n", action, done, hint);
	}
	json_decref(ans);
	free(line);
	return rc;
}

/* The daemon's `ft` verb: FTVM_EXIT_OK, FTVM_EXIT_FAILURE (refused: message printed), or -1 with
 * quiet set when the daemon does not know the VM as paired (the caller then asks the VM itself). */
static int through_daemon(const char *sock, const char *action, const char *vm, const char *host, unsigned port,
			  bool quiet)
{
	char err[512];
	json_t *req = json_pack("{s:s, s:s, s:s}", "cmd", "ft", "action", action, "name", vm);
	if (req && host) {
		json_object_set_new(req, "host", json_string(host));
		json_object_set_new(req, "spare_port", json_integer(port));
	}
	/* The daemon answers once the other host's daemon has (a slow command of its socket). */
	char *line = req ? control_request_json_wait(sock, req, CONTROL_MAX_REQUEST, CONTROL_SLOW_CLIENT_TIMEOUT_MS, err,
						     sizeof(err))
			 : NULL;
	json_decref(req);
	json_t *ans = line ? json_loads(line, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(ans, "error"));
	bool unknown = !line || (e && (strstr(e, "no VM named") || strstr(e, "was not paired") || strstr(e, "no pairing key")));
	json_decref(ans);
	if (quiet && unknown) {
		free(line);
		return -1;
	}
	return outcome(action, line, err, sock, host ? "; `ftvm vmstats` shows the clone and then ft_state 1 (protected)" : "");
}

int cmd_ft_main(int argc, char **argv)
{
	const char *vm = "ftvm", *role = NULL, *path = NULL, *peer = NULL, *action = argc > 1 ? argv[1] : NULL;
	const char *host = NULL, *daemon_sock = NULL;
	bool daemon = false;
	unsigned spare_port = FT_DEFAULT_SPARE_PORT;
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
		if (!strcmp(o, "--daemon")) {
			daemon = true;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ftvm ft: unknown option or missing value '%s'\n", o);
			return FTVM_EXIT_USAGE;
		}
		const char *v = argv[++i];
		if (control_options_take_target(o, v, &vm, &role, &path))
			continue;
		if (!strcmp(o, "--peer") && !strcmp(action, "enable"))
			peer = v;
		else if (!strcmp(o, "--host") && !strcmp(action, "enable"))
			host = v;
		else if (!strcmp(o, "--daemon-socket"))
			daemon_sock = v;
		else if (!strcmp(o, "--spare-port") && !strcmp(action, "enable")) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			if (*end || n < 1 || n > 65535) {
				fprintf(stderr, "ftvm ft enable: --spare-port %s: expected 1..65535\n", v);
				return FTVM_EXIT_USAGE;
			}
			spare_port = (unsigned)n;
		} else {
			fprintf(stderr, "ftvm ft %s: unknown option '%s'\n", action, o);
			return FTVM_EXIT_USAGE;
		}
	}
	if (!strcmp(action, "enable") && !peer == !host) {
		fprintf(stderr, "ftvm ft enable: --peer HOST:PORT (an `ftvm spare`) or --host HOST:PORT (its daemon) is required\n");
		return FTVM_EXIT_USAGE;
	}
	if ((host || daemon || daemon_sock) && (role || path || peer)) {
		fprintf(stderr, "ftvm ft %s: through the daemon the VM is named by --vm only\n", action);
		return FTVM_EXIT_USAGE;
	}
	if (daemon_sock)
		daemon = true;
	else
		daemon_sock = CONTROL_DAEMON_SOCKET;
	if (host || daemon)
		return through_daemon(daemon_sock, action, vm, host, spare_port, false);
	if (!strcmp(action, "disable") && !role && !path && access(daemon_sock, F_OK) == 0) {
		/* A VM the daemon paired: it drops the backup and removes the half on the other host. */
		int rc = through_daemon(daemon_sock, action, vm, NULL, 0, true);
		if (rc >= 0)
			return rc;
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
	return outcome(action, line, err, used, peer ? "; `ftvm status` shows the clone and then the state protected" : "");
}
