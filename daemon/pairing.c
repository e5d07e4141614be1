/*
 * pairing.c — see pairing.h. Requests, each one JSON object in the one record of a channel whose
 * HELLO names PAIRING_ID (a migration-purpose channel: the receiver may refuse it with a message):
 *   {"op":"spare","xml":DEFINITION,"listen":"HOST:PORT","from":"HOST:PORT"}
 *       define the VM here as the backup half of its pair (its <ftvm:ft> given listen=HOST:PORT
 *       and no peer), marked spare, and start it (`ftvm spare`); from: the asking daemon.
 *   {"op":"unpair","name":NAME}
 *       the VM's backup half here is no longer wanted: its process (which ends by itself once its
 *       primary dropped it) is waited for, then killed, and the definition removed. A half that
 *       went live here after a failover is the VM itself now, and is refused.
 * The receiver acknowledges the record once the request is done, or refuses the channel with the
 * reason; the asking side waits for either. Each accepted channel is served on a thread of its
 * own, at most PAIRING_SERVERS at once (one more is refused at once as busy), each bounded by the
 * channel's timeouts and REQUEST_WAIT_MS, so a peer that holds the key but stays silent delays no
 * other. Only the accepting thread starts, reaps and joins them.
 */
#define DIAG_MODULE "pairing"
#include "daemon/pairing.h"

#include <errno.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/domain_xml.h"
#include "logchannel/channel.h"
#include "util/diag.h"
#include "util/time.h"

#define PAIRING_ID "ftvmd-pairing"
#define ACCEPT_POLL_MS 200        /* how often the server thread looks at its stop flag */
#define REQUEST_WAIT_MS 10000     /* a request's record to arrive; the asker's wait for the answer */
#define UNPAIR_WAIT_MS 5000       /* a dropped backup half to end by itself before it is killed */
#define PAIRING_TIMEOUT_MS 10000  /* peer silence that fails a pairing channel (heartbeats every 500 ms) */
#define PAIRING_BUFFER (4u * 1024u * 1024u)
#define PAIRING_SERVERS 4         /* channels served at once */

struct pairing;

/* One accepted channel being served; `done` set by its thread, the rest the accepting thread's. */
struct pair_server {
	struct pairing *p;
	struct channel *ch;
	pthread_t thread;
	bool live;                    /* a thread to join */
	atomic_bool done;
};

struct pairing {
	struct vmtab *t;
	struct channel_key key;
	char listen[128];             /* "" when not serving */
	struct channel_listener *l;
	pthread_t thread;
	atomic_bool stop;
	struct pair_server servers[PAIRING_SERVERS];
};

static void channel_cfg(struct pairing *p, struct channel_config *cfg)
{
	channel_config_init(cfg);
	cfg->vm_id = PAIRING_ID;
	cfg->purpose = CHANNEL_PURPOSE_MIGRATION;
	cfg->key = &p->key;
	cfg->buffer_bytes = PAIRING_BUFFER;
	cfg->heartbeat_ms = 500;
	cfg->timeout_ms = PAIRING_TIMEOUT_MS;
}

/* HOST of HOST:PORT into buf (the part before the last ':'); -EINVAL when there is none. */
static int host_of(const char *hostport, char *buf, size_t len)
{
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= len || !colon[1])
		return -EINVAL;
	memcpy(buf, hostport, (size_t)(colon - hostport));
	buf[colon - hostport] = 0;
	return 0;
}

/* The definition with its <ftvm:ft> made the backup half's: listen=listen, no peer, and spares=back
 * when back is not empty (after going live it restores redundancy there). */
static char *backup_half_xml(const char *xml, const char *listen, const char *back, char *err, size_t errlen)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL, ft = NULL;
	for (xmlNodePtr md = root ? root->children : NULL; md && !ft; md = md->next)
		if (md->type == XML_ELEMENT_NODE && !xmlStrcmp(md->name, (const xmlChar *)"metadata"))
			for (xmlNodePtr c = md->children; c && !ft; c = c->next)
				if (c->type == XML_ELEMENT_NODE && c->ns && !xmlStrcmp(c->name, (const xmlChar *)"ft") &&
				    !xmlStrcmp(c->ns->href, (const xmlChar *)DOMAIN_FT_NS))
					ft = c;
	char *out = NULL;
	if (!doc) {
		snprintf(err, errlen, "the definition is not well-formed XML");
	} else if (!ft) {
		snprintf(err, errlen, "the definition has no <ftvm:ft> settings (arbiter, channel-key): FT needs them");
	} else {
		xmlUnsetProp(ft, (const xmlChar *)"peer");
		xmlSetProp(ft, (const xmlChar *)"listen", (const xmlChar *)listen);
		if (back[0])
			xmlSetProp(ft, (const xmlChar *)"spares", (const xmlChar *)back);
		xmlChar *text = NULL;
		int n = 0;
		xmlDocDumpMemory(doc, &text, &n);
		out = text ? strndup((const char *)text, (size_t)n) : NULL;
		xmlFree(text);
		if (!out)
			snprintf(err, errlen, "out of memory");
	}
	xmlFreeDoc(doc);
	return out;
}

