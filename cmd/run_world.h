/*
 * run_world.h — turning resolved run options into the live world's configuration, shared by
 * every subcommand that runs a VM (run, record, replay, primary, backup).
 */
#ifndef FTVM_CMD_RUN_WORLD_H
#define FTVM_CMD_RUN_WORLD_H

#include <stddef.h>
#include "cmd/run_options.h"
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
/* The shell exit code for a guest finisher status (a failure whose low byte is 0 still fails). */
int run_world_exit_code(int status);

#endif
