/*
 * cmd_backup.c — `ftvm backup --listen HOST:PORT --arbiter PATH [FT options] [run options]`:
 * run a VM as the backup of an FT pair.
 *
 * The backup builds the same machine as its primary (same run options; the handshake carries the
 * configuration digest, so mismatched pairs never start), waits for the primary and replays its
 * log in lockstep with every output dropped, but for the guest's disk requests in replicated mode
 * (the default): they run on this node's replicas, the --disk files of its run options. When the
 * primary is lost it goes live (ft_backup.h): it then opens the TAP devices and the disks named in
 * the run options (its replicas, or the shared disk) and runs on as the primary: an FT node alone
 * (ft_node.h), which `ftvm migrate` can move and `ftvm ft enable` (or --spare) can protect again.
 * Exit status: the guest's when it powers off; 3 after a divergence (FT ended, the
 * primary runs on); 6 lost the arbiter and halted; 1 errors. The steps shared with the other
 * subcommands that run a VM are vm_command.c's; this file is the role: the FT backup, its
 * channel and control socket, and the live world it opens when it goes live.
 */
#define DIAG_MODULE "backup"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "backup/ft_backup.h"
#include "backup/log_accept.h"
#include "cmd/ft_node.h"
#include "cmd/ft_options.h"
#include "logchannel/channel.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "cmd/vm_command.h"
#include "cmd/vm_control.h"
#include "cmd/vm_ft.h"
#include "cmd/vm_migrate.h"
#include "host/world_live.h"
#include "migrate/mig_dest.h"
#include "util/diag.h"
#include "vm/machine.h"

struct backup_cmd {
	struct ft_options fo;
	struct channel_key key;
	bool spare;                  /* `ftvm spare`: the state comes by an FT clone first */
	char vm_id[128];
	struct vm_command *c;        /* for go-live, which opens the live world */
	struct ft_backup *b;
	struct log_accept *log;      /* a spare: the log listener of the clone under way */
	uint64_t log_epoch;          /* its epoch */
	struct ft_node *node;        /* with --spare, once live: the node restoring redundancy */
	struct vm_control vc;        /* once live: what `migrate` moves (vm_migrate.c) */
	_Atomic int stage;           /* what the control socket reports: enum stage */
	pthread_mutex_t lock;        /* b's creation and end against the control thread's status */
	struct control_command commands[FT_CONTROL_COMMANDS]; /* the control socket's */
};

/* A spare that took a clone waits this long for its primary's log, then waits for clones again. */
#define SPARE_LOG_WAIT_MS 5000

