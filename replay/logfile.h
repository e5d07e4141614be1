/*
 * logfile.h — the event log as a file: `ftvm record` writes one, `ftvm replay` reads one.
 *
 * The writer buffers records and writes them in large chunks; the reader streams the file
 * through a bounded buffer, checks every record (eventlog.h) and its place in the sequence, and
 * reports the byte offset and LSN of the first bad one.
 */
#ifndef FTVM_REPLAY_LOGFILE_H
#define FTVM_REPLAY_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "replay/eventlog.h"
#include "util/compiler.h"

struct logfile_writer;
/* Creates the log file, mode 0600 (it holds console input, disk data and the guest's entropy). An
 * existing file is refused (-EEXIST) unless `replace`; a symbolic link at path is refused either
 * way and never followed. */
int logfile_create(const char *path, const struct evlog_header *header, bool replace,
		   struct logfile_writer **out, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Appends a record whose lsn the writer assigns (the next one); returns it through *lsn if non-NULL. */
int logfile_append(struct logfile_writer *w, enum evlog_kind kind, icount_t icount, const uint8_t *payload,
		   uint32_t len, uint64_t *lsn) FTVM_MUST_CHECK;
int logfile_flush(struct logfile_writer *w) FTVM_MUST_CHECK;
/* Flushes and closes; returns the first write error seen, if any. */
int logfile_close(struct logfile_writer *w);
uint64_t logfile_bytes_written(const struct logfile_writer *w);

struct logfile_reader;
int logfile_open(const char *path, struct logfile_reader **out, struct evlog_header *header, char *err,
		 size_t errlen) FTVM_MUST_CHECK;
/* Reads the next record (valid until the next call). Returns 1 for a record, 0 at a clean end of
 * file, or -EBADMSG / -EIO with a message naming the LSN and byte offset. */
int logfile_next(struct logfile_reader *r, struct evlog_record *rec, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Byte offset of the next record in the file. */
uint64_t logfile_offset(const struct logfile_reader *r);
void logfile_close_reader(struct logfile_reader *r);

#endif
