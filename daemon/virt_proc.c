/*
 * virt_proc.c — see virt_proc.h. The table of remote procedures ftvmd answers, and their handlers.
 * A domain in a call is found by its UUID (as libvirt's own daemon does); the table's states,
 * reasons and events are mapped to libvirt's enums here and nowhere else:
 *   shutoff -> SHUTOFF, running -> RUNNING, paused -> PAUSED, stopping -> SHUTDOWN (being shut
 *   down), crashed -> CRASHED; a VM running after a failover is RUNNING/MIGRATED, and the failover
 *   itself is the event RESUMED/MIGRATED: the VM resumed on this host, coming from the other.
 */
#define DIAG_MODULE "ftvmd"
#include "daemon/virt_proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "daemon/vmtab.h"

/* ftvm's version (the project's, from CMake) as libvirt counts versions: major*1e6 + minor*1e3 + micro. */
#define FTVM_HV_VERSION (FTVM_VERSION_MAJOR * 1000000ull + FTVM_VERSION_MINOR * 1000ull)
#define SPOKEN_LIB_VERSION 9000000ull  /* the libvirt release whose protocol definitions we are built from */
#define STATS_MAX_PARAMS 64            /* typed parameters per VM in domstats */

/* Every domain procedure's arguments start with the domain. */
struct dom_args {
	remote_nonnull_domain dom;
};

static int from_errno(int ret, char *err, size_t errlen)
{
	switch (ret) {
	case -ENOENT:
		return VIR_ERR_NO_DOMAIN;
	case -EBUSY:
		return VIR_ERR_OPERATION_INVALID;
	case -EINVAL:
		return VIR_ERR_INVALID_ARG;
	case -ENOTSUP:
		return VIR_ERR_NO_SUPPORT;
	default:
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-ret));
		return VIR_ERR_OPERATION_FAILED;
	}
}

static void dom_from_info(remote_nonnull_domain *d, const struct vmtab_info *i)
{
	d->name = strdup(i->name);
	memcpy(d->uuid, i->uuid, sizeof(d->uuid));
	d->id = i->id;
}

/* The VM a call names, by UUID. */
static int find(struct virt_conn *c, const remote_nonnull_domain *d, struct vmtab_info *i, char *err, size_t errlen)
{
	if (vmtab_lookup_uuid(c->t, (const uint8_t *)d->uuid, i) == 0)
		return 0;
	snprintf(err, errlen, "Domain not found: no domain with matching uuid (%.63s)", d->name ? d->name : "");
	return VIR_ERR_NO_DOMAIN;
}

static int state_of(const struct vmtab_info *i, int *reason)
{
	switch (i->state) {
	case VMTAB_RUNNING:
		*reason = i->reason == VMTAB_REASON_FAILED_OVER ? VIR_DOMAIN_RUNNING_MIGRATED
			  : i->reason == VMTAB_REASON_BOOTED    ? VIR_DOMAIN_RUNNING_BOOTED
			  : i->reason == VMTAB_REASON_USER      ? VIR_DOMAIN_RUNNING_UNPAUSED
								: VIR_DOMAIN_RUNNING_UNKNOWN;
		return VIR_DOMAIN_RUNNING;
	case VMTAB_PAUSED:
		*reason = VIR_DOMAIN_PAUSED_USER;
		return VIR_DOMAIN_PAUSED;
	case VMTAB_STOPPING:
		*reason = VIR_DOMAIN_SHUTDOWN_USER;
		return VIR_DOMAIN_SHUTDOWN;
	case VMTAB_CRASHED:
		*reason = VIR_DOMAIN_CRASHED_UNKNOWN;
		return VIR_DOMAIN_CRASHED;
	case VMTAB_SHUTOFF:
		break;
	}
	*reason = i->reason == VMTAB_REASON_SHUTDOWN    ? VIR_DOMAIN_SHUTOFF_SHUTDOWN
		  : i->reason == VMTAB_REASON_DESTROYED ? VIR_DOMAIN_SHUTOFF_DESTROYED
		  : i->reason == VMTAB_REASON_FAILED    ? VIR_DOMAIN_SHUTOFF_FAILED
							: VIR_DOMAIN_SHUTOFF_UNKNOWN;
	return VIR_DOMAIN_SHUTOFF;
}

