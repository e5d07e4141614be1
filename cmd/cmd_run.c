/*
 * cmd_run.c — `ftvm run`: boot a VM without fault tolerance, on the terminal.
 *
 * The shared steps (options from run_options.c, the live world, the machine, the end of the run)
 * are vm_command.c's; this file is the role: run until the guest powers off, building the machine
 * anew on a reset. The live world (host/world_live.c) opens the disks and TAP devices and owns
 * the console. The exit status is the guest's test-finisher
 * status: 0 for poweroff/pass, the failure code otherwise; a guest reset reboots the machine
 * unless --no-reboot. Bad input is one line on stderr and exit status 2 (usage) or 1 (files,
 * devices, run-time errors).
 *
 * --restore FILE continues a VM saved in a snapshot (docs/state-format.md) instead of booting: the
 * run options must describe the same configuration (the snapshot names any difference), the disks
 * are the ones given, guest time carries on from the snapshot's clock, and disk requests the guest
 * had submitted without a completion are submitted again, as FT go-live does (writes are
 * idempotent). A guest reset after that boots afresh. A restored VM announces its MACs (RARP, as
 * FT go-live does) so switches learn its new port.
 *
 * A full clone is a restore with a copied disk and a new MAC: `--nic tap=T,mac=NEW` is accepted
 * when the snapshot's configuration differs only in MACs (and disk paths, which it never names).
 * The machine is built with the snapshot's MAC, which the running guest holds in its own memory
 * and keeps using; the new MAC is the device's from the guest's next reset on (the machine is
 * rebuilt with it), and nothing is announced, so a clone never claims the original's switch port.
 *
 * The VM answers on a control socket (docs/control.md; role "run", path from --vm/--control) with
 * its status and the commands of cmd/vm_control.c. A guest reset replaces the machine under
 * vm_control's lock, so no control thread ever holds a machine that is being destroyed.
 */
#define DIAG_MODULE "run"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/control_options.h"
#include "cmd/domain_xml.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/run_options.h"
#include "cmd/snapshot_options.h"
#include "cmd/vm_command.h"
#include "cmd/vm_control.h"
#include "cmd/ft_node.h"
#include "cmd/ft_options.h"
#include "cmd/vm_ft.h"
#include "cmd/vm_migrate.h"
#include "logchannel/channel.h"
#include "backup/ft_backup.h"
#include "common/arbiter.h"
#include "migrate/mig_source.h"
#include "host/state_file.h"
#include "host/world_live.h"
#include "util/diag.h"
#include "vm/machine.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm run [options]\n\n"
		     "Boots a VM on this terminal without fault tolerance. With no --kernel it boots the bundled\n"
		     "guest. The console is the terminal (raw input on a tty; Ctrl-A x quits). The exit status is\n"
		     "the guest's: 0 when it powers off, its failure code when it reports one through the test\n"
		     "finisher; a guest reset reboots unless --no-reboot.\n\n"
		     "  --restore FILE      continue the VM saved in FILE (a snapshot of `ftvm replay\n"
		     "                      --snapshot-at`, or `ftvm snapshot`) instead of booting; same\n"
		     "                      configuration required\n"
		     "  --arbiter PATH --channel-key FILE [--spare HOST:PORT] [--disk-mode M] [--epoch N]\n"
		     "                      fault tolerance can be turned on for this VM: `ftvm ft enable`, or\n"
		     "                      at once to a spare (docs/ft-clone.md)\n"
		     "  --arbiter PATH [--epoch N]  (without --channel-key) the VM's arbiter area: each live\n"
		     "                      migration records its hand-over there under the next epoch, as\n"
		     "                      node 0 in epoch N (default 1) here; refused when the area has\n"
		     "                      decided a later epoch (docs/migration.md)\n");
	control_options_help(out);
	fprintf(out, "\noptions:\n");
	run_options_help(out);
	fprintf(out, "\nenvironment: FTVM_GUEST_DIR (bundled guest), FTVM_DIAG=error|warn|info|debug,\n"
		     "  FTVM_TRACE=N (log pc, privilege and trap counts every N instructions, to stderr)\n");
}

