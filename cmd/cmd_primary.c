/*
 * cmd_primary.c — `ftvm primary --peer HOST:PORT --arbiter PATH [FT options] [run options]`:
 * run a VM as the primary of an FT pair.
 *
 * The backup must be listening (start it first). The primary boots the guest, streams the log from
 * icount 0, holds outputs under the Output Rule and, if the backup is lost, claims the arbiter:
 * it runs on alone when it wins and halts the VM for good when it loses. Status on the control
 * socket (`ftvm status`). Exit status: the guest's when it powers off; 1 on errors; 6 when this
 * node lost the arbiter and halted.
 */
#define DIAG_MODULE "primary"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/domain_xml.h"
#include "cmd/ft_options.h"
#include "logchannel/channel.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/log_options.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "common/control.h"
#include "primary/ft_primary.h"
#include "util/diag.h"
#include "vm/machine.h"
#include "host/world_live.h"

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

static void status_cb(void *ctx, struct ft_status *st)
{
	ft_primary_get_status(ctx, st);
}

int cmd_primary_main(int argc, char **argv)
{
	struct ft_options fo;
	struct run_options o;
	struct run_world rw = { .scratch_fd = -1 };
	struct world_live *world = NULL;
	struct ft_primary *p = NULL;
	struct machine *m = NULL;
	struct control_server *ctl = NULL;
	char err[512], vm_id[128], ctl_path[256];
	int code = FTVM_EXIT_FAILURE, status = 0;

	if (ft_options_extract(&argc, argv, &fo, err, sizeof(err)) || run_options_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "ftvm primary: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (o.help || fo.help) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	if (o.dom && ft_options_apply_domain(&fo, o.dom, err, sizeof(err))) {
		fprintf(stderr, "ftvm primary: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (!fo.peer || !fo.arbiter) {
		fprintf(stderr, "ftvm primary: --peer HOST:PORT and --arbiter PATH are required\n");
		return FTVM_EXIT_USAGE;
	}
	struct channel_key key;
	if (ft_options_load_key(&fo, &key, err, sizeof(err))) {
		fprintf(stderr, "ftvm primary: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	struct machine_config mc;
	if (run_options_resolve(&o, err, sizeof(err)) || run_world_open_live(&o, &rw, &world, &mc, err, sizeof(err)))
		goto fail;
	if (machine_create(&mc, &m, err, sizeof(err)))
		goto fail;
	ft_options_vm_id(&fo, machine_config_digest(m), vm_id, sizeof(vm_id));
	struct ft_primary_config pc = {
		.vm_name = fo.vm, .vm_id = vm_id, .epoch = fo.epoch, .peer = fo.peer, .arbiter = fo.arbiter, .node = 0,
		.timeout_ms = fo.timeout_ms, .heartbeat_ms = fo.heartbeat_ms, .max_lag_ms = (unsigned)fo.max_lag_ms,
		.rdma = fo.rdma, .key = &key,
	};
	if (ft_primary_create(&pc, m, world_live_world(world), &p, err, sizeof(err)))
		goto fail;
	if (ft_primary_connect(p, err, sizeof(err)))
		goto fail;
	if (ft_options_control_path(&fo, "primary", ctl_path, sizeof(ctl_path)) == 0 &&
	    control_start(&(struct control_config){ .path = ctl_path, .has_group = fo.control_group != NULL,
						   .group = fo.control_gid, .status = status_cb, .ctx = p },
			  &ctl, err, sizeof(err)) < 0)
		diag_warn("no control socket: %s", err);
	diag_info("primary of %s, epoch %llu, streaming to %s", vm_id, (unsigned long long)fo.epoch, fo.peer);

	enum machine_exit why = machine_run(m, ft_primary_world(p), ICOUNT_MAX, &status);
	world_live_flush(world);
	int ret = ft_primary_finish(p, why, status);
	struct ft_status st;
	ft_primary_get_status(p, &st);
	if (ret == -ECANCELED || st.state == FT_STATE_HALTED) {
		fprintf(stderr, "ftvm primary: %s\n", st.reason);
		code = FTVM_EXIT_HALTED;
		goto out;
	}
	if (why == MACHINE_EXIT_ERROR) {
		snprintf(err, sizeof(err), "the run stopped with an error: %s", strerror(-status));
		goto fail;
	}
	code = why == MACHINE_EXIT_POWEROFF ? ftvm_exit_of_guest(status) : FTVM_EXIT_OK;
	goto out;
fail:
	world_live_destroy(world);
	world = NULL;
	fprintf(stderr, "ftvm primary: %s\n", err);
	code = FTVM_EXIT_FAILURE;
out:
	control_stop(ctl);
	machine_destroy(m);
	ft_primary_destroy(p);
	world_live_destroy(world);
	run_world_release(&rw);
	return code;
}
