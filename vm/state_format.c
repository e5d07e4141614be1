/*
 * state_format.c — encoder and decoder of the state format (see state_format.h and
 * docs/state-format.md).
 *
 * Encoding: machine_save() into a machine_state, then one section per part, each built by the
 * part's field walk (state_io.h) into a scratch buffer; RAM goes straight from guest memory to the
 * sink, run by run, the CRC computed on the way, so RAM is never copied.
 *
 * Decoding: each section is read whole into one buffer (grown in steps as its bytes arrive, so a
 * lying length on a short stream costs little), its CRC checked, then its payload walked into a
 * machine_state. When the last device section is in, machine_restore() checks and applies the
 * parts, guest RAM is dropped and the RAM runs are copied in; END closes the state.
 */
#include "vm/state_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/ram_pages.h"
#include "vm/state_io.h"

static const uint8_t state_magic[8] = { 'F', 'T', 'V', 'M', 'S', 'T', 'A', 'T' };

#define SMALL_CAP (64u << 10)
#define CONFIG_CAP 512u
#define MACHINE_CAP 64u
#define END_SIZE 16u
/* A block device at its bound: 512 requests of 256 segments, 32 MiB of write data. */
#define VIRTIO_CAP (48u << 20)
#define RAM_SECTION_CAP (STATE_RAM_RUN_HEAD + STATE_RAM_RUN_MAX * RAM_PAGE_SIZE)
#define READ_CHUNK (1u << 20)

const char *state_section_name(uint32_t type)
{
	switch (type) {
	case STATE_SEC_CONFIG: return "CONFIG";
	case STATE_SEC_MACHINE: return "MACHINE";
	case STATE_SEC_HART: return "HART";
	case STATE_SEC_CLINT: return "CLINT";
	case STATE_SEC_PLIC: return "PLIC";
	case STATE_SEC_UART: return "UART";
	case STATE_SEC_FINISHER: return "FINISHER";
	case STATE_SEC_VIRTIO: return "VIRTIO";
	case STATE_SEC_REPLAY: return "REPLAY";
	case STATE_SEC_RAM: return "RAM";
	case STATE_SEC_END: return "END";
	}
	return "unknown";
}

static uint32_t section_cap(uint32_t type)
{
	switch (type) {
	case STATE_SEC_CONFIG: return CONFIG_CAP;
	case STATE_SEC_MACHINE: return MACHINE_CAP;
	case STATE_SEC_VIRTIO: return VIRTIO_CAP;
	case STATE_SEC_REPLAY: return STATE_EXTRA_MAX;
	case STATE_SEC_RAM: return RAM_SECTION_CAP;
	case STATE_SEC_END: return END_SIZE;
	default: return SMALL_CAP;
	}
}

/* The CONFIG payload: a machine_identity, field by field (docs/state-format.md). */
static void identity_state_io(struct state_io *io, void *state)
{
	struct machine_identity *id = state;
	state_io_u64(io, &id->config_digest);
	state_io_u64(io, &id->mem_mib);
	state_io_count(io, &id->ndisks, MACHINE_MAX_DISKS);
	state_io_count(io, &id->nnics, MACHINE_MAX_NICS);
	state_io_bool(io, &id->rng);
	state_io_bool(io, &id->bios);
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++) {
		state_io_u64(io, &id->disk_bytes[i]);
		state_io_bool(io, &id->disk_read_only[i]);
	}
	for (unsigned i = 0; i < MACHINE_MAX_NICS; i++)
		state_io_bytes(io, id->nic_mac[i], sizeof(id->nic_mac[i]));
	state_io_u64(io, &id->bios_digest);
	state_io_u64(io, &id->kernel_digest);
	state_io_u64(io, &id->initrd_digest);
	state_io_u64(io, &id->fdt_digest);
}

/* The END payload. */
struct end_state {
	uint32_t sections;
	uint32_t reserved;
	uint64_t pages;
};

static void end_state_io(struct state_io *io, void *state)
{
	struct end_state *e = state;
	state_io_u32(io, &e->sections);
	state_io_u32(io, &e->reserved);
	state_io_u64(io, &e->pages);
}

/* ---- encoder ---- */

struct encoder {
	struct state_sink sink;
	const struct machine_identity *id;
	const uint8_t *ram;
	size_t ram_size;
	struct state_stats *st;
	uint32_t sections;
	char *err;
	size_t errlen;
	/* the run of non-zero pages being gathered for the next RAM section */
	size_t run_first, run_count;
	const uint64_t *pages;     /* NULL: every touched non-zero page; else exactly these */
};

static int put(struct encoder *e, const void *buf, size_t len)
{
	int ret = e->sink.write(e->sink.ctx, buf, len);
	if (ret < 0) {
		snprintf(e->err, e->errlen, "state: cannot write at byte %llu: %s", (unsigned long long)e->st->bytes,
			 strerror(-ret));
		return ret;
	}
	e->st->bytes += len;
	return 0;
}

