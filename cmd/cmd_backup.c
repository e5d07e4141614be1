/*
 * cmd_backup.c — `ftvm backup --listen HOST:PORT --arbiter PATH [FT options] [run options]`:
 * run a VM as the backup of an FT pair.
 *
 * The backup builds the same machine as its primary (same run options; the handshake carries the
 * configuration digest, so mismatched pairs never start), waits for the primary and replays its
 * log in lockstep with every output dropped, but for the guest's disk requests in replicated mode
 * (the default): they run on this node's replicas, the --disk files of its run options. When the
 * primary is lost it goes live (ft_backup.h): it then opens the TAP devices and the disks named in
 * the run options (its replicas, or the shared disk) and runs on as the primary. Exit status: the guest's when it powers off; 3 after a divergence (FT ended, the
 * primary runs on); 6 lost the arbiter and halted; 1 errors. The steps shared with the other
 * subcommands that run a VM are vm_command.c's; this file is the role: the FT backup, its
 * channel and control socket, and the live world it opens when it goes live.
 */
#define DIAG_MODULE "backup"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backup/ft_backup.h"
#include "cmd/ft_options.h"
#include "logchannel/channel.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "cmd/vm_command.h"
#include "host/world_live.h"
#include "util/diag.h"
#include "vm/machine.h"

struct backup_cmd {
	struct ft_options fo;
	struct channel_key key;
	struct vm_command *c;        /* for go-live, which opens the live world */
	struct ft_backup *b;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm backup --listen HOST:PORT --arbiter PATH [FT options] [run options]\n\n"
		     "Runs a VM as the backup of a fault-tolerant pair: waits for `ftvm primary` on HOST:PORT,\n"
		     "replays its log in lockstep (outputs dropped), and when the primary is lost claims the\n"
		     "arbiter and goes live with the TAP devices and disks of the run options. Give both nodes\n"
		     "the same run options; with --disk-mode replicated (the default) each node's --disk names its\n"
		     "own copy (equal on both when the pair starts), with --disk-mode shared the same shared disk.\n\n"
		     "FT options:\n"
		     "  --listen HOST:PORT  logging-channel address to listen on, required\n");
	ft_options_help(out);
	fprintf(out, "\nexit status: the guest's on power-off; 3 diverged (FT ended); 6 lost the arbiter and halted;\n"
		     "1 errors\n\nrun options:\n");
	run_options_help(out);
}

static int make_live(void *ctx, icount_t now, const struct vm_clock *clock, struct vm_world *out, char *err,
		     size_t errlen)
{
	struct vm_command *c = ((struct backup_cmd *)ctx)->c;
	int ret = world_live_create(&c->rw.config, &c->world, err, errlen);
	if (ret < 0)
		return ret;
	run_world_release(&c->rw);
	world_live_take_clock(c->world, now, clock);
	*out = world_live_world(c->world);
	return 0;
}

static void status_cb(void *ctx, struct ft_status *st)
{
	ft_backup_get_status(ctx, st);
}

static int backup_options(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen)
{
	struct backup_cmd *bc = self;
	int ret = ft_options_extract(argc, argv, &bc->fo, err, errlen);
	*help = bc->fo.help;
	return ret;
}

static int backup_check(void *self, struct vm_command *c, bool *done, char *err, size_t errlen)
{
	struct backup_cmd *bc = self;
	return ft_options_check_role(&bc->fo, c->opts.dom, false, &bc->key, err, errlen);
}

/* The FT backup around the machine, listening, the control socket, then its primary accepted. */
static int backup_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct backup_cmd *bc = self;
	struct ft_options *fo = &bc->fo;
	char vm_id[128];

	bc->c = c;
	ft_options_vm_id(fo, machine_config_digest(c->m), vm_id, sizeof(vm_id));
	struct ft_backup_config cfg = {
		.vm_name = fo->co.vm, .vm_id = vm_id, .epoch = fo->epoch, .listen = fo->listen, .arbiter = fo->arbiter,
		.node = 1, .timeout_ms = fo->timeout_ms, .heartbeat_ms = fo->heartbeat_ms, .perturb_lsn = fo->perturb_lsn,
		.replay_delay_us = (unsigned)fo->replay_delay_us,
		.rdma = fo->rdma, .key = &bc->key,
	};
	/* The --disk files of this node's run options: its replicas, or the shared disks it reads
	 * the digest-logged reads from. */
	cfg.disks_shared = fo->disk_shared;
	cfg.nreplicas = c->rw.config.ndisks;
	for (unsigned i = 0; i < c->rw.config.ndisks; i++)
		cfg.replica[i] = c->rw.config.disk_path[i];
	struct ft_backup_golive gl = { .make_live = make_live, .ctx = bc, .nnics = c->opts.nnics };
	for (unsigned i = 0; i < c->opts.nnics; i++)
		memcpy(gl.macs[i], c->opts.nic[i].mac, 6);
	if (ft_backup_create(&cfg, c->m, &gl, &bc->b, err, errlen) || ft_backup_listen(bc->b, err, errlen))
		return FTVM_EXIT_FAILURE;
	ft_options_start_control(fo, "backup", status_cb, bc->b, &c->ctl);
	fprintf(stderr, "ftvm backup: %s epoch %llu listening on %s\n", vm_id, (unsigned long long)fo->epoch, fo->listen);
	if (ft_backup_accept(bc->b, err, errlen))
		return FTVM_EXIT_FAILURE;
	fprintf(stderr, "ftvm backup: primary connected; replaying\n");
	return 0;
}

/* Replays in lockstep and, when the primary is lost, goes live (the machine runs inside). */
static int backup_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct backup_cmd *bc = self;
	char msg[600];

	int ret = ft_backup_run(bc->b, msg, sizeof(msg));
	if (c->world)
		world_live_flush(c->world);
	fprintf(stderr, "ftvm backup: %s\n", msg);
	if (ret >= 0)
		return ftvm_exit_of_guest(ret);
	if (ret == -EPROTO)
		return FTVM_EXIT_DIVERGED;
	if (ret == -ECANCELED)
		return FTVM_EXIT_HALTED;
	return FTVM_EXIT_FAILURE;
}

static void backup_stop(void *self)
{
	struct backup_cmd *bc = self;
	ft_backup_destroy(bc->b);
}

static const struct vm_role backup_role = {
	.name = "backup",
	.usage = usage,
	.world = VM_WORLD_CONFIG,
	.options = backup_options,
	.check = backup_check,
	.start = backup_start,
	.run = backup_run,
	.stop = backup_stop,
};

int cmd_backup_main(int argc, char **argv)
{
	struct backup_cmd bc = { 0 };
	return vm_command_main(&backup_role, &bc, argc, argv);
}