void virt_proc_lifecycle(int ev, int reason, int *event, int *detail)
{
	*detail = 0;
	switch ((enum vmtab_event)ev) {
	case VMTAB_EV_DEFINED:
		*event = VIR_DOMAIN_EVENT_DEFINED;
		*detail = VIR_DOMAIN_EVENT_DEFINED_ADDED;
		return;
	case VMTAB_EV_UNDEFINED:
		*event = VIR_DOMAIN_EVENT_UNDEFINED;
		*detail = VIR_DOMAIN_EVENT_UNDEFINED_REMOVED;
		return;
	case VMTAB_EV_STARTED:
		*event = VIR_DOMAIN_EVENT_STARTED;
		*detail = VIR_DOMAIN_EVENT_STARTED_BOOTED;
		return;
	case VMTAB_EV_SUSPENDED:
		*event = VIR_DOMAIN_EVENT_SUSPENDED;
		*detail = VIR_DOMAIN_EVENT_SUSPENDED_PAUSED;
		return;
	case VMTAB_EV_RESUMED:
		*event = VIR_DOMAIN_EVENT_RESUMED;
		*detail = reason == VMTAB_REASON_FAILED_OVER ? VIR_DOMAIN_EVENT_RESUMED_MIGRATED
							     : VIR_DOMAIN_EVENT_RESUMED_UNPAUSED;
		return;
	case VMTAB_EV_STOPPED:
		break;
	}
	*event = VIR_DOMAIN_EVENT_STOPPED;
	*detail = reason == VMTAB_REASON_SHUTDOWN    ? VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
		  : reason == VMTAB_REASON_DESTROYED ? VIR_DOMAIN_EVENT_STOPPED_DESTROYED
		  : reason == VMTAB_REASON_FAILED    ? VIR_DOMAIN_EVENT_STOPPED_FAILED
						     : VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN;
}

/* ---- the connection ---- */

static int p_auth_list(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_auth_list_ret *r = ret;
	r->types.types_val = calloc(1, sizeof(remote_auth_type));
	if (!r->types.types_val)
		return VIR_ERR_NO_MEMORY;
	r->types.types_len = 1;
	r->types.types_val[0] = REMOTE_AUTH_NONE;
	return 0;
}

static int p_open(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_connect_open_args *a = args;
	const char *name = a->name ? *a->name : NULL;
	if (name && strncmp(name, "ftvm:", 5) != 0) {
		snprintf(err, errlen, "this daemon serves ftvm:///system, not %.200s", name);
		return VIR_ERR_NO_CONNECT;
	}
	c->open = true;
	return 0;
}

static int p_close(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	c->open = false;
	c->events = 0;
	return 0;
}

/* No optional feature (event callbacks, typed string params, keepalive, ...): clients fall back
 * to the basic procedures, which are the ones served here. */
static int p_supports_feature(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	((remote_connect_supports_feature_ret *)ret)->supported = 0;
	return 0;
}

static int p_get_type(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	return (((remote_connect_get_type_ret *)ret)->type = strdup("ftvm")) ? 0 : VIR_ERR_NO_MEMORY;
}

static int p_get_version(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	((remote_connect_get_version_ret *)ret)->hv_ver = FTVM_HV_VERSION;
	return 0;
}

static int p_get_lib_version(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	((remote_connect_get_lib_version_ret *)ret)->lib_ver = SPOKEN_LIB_VERSION;
	return 0;
}

