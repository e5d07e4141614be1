/*
 * vmtab_internal.h — what the table's three files share (vmtab.h is the interface): the table and
 * its VMs, and the functions one file offers the others. vmtab.c: the table, its lookups and its
 * verbs; vmtab_watch.c: the monitor thread, the VMs' statuses and stats; vmtab_store.c: the state
 * directory. The locking rules are vmtab.c's (its header comment): every function here but
 * vmtab_make_dir and vmtab_refresh_all expects the table's lock to be held.
 */
#ifndef FTVM_DAEMON_VMTAB_INTERNAL_H
#define FTVM_DAEMON_VMTAB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/domain_doc.h"
#include "daemon/vm_proc.h"
#include "daemon/vmtab.h"
#include "util/compiler.h"


enum ask { ASK_NONE, ASK_SHUTDOWN, ASK_DESTROY };

struct vm {
	char name[VMTAB_NAME_MAX];
	uint8_t uuid[16];
	uint64_t mem_kib;
	char role[16];              /* the ftvm command it runs under */
	char *xml;
	struct domain_run_ft *run_ft;  /* domain_doc's: given to `ftvm run` (NULL: none) */
	enum vmtab_state state;
	enum vmtab_reason reason;
	struct vm_proc proc;        /* pid 0: no process */
	enum ask asked;
	bool control_busy;          /* a pause or resume request is out (vmtab.c, 2.) */
	bool failed_over;           /* this run's backup went live */
	bool transient;             /* created, not defined: run/NAME.xml, gone when its process ends */
	bool autostart;             /* the notes of vmtab_store.c */
	bool spare;
	char pair[128];
	char ft_role[16];
	uint64_t instructions;
};

struct subscriber {
	int handle;
	vmtab_event_fn fn;
	void *opaque;
};

struct vmtab {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	char vms_dir[4096], run_dir[4096], ftvm[4096];
	unsigned poll_ms;
	struct vm **vms;            /* sorted by name */
	size_t n, cap;
	int next_id;
	struct subscriber *subs;
	size_t nsubs;
	int next_handle;
	int wake_fd;
	bool stop;
	pthread_t monitor;
};

/* A running VM's name and run id, copied under the lock for a request made without it. */
struct running {
	char name[VMTAB_NAME_MAX];
	int id;
};

/* vmtab.c */
/* Removes a transient VM whose process ended from the table, with its definition (under the lock). */
void vmtab_forget_transient(struct vmtab *t, struct vm *vm);
bool vmtab_has_process(const struct vm *vm);
void vmtab_emit(struct vmtab *t, const struct vm *vm, enum vmtab_event ev, enum vmtab_reason detail);
/* By name (binary search; *pos: where it is or would go), by UUID. */
struct vm *vmtab_find_name(struct vmtab *t, const char *name, size_t *pos);
struct vm *vmtab_find_uuid(struct vmtab *t, const uint8_t uuid[16]);
int vmtab_insert(struct vmtab *t, struct vm *vm) FTVM_MUST_CHECK;
void vmtab_vm_free(struct vm *vm);
/* Takes the definition's fields and its XML (doc->xml becomes NULL). */
void vmtab_take_doc(struct vm *vm, struct domain_doc *doc);
void vmtab_wake_monitor(struct vmtab *t);
/* A VM with a process, for a verb: 0, or -ENOENT / -EBUSY with err (*out set when it exists). */
int vmtab_running_vm(struct vmtab *t, const char *name, const char *verb, struct vm **out, char *err,
		     size_t errlen) FTVM_MUST_CHECK;

/* vmtab_watch.c */
void *vmtab_watch_main(void *arg);
/* Reads every running VM's status and applies it (takes the lock itself). */
void vmtab_refresh_all(struct vmtab *t);
/* The VM of r if it is still in that run, else NULL. */
struct vm *vmtab_same_run(struct vmtab *t, const struct running *r);

/* vmtab_store.c */
void vmtab_xml_path(const struct vmtab *t, const char *name, char *buf, size_t len);
/* Where vm's definition is: vms/NAME.xml, or run/NAME.xml for a transient VM. */
void vmtab_def_path(const struct vmtab *t, const struct vm *vm, char *buf, size_t len);
int vmtab_store_xml(struct vmtab *t, const struct vm *vm, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Notes beside a definition, vms/NAME.EXT: */
#define VMTAB_NOTE_AUTOSTART "autostart" /* (empty) start the VM with the daemon */
#define VMTAB_NOTE_SPARE "spare"         /* (empty) this host holds the pair's backup half: `ftvm spare` */
#define VMTAB_NOTE_PAIR "pair"           /* HOST:PORT of the daemon holding the other half */
/* Writes vms/NAME.EXT with text, or removes it (text NULL), durably. */
int vmtab_store_note(struct vmtab *t, const char *name, const char *ext, const char *text, char *err,
		     size_t errlen) FTVM_MUST_CHECK;
int vmtab_make_dir(const char *path, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Loads every definition, and finds the processes an earlier daemon left running. */
int vmtab_load_all(struct vmtab *t, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
