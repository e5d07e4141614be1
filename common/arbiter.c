/*
 * arbiter.c — Disk Paxos on one shared disk: the per-epoch test-and-set of arbiter.h.
 *
 * The area (docs/arbiter.md has the byte layout): sector 0 is the header; then for each node two
 * copies of its decision record; then for each epoch slot and each node two copies of that node's
 * Disk Paxos block. Only a block's owner writes it. Every sector carries magic, format version,
 * kind, its own index, the area id and VM name, and a CRC32C. A node writes its block or record
 * alternately to copy (seq & 1), so a write torn by a crash leaves the previous state readable
 * instead of a hole; read_pair() says how readers pick a copy.
 *
 * claim(e, node), one attempt (claim_once):
 *   0. Read every node's record. If one holds an epoch above e, refuse (-ESTALE). Else if one
 *      already names e's winner, answer from it.
 *   1. Read every block of slot e % slots (a block of an older epoch counts as empty; one of a newer
 *      epoch means e is superseded: -ESTALE). Keep our own block's bal/inp: they may be what made a
 *      value chosen before we crashed.
 *   2. Phase 1: pick a ballot above every mbal seen (low bits = our node id), write our block with
 *      mbal = ballot, read every other block. A higher mbal means contention: back off, go to 0.
 *      Otherwise adopt the inp of the block with the highest bal, or our own node id if none.
 *   3. Phase 2: write bal = ballot, inp = value; read every other block again; a higher mbal: go
 *      to 0. Otherwise the value is chosen.
 *   4. Append (e, value) to our record; return WON if value == node, LOST otherwise.
 * I/O errors restart the attempt after a backoff (the disk may come back); corruption and foreign
 * sectors end the claim with an error: no claim is granted on doubt.
 */
#include "common/arbiter.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/arbiter_io.h"
#include "util/byteorder.h"
#include "util/crc32c.h"

#define DIAG_MODULE "arbiter"
#include "util/diag.h"
#include "util/time.h"

/* Sector kinds and format. */
static const uint8_t ARB_MAGIC[8] = { 'F', 'T', 'V', 'M', 'A', 'R', 'B', '1' };
#define ARB_VERSION 1u
#define KIND_HEADER 1u
#define KIND_RECORD 2u
#define KIND_BLOCK 3u

/* Common prefix of every sector (little-endian). */
#define OFF_MAGIC 0u
#define OFF_VERSION 8u
#define OFF_KIND 12u
#define OFF_INDEX 16u
#define OFF_AREA_ID 24u
#define AREA_ID_LEN 16u
_Static_assert(AREA_ID_LEN == ARBITER_AREA_ID_LEN, "arbiter.h names the area id's length");
#define OFF_VM_NAME 40u
#define VM_NAME_FIELD (ARBITER_VM_NAME_MAX + 1u)
#define OFF_CRC 104u
#define OFF_PAYLOAD 112u

/* Header payload. */
#define OFF_HDR_SECTOR_SIZE (OFF_PAYLOAD + 0u)
#define OFF_HDR_NODES (OFF_PAYLOAD + 4u)
#define OFF_HDR_SLOTS (OFF_PAYLOAD + 8u)
#define OFF_HDR_HISTORY (OFF_PAYLOAD + 12u)
#define OFF_HDR_SECTORS (OFF_PAYLOAD + 16u)

/* Record and block payloads both start with the copy sequence number. */
#define OFF_SEQ (OFF_PAYLOAD + 0u)
#define OFF_REC_COUNT (OFF_PAYLOAD + 8u)
#define OFF_REC_ENTRIES (OFF_PAYLOAD + 16u)
#define REC_ENTRY_SIZE 16u /* epoch u64, winner u32, reserved u32 */
#define REC_ENTRY_WINNER 8u
#define RECORD_HISTORY 16u /* decisions each node remembers; fits a 512-byte sector */
#define OFF_BLK_EPOCH (OFF_PAYLOAD + 8u)
#define OFF_BLK_MBAL (OFF_PAYLOAD + 16u)
#define OFF_BLK_BAL (OFF_PAYLOAD + 24u)
#define OFF_BLK_INP (OFF_PAYLOAD + 32u)

#define MIN_SECTOR 512u
#define COPIES 2u
#define DEFAULT_SLOTS 64u
#define MAX_SLOTS 4096u
#define INP_NONE 0xffffffffu
#define BALLOT_NODE_BITS 8u /* ballot = round << 8 | node: distinct per node */
#define BALLOT_NODE_MASK ((1u << BALLOT_NODE_BITS) - 1u)

