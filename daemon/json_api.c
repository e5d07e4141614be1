/*
 * json_api.c — see json_api.h. Each verb is a quick command of the control server: it checks its
 * arguments (the client is only as trusted as the socket's permissions), calls the table, and adds
 * its answer's fields. Events reach the socket through a subscription that keeps the last
 * JSON_API_EVENTS in a ring, numbered from 1; `events` returns those after a given number, so a
 * client that polls misses none unless it falls that far behind (then "lost" says how many).
 * `ft` (which waits on the other host's daemon) and `stats` (which asks the VM's process) are slow
 * commands of the control server: they run off its thread, so everyone else is answered meanwhile.
 */
#define DIAG_MODULE "ftvmd"
#include "daemon/json_api.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/control.h"
#include "daemon/domain_doc.h"
#include "daemon/pairing.h"
#include "daemon/vmtab.h"

struct event_rec {
	uint64_t seq;
	char name[VMTAB_NAME_MAX];
	enum vmtab_event ev;
	enum vmtab_reason detail;
	enum vmtab_state state;
};

struct json_api {
	struct vmtab *t;
	struct pairing *pair;
	struct control_server *srv;
	int sub;
	pthread_mutex_t lock;        /* the ring */
	uint64_t next_seq;           /* the number the next event gets; events 1..next_seq-1 happened */
	struct event_rec ring[JSON_API_EVENTS];
};

static json_t *info_json(const struct vmtab_info *i)
{
	char uuid[37];
	domain_uuid_format(i->uuid, uuid);
	return json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:i, s:I, s:I, s:b, s:b, s:s}", "name", i->name, "uuid",
			 uuid, "id", i->id, "state", vmtab_state_name(i->state), "reason", vmtab_reason_name(i->reason),
			 "max_mem_kib", (json_int_t)i->max_mem_kib, "mem_kib", (json_int_t)i->mem_kib, "vcpus",
			 (int)i->vcpus, "cpu_time_ns", (json_int_t)i->cpu_time_ns, "instructions",
			 (json_int_t)i->instructions, "persistent", i->persistent, "autostart", i->autostart, "ft_role",
			 i->ft_role);
}

/* The "name" argument: 1..VMTAB_NAME_MAX-1 bytes without '/'. */
static const char *name_arg(const json_t *req, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n >= VMTAB_NAME_MAX || strchr(name, '/') || n != json_string_length(json_object_get(req, "name"))) {
		snprintf(err, errlen, "\"name\" must be a VM name (1..%d bytes, no '/')", VMTAB_NAME_MAX - 1);
		return NULL;
	}
	return name;
}

static int add_info(struct vmtab *t, const char *name, json_t *answer)
{
	struct vmtab_info i;
	if (vmtab_lookup_name(t, name, &i) == 0)
		json_object_set_new(answer, "vm", info_json(&i));
	return 0;
}

/* A definition names files the VM's process opens as the daemon's user (kernel, disks): only root
 * and that user may write one; a --socket-group member may run the VMs defined, not define them. */
static int owner_only(const char *verb, char *err, size_t errlen)
{
	uid_t peer = control_peer_uid();
	if (peer == 0 || peer == geteuid())
		return 0;
	snprintf(err, errlen, "%s: only root and the daemon's user may %s VMs (uid %u may not)", verb, verb,
		 (unsigned)peer);
	return -EPERM;
}

/* The "xml" argument of define and create, from an owner (NULL with err otherwise). */
static const char *xml_arg(const json_t *req, const char *verb, char *err, size_t errlen)
{
	if (owner_only(verb, err, errlen))
		return NULL;
	const char *xml = json_string_value(json_object_get(req, "xml"));
	if (!xml || strlen(xml) != json_string_length(json_object_get(req, "xml"))) {
		snprintf(err, errlen, "%s: \"xml\" must be the domain definition (a string without NUL)", verb);
		return NULL;
	}
	return xml;
}

static int do_define(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	struct vmtab_info i;
	const char *xml = xml_arg(req, "define", err, errlen);
	if (!xml)
		return strstr(err, "only root") ? -EPERM : -EINVAL;
	const json_t *autostart = json_object_get(req, "autostart");
	if (autostart && !json_is_boolean(autostart)) {
		snprintf(err, errlen, "define: \"autostart\" must be true or false");
		return -EINVAL;
	}
	int ret = vmtab_define(api->t, xml, &i, err, errlen);
	if (!ret && autostart)
		ret = vmtab_set_autostart(api->t, i.name, json_is_true(autostart), err, errlen);
	return ret ? ret : add_info(api->t, i.name, answer);
}

