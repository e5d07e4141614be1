/*
 * cmd_incoming.c — `ftvm incoming --listen HOST:PORT --channel-key FILE [run options]`: the
 * destination of a live migration (docs/migration.md).
 *
 * The machine is built from this host's own run options, as `ftvm run` would build it, and the
 * live world (disks, TAPs, console) is opened; then one migration stream is received into the
 * machine (migrate/mig_dest.h): a source with another configuration is refused, told the first
 * difference. The VM runs only once the source handed it over, and then as after FT go-live: the
 * live world takes over the guest's clock, disk requests the guest had submitted without a
 * completion are submitted again (writes are idempotent; the source drained its disks before the
 * state was taken), and each NIC's MAC is announced (RARP) so switches learn where the VM lives
 * now. From there the node is an `ftvm run` of that VM, with its control socket (role
 * "incoming"), so it can be migrated on. Any failure before the hand-over ends the command with
 * status 1 and the reason, and nothing ran here.
 *
 * Given FT options (--spare, with --arbiter), the destination of an FT node's migration runs the
 * VM as an FT node (cmd/ft_node.h): alone in the epoch it won at the hand-over, restoring
 * redundancy to its spares by an FT clone at once (docs/migration.md, "Migrating an FT node").
 */
#define DIAG_MODULE "incoming"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backup/ft_backup.h"
#include "cmd/control_options.h"
#include "cmd/domain_xml.h"
#include "cmd/exit_code.h"
#include "cmd/ft_node.h"
#include "cmd/ft_options.h"
#include "cmd/ftvm.h"
#include "cmd/run_options.h"
#include "cmd/vm_command.h"
#include "cmd/vm_control.h"
#include "cmd/vm_ft.h"
#include "cmd/vm_migrate.h"
#include "host/world_live.h"
#include "logchannel/channel.h"
#include "migrate/mig_dest.h"
#include "util/diag.h"
#include "util/time.h"
#include "vm/machine.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm incoming --listen HOST:PORT --channel-key FILE [--vm NAME] [options]\n\n"
		     "Waits for one live migration of VM NAME (`ftvm migrate --to HOST:PORT` on the source), then\n"
		     "runs it here as `ftvm run` would. The run options must describe the source's configuration\n"
		     "(a source with another one is refused, told the difference); the disks are this host's paths\n"
		     "to the same storage, or, when the source migrates with --copy-storage, this host's own\n"
		     "replicas, which receive the source's disks (never the source's own disk).\n\n"
		     "  --listen HOST:PORT  where the source connects\n"
		     "  --channel-key FILE  the key the source uses (ftvm keygen); the stream runs inside TLS\n"
		     "  --arbiter PATH      the VM's arbiter area (the source's): the VM runs here only once it\n"
		     "                      won the hand-over's epoch there (docs/migration.md)\n"
		     "  --transport T       tcp (default) or rdma (RDMA verbs); the source must use the same\n"
		     "  --spare HOST:PORT [FT options]  (with --arbiter) run the VM as an FT node, as `ftvm run\n"
		     "                      --arbiter --channel-key --spare` does: alone in the hand-over's epoch,\n"
		     "                      cloned at once to the first spare that answers (docs/ft-clone.md)\n");
	control_options_help(out);
	fprintf(out, "\noptions:\n");
	run_options_help(out);
}

struct incoming_cmd {
	const char *listen, *key_path, *arbiter, *transport;
	struct channel_key key;
	struct control_options co;
	struct vm_control vc;
	struct mig_frames_receiver *frames;  /* the guest's frames the source forwards after HANDOVER */
	struct machine_state *scratch;       /* the final state's, freed once the VM runs (not in its pause) */
	/* With --spare: the destination runs the VM as an FT node (ft_options hold every option). */
	bool ft;
	struct ft_options fo;
	struct ft_node *node;
	uint64_t epoch;                    /* the hand-over's, which this node won */
	struct control_command commands[2];
};

