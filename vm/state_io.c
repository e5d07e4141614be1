/*
 * state_io.c — the little-endian field codec of saved state (see state_io.h).
 */
#include "vm/state_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void state_io_save_init(struct state_io *io, uint8_t *scratch, size_t cap)
{
	*io = (struct state_io){ .load = false, .buf = scratch, .cap = scratch ? cap : 0 };
}

void state_io_load_init(struct state_io *io, const uint8_t *buf, size_t len)
{
	*io = (struct state_io){ .load = true, .buf = (uint8_t *)buf, .len = len };
}

void state_io_release(struct state_io *io)
{
	if (!io->load && io->heap)
		free(io->buf);
	io->buf = NULL;
	io->heap = false;
	io->len = io->cap = 0;
}

/* Room for n more bytes when saving; NULL (err set) when there is none. */
static uint8_t *save_room(struct state_io *io, size_t n)
{
	if (io->err)
		return NULL;
	if (n > io->cap - io->len) {
		size_t cap = io->cap ? io->cap : 4096;
		while (n > cap - io->len) {
			if (cap > SIZE_MAX / 2) {
				io->err = -ENOMEM;
				return NULL;
			}
			cap *= 2;
		}
		uint8_t *buf = io->heap ? realloc(io->buf, cap) : malloc(cap);
		if (!buf) {
			io->err = -ENOMEM;
			return NULL;
		}
		if (!io->heap && io->len)
			memcpy(buf, io->buf, io->len);
		io->buf = buf;
		io->cap = cap;
		io->heap = true;
	}
	uint8_t *p = io->buf + io->len;
	io->len += n;
	return p;
}

/* The next n bytes when loading; NULL (err set) past the end. */
static const uint8_t *load_bytes(struct state_io *io, size_t n)
{
	if (io->err)
		return NULL;
	if (n > io->len - io->pos) {
		io->err = -ENODATA;
		return NULL;
	}
	const uint8_t *p = io->buf + io->pos;
	io->pos += n;
	return p;
}

void state_io_u8(struct state_io *io, uint8_t *v)
{
	state_io_bytes(io, v, 1);
}

/* An unsigned field of `width` bytes, little-endian. */
static uint64_t io_uint(struct state_io *io, uint64_t v, unsigned width)
{
	if (io->load) {
		const uint8_t *p = load_bytes(io, width);
		v = 0;
		for (unsigned i = 0; p && i < width; i++)
			v |= (uint64_t)p[i] << (8 * i);
	} else {
		uint8_t *p = save_room(io, width);
		for (unsigned i = 0; p && i < width; i++)
			p[i] = (uint8_t)(v >> (8 * i));
	}
	return v;
}

void state_io_u16(struct state_io *io, uint16_t *v)
{
	*v = (uint16_t)io_uint(io, *v, 2);
}

void state_io_u32(struct state_io *io, uint32_t *v)
{
	*v = (uint32_t)io_uint(io, *v, 4);
}

void state_io_u64(struct state_io *io, uint64_t *v)
{
	*v = io_uint(io, *v, 8);
}

void state_io_bool(struct state_io *io, bool *v)
{
	uint8_t b = *v ? 1 : 0;
	state_io_u8(io, &b);
	if (io->load)
		*v = b != 0;
}

void state_io_bytes(struct state_io *io, uint8_t *p, size_t n)
{
	if (io->load) {
		const uint8_t *src = load_bytes(io, n);
		if (src)
			memcpy(p, src, n);
		else
			memset(p, 0, n);
	} else {
		uint8_t *dst = save_room(io, n);
		if (dst && n)
			memcpy(dst, p, n);
	}
}

void state_io_u32s(struct state_io *io, uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		state_io_u32(io, &v[i]);
}

void state_io_u64s(struct state_io *io, uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		state_io_u64(io, &v[i]);
}

void state_io_fail(struct state_io *io, int err)
{
	if (!io->err)
		io->err = err;
}

void state_io_count(struct state_io *io, uint32_t *n, uint32_t max)
{
	state_io_u32(io, n);
	if (*n > max) {
		state_io_fail(io, -EINVAL);
		*n = 0;
	}
}

uint64_t state_io_digest(void (*walk)(struct state_io *io, void *state), const void *state, uint64_t seed)
{
	uint8_t scratch[2048];
	struct state_io io;
	state_io_save_init(&io, scratch, sizeof(scratch));
	walk(&io, (void *)state);  /* saving only reads the state */
	uint64_t h = io.err ? seed ^ (uint64_t)io.err : XXH3_64bits_withSeed(io.buf, io.len, seed);
	state_io_release(&io);
	return h;
}