struct run_cmd {
	struct snapshot_options so;
	struct control_options co;
	struct vm_control vc;
	/* With --arbiter and --channel-key: FT can be turned on (`ftvm ft enable`, --spare). With
	 * --arbiter alone, fo holds the area where migrations record their hand-overs. */
	bool ft;
	struct ft_options fo;
	struct channel_key key;
	struct ft_node *node;
	struct control_command commands[2];
	bool clone;                              /* --restore with other MACs */
	uint8_t clone_mac[MACHINE_MAX_NICS][6];  /* the MACs given, for the guest's next reset */
};

/* A clone: where the MACs given differ from the snapshot's, the machine is built with the
 * snapshot's (so its configuration matches) and the given ones are kept for the next reset. A
 * snapshot that cannot be read is left to the restore, which names the problem. */
static void run_clone_macs(struct run_cmd *r, struct run_options *o)
{
	struct machine_identity id;
	char why[512];
	if (state_file_identity(r->so.restore, &id, why, sizeof(why)) || id.nnics != o->nnics)
		return;
	for (unsigned i = 0; i < o->nnics && i < MACHINE_MAX_NICS; i++) {
		memcpy(r->clone_mac[i], o->nic[i].mac, 6);
		if (memcmp(o->nic[i].mac, id.nic_mac[i], 6) == 0)
			continue;
		r->clone = true;
		memcpy(o->nic[i].mac, id.nic_mac[i], 6);
		fprintf(stderr, "ftvm run: clone: NIC %u keeps MAC %02x:%02x:%02x:%02x:%02x:%02x of the snapshot in the "
				"running guest; MAC %02x:%02x:%02x:%02x:%02x:%02x from its next reset\n", i,
			id.nic_mac[i][0], id.nic_mac[i][1], id.nic_mac[i][2], id.nic_mac[i][3], id.nic_mac[i][4],
			id.nic_mac[i][5], r->clone_mac[i][0], r->clone_mac[i][1], r->clone_mac[i][2], r->clone_mac[i][3],
			r->clone_mac[i][4], r->clone_mac[i][5]);
	}
}

static int run_options_hook(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen)
{
	struct run_cmd *r = self;
	(void)help;
	bool arbiter = false;
	for (int i = 1; i < *argc; i++) {
		r->ft |= !strcmp(argv[i], "--channel-key") || !strcmp(argv[i], "--spare");
		arbiter |= !strcmp(argv[i], "--arbiter");
	}
	if (r->ft || arbiter) {
		/* The FT options, the control socket's among them. */
		int ret = ft_options_extract(argc, argv, &r->fo, err, errlen);
		if (ret)
			return ret;
		r->co = r->fo.co;
	} else {
		control_options_init(&r->co);
	}
	for (int i = 1; i < *argc;) {
		int taken = control_options_take(argc, argv, i, &r->co, err, errlen);
		if (taken < 0)
			return taken;
		i += !taken;
	}
	int ret = snapshot_options_extract(argc, argv, &r->so, err, errlen);
	if (ret)
		return ret;
	if (r->so.snapshot || r->so.have_at) {
		snprintf(err, errlen, "--snapshot and --snapshot-at belong to ftvm replay; run takes --restore");
		return -EINVAL;
	}
	return 0;
}

/* The domain's name names the socket unless --vm did. */
static int run_check(void *self, struct vm_command *c, bool *done, char *err, size_t errlen)
{
	struct run_cmd *r = self;
	(void)done;
	if (c->opts.dom && !r->co.vm_given)
		r->co.vm = c->opts.dom->name;
	if (r->so.restore)
		run_clone_macs(r, &c->opts);
	if (r->ft) {
		r->fo.co = r->co;
		if (!r->fo.arbiter) {
			snprintf(err, errlen, "--arbiter PATH is required with --channel-key or --spare");
			return -EINVAL;
		}
		int ret = ft_options_load_key(&r->fo, &r->key, err, errlen);
		if (ret)
			return ret;
	}
	int ret = control_options_check(&r->co, err, errlen);
	if (ret || r->ft || !r->fo.arbiter)
		return ret;
	/* A copy the arbiter has left behind (the VM migrated on, or another node took this epoch)
	 * must not start a second copy of the VM. */
	struct mig_arbiter a = { .path = r->fo.arbiter, .epoch = r->fo.epoch, .node = 0 };
	struct arbiter *arb;
	ret = mig_arbiter_open(&a, r->co.vm, &arb, err, errlen);
	if (!ret)
		arbiter_close(arb);
	return ret;
}