/* "spare": define, mark, start (the server side of pairing_enable). */
static int serve_spare(struct pairing *p, const json_t *req, char *err, size_t errlen)
{
	const char *xml = json_string_value(json_object_get(req, "xml"));
	const char *listen = json_string_value(json_object_get(req, "listen"));
	const char *from = json_string_value(json_object_get(req, "from"));
	char host[128], back[160] = "";
	if (!xml || !listen || strlen(listen) >= sizeof(host) || host_of(listen, host, sizeof(host)) ||
	    (from && strlen(from) >= sizeof(((struct vmtab_info *)0)->ft_pair))) {
		snprintf(err, errlen, "a spare request needs \"xml\" and \"listen\" (HOST:PORT)");
		return -EINVAL;
	}
	/* The way back: the asking host's spare, on the same port as this one (pairing.h). */
	if (from && !host_of(from, host, sizeof(host)))
		snprintf(back, sizeof(back), "%s%s", host, strrchr(listen, ':'));
	char *half = backup_half_xml(xml, listen, back, err, errlen);
	if (!half)
		return -EINVAL;
	struct vmtab_info vm;
	int ret = vmtab_define(p->t, half, &vm, err, errlen);
	free(half);
	if (!ret)
		ret = vmtab_set_spare(p->t, vm.name, true, err, errlen);
	if (!ret)
		ret = vmtab_set_pair(p->t, vm.name, from && from[0] ? from : NULL, err, errlen);
	if (!ret)
		ret = vmtab_start(p->t, vm.name, err, errlen);
	if (!ret)
		diag_info("%s: backup half defined and its spare started, listening on %s", vm.name, listen);
	return ret;
}

/* "unpair": the backup half ends and goes (the server side of pairing_disable). */
static int serve_unpair(struct pairing *p, const json_t *req, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	struct vmtab_info vm;
	if (!name || strlen(name) >= VMTAB_NAME_MAX || vmtab_lookup_name(p->t, name, &vm)) {
		snprintf(err, errlen, "no VM named '%.63s' here", name ? name : "");
		return -ENOENT;
	}
	if (!vm.ft_spare) {
		snprintf(err, errlen, "VM %s is not a backup half on this host", name);
		return -EPERM;
	}
	if (vm.id > 0 && strcmp(vm.ft_role, "backup") && strcmp(vm.ft_role, "spare")) {
		snprintf(err, errlen, "VM %s runs on this host as %s since a failover: it is the VM now, not a backup",
			 name, vm.ft_role);
		return -EBUSY;
	}
	uint64_t until = time_mono_ms() + UNPAIR_WAIT_MS;
	while (vm.id > 0 && time_mono_ms() < until && !vmtab_lookup_name(p->t, name, &vm))
		usleep(50 * 1000);
	int ret = vm.id > 0 ? vmtab_destroy(p->t, name, err, errlen) : 0;
	if (!ret)
		ret = vmtab_undefine(p->t, name, err, errlen);
	if (!ret)
		diag_info("%s: backup half removed", name);
	return ret;
}

static int serve(struct pairing *p, const char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *req = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *op = json_string_value(json_object_get(req, "op"));
	int ret;
	if (!json_is_object(req) || !op) {
		snprintf(err, errlen, "a request must be a JSON object with \"op\"");
		ret = -EINVAL;
	} else if (!strcmp(op, "spare")) {
		ret = serve_spare(p, req, err, errlen);
	} else if (!strcmp(op, "unpair")) {
		ret = serve_unpair(p, req, err, errlen);
	} else {
		snprintf(err, errlen, "unknown request \"%.32s\"", op);
		ret = -EINVAL;
	}
	json_decref(req);
	return ret;
}

static void serve_channel(struct pairing *p, struct channel *ch, char *buf)
{
	char err[512];
	uint64_t lsn;
	size_t len;
	int rc = channel_recv(ch, &lsn, buf, PAIRING_MAX_REQUEST, &len, REQUEST_WAIT_MS);
	if (rc == -EMSGSIZE) {
		snprintf(err, sizeof(err), "a request is at most %u bytes", (unsigned)PAIRING_MAX_REQUEST);
	} else if (rc) {
		diag_warn("a peer daemon sent no request: %s", channel_error(ch)[0] ? channel_error(ch) : strerror(-rc));
		channel_close(ch);
		return;
	} else {
		rc = serve(p, buf, len, err, sizeof(err));
	}
	if (rc) {
		diag_warn("a peer daemon's request refused: %s", err);
		if (channel_refuse(ch, err))
			diag_warn("cannot refuse the request");
	} else {
		/* Done: acknowledged; the asker then closes, which ends the wait below. */
		channel_ack(ch, lsn);
		while (channel_recv(ch, &lsn, buf, PAIRING_MAX_REQUEST, &len, REQUEST_WAIT_MS) == 0)
			;
	}
	channel_close(ch);
}

