/*
 * state_file.h — a machine's state as a snapshot file (docs/state-format.md).
 *
 * Saving creates the file through util/private_file.h (mode 0600, never through a symbolic link,
 * an existing file replaced only when asked), streams the encoder's sections through a buffer,
 * syncs and closes it; a failed save removes what it wrote. Loading streams the file into the
 * decoder and requires the file to end right after the END section.
 */
#ifndef FTVM_HOST_STATE_FILE_H
#define FTVM_HOST_STATE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include "util/compiler.h"
#include "vm/machine.h"
#include "vm/state_format.h"

/* Saves m (between runs) to path; extra may be NULL. 0, or -errno with the reason in err. */
int state_file_save(const char *path, bool replace, const struct machine *m, const struct state_extra *extra,
		    struct state_stats *stats, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Whether a snapshot may be created at path: 0 when nothing is there, or a regular file is and
 * replace; -ELOOP for a symbolic link, -EEXIST otherwise; with the reason in err. */
int state_file_check_target(const char *path, bool replace, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Saves a state saved earlier (state_encode_saved()) to path, written under a temporary name next
 * to it (PATH.PID-N.partial, 0600, created exclusively) and renamed into place only once complete
 * and synced, so path holds a whole snapshot or nothing: over an existing regular file only when
 * replace, never over a link; a failure removes the temporary file. */
int state_file_save_saved(const char *path, bool replace, const struct machine_identity *id,
			  struct machine_state *s, const uint8_t *ram, size_t ram_size, struct state_stats *stats,
			  char *err, size_t errlen) FTVM_MUST_CHECK;

/* Loads path into m, just created with the state's configuration (state_decode()). On failure m
 * must be destroyed. */
int state_file_load(const char *path, struct machine *m, struct state_extra *extra, struct state_stats *stats,
		    char *err, size_t errlen) FTVM_MUST_CHECK;

/* The configuration path was saved with (its CONFIG section only). */
int state_file_identity(const char *path, struct machine_identity *id, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