/* Retry policy: contention backs off randomly, an unreachable disk exponentially. */
#define CONTENTION_BACKOFF_MAX_US 20000u
#define IO_BACKOFF_FIRST_MS 10u
#define IO_BACKOFF_MAX_MS 1000u
#define NS_PER_MS 1000000ull
#define NS_PER_US 1000ull
#define READ_ATTEMPTS 8u        /* both copies invalid this often in a row: corrupt */
#define READ_RETRY_NS 1000000ull

struct dblock {
	uint64_t seq;
	uint64_t epoch; /* 0: never written */
	uint64_t mbal;
	uint64_t bal;
	uint32_t inp;
};

struct record {
	uint64_t seq;
	unsigned count;
	struct arbiter_decision d[RECORD_HISTORY]; /* newest epoch first */
};

struct arbiter {
	struct arbiter_io *io;
	unsigned sector_size;
	unsigned nodes;
	unsigned slots;
	uint64_t sectors;
	uint8_t area_id[AREA_ID_LEN];
	char vm_name[VM_NAME_FIELD];
	uint8_t *copy[COPIES]; /* the two copies of the item being read */
	uint8_t *wbuf;
	struct record rec[ARBITER_MAX_NODES];
	struct dblock blk[ARBITER_MAX_NODES];
	int io_failed; /* the last error came from the I/O layer: worth retrying */
	uint64_t rng;
	char err[ARBITER_ERR_MAX];
};

static int fail(char *err, int ret, const char *fmt, ...) FTVM_PRINTF(3, 4);
static int fail(char *err, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ARBITER_ERR_MAX, fmt, ap);
	va_end(ap);
	return ret;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t next_random(struct arbiter *a)
{
	/* xorshift64: jitter only, never a safety input */
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 7;
	a->rng ^= a->rng << 17;
	return a->rng;
}

uint64_t arbiter_area_sectors(unsigned nodes, unsigned slots)
{
	return 1u + (uint64_t)nodes * COPIES + (uint64_t)slots * nodes * COPIES;
}

static uint64_t record_index(unsigned node)
{
	return 1u + (uint64_t)node * COPIES;
}

static uint64_t block_index(const struct arbiter *a, unsigned slot, unsigned node)
{
	return record_index(a->nodes) + ((uint64_t)slot * a->nodes + node) * COPIES;
}

/* ---- sectors ---------------------------------------------------------------------------------- */

static uint32_t sector_crc(const struct arbiter *a, const uint8_t *s)
{
	static const uint8_t zero_crc[4];
	uint32_t crc = crc32c(0, s, OFF_CRC);

	crc = crc32c(crc, zero_crc, sizeof(zero_crc));
	return crc32c(crc, s + OFF_CRC + sizeof(zero_crc), a->sector_size - OFF_CRC - sizeof(zero_crc));
}

static void seal_sector(const struct arbiter *a, uint8_t *s, uint32_t kind, uint64_t index)
{
	memcpy(s + OFF_MAGIC, ARB_MAGIC, sizeof(ARB_MAGIC));
	put_le32(s + OFF_VERSION, ARB_VERSION);
	put_le32(s + OFF_KIND, kind);
	put_le64(s + OFF_INDEX, index);
	memcpy(s + OFF_AREA_ID, a->area_id, AREA_ID_LEN);
	memset(s + OFF_VM_NAME, 0, VM_NAME_FIELD);
	memcpy(s + OFF_VM_NAME, a->vm_name, strlen(a->vm_name));
	put_le32(s + OFF_CRC, sector_crc(a, s));
}

/* 0 if s is a valid sector of this area of the given kind at index; -EUCLEAN if it is garbage or
 * misplaced; -EMEDIUMTYPE if it is intact but belongs to another area. */
static int check_sector(const struct arbiter *a, const uint8_t *s, uint32_t kind, uint64_t index)
{
	if (memcmp(s + OFF_MAGIC, ARB_MAGIC, sizeof(ARB_MAGIC)) != 0 || get_le32(s + OFF_CRC) != sector_crc(a, s))
		return -EUCLEAN;
	if (get_le32(s + OFF_VERSION) != ARB_VERSION)
		return -EPROTONOSUPPORT;
	if (memcmp(s + OFF_AREA_ID, a->area_id, AREA_ID_LEN) != 0 ||
	    strncmp((const char *)s + OFF_VM_NAME, a->vm_name, VM_NAME_FIELD) != 0)
		return -EMEDIUMTYPE;
	if (get_le32(s + OFF_KIND) != kind || get_le64(s + OFF_INDEX) != index)
		return -EUCLEAN;
	return 0;
}

