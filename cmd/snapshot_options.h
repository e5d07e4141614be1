/*
 * snapshot_options.h — the snapshot options of `ftvm replay` (--snapshot-at ICOUNT --snapshot FILE,
 * --restore FILE) and `ftvm run` (--restore FILE), taken out of argv before the run options are
 * parsed; saving and restoring through host/state_file.h with the messages both commands print.
 */
#ifndef FTVM_CMD_SNAPSHOT_OPTIONS_H
#define FTVM_CMD_SNAPSHOT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/icount.h"
#include "vm/machine.h"
#include "vm/state_format.h"

struct snapshot_options {
	const char *snapshot;      /* --snapshot FILE: where the state is saved */
	bool have_at;
	icount_t snapshot_at;      /* --snapshot-at ICOUNT */
	const char *restore;       /* --restore FILE */
};

/* Takes the options out of argv (argc adjusted). -EINVAL with a reason on a bad value. */
int snapshot_options_extract(int *argc, char **argv, struct snapshot_options *so, char *err,
			     size_t errlen) FTVM_MUST_CHECK;

/* Saves m to path (0600, replaced only when `replace`) and prints size and time on stderr. */
int snapshot_save(const char *cmd, const char *path, bool replace, const struct machine *m,
		  const struct state_extra *extra, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Restores path into m (just created) and prints what it read and how long it took on stderr. */
int snapshot_restore(const char *cmd, const char *path, struct machine *m, struct state_extra *extra, char *err,
		     size_t errlen) FTVM_MUST_CHECK;

#endif