static int p_get_hostname(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	return (((remote_connect_get_hostname_ret *)ret)->hostname = strdup(host)) ? 0 : VIR_ERR_NO_MEMORY;
}

static int p_get_uri(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	return (((remote_connect_get_uri_ret *)ret)->uri = strdup("ftvm:///system")) ? 0 : VIR_ERR_NO_MEMORY;
}

static int p_node_info(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_node_get_info_ret *r = ret;
	struct vmtab_node n;
	int e = vmtab_node_info(c->t, &n);
	if (e)
		return from_errno(e, err, errlen);
	memcpy(r->model, n.model, sizeof(r->model) < sizeof(n.model) ? sizeof(r->model) : sizeof(n.model));
	r->memory = n.memory_kib;
	r->cpus = (int)n.cpus;
	r->mhz = (int)n.mhz;
	r->nodes = (int)n.nodes;
	r->sockets = (int)n.sockets;
	r->cores = (int)n.cores;
	r->threads = (int)n.threads;
	return 0;
}

static int p_security_model(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	return 0;   /* none: empty model and DOI */
}

/* ---- listing and lookups ---- */

/* Whether a VM passes virConnectListAllDomains' filter flags (each group, when given, must match). */
static bool list_match(const struct vmtab_info *i, unsigned flags)
{
	bool active = i->state != VMTAB_SHUTOFF;
	unsigned act = flags & (VIR_CONNECT_LIST_DOMAINS_ACTIVE | VIR_CONNECT_LIST_DOMAINS_INACTIVE);
	unsigned per = flags & (VIR_CONNECT_LIST_DOMAINS_PERSISTENT | VIR_CONNECT_LIST_DOMAINS_TRANSIENT);
	unsigned st = flags & (VIR_CONNECT_LIST_DOMAINS_RUNNING | VIR_CONNECT_LIST_DOMAINS_PAUSED |
			       VIR_CONNECT_LIST_DOMAINS_SHUTOFF | VIR_CONNECT_LIST_DOMAINS_OTHER);
	unsigned mine = i->state == VMTAB_RUNNING  ? VIR_CONNECT_LIST_DOMAINS_RUNNING
			: i->state == VMTAB_PAUSED ? VIR_CONNECT_LIST_DOMAINS_PAUSED
			: i->state == VMTAB_SHUTOFF ? VIR_CONNECT_LIST_DOMAINS_SHUTOFF
						    : VIR_CONNECT_LIST_DOMAINS_OTHER;
	if (act && !(act & (active ? VIR_CONNECT_LIST_DOMAINS_ACTIVE : VIR_CONNECT_LIST_DOMAINS_INACTIVE)))
		return false;
	if (per && !(per & (i->persistent ? VIR_CONNECT_LIST_DOMAINS_PERSISTENT : VIR_CONNECT_LIST_DOMAINS_TRANSIENT)))
		return false;
	return !st || (st & mine);
}

static int p_list_all(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_connect_list_all_domains_args *a = args;
	remote_connect_list_all_domains_ret *r = ret;
	struct vmtab_info *v;
	size_t n, k = 0;
	int e = vmtab_list(c->t, &v, &n);
	if (e)
		return from_errno(e, err, errlen);
	if (n > REMOTE_DOMAIN_LIST_MAX)
		n = REMOTE_DOMAIN_LIST_MAX;
	r->domains.domains_val = a->need_results && n ? calloc(n, sizeof(remote_nonnull_domain)) : NULL;
	if (a->need_results && n && !r->domains.domains_val) {
		free(v);
		return VIR_ERR_NO_MEMORY;
	}
	for (size_t i = 0; i < n; i++) {
		if (!list_match(&v[i], a->flags))
			continue;
		if (a->need_results)
			dom_from_info(&r->domains.domains_val[k], &v[i]);
		k++;
	}
	free(v);
	r->domains.domains_len = a->need_results ? (u_int)k : 0;
	r->ret = (u_int)k;
	return 0;
}