/* {"cmd":"create","xml":...}: a transient VM, started at once (vmtab_create). */
static int do_create(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	struct vmtab_info i;
	const char *xml = xml_arg(req, "create", err, errlen);
	if (!xml)
		return strstr(err, "only root") ? -EPERM : -EINVAL;
	int ret = vmtab_create(api->t, xml, &i, err, errlen);
	if (!ret)
		json_object_set_new(answer, "vm", info_json(&i));
	return ret;
}

/* {"cmd":"autostart","name":N,"enable":true|false}: enable defaults to true. */
static int do_autostart(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	const json_t *enable = json_object_get(req, "enable");
	const char *name = name_arg(req, err, errlen);
	if (!name)
		return -EINVAL;
	if (enable && !json_is_boolean(enable)) {
		snprintf(err, errlen, "autostart: \"enable\" must be true or false");
		return -EINVAL;
	}
	int ret = vmtab_set_autostart(api->t, name, !enable || json_is_true(enable), err, errlen);
	return ret ? ret : add_info(api->t, name, answer);
}

/* The verbs that take a name and act: the table's function, then the VM as it is now. */
typedef int vm_verb_fn(struct vmtab *t, const char *name, char *err, size_t errlen);

static int name_verb(struct json_api *api, const json_t *req, json_t *answer, vm_verb_fn *fn, char *err, size_t errlen)
{
	const char *name = name_arg(req, err, errlen);
	if (!name)
		return -EINVAL;
	int ret = fn(api->t, name, err, errlen);
	return ret ? ret : add_info(api->t, name, answer);
}

#define NAME_VERB(verb)                                                                                    \
	static int do_##verb(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen) \
	{                                                                                                      \
		return name_verb(ctx, req, answer, vmtab_##verb, err, errlen);                                  \
	}
static int do_undefine(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	if (owner_only("undefine", err, errlen))
		return -EPERM;
	return name_verb(ctx, req, answer, vmtab_undefine, err, errlen);
}

NAME_VERB(start)
NAME_VERB(shutdown)
NAME_VERB(destroy)
NAME_VERB(suspend)
NAME_VERB(resume)

static int do_dumpxml(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	const char *name = name_arg(req, err, errlen);
	char *xml = name ? vmtab_xml(api->t, name, err, errlen) : NULL;
	if (!xml)
		return name ? -ENOENT : -EINVAL;
	json_object_set_new(answer, "xml", json_string(xml));
	free(xml);
	return 0;
}

static int do_dominfo(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	struct vmtab_info i;
	const char *name = name_arg(req, err, errlen);
	if (!name)
		return -EINVAL;
	if (vmtab_lookup_name(api->t, name, &i)) {
		snprintf(err, errlen, "no VM named '%s'", name);
		return -ENOENT;
	}
	json_object_set_new(answer, "vm", info_json(&i));
	return 0;
}

static int do_list(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	struct vmtab_info *v;
	size_t n;
	int ret = vmtab_list(api->t, &v, &n);
	if (ret)
		return ret;
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, info_json(&v[i]));
	free(v);
	json_object_set_new(answer, "vms", a);
	return 0;
}

static int do_stats(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	json_t *st;
	const char *name = name_arg(req, err, errlen);
	if (!name)
		return -EINVAL;
	int ret = vmtab_stats(api->t, name, &st);
	if (ret) {
		snprintf(err, errlen, ret == -ENOENT ? "no VM named '%s'" : ret == -EBUSY ? "VM %s is not running"
										   : "VM %s does not answer",
			 name);
		return ret;
	}
	json_object_set_new(answer, "stats", st);
	return 0;
}

static int do_nodeinfo(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	struct vmtab_node n;
	int ret = vmtab_node_info(api->t, &n);
	if (ret)
		return ret;
	json_object_set_new(answer, "node",
			    json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i}", "model", n.model, "memory_kib",
				      (json_int_t)n.memory_kib, "cpus", n.cpus, "mhz", n.mhz, "nodes", n.nodes, "sockets",
				      n.sockets, "cores", n.cores, "threads", n.threads));
	return 0;
}

static int do_events(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	json_t *since = json_object_get(req, "since");
	if (since && (!json_is_integer(since) || json_integer_value(since) < 0)) {
		snprintf(err, errlen, "events: \"since\" must be a non-negative integer (an event number)");
		return -EINVAL;
	}
	uint64_t from = since ? (uint64_t)json_integer_value(since) + 1 : 1;
	json_t *a = json_array();
	pthread_mutex_lock(&api->lock);
	uint64_t oldest = api->next_seq > JSON_API_EVENTS ? api->next_seq - JSON_API_EVENTS : 1;
	uint64_t lost = from < oldest ? oldest - from : 0;
	for (uint64_t s = from > oldest ? from : oldest; a && s < api->next_seq; s++) {
		const struct event_rec *e = &api->ring[s % JSON_API_EVENTS];
		json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq, "name",
						   e->name, "event", vmtab_event_name(e->ev), "detail",
						   vmtab_reason_name(e->detail), "state", vmtab_state_name(e->state)));
	}
	json_object_set_new(answer, "last", json_integer((json_int_t)(api->next_seq - 1)));
	pthread_mutex_unlock(&api->lock);
	json_object_set_new(answer, "lost", json_integer((json_int_t)lost));
	json_object_set_new(answer, "events", a);
	return 0;
}

