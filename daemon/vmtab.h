/*
 * vmtab.h — the host daemon's table of VMs: the one interface between what ftvmd knows and
 * does (VMs defined by domain XML, kept in its state directory, each running VM its own `ftvm`
 * process reached through that process's control socket) and the front ends that expose it
 * (libvirt's RPC protocol for virsh and python-libvirt, the daemon's JSON socket, the Prometheus
 * metrics). The front ends translate; they never look at processes, files or sockets themselves.
 *
 * Every function is safe to call from any thread at any time. Names are 1..63 bytes without '/';
 * UUIDs are the 16 raw bytes of RFC 4122. Errors: a negative errno, with a message for a user in
 * err where the function takes one (-ENOENT: no such VM, -EEXIST: a name or UUID already taken,
 * -EBUSY: the VM is not in a state that allows it, -EINVAL: bad XML or argument, -ENOTSUP:
 * ftvm cannot do that).
 */
#ifndef FTVM_DAEMON_VMTAB_H
#define FTVM_DAEMON_VMTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "util/compiler.h"

#define VMTAB_NAME_MAX 64 /* with the NUL */

struct vmtab;

/* The daemon's own run states; the libvirt front end maps them to virDomainState. */
enum vmtab_state {
	VMTAB_SHUTOFF,  /* defined, no process */
	VMTAB_RUNNING,
	VMTAB_PAUSED,   /* vCPU paused on request */
	VMTAB_STOPPING, /* a shutdown was asked for and the process has not exited yet */
	VMTAB_CRASHED,  /* the process died without being asked to stop */
};

/* Why the VM is in its state (the libvirt front end maps these to the *Reason enums). */
enum vmtab_reason {
	VMTAB_REASON_UNKNOWN,
	VMTAB_REASON_BOOTED,      /* running: started by the daemon */
	VMTAB_REASON_FAILED_OVER, /* running: this host's backup took over from a dead primary */
	VMTAB_REASON_USER,        /* paused, or shut off by shutdown/destroy */
	VMTAB_REASON_SHUTDOWN,    /* shut off: the guest powered off */
	VMTAB_REASON_DESTROYED,
	VMTAB_REASON_FAILED,      /* crashed / shut off: the process failed */
};

struct vmtab_info {
	char name[VMTAB_NAME_MAX];
	uint8_t uuid[16];
	int id;                   /* > 0 while it has a process (stable for that run), else -1 */
	enum vmtab_state state;
	enum vmtab_reason reason;
	uint64_t max_mem_kib;     /* from the definition */
	uint64_t mem_kib;         /* current guest RAM (= max_mem_kib: no ballooning) */
	unsigned vcpus;           /* 1 */
	uint64_t cpu_time_ns;     /* CPU time used by the VM's process this run, 0 when shut off */
	uint64_t instructions;    /* guest instructions retired this run */
	bool persistent;          /* true: defined in the state directory; false: transient (vmtab_create) */
	bool autostart;
	char ft_role[16];         /* "off", "primary", "backup", "spare", "alone" (lost its peer), "" when shut off */
	bool ft_spare;            /* this host holds the pair's backup half: it runs under `ftvm spare` */
	char ft_pair[128];        /* HOST:PORT of the daemon holding the pair's other half, "" if none */
};

/* One change of a VM, delivered to every subscriber in the order the daemon saw them. */
enum vmtab_event {
	VMTAB_EV_DEFINED,
	VMTAB_EV_UNDEFINED,
	VMTAB_EV_STARTED,
	VMTAB_EV_SUSPENDED,
	VMTAB_EV_RESUMED,         /* detail VMTAB_REASON_FAILED_OVER: it resumed on this host after a failover */
	VMTAB_EV_STOPPED,         /* detail: VMTAB_REASON_SHUTDOWN, _DESTROYED or _FAILED */
};

typedef void (*vmtab_event_fn)(const struct vmtab_info *vm, enum vmtab_event ev,
			       enum vmtab_reason detail, void *opaque);

/* The host, for nodeinfo. */
struct vmtab_node {
	char model[32];           /* the host CPU architecture, e.g. "x86_64" */
	uint64_t memory_kib;
	unsigned cpus, mhz, nodes, sockets, cores, threads;
};

/* All VMs, defined and transient, sorted by name: *out (caller frees) holds *n entries. */
int vmtab_list(struct vmtab *t, struct vmtab_info **out, size_t *n) FTVM_MUST_CHECK;
int vmtab_lookup_name(struct vmtab *t, const char *name, struct vmtab_info *out) FTVM_MUST_CHECK;
int vmtab_lookup_uuid(struct vmtab *t, const uint8_t uuid[16], struct vmtab_info *out) FTVM_MUST_CHECK;
int vmtab_lookup_id(struct vmtab *t, int id, struct vmtab_info *out) FTVM_MUST_CHECK;