static int lookup_answer(int e, const struct vmtab_info *i, void *ret, const char *what, char *err, size_t errlen)
{
	if (e) {
		snprintf(err, errlen, "Domain not found: no domain with matching %s", what);
		return VIR_ERR_NO_DOMAIN;
	}
	dom_from_info(&((remote_domain_lookup_by_name_ret *)ret)->dom, i);
	return 0;
}

static int p_lookup_name(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	const char *name = ((remote_domain_lookup_by_name_args *)args)->name;
	return lookup_answer(vmtab_lookup_name(c->t, name, &i), &i, ret, "name", err, errlen);
}

static int p_lookup_uuid(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	const char *uuid = ((remote_domain_lookup_by_uuid_args *)args)->uuid;
	return lookup_answer(vmtab_lookup_uuid(c->t, (const uint8_t *)uuid, &i), &i, ret, "uuid", err, errlen);
}

static int p_lookup_id(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	int id = ((remote_domain_lookup_by_id_args *)args)->id;
	return lookup_answer(id > 0 ? vmtab_lookup_id(c->t, id, &i) : -ENOENT, &i, ret, "id", err, errlen);
}

/* ---- one domain's facts ---- */

static int p_get_state(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_domain_get_state_ret *r = ret;
	struct vmtab_info i;
	int e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen);
	if (!e)
		r->state = state_of(&i, &r->reason);
	return e;
}

static int p_get_info(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_domain_get_info_ret *r = ret;
	struct vmtab_info i;
	int reason, e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen);
	if (e)
		return e;
	r->state = (u_char)state_of(&i, &reason);
	r->maxMem = i.max_mem_kib;
	r->memory = i.mem_kib;
	r->nrVirtCpu = (u_short)i.vcpus;
	r->cpuTime = i.cpu_time_ns;
	return 0;
}

static int p_get_os_type(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	int e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen);
	if (e)
		return e;
	return (((remote_domain_get_os_type_ret *)ret)->type = strdup("hvm")) ? 0 : VIR_ERR_NO_MEMORY;
}

/* The procedures answering one int about a VM (IS_PERSISTENT, IS_ACTIVE, GET_AUTOSTART, ...). */
#define DOM_INT_PROC(fn, expr)                                                                          \
	static int fn(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)            \
	{                                                                                               \
		struct vmtab_info i;                                                                    \
		int e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen);                       \
		if (!e)                                                                                 \
			*(int *)ret = (expr);                                                           \
		return e;                                                                               \
	}
DOM_INT_PROC(p_is_persistent, i.persistent)
DOM_INT_PROC(p_is_active, i.state != VMTAB_SHUTOFF)
DOM_INT_PROC(p_get_autostart, i.autostart)
DOM_INT_PROC(p_has_managed_save, 0)

static int p_get_xml(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	int e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen);
	if (e)
		return e;
	char *xml = vmtab_xml(c->t, i.name, err, errlen);
	if (!xml)
		return VIR_ERR_NO_DOMAIN;
	((remote_domain_get_xml_desc_ret *)ret)->xml = xml;
	return 0;
}

/* ---- changes ---- */

static int define(struct virt_conn *c, const char *xml, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	int e = vmtab_define(c->t, xml, &i, err, errlen);
	if (e)
		return e == -EINVAL ? VIR_ERR_XML_ERROR : from_errno(e, err, errlen);
	dom_from_info(&((remote_domain_define_xml_ret *)ret)->dom, &i);
	return 0;
}

static int p_define(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	return define(c, ((remote_domain_define_xml_args *)args)->xml, ret, err, errlen);
}

static int p_define_flags(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	return define(c, ((remote_domain_define_xml_flags_args *)args)->xml, ret, err, errlen);
}

typedef int vm_verb_fn(struct vmtab *t, const char *name, char *err, size_t errlen);

