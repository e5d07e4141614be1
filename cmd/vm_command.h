/*
 * vm_command.h — the shape shared by every subcommand that runs a VM (run, record, replay, primary,
 * backup), after kvmtool's init/run/exit: vm_command_main() does the common steps in order and
 * calls the role's hooks where the roles differ.
 *
 *   1. options: the role takes its own out of argv (hook `options`), then the run options are
 *      parsed; a bad option is one line and exit 2, --help prints the role's usage and exits 0;
 *   2. check: the role checks what it needs before anything is opened (hook `check`: required
 *      options, keys; it may also end the command here, as `replay --stats` does);
 *   3. resolve the run options, then either open the live world (disks, TAPs, console) or only
 *      prepare its configuration (a replay has no live world; a backup opens it when it goes live);
 *   4. build the machine;
 *   5. start: the role builds itself around the machine (hook `start`: recorder, replayer, FT role,
 *      channel, control socket), then termination signals are forwarded to the live world if the
 *      role asks for it;
 *   6. run: the role runs the machine and ends the run (hook `run`), returning the exit status;
 *      a role whose outputs may still leave after machine_run() (the primary's Output Rule
 *      drains into the live world) finishes them first and ends with vm_command_finish(), which
 *      destroys the live world only then;
 *   7. exit: the control socket stops (after its last job's outcome was read, or 2 s; a running
 *      job is cancelled and joined), the machine and the role are destroyed, then the live world
 *      (restoring the terminal) and the scratch disk.
 * Any error from step 3 on is one line "ftvm NAME: what" on stderr, printed after the terminal is
 * restored, and exit status 1 unless the role's start names another (cmd/exit_code.h).
 */
#ifndef FTVM_CMD_VM_COMMAND_H
#define FTVM_CMD_VM_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "cmd/run_options.h"
#include "cmd/run_world.h"
#include "common/control.h"
#include "host/world_live.h"
#include "vm/machine.h"

/* What the skeleton built, handed to the role's hooks. */
struct vm_command {
	const struct vm_role *role;
	struct run_options opts;
	struct run_world rw;
	struct world_live *world;        /* the live world (VM_WORLD_LIVE; a backup's from go-live) */
	struct machine_config mc;
	struct machine *m;
	struct control_server *ctl;      /* the control socket, if the role started one */
};

enum vm_world_mode {
	VM_WORLD_LIVE,      /* open the live world before the machine is built */
	VM_WORLD_CONFIG,    /* only its configuration (disk sizes from the files); the role opens what it needs */
};

struct vm_role {
	const char *name;                /* the subcommand, for messages */
	void (*usage)(FILE *out);
	enum vm_world_mode world;
	bool catch_signals;              /* SIGTERM/SIGHUP/SIGINT ask the live world to quit */
	/* Takes the role's options out of argv (argc adjusted); sets *help for its --help. 0 or
	 * -errno with err (exit 2). May be NULL. */
	int (*options)(void *self, int *argc, char **argv, bool *help, char *err, size_t errlen);
	/* After parsing, before anything is opened: 0 to go on or -errno with err (exit 2); or, with
	 * *done set, the command is over and the value is its exit status. May be NULL. */
	int (*check)(void *self, struct vm_command *c, bool *done, char *err, size_t errlen);
	/* Builds the role around c->m: 0, or an exit status > 0 with err. May be NULL. */
	int (*start)(void *self, struct vm_command *c, char *err, size_t errlen);
	/* Runs and ends the run: the exit status (>= 0), or -errno with err (exit 1, the live world
	 * destroyed before the message). */
	int (*run)(void *self, struct vm_command *c, char *err, size_t errlen);
	/* Frees what start built (after the machine is destroyed). May be NULL. */
	void (*stop)(void *self);
};

/* The whole subcommand: steps 1-7 above. Returns the process exit status. */
int vm_command_main(const struct vm_role *role, void *self, int argc, char **argv);

/* Step 6's end for a run over the live world: run_world_finish() on c->world (see run_world.h). */
int vm_command_finish(struct vm_command *c, enum machine_exit why, int status, const char *error_note);

#endif