static int incoming_options(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen)
{
	struct incoming_cmd *in = self;
	(void)help;
	for (int i = 1; i < *argc; i++)
		in->ft |= !strcmp(argv[i], "--spare");
	if (in->ft) {
		int ret = ft_options_extract(argc, argv, &in->fo, err, errlen);
		if (ret)
			return ret;
		in->listen = in->fo.listen;
		in->key_path = in->fo.channel_key;
		in->arbiter = in->fo.arbiter;
		in->co = in->fo.co;
		return 0;
	}
	control_options_init(&in->co);
	for (int i = 1; i < *argc;) {
		const char **slot = !strcmp(argv[i], "--listen") ? &in->listen
				    : !strcmp(argv[i], "--channel-key") ? &in->key_path
				    : !strcmp(argv[i], "--arbiter") ? &in->arbiter
				    : !strcmp(argv[i], "--transport") ? &in->transport : NULL;
		if (slot) {
			if (i + 1 >= *argc) {
				snprintf(err, errlen, "%s needs a value", argv[i]);
				return -EINVAL;
			}
			*slot = argv[i + 1];
			memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2 + 1) * sizeof(*argv));
			*argc -= 2;
			continue;
		}
		int taken = control_options_take(argc, argv, i, &in->co, err, errlen);
		if (taken < 0)
			return taken;
		i += !taken;
	}
	return 0;
}

static int incoming_check(void *self, struct vm_command *c, bool *done, char *err, size_t errlen)
{
	struct incoming_cmd *in = self;
	(void)done;
	if (!in->listen || !in->key_path) {
		snprintf(err, errlen, "--listen HOST:PORT and --channel-key FILE are required");
		return -EINVAL;
	}
	if (in->transport && strcmp(in->transport, "tcp") && strcmp(in->transport, "rdma")) {
		snprintf(err, errlen, "--transport: \"%s\" is neither tcp nor rdma", in->transport);
		return -EINVAL;
	}
	if (in->ft && !in->arbiter) {
		snprintf(err, errlen, "--arbiter PATH is required with --spare: the hand-over of an FT node is judged there");
		return -EINVAL;
	}
	struct channel_err cerr = { 0 };
	if (channel_key_load(in->key_path, &in->key, &cerr)) {
		snprintf(err, errlen, "%s", cerr.msg);
		return -EINVAL;
	}
	if (c->opts.dom && !in->co.vm_given)
		in->co.vm = c->opts.dom->name;
	in->fo.co = in->co;
	return control_options_check(&in->co, err, errlen);
}

static void listening(void *ctx, unsigned port)
{
	struct incoming_cmd *in = ctx;
	fprintf(stderr, "ftvm incoming: VM %s: waiting for its migration on %s (port %u)\n", in->co.vm, in->listen,
		port);
}

/* What the migration leaves behind the running VM: the receiver of forwarded frames, the scratch
 * the final state was decoded in (freed here, not in the guest's pause). */
static void release_stream(void *ctx)
{
	struct incoming_cmd *in = ctx;
	mig_frames_receiver_stop(in->frames);
	in->frames = NULL;
	machine_state_free(in->scratch);
	in->scratch = NULL;
}

