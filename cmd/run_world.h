/*
 * run_world.h — the live world of a run, shared by every subcommand that runs a VM (run, record,
 * replay, primary, backup): its configuration from resolved run options, opening it, forwarding
 * termination signals to it, and the end of a run (exit status and message).
 */
#ifndef FTVM_CMD_RUN_WORLD_H
#define FTVM_CMD_RUN_WORLD_H

#include <stddef.h>
#include "cmd/run_options.h"
#include "vm/machine.h"
#include "util/compiler.h"
#include "host/world_live.h"

struct run_world {
	struct world_live_config config;
	int scratch_fd;            /* the bundled guest's scratch disk, or -1 */
	char scratch_path[64];
};

/* Fills rw->config from o (console on stdin/stdout) and, for the bundled guest without --disk,
 * creates a sparse scratch disk that disappears with the process. */
int run_world_prepare(const struct run_options *o, struct run_world *rw, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Once the live world holds its own descriptors (or is not needed), drops the scratch fd. */
void run_world_release(struct run_world *rw);
/* Machine configuration for o, with disk sizes from the live world (or from the files when w is NULL). */
int run_world_machine_config(const struct run_options *o, const struct run_world *rw, const struct world_live *w,
			     struct machine_config *mc, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Everything a live run needs once o is resolved, in order: prepare the world's configuration, open
 * the live world (disks, TAPs, console) and build the machine configuration with the disks' sizes.
 * On error *world is NULL and err says why. */
int run_world_open_live(const struct run_options *o, struct run_world *rw, struct world_live **world,
			struct machine_config *mc, char *err, size_t errlen) FTVM_MUST_CHECK;

/* SIGTERM, SIGHUP and SIGINT (which a raw terminal does not send) ask w to quit, so the run ends
 * cleanly: terminal restored, output flushed, a recording's log complete. NULL stops forwarding. */
void run_world_catch_signals(struct world_live *w);

/*
 * The end shared by every subcommand that runs a machine over a live world, once machine_run()
 * returned (why, status): stops forwarding signals, destroys *w (restoring the terminal before
 * anything is printed) and returns the exit status (cmd/exit_code.h) — the guest's on power-off,
 * 0 on reset; Ctrl-A x (0) and signal N (128+N) are announced as "ftvm CMD: terminated ..."; a
 * run-time error is reported on stderr, followed by error_note if not NULL, and fails (1).
 */
int run_world_finish(const char *cmd, struct world_live **w, enum machine_exit why, int status,
		     const char *error_note);

#endif