static int io_read(struct arbiter *a, uint64_t index, uint8_t *buf)
{
	int ret = a->io->ops->read_sector(a->io, index, buf);

	if (ret < 0) {
		a->io_failed = 1;
		return fail(a->err, ret, "cannot read sector %llu: %s", (unsigned long long)index, strerror(-ret));
	}
	return 0;
}

/* Writes and syncs one sector: after this returns 0 every reader sees it. */
static int io_write(struct arbiter *a, uint64_t index, const uint8_t *buf)
{
	int ret = a->io->ops->write_sector(a->io, index, buf);

	if (ret == 0)
		ret = a->io->ops->sync(a->io);
	if (ret < 0) {
		a->io_failed = 1;
		return fail(a->err, ret, "cannot write sector %llu: %s", (unsigned long long)index, strerror(-ret));
	}
	return 0;
}

/* Checks copy c of the item at `first`; foreign and unsupported sectors are fatal (ret < 0 and the
 * message set), garbage is reported in *valid = 0. */
static int read_copy(struct arbiter *a, uint64_t first, unsigned c, uint32_t kind, const char *what, int *valid)
{
	int ret = io_read(a, first + c, a->copy[c]);

	if (ret < 0)
		return ret;
	ret = check_sector(a, a->copy[c], kind, first + c);
	if (ret == -EMEDIUMTYPE)
		return fail(a->err, ret, "%s (sector %llu) belongs to another VM's arbiter area", what,
			    (unsigned long long)(first + c));
	if (ret == -EPROTONOSUPPORT)
		return fail(a->err, ret, "%s (sector %llu) has an unsupported format version", what,
			    (unsigned long long)(first + c));
	*valid = ret == 0;
	return 0;
}

/*
 * Reads a double-buffered item and points *out at its current state. Both copies valid: the higher
 * seq. One copy invalid (a write in progress, or torn by a crash): that copy's next valid content
 * can only come from a write that starts later, so a fresh read of the other copy is a state the
 * item held during this call; use that. Both invalid: read again, then give up as corrupt.
 * tests/arbiter/diskpaxos.pml checks this rule (dropping the fresh read breaks safety there).
 */
static int read_pair(struct arbiter *a, uint64_t first, uint32_t kind, const char *what, const uint8_t **out)
{
	int valid[COPIES], ret;

	for (unsigned attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
		if (attempt)
			sleep_ns(READ_RETRY_NS);
		for (unsigned c = 0; c < COPIES; c++) {
			ret = read_copy(a, first, c, kind, what, &valid[c]);
			if (ret < 0)
				return ret;
		}
		if (valid[0] && valid[1]) {
			*out = get_le64(a->copy[1] + OFF_SEQ) > get_le64(a->copy[0] + OFF_SEQ) ? a->copy[1] : a->copy[0];
			return 0;
		}
		for (unsigned c = 0; c < COPIES; c++) {
			if (!valid[c])
				continue;
			ret = read_copy(a, first, c, kind, what, &valid[c]);
			if (ret < 0)
				return ret;
			if (valid[c]) {
				*out = a->copy[c];
				return 0;
			}
		}
	}
	return fail(a->err, -EUCLEAN, "%s is corrupt (sectors %llu and %llu both fail their checks)", what,
		    (unsigned long long)first, (unsigned long long)(first + 1));
}

static int ballot_valid(const struct arbiter *a, uint64_t ballot)
{
	return ballot == 0 || ((ballot & BALLOT_NODE_MASK) < a->nodes && (ballot >> BALLOT_NODE_BITS) > 0);
}

