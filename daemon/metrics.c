/*
 * metrics.c — see metrics.h. One family at a time: its HELP and TYPE lines, then one sample per VM
 * (a family no VM has a value for is left out, as Prometheus expects of absent data). Label values
 * are escaped as the format requires (backslash, double quote, newline). libmicrohttpd runs the
 * HTTP side on its own thread; only GET and HEAD of /metrics are answered, anything else is 404 or
 * 405.
 */
#define DIAG_MODULE "metrics"
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/vmtab.h"
#include "util/parse.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define MAX_CONNECTIONS 32
#define CONNECTION_TIMEOUT_S 10

struct metrics {
	struct vmtab *t;
	struct MHD_Daemon *httpd;
};

/* One VM's figures for a scrape. */
struct vm_sample {
	struct vmtab_info info;
	json_t *stats;              /* NULL when not running or not answering */
	char label[256];            /* vm="...",role="..." */
};

struct text {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void FTVM_PRINTF(2, 3) put(struct text *o, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->buf ? o->cap - o->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = true;
			return;
		}
		if (o->buf && o->len + (size_t)n < o->cap) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = (o->cap + (size_t)n + 1) * 2;
		char *b = realloc(o->buf, cap);
		if (!b) {
			o->failed = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
}

static void escape_label(char *out, size_t len, const char *s)
{
	size_t j = 0;
	for (; *s && j + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			out[j++] = '\\';
			out[j++] = *s;
		} else if (*s == '\n') {
			out[j++] = '\\';
			out[j++] = 'n';
		} else {
			out[j++] = *s;
		}
	}
	out[j] = 0;
}

static bool stat_num(const struct vm_sample *s, const char *key, double *v)
{
	json_t *j = s->stats ? json_object_get(s->stats, key) : NULL;
	if (!json_is_number(j))
		return false;
	*v = json_number_value(j);
	return true;
}

/* A family read from each VM's stats: key scaled by `scale` (ms -> s: 1e-3). */
static void family(struct text *o, const struct vm_sample *v, size_t n, const char *name, const char *type,
		   const char *help, const char *key, double scale)
{
	bool header = false;
	double x;
	for (size_t i = 0; i < n; i++) {
		if (!stat_num(&v[i], key, &x))
			continue;
		if (!header)
			put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
		header = true;
		put(o, "%s{%s} %.17g\n", name, v[i].label, x * scale);
	}
}

/* The output hold-time histogram of each primary (status "output_hold": buckets in seconds). */
static void hold_histogram(struct text *o, const struct vm_sample *v, size_t n)
{
	bool header = false;
	for (size_t i = 0; i < n; i++) {
		json_t *h = v[i].stats ? json_object_get(v[i].stats, "output_hold_count") : NULL;
		if (!json_is_integer(h))
			continue;
		if (!header)
			put(o, "# HELP ftvm_output_hold_seconds Time each output was held for the backup's acknowledgement "
			       "(the Output Rule).\n# TYPE ftvm_output_hold_seconds histogram\n");
		header = true;
		const char *key;
		json_t *val;
		json_object_foreach(v[i].stats, key, val) {
			const char *le = !strncmp(key, "output_hold_le_", 15) ? key + 15 : NULL;
			if (le && json_is_integer(val))
				put(o, "ftvm_output_hold_seconds_bucket{%s,le=\"%s\"} %lld\n", v[i].label, le,
				    (long long)json_integer_value(val));
		}
		put(o, "ftvm_output_hold_seconds_bucket{%s,le=\"+Inf\"} %lld\n", v[i].label,
		    (long long)json_integer_value(h));
		double sum = 0;
		stat_num(&v[i], "output_hold_sum_s", &sum);
		put(o, "ftvm_output_hold_seconds_sum{%s} %.17g\n", v[i].label, sum);
		put(o, "ftvm_output_hold_seconds_count{%s} %lld\n", v[i].label, (long long)json_integer_value(h));
	}
}

/* Restoring redundancy (docs/ft-clone.md) and live migration (docs/migration.md) as they go. */
static void clone_families(struct text *o, const struct vm_sample *v, size_t n)
{
	family(o, v, n, "ftvm_clones_total", "counter", "FT clones this node completed (backups made).", "clones", 1);
	family(o, v, n, "ftvm_clone_transferred_bytes", "gauge", "Bytes the FT clone under way (or last tried) sent.",
	       "clone_bytes", 1);
	family(o, v, n, "ftvm_clone_remaining_bytes", "gauge",
	       "Bytes the FT clone under way (or last tried) still had to send, as last estimated.", "clone_remaining", 1);
	bool header = false;
	for (size_t i = 0; i < n; i++) {
		double cur;
		if (!stat_num(&v[i], "clone_phase", &cur))
			continue;
		if (!header)
			put(o, "# HELP ftvm_clone_phase The phase of the FT clone under way or last tried (1 for it).\n"
			       "# TYPE ftvm_clone_phase gauge\n");
		header = true;
		for (int p = 0; vmtab_clone_phase_name(p); p++)
			put(o, "ftvm_clone_phase{%s,phase=\"%s\"} %d\n", v[i].label, vmtab_clone_phase_name(p), (double)p == cur);
	}
	family(o, v, n, "ftvm_migration_transferred_bytes", "gauge", "Bytes the live migration under way (or last) sent.",
	       "migration_bytes", 1);
	family(o, v, n, "ftvm_migration_remaining_bytes", "gauge",
	       "Bytes the live migration under way (or last) still had to send, as last estimated.",
	       "migration_remaining_bytes", 1);
	family(o, v, n, "ftvm_migration_running", "gauge", "1 while a live migration of the VM runs.", "migration_running",
	       1);
}

