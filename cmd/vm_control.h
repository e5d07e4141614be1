/*
 * vm_control.h — the control socket of a node that runs a VM (`ftvm run`, `ftvm primary`): its
 * status and the commands that act on the VM (docs/control.md), served by common/control.c.
 *
 * The commands' jobs run on the control socket's job thread and reach the machine through
 * c->m; a role that replaces its machine (`ftvm run` on a guest reset) does it between
 * vm_control_lock() and vm_control_unlock(), the writer's side of a lock whose reader's side every
 * job and status read hold, so no control thread ever sees a machine that is being destroyed, and
 * status is answered while a job runs. vm_command.c stops the socket, and
 * so joins any job, before the machine is destroyed at the end.
 */
#ifndef FTVM_CMD_VM_CONTROL_H
#define FTVM_CMD_VM_CONTROL_H

#include <pthread.h>
#include <stdbool.h>
#include "cmd/control_options.h"
#include "cmd/vm_command.h"
#include "common/control.h"
#include "migrate/mig_source.h"
#include "util/compiler.h"

struct vm_control {
	const char *role;                 /* "run" or "primary": the status's role, the socket's name */
	struct vm_command *c;
	control_status_fn *ft_status;     /* the FT primary's status, or NULL */
	void *ft_ctx;
	pthread_rwlock_t lock;            /* c->m: read by control threads, replaced by the role */
	const char *vm_name;              /* --vm NAME (set by vm_control_start) */
	/* Commands besides the node's own (snapshot), set by the role before vm_control_start(). */
	const struct control_command *extra;
	size_t nextra;
	struct control_command commands[CONTROL_MAX_COMMANDS]; /* what the socket serves */
	bool paused;                      /* held by the `pause` command (control server thread only) */
	/* The VM's arbiter area, where a migration records its hand-over (path NULL: none); set by
	 * the role before vm_control_start(), then read and moved on by the migrate job only. */
	struct mig_arbiter arbiter;
	/* Called once the machine's run ended, before the live world goes (may be NULL). */
	void (*run_ended)(void *ctx);
	void *run_ended_ctx;
	bool inited;
};

/* 0 or -errno. ft_status (may be NULL) fills the FT fields of status. */
int vm_control_init(struct vm_control *vc, const char *role, struct vm_command *c, control_status_fn *ft_status,
		    void *ft_ctx) FTVM_MUST_CHECK;
/* Starts the node's control socket (a warning and none when it cannot). */
void vm_control_start(struct vm_control *vc, const struct control_options *co, struct control_server **ctl);
void vm_control_lock(struct vm_control *vc);
void vm_control_unlock(struct vm_control *vc);
/*
 * The run of a node without FT (`ftvm run`, `ftvm incoming` once handed over): the machine in
 * its live world until the guest powers off; a guest reset builds the machine anew under the lock.
 * Ends with vm_command_finish(): the exit status, or -errno with err.
 */
int vm_control_run_live(struct vm_control *vc, char *err, size_t errlen);
/* After the socket stopped; harmless on a vm_control never initialised (zeroed). */
void vm_control_destroy(struct vm_control *vc);

#endif