static int read_block(struct arbiter *a, unsigned slot, unsigned node, struct dblock *b)
{
	char what[64];
	const uint8_t *s;
	int ret;

	snprintf(what, sizeof(what), "block of node %u in slot %u", node, slot);
	ret = read_pair(a, block_index(a, slot, node), KIND_BLOCK, what, &s);
	if (ret < 0)
		return ret;
	b->seq = get_le64(s + OFF_SEQ);
	b->epoch = get_le64(s + OFF_BLK_EPOCH);
	b->mbal = get_le64(s + OFF_BLK_MBAL);
	b->bal = get_le64(s + OFF_BLK_BAL);
	b->inp = get_le32(s + OFF_BLK_INP);
	if (!ballot_valid(a, b->mbal) || !ballot_valid(a, b->bal) || b->bal > b->mbal ||
	    (b->bal && b->inp >= a->nodes) || (b->inp != INP_NONE && b->inp >= a->nodes) ||
	    (b->epoch % a->slots != slot && b->epoch != 0))
		return fail(a->err, -EUCLEAN, "%s holds impossible values", what);
	return 0;
}

static int write_block(struct arbiter *a, unsigned slot, unsigned node, struct dblock *b)
{
	uint64_t first = block_index(a, slot, node);
	uint64_t index;

	b->seq++;
	index = first + (b->seq & 1);
	memset(a->wbuf, 0, a->sector_size);
	put_le64(a->wbuf + OFF_SEQ, b->seq);
	put_le64(a->wbuf + OFF_BLK_EPOCH, b->epoch);
	put_le64(a->wbuf + OFF_BLK_MBAL, b->mbal);
	put_le64(a->wbuf + OFF_BLK_BAL, b->bal);
	put_le32(a->wbuf + OFF_BLK_INP, b->inp);
	seal_sector(a, a->wbuf, KIND_BLOCK, index);
	return io_write(a, index, a->wbuf);
}

static int read_record(struct arbiter *a, unsigned node, struct record *r)
{
	char what[64];
	const uint8_t *s;
	int ret;

	snprintf(what, sizeof(what), "decision record of node %u", node);
	ret = read_pair(a, record_index(node), KIND_RECORD, what, &s);
	if (ret < 0)
		return ret;
	r->seq = get_le64(s + OFF_SEQ);
	r->count = get_le32(s + OFF_REC_COUNT);
	if (r->count > RECORD_HISTORY)
		return fail(a->err, -EUCLEAN, "%s holds %u entries (at most %u)", what, r->count, RECORD_HISTORY);
	for (unsigned i = 0; i < r->count; i++) {
		const uint8_t *e = s + OFF_REC_ENTRIES + i * REC_ENTRY_SIZE;

		r->d[i].epoch = get_le64(e);
		r->d[i].winner = get_le32(e + REC_ENTRY_WINNER);
		if (r->d[i].epoch == 0 || r->d[i].winner >= a->nodes || (i > 0 && r->d[i].epoch >= r->d[i - 1].epoch))
			return fail(a->err, -EUCLEAN, "%s entry %u is impossible", what, i);
	}
	return 0;
}

static int write_record(struct arbiter *a, unsigned node, struct record *r)
{
	uint64_t index;

	r->seq++;
	index = record_index(node) + (r->seq & 1);
	memset(a->wbuf, 0, a->sector_size);
	put_le64(a->wbuf + OFF_SEQ, r->seq);
	put_le32(a->wbuf + OFF_REC_COUNT, r->count);
	for (unsigned i = 0; i < r->count; i++) {
		uint8_t *e = a->wbuf + OFF_REC_ENTRIES + i * REC_ENTRY_SIZE;

		put_le64(e, r->d[i].epoch);
		put_le32(e + REC_ENTRY_WINNER, r->d[i].winner);
	}
	seal_sector(a, a->wbuf, KIND_RECORD, index);
	return io_write(a, index, a->wbuf);
}

/* ---- the algorithm ---------------------------------------------------------------------------- */

/* Step 0: what the records already say about epoch. 1 with *winner set if e is decided there. */
static int check_records(struct arbiter *a, uint64_t epoch, unsigned *winner)
{
	const struct arbiter_decision *newest = NULL, *found = NULL;
	int ret;

	for (unsigned n = 0; n < a->nodes; n++) {
		struct record *r = &a->rec[n];

		ret = read_record(a, n, r);
		if (ret < 0)
			return ret;
		for (unsigned i = 0; i < r->count; i++)
			if (r->d[i].epoch == epoch)
				found = &r->d[i];
		if (r->count && (!newest || r->d[0].epoch > newest->epoch))
			newest = &r->d[0];
	}
	if (newest && newest->epoch > epoch)
		return fail(a->err, -ESTALE, "epoch %llu is older than epoch %llu, already decided (winner node %u)",
			    (unsigned long long)epoch, (unsigned long long)newest->epoch, newest->winner);
	if (found) {
		*winner = found->winner;
		return 1;
	}
	return 0;
}