static void *serve_main(void *arg)
{
	struct pair_server *sv = arg;
	char *buf = malloc(PAIRING_MAX_REQUEST);
	if (buf) {
		serve_channel(sv->p, sv->ch, buf);
	} else {
		if (channel_refuse(sv->ch, "out of memory"))
			diag_warn("cannot refuse the request");
		channel_close(sv->ch);
	}
	free(buf);
	atomic_store(&sv->done, true);
	return NULL;
}

/* Joins the servers that ended (all of them, waiting, with all). */
static void servers_reap(struct pairing *p, bool all)
{
	for (size_t i = 0; i < PAIRING_SERVERS; i++) {
		struct pair_server *sv = &p->servers[i];
		if (sv->live && (all || atomic_load(&sv->done))) {
			pthread_join(sv->thread, NULL);
			sv->live = false;
		}
	}
}

/* Serves ch on a thread of its own, or refuses it when PAIRING_SERVERS are busy. */
static void server_start(struct pairing *p, struct channel *ch)
{
	struct pair_server *sv = NULL;
	char msg[128];
	servers_reap(p, false);
	for (size_t i = 0; i < PAIRING_SERVERS && !sv; i++)
		if (!p->servers[i].live)
			sv = &p->servers[i];
	int ret = EBUSY;
	if (sv) {
		sv->p = p;
		sv->ch = ch;
		atomic_store(&sv->done, false);
		ret = pthread_create(&sv->thread, NULL, serve_main, sv);
		sv->live = ret == 0;
	}
	if (!ret)
		return;
	if (ret == EBUSY)
		snprintf(msg, sizeof(msg), "busy: %d requests are being served, try again", PAIRING_SERVERS);
	else
		snprintf(msg, sizeof(msg), "cannot serve the request now: %s", strerror(ret));
	diag_warn("a peer daemon's request refused: %s", msg);
	if (channel_refuse(ch, msg))
		diag_warn("cannot refuse the request");
	channel_close(ch);
}

static void *server_main(void *arg)
{
	struct pairing *p = arg;
	uint64_t auth_failed = 0;
	while (!atomic_load(&p->stop)) {
		struct channel *ch;
		struct channel_err cerr = { 0 };
		struct channel_listener_stats st;
		int rc = channel_accept(p->l, ACCEPT_POLL_MS, &ch, &cerr);
		channel_listener_get_stats(p->l, &st);
		if (st.auth_failed != auth_failed)
			diag_warn("%llu peer(s) failed authentication (another key, or not TLS): dropped, %llu so far",
				  (unsigned long long)(st.auth_failed - auth_failed), (unsigned long long)st.auth_failed);
		auth_failed = st.auth_failed;
		if (rc == 0)
			server_start(p, ch);
		else if (rc != -ETIMEDOUT)
			diag_warn("a peer daemon was refused: %s", cerr.msg);
		servers_reap(p, false);
	}
	servers_reap(p, true);
	return NULL;
}

int pairing_start(struct vmtab *t, const char *key_path, const char *listen, struct pairing **out, char *err,
		  size_t errlen)
{
	struct channel_err cerr = { 0 };
	struct pairing *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->t = t;
	int ret = channel_key_load(key_path, &p->key, &cerr);
	if (ret) {
		snprintf(err, errlen, "--pair-key %s: %s", key_path, cerr.msg);
		free(p);
		return ret;
	}
	if (listen) {
		struct channel_config cfg;
		channel_cfg(p, &cfg);
		snprintf(p->listen, sizeof(p->listen), "%s", listen);
		ret = channel_listen(&cfg, listen, &p->l, &cerr);
		if (ret)
			snprintf(err, errlen, "--pair-listen %s: %s", listen, cerr.msg);
		if (!ret && (ret = -pthread_create(&p->thread, NULL, server_main, p)) != 0) {
			snprintf(err, errlen, "cannot start the pairing thread: %s", strerror(-ret));
			channel_listener_close(p->l);
		}
		if (ret) {
			free(p);
			return ret;
		}
	}
	*out = p;
	return 0;
}