char *metrics_render(struct vmtab *t)
{
	struct vmtab_info *list = NULL;
	size_t n = 0;
	struct text o = { 0 };
	if (vmtab_list(t, &list, &n))
		return NULL;
	struct vm_sample *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		free(list);
		return NULL;
	}
	char name[2 * VMTAB_NAME_MAX + 4], role[40];
	for (size_t i = 0; i < n; i++) {
		v[i].info = list[i];
		escape_label(name, sizeof(name), list[i].name);
		escape_label(role, sizeof(role), list[i].ft_role[0] ? list[i].ft_role : "none");
		snprintf(v[i].label, sizeof(v[i].label), "vm=\"%s\",role=\"%s\"", name, role);
		if (list[i].id > 0 && vmtab_stats(t, list[i].name, &v[i].stats))
			v[i].stats = NULL;
	}
	free(list);

	put(&o, "# HELP ftvm_vm_up Whether the VM has a running process (1) or not (0).\n# TYPE ftvm_vm_up gauge\n");
	for (size_t i = 0; i < n; i++)
		put(&o, "ftvm_vm_up{%s} %d\n", v[i].label, v[i].info.id > 0);
	put(&o, "# HELP ftvm_vm_state The VM's run state as the daemon sees it (1 for the current one).\n"
		"# TYPE ftvm_vm_state gauge\n");
	for (size_t i = 0; i < n; i++)
		put(&o, "ftvm_vm_state{%s,state=\"%s\"} 1\n", v[i].label, vmtab_state_name(v[i].info.state));
	bool header = false;
	static const char *const states[] = { "waiting", "protected", "arbitrating", "going-live", "alone", "halted",
					       "done" };
	for (size_t i = 0; i < n; i++) {
		double cur;
		if (!stat_num(&v[i], "ft_state", &cur))
			continue;
		if (!header)
			put(&o, "# HELP ftvm_ft_state The FT node's state in its pair (1 for the current one).\n"
				"# TYPE ftvm_ft_state gauge\n");
		header = true;
		for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++)
			put(&o, "ftvm_ft_state{%s,state=\"%s\"} %d\n", v[i].label, states[s], (double)s == cur);
	}
	family(&o, v, n, "ftvm_backup_lag_seconds", "gauge",
	       "How far behind the primary the backup is, in guest time as the primary measures it.", "backup_lag_ms",
	       1e-3);
	family(&o, v, n, "ftvm_log_bytes_total", "counter", "Bytes of event log sent (primary) or received (backup).",
	       "log_bytes", 1);
	family(&o, v, n, "ftvm_log_records_total", "counter", "Event log records sent (primary) or received (backup).",
	       "log_records", 1);
	family(&o, v, n, "ftvm_outputs_held", "gauge", "Outputs held now until the backup acknowledges the log.",
	       "outputs_held", 1);
	family(&o, v, n, "ftvm_outputs_released_total", "counter", "Outputs released after the backup's acknowledgement.",
	       "outputs_released", 1);
	hold_histogram(&o, v, n);
	family(&o, v, n, "ftvm_failovers_total", "counter", "Failovers this node took part in.", "failovers", 1);
	family(&o, v, n, "ftvm_last_failover_gap_seconds", "gauge",
	       "Time from the last log traffic of the lost peer to running alone, at the last failover.",
	       "last_failover_gap_ms", 1e-3);
	family(&o, v, n, "ftvm_instructions_total", "counter", "Guest instructions retired in this run of the VM.",
	       "icount", 1);
	family(&o, v, n, "ftvm_cpu_seconds_total", "counter", "CPU time used by the VM's process in this run.",
	       "cpu_time_ns", 1e-9);
	clone_families(&o, v, n);
	for (size_t i = 0; i < n; i++)
		json_decref(v[i].stats);
	free(v);
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	return o.buf ? o.buf : strdup("");
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type, char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
	struct metrics *m = cls;
	if (*upload_size) {
		*upload_size = 0;   /* a body is never wanted: dropped */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found: try /metrics\n"));
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup("only GET\n"));
	char *text = metrics_render(m->t);
	if (!text)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", strdup("out of memory\n"));
	return reply(conn, MHD_HTTP_OK, CONTENT_TYPE, text);
}

int metrics_start(struct vmtab *t, const char *addr, struct metrics **out, char *err, size_t errlen)
{
	char host[256];
	unsigned port;
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || parse_uint(colon + 1, 1, 65535, &port)) {
		snprintf(err, errlen, "--metrics %s: expected HOST:PORT", addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int gai = getaddrinfo(host, NULL, &hints, &ai);
	if (gai || !ai) {
		snprintf(err, errlen, "--metrics %s: %s", addr, gai ? gai_strerror(gai) : "no address");
		return -EINVAL;
	}
	struct sockaddr_in sin;
	memcpy(&sin, ai->ai_addr, sizeof(sin));
	freeaddrinfo(ai);
	sin.sin_port = htons((uint16_t)port);

	struct metrics *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->t = t;
	m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, (uint16_t)port,
				    NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				    (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
	if (!m->httpd) {
		snprintf(err, errlen, "--metrics %s: cannot listen there (in use, or not this host's address?)", addr);
		free(m);
		return -EADDRINUSE;
	}
	*out = m;
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->httpd);
	free(m);
}
