/*
 * shared_reads.c — see shared_reads.h.
 *
 * Reads in flight sit in a small array (the device bounds how many there are); logged digests in
 * a ring in logging order, so their icounts never decrease and pruning takes from the front. A
 * write scans both: a few thousand range compares at most, on the vCPU thread.
 */
#include "replay/shared_reads.h"

#include <errno.h>
#include <stdlib.h>

struct range {
	unsigned disk;
	uint64_t first, end;      /* sectors [first, end) */
};

struct inflight {
	struct range r;
	uint64_t request;
	bool rewritten;
};

struct recent {
	struct range r;
	icount_t icount;          /* where its DISK_DIGEST was logged */
};

struct shared_reads {
	struct inflight inflight[SHARED_READS_MAX_INFLIGHT];
	unsigned ninflight;
	struct recent recent[SHARED_READS_MAX_RECENT];
	unsigned head, count;     /* ring of recent digests */
	struct shared_reads_stats stats;
};

int shared_reads_create(struct shared_reads **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void shared_reads_destroy(struct shared_reads *s)
{
	free(s);
}

static bool overlap(const struct range *a, const struct range *b)
{
	return a->disk == b->disk && a->first < b->end && b->first < a->end;
}

icount_t shared_reads_submit(struct shared_reads *s, unsigned disk, const struct vm_disk_request *req)
{
	struct range r = { disk, req->sector, req->sector + req->len / 512 };
	if (req->op == VM_DISK_READ) {
		/* No room: the read is not remembered, so its completion is logged with data. */
		if (s->ninflight < SHARED_READS_MAX_INFLIGHT)
			s->inflight[s->ninflight++] = (struct inflight){ .r = r, .request = req->id };
		return 0;
	}
	if (req->op != VM_DISK_WRITE || r.end == r.first)
		return 0;
	for (unsigned i = 0; i < s->ninflight; i++)
		if (overlap(&s->inflight[i].r, &r))
			s->inflight[i].rewritten = true;
	icount_t wait_past = 0;
	for (unsigned i = 0; i < s->count; i++) {
		const struct recent *e = &s->recent[(s->head + i) % SHARED_READS_MAX_RECENT];
		if (overlap(&e->r, &r) && e->icount > wait_past)
			wait_past = e->icount;
	}
	if (wait_past)
		s->stats.writes_held++;
	return wait_past;
}

bool shared_reads_complete(struct shared_reads *s, unsigned disk, uint64_t request, bool ok, icount_t icount)
{
	unsigned i = 0;
	while (i < s->ninflight && (s->inflight[i].r.disk != disk || s->inflight[i].request != request))
		i++;
	if (i == s->ninflight) {
		if (ok)
			s->stats.with_data++;
		return false;
	}
	struct inflight f = s->inflight[i];
	s->inflight[i] = s->inflight[--s->ninflight];
	if (!ok)
		return false;
	if (f.rewritten || s->count == SHARED_READS_MAX_RECENT) {
		s->stats.with_data++;
		return false;
	}
	s->recent[(s->head + s->count) % SHARED_READS_MAX_RECENT] = (struct recent){ .r = f.r, .icount = icount };
	s->count++;
	s->stats.digests++;
	return true;
}

void shared_reads_replayed(struct shared_reads *s, icount_t backup_icount)
{
	while (s->count && s->recent[s->head].icount < backup_icount) {
		s->head = (s->head + 1) % SHARED_READS_MAX_RECENT;
		s->count--;
	}
}

const struct shared_reads_stats *shared_reads_get_stats(const struct shared_reads *s)
{
	return &s->stats;
}