/* Receives the VM; once handed over, the live world takes it over as at FT go-live. */
static int incoming_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct incoming_cmd *in = self;
	bool rdma = in->transport && !strcmp(in->transport, "rdma");
	struct mig_dest_config cfg = { .listen = in->listen, .transport = rdma ? CHANNEL_RDMA : CHANNEL_TCP,
				       .key = &in->key, .vm_id = in->co.vm,
				       .storage = MIG_STORAGE_EITHER, .arbiter = in->arbiter, .world = c->world,
				       .listening = listening, .ctx = in, .frames = &in->frames,
				       .scratch = in->scratch = machine_state_alloc() };
	struct mig_dest_result res;
	char why[1024];
	if (mig_dest_receive(&cfg, c->m, &res, why, sizeof(why))) {
		release_stream(in);
		snprintf(err, errlen, "%s%s", why,
			 res.phase == MIG_PHASE_COMPLETE && !res.arbiter ? " (the whole state had arrived, but no hand-over: the "
							   "source decides; nothing runs here)" : "");
		return FTVM_EXIT_FAILURE;
	}
	world_live_take_clock(c->world, machine_icount(c->m), machine_clock(c->m));
	struct vm_world live = world_live_world(c->world);
	unsigned reissued = machine_reissue_disk_requests(c->m, live);
	for (unsigned i = 0; i < c->opts.nnics; i++) {
		uint8_t frame[64];
		size_t n = ft_rarp_announce(c->opts.nic[i].mac, frame, sizeof(frame));
		live.ops->net_tx(live.ctx, i, frame, n);
	}
	diag_info("running at %.3f ms monotonic", time_mono_ns() / 1e6);
	fprintf(stderr, "ftvm incoming: VM %s handed over at icount %llu (%llu pages in %u round(s), %llu bytes); "
			"running: %u disk request(s) resubmitted, %u MAC(s) announced\n",
		in->co.vm, (unsigned long long)machine_icount(c->m), (unsigned long long)res.pages, res.rounds + 1,
		(unsigned long long)res.bytes, reissued, c->opts.nnics);
	if (in->ft) {
		char vm_id[128];
		ft_options_vm_id(&in->fo, machine_config_digest(c->m), vm_id, sizeof(vm_id));
		if (ft_node_create(c, &in->fo, &in->key, vm_id, &in->node)) {
			snprintf(err, errlen, "out of memory");
			return FTVM_EXIT_FAILURE;
		}
		in->epoch = res.epoch;
		fprintf(stderr, "ftvm incoming: VM %s runs alone in epoch %llu; restoring redundancy to its spares\n",
			in->co.vm, (unsigned long long)res.epoch);
	}
	int ret = vm_control_init(&in->vc, "incoming", c, in->ft ? ft_node_status : NULL, in->node);
	if (ret) {
		release_stream(in);
		snprintf(err, errlen, "cannot start: %s", strerror(-ret));
		return FTVM_EXIT_FAILURE;
	}
	in->vc.run_ended = release_stream;
	in->vc.run_ended_ctx = in;
	in->commands[0] = vm_migrate_command;
	in->commands[1] = vm_ft_command;
	in->vc.extra = in->commands;
	in->vc.nextra = in->ft ? 2 : 1;
	if (res.arbiter && !in->ft)
		in->vc.arbiter = (struct mig_arbiter){ .path = in->arbiter, .epoch = res.epoch, .node = res.arbiter_node };
	vm_control_start(&in->vc, &in->co, &c->ctl);
	return 0;
}

static int incoming_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct incoming_cmd *in = self;
	(void)c;
	/* For a comparison with other systems' resume (bench/migrate): the wall clock. */
	diag_info("vCPU starts at wall %.6f s", time_wall_ns() / 1e9);
	if (in->ft)
		return ft_node_run(in->node, in->epoch, 0, NULL);
	return vm_control_run_live(&in->vc, err, errlen);
}

static void incoming_stop(void *self)
{
	struct incoming_cmd *in = self;
	release_stream(in);
	ft_node_destroy(in->node);
	vm_control_destroy(&in->vc);
}

static const struct vm_role incoming_role = {
	.name = "incoming",
	.usage = usage,
	.world = VM_WORLD_LIVE,
	.catch_signals = true,
	.options = incoming_options,
	.check = incoming_check,
	.start = incoming_start,
	.run = incoming_run,
	.stop = incoming_stop,
};

int cmd_incoming_main(int argc, char **argv)
{
	struct incoming_cmd in = { 0 };
	return vm_command_main(&incoming_role, &in, argc, argv);
}