/* A section whose payload is the concatenation of parts[0..n). */
static int emit(struct encoder *e, uint32_t type, const void *const *parts, const size_t *lens, unsigned n)
{
	uint8_t head[STATE_SECTION_HEAD], tail[STATE_SECTION_TAIL];
	size_t len = 0;
	for (unsigned i = 0; i < n; i++)
		len += lens[i];
	if (len > section_cap(type)) {
		snprintf(e->err, e->errlen, "state: section %s would be %zu bytes, above its cap %u", state_section_name(type),
			 len, section_cap(type));
		return -EOVERFLOW;
	}
	put_le32(head, type);
	put_le32(head + 4, (uint32_t)len);
	uint32_t crc = crc32c(0, head, sizeof(head));
	int ret = put(e, head, sizeof(head));
	for (unsigned i = 0; !ret && i < n; i++) {
		crc = crc32c(crc, parts[i], lens[i]);
		ret = put(e, parts[i], lens[i]);
	}
	put_le32(tail, crc);
	if (!ret)
		ret = put(e, tail, sizeof(tail));
	e->sections += !ret;
	return ret;
}

/* A section whose payload is walk's bytes for state. */
static int emit_walk(struct encoder *e, uint32_t type, void (*walk)(struct state_io *io, void *state), void *state)
{
	uint8_t scratch[4096];
	struct state_io io;
	state_io_save_init(&io, scratch, sizeof(scratch));
	walk(&io, state);
	int ret = io.err;
	if (ret)
		snprintf(e->err, e->errlen, "state: cannot encode section %s: %s", state_section_name(type), strerror(-ret));
	else
		ret = emit(e, type, (const void *const[]){ io.buf }, (const size_t[]){ io.len }, 1);
	state_io_release(&io);
	return ret;
}

static int flush_run(struct encoder *e)
{
	if (!e->run_count)
		return 0;
	uint8_t head[STATE_RAM_RUN_HEAD] = { 0 };
	put_le64(head, e->run_first);
	put_le32(head + 8, (uint32_t)e->run_count);
	const void *parts[] = { head, e->ram + e->run_first * RAM_PAGE_SIZE };
	size_t lens[] = { sizeof(head), e->run_count * RAM_PAGE_SIZE };
	e->st->ram_pages_written += e->run_count;
	e->run_count = 0;
	return emit(e, STATE_SEC_RAM, parts, lens, 2);
}

static bool page_is_zero(const uint8_t *page)
{
	const uint64_t *w = (const uint64_t *)page;
	uint64_t any = 0;
	for (size_t i = 0; i < RAM_PAGE_SIZE / sizeof(*w); i++)
		any |= w[i];
	return any == 0;
}

/* Page p joins the run being gathered (a run that it does not continue, or a full one, goes out). */
static int add_page(struct encoder *e, size_t p)
{
	int ret = 0;
	if (e->run_count && e->run_first + e->run_count != p)
		ret = flush_run(e);
	if (!e->run_count)
		e->run_first = p;
	e->run_count++;
	if (!ret && e->run_count == STATE_RAM_RUN_MAX)
		ret = flush_run(e);
	return ret;
}

