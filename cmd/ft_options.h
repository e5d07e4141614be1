/*
 * ft_options.h — options of `ftvm primary` and `ftvm backup` besides the run options, and what
 * both commands share: the VM id sent in the handshake, the control socket path.
 */
#ifndef FTVM_CMD_FT_OPTIONS_H
#define FTVM_CMD_FT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "cmd/control_options.h"
#include "util/compiler.h"

/* --timeout and --heartbeat default to the channel's own defaults (logchannel/channel.h). */
/* DESIGN.md: the backup stays under 100 ms of guest time behind; past that the primary is slowed. */
#define FT_DEFAULT_MAX_LAG_MS 100

#define FT_MAX_SPARES 8

struct ft_options {
	const char *peer;       /* primary: backup's HOST:PORT */
	const char *spare[FT_MAX_SPARES]; /* --spare HOST:PORT: where to restore redundancy (cmd/ft_node.h) */
	unsigned nspares;
	uint64_t clone_bandwidth_mbit; /* --clone-bandwidth: cap on a clone's use of the link (0: none) */
	const char *listen;     /* backup: HOST:PORT */
	const char *arbiter;
	struct control_options co;  /* --vm (also the VM id's name), --control, --control-group */
	const char *channel_key; /* the pairing key file (ftvm keygen), required */
	uint64_t epoch;
	unsigned timeout_ms;
	unsigned heartbeat_ms;
	uint64_t max_lag_ms;    /* primary: slow the vCPU while the backup is further behind */
	uint64_t perturb_lsn;   /* backup, tests only */
	uint64_t replay_delay_us; /* backup, tests only: pause before replaying each record */
	bool rdma;              /* --log-transport rdma */
	bool disk_shared;       /* --disk-mode shared: one disk both nodes reach (default: replicated) */
	bool help;
	/* Which were given on the command line (a domain's <ftvm:ft> fills in the others). */
	bool epoch_given, timeout_given, heartbeat_given, max_lag_given, transport_given, disk_mode_given;
};

struct domain_def;
struct channel_key;
struct control_server;
struct ft_status;
struct control_command;

/* Takes the FT options out of argv (argc adjusted). */
int ft_options_extract(int *argc, char **argv, struct ft_options *fo, char *err, size_t errlen) FTVM_MUST_CHECK;
void ft_options_help(FILE *out);
/*
 * Settings the command line left out come from the domain (run --domain): its <name> as --vm and
 * its <metadata><ftvm:ft> attributes. Then the checks of ft_options_extract() again.
 */
int ft_options_apply_domain(struct ft_options *fo, const struct domain_def *d, char *err,
			    size_t errlen) FTVM_MUST_CHECK;
/* Loads the --channel-key file (required: the channel is never plaintext). */
int ft_options_load_key(const struct ft_options *fo, struct channel_key *key, char *err, size_t errlen)
	FTVM_MUST_CHECK;
/*
 * What both FT roles check before anything is opened, in this order: the domain's FT settings
 * (when the VM comes from --domain), the role's address (--peer for the primary, --listen for the
 * backup) and --arbiter, which are required, and the channel key, loaded into key.
 */
int ft_options_check_role(struct ft_options *fo, const struct domain_def *dom, bool primary, struct channel_key *key,
			  char *err, size_t errlen) FTVM_MUST_CHECK;
/* Starts a backup's control socket serving status(ctx), refusing `snapshot` (a primary's is
 * cmd/vm_control.c's), and serving the role's own commands (`ft`, `migrate`; their handlers get
 * ctx); the commands are kept in `commands` (FT_CONTROL_COMMANDS of them), which must live as long as the socket. A node runs on without
 * one (with a warning) when it cannot be started: *ctl stays NULL then. */
#define FT_CONTROL_COMMANDS 3
void ft_options_start_control(const struct ft_options *fo, const char *role, void (*status)(void *, struct ft_status *),
			      void *ctx, const struct control_command *own, size_t nown, struct control_command *commands,
			      struct control_server **ctl);
/* The VM id of the handshake: the VM name, the configuration digest and the disk mode, so a
 * primary and a backup built from different configurations, or that disagree on whether their disk
 * is shared, never pair. */
void ft_options_vm_id(const struct ft_options *fo, uint64_t config_digest, char *buf, size_t len);
/* The VM id of a pair that starts together (a primary and its backup, not a clone): vm_id, and
 * with replicated disks `/disks=` and the XXH3-128 digest of this node's whole replicas — those
 * of the live world w, or else the files or URIs of paths — so a pair whose replicas differ
 * anywhere never starts. 0, or -errno with err. */
struct world_live;
int ft_options_pair_id(const struct ft_options *fo, const char *vm_id, struct world_live *w, const char *const *paths,
		       unsigned n, char *buf, size_t len, char *err, size_t errlen) FTVM_MUST_CHECK;
/* A node's replicas (the files of its run options; not a scratch disk, not a shared disk) at the
 * start of pairing `epoch`: pairing marks beside them for a later resync (docs/disks.md). */
struct run_world;
void ft_options_mark_replicas(const struct ft_options *fo, const struct run_world *rw, uint64_t epoch);

#endif
