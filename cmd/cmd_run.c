/*
 * cmd_run.c — `ftvm run`: boot a VM without fault tolerance, on the terminal.
 *
 * Options come from run_options.c (shared with the subcommands that run a VM). The live world
 * (host/world_live.c) opens the disks and TAP devices and owns the console; the machine is built on
 * top of it and run until the guest powers off. The exit status is the guest's test-finisher
 * status: 0 for poweroff/pass, the failure code otherwise; a guest reset reboots the machine
 * unless --no-reboot. Bad input is one line on stderr and exit status 2 (usage) or 1 (files,
 * devices, run-time errors).
 *
 * --restore FILE continues a VM saved in a snapshot (docs/state-format.md) instead of booting: the
 * run options must describe the same configuration (the snapshot names any difference), the disks
 * are the ones given, guest time carries on from the snapshot's clock, and disk requests the guest
 * had submitted without a completion are submitted again, as FT go-live does (writes are
 * idempotent). A guest reset after that boots afresh.
 */
#define DIAG_MODULE "run"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "cmd/snapshot_options.h"
#include "util/diag.h"
#include "vm/machine.h"
#include "host/world_live.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm run [options]\n\n"
		     "Boots a VM on this terminal without fault tolerance. With no --kernel it boots the bundled\n"
		     "guest. The console is the terminal (raw input on a tty; Ctrl-A x quits). The exit status is\n"
		     "the guest's: 0 when it powers off, its failure code when it reports one through the test\n"
		     "finisher; a guest reset reboots unless --no-reboot.\n\n"
		     "  --restore FILE      continue the VM saved in FILE (a snapshot of `ftvm replay\n"
		     "                      --snapshot-at`) instead of booting; same configuration required\n\noptions:\n");
	run_options_help(out);
	fprintf(out, "\nenvironment: FTVM_GUEST_DIR (bundled guest), FTVM_DIAG=error|warn|info|debug,\n"
		     "  FTVM_TRACE=N (log pc, privilege and trap counts every N instructions, to stderr)\n");
}

/* The first machine of a --restore run: the snapshot's, continuing where it stopped. */
static int restore_machine(const char *path, const struct machine_config *mc, struct world_live *world,
			   struct machine **out, char *err, size_t errlen)
{
	char why[1024];
	struct machine *m;
	int ret = machine_create(mc, &m, err, errlen);
	if (ret)
		return ret;
	ret = snapshot_restore("run", path, m, NULL, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "%s", why);
		machine_destroy(m);
		return ret;
	}
	world_live_take_clock(world, machine_icount(m), machine_clock(m));
	unsigned n = machine_reissue_disk_requests(m, world_live_world(world));
	if (n)
		diag_info("resubmitted %u unfinished disk request(s) of the snapshot", n);
	*out = m;
	return 0;
}

static int run_vm(struct run_options *o, const char *restore)
{
	char err[1024];
	struct run_world rw;
	struct world_live *world = NULL;
	struct machine *m = NULL;
	struct machine_config mc;
	enum machine_exit why;
	int status;
	if (run_world_open_live(o, &rw, &world, &mc, err, sizeof(err)))
		goto fail;
	run_world_catch_signals(world);
	for (;;) {
		if (restore) {
			if (restore_machine(restore, &mc, world, &m, err, sizeof(err)))
				goto fail;
			restore = NULL;
		} else if (machine_create(&mc, &m, err, sizeof(err))) {
			goto fail;
		}
		why = machine_run(m, world_live_world(world), ICOUNT_MAX, &status);
		diag_info("machine stopped (%d, status %d) at icount %llu", why, status,
			 (unsigned long long)machine_icount(m));
		machine_destroy(m);
		m = NULL;
		world_live_flush(world);
		if (why != MACHINE_EXIT_RESET || o->no_reboot)
			break;
		world_live_reset(world);
	}
	int code = run_world_finish("run", &world, why, status, NULL);
	run_world_release(&rw);
	return code;
fail:
	run_world_catch_signals(NULL);
	world_live_destroy(world);  /* restores the terminal before the message */
	fprintf(stderr, "ftvm run: %s\n", err);
	machine_destroy(m);
	run_world_release(&rw);
	return FTVM_EXIT_FAILURE;
}

int cmd_run_main(int argc, char **argv)
{
	struct run_options o;
	struct snapshot_options so;
	char err[512];
	if (snapshot_options_extract(&argc, argv, &so, err, sizeof(err)) ||
	    run_options_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "ftvm run: %s\n", err);
		return FTVM_EXIT_USAGE;
	}
	if (o.help) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	if (run_options_resolve(&o, err, sizeof(err))) {
		fprintf(stderr, "ftvm run: %s\n", err);
		return FTVM_EXIT_FAILURE;
	}
	if (so.snapshot || so.have_at) {
		fprintf(stderr, "ftvm run: --snapshot and --snapshot-at belong to ftvm replay; run takes --restore\n");
		return FTVM_EXIT_USAGE;
	}
	return run_vm(&o, so.restore);
}
