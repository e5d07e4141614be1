/*
 * state_io.h — one function per part moves its saved state to and from bytes.
 *
 * Every part of the machine keeps its state as plain data (struct X_state, filled by X_save and
 * applied by X_restore). X_state_io(io, state) walks that struct field by field; with a saving
 * state_io it appends each field to a memory buffer, explicit little-endian, with a loading one it
 * reads the same fields back in the same order. One walk serves both directions, so encoder and
 * decoder cannot disagree, and a part's digest is the hash of exactly these bytes
 * (state_io_digest): a field that is saved is hashed, a field that is not saved does not exist.
 *
 * A load never reads past its buffer: a short buffer sets err and yields zeros, and the caller
 * refuses the state (X_restore validates the values themselves).
 */
#ifndef FTVM_VM_STATE_IO_H
#define FTVM_VM_STATE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

struct state_io {
	bool load;            /* true: read fields from buf; false: append them to buf */
	uint8_t *buf;
	size_t len;           /* save: bytes written; load: bytes available */
	size_t cap;           /* save: size of buf */
	size_t pos;           /* load: next byte to read */
	bool heap;            /* save: buf was allocated here (grown past the caller's scratch) */
	int err;              /* first failure: -ENOMEM while saving, -ENODATA when a load ran short */
};

/* Saving into `scratch` (may be NULL); grows onto the heap when it is too small. */
void state_io_save_init(struct state_io *io, uint8_t *scratch, size_t cap);
/* Loading from buf[0..len). */
void state_io_load_init(struct state_io *io, const uint8_t *buf, size_t len);
/* Frees what a saving state_io allocated. */
void state_io_release(struct state_io *io);

void state_io_u8(struct state_io *io, uint8_t *v);
void state_io_u16(struct state_io *io, uint16_t *v);
void state_io_u32(struct state_io *io, uint32_t *v);
void state_io_u64(struct state_io *io, uint64_t *v);
void state_io_bool(struct state_io *io, bool *v);
void state_io_bytes(struct state_io *io, uint8_t *p, size_t n);
void state_io_u32s(struct state_io *io, uint32_t *v, size_t n);
void state_io_u64s(struct state_io *io, uint64_t *v, size_t n);

/* Marks the state invalid (a loaded count beyond its cap...): the first error sticks. */
void state_io_fail(struct state_io *io, int err);
/* A count of entries: loading one above max fails with -EINVAL and yields 0. */
void state_io_count(struct state_io *io, uint32_t *n, uint32_t max);

/* XXH3-64 (with seed) of the bytes `walk` saves from `state`: the digest of a part. */
uint64_t state_io_digest(void (*walk)(struct state_io *io, void *state), const void *state, uint64_t seed);

#endif