/* Reads the blocks of every node but `skip` (ARBITER_MAX_NODES: none) into a->blk and checks them
 * against our ballot: -ESTALE if the slot moved on to a later epoch, -EAGAIN if someone holds a
 * higher ballot. Blocks of older epochs read as empty. */
static int read_slot(struct arbiter *a, uint64_t epoch, unsigned skip, uint64_t ballot)
{
	unsigned slot = (unsigned)(epoch % a->slots);
	int ret;

	for (unsigned n = 0; n < a->nodes; n++) {
		struct dblock *b = &a->blk[n];

		if (n == skip)
			continue;
		ret = read_block(a, slot, n, b);
		if (ret < 0)
			return ret;
		if (b->epoch > epoch)
			return fail(a->err, -ESTALE, "epoch %llu is superseded: node %u already works on epoch %llu",
				    (unsigned long long)epoch, n, (unsigned long long)b->epoch);
		if (b->epoch < epoch) {
			b->mbal = 0;
			b->bal = 0;
			b->inp = INP_NONE;
		}
		if (b->mbal > ballot)
			return -EAGAIN;
	}
	return 0;
}

static int remember(struct arbiter *a, unsigned node, uint64_t epoch, unsigned winner)
{
	struct record *r = &a->rec[node];
	unsigned keep = MIN(r->count, RECORD_HISTORY - 1);

	if (r->count && r->d[0].epoch >= epoch)
		return 0; /* step 0 saw no later epoch; this one is already listed */

	memmove(&r->d[1], &r->d[0], keep * sizeof(r->d[0]));
	r->d[0].epoch = epoch;
	r->d[0].winner = winner;
	r->count = keep + 1;
	return write_record(a, node, r);
}

/* One Disk Paxos phase: write our block, then read every other block against our ballot. */
static int run_phase(struct arbiter *a, uint64_t epoch, unsigned node, struct dblock *own)
{
	int ret = write_block(a, (unsigned)(epoch % a->slots), node, own);

	return ret < 0 ? ret : read_slot(a, epoch, node, own->mbal);
}

static int claim_once(struct arbiter *a, uint64_t epoch, unsigned node, unsigned *winner)
{
	struct dblock own;
	uint64_t ballot, best_bal = 0, max_mbal = 0;
	uint32_t value = node;
	int ret;

	/* 0. decided already? */
	ret = check_records(a, epoch, winner);
	if (ret != 0)
		return ret < 0 ? ret : (*winner == node ? ARBITER_WON : ARBITER_LOST);

	/* 1. our own state and the highest ballot so far */
	ret = read_slot(a, epoch, ARBITER_MAX_NODES, UINT64_MAX);
	if (ret < 0)
		return ret;
	own = a->blk[node];
	own.epoch = epoch;
	for (unsigned n = 0; n < a->nodes; n++)
		max_mbal = MAX(max_mbal, a->blk[n].mbal);

	/* 2. phase 1 */
	ballot = (((max_mbal >> BALLOT_NODE_BITS) + 1) << BALLOT_NODE_BITS) | node;
	own.mbal = ballot;
	ret = run_phase(a, epoch, node, &own);
	if (ret < 0)
		return ret;
	a->blk[node] = own;
	for (unsigned n = 0; n < a->nodes; n++)
		if (a->blk[n].bal > best_bal) {
			best_bal = a->blk[n].bal;
			value = a->blk[n].inp;
		}

	/* 3. phase 2 */
	own.bal = ballot;
	own.inp = value;
	ret = run_phase(a, epoch, node, &own);
	if (ret < 0)
		return ret;

	/* 4. chosen: remember it */
	ret = remember(a, node, epoch, value);
	if (ret < 0)
		return ret;
	*winner = value;
	return value == node ? ARBITER_WON : ARBITER_LOST;
}