static int verb(struct virt_conn *c, void *args, vm_verb_fn *fn, char *err, size_t errlen)
{
	struct vmtab_info i;
	int e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen);
	if (e)
		return e;
	e = fn(c->t, i.name, err, errlen);
	return e ? from_errno(e, err, errlen) : 0;
}

/* The verbs, with and without flags (ftvm has no variants: the flags are ignored). */
#define VERB_PROC(fn, vmtab_fn)                                                                     \
	static int fn(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)        \
	{                                                                                           \
		return verb(c, args, vmtab_fn, err, errlen);                                        \
	}
VERB_PROC(p_undefine, vmtab_undefine)
VERB_PROC(p_shutdown, vmtab_shutdown)
VERB_PROC(p_destroy, vmtab_destroy)
VERB_PROC(p_suspend, vmtab_suspend)
VERB_PROC(p_resume, vmtab_resume)

/* virsh create FILE: a transient VM, started. */
static int p_create_xml(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	int e = vmtab_create(c->t, ((remote_domain_create_xml_args *)args)->xml_desc, &i, err, errlen);
	if (e)
		return e == -EINVAL ? VIR_ERR_XML_ERROR : from_errno(e, err, errlen);
	dom_from_info(&((remote_domain_create_xml_ret *)ret)->dom, &i);
	return 0;
}

/* virsh autostart [--disable] NAME: the daemon's autostart mark (docs/daemon.md). */
static int p_set_autostart(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_domain_set_autostart_args *a = args;
	struct vmtab_info i;
	int e = find(c, &a->dom, &i, err, errlen);
	if (e)
		return e;
	e = vmtab_set_autostart(c->t, i.name, a->autostart != 0, err, errlen);
	return e ? from_errno(e, err, errlen) : 0;
}

static int p_create(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	return verb(c, args, vmtab_start, err, errlen);
}

/* CREATE_WITH_FLAGS answers the domain as it is now (with its id). */
static int p_create_flags(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	struct vmtab_info i;
	int e = verb(c, args, vmtab_start, err, errlen);
	if (!e && (e = find(c, &((struct dom_args *)args)->dom, &i, err, errlen)) == 0)
		dom_from_info(&((remote_domain_create_with_flags_ret *)ret)->dom, &i);
	return e;
}

/* ---- events ---- */

static int p_event_register(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	int id = ((remote_connect_domain_event_register_any_args *)args)->eventID;
	if (id < 0 || id >= 64) {
		snprintf(err, errlen, "unsupported event ID %d", id);
		return VIR_ERR_INVALID_ARG;
	}
	c->events |= 1ull << id;
	return 0;
}

static int p_event_deregister(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	int id = ((remote_connect_domain_event_deregister_any_args *)args)->eventID;
	if (id < 0 || id >= 64 || !(c->events & (1ull << id))) {
		snprintf(err, errlen, "no callback registered for event ID %d", id);
		return VIR_ERR_INVALID_ARG;
	}
	c->events &= ~(1ull << id);
	return 0;
}

/* ---- domain stats ---- */

static int add_param(remote_domain_stats_record *rec, const char *field, int type, double d, unsigned long long ul,
		     long long l)
{
	if (rec->params.params_len >= STATS_MAX_PARAMS)
		return 0;
	remote_typed_param *p = &rec->params.params_val[rec->params.params_len];
	if (!(p->field = strdup(field)))
		return VIR_ERR_NO_MEMORY;
	p->value.type = type;
	if (type == VIR_TYPED_PARAM_DOUBLE)
		p->value.remote_typed_param_value_u.d = d;
	else if (type == VIR_TYPED_PARAM_ULLONG)
		p->value.remote_typed_param_value_u.ul = ul;
	else if (type == VIR_TYPED_PARAM_LLONG)
		p->value.remote_typed_param_value_u.l = l;
	else
		p->value.remote_typed_param_value_u.i = (int)l;
	rec->params.params_len++;
	return 0;
}