/* The restored machine continues live: the live world takes over its clock, its unfinished disk
 * requests are submitted again, and its MACs are announced — the VM may have lived behind another
 * switch port — as go-live does. A clone announces nothing; its reset brings its own MACs. */
static void restore_continue(struct run_cmd *r, struct vm_command *c)
{
	world_live_take_clock(c->world, machine_icount(c->m), machine_clock(c->m));
	struct vm_world w = world_live_world(c->world);
	unsigned n = machine_reissue_disk_requests(c->m, w);
	if (n)
		diag_info("resubmitted %u unfinished disk request(s) of the snapshot", n);
	for (unsigned i = 0; r->clone && i < c->opts.nnics && i < MACHINE_MAX_NICS; i++)
		memcpy(c->mc.nic_mac[i], r->clone_mac[i], 6);
	for (unsigned i = 0; !r->clone && i < c->opts.nnics; i++) {
		uint8_t frame[64];
		size_t len = ft_rarp_announce(c->opts.nic[i].mac, frame, sizeof(frame));
		w.ops->net_tx(w.ctx, i, frame, len);
	}
}

/* With --restore, the machine just built becomes the snapshot's, continuing where it stopped;
 * then the control socket. */
static int run_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct run_cmd *r = self;
	char why[1024];
	if (r->so.restore) {
		if (snapshot_restore("run", r->so.restore, c->m, NULL, why, sizeof(why))) {
			snprintf(err, errlen, "%s", why);
			return FTVM_EXIT_FAILURE;
		}
		restore_continue(r, c);
	}
	char vm_id[128];
	if (r->ft) {
		ft_options_vm_id(&r->fo, machine_config_digest(c->m), vm_id, sizeof(vm_id));
		if (ft_node_create(c, &r->fo, &r->key, vm_id, &r->node)) {
			snprintf(err, errlen, "out of memory");
			return FTVM_EXIT_FAILURE;
		}
	}
	int ret = vm_control_init(&r->vc, "run", c, r->ft ? ft_node_status : NULL, r->node);
	if (ret) {
		snprintf(err, errlen, "cannot start: %s", strerror(-ret));
		return FTVM_EXIT_FAILURE;
	}
	r->commands[0] = vm_migrate_command;
	r->commands[1] = vm_ft_command;
	r->vc.extra = r->commands;
	r->vc.nextra = r->ft ? 2 : 1;
	if (!r->ft && r->fo.arbiter)
		r->vc.arbiter = (struct mig_arbiter){ .path = r->fo.arbiter, .epoch = r->fo.epoch, .node = 0 };
	vm_control_start(&r->vc, &r->co, &c->ctl);
	return 0;
}

/* Runs until the guest powers off; a reset builds the machine anew in the same live world. */
static int run_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct run_cmd *r = self;
	(void)c;
	/* With FT options the node runs it, alone until a clone makes it a primary (a guest reset
	 * then ends the run: the pair's log cannot carry a new machine). */
	if (r->ft)
		return ft_node_run(r->node, r->fo.epoch, 0, NULL);
	return vm_control_run_live(&r->vc, err, errlen);
}

static void run_stop(void *self)
{
	struct run_cmd *r = self;
	ft_node_destroy(r->node);
	vm_control_destroy(&r->vc);
}

static const struct vm_role run_role = {
	.name = "run",
	.usage = usage,
	.world = VM_WORLD_LIVE,
	.catch_signals = true,
	.options = run_options_hook,
	.check = run_check,
	.start = run_start,
	.run = run_run,
	.stop = run_stop,
};

int cmd_run_main(int argc, char **argv)
{
	struct run_cmd r = { 0 };
	return vm_command_main(&run_role, &r, argc, argv);
}