int arbiter_claim(struct arbiter *a, uint64_t epoch, unsigned node, int64_t timeout_ms, unsigned *winner)
{
	uint64_t start = time_mono_ns();
	unsigned io_backoff_ms = IO_BACKOFF_FIRST_MS;
	unsigned contention = 0;
	int ret;

	if (epoch == 0)
		return fail(a->err, -EINVAL, "epochs start at 1");
	if (node >= a->nodes)
		return fail(a->err, -EINVAL, "node %u out of range: this area has nodes 0..%u", node, a->nodes - 1);

	for (;;) {
		uint64_t wait_ns;

		a->io_failed = 0;
		ret = claim_once(a, epoch, node, winner);
		if (ret >= 0)
			return ret;
		if (a->io_failed) {
			diag_warn("claim of epoch %llu as node %u: %s; retrying in %u ms", (unsigned long long)epoch,
				 node, a->err, io_backoff_ms);
			wait_ns = io_backoff_ms * NS_PER_MS;
			io_backoff_ms = MIN(io_backoff_ms * 2, IO_BACKOFF_MAX_MS);
		} else if (ret == -EAGAIN) {
			/* duelling ballots: random backoff, growing with the number of duels */
			unsigned cap = MIN(CONTENTION_BACKOFF_MAX_US, 100u << MIN(contention, 8u));

			contention++;
			wait_ns = (next_random(a) % cap) * NS_PER_US;
		} else {
			return ret;
		}
		if (timeout_ms >= 0 && time_mono_ns() + wait_ns - start > (uint64_t)timeout_ms * NS_PER_MS) {
			char why[ARBITER_ERR_MAX];

			snprintf(why, sizeof(why), "%s", ret == -EAGAIN ? "contention with other claimants" : a->err);
			return fail(a->err, -ETIMEDOUT, "epoch %llu undecided for this node after %lld ms: %.180s",
				    (unsigned long long)epoch, (long long)timeout_ms, why);
		}
		sleep_ns(wait_ns);
	}
}

int arbiter_decided(struct arbiter *a, struct arbiter_decision *out, size_t max, size_t *count)
{
	struct arbiter_decision all[ARBITER_MAX_NODES * RECORD_HISTORY];
	size_t n = 0, kept = 0;
	int ret;

	for (unsigned node = 0; node < a->nodes; node++) {
		ret = read_record(a, node, &a->rec[node]);
		if (ret < 0)
			return ret;
		for (unsigned i = 0; i < a->rec[node].count; i++)
			all[n++] = a->rec[node].d[i];
	}
	/* insertion sort, newest first; n is at most a few hundred */
	for (size_t i = 1; i < n; i++) {
		struct arbiter_decision d = all[i];
		size_t j = i;

		while (j > 0 && all[j - 1].epoch < d.epoch) {
			all[j] = all[j - 1];
			j--;
		}
		all[j] = d;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && all[i - 1].epoch == all[i].epoch) {
			if (all[i - 1].winner != all[i].winner)
				return fail(a->err, -EUCLEAN, "records disagree on the winner of epoch %llu",
					    (unsigned long long)all[i].epoch);
			continue;
		}
		if (kept < max)
			out[kept++] = all[i];
	}
	*count = kept;
	return 0;
}

/* ---- format and open -------------------------------------------------------------------------- */

static int vm_name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > ARBITER_VM_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return 0;
	return 1;
}

static struct arbiter *arbiter_alloc(struct arbiter_io *io)
{
	struct arbiter *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->io = io;
	a->sector_size = io->sector_size;
	for (unsigned c = 0; c < COPIES; c++)
		a->copy[c] = calloc(1, io->sector_size);
	a->wbuf = calloc(1, io->sector_size);
	if (!a->copy[0] || !a->copy[1] || !a->wbuf) {
		free(a->copy[0]);
		free(a->copy[1]);
		free(a->wbuf);
		free(a);
		return NULL;
	}
	a->rng = time_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)a;
	if (!a->rng)
		a->rng = 1;
	return a;
}

static void arbiter_free(struct arbiter *a)
{
	free(a->copy[0]);
	free(a->copy[1]);
	free(a->wbuf);
	free(a);
}

