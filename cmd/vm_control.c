/*
 * vm_control.c — see vm_control.h.
 */
#define DIAG_MODULE "run"
#include "cmd/vm_control.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/diag.h"

#include "vm/machine.h"
#include <stdatomic.h>

int vm_control_init(struct vm_control *vc, const char *role, struct vm_command *c, control_status_fn *ft_status,
		    void *ft_ctx)
{
	memset(vc, 0, sizeof(*vc));
	int ret = pthread_mutex_init(&vc->lock, NULL);
	if (ret)
		return -ret;
	vc->role = role;
	vc->c = c;
	vc->ft_status = ft_status;
	vc->ft_ctx = ft_ctx;
	vc->inited = true;
	return 0;
}

void vm_control_lock(struct vm_control *vc)
{
	if (vc->inited)
		pthread_mutex_lock(&vc->lock);
}

void vm_control_unlock(struct vm_control *vc)
{
	if (vc->inited)
		pthread_mutex_unlock(&vc->lock);
}

void vm_control_destroy(struct vm_control *vc)
{
	if (vc->inited)
		pthread_mutex_destroy(&vc->lock);
	vc->inited = false;
}

static void ft_status(void *ctx, struct ft_status *st)
{
	struct vm_control *vc = ctx;
	vc->ft_status(vc->ft_ctx, st);
}

/* A node without FT: who it is and how far its guest got. */
static void status_fields(void *ctx, json_t *answer)
{
	struct vm_control *vc = ctx;
	if (vc->ft_status)
		return;
	/* A job (a migration) may hold the machine for long: status does not wait for it. */
	icount_t now = atomic_load(&vc->last_icount);
	if (!vc->inited || pthread_mutex_trylock(&vc->lock) == 0) {
		now = vc->c->m ? machine_progress(vc->c->m) : 0;
		atomic_store(&vc->last_icount, now);
		vm_control_unlock(vc);
	}
	json_object_set_new(answer, "role", json_string(vc->role));
	json_object_set_new(answer, "state", json_string("running"));
	json_object_set_new(answer, "icount", json_integer((json_int_t)now));
}

void vm_control_start(struct vm_control *vc, const struct control_options *co, struct control_server **ctl)
{
	struct control_config cc = {
		.status = vc->ft_status ? ft_status : NULL,
		.status_fields = status_fields,
		.ctx = vc,
		.commands = vc->commands,
		.ncommands = vc->ncommands,
	};
	vc->vm_name = co->vm;
	control_options_start(co, vc->role, &cc, ctl);
}

int vm_control_run_live(struct vm_control *vc, char *err, size_t errlen)
{
	struct vm_command *c = vc->c;
	enum machine_exit why;
	int status;
	for (;;) {
		why = machine_run(c->m, world_live_world(c->world), ICOUNT_MAX, &status);
		diag_info("machine stopped (%d, status %d) at icount %llu", why, status,
			  (unsigned long long)machine_icount(c->m));
		world_live_flush(c->world);
		if (why != MACHINE_EXIT_RESET || c->opts.no_reboot)
			break;
		vm_control_lock(vc);
		machine_destroy(c->m);
		c->m = NULL;
		world_live_reset(c->world);
		int ret = machine_create(&c->mc, &c->m, err, errlen);
		vm_control_unlock(vc);
		if (ret)
			return ret;
	}
	/* A job (a migration) uses the machine and the live world under the lock: let it end before
	 * the world goes away (a guest that powered off meanwhile is migrated powered off). */
	vm_control_lock(vc);
	vm_control_unlock(vc);
	if (c->world && world_live_handed_over(c->world)) {
		/* The migration's job ends with the hand-over: keep answering status a moment, so
		 * `ftvm migrate` reads the outcome before this node's socket goes away. */
		nanosleep(&(struct timespec){ .tv_nsec = 600 * 1000 * 1000 }, NULL);
	}
	return vm_command_finish(c, why, status, NULL);
}
