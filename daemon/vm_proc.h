/*
 * vm_proc.h — a VM's `ftvm` process as the daemon sees it: started in a session of its own (so
 * that neither a daemon crash nor a signal to the daemon's process group reaches it), with its
 * control socket, pid file and console log under the state directory's run/ folder; found again
 * by a restarted daemon through the pid file, checked against /proc so that a recycled pid is
 * never taken for the VM; watched through a pidfd.
 *
 * Files, for a VM NAME in RUN = STATE_DIR/run:
 *   RUN/NAME.pid    "PID ID ROLE\n", written once the process exists, removed when it has ended
 *   RUN/NAME.sock   its control socket (docs/control.md)
 *   RUN/NAME.log    its standard output and error (the guest console and the node's messages)
 */
#ifndef FTVM_DAEMON_VM_PROC_H
#define FTVM_DAEMON_VM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "util/compiler.h"

struct vm_proc {
	pid_t pid;
	int pidfd;            /* readable once the process has ended; -1: none */
	int id;
	bool child;           /* started by this daemon: its exit status can be collected */
	char role[16];        /* "run", "primary", "backup" or "spare": the ftvm subcommand */
};

/* Starts `ftvm ROLE --domain XML_PATH --vm NAME --control RUN/NAME.sock [EXTRA...]` (extra: up to
 * VM_PROC_EXTRA_MAX more arguments, NULL-terminated, or NULL), writes the pid file. */
#define VM_PROC_EXTRA_MAX 10
int vm_proc_start(const char *ftvm, const char *run_dir, const char *name, const char *xml_path, const char *role,
		  const char *const *extra, int id, struct vm_proc *p, char *err, size_t errlen) FTVM_MUST_CHECK;
/* A process left by an earlier daemon: 0 when RUN/NAME.pid names a live `ftvm` process whose
 * command line holds this VM's control socket; -ESRCH otherwise (the stale pid file removed). */
int vm_proc_adopt(const char *run_dir, const char *name, struct vm_proc *p) FTVM_MUST_CHECK;
/* After the pidfd turned readable: true once the process has ended, with its wait status (-1 when
 * it was not this daemon's child). Removes the pid file then. */
bool vm_proc_reap(const char *run_dir, const char *name, struct vm_proc *p, int *wstatus);
void vm_proc_release(struct vm_proc *p);
int vm_proc_signal(const struct vm_proc *p, int sig) FTVM_MUST_CHECK;
/* CPU time used by the process so far, from /proc (0 when it cannot be read). */
uint64_t vm_proc_cpu_ns(const struct vm_proc *p);

/* The control socket's path into buf; -ENAMETOOLONG when it does not fit a socket address. */
int vm_proc_socket(const char *run_dir, const char *name, char *buf, size_t len) FTVM_MUST_CHECK;
/* {"cmd":cmd} to the VM's control socket: the answer object (caller's reference) when "ok" is
 * true; NULL with the reason in err otherwise. */
json_t *vm_proc_ask(const char *run_dir, const char *name, const char *cmd, char *err, size_t errlen);
/* The same with a whole request object. */
json_t *vm_proc_ask_json(const char *run_dir, const char *name, const json_t *req, char *err, size_t errlen);

#endif
