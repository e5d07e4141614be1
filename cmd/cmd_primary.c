/*
 * cmd_primary.c — `ftvm primary --peer HOST:PORT --arbiter PATH [FT options] [run options]`:
 * run a VM as the primary of an FT pair.
 *
 * The backup must be listening (start it first). The primary boots the guest, streams the log from
 * icount 0, holds outputs under the Output Rule and, if the backup is lost, claims the arbiter:
 * it runs on alone when it wins and halts the VM for good when it loses. Status on the control
 * socket (`ftvm status`). Exit status: the guest's when it powers off; 1 on errors; 6 when this
 * node lost the arbiter and halted. The steps shared with the other subcommands that run a VM
 * are vm_command.c's; this file is the role: the FT primary, its channel and control socket
 * (cmd/vm_control.c: status, and `snapshot`, which holds the vCPU only for its final copy while
 * the backup simply waits for more log).
 */
#define DIAG_MODULE "primary"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/ft_node.h"
#include "cmd/ft_options.h"
#include "logchannel/channel.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/run_options.h"
#include "cmd/vm_command.h"
#include "cmd/vm_control.h"
#include "cmd/vm_ft.h"
#include "cmd/vm_migrate.h"
#include "host/world_live.h"
#include "primary/ft_primary.h"
#include "util/diag.h"
#include "vm/machine.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm primary --peer HOST:PORT --arbiter PATH [FT options] [run options]\n\n"
		     "Runs a VM as the primary of a fault-tolerant pair: records every input, streams the log to\n"
		     "the backup at HOST:PORT (`ftvm backup --listen`, started first), holds every output until\n"
		     "the backup has acknowledged the log that produced it, and on losing the backup claims the\n"
		     "arbiter: it runs on alone when it wins, halts the VM for good when it loses.\n\n"
		     "FT options:\n"
		     "  --peer HOST:PORT    the backup's logging-channel address, required\n"
		     "  --max-lag MS        slow the vCPU while the backup is more than MS behind in time\n"
		     "                      (default %d; 0: never)\n", FT_DEFAULT_MAX_LAG_MS);
	ft_options_help(out);
	fprintf(out, "\nexit status: the guest's on power-off; 6 lost the arbiter and halted; 1 errors\n\nrun options:\n");
	run_options_help(out);
}

struct primary_cmd {
	struct ft_options fo;
	struct channel_key key;
	struct ft_primary *p;
	struct ft_node *node;        /* with --spare: the node restoring redundancy (cmd/ft_node.h) */
	struct vm_control vc;
	struct control_command commands[2]; /* migrate (refused on a primary), ft */
};

static int primary_options(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen)
{
	struct primary_cmd *pc = self;
	int ret = ft_options_extract(argc, argv, &pc->fo, err, errlen);
	*help = pc->fo.help;
	return ret;
}

static int primary_check(void *self, struct vm_command *c, bool *done, char *err, size_t errlen)
{
	struct primary_cmd *pc = self;
	return ft_options_check_role(&pc->fo, c->opts.dom, true, &pc->key, err, errlen);
}

/* The FT primary around the machine and the live world, connected to its backup, and the control socket. */
static int primary_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct primary_cmd *pc = self;
	struct ft_options *fo = &pc->fo;
	char vm_id[128], pair_id[CHANNEL_MAX_VM_ID + 1];

	ft_options_vm_id(fo, machine_config_digest(c->m), vm_id, sizeof(vm_id));
	/* The backup started with it must hold equal replicas; later backups are clones (ft_node). */
	if (ft_options_pair_id(fo, vm_id, c->world, NULL, world_live_ndisks(c->world), pair_id, sizeof(pair_id), err,
			       errlen))
		return FTVM_EXIT_FAILURE;
	struct ft_primary_config cfg = {
		.vm_name = fo->co.vm, .vm_id = pair_id, .epoch = fo->epoch, .peer = fo->peer, .arbiter = fo->arbiter, .node = 0,
		.timeout_ms = fo->timeout_ms, .heartbeat_ms = fo->heartbeat_ms, .max_lag_ms = (unsigned)fo->max_lag_ms,
		.rdma = fo->rdma, .replicated_disks = !fo->disk_shared, .key = &pc->key,
		.disks = fo->disk_shared ? NULL : c->world,
	};
	if (ft_primary_create(&cfg, c->m, world_live_world(c->world), &pc->p, err, errlen) ||
	    ft_primary_connect(pc->p, err, errlen))
		return FTVM_EXIT_FAILURE;
	ft_options_mark_replicas(fo, &c->rw, fo->epoch); /* equal: their digests were in the handshake */
	if (ft_node_create(c, fo, &pc->key, vm_id, &pc->node)) {
		snprintf(err, errlen, "out of memory");
		return FTVM_EXIT_FAILURE;
	}
	int ret = vm_control_init(&pc->vc, "primary", c, ft_node_status, pc->node);
	if (ret) {
		snprintf(err, errlen, "cannot start: %s", strerror(-ret));
		return FTVM_EXIT_FAILURE;
	}
	pc->commands[0] = vm_migrate_command;
	pc->commands[1] = vm_ft_command;
	pc->vc.extra = pc->commands;
	pc->vc.nextra = 2;
	vm_control_start(&pc->vc, &fo->co, &c->ctl);
	diag_info("primary of %s, epoch %llu, streaming to %s", vm_id, (unsigned long long)fo->epoch, fo->peer);
	return 0;
}

/* The node runs the primary (cmd/ft_node.h): the Output Rule's last outputs leave before the live
 * world goes; after a loss of the backup it restores redundancy to the spares, if any, or on
 * `ftvm ft enable`. */
static int primary_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct primary_cmd *pc = self;
	(void)c, (void)err, (void)errlen;
	struct ft_primary *p = pc->p;
	pc->p = NULL; /* the node's now: it ends and destroys it */
	return ft_node_run(pc->node, pc->fo.epoch, 0, p);
}

static void primary_stop(void *self)
{
	struct primary_cmd *pc = self;
	ft_node_destroy(pc->node);
	ft_primary_destroy(pc->p);
	vm_control_destroy(&pc->vc);
}

static const struct vm_role primary_role = {
	.name = "primary",
	.usage = usage,
	.world = VM_WORLD_LIVE,
	.options = primary_options,
	.check = primary_check,
	.start = primary_start,
	.run = primary_run,
	.stop = primary_stop,
};

int cmd_primary_main(int argc, char **argv)
{
	struct primary_cmd pc = { 0 };
	return vm_command_main(&primary_role, &pc, argc, argv);
}
