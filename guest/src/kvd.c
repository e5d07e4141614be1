/*
 * kvd.c — the guest's key-value server: TCP port 7000, a line protocol, every acknowledged SET
 * durable on the virtio disk.
 *
 * Protocol (one request per line, "\n" or "\r\n"; see guest/README.md):
 *   SET <key> <value>   -> OK            (value: the rest of the line, may contain spaces)
 *   GET <key>           -> VALUE <value> | NONE
 *   anything malformed  -> ERR <reason>
 *
 * Durability: the disk (default /dev/vda) holds an append-only log, format in guest/README.md: a
 * header sector (magic, version, random generation) and records (magic, lengths, generation,
 * sequence number, CRC-32C, key, value). One poll() loop serves every client; each pass collects the
 * SETs of all clients into a batch, writes the batch padded to whole sectors, fdatasync()s, and only
 * then applies the SETs to memory and answers OK (group commit). A client with an unanswered SET
 * waits before its next line is parsed, so its answers stay in order and nobody reads an unsynced
 * value. At start the log is replayed up to the first record that fails any check (a torn tail), and
 * the space a torn batch could have reached is zeroed, so its leftovers can never be replayed later.
 *
 * Usage: kvd [-d DEVICE] [-p PORT]. A device whose first 4 KiB are zero is formatted; one with other
 * contents is refused unless FTVM_KVD_FORMAT=1 (kernel command line ftvm.kvd.format=1). When
 * FTVM_READY_FD names a file descriptor, one byte is written to it once the server is listening.
 */
#include "applets.h"
#include "guestlib.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define KVD_DEFAULT_DEVICE "/dev/vda"
#define KVD_DEFAULT_PORT 7000
#define KVD_LISTEN_BACKLOG 128
#define KVD_MAX_CLIENTS 1000

#define KEY_MAX 250
#define VALUE_MAX 4000
/* "SET " + key + " " + value + "\r\n", with room to spare. */
#define LINE_MAX_BYTES 4352
#define CLIENT_OUT_MAX (64 * 1024)

/* On-disk log, little-endian. */
#define LOG_SECTOR 512
#define LOG_DATA_START 4096
#define LOG_VERSION 1
#define LOG_HEADER_MAGIC "FTVMKVD1"
#define LOG_HEADER_MAGIC_LEN 8
#define LOG_HEADER_OFF_VERSION 8
#define LOG_HEADER_OFF_SECTOR 12
#define LOG_HEADER_OFF_GENERATION 16
#define LOG_HEADER_OFF_DATA_START 24
#define LOG_HEADER_OFF_CRC 32
#define LOG_HEADER_CRC_COVERS 32
#define LOG_RECORD_MAGIC 0x4C44564Bu /* "KVDL" */
#define REC_OFF_MAGIC 0
#define REC_OFF_KEY_LEN 4
#define REC_OFF_VALUE_LEN 6
#define REC_OFF_GENERATION 8
#define REC_OFF_SEQ 16
#define REC_OFF_CRC 24
#define REC_HEADER_SIZE 32
#define REC_MAX_SIZE (REC_HEADER_SIZE + KEY_MAX + VALUE_MAX)
/* A batch never exceeds this; after a crash this much past the torn point is zeroed. */
#define BATCH_MAX_BYTES (256 * 1024)
#define REPLAY_WINDOW (1024 * 1024)

struct entry {
	struct entry *next;
	uint32_t hash;
	uint16_t key_len;
	uint16_t value_len;
	char *value;
	char key[];
};

struct table {
	struct entry **buckets;
	size_t nbuckets;
	size_t count;
};

struct client {
	int fd;
	bool closing;      /* drop once the output is flushed */
	bool eof;          /* the peer closed its side: answer what it sent, then drop it */
	bool discarding;   /* skipping the rest of an overlong line */
	unsigned pending;  /* SETs of this client in the current batch */
	size_t in_len;
	char in[LINE_MAX_BYTES];
	char *out;
	size_t out_len, out_cap;
};

struct pending_set {
	struct client *client;
	size_t rec_off; /* offset of the record in the batch buffer */
};