/* One VM's record, with the groups asked for (0: all): VIR_DOMAIN_STATS_STATE gives state.state and
 * state.reason, VIR_DOMAIN_STATS_CPU_TOTAL cpu.time; ftvm's own group, only when all are asked for
 * (libvirt has no bit for it), is the running VM's FT figures (vmtab_stats) as ft.NAME. */
static int stats_record(struct virt_conn *c, const struct vmtab_info *i, unsigned groups,
			remote_domain_stats_record *rec)
{
	int reason, state = state_of(i, &reason), e = 0;
	dom_from_info(&rec->dom, i);
	if (!(rec->params.params_val = calloc(STATS_MAX_PARAMS, sizeof(remote_typed_param))) || !rec->dom.name)
		return VIR_ERR_NO_MEMORY;
	if ((!groups || (groups & VIR_DOMAIN_STATS_STATE)) &&
	    ((e = add_param(rec, "state.state", VIR_TYPED_PARAM_INT, 0, 0, state)) ||
	     (e = add_param(rec, "state.reason", VIR_TYPED_PARAM_INT, 0, 0, reason))))
		return e;
	if (i->state == VMTAB_SHUTOFF)
		return 0;
	if ((!groups || (groups & VIR_DOMAIN_STATS_CPU_TOTAL)) &&
	    (e = add_param(rec, "cpu.time", VIR_TYPED_PARAM_ULLONG, 0, i->cpu_time_ns, 0)))
		return e;
	json_t *st = NULL;
	if (groups || (e = add_param(rec, "ft.instructions", VIR_TYPED_PARAM_ULLONG, 0, i->instructions, 0)) != 0 ||
	    vmtab_stats(c->t, i->name, &st))
		return e;   /* not asked for, or not answering right now: the record without FT figures */
	const char *key;
	json_t *val;
	char field[96];
	json_object_foreach(st, key, val) {
		snprintf(field, sizeof(field), "ft.%s", key);
		if (json_is_integer(val) && json_integer_value(val) >= 0)
			e = add_param(rec, field, VIR_TYPED_PARAM_ULLONG, 0, (unsigned long long)json_integer_value(val), 0);
		else if (json_is_integer(val))
			e = add_param(rec, field, VIR_TYPED_PARAM_LLONG, 0, 0, json_integer_value(val));
		else if (json_is_real(val))
			e = add_param(rec, field, VIR_TYPED_PARAM_DOUBLE, json_real_value(val), 0, 0);
		else if (json_is_boolean(val))
			e = add_param(rec, field, VIR_TYPED_PARAM_BOOLEAN, 0, 0, json_is_true(val));
		if (e)
			break;
	}
	json_decref(st);
	return e;
}

static int p_all_stats(struct virt_conn *c, void *args, void *ret, char *err, size_t errlen)
{
	remote_connect_get_all_domain_stats_args *a = args;
	remote_connect_get_all_domain_stats_ret *r = ret;
	struct vmtab_info *v = NULL;
	size_t n = 0;
	int e = 0;

	if (a->doms.doms_len) {   /* virDomainListGetStats: these VMs, in this order */
		if (!(v = calloc(a->doms.doms_len, sizeof(*v))))
			return VIR_ERR_NO_MEMORY;
		for (; n < a->doms.doms_len && !e; n++)
			e = find(c, &a->doms.doms_val[n], &v[n], err, errlen);
	} else {
		unsigned filter = a->flags & (VIR_CONNECT_LIST_DOMAINS_ACTIVE | VIR_CONNECT_LIST_DOMAINS_INACTIVE |
					      VIR_CONNECT_LIST_DOMAINS_PERSISTENT | VIR_CONNECT_LIST_DOMAINS_TRANSIENT |
					      VIR_CONNECT_LIST_DOMAINS_RUNNING | VIR_CONNECT_LIST_DOMAINS_PAUSED |
					      VIR_CONNECT_LIST_DOMAINS_SHUTOFF | VIR_CONNECT_LIST_DOMAINS_OTHER);
		size_t all, k = 0;
		if ((e = vmtab_list(c->t, &v, &all)) != 0)
			return from_errno(e, err, errlen);
		for (size_t i = 0; i < all; i++)
			if (list_match(&v[i], filter))
				v[k++] = v[i];
		n = k;
	}
	if (n > REMOTE_DOMAIN_LIST_MAX)
		n = REMOTE_DOMAIN_LIST_MAX;
	if (!e && n && !(r->retStats.retStats_val = calloc(n, sizeof(remote_domain_stats_record))))
		e = VIR_ERR_NO_MEMORY;
	for (size_t i = 0; !e && i < n; i++) {
		r->retStats.retStats_len++;
		e = stats_record(c, &v[i], a->stats, &r->retStats.retStats_val[i]);
	}
	free(v);
	return e;
}

