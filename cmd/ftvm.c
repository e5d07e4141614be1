/*
 * ftvm.c — entry point of the ftvm command: `ftvm SUBCOMMAND [options]`.
 *
 * SIGPIPE is ignored for the whole process before anything else runs: a control client or a
 * console reader that goes away is an error of that one socket or pipe (EPIPE, handled where it
 * is written), never the death of a VM.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"

static const struct ftvm_command commands[] = {
	{ "run", "boot a VM without fault tolerance (default: the bundled guest)", cmd_run_main },
	{ "record", "run a VM and write its event log (docs/log-format.md)", cmd_record_main },
	{ "replay", "replay an event log and verify it, or print its composition (--stats)", cmd_replay_main },
	{ "primary", "run a VM as the primary of an FT pair (streams its log to the backup)", cmd_primary_main },
	{ "backup", "run a VM as the backup of an FT pair (replays, goes live on failure)", cmd_backup_main },
	{ "spare", "wait for an FT clone of a VM and run as its backup (restores redundancy)", cmd_spare_main },
	{ "ft", "turn fault tolerance on or off for a running VM (ftvm ft enable|disable)", cmd_ft_main },
	{ "incoming", "wait for a live migration of a VM and run it here (docs/migration.md)", cmd_incoming_main },
	{ "migrate", "live-migrate a running VM to an `ftvm incoming` on another host", cmd_migrate_main },
	{ "status", "status of a running node (role, icount, job; FT: lag, log Mbit/s, outputs held...)", cmd_status_main },
	{ "snapshot", "save a running VM to a file while it runs (--stop: then power it off)", cmd_snapshot_main },
	{ "arbiter", "shared-disk test-and-set: init, claim, show (docs/arbiter.md)", cmd_arbiter_main },
	{ "keygen", "make a pairing key for the logging channel (--channel-key)", cmd_keygen_main },
	{ "clone", "linked (qcow2 overlay) or full clones of disk images, and of domain XML", cmd_clone_main },
	/* The host daemon's verbs (cmd/cmd_daemon.c, docs/daemon.md). */
	{ "define", "ftvmd: define a VM from a domain XML file", cmd_daemon_main },
	{ "undefine", "ftvmd: remove a shut-off VM's definition", cmd_daemon_main },
	{ "start", "ftvmd: start a defined VM (its own ftvm process)", cmd_daemon_main },
	{ "shutdown", "ftvmd: ask a running VM to stop", cmd_daemon_main },
	{ "destroy", "ftvmd: kill a running VM's process", cmd_daemon_main },
	{ "suspend", "ftvmd: hold a running VM's vCPU", cmd_daemon_main },
	{ "resume", "ftvmd: let a suspended VM's vCPU go on", cmd_daemon_main },
	{ "dumpxml", "ftvmd: print a VM's definition", cmd_daemon_main },
	{ "dominfo", "ftvmd: a VM's state, role, memory, CPU time, instructions", cmd_daemon_main },
	{ "list", "ftvmd: every VM and its state", cmd_daemon_main },
	{ "vmstats", "ftvmd: a running VM's figures (FT state, lag, log, outputs held...)", cmd_daemon_main },
	{ "nodeinfo", "ftvmd: the host's CPUs and memory", cmd_daemon_main },
	{ "events", "ftvmd: the last VM events (defined, started, suspended, resumed, stopped)", cmd_daemon_main },
	{ "autostart", "ftvmd: start a VM whenever the daemon starts (--disable: no longer)", cmd_daemon_main },
	{ "create", "ftvmd: start a transient VM from a domain XML file (gone when it stops)", cmd_daemon_main },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvm COMMAND [options]   (ftvm COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return FTVM_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].main(argc - 1, argv + 1);
	fprintf(stderr, "ftvm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return FTVM_EXIT_USAGE;
}
