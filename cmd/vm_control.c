/*
 * vm_control.c — see vm_control.h.
 */
#include "cmd/vm_control.h"

#include <errno.h>
#include <string.h>

#include "vm/machine.h"

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
	vm_control_lock(vc);
	icount_t now = vc->c->m ? machine_progress(vc->c->m) : 0;
	vm_control_unlock(vc);
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
	};
	control_options_start(co, vc->role, &cc, ctl);
}