enum stage {
	STAGE_SPARE,                 /* waiting for a clone: nothing runs */
	STAGE_BACKUP,                /* b: replaying (or going live) */
	STAGE_NODE,                  /* node: live, restoring redundancy */
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

static void spare_usage(FILE *out)
{
	fprintf(out, "usage: ftvm spare --listen HOST:PORT --arbiter PATH [FT options] [run options]\n\n"
		     "Waits on HOST:PORT for an FT clone of the VM (docs/ft-clone.md) from a node running it alone\n"
		     "with --spare HOST:PORT, and then runs as that VM's backup: it never boots the VM itself. A\n"
		     "clone of another VM (another name or configuration) is refused and the spare waits on. Give\n"
		     "it --spare of its own to restore redundancy in turn after it goes live.\n\n"
		     "FT options:\n"
		     "  --listen HOST:PORT  address for the clone and then the log, required\n");
	ft_options_help(out);
	fprintf(out, "\nexit status: as `ftvm backup`\n\nrun options:\n");
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
	struct backup_cmd *bc = ctx;
	switch (atomic_load(&bc->stage)) {
	case STAGE_SPARE:
		memset(st, 0, sizeof(*st));
		snprintf(st->role, sizeof(st->role), "spare");
		st->state = FT_STATE_WAITING;
		snprintf(st->peer_state, sizeof(st->peer_state), "waiting");
		break;
	case STAGE_BACKUP:
		pthread_mutex_lock(&bc->lock);
		if (bc->b)
			ft_backup_get_status(bc->b, st);
		pthread_mutex_unlock(&bc->lock);
		break;
	case STAGE_NODE:
		ft_node_status(bc->node, st);
		/* The go-live is this node's last failover until the node's own primary has one. */
		pthread_mutex_lock(&bc->lock);
		if (bc->b && st->last_failover_gap_ms == 0) {
			struct ft_status bst;
			ft_backup_get_status(bc->b, &bst);
			st->last_failover_gap_ms = bst.last_failover_gap_ms;
		}
		pthread_mutex_unlock(&bc->lock);
		break;
	}
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

/* The control command `ft`: served once this node is live and restoring redundancy itself. */
static int backup_ft(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct backup_cmd *bc = ctx;
	(void)job_arg;
	if (atomic_load(&bc->stage) != STAGE_NODE) {
		snprintf(err, errlen, "ft: this node is a %s, not live: turn FT on or off on its primary",
			 bc->spare && !bc->b ? "spare" : "backup");
		return -EPERM;
	}
	return vm_ft_request(bc->node, req, answer, err, errlen);
}

/* The control command `migrate`: a backup's VM replays its primary's log and does not move (its
 * primary does); once live, with or without spares, the node moves as any FT node does
 * (cmd/vm_migrate.c, on bc->vc). */
static int backup_migrate(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct backup_cmd *bc = ctx;
	if (atomic_load(&bc->stage) != STAGE_NODE) {
		snprintf(err, errlen, "migrate: refused on a %s, whose VM replays its primary's log: migrate its "
				      "primary (the backup becomes a spare again), or move the pair by failover",
			 bc->spare && !bc->b ? "spare" : "backup");
		return -EPERM;
	}
	return vm_migrate_command.handler(&bc->vc, req, answer, job_arg, err, errlen);
}

static int backup_migrate_job(void *ctx, void *arg, struct control_job *job, char *err, size_t errlen)
{
	return vm_migrate_command.job(&((struct backup_cmd *)ctx)->vc, arg, job, err, errlen);
}

static void backup_migrate_free(void *arg)
{
	vm_migrate_command.job_arg_free(arg);
}

static const struct control_command backup_own_commands[] = {
	{ .name = "ft", .handler = backup_ft },
	{ .name = "migrate", .handler = backup_migrate, .job = backup_migrate_job, .job_arg_free = backup_migrate_free },
};
#define BACKUP_OWN_COMMANDS (sizeof(backup_own_commands) / sizeof(backup_own_commands[0]))

/* The settings of the FT backup of epoch `epoch` for a primary of VM id vm_id. */
static struct ft_backup_config backup_config(struct backup_cmd *bc, const char *vm_id, uint64_t epoch)
{
	struct ft_options *fo = &bc->fo;
	struct vm_command *c = bc->c;
	struct ft_backup_config cfg = {
		.vm_name = fo->co.vm, .vm_id = vm_id, .epoch = epoch, .listen = fo->listen, .arbiter = fo->arbiter,
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
	return cfg;
}

/* The FT backup of epoch `epoch` around the machine, for a primary of VM id vm_id. */
static int make_backup(struct backup_cmd *bc, const char *vm_id, uint64_t epoch, char *err, size_t errlen)
{
	struct vm_command *c = bc->c;
	struct ft_backup_config cfg = backup_config(bc, vm_id, epoch);
	struct ft_backup_golive gl = { .make_live = make_live, .ctx = bc, .nnics = c->opts.nnics };
	for (unsigned i = 0; i < c->opts.nnics; i++)
		memcpy(gl.macs[i], c->opts.nic[i].mac, 6);
	pthread_mutex_lock(&bc->lock);
	int ret = ft_backup_create(&cfg, c->m, &gl, &bc->b, err, errlen);
	if (!ret)
		atomic_store(&bc->stage, STAGE_BACKUP);
	pthread_mutex_unlock(&bc->lock);
	return ret;
}

static void drop_backup(struct backup_cmd *bc)
{
	log_accept_stop(bc->log);
	bc->log = NULL;
	pthread_mutex_lock(&bc->lock);
	atomic_store(&bc->stage, STAGE_SPARE);
	ft_backup_destroy(bc->b);
	bc->b = NULL;
	pthread_mutex_unlock(&bc->lock);
}

static void spare_listening(void *ctx, unsigned port)
{
	struct backup_cmd *bc = ctx;
	fprintf(stderr, "ftvm spare: %s waiting for a clone on %s (port %u)\n", bc->vm_id, bc->fo.listen, port);
}

/* mig_dest_config.accepted: a clone for the pairing of `epoch` comes in; its primary connects
 * for the log while the state comes (backup/log_accept.h). A spare that cannot listen refuses
 * the clone (-EBUSY: the source is told why and tries again later). */
static int spare_accepted(void *ctx, uint64_t epoch, char *err, size_t errlen)
{
	struct backup_cmd *bc = ctx;
	drop_backup(bc);
	struct ft_backup_config cfg = backup_config(bc, bc->vm_id, epoch);
	if (log_accept_start(&cfg, &bc->log, err, errlen))
		return -EBUSY;
	bc->log_epoch = epoch;
	return 0;
}

/* After the hand-over: the backup of the clone's state, with the log connection its primary
 * opened during the clone (or opens now, within SPARE_LOG_WAIT_MS). */
static int spare_backup(struct backup_cmd *bc, const struct mig_dest_result *res, char *why, size_t whylen)
{
	if (!bc->log || bc->log_epoch != res->epoch) {
		snprintf(why, whylen, "the hand-over names epoch %llu, the clone started for %llu",
			 (unsigned long long)res->epoch, (unsigned long long)bc->log_epoch);
		return -EPROTO;
	}
	struct channel *ch = NULL;
	int ret = make_backup(bc, bc->vm_id, res->epoch, why, whylen);
	if (!ret)
		ret = log_accept_take(bc->log, SPARE_LOG_WAIT_MS, &ch, why, whylen);
	if (!ret)
		ft_backup_adopt(bc->b, ch);
	log_accept_stop(bc->log);
	bc->log = NULL;
	return ret;
}

/*
 * A spare: receives FT clones until one completes and its primary connects for the log
 * (docs/ft-clone.md). A refused or broken clone leaves the machine to the next one, whose START
 * drops its RAM and whose final state replaces everything else; nothing has run.
 */
static int spare_wait(struct backup_cmd *bc, char *err, size_t errlen)
{
	struct mig_dest_config dc = { .listen = bc->fo.listen, .key = &bc->key, .vm_id = bc->fo.co.vm, .clone = true,
				      .storage = bc->fo.disk_shared || !bc->c->rw.config.ndisks ? MIG_STORAGE_REFUSED
										       : MIG_STORAGE_NEEDED,
				      .ndisks = bc->c->rw.config.ndisks,
				      .listening = spare_listening, .accepted = spare_accepted, .ctx = bc };
	for (unsigned i = 0; i < dc.ndisks && i < MACHINE_MAX_DISKS; i++)
		dc.disk_path[i] = bc->c->rw.config.disk_path[i];
	dc.pairing_marks = bc->c->rw.scratch_fd < 0;
	for (;;) {
		struct mig_dest_result res;
		char why[512];
		int ret = mig_dest_receive(&dc, bc->c->m, &res, why, sizeof(why));
		if (ret == -EADDRINUSE || ret == -EADDRNOTAVAIL || ret == -EACCES) {
			snprintf(err, errlen, "cannot listen on %s: %s", bc->fo.listen, why);
			return ret;
		}
		if (ret) {
			fprintf(stderr, "ftvm spare: clone refused or broken (%s); waiting for the next\n", why);
			drop_backup(bc); /* a listener opened for a clone whose hand-over never came */
			continue;
		}
		fprintf(stderr, "ftvm spare: clone complete (%llu bytes, %u rounds): backup of epoch %llu\n",
			(unsigned long long)res.bytes, res.rounds, (unsigned long long)res.epoch);
		if (spare_backup(bc, &res, why, sizeof(why)) == 0)
			return 0;
		fprintf(stderr, "ftvm spare: the clone's primary did not send its log (%s); waiting for the next clone\n",
			why);
		drop_backup(bc);
	}
}

/* The FT backup around the machine, listening, the control socket, then its primary accepted. */
static int backup_start(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct backup_cmd *bc = self;
	struct ft_options *fo = &bc->fo;
	const char *name = c->role->name;

	bc->c = c;
	ft_options_vm_id(fo, machine_config_digest(c->m), bc->vm_id, sizeof(bc->vm_id));
	if (bc->spare) {
		ft_options_start_control(fo, name, status_cb, bc, backup_own_commands, BACKUP_OWN_COMMANDS, bc->commands,
					 &c->ctl);
		if (spare_wait(bc, err, errlen))
			return FTVM_EXIT_FAILURE;
	} else {
		/* Started with its primary: the replicas must be equal (their digests are in the id). */
		char pair_id[CHANNEL_MAX_VM_ID + 1];
		if (ft_options_pair_id(fo, bc->vm_id, NULL, c->rw.config.disk_path, c->rw.config.ndisks, pair_id,
				       sizeof(pair_id), err, errlen) ||
		    make_backup(bc, pair_id, fo->epoch, err, errlen) || ft_backup_listen(bc->b, err, errlen))
			return FTVM_EXIT_FAILURE;
		ft_options_start_control(fo, name, status_cb, bc, backup_own_commands, BACKUP_OWN_COMMANDS, bc->commands,
					 &c->ctl);
		fprintf(stderr, "ftvm backup: %s epoch %llu listening on %s\n", bc->vm_id, (unsigned long long)fo->epoch,
			fo->listen);
		if (ft_backup_accept(bc->b, -1, err, errlen))
			return FTVM_EXIT_FAILURE;
		ft_options_mark_replicas(fo, &c->rw, fo->epoch); /* equal: their digests were in the handshake */
	}
	fprintf(stderr, "ftvm %s: primary connected; replaying\n", name);
	return 0;
}

/* Replays in lockstep and, when the primary is lost, goes live; the node then runs the machine
 * itself as an FT node alone (cmd/ft_node.h): it restores redundancy when it has spares (or is
 * given one by `ft enable`), and it can be migrated like any FT node. A backup
 * whose primary ended the log because the VM migrated on (a newer epoch decided) is a spare again:
 * it waits for the clone of the migrated VM (docs/migration.md, "Migrating an FT node"). */
static int backup_run(void *self, struct vm_command *c, char *err, size_t errlen)
{
	struct backup_cmd *bc = self;
	char msg[600];

	int ret = ft_backup_run(bc->b, msg, sizeof(msg));
	fprintf(stderr, "ftvm %s: %s\n", c->role->name, msg);
	while (ret == 0 && ft_backup_superseded(bc->b)) {
		struct ft_status st;
		ft_backup_get_status(bc->b, &st);
		fprintf(stderr, "ftvm %s: the arbiter has decided an epoch past this pairing's (%llu): the VM moved on, "
				"this node is a spare again\n", c->role->name, (unsigned long long)st.epoch);
		drop_backup(bc);
		/* A machine built anew, as a spare's is: nothing of the replay it ran stays beside the
		 * clone's state (no thread reads the machine of a spare). */
		machine_destroy(c->m);
		c->m = NULL;
		if (machine_create(&c->mc, &c->m, err, errlen) || spare_wait(bc, err, errlen))
			return FTVM_EXIT_FAILURE;
		fprintf(stderr, "ftvm %s: primary connected; replaying\n", c->role->name);
		ret = ft_backup_run(bc->b, msg, sizeof(msg));
		fprintf(stderr, "ftvm %s: %s\n", c->role->name, msg);
	}
	if (ret == FT_BACKUP_LIVE) {
		struct ft_status st;
		ft_backup_get_status(bc->b, &st);
		if (ft_node_create(c, &bc->fo, &bc->key, bc->vm_id, &bc->node) ||
		    vm_control_init(&bc->vc, c->role->name, c, ft_node_status, bc->node)) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		bc->vc.vm_name = bc->fo.co.vm; /* for `migrate`, served on the socket already open */
		atomic_store(&bc->stage, STAGE_NODE);
		return ft_node_run(bc->node, st.epoch, st.failovers, NULL);
	}
	if (c->world)
		world_live_flush(c->world);
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
	atomic_store(&bc->stage, STAGE_SPARE);
	ft_node_destroy(bc->node);
	vm_control_destroy(&bc->vc);
	drop_backup(bc);
	pthread_mutex_destroy(&bc->lock);
}

/* The two commands differ only in their name, usage and where the state comes from (bc->spare). */
#define BACKUP_ROLE(NAME, USAGE)                                                                        \
	{ .name = NAME, .usage = USAGE, .world = VM_WORLD_CONFIG, .options = backup_options, .check = backup_check, \
	  .start = backup_start, .run = backup_run, .stop = backup_stop }
static const struct vm_role backup_role = BACKUP_ROLE("backup", usage);
static const struct vm_role spare_role = BACKUP_ROLE("spare", spare_usage);

static int backup_main(const struct vm_role *role, bool spare, int argc, char **argv)
{
	struct backup_cmd bc = { .spare = spare, .stage = spare ? STAGE_SPARE : STAGE_BACKUP };
	pthread_mutex_init(&bc.lock, NULL);
	return vm_command_main(role, &bc, argc, argv);
}

int cmd_backup_main(int argc, char **argv)
{
	return backup_main(&backup_role, false, argc, argv);
}

int cmd_spare_main(int argc, char **argv)
{
	return backup_main(&spare_role, true, argc, argv);
}