static int encode_pages(void *ctx, size_t first, size_t count, bool touched)
{
	struct encoder *e = ctx;
	if (!touched) {
		e->st->ram_pages_untouched += count;
		return flush_run(e);
	}
	for (size_t p = first; p < first + count; p++) {
		int ret = 0;
		if (page_is_zero(e->ram + p * RAM_PAGE_SIZE)) {
			e->st->ram_pages_zero++;
			ret = flush_run(e);
		} else {
			ret = add_page(e, p);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* The pages set in e->pages, zeros included, in ascending runs. */
static int encode_listed_pages(struct encoder *e)
{
	for (size_t p = 0; p < e->st->ram_pages; p++) {
		int ret = e->pages[p / 64] >> (p % 64) & 1 ? add_page(e, p) : 0;
		if (ret)
			return ret;
	}
	return 0;
}

static int encode_parts(struct encoder *e, struct machine_state *s, const struct state_extra *extra)
{
	uint8_t header[STATE_HEADER_SIZE];
	memcpy(header, state_magic, sizeof(state_magic));
	put_le32(header + 8, STATE_FORMAT_VERSION);
	put_le32(header + 12, crc32c(0, header, 12));
	int ret = put(e, header, sizeof(header));
	struct machine_identity id = *e->id;
	if (!ret)
		ret = emit_walk(e, STATE_SEC_CONFIG, identity_state_io, &id);
	if (!ret)
		ret = emit_walk(e, STATE_SEC_MACHINE, machine_core_state_io, s);
	if (!ret)
		ret = emit_walk(e, STATE_SEC_HART, cpu_state_io, &s->cpu);
	if (!ret)
		ret = emit_walk(e, STATE_SEC_CLINT, clint_state_io, &s->clint);
	if (!ret)
		ret = emit_walk(e, STATE_SEC_PLIC, plic_state_io, &s->plic);
	if (!ret)
		ret = emit_walk(e, STATE_SEC_UART, uart_state_io, &s->uart);
	if (!ret)
		ret = emit_walk(e, STATE_SEC_FINISHER, finisher_state_io, &s->finisher);
	for (uint32_t i = 0; !ret && i < s->nvirtio; i++)
		ret = emit_walk(e, STATE_SEC_VIRTIO, virtio_state_io, s->virtio[i]);
	if (!ret && extra && extra->present) {
		if (extra->len > STATE_EXTRA_MAX) {
			snprintf(e->err, e->errlen, "state: REPLAY section of %u bytes, above its cap", extra->len);
			return -EOVERFLOW;
		}
		ret = emit(e, STATE_SEC_REPLAY, (const void *const[]){ extra->data }, (const size_t[]){ extra->len }, 1);
	}
	if (ret)
		return ret;
	e->st->ram_pages = e->ram_size / RAM_PAGE_SIZE;
	if (e->pages)
		ret = encode_listed_pages(e);
	else
		ret = ram_pages_walk(e->ram, e->ram_size, encode_pages, e);
	if (!ret)
		ret = flush_run(e);
	if (ret)
		return ret;
	struct end_state end = { .sections = e->sections, .pages = e->st->ram_pages_written };
	return emit_walk(e, STATE_SEC_END, end_state_io, &end);
}

int state_encode_saved(const struct machine_identity *id, struct machine_state *s, const uint8_t *ram,
		       size_t ram_size, struct state_sink sink, const struct state_extra *extra,
		       struct state_stats *stats, char *err, size_t errlen)
{
	struct state_stats local;
	struct encoder e = { .sink = sink, .id = id, .ram = ram, .ram_size = ram_size, .st = stats ? stats : &local,
			     .err = err, .errlen = errlen };
	memset(e.st, 0, sizeof(*e.st));
	return encode_parts(&e, s, extra);
}

int state_encode(const struct machine *m, struct state_sink sink, const struct state_extra *extra,
		 struct state_stats *stats, char *err, size_t errlen)
{
	struct machine_state *s = machine_state_alloc();
	if (!s) {
		snprintf(err, errlen, "state: out of memory");
		return -ENOMEM;
	}
	int ret = machine_save(m, s);
	if (ret) {
		snprintf(err, errlen, "state: cannot save the machine: %s", strerror(-ret));
	} else {
		size_t ram_size;
		const uint8_t *ram = machine_ram_const(m, &ram_size);
		ret = state_encode_saved(machine_identity(m), s, ram, ram_size, sink, extra, stats, err, errlen);
	}
	machine_state_free(s);
	return ret;
}

int state_encode_pages(const struct machine *m, struct state_sink sink, const uint64_t *pages,
		       struct machine_state *scratch, struct state_stats *stats, char *err, size_t errlen)
{
	struct state_stats local;
	struct machine_state *s = scratch ? scratch : machine_state_alloc();
	if (!s) {
		snprintf(err, errlen, "state: out of memory");
		return -ENOMEM;
	}
	struct encoder e = { .sink = sink, .id = machine_identity(m), .st = stats ? stats : &local, .err = err,
			     .errlen = errlen, .pages = pages };
	memset(e.st, 0, sizeof(*e.st));
	e.ram = machine_ram_const(m, &e.ram_size);
	int ret = machine_save(m, s);
	if (ret)
		snprintf(err, errlen, "state: cannot save the machine: %s", strerror(-ret));
	else
		ret = encode_parts(&e, s, NULL);
	if (!scratch)
		machine_state_free(s);
	return ret;
}

size_t state_ram_section_seal(uint8_t *out, uint64_t first, uint32_t count)
{
	size_t payload = STATE_RAM_RUN_HEAD + (size_t)count * RAM_PAGE_SIZE;
	put_le32(out, STATE_SEC_RAM);
	put_le32(out + 4, (uint32_t)payload);
	memset(out + STATE_SECTION_HEAD, 0, STATE_RAM_RUN_HEAD);
	put_le64(out + STATE_SECTION_HEAD, first);
	put_le32(out + STATE_SECTION_HEAD + 8, count);
	put_le32(out + STATE_SECTION_HEAD + payload, crc32c(0, out, STATE_SECTION_HEAD + payload));
	return STATE_SECTION_HEAD + payload + STATE_SECTION_TAIL;
}

size_t state_ram_section_build(uint8_t *out, const uint8_t *ram, uint64_t first, uint32_t count)
{
	memcpy(out + STATE_RAM_SECTION_DATA, ram + first * RAM_PAGE_SIZE, (size_t)count * RAM_PAGE_SIZE);
	return state_ram_section_seal(out, first, count);
}

int state_config_section(const struct machine *m, uint8_t *out, size_t cap)
{
	struct machine_identity id = *machine_identity(m);
	struct state_io io;
	uint8_t scratch[CONFIG_CAP];
	state_io_save_init(&io, scratch, sizeof(scratch));
	identity_state_io(&io, &id);
	int ret = io.err;
	size_t len = io.len;
	if (!ret && STATE_SECTION_HEAD + len + STATE_SECTION_TAIL > cap)
		ret = -EOVERFLOW;
	if (!ret) {
		put_le32(out, STATE_SEC_CONFIG);
		put_le32(out + 4, (uint32_t)len);
		memcpy(out + STATE_SECTION_HEAD, io.buf, len);
		put_le32(out + STATE_SECTION_HEAD + len, crc32c(0, out, STATE_SECTION_HEAD + len));
	}
	state_io_release(&io);
	return ret ? ret : (int)(STATE_SECTION_HEAD + len + STATE_SECTION_TAIL);
}

/* ---- decoder ---- */

struct decoder {
	struct state_source src;
	struct machine *m;
	struct machine_state *s;
	struct state_extra *extra;
	struct state_stats *st;
	uint64_t offset;           /* bytes consumed from the source */
	uint8_t *buf;              /* the current section's payload */
	size_t cap;
	uint32_t last;             /* type of the previous section, 0 before CONFIG */
	uint32_t sections;
	uint32_t virtio_seen;
	bool restored;             /* device parts applied and RAM dropped */
	bool keep_ram;             /* a live transfer's last part: RAM came in rounds before */
	uint64_t next_page;        /* RAM runs ascend from here */
	uint64_t ram_pages;
	char *err;
	size_t errlen;
};

/* Reads exactly n bytes; 0, -ENODATA when the stream ends first (*got tells how many came), or
 * the source's -errno. */
static int read_exact(struct decoder *d, void *buf, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = d->src.read(d->src.ctx, (uint8_t *)buf + *got, n - *got);
		if (r < 0)
			return (int)r;
		if (r == 0 || (size_t)r > n - *got)
			return r == 0 ? -ENODATA : -EIO;
		*got += (size_t)r;
		d->offset += (uint64_t)r;
	}
	return 0;
}

static int read_fail(struct decoder *d, int ret, const char *where, uint64_t start)
{
	if (ret == -ENODATA) {
		snprintf(d->err, d->errlen, "state: truncated at byte %llu in %s (starts at byte %llu)",
			 (unsigned long long)d->offset, where, (unsigned long long)start);
		return -EBADMSG;
	}
	snprintf(d->err, d->errlen, "state: cannot read at byte %llu in %s: %s", (unsigned long long)d->offset, where,
		 strerror(-ret));
	return ret;
}

static int read_header(struct decoder *d)
{
	uint8_t h[STATE_HEADER_SIZE];
	size_t got;
	int ret = read_exact(d, h, sizeof(h), &got);
	if (ret)
		return read_fail(d, ret, "the header", 0);
	if (memcmp(h, state_magic, sizeof(state_magic))) {
		snprintf(d->err, d->errlen, "state: not an ftvm state (bad magic at byte 0, header)");
		return -EBADMSG;
	}
	if (get_le32(h + 12) != crc32c(0, h, 12)) {
		snprintf(d->err, d->errlen, "state: bad CRC in the header at byte 12");
		return -EBADMSG;
	}
	if (get_le32(h + 8) != STATE_FORMAT_VERSION) {
		snprintf(d->err, d->errlen, "state: format version %u at byte 8 (header); this ftvm reads version %u",
			 get_le32(h + 8), STATE_FORMAT_VERSION);
		return -EBADMSG;
	}
	return 0;
}

/* Whether a section of this type may follow the previous one; *want names what may. */
static bool in_place(const struct decoder *d, uint32_t type, const char **want)
{
	bool devices_done = d->virtio_seen == d->s->nvirtio;
	switch (d->last) {
	case 0:
		*want = "CONFIG";
		return type == STATE_SEC_CONFIG;
	case STATE_SEC_CONFIG:
	case STATE_SEC_MACHINE:
	case STATE_SEC_HART:
	case STATE_SEC_CLINT:
	case STATE_SEC_PLIC:
	case STATE_SEC_UART:
		*want = state_section_name(d->last + 1);
		return type == d->last + 1;
	case STATE_SEC_FINISHER:
	case STATE_SEC_VIRTIO:
		if (!devices_done) {
			*want = "VIRTIO";
			return type == STATE_SEC_VIRTIO;
		}
		*want = "REPLAY, RAM or END";
		return type == STATE_SEC_REPLAY || type == STATE_SEC_RAM || type == STATE_SEC_END;
	default:
		*want = "RAM or END";
		return type == STATE_SEC_RAM || type == STATE_SEC_END;
	}
}

/* Room for n payload bytes. */
static int reserve(struct decoder *d, size_t n)
{
	if (n <= d->cap)
		return 0;
	size_t cap = d->cap ? d->cap : 4096;
	while (cap < n)
		cap *= 2;
	uint8_t *buf = realloc(d->buf, cap);
	if (!buf) {
		snprintf(d->err, d->errlen, "state: out of memory at byte %llu", (unsigned long long)d->offset);
		return -ENOMEM;
	}
	d->buf = buf;
	d->cap = cap;
	return 0;
}

/* Reads one section's payload into d->buf and checks its CRC. 1 with *type and *len set, or an
 * error; a stream that ends cleanly before END is truncated. */
static int read_section(struct decoder *d, uint32_t *type, uint32_t *len, uint64_t *start)
{
	uint8_t head[STATE_SECTION_HEAD], tail[STATE_SECTION_TAIL];
	size_t got;
	char where[64];
	*start = d->offset;
	int ret = read_exact(d, head, sizeof(head), &got);
	if (ret == -ENODATA && got == 0) {
		snprintf(d->err, d->errlen, "state: truncated at byte %llu: the state ends without an END section",
			 (unsigned long long)d->offset);
		return -EBADMSG;
	}
	if (ret)
		return read_fail(d, ret, "a section header", *start);
	*type = get_le32(head);
	*len = get_le32(head + 4);
	const char *name = state_section_name(*type), *want;
	if (!strcmp(name, "unknown")) {
		snprintf(d->err, d->errlen, "state: unknown section type %u at byte %llu", *type, (unsigned long long)*start);
		return -EBADMSG;
	}
	if (!in_place(d, *type, &want)) {
		snprintf(d->err, d->errlen, "state: section %s at byte %llu is out of place (expected %s)", name,
			 (unsigned long long)*start, want);
		return -EBADMSG;
	}
	if (*len > section_cap(*type)) {
		snprintf(d->err, d->errlen, "state: section %s at byte %llu: length %u above its cap %u", name,
			 (unsigned long long)*start, *len, section_cap(*type));
		return -EBADMSG;
	}
	snprintf(where, sizeof(where), "section %s", name);
	for (size_t done = 0; done < *len;) {
		size_t n = *len - done < READ_CHUNK ? *len - done : READ_CHUNK;
		ret = reserve(d, done + n);
		if (ret)
			return ret;
		ret = read_exact(d, d->buf + done, n, &got);
		if (ret)
			return read_fail(d, ret, where, *start);
		done += n;
	}
	ret = read_exact(d, tail, sizeof(tail), &got);
	if (ret)
		return read_fail(d, ret, where, *start);
	uint32_t crc = crc32c(crc32c(0, head, sizeof(head)), d->buf, *len);
	if (get_le32(tail) != crc) {
		snprintf(d->err, d->errlen, "state: bad CRC in section %s at byte %llu", name, (unsigned long long)*start);
		return -EBADMSG;
	}
	return 1;
}

/* Walks a payload into state: every byte consumed, no field refused. */
static int load_walk(struct decoder *d, uint32_t type, uint32_t len, uint64_t start,
		     void (*walk)(struct state_io *io, void *state), void *state)
{
	struct state_io io;
	state_io_load_init(&io, d->buf, len);
	walk(&io, state);
	const char *why = io.err == -ENODATA ? "payload too short" : io.err ? "a count above its cap"
			  : io.pos != len ? "bytes left over after the payload" : NULL;
	if (!why)
		return 0;
	snprintf(d->err, d->errlen, "state: section %s at byte %llu: %s", state_section_name(type),
		 (unsigned long long)start, why);
	return -EBADMSG;
}

static void format_mac(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

static void mib(uint64_t bytes, char *out, size_t len)
{
	if (bytes % (1u << 20) == 0)
		snprintf(out, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(out, len, "%llu bytes", (unsigned long long)bytes);
}

/* Names the first difference between this machine's configuration and the state's. */
static void name_difference(const struct machine_identity *here, const struct machine_identity *there, char *out,
			    size_t len)
{
	char a[32], b[32];
	if (here->mem_mib != there->mem_mib) {
		snprintf(out, len, "memory %llu MiB here, %llu MiB in the state", (unsigned long long)here->mem_mib,
			 (unsigned long long)there->mem_mib);
		return;
	}
	if (here->ndisks != there->ndisks) {
		snprintf(out, len, "%u disk(s) here, %u in the state", here->ndisks, there->ndisks);
		return;
	}
	for (unsigned i = 0; i < here->ndisks; i++) {
		if (here->disk_bytes[i] != there->disk_bytes[i]) {
			mib(here->disk_bytes[i], a, sizeof(a));
			mib(there->disk_bytes[i], b, sizeof(b));
			snprintf(out, len, "disk %u: %s here, %s in the state", i, a, b);
			return;
		}
		if (here->disk_read_only[i] != there->disk_read_only[i]) {
			snprintf(out, len, "disk %u: %s here, %s in the state", i,
				 here->disk_read_only[i] ? "read-only" : "writable",
				 there->disk_read_only[i] ? "read-only" : "writable");
			return;
		}
	}
	if (here->nnics != there->nnics) {
		snprintf(out, len, "%u NIC(s) here, %u in the state", here->nnics, there->nnics);
		return;
	}
	for (unsigned i = 0; i < here->nnics; i++) {
		if (memcmp(here->nic_mac[i], there->nic_mac[i], 6)) {
			format_mac(here->nic_mac[i], a);
			format_mac(there->nic_mac[i], b);
			snprintf(out, len, "NIC %u: MAC %s here, %s in the state", i, a, b);
			return;
		}
	}
	if (here->rng != there->rng) {
		snprintf(out, len, "virtio-rng %s here, %s in the state", here->rng ? "attached" : "absent",
			 there->rng ? "attached" : "absent");
		return;
	}
	if (here->bios != there->bios) {
		snprintf(out, len, "firmware %s here, %s in the state", here->bios ? "loaded" : "none",
			 there->bios ? "loaded" : "none");
		return;
	}
	static const struct {
		const char *what;
		size_t off;
	} images[] = {
		{ "firmware", offsetof(struct machine_identity, bios_digest) },
		{ "kernel", offsetof(struct machine_identity, kernel_digest) },
		{ "initrd", offsetof(struct machine_identity, initrd_digest) },
		{ "device tree (command line or layout)", offsetof(struct machine_identity, fdt_digest) },
	};
	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++) {
		uint64_t x, y;
		memcpy(&x, (const uint8_t *)here + images[i].off, sizeof(x));
		memcpy(&y, (const uint8_t *)there + images[i].off, sizeof(y));
		if (x != y) {
			snprintf(out, len, "%s: another image (digest %016llx here, %016llx in the state)", images[i].what,
				 (unsigned long long)x, (unsigned long long)y);
			return;
		}
	}
	snprintf(out, len, "configuration digest %016llx here, %016llx in the state",
		 (unsigned long long)here->config_digest, (unsigned long long)there->config_digest);
}

static int check_config(struct decoder *d, uint32_t len, uint64_t start)
{
	struct machine_identity there = { 0 };
	int ret = load_walk(d, STATE_SEC_CONFIG, len, start, identity_state_io, &there);
	if (ret)
		return ret;
	const struct machine_identity *here = machine_identity(d->m);
	if (there.config_digest == here->config_digest)
		return 0;
	char diff[256];
	name_difference(here, &there, diff, sizeof(diff));
	snprintf(d->err, d->errlen, "state: section CONFIG at byte %llu: saved for another configuration: %s",
		 (unsigned long long)start, diff);
	return -EINVAL;
}

/* Applies the device sections and drops RAM: before the first RAM section (or END). */
static int restore_devices(struct decoder *d, uint64_t start)
{
	char why[256];
	int ret = machine_restore(d->m, d->s, why, sizeof(why));
	if (ret) {
		snprintf(d->err, d->errlen, "state: the device sections before byte %llu do not fit this machine: %s",
			 (unsigned long long)start, why);
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	ret = d->keep_ram ? 0 : machine_ram_drop(d->m);
	if (ret) {
		snprintf(d->err, d->errlen, "state: cannot drop guest memory: %s", strerror(-ret));
		return ret;
	}
	d->restored = true;
	return 0;
}

static int load_ram(struct decoder *d, uint32_t len, uint64_t start)
{
	const char *why = NULL;
	uint64_t first = 0;
	uint32_t count = 0;
	if (len < STATE_RAM_RUN_HEAD) {
		why = "payload too short";
	} else {
		first = get_le64(d->buf);
		count = get_le32(d->buf + 8);
		if (count == 0 || count > STATE_RAM_RUN_MAX)
			why = "page count out of range (1..256)";
		else if (get_le32(d->buf + 12) != 0)
			why = "reserved field is not zero";
		else if (len != STATE_RAM_RUN_HEAD + (uint64_t)count * RAM_PAGE_SIZE)
			why = "length does not match the page count";
		else if (first < d->next_page)
			why = "run overlaps or precedes the previous one";
		else if (first > d->ram_pages || count > d->ram_pages - first)
			why = "run lies outside guest memory";
	}
	if (why) {
		snprintf(d->err, d->errlen, "state: section RAM at byte %llu: %s", (unsigned long long)start, why);
		return -EBADMSG;
	}
	size_t size;
	uint8_t *ram = machine_ram(d->m, &size);
	memcpy(ram + first * RAM_PAGE_SIZE, d->buf + STATE_RAM_RUN_HEAD, (size_t)count * RAM_PAGE_SIZE);
	d->next_page = first + count;
	d->st->ram_pages_written += count;
	return 0;
}

static int check_end(struct decoder *d, uint32_t len, uint64_t start)
{
	struct end_state end;
	int ret = load_walk(d, STATE_SEC_END, len, start, end_state_io, &end);
	if (ret)
		return ret;
	const char *why = end.sections != d->sections ? "section count differs from the sections read"
			  : end.reserved != 0 ? "reserved field is not zero"
			  : end.pages != d->st->ram_pages_written ? "page count differs from the pages read" : NULL;
	if (why) {
		snprintf(d->err, d->errlen, "state: section END at byte %llu: %s", (unsigned long long)start, why);
		return -EBADMSG;
	}
	return 0;
}

static int decode_section(struct decoder *d, uint32_t type, uint32_t len, uint64_t start)
{
	struct machine_state *s = d->s;
	switch (type) {
	case STATE_SEC_CONFIG:
		return check_config(d, len, start);
	case STATE_SEC_MACHINE:
		return load_walk(d, type, len, start, machine_core_state_io, s);
	case STATE_SEC_HART:
		return load_walk(d, type, len, start, cpu_state_io, &s->cpu);
	case STATE_SEC_CLINT:
		return load_walk(d, type, len, start, clint_state_io, &s->clint);
	case STATE_SEC_PLIC:
		return load_walk(d, type, len, start, plic_state_io, &s->plic);
	case STATE_SEC_UART:
		return load_walk(d, type, len, start, uart_state_io, &s->uart);
	case STATE_SEC_FINISHER:
		return load_walk(d, type, len, start, finisher_state_io, &s->finisher);
	case STATE_SEC_VIRTIO:
		return load_walk(d, type, len, start, virtio_state_io, s->virtio[d->virtio_seen++]);
	case STATE_SEC_REPLAY:
		if (d->extra) {
			memcpy(d->extra->data, d->buf, len);
			d->extra->len = len;
			d->extra->present = true;
		}
		return 0;
	case STATE_SEC_RAM:
		return load_ram(d, len, start);
	case STATE_SEC_END:
		return check_end(d, len, start);
	}
	return -EBADMSG;  /* read_section() lets no other type through */
}

static int decode_all(struct decoder *d)
{
	int ret = read_header(d);
	while (!ret) {
		uint32_t type = 0, len = 0;
		uint64_t start = 0;
		ret = read_section(d, &type, &len, &start);
		if (ret < 0)
			break;
		ret = 0;
		if ((type == STATE_SEC_RAM || type == STATE_SEC_END) && !d->restored)
			ret = restore_devices(d, start);
		if (!ret)
			ret = decode_section(d, type, len, start);
		if (ret)
			break;
		d->last = type;
		if (type == STATE_SEC_END)
			return 0;
		d->sections++;
	}
	return ret;
}

static int decode(struct machine *m, struct state_source src, struct state_extra *extra, bool keep_ram,
		  struct machine_state *scratch, struct state_stats *stats, char *err, size_t errlen)
{
	struct state_stats local;
	struct decoder d = { .src = src, .m = m, .extra = extra, .st = stats ? stats : &local, .err = err,
			     .errlen = errlen, .keep_ram = keep_ram };
	size_t ram_size;
	memset(d.st, 0, sizeof(*d.st));
	if (extra)
		extra->present = false;
	(void)machine_ram(m, &ram_size);
	d.ram_pages = ram_size / RAM_PAGE_SIZE;
	d.st->ram_pages = d.ram_pages;
	d.s = scratch ? scratch : machine_state_alloc();
	if (!d.s) {
		snprintf(err, errlen, "state: out of memory");
		return -ENOMEM;
	}
	int ret = decode_all(&d);
	d.st->bytes = d.offset;
	free(d.buf);
	if (!scratch)
		machine_state_free(d.s);
	return ret;
}

int state_decode(struct machine *m, struct state_source src, struct state_extra *extra, struct state_stats *stats,
		 char *err, size_t errlen)
{
	return decode(m, src, extra, false, NULL, stats, err, errlen);
}

int state_decode_keep_ram(struct machine *m, struct state_source src, struct machine_state *scratch,
			  struct state_stats *stats, char *err, size_t errlen)
{
	return decode(m, src, NULL, true, scratch, stats, err, errlen);
}

/* One whole section at buf: 0 with *type, the payload's place and length, or -EBADMSG. */
static int whole_section(const uint8_t *buf, size_t len, uint32_t want, const uint8_t **payload, uint32_t *plen,
			 char *err, size_t errlen)
{
	if (len < STATE_SECTION_HEAD + STATE_SECTION_TAIL) {
		snprintf(err, errlen, "state: %zu bytes cannot hold a section", len);
		return -EBADMSG;
	}
	uint32_t type = get_le32(buf), n = get_le32(buf + 4);
	if (type != want) {
		snprintf(err, errlen, "state: section %s (type %u) where %s belongs", state_section_name(type), type,
			 state_section_name(want));
		return -EBADMSG;
	}
	if (n > section_cap(type) || n > len - STATE_SECTION_HEAD - STATE_SECTION_TAIL) {
		snprintf(err, errlen, "state: section %s: length %u above its cap or beyond the %zu bytes given",
			 state_section_name(type), n, len);
		return -EBADMSG;
	}
	if (get_le32(buf + STATE_SECTION_HEAD + n) != crc32c(0, buf, STATE_SECTION_HEAD + n)) {
		snprintf(err, errlen, "state: bad CRC in section %s", state_section_name(type));
		return -EBADMSG;
	}
	*payload = buf + STATE_SECTION_HEAD;
	*plen = n;
	return 0;
}

int state_ram_section_apply(struct machine *m, const uint8_t *buf, size_t len, size_t *used, uint32_t *pages,
			    char *err, size_t errlen)
{
	const uint8_t *pl;
	uint32_t n;
	int ret = whole_section(buf, len, STATE_SEC_RAM, &pl, &n, err, errlen);
	if (ret)
		return ret;
	size_t size;
	uint8_t *ram = machine_ram(m, &size);
	uint64_t ram_pages = size / RAM_PAGE_SIZE, first = 0;
	uint32_t count = 0;
	const char *why = NULL;
	if (n < STATE_RAM_RUN_HEAD) {
		why = "payload too short";
	} else {
		first = get_le64(pl);
		count = get_le32(pl + 8);
		if (count == 0 || count > STATE_RAM_RUN_MAX)
			why = "page count out of range (1..256)";
		else if (get_le32(pl + 12) != 0)
			why = "reserved field is not zero";
		else if (n != STATE_RAM_RUN_HEAD + (uint64_t)count * RAM_PAGE_SIZE)
			why = "length does not match the page count";
		else if (first > ram_pages || count > ram_pages - first)
			why = "run lies outside guest memory";
	}
	if (why) {
		snprintf(err, errlen, "state: section RAM: %s", why);
		return -EBADMSG;
	}
	memcpy(ram + first * RAM_PAGE_SIZE, pl + STATE_RAM_RUN_HEAD, (size_t)count * RAM_PAGE_SIZE);
	*used = STATE_SECTION_HEAD + n + STATE_SECTION_TAIL;
	*pages = count;
	return 0;
}

int state_config_check(const struct machine *m, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	const uint8_t *pl;
	uint32_t n;
	int ret = whole_section(buf, len, STATE_SEC_CONFIG, &pl, &n, err, errlen);
	if (ret)
		return ret;
	if (len != STATE_SECTION_HEAD + n + STATE_SECTION_TAIL) {
		snprintf(err, errlen, "state: bytes left over after section CONFIG");
		return -EBADMSG;
	}
	struct machine_identity there = { 0 };
	struct state_io io;
	state_io_load_init(&io, pl, n);
	identity_state_io(&io, &there);
	if (io.err || io.pos != n) {
		snprintf(err, errlen, "state: section CONFIG: %s", io.err ? "malformed payload" : "bytes left over");
		return -EBADMSG;
	}
	const struct machine_identity *here = machine_identity(m);
	if (there.config_digest == here->config_digest)
		return 0;
	char diff[256];
	name_difference(here, &there, diff, sizeof(diff));
	snprintf(err, errlen, "another configuration: %s", diff);
	return -EINVAL;
}

int state_decode_identity(struct state_source src, struct machine_identity *id, char *err, size_t errlen)
{
	struct state_stats st = { 0 };
	struct decoder d = { .src = src, .st = &st, .err = err, .errlen = errlen };
	uint32_t type = 0, len = 0;
	uint64_t start = 0;
	d.s = machine_state_alloc();
	if (!d.s) {
		snprintf(err, errlen, "state: out of memory");
		return -ENOMEM;
	}
	int ret = read_header(&d);
	if (!ret && (ret = read_section(&d, &type, &len, &start)) > 0)
		ret = 0;
	if (!ret) {
		memset(id, 0, sizeof(*id));
		ret = load_walk(&d, STATE_SEC_CONFIG, len, start, identity_state_io, id);
	}
	free(d.buf);
	machine_state_free(d.s);
	return ret;
}
