/*
 * ftvm.h — the subcommands of the ftvm command. Each lives in cmd/cmd_NAME.c and returns the
 * process exit status; ftvm.c dispatches on argv[1].
 */
#ifndef FTVM_CMD_FTVM_H
#define FTVM_CMD_FTVM_H

struct ftvm_command {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
};

/* One per subcommand file; listed in ftvm.c. */
int cmd_run_main(int argc, char **argv);
int cmd_arbiter_main(int argc, char **argv);
int cmd_record_main(int argc, char **argv);
int cmd_replay_main(int argc, char **argv);
int cmd_primary_main(int argc, char **argv);
int cmd_backup_main(int argc, char **argv);
int cmd_status_main(int argc, char **argv);
int cmd_snapshot_main(int argc, char **argv);
int cmd_keygen_main(int argc, char **argv);
int cmd_incoming_main(int argc, char **argv);
int cmd_migrate_main(int argc, char **argv);
int cmd_clone_main(int argc, char **argv);
/* define, undefine, start, shutdown, destroy, suspend, resume, dumpxml, dominfo, list, vmstats,
 * nodeinfo, events: one file for the host daemon's verbs, which argv[0] names. */
int cmd_daemon_main(int argc, char **argv);

#endif
