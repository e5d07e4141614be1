/*
 * snapshot_live.c — see snapshot_live.h.
 *
 * The copy is an anonymous private mapping the size of guest RAM: pages never copied into it are
 * never backed, so the encoder's "untouched" test (util/ram_pages.h) skips them there exactly as
 * it would in guest RAM. A page the guest had not touched when the first round walked RAM but
 * touches later is dirty by then, and so copied in a later round.
 *
 * Reading guest RAM while the vCPU writes it races by design: a page written during its copy is
 * marked dirty and copied again in a later round, the last of which holds the vCPU, so the copy
 * ends exactly as RAM was at the cut; those copies are ram_copy_racy()'s (util/ram_pages.h), which
 * ThreadSanitizer does not instrument, so only real races are reported.
 */
#include "host/snapshot_live.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "host/state_file.h"
#include "util/ram_pages.h"
#include "util/time.h"
#include "vm/state_format.h"

#define LIVE_ROUNDS_MAX 4            /* rounds beside the vCPU after the first */
#define LIVE_FINAL_PAGES 256         /* few enough dirty pages to copy with the vCPU held (1 MiB) */

struct live {
	struct machine *m;
	const struct snapshot_live_progress *p;
	const uint8_t *ram;          /* guest RAM (read only: the vCPU may be running) */
	uint8_t *copy;
	size_t size;
	uint64_t *bitmap;
	size_t words;
	uint64_t done, total;        /* bytes copied in the current phase, and expected */
};

static void say_phase(struct live *l, const char *phase)
{
	if (l->p && l->p->phase)
		l->p->phase(l->p->ctx, phase);
}

static void say_bytes(struct live *l)
{
	if (l->p && l->p->bytes)
		l->p->bytes(l->p->ctx, l->done, l->total);
}

static bool cancelled(struct live *l)
{
	return l->p && l->p->cancelled && l->p->cancelled(l->p->ctx);
}

static int count_touched(void *ctx, size_t first, size_t count, bool touched)
{
	struct live *l = ctx;
	(void)first;
	if (touched)
		l->total += (uint64_t)count * RAM_PAGE_SIZE;
	return 0;
}

static int copy_touched(void *ctx, size_t first, size_t count, bool touched)
{
	struct live *l = ctx;
	if (!touched)
		return 0;
	/* In chunks, so progress moves and a cancel is seen within a few milliseconds. */
	for (size_t p = first; p < first + count;) {
		size_t n = first + count - p < 1024 ? first + count - p : 1024;
		ram_copy_racy(l->copy + p * RAM_PAGE_SIZE, l->ram + p * RAM_PAGE_SIZE, n * RAM_PAGE_SIZE);
		p += n;
		l->done += (uint64_t)n * RAM_PAGE_SIZE;
		say_bytes(l);
		if (cancelled(l))
			return -ECANCELED;
	}
	return 0;
}

/* Copies the pages marked in the bitmap; how many. */
static uint64_t copy_dirty(struct live *l)
{
	uint64_t n = 0;
	for (size_t w = 0; w < l->words; w++) {
		for (uint64_t bits = l->bitmap[w]; bits; bits &= bits - 1) {
			size_t page = w * 64 + (size_t)__builtin_ctzll(bits);
			ram_copy_racy(l->copy + page * RAM_PAGE_SIZE, l->ram + page * RAM_PAGE_SIZE, RAM_PAGE_SIZE);
			n++;
		}
	}
	return n;
}

/* One round with the vCPU held only to collect: pages marked. */
static long collect(struct live *l)
{
	int ret = machine_pause(l->m);
	if (ret)
		return ret;
	long marked = machine_dirty_collect(l->m, l->bitmap, l->words);
	machine_resume(l->m);
	return marked;
}