/* ---- the table ---- */

/* libtirpc's xdr_void is declared without parameters: this one has an xdrproc_t's. */
bool_t virt_xdr_none(XDR *x, void *obj)
{
	return TRUE;
}

static const struct virt_proc procs[] = {
#define ENTRY(...) ENTRY_(__VA_ARGS__)
#define ENTRY_(num, axdr, asize, rxdr, rsize, f, pre)                                                   \
	{ .proc = REMOTE_PROC_##num, .args_xdr = (xdrproc_t)(axdr), .args_size = (asize),             \
	  .ret_xdr = (xdrproc_t)(rxdr), .ret_size = (rsize), .fn = (f), .before_open = (pre) }
#define SLOW_ENTRY(...) SLOW_ENTRY_(__VA_ARGS__)
#define SLOW_ENTRY_(num, axdr, asize, rxdr, rsize, f)                                                   \
	{ .proc = REMOTE_PROC_##num, .args_xdr = (xdrproc_t)(axdr), .args_size = (asize),             \
	  .ret_xdr = (xdrproc_t)(rxdr), .ret_size = (rsize), .fn = (f), .slow = true }
#define A(t) xdr_remote_##t##_args, sizeof(remote_##t##_args)
#define R(t) xdr_remote_##t##_ret, sizeof(remote_##t##_ret)
#define NO virt_xdr_none, 0
	ENTRY(AUTH_LIST, NO, R(auth_list), p_auth_list, true),
	ENTRY(CONNECT_OPEN, A(connect_open), NO, p_open, true),
	ENTRY(CONNECT_CLOSE, NO, NO, p_close, true),
	ENTRY(CONNECT_SUPPORTS_FEATURE, A(connect_supports_feature), R(connect_supports_feature), p_supports_feature, true),
	ENTRY(CONNECT_GET_TYPE, NO, R(connect_get_type), p_get_type, false),
	ENTRY(CONNECT_GET_VERSION, NO, R(connect_get_version), p_get_version, false),
	ENTRY(CONNECT_GET_LIB_VERSION, NO, R(connect_get_lib_version), p_get_lib_version, false),
	ENTRY(CONNECT_GET_HOSTNAME, NO, R(connect_get_hostname), p_get_hostname, false),
	ENTRY(CONNECT_GET_URI, NO, R(connect_get_uri), p_get_uri, false),
	ENTRY(NODE_GET_INFO, NO, R(node_get_info), p_node_info, false),
	ENTRY(NODE_GET_SECURITY_MODEL, NO, R(node_get_security_model), p_security_model, false),
	ENTRY(CONNECT_LIST_ALL_DOMAINS, A(connect_list_all_domains), R(connect_list_all_domains), p_list_all, false),
	ENTRY(DOMAIN_LOOKUP_BY_NAME, A(domain_lookup_by_name), R(domain_lookup_by_name), p_lookup_name, false),
	ENTRY(DOMAIN_LOOKUP_BY_UUID, A(domain_lookup_by_uuid), R(domain_lookup_by_uuid), p_lookup_uuid, false),
	ENTRY(DOMAIN_LOOKUP_BY_ID, A(domain_lookup_by_id), R(domain_lookup_by_id), p_lookup_id, false),
	ENTRY(DOMAIN_GET_STATE, A(domain_get_state), R(domain_get_state), p_get_state, false),
	ENTRY(DOMAIN_GET_INFO, A(domain_get_info), R(domain_get_info), p_get_info, false),
	ENTRY(DOMAIN_GET_OS_TYPE, A(domain_get_os_type), R(domain_get_os_type), p_get_os_type, false),
	ENTRY(DOMAIN_IS_PERSISTENT, A(domain_is_persistent), R(domain_is_persistent), p_is_persistent, false),
	ENTRY(DOMAIN_IS_ACTIVE, A(domain_is_active), R(domain_is_active), p_is_active, false),
	ENTRY(DOMAIN_GET_AUTOSTART, A(domain_get_autostart), R(domain_get_autostart), p_get_autostart, false),
	ENTRY(DOMAIN_SET_AUTOSTART, A(domain_set_autostart), NO, p_set_autostart, false),
	ENTRY(DOMAIN_HAS_MANAGED_SAVE_IMAGE, A(domain_has_managed_save_image), R(domain_has_managed_save_image),
	      p_has_managed_save, false),
	ENTRY(DOMAIN_GET_XML_DESC, A(domain_get_xml_desc), R(domain_get_xml_desc), p_get_xml, false),
	ENTRY(DOMAIN_DEFINE_XML, A(domain_define_xml), R(domain_define_xml), p_define, false),
	ENTRY(DOMAIN_DEFINE_XML_FLAGS, A(domain_define_xml_flags), R(domain_define_xml_flags), p_define_flags, false),
	ENTRY(DOMAIN_UNDEFINE, A(domain_undefine), NO, p_undefine, false),
	ENTRY(DOMAIN_UNDEFINE_FLAGS, A(domain_undefine_flags), NO, p_undefine, false),
	ENTRY(DOMAIN_CREATE, A(domain_create), NO, p_create, false),
	ENTRY(DOMAIN_CREATE_XML, A(domain_create_xml), R(domain_create_xml), p_create_xml, false),
	ENTRY(DOMAIN_CREATE_WITH_FLAGS, A(domain_create_with_flags), R(domain_create_with_flags), p_create_flags, false),
	ENTRY(DOMAIN_SHUTDOWN, A(domain_shutdown), NO, p_shutdown, false),
	ENTRY(DOMAIN_SHUTDOWN_FLAGS, A(domain_shutdown_flags), NO, p_shutdown, false),
	ENTRY(DOMAIN_DESTROY, A(domain_destroy), NO, p_destroy, false),
	ENTRY(DOMAIN_DESTROY_FLAGS, A(domain_destroy_flags), NO, p_destroy, false),
	ENTRY(DOMAIN_SUSPEND, A(domain_suspend), NO, p_suspend, false),
	ENTRY(DOMAIN_RESUME, A(domain_resume), NO, p_resume, false),
	SLOW_ENTRY(CONNECT_GET_ALL_DOMAIN_STATS, A(connect_get_all_domain_stats), R(connect_get_all_domain_stats),
		   p_all_stats),
	ENTRY(CONNECT_DOMAIN_EVENT_REGISTER_ANY, A(connect_domain_event_register_any), NO, p_event_register, false),
	ENTRY(CONNECT_DOMAIN_EVENT_DEREGISTER_ANY, A(connect_domain_event_deregister_any), NO, p_event_deregister,
	      false),
};

const struct virt_proc *virt_proc_find(int proc)
{
	for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++)
		if (procs[i].proc == proc)
			return &procs[i];
	return NULL;
}
