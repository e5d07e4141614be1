/*
 * cmd_daemon.c — the host daemon's verbs from the command line: `ftvm define FILE`, `ftvm list`,
 * `ftvm start NAME`, ... Each sends one request to ftvmd's JSON socket (--daemon-socket PATH,
 * default CONTROL_DAEMON_SOCKET) and prints the answer for a person, or as received with --json;
 * `ftvm events --follow` goes on asking for the events after the last one it printed.
 * The verbs and their answers: docs/daemon.md.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "common/control.h"

#define EVENTS_POLL_MS 200   /* ftvm events --follow */

enum arg { ARG_NONE, ARG_NAME, ARG_FILE, ARG_SINCE };

struct verb {
	const char *name;
	enum arg arg;
	const char *done;   /* printed after success, e.g. "started"; NULL: the verb prints its answer */
};

static const struct verb verbs[] = {
	{ "define", ARG_FILE, "defined" },     { "undefine", ARG_NAME, "undefined" },
	{ "start", ARG_NAME, "started" },      { "shutdown", ARG_NAME, "is being shut down" },
	{ "destroy", ARG_NAME, "destroyed" },  { "suspend", ARG_NAME, "suspended" },
	{ "resume", ARG_NAME, "resumed" },     { "dumpxml", ARG_NAME, NULL },
	{ "dominfo", ARG_NAME, NULL },         { "list", ARG_NONE, NULL },
	{ "vmstats", ARG_NAME, NULL },         { "nodeinfo", ARG_NONE, NULL },
	{ "events", ARG_SINCE, NULL },         { "autostart", ARG_NAME, NULL },
	{ "create", ARG_FILE, "created and started (transient)" },
};

static void usage(FILE *out, const struct verb *v)
{
	static const char *const what[] = { [ARG_NONE] = "", [ARG_NAME] = " NAME", [ARG_FILE] = " FILE",
					    [ARG_SINCE] = " [--since N] [--follow]" };
	const char *extra = !strcmp(v->name, "define") ? " [--autostart]" : !strcmp(v->name, "autostart") ? " [--disable]" : "";
	fprintf(out, "usage: ftvm %s [--daemon-socket PATH] [--json]%s%s\n\n"
		     "Asks the host daemon ftvmd (default socket " CONTROL_DAEMON_SOCKET "); --json prints its answer\n"
		     "as received. Exit status 1 when the daemon cannot be reached or refuses. See docs/daemon.md.\n",
		v->name, what[v->arg], extra);
}

static char *read_definition(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CONTROL_DEFINE_MAX + 1);
	size_t n = buf ? fread(buf, 1, CONTROL_DEFINE_MAX + 1, f) : 0;
	bool bad = ferror(f);
	fclose(f);
	if (!buf || bad || n == 0 || n > CONTROL_DEFINE_MAX) {
		snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : bad ? "read error"
					       : n == 0 ? "empty" : "larger than 256 KiB");
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void print_info(const json_t *vm)
{
	printf("%-16s %lld\n%-16s %s\n%-16s %s\n%-16s %s (%s)\n%-16s %s\n%-16s %lld KiB\n%-16s %lld\n"
	       "%-16s %.3f s\n%-16s %lld\n%-16s %s\n",
	       "Id:", num(vm, "id"), "Name:", str(vm, "name"), "UUID:", str(vm, "uuid"), "State:", str(vm, "state"),
	       str(vm, "reason"), "FT role:", str(vm, "ft_role")[0] ? str(vm, "ft_role") : "-", "Max memory:",
	       num(vm, "max_mem_kib"), "CPU(s):", num(vm, "vcpus"), "CPU time:", (double)num(vm, "cpu_time_ns") / 1e9,
	       "Instructions:", num(vm, "instructions"), "Persistent:",
	       json_is_true(json_object_get(vm, "persistent")) ? "yes" : "no");
}

static void print_answer(const struct verb *v, const char *arg, const json_t *o)
{
	const json_t *vm = json_object_get(o, "vm");
	if (v->done) {
		printf("VM %s %s\n", vm ? str(vm, "name") : arg, v->done);
	} else if (!strcmp(v->name, "autostart")) {
		printf("VM %s %s\n", vm ? str(vm, "name") : arg,
		       json_is_true(json_object_get(vm, "autostart")) ? "starts with the daemon" : "no longer starts with the daemon");
	} else if (!strcmp(v->name, "dumpxml")) {
		fputs(str(o, "xml"), stdout);
	} else if (!strcmp(v->name, "dominfo")) {
		print_info(vm);
	} else if (!strcmp(v->name, "list")) {
		size_t i;
		json_t *e;
		printf(" %-4s %-24s %-10s %s\n", "Id", "Name", "State", "FT role");
		json_array_foreach(json_object_get(o, "vms"), i, e) {
			char id[16] = "-";
			if (num(e, "id") > 0)
				snprintf(id, sizeof(id), "%lld", num(e, "id"));
			printf(" %-4s %-24s %-10s %s\n", id, str(e, "name"), str(e, "state"),
			       str(e, "ft_role")[0] ? str(e, "ft_role") : "-");
		}
	} else if (!strcmp(v->name, "events")) {
		size_t i;
		json_t *e;
		if (num(o, "lost") > 0)
			printf("(%lld events no longer kept)\n", num(o, "lost"));
		json_array_foreach(json_object_get(o, "events"), i, e)
			printf("%lld %s %s (%s)\n", num(e, "seq"), str(e, "name"), str(e, "event"), str(e, "detail"));
	} else {
		const char *key;
		json_t *val;
		json_object_foreach(json_object_get(o, !strcmp(v->name, "nodeinfo") ? "node" : "stats"), key, val) {
			if (json_is_integer(val))
				printf("%-22s %lld\n", key, (long long)json_integer_value(val));
			else if (json_is_real(val))
				printf("%-22s %.6g\n", key, json_real_value(val));
			else if (json_is_string(val))
				printf("%-22s %s\n", key, json_string_value(val));
		}
	}
}