int snapshot_live_save(struct machine *m, const char *path, bool replace, bool keep_held,
		       const struct snapshot_live_progress *progress, struct snapshot_live_result *result, char *err,
		       size_t errlen)
{
	struct live l = { .m = m, .p = progress };
	struct machine_state *s = NULL;
	struct machine_identity id = *machine_identity(m);
	uint64_t t0 = time_mono_ns();
	bool tracking = false, held = false;
	int ret;

	memset(result, 0, sizeof(*result));
	ret = state_file_check_target(path, replace, err, errlen);   /* before any work; again at the end */
	if (ret)
		return ret;
	l.ram = machine_ram_const(m, &l.size);
	l.words = machine_dirty_words(m);
	l.copy = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	l.bitmap = calloc(l.words, sizeof(uint64_t));
	s = machine_state_alloc();
	if (l.copy == MAP_FAILED || !l.bitmap || !s) {
		snprintf(err, errlen, "snapshot %s: out of memory for a copy of %zu MiB of RAM", path, l.size >> 20);
		ret = -ENOMEM;
		goto out;
	}

	say_phase(&l, "tracking");
	if ((ret = machine_pause(m)) != 0)
		goto out_pause;
	ret = machine_dirty_start(m);
	machine_resume(m);
	if (ret == -EALREADY) {
		snprintf(err, errlen, "snapshot %s: dirty-page tracking is already on (a migration runs?)", path);
		goto out;
	}
	if (ret) {
		snprintf(err, errlen, "snapshot %s: cannot track dirty pages: %s", path, strerror(-ret));
		goto out;
	}
	tracking = true;

	/* Round 1: every touched page, beside the running vCPU. */
	say_phase(&l, "copying");
	ret = ram_pages_walk(l.ram, l.size, count_touched, &l);
	result->ram_touched = l.total;
	if (!ret)
		ret = ram_pages_walk(l.ram, l.size, copy_touched, &l);
	if (ret)
		goto out_cancel;
	result->pages_copied = l.done / RAM_PAGE_SIZE;
	result->rounds = 1;
	/* Again the pages dirtied meanwhile, while they are many and getting fewer. */
	long prev = LONG_MAX;
	for (unsigned r = 0; r < LIVE_ROUNDS_MAX; r++) {
		long marked = collect(&l);
		if (marked < 0) {
			ret = (int)marked;
			snprintf(err, errlen, "snapshot %s: cannot collect dirty pages: %s", path, strerror(-ret));
			goto out;
		}
		result->pages_copied += copy_dirty(&l);
		result->rounds++;
		if (cancelled(&l)) {
			ret = -ECANCELED;
			goto out_cancel;
		}
		if (marked <= LIVE_FINAL_PAGES || marked >= prev)
			break;
		prev = marked;
	}

	/* The cut: the vCPU held while the last dirty pages and the devices are copied. */
	say_phase(&l, "final");
	uint64_t p0 = time_mono_ns();
	if ((ret = machine_pause(m)) != 0)
		goto out_pause;
	held = true;
	long marked = machine_dirty_collect(m, l.bitmap, l.words);
	if (marked < 0) {
		ret = (int)marked;
		snprintf(err, errlen, "snapshot %s: cannot collect dirty pages: %s", path, strerror(-ret));
		goto out;
	}
	result->pages_final = copy_dirty(&l);
	result->rounds++;
	ret = machine_save(m, s);
	if (ret) {
		snprintf(err, errlen, "snapshot %s: cannot save the machine: %s", path, strerror(-ret));
		goto out;
	}
	result->icount = machine_icount(m);
	machine_dirty_stop(m);
	tracking = false;
	if (!keep_held) {
		machine_resume(m);
		held = false;
	}
	result->pause_ns = time_mono_ns() - p0;

	say_phase(&l, "writing");
	struct state_stats st;
	ret = state_file_save_saved(path, replace, &id, s, l.copy, l.size, &st, err, errlen);
	if (!ret)
		result->bytes = st.bytes;
	goto out;

out_cancel:
	if (ret == -ECANCELED)
		snprintf(err, errlen, "snapshot %s: cancelled (the VM stops)", path);
	goto out;
out_pause:
	snprintf(err, errlen, "snapshot %s: cannot hold the vCPU: %s", path, strerror(-ret));
out:
	if (tracking) {
		/* Stopping tracking touches what the vCPU uses: only while it is held. */
		if (!held && machine_pause(m) == 0)
			held = true;
		machine_dirty_stop(m);
	}
	if (held && (ret || !keep_held))
		machine_resume(m);
	if (l.copy != MAP_FAILED && l.copy)
		munmap(l.copy, l.size);
	free(l.bitmap);
	machine_state_free(s);
	result->total_ns = time_mono_ns() - t0;
	return ret;
}