/* Parses and checks the header in s (already read from sector 0) into a. */
static int parse_header(struct arbiter *a, const uint8_t *s, const char *vm_name, char *err)
{
	uint32_t ssz;

	if (memcmp(s + OFF_MAGIC, ARB_MAGIC, sizeof(ARB_MAGIC)) != 0)
		return fail(err, -ENODATA, "not an initialised arbiter area (no header; run 'ftvm arbiter init')");
	ssz = get_le32(s + OFF_HDR_SECTOR_SIZE);
	if (ssz != a->sector_size)
		return fail(err, -EUCLEAN, "area formatted with %u-byte sectors, but the device uses %u", ssz,
			    a->sector_size);
	memcpy(a->area_id, s + OFF_AREA_ID, AREA_ID_LEN);
	memcpy(a->vm_name, s + OFF_VM_NAME, VM_NAME_FIELD);
	a->vm_name[ARBITER_VM_NAME_MAX] = '\0';
	if (get_le32(s + OFF_CRC) != sector_crc(a, s))
		return fail(err, -EUCLEAN, "arbiter header is corrupt (checksum mismatch)");
	if (get_le32(s + OFF_VERSION) != ARB_VERSION)
		return fail(err, -EPROTONOSUPPORT, "arbiter format version %u is not supported (this build reads %u)",
			    get_le32(s + OFF_VERSION), ARB_VERSION);
	if (get_le32(s + OFF_KIND) != KIND_HEADER || get_le64(s + OFF_INDEX) != 0 || !vm_name_valid(a->vm_name))
		return fail(err, -EUCLEAN, "arbiter header is corrupt (bad kind, index or name)");
	a->nodes = get_le32(s + OFF_HDR_NODES);
	a->slots = get_le32(s + OFF_HDR_SLOTS);
	a->sectors = get_le64(s + OFF_HDR_SECTORS);
	if (a->nodes < 1 || a->nodes > ARBITER_MAX_NODES || a->slots < 1 || a->slots > MAX_SLOTS ||
	    get_le32(s + OFF_HDR_HISTORY) != RECORD_HISTORY || a->sectors != arbiter_area_sectors(a->nodes, a->slots))
		return fail(err, -EUCLEAN, "arbiter header holds impossible parameters");
	if (vm_name && strcmp(vm_name, a->vm_name) != 0)
		return fail(err, -EMEDIUMTYPE, "area belongs to VM '%s', not '%s'", a->vm_name, vm_name);
	return 0;
}

int arbiter_init_io(struct arbiter_io *io, const char *vm_name, unsigned nodes, unsigned slots, int force,
		    char err[ARBITER_ERR_MAX])
{
	struct arbiter *a = NULL;
	uint64_t need;
	int ret;

	if (!vm_name_valid(vm_name)) {
		ret = fail(err, -EINVAL, "VM name must be 1..%u printable ASCII characters", ARBITER_VM_NAME_MAX);
		goto out_io;
	}
	if (nodes < 1 || nodes > ARBITER_MAX_NODES) {
		ret = fail(err, -EINVAL, "nodes must be 1..%u", ARBITER_MAX_NODES);
		goto out_io;
	}
	slots = slots ? slots : DEFAULT_SLOTS;
	if (slots > MAX_SLOTS || io->sector_size < MIN_SECTOR) {
		ret = fail(err, -EINVAL, "unsupported slots (%u) or sector size (%u)", slots, io->sector_size);
		goto out_io;
	}
	a = arbiter_alloc(io);
	if (!a) {
		ret = fail(err, -ENOMEM, "out of memory");
		goto out_io;
	}
	need = arbiter_area_sectors(nodes, slots);
	if (io->sectors < need && !io->growable) {
		ret = fail(err, -ENOSPC, "device too small: the area needs %llu sectors of %u bytes, it has %llu",
			   (unsigned long long)need, io->sector_size, (unsigned long long)io->sectors);
		goto out;
	}
	if (io->sectors > 0 && !force) {
		char ignored[ARBITER_ERR_MAX];

		ret = io->ops->read_sector(io, 0, a->copy[0]);
		if (ret < 0) {
			ret = fail(err, ret, "cannot read sector 0: %s", strerror(-ret));
			goto out;
		}
		if (parse_header(a, a->copy[0], NULL, ignored) == 0) {
			ret = fail(err, -EEXIST, "already an arbiter area for VM '%s'; re-formatting erases its "
				   "decisions (use --force)", a->vm_name);
			goto out;
		}
		if (memcmp(a->copy[0] + OFF_MAGIC, ARB_MAGIC, sizeof(ARB_MAGIC)) == 0) {
			ret = fail(err, -EEXIST, "holds a damaged arbiter area (%s); re-formatting erases its "
				   "decisions (use --force)", ignored);
			goto out;
		}
	}
	if (getrandom(a->area_id, AREA_ID_LEN, 0) != (ssize_t)AREA_ID_LEN) {
		ret = fail(err, -EIO, "getrandom failed: %s", strerror(errno));
		goto out;
	}
	memset(a->vm_name, 0, sizeof(a->vm_name));
	memcpy(a->vm_name, vm_name, strlen(vm_name));
	a->nodes = nodes;
	a->slots = slots;
	a->sectors = need;

	/* every record and block, both copies, seq 0; the header last so a half-formatted area reads
	 * as uninitialised */
	for (uint64_t i = 1; i < need; i++) {
		memset(a->wbuf, 0, a->sector_size);
		if (i < record_index(nodes)) {
			seal_sector(a, a->wbuf, KIND_RECORD, i);
		} else {
			put_le32(a->wbuf + OFF_BLK_INP, INP_NONE);
			seal_sector(a, a->wbuf, KIND_BLOCK, i);
		}
		ret = io_write(a, i, a->wbuf);
		if (ret < 0)
			goto out_msg;
	}
	memset(a->wbuf, 0, a->sector_size);
	put_le32(a->wbuf + OFF_HDR_SECTOR_SIZE, a->sector_size);
	put_le32(a->wbuf + OFF_HDR_NODES, nodes);
	put_le32(a->wbuf + OFF_HDR_SLOTS, slots);
	put_le32(a->wbuf + OFF_HDR_HISTORY, RECORD_HISTORY);
	put_le64(a->wbuf + OFF_HDR_SECTORS, need);
	seal_sector(a, a->wbuf, KIND_HEADER, 0);
	ret = io_write(a, 0, a->wbuf);
	if (ret < 0)
		goto out_msg;
	diag_info("formatted arbiter area for VM '%s': %u nodes, %u slots, %u-byte sectors", vm_name, nodes, slots,
		 a->sector_size);
	ret = 0;
	goto out;
out_msg:
	snprintf(err, ARBITER_ERR_MAX, "%s", a->err);
out:
	arbiter_free(a);
out_io:
	io->ops->close(io);
	return ret;
}