/* One request and its answer printed; *last: the answer's "last" (events), else unchanged. */
static int exchange(const struct verb *v, const char *sock, const char *arg, const json_t *req, bool as_json,
		    long long *last)
{
	char err[512];
	char *line = control_request_json_max(sock, req, CONTROL_DAEMON_MAX_REQUEST, err, sizeof(err));
	if (!line) {
		fprintf(stderr, "ftvm %s: %s\n", v->name, err);
		return FTVM_EXIT_FAILURE;
	}
	json_t *o = json_loads(line, 0, NULL);
	bool ok = json_is_true(json_object_get(o, "ok"));
	if (as_json)
		printf("%s\n", line);
	else if (ok)
		print_answer(v, arg, o);
	else
		fprintf(stderr, "ftvm %s: %s\n", v->name, o ? str(o, "error") : "bad answer from the daemon");
	if (ok && json_is_integer(json_object_get(o, "last")))
		*last = (long long)json_integer_value(json_object_get(o, "last"));
	free(line);
	json_decref(o);
	return ok ? FTVM_EXIT_OK : FTVM_EXIT_FAILURE;
}

int cmd_daemon_main(int argc, char **argv)
{
	const struct verb *v = NULL;
	const char *sock = CONTROL_DAEMON_SOCKET, *arg = NULL, *since = NULL;
	bool as_json = false, follow = false, autostart = false, disable = false;
	char err[512];

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[0], verbs[i].name))
			v = &verbs[i];
	if (!v)
		return FTVM_EXIT_USAGE;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout, v);
			return FTVM_EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			as_json = true;
		} else if (i + 1 < argc && !strcmp(argv[i], "--daemon-socket")) {
			sock = argv[++i];
		} else if (!strcmp(v->name, "define") && !strcmp(argv[i], "--autostart")) {
			autostart = true;
		} else if (!strcmp(v->name, "autostart") && !strcmp(argv[i], "--disable")) {
			disable = true;
		} else if (v->arg == ARG_SINCE && !strcmp(argv[i], "--follow")) {
			follow = true;
		} else if (i + 1 < argc && v->arg == ARG_SINCE && !strcmp(argv[i], "--since")) {
			since = argv[++i];
		} else if (argv[i][0] != '-' && !arg && (v->arg == ARG_NAME || v->arg == ARG_FILE)) {
			arg = argv[i];
		} else {
			fprintf(stderr, "ftvm %s: unexpected argument '%s'\n", v->name, argv[i]);
			usage(stderr, v);
			return FTVM_EXIT_USAGE;
		}
	}
	if (!arg && (v->arg == ARG_NAME || v->arg == ARG_FILE)) {
		usage(stderr, v);
		return FTVM_EXIT_USAGE;
	}
	json_t *req = json_pack("{s:s}", "cmd", !strcmp(v->name, "vmstats") ? "stats" : v->name);
	if (!req) {
		fprintf(stderr, "ftvm %s: out of memory\n", v->name);
		return FTVM_EXIT_FAILURE;
	}
	if (v->arg == ARG_NAME)
		json_object_set_new(req, "name", json_string(arg));
	if (autostart)
		json_object_set_new(req, "autostart", json_true());
	if (!strcmp(v->name, "autostart"))
		json_object_set_new(req, "enable", json_boolean(!disable));
	if (since) {
		char *end;
		long long n = strtoll(since, &end, 10);
		if (*end || n < 0) {
			fprintf(stderr, "ftvm events: --since %s: expected an event number\n", since);
			json_decref(req);
			return FTVM_EXIT_USAGE;
		}
		json_object_set_new(req, "since", json_integer(n));
	}
	if (v->arg == ARG_FILE) {
		char *xml = read_definition(arg, err, sizeof(err));
		if (!xml) {
			fprintf(stderr, "ftvm %s: %s\n", v->name, err);
			json_decref(req);
			return FTVM_EXIT_FAILURE;
		}
		json_object_set_new(req, "xml", json_string(xml));
		free(xml);
	}
	long long last = -1;
	int ret = exchange(v, sock, arg, req, as_json, &last);
	/* --follow: the events after the last one seen, every EVENTS_POLL_MS, until the daemon goes. */
	while (ret == FTVM_EXIT_OK && follow && last >= 0) {
		fflush(stdout);
		usleep(EVENTS_POLL_MS * 1000);
		json_object_set_new(req, "since", json_integer(last));
		ret = exchange(v, sock, arg, req, as_json, &last);
	}
	json_decref(req);
	return ret;
}