struct kvlog {
	int fd;
	uint64_t size;
	uint64_t generation;
	uint64_t next_seq;
	uint64_t end;  /* where the next batch goes (sector aligned) */
	unsigned char *batch;
	size_t batch_len;
	struct pending_set *sets;
	size_t nsets, sets_cap;
};

struct server {
	struct table table;
	struct kvlog log;
	int listen_fd;
	struct client *clients[KVD_MAX_CLIENTS];
	size_t nclients;
};

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const unsigned char *p)
{
	return get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static uint64_t get_le64(const unsigned char *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- in-memory table ---- */

static uint32_t hash_key(const char *key, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return h;
}

static struct entry *table_find(const struct table *t, const char *key, size_t len, uint32_t hash)
{
	struct entry *e = t->buckets[hash & (t->nbuckets - 1)];

	for (; e; e = e->next)
		if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static int table_grow(struct table *t)
{
	size_t n = t->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return 0;
}

static int GUEST_MUST_CHECK table_set(struct table *t, const char *key, size_t key_len,
				      const char *value, size_t value_len)
{
	uint32_t hash = hash_key(key, key_len);
	struct entry *e = table_find(t, key, key_len, hash);
	char *copy = malloc(value_len ? value_len : 1);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, value, value_len);
	if (!e) {
		if (t->count >= t->nbuckets && table_grow(t) < 0) {
			free(copy);
			return -ENOMEM;
		}
		e = malloc(sizeof(*e) + key_len);
		if (!e) {
			free(copy);
			return -ENOMEM;
		}
		memcpy(e->key, key, key_len);
		e->key_len = (uint16_t)key_len;
		e->hash = hash;
		e->value = NULL;
		e->next = t->buckets[hash & (t->nbuckets - 1)];
		t->buckets[hash & (t->nbuckets - 1)] = e;
		t->count++;
	}
	free(e->value);
	e->value = copy;
	e->value_len = (uint16_t)value_len;
	return 0;
}

static int table_init(struct table *t)
{
	t->nbuckets = 1024;
	t->count = 0;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	return t->buckets ? 0 : -ENOMEM;
}

/* ---- the log ---- */

static void encode_record(unsigned char *p, const struct kvlog *log, uint64_t seq, const char *key,
			  size_t key_len, const char *value, size_t value_len)
{
	memset(p, 0, REC_HEADER_SIZE);
	put_le32(p + REC_OFF_MAGIC, LOG_RECORD_MAGIC);
	put_le16(p + REC_OFF_KEY_LEN, (uint16_t)key_len);
	put_le16(p + REC_OFF_VALUE_LEN, (uint16_t)value_len);
	put_le64(p + REC_OFF_GENERATION, log->generation);
	put_le64(p + REC_OFF_SEQ, seq);
	memcpy(p + REC_HEADER_SIZE, key, key_len);
	memcpy(p + REC_HEADER_SIZE + key_len, value, value_len);
	uint32_t crc = guest_crc32c(0, p, REC_OFF_CRC);
	crc = guest_crc32c(crc, p + REC_HEADER_SIZE, key_len + value_len);
	put_le32(p + REC_OFF_CRC, crc);
}

/* Reads the log through a window buffer; replay touches each byte once, front to back. */
struct log_reader {
	const struct kvlog *log;
	unsigned char *buf;
	uint64_t base;
	size_t len;
};

static int reader_get(struct log_reader *r, uint64_t off, size_t len, const unsigned char **out)
{
	if (off + len > r->log->size)
		return -ENOSPC;
	if (off < r->base || off + len > r->base + r->len) {
		size_t n = (size_t)min_u64(REPLAY_WINDOW, r->log->size - off);
		int err = guest_pread_all(r->log->fd, r->buf, n, (off_t)off);
		if (err < 0)
			return err;
		r->base = off;
		r->len = n;
	}
	*out = r->buf + (off - r->base);
	return 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Validates the record at off; its total size in *size, or -EINVAL where the log ends. */
static int check_record(const struct kvlog *log, struct log_reader *r, uint64_t off,
			const unsigned char **rec, size_t *size)
{
	const unsigned char *h;
	int err = reader_get(r, off, REC_HEADER_SIZE, &h);

	if (err < 0)
		return err == -ENOSPC ? -EINVAL : err;
	size_t key_len = get_le16(h + REC_OFF_KEY_LEN), value_len = get_le16(h + REC_OFF_VALUE_LEN);
	if (get_le32(h + REC_OFF_MAGIC) != LOG_RECORD_MAGIC || key_len < 1 || key_len > KEY_MAX ||
	    value_len < 1 || value_len > VALUE_MAX || get_le64(h + REC_OFF_GENERATION) != log->generation ||
	    get_le64(h + REC_OFF_SEQ) != log->next_seq)
		return -EINVAL;
	*size = REC_HEADER_SIZE + key_len + value_len;
	err = reader_get(r, off, *size, rec);
	if (err < 0)
		return err == -ENOSPC ? -EINVAL : err;
	uint32_t crc = guest_crc32c(0, *rec, REC_OFF_CRC);
	crc = guest_crc32c(crc, *rec + REC_HEADER_SIZE, key_len + value_len);
	return crc == get_le32(*rec + REC_OFF_CRC) ? 0 : -EINVAL;
}

/* Replays every valid record into the table; sets log->end where the next batch goes. */
static int log_replay(struct kvlog *log, struct table *t, uint64_t *records)
{
	struct log_reader r = { .log = log, .buf = malloc(REPLAY_WINDOW) };
	uint64_t off = LOG_DATA_START;
	int err = 0;

	*records = 0;
	if (!r.buf)
		return -ENOMEM;
	while (off + REC_HEADER_SIZE <= log->size) {
		const unsigned char *rec;
		size_t size;

		/* Zeros to the end of the sector: padding after a batch (a record starts with a
		 * nonzero magic). A sector that starts with a zero magic was never written: the end. */
		size_t rest = off % LOG_SECTOR ? LOG_SECTOR - off % LOG_SECTOR : sizeof(uint32_t);
		err = reader_get(&r, off, rest, &rec);
		if (err < 0)
			goto out;
		if (all_zero(rec, rest)) {
			if (off % LOG_SECTOR == 0)
				break;
			off += rest;
			continue;
		}
		err = check_record(log, &r, off, &rec, &size);
		if (err == -EINVAL) {
			guest_log("log ends with an invalid record at byte %llu (torn write?); ignored",
				  (unsigned long long)off);
			err = 0;
			break;
		}
		if (err < 0)
			goto out;
		size_t key_len = get_le16(rec + REC_OFF_KEY_LEN);
		err = table_set(t, (const char *)rec + REC_HEADER_SIZE, key_len,
				(const char *)rec + REC_HEADER_SIZE + key_len,
				get_le16(rec + REC_OFF_VALUE_LEN));
		if (err < 0)
			goto out;
		log->next_seq++;
		(*records)++;
		off += size;
	}
	log->end = off; /* log_open() clears the tail from here, then rounds up */
out:
	free(r.buf);
	return err;
}

/* Zeroes [from, from + BATCH_MAX_BYTES + one sector) unless it already is zero, so no remnant of a
 * torn batch can follow the records written from now on. */
static int log_clear_tail(struct kvlog *log, uint64_t from)
{
	uint64_t start = from / LOG_SECTOR * LOG_SECTOR;
	uint64_t stop = min_u64(log->size, round_up(from, LOG_SECTOR) + BATCH_MAX_BYTES + LOG_SECTOR);
	size_t len = (size_t)(stop - start), keep = (size_t)(from - start);
	unsigned char *buf;
	int err;

	if (stop <= from)
		return 0;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	err = guest_pread_all(log->fd, buf, len, (off_t)start);
	if (err < 0 || all_zero(buf + keep, len - keep))
		goto out;
	memset(buf + keep, 0, len - keep);
	err = guest_pwrite_all(log->fd, buf, len, (off_t)start);
	if (err == 0 && fdatasync(log->fd) < 0)
		err = -errno;
out:
	free(buf);
	return err;
}

static int log_format(struct kvlog *log)
{
	unsigned char *sector = calloc(1, LOG_DATA_START);
	int err;

	if (!sector)
		return -ENOMEM;
	err = guest_random(&log->generation, sizeof(log->generation));
	if (err < 0)
		goto out;
	memcpy(sector, LOG_HEADER_MAGIC, LOG_HEADER_MAGIC_LEN);
	put_le32(sector + LOG_HEADER_OFF_VERSION, LOG_VERSION);
	put_le32(sector + LOG_HEADER_OFF_SECTOR, LOG_SECTOR);
	put_le64(sector + LOG_HEADER_OFF_GENERATION, log->generation);
	put_le64(sector + LOG_HEADER_OFF_DATA_START, LOG_DATA_START);
	put_le32(sector + LOG_HEADER_OFF_CRC, guest_crc32c(0, sector, LOG_HEADER_CRC_COVERS));
	/* The data area's first stretch first, then the header that makes it a log. */
	err = log_clear_tail(log, LOG_DATA_START);
	if (err == 0)
		err = guest_pwrite_all(log->fd, sector, LOG_DATA_START, 0);
	if (err == 0 && fdatasync(log->fd) < 0)
		err = -errno;
	if (err == 0)
		guest_log("formatted a new log (generation %016llx)", (unsigned long long)log->generation);
out:
	free(sector);
	return err;
}

/* Opens the log device, formatting it if blank, and replays it into t. */
static int log_open(struct kvlog *log, struct table *t, const char *path)
{
	unsigned char head[LOG_DATA_START];
	uint64_t records;
	int err;

	memset(log, 0, sizeof(*log));
	log->next_seq = 1;
	log->fd = open(path, O_RDWR | O_CLOEXEC);
	if (log->fd < 0) {
		err = -errno;
		guest_log("cannot open log device %s: %s", path, strerror(-err));
		return err;
	}
	err = guest_device_size(log->fd, &log->size);
	if (err < 0 || log->size < LOG_DATA_START + BATCH_MAX_BYTES + LOG_SECTOR) {
		guest_log("%s: too small or no size (%llu bytes)", path, (unsigned long long)log->size);
		return err < 0 ? err : -ENOSPC;
	}
	log->batch = malloc(BATCH_MAX_BYTES + LOG_SECTOR);
	if (!log->batch)
		return -ENOMEM;
	err = guest_pread_all(log->fd, head, sizeof(head), 0);
	if (err < 0)
		return err;
	if (memcmp(head, LOG_HEADER_MAGIC, LOG_HEADER_MAGIC_LEN) != 0) {
		const char *force = getenv("FTVM_KVD_FORMAT");
		if (!all_zero(head, sizeof(head)) && !(force && strcmp(force, "1") == 0)) {
			guest_log("%s holds something that is not a kvd log; refusing to format it "
				  "(boot with ftvm.kvd.format=1 to override)", path);
			return -EINVAL;
		}
		err = log_format(log);
		if (err < 0)
			return err;
		log->end = LOG_DATA_START;
	} else {
		if (get_le32(head + LOG_HEADER_OFF_VERSION) != LOG_VERSION ||
		    get_le32(head + LOG_HEADER_OFF_SECTOR) != LOG_SECTOR ||
		    get_le64(head + LOG_HEADER_OFF_DATA_START) != LOG_DATA_START ||
		    get_le32(head + LOG_HEADER_OFF_CRC) != guest_crc32c(0, head, LOG_HEADER_CRC_COVERS)) {
			guest_log("%s: kvd log header is damaged or of another version", path);
			return -EINVAL;
		}
		log->generation = get_le64(head + LOG_HEADER_OFF_GENERATION);
		err = log_replay(log, t, &records);
		if (err < 0)
			return err;
		err = log_clear_tail(log, log->end);
		if (err < 0)
			return err;
		log->end = round_up(log->end, LOG_SECTOR);
		guest_log("replayed %llu records, %zu keys; log uses %llu of %llu bytes",
			  (unsigned long long)records, t->count, (unsigned long long)log->end,
			  (unsigned long long)log->size);
	}
	return 0;
}

/* ---- clients and requests ---- */

enum request_kind { REQ_SET, REQ_GET, REQ_ERROR };

struct request {
	enum request_kind kind;
	const char *key, *value, *error;
	size_t key_len, value_len;
};

static bool valid_key(const char *key, size_t len)
{
	if (len < 1 || len > KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

/* Parses one line (without its "\n"); the request points into the line. */
static void parse_request(const char *line, size_t len, struct request *r)
{
	const char *sp, *end = line + len;

	memset(r, 0, sizeof(*r));
	r->kind = REQ_ERROR;
	if (len && line[len - 1] == '\r')
		end--;
	if (end == line) {
		r->error = "ERR empty line";
		return;
	}
	sp = memchr(line, ' ', (size_t)(end - line));
	size_t cmd_len = sp ? (size_t)(sp - line) : (size_t)(end - line);
	if (cmd_len == 3 && strncasecmp(line, "SET", 3) == 0) {
		const char *key = sp ? sp + 1 : end;
		const char *key_end = memchr(key, ' ', (size_t)(end - key));
		r->error = "ERR usage: SET key value";
		if (!key_end || key_end + 1 >= end)
			return;
		r->key = key;
		r->key_len = (size_t)(key_end - key);
		r->value = key_end + 1;
		r->value_len = (size_t)(end - r->value);
		if (!valid_key(r->key, r->key_len)) {
			r->error = r->key_len > KEY_MAX ? "ERR key too long" : "ERR bad key";
			return;
		}
		if (r->value_len > VALUE_MAX) {
			r->error = "ERR value too long";
			return;
		}
		r->kind = REQ_SET;
	} else if (cmd_len == 3 && strncasecmp(line, "GET", 3) == 0) {
		r->error = "ERR usage: GET key";
		if (!sp)
			return;
		r->key = sp + 1;
		r->key_len = (size_t)(end - r->key);
		if (r->key_len > KEY_MAX) {
			r->error = "ERR key too long";
			return;
		}
		if (!valid_key(r->key, r->key_len))
			return;
		r->kind = REQ_GET;
	} else {
		r->error = "ERR unknown command";
	}
}

/* Queues "<a><b>\n" for the client. Output below CLIENT_OUT_MAX is guaranteed by the caller's
 * back-pressure (client_process stops while half of it is in use). */
static int client_reply(struct client *c, const char *a, const char *b, size_t b_len)
{
	size_t a_len = strlen(a), need = c->out_len + a_len + b_len + 1;

	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p)
			return -ENOMEM;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, a, a_len);
	memcpy(c->out + c->out_len + a_len, b, b_len);
	c->out[need - 1] = '\n';
	c->out_len = need;
	return 0;
}

/* Writes the batch (whole sectors), syncs it, then applies the SETs and answers OK. An I/O error
 * is fatal: after a failed write or sync nothing can be promised about the disk. */
static int batch_commit(struct server *s)
{
	struct kvlog *log = &s->log;
	size_t len = (size_t)round_up(log->batch_len, LOG_SECTOR);
	int err;

	if (!log->nsets)
		return 0;
	memset(log->batch + log->batch_len, 0, len - log->batch_len);
	err = guest_pwrite_all(log->fd, log->batch, len, (off_t)log->end);
	if (err == 0 && fdatasync(log->fd) < 0)
		err = -errno;
	if (err < 0) {
		guest_log("writing the log: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < log->nsets; i++) {
		const unsigned char *rec = log->batch + log->sets[i].rec_off;
		size_t key_len = get_le16(rec + REC_OFF_KEY_LEN);
		struct client *c = log->sets[i].client;
		err = table_set(&s->table, (const char *)rec + REC_HEADER_SIZE, key_len,
				(const char *)rec + REC_HEADER_SIZE + key_len,
				get_le16(rec + REC_OFF_VALUE_LEN));
		if (err == 0)
			err = client_reply(c, "OK", "", 0);
		if (err < 0)
			return err;
		c->pending--;
	}
	log->end += len;
	log->batch_len = 0;
	log->nsets = 0;
	return 0;
}

/* Adds a SET to the batch (committing a full batch first). -ENOSPC when the log is full. */
static int batch_add(struct server *s, struct client *c, const struct request *r)
{
	struct kvlog *log = &s->log;
	size_t size = REC_HEADER_SIZE + r->key_len + r->value_len;
	int err;

	/* Commit first when the record does not fit, so an "ERR log full" follows earlier OKs. */
	if (log->batch_len + size > BATCH_MAX_BYTES ||
	    log->end + round_up(log->batch_len + size, LOG_SECTOR) > log->size) {
		err = batch_commit(s);
		if (err < 0)
			return err;
	}
	if (log->end + round_up(size, LOG_SECTOR) > log->size)
		return -ENOSPC;
	if (log->nsets == log->sets_cap) {
		size_t cap = log->sets_cap ? log->sets_cap * 2 : 64;
		struct pending_set *p = realloc(log->sets, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		log->sets = p;
		log->sets_cap = cap;
	}
	encode_record(log->batch + log->batch_len, log, log->next_seq, r->key, r->key_len, r->value,
		      r->value_len);
	log->sets[log->nsets++] = (struct pending_set){ .client = c, .rec_off = log->batch_len };
	log->batch_len += size;
	log->next_seq++;
	c->pending++;
	return 0;
}

/* Answers one parsed request; SETs go to the batch. Returns -errno only for fatal errors. */
static int handle_request(struct server *s, struct client *c, const struct request *r)
{
	const struct entry *e;
	int err;

	switch (r->kind) {
	case REQ_SET:
		err = batch_add(s, c, r);
		if (err == -ENOSPC)
			return client_reply(c, "ERR log full", "", 0);
		return err;
	case REQ_GET:
		e = table_find(&s->table, r->key, r->key_len, hash_key(r->key, r->key_len));
		if (!e)
			return client_reply(c, "NONE", "", 0);
		return client_reply(c, "VALUE ", e->value, e->value_len);
	case REQ_ERROR:
	default:
		return client_reply(c, r->error, "", 0);
	}
}

/* Handles the client's complete lines until it must wait: for its SETs to commit before any
 * other request (answers stay in order, reads see only durable values), or for its output to
 * drain. Returns -errno only for fatal errors. */
static int client_process(struct server *s, struct client *c)
{
	size_t start = 0;
	int err = 0;

	while (!c->closing && c->out_len < CLIENT_OUT_MAX / 2) {
		char *line = c->in + start, *nl = memchr(line, '\n', c->in_len - start);
		struct request r;

		if (!nl) {
			if (c->discarding) {
				start = c->in_len;
			} else if (start == 0 && c->in_len == sizeof(c->in) && !c->pending) {
				err = client_reply(c, "ERR line too long", "", 0);
				c->discarding = true;
				start = c->in_len;
			}
			break;
		}
		if (c->discarding) {
			c->discarding = false;
			start = (size_t)(nl + 1 - c->in);
			continue;
		}
		parse_request(line, (size_t)(nl - line), &r);
		if (c->pending && r.kind != REQ_SET)
			break;
		err = handle_request(s, c, &r);
		if (err < 0)
			break;
		start = (size_t)(nl + 1 - c->in);
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	return err;
}

static void client_flush(struct client *c)
{
	while (c->out_len && !c->closing) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->closing = true;
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
}

/* Reads what the client sent; an orderly close is handled once its answers are out. */
static void client_read(struct client *c)
{
	while (c->in_len < sizeof(c->in)) {
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->eof = true;
			return;
		}
		c->in_len += (size_t)n;
	}
}

static void server_accept(struct server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;
		struct client *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				guest_log("accept: %s", strerror(errno));
			return;
		}
		c = s->nclients < KVD_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			guest_log("refusing a client: %zu connected", s->nclients);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		s->clients[s->nclients++] = c;
	}
}

static void server_drop_closed(struct server *s)
{
	for (size_t i = 0; i < s->nclients;) {
		struct client *c = s->clients[i];
		if (!c->closing || c->pending) {
			i++;
			continue;
		}
		close(c->fd);
		free(c->out);
		free(c);
		s->clients[i] = s->clients[--s->nclients];
	}
}

/* One round: every client processes what it can, the batch commits; repeat while commits free
 * waiting clients. */
static int server_process(struct server *s)
{
	int err;

	do {
		for (size_t i = 0; i < s->nclients; i++) {
			err = client_process(s, s->clients[i]);
			if (err < 0)
				return err;
		}
		if (!s->log.nsets)
			break;
		err = batch_commit(s);
		if (err < 0)
			return err;
	} while (1);
	return 0;
}

/* True when the client has a complete line it could handle now (no poll event would say so). */
static bool client_has_work(const struct client *c)
{
	return !c->closing && !c->pending && c->out_len < CLIENT_OUT_MAX / 2 &&
	       memchr(c->in, '\n', c->in_len) != NULL;
}

static int server_run(struct server *s)
{
	static struct pollfd pfds[KVD_MAX_CLIENTS + 1];
	int err;

	for (;;) {
		size_t n = 0;
		int timeout = -1;

		pfds[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
		for (size_t i = 0; i < s->nclients; i++) {
			struct client *c = s->clients[i];
			short events = 0;
			if (c->in_len < sizeof(c->in) && !c->eof)
				events |= POLLIN;
			if (c->out_len)
				events |= POLLOUT;
			if (client_has_work(c))
				timeout = 0;
			pfds[n++] = (struct pollfd){ .fd = c->fd, .events = events };
		}
		if (poll(pfds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Clients accepted below are not in pfds yet; they are polled next round. */
		for (size_t i = 0; i + 1 < n; i++) {
			if (pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(s->clients[i]);
			if (pfds[i + 1].revents & POLLOUT)
				client_flush(s->clients[i]);
		}
		if (pfds[0].revents & POLLIN)
			server_accept(s);
		err = server_process(s);
		if (err < 0)
			return err;
		for (size_t i = 0; i < s->nclients; i++) {
			struct client *c = s->clients[i];
			client_flush(c);
			if (c->eof && !c->out_len && !client_has_work(c))
				c->closing = true;
		}
		server_drop_closed(s);
	}
}

static int server_listen(struct server *s, unsigned port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				    .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1;

	s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return -errno;
	setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(s->listen_fd, KVD_LISTEN_BACKLOG) < 0)
		return -errno;
	return 0;
}

static void signal_ready(void)
{
	const char *text = getenv("FTVM_READY_FD");
	int fd;

	if (!text)
		return;
	fd = atoi(text);
	if (fd <= STDERR_FILENO || write(fd, "1", 1) != 1)
		guest_log("cannot report readiness on fd %s", text);
	close(fd);
	unsetenv("FTVM_READY_FD");
}

int kvd_main(int argc, char **argv)
{
	static struct server server;
	const char *device = KVD_DEFAULT_DEVICE;
	unsigned long port = KVD_DEFAULT_PORT;
	int opt, err;

	while ((opt = getopt(argc, argv, "d:p:")) != -1) {
		switch (opt) {
		case 'd':
			device = optarg;
			break;
		case 'p':
			port = strtoul(optarg, NULL, 10);
			if (port == 0 || port > 65535) {
				guest_log("bad port '%s'", optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: kvd [-d DEVICE] [-p PORT]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	err = table_init(&server.table);
	if (err == 0)
		err = log_open(&server.log, &server.table, device);
	if (err < 0) {
		guest_log("cannot start: %s", strerror(-err));
		return 1;
	}
	err = server_listen(&server, (unsigned)port);
	if (err < 0) {
		guest_log("cannot listen on port %lu: %s", port, strerror(-err));
		return 1;
	}
	guest_log("listening on port %lu, log on %s", port, device);
	signal_ready();
	err = server_run(&server);
	guest_log("stopping: %s", strerror(-err));
	return 1;
}