void pairing_stop(struct pairing *p)
{
	if (!p)
		return;
	if (p->l) {
		atomic_store(&p->stop, true);
		pthread_join(p->thread, NULL);
		channel_listener_close(p->l);
	}
	free(p);
}

/* One request to the daemon at host: 0 once it is done there, else -errno with its reason. */
static int ask(struct pairing *p, const char *host, const json_t *req, char *err, size_t errlen)
{
	struct channel_config cfg;
	struct channel_err cerr = { 0 };
	struct channel *ch = NULL;
	char *text = json_dumps(req, JSON_COMPACT);
	if (!text || strlen(text) > PAIRING_MAX_REQUEST) {
		snprintf(err, errlen, text ? "the request is longer than %u bytes" : "out of memory",
			 (unsigned)PAIRING_MAX_REQUEST);
		free(text);
		return text ? -EMSGSIZE : -ENOMEM;
	}
	channel_cfg(p, &cfg);
	int ret = channel_connect(&cfg, host, &ch, &cerr);
	if (ret) {
		snprintf(err, errlen, "cannot reach the daemon at %s: %s", host, cerr.msg);
		free(text);
		return ret;
	}
	ret = channel_send_wait(ch, 1, text, strlen(text), REQUEST_WAIT_MS);
	if (!ret)
		ret = channel_wait_acked(ch, 1, REQUEST_WAIT_MS);
	if (ret)
		snprintf(err, errlen, "the daemon at %s: %s", host,
			 channel_error(ch)[0] ? channel_error(ch) : strerror(-ret));
	channel_close(ch);
	free(text);
	return ret;
}

int pairing_enable(struct pairing *p, const char *name, const char *host, unsigned spare_port, char *err,
		   size_t errlen)
{
	char addr[128], spare[160];
	struct vmtab_info vm;
	if (host_of(host, addr, sizeof(addr)) || strlen(host) >= sizeof(vm.ft_pair) || !spare_port || spare_port > 65535) {
		snprintf(err, errlen, "--host must be HOST:PORT (at most %zu bytes) and the spare port 1..65535",
			 sizeof(vm.ft_pair) - 1);
		return -EINVAL;
	}
	if (vmtab_lookup_name(p->t, name, &vm)) {
		snprintf(err, errlen, "no VM named '%s'", name);
		return -ENOENT;
	}
	if (vm.id <= 0) {
		snprintf(err, errlen, "VM %s is not running: start it, then enable FT", name);
		return -EBUSY;
	}
	snprintf(spare, sizeof(spare), "%s:%u", addr, spare_port);
	char *xml = vmtab_xml(p->t, name, err, errlen);
	if (!xml)
		return -ENOENT;
	json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "op", "spare", "xml", xml, "listen", spare, "from", p->listen);
	free(xml);
	int ret = req ? ask(p, host, req, err, errlen) : -ENOMEM;
	json_decref(req);
	if (ret)
		return ret;
	ret = vmtab_set_pair(p->t, name, host, err, errlen);
	if (!ret)
		ret = vmtab_ft(p->t, name, "enable", spare, err, errlen);
	/* A survivor whose definition names that spare may have cloned to it on its own already. */
	if (ret == -EIO && strstr(err, "protected already"))
		ret = 0;
	if (!ret) {
		diag_info("%s: FT enabled with the spare at %s (daemon %s)", name, spare, host);
		return 0;
	}
	/* The VM would not take it: the half on the other host goes again (best effort). */
	char why[512];
	req = json_pack("{s:s, s:s}", "op", "unpair", "name", name);
	if (!req || ask(p, host, req, why, sizeof(why)) || vmtab_set_pair(p->t, name, NULL, why, sizeof(why)))
		diag_warn("%s: the backup half at %s stays: %s", name, host, req ? why : "out of memory");
	json_decref(req);
	return ret;
}

int pairing_disable(struct pairing *p, const char *name, char *err, size_t errlen)
{
	struct vmtab_info vm;
	if (vmtab_lookup_name(p->t, name, &vm)) {
		snprintf(err, errlen, "no VM named '%s'", name);
		return -ENOENT;
	}
	if (!vm.ft_pair[0]) {
		snprintf(err, errlen, "VM %s was not paired by this daemon (ftvm ft enable --host)", name);
		return -ENOENT;
	}
	int ret = vm.id > 0 ? vmtab_ft(p->t, name, "disable", NULL, err, errlen) : 0;
	json_t *req = ret ? NULL : json_pack("{s:s, s:s}", "op", "unpair", "name", name);
	if (!ret)
		ret = req ? ask(p, vm.ft_pair, req, err, errlen) : -ENOMEM;
	json_decref(req);
	if (!ret)
		ret = vmtab_set_pair(p->t, name, NULL, err, errlen);
	return ret;
}
