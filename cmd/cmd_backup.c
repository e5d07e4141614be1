/*
 * cmd_backup.c — `ftvm backup --listen HOST:PORT --arbiter PATH [FT options] [run options]`:
 * run a VM as the backup of an FT pair.
 *
 * The backup builds the same machine as its primary (same run options; the handshake carries the
 * configuration digest, so mismatched pairs never start), waits for the primary and replays its
 * log in lockstep with every output dropped. When the primary is lost it goes live (ft_backup.h):
 * it then opens the TAP devices and the shared disk named in the run options and runs on as the
 * primary. Exit status: the guest's when it powers off; 3 after a divergence (FT ended, the
 * primary runs on); 6 lost the arbiter and halted; 1 errors.
 */
#define DIAG_MODULE "backup"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/ft_backup.h"
#include "cmd/domain_xml.h"
#include "cmd/ft_options.h"
#include "logchannel/channel.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/log_options.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "common/control.h"
#include "util/diag.h"
#include "vm/machine.h"
#include "host/world_live.h"

struct backup_cmd {
	struct run_world rw;
	struct world_live *world;   /* created at go-live */
	struct ft_backup *b;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm backup --listen HOST:PORT --arbiter PATH [FT options] [run options]\n\n"
		     "Runs a VM as the backup of a fault-tolerant pair: waits for `ftvm primary` on HOST:PORT,\n"
		     "replays its log in lockstep (outputs dropped), and when the primary is lost claims the\n"
		     "arbiter and goes live with the TAP devices and shared disk of the run options. Give both\n"
		     "nodes the same run options (the same shared --disk).\n\n"
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
	struct backup_cmd *bc = ctx;
	int ret = world_live_create(&bc->rw.config, &bc->world, err, errlen);
	if (ret < 0)
		return ret;
	run_world_release(&bc->rw);
	world_live_take_clock(bc->world, now, clock);
	*out = world_live_world(bc->world);
	return 0;
}

static void status_cb(void *ctx, struct ft_status *st)
{
	ft_backup_get_status(ctx, st);
}

int cmd_backup_main(int argc, char **argv)
{
	struct backup_cmd bc = { .rw = { .scratch_fd = -1 } };
	struct ft_options fo;
	struct run_options o;
	struct machine *m = NULL;
	struct control_server *ctl = NULL;
	char err[512], vm_id[128], ctl_path[256], msg[600];
	int code = FTVM_EXIT_FAILURE;

	if (ft_options_extract(&argc, argv, &fo, err, sizeof(err)) || run_options_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "ftvm backup: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (o.help || fo.help) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	if (o.dom && ft_options_apply_domain(&fo, o.dom, err, sizeof(err))) {
		fprintf(stderr, "ftvm backup: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (!fo.listen || !fo.arbiter) {
		fprintf(stderr, "ftvm backup: --listen HOST:PORT and --arbiter PATH are required\n");
		return FTVM_EXIT_USAGE;
	}
	struct channel_key key;
	if (ft_options_load_key(&fo, &key, err, sizeof(err))) {
		fprintf(stderr, "ftvm backup: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (run_options_resolve(&o, err, sizeof(err)) || run_world_prepare(&o, &bc.rw, err, sizeof(err)))
		goto fail;
	struct machine_config mc;
	if (run_world_machine_config(&o, &bc.rw, NULL, &mc, err, sizeof(err)))
		goto fail;
	if (machine_create(&mc, &m, err, sizeof(err)))
		goto fail;
	ft_options_vm_id(&fo, machine_config_digest(m), vm_id, sizeof(vm_id));
	struct ft_backup_config cfg = {
		.vm_name = fo.vm, .vm_id = vm_id, .epoch = fo.epoch, .listen = fo.listen, .arbiter = fo.arbiter,
		.node = 1, .timeout_ms = fo.timeout_ms, .heartbeat_ms = fo.heartbeat_ms, .perturb_lsn = fo.perturb_lsn,
		.rdma = fo.rdma, .key = &key,
	};
	struct ft_backup_golive gl = { .make_live = make_live, .ctx = &bc, .nnics = o.nnics };
	for (unsigned i = 0; i < o.nnics; i++)
		memcpy(gl.macs[i], o.nic[i].mac, 6);
	if (ft_backup_create(&cfg, m, &gl, &bc.b, err, sizeof(err)))
		goto fail;
	if (ft_backup_listen(bc.b, err, sizeof(err)))
		goto fail;
	if (ft_options_control_path(&fo, "backup", ctl_path, sizeof(ctl_path)) == 0 &&
	    control_start(&(struct control_config){ .path = ctl_path, .has_group = fo.control_group != NULL,
						   .group = fo.control_gid, .status = status_cb, .ctx = bc.b },
			  &ctl, err, sizeof(err)) < 0)
		diag_warn("no control socket: %s", err);
	fprintf(stderr, "ftvm backup: %s epoch %llu listening on %s\n", vm_id, (unsigned long long)fo.epoch, fo.listen);
	if (ft_backup_accept(bc.b, err, sizeof(err)))
		goto fail;
	fprintf(stderr, "ftvm backup: primary connected; replaying\n");

	int ret = ft_backup_run(bc.b, msg, sizeof(msg));
	if (bc.world)
		world_live_flush(bc.world);
	fprintf(stderr, "ftvm backup: %s\n", msg);
	if (ret >= 0)
		code = ftvm_exit_of_guest(ret);
	else if (ret == -EPROTO)
		code = FTVM_EXIT_DIVERGED;
	else if (ret == -ECANCELED)
		code = FTVM_EXIT_HALTED;
	else
		code = FTVM_EXIT_FAILURE;
	goto out;
fail:
	world_live_destroy(bc.world);
	bc.world = NULL;
	fprintf(stderr, "ftvm backup: %s\n", err);
	code = FTVM_EXIT_FAILURE;
out:
	control_stop(ctl);
	machine_destroy(m);
	ft_backup_destroy(bc.b);
	world_live_destroy(bc.world);
	run_world_release(&bc.rw);
	return code;
}