/* {"cmd":"ft","action":"enable","name":N,"host":"B:PORT","spare_port":P} or
 * {"cmd":"ft","action":"disable","name":N}: FT pairing with another host's daemon (pairing.h). */
static int do_ft(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct json_api *api = ctx;
	const char *name = name_arg(req, err, errlen);
	const char *action = json_string_value(json_object_get(req, "action"));
	const char *host = json_string_value(json_object_get(req, "host"));
	const json_t *port = json_object_get(req, "spare_port");
	if (!name)
		return -EINVAL;
	if (!api->pair) {
		snprintf(err, errlen, "ft: this daemon has no pairing key (ftvmd --pair-key FILE)");
		return -ENOTSUP;
	}
	int ret;
	if (action && !strcmp(action, "enable")) {
		if (!host || !json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535) {
			snprintf(err, errlen, "ft enable: \"host\" (HOST:PORT of the other daemon) and \"spare_port\" "
					      "(1..65535) are required");
			return -EINVAL;
		}
		ret = pairing_enable(api->pair, name, host, (unsigned)json_integer_value(port), err, errlen);
	} else if (action && !strcmp(action, "disable")) {
		ret = pairing_disable(api->pair, name, err, errlen);
	} else {
		snprintf(err, errlen, "ft: \"action\" must be enable or disable");
		return -EINVAL;
	}
	return ret ? ret : add_info(api->t, name, answer);
}

static const struct control_command verbs[] = {
	{ .name = "define", .handler = do_define },     { .name = "undefine", .handler = do_undefine },
	{ .name = "start", .handler = do_start },       { .name = "shutdown", .handler = do_shutdown },
	{ .name = "destroy", .handler = do_destroy },   { .name = "suspend", .handler = do_suspend },
	{ .name = "resume", .handler = do_resume },     { .name = "dumpxml", .handler = do_dumpxml },
	{ .name = "dominfo", .handler = do_dominfo },   { .name = "list", .handler = do_list },
	{ .name = "stats", .handler = do_stats, .slow = true },       { .name = "nodeinfo", .handler = do_nodeinfo },
	{ .name = "events", .handler = do_events },     { .name = "autostart", .handler = do_autostart },
	{ .name = "ft", .handler = do_ft, .slow = true },             { .name = "create", .handler = do_create },
};

/* A table event into the ring (on a table thread, under the table's lock: quick, no call back). */
static void on_event(const struct vmtab_info *vm, enum vmtab_event ev, enum vmtab_reason detail, void *opaque)
{
	struct json_api *api = opaque;
	pthread_mutex_lock(&api->lock);
	uint64_t seq = api->next_seq++;
	struct event_rec *e = &api->ring[seq % JSON_API_EVENTS];
	e->seq = seq;
	snprintf(e->name, sizeof(e->name), "%s", vm->name);
	e->ev = ev;
	e->detail = detail;
	e->state = vm->state;
	pthread_mutex_unlock(&api->lock);
}

static void status_fields(void *ctx, json_t *answer)
{
	json_object_set_new(answer, "role", json_string("ftvmd"));
}

int json_api_start(struct vmtab *t, struct pairing *pair, const char *path, bool has_group, gid_t group,
		   struct json_api **out, char *err, size_t errlen)
{
	struct json_api *api = calloc(1, sizeof(*api));
	if (!api) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	api->t = t;
	api->pair = pair;
	api->next_seq = 1;
	pthread_mutex_init(&api->lock, NULL);
	api->sub = vmtab_subscribe(t, on_event, api);
	if (api->sub < 0) {
		snprintf(err, errlen, "out of memory");
		pthread_mutex_destroy(&api->lock);
		free(api);
		return -ENOMEM;
	}
	struct control_config cc = {
		.path = path, .has_group = has_group, .group = group, .status_fields = status_fields, .ctx = api,
		.commands = verbs, .ncommands = sizeof(verbs) / sizeof(verbs[0]), .max_request = CONTROL_DAEMON_MAX_REQUEST,
	};
	int ret = control_start(&cc, &api->srv, err, errlen);
	if (ret) {
		json_api_stop(api);
		return ret;
	}
	*out = api;
	return 0;
}

void json_api_stop(struct json_api *api)
{
	if (!api)
		return;
	control_stop(api->srv);
	vmtab_unsubscribe(api->t, api->sub);
	pthread_mutex_destroy(&api->lock);
	free(api);
}