/* Defines (or redefines, same name and UUID, while shut off) a VM from domain XML; a missing
 * <uuid> is generated. The definition survives a daemon restart. */
int vmtab_define(struct vmtab *t, const char *xml, struct vmtab_info *out, char *err, size_t errlen) FTVM_MUST_CHECK;
int vmtab_undefine(struct vmtab *t, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Creates and starts a transient VM (libvirt's createXML): not persistent, its definition kept in
 * STATE_DIR/run while it runs (a restarted daemon finds it), gone from the table when its process
 * ends. -EEXIST when the name or UUID is taken. */
int vmtab_create(struct vmtab *t, const char *xml, struct vmtab_info *out, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The definition as domain XML (caller frees), with the UUID in it. */
char *vmtab_xml(struct vmtab *t, const char *name, char *err, size_t errlen);

/* Marks (on) or unmarks a defined VM to be started by every daemon that opens the table while
 * the VM is not running (STATE_DIR/vms/NAME.autostart, docs/daemon.md). */
int vmtab_set_autostart(struct vmtab *t, const char *name, bool on, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Marks (on) or unmarks a VM as the backup half of an FT pair made by the daemons (docs/daemon.md,
 * "FT pairing"): it then runs under `ftvm spare`, waiting for its primary's clone. */
int vmtab_set_spare(struct vmtab *t, const char *name, bool on, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Records (hostport) or forgets (NULL) the daemon that holds the other half of the VM's pair. */
int vmtab_set_pair(struct vmtab *t, const char *name, const char *hostport, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The running VM's `ft` control command: action "enable" (an FT clone to the spare at peer) or
 * "disable" (peer NULL). -EBUSY when it is not running, -EIO when the node refused (err says why). */
int vmtab_ft(struct vmtab *t, const char *name, const char *action, const char *peer, char *err,
	     size_t errlen) FTVM_MUST_CHECK;
/* Starts every VM marked autostart that has no process; the failures are logged. */
void vmtab_autostart_all(struct vmtab *t);

int vmtab_start(struct vmtab *t, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;
int vmtab_shutdown(struct vmtab *t, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;
int vmtab_destroy(struct vmtab *t, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;
int vmtab_suspend(struct vmtab *t, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;
int vmtab_resume(struct vmtab *t, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;

/* The running VM's figures as a JSON object of numbers (FT state, lag, log bytes and records,
 * outputs held, failovers, ...: the node's control-socket status, flattened; clone_phase as a
 * number, a migration job's progress as migration_bytes, migration_remaining_bytes and
 * migration_running); *out is the
 * caller's reference. -EBUSY when it is not running. */
int vmtab_stats(struct vmtab *t, const char *name, json_t **out) FTVM_MUST_CHECK;
/* The name of stats' clone_phase number i ("setup", "precopy", ...), NULL past the last. */
const char *vmtab_clone_phase_name(int i);

int vmtab_node_info(struct vmtab *t, struct vmtab_node *out) FTVM_MUST_CHECK;

/* Subscribes fn to every later event; returns a handle > 0 for vmtab_unsubscribe, or -errno.
 * fn runs on a daemon thread and must not block or call back into the table. */
int vmtab_subscribe(struct vmtab *t, vmtab_event_fn fn, void *opaque) FTVM_MUST_CHECK;
void vmtab_unsubscribe(struct vmtab *t, int handle);

/* The daemon's side: the table over a state directory (docs/daemon.md):
 *   STATE_DIR/vms/NAME.xml   each definition, with its UUID
 *   STATE_DIR/run/           each running VM's pid file, control socket and log (daemon/vm_proc.h)
 * Opening it loads the definitions and finds the VMs still running from an earlier daemon; closing
 * it leaves every VM running. */
struct vmtab_config {
	const char *state_dir;
	const char *ftvm;         /* the ftvm command a VM runs under */
	unsigned poll_ms;         /* how often a running VM's status is read; 0: 500 */
};

int vmtab_open(const struct vmtab_config *cfg, struct vmtab **out, char *err, size_t errlen) FTVM_MUST_CHECK;
void vmtab_close(struct vmtab *t);

const char *vmtab_state_name(enum vmtab_state s);
const char *vmtab_reason_name(enum vmtab_reason r);
const char *vmtab_event_name(enum vmtab_event e);

#endif