int arbiter_open_io(struct arbiter_io *io, const char *vm_name, struct arbiter **out, char err[ARBITER_ERR_MAX])
{
	struct arbiter *a = NULL;
	int ret;

	if (io->sector_size < MIN_SECTOR) {
		ret = fail(err, -EINVAL, "unsupported sector size %u", io->sector_size);
		goto out_io;
	}
	a = arbiter_alloc(io);
	if (!a) {
		ret = fail(err, -ENOMEM, "out of memory");
		goto out_io;
	}
	if (io->sectors < 1) {
		ret = fail(err, -ENODATA, "not an initialised arbiter area (empty)");
		goto out;
	}
	ret = io->ops->read_sector(io, 0, a->copy[0]);
	if (ret < 0) {
		fail(err, ret, "cannot read the arbiter header: %s", strerror(-ret));
		goto out;
	}
	ret = parse_header(a, a->copy[0], vm_name, err);
	if (ret < 0)
		goto out;
	if (io->sectors < a->sectors) {
		ret = fail(err, -ENOSPC, "area too small: it needs %llu sectors of %u bytes, the device has %llu",
			   (unsigned long long)a->sectors, a->sector_size, (unsigned long long)io->sectors);
		goto out;
	}
	*out = a;
	return 0;
out:
	arbiter_free(a);
out_io:
	io->ops->close(io);
	return ret;
}

int arbiter_init(const char *path, const char *vm_name, unsigned nodes, int force, char err[ARBITER_ERR_MAX])
{
	struct arbiter_io *io;
	int ret = arbiter_io_open_file(path, 1, &io, err);

	if (ret < 0)
		return ret;
	return arbiter_init_io(io, vm_name, nodes, 0, force, err);
}

int arbiter_open(const char *path, const char *vm_name, struct arbiter **out, char err[ARBITER_ERR_MAX])
{
	struct arbiter_io *io;
	int ret = arbiter_io_open_file(path, 0, &io, err);

	if (ret < 0)
		return ret;
	return arbiter_open_io(io, vm_name, out, err);
}

void arbiter_get_info(const struct arbiter *a, struct arbiter_info *info)
{
	memset(info, 0, sizeof(*info));
	memcpy(info->vm_name, a->vm_name, sizeof(info->vm_name));
	info->nodes = a->nodes;
	info->slots = a->slots;
	info->sector_size = a->sector_size;
	info->sectors = a->sectors;
	memcpy(info->area_id, a->area_id, sizeof(info->area_id));
}

const char *arbiter_error(const struct arbiter *a)
{
	return a->err;
}

void arbiter_close(struct arbiter *a)
{
	if (!a)
		return;
	a->io->ops->close(a->io);
	arbiter_free(a);
}
