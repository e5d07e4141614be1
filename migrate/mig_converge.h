/*
 * mig_converge.h — when a pre-copy may stop: the pause a stop-and-copy is expected to take, from
 * what the rounds so far measured, against the downtime target (docs/migration.md, The sender).
 *
 * The pause is more than the dirty bytes crossing the link. It also waits for the vCPU to stop
 * (a hold reaches the vCPU thread only at its next boundary: up to a slice), encodes the device
 * state and sends it beside the pages, and waits twice for the destination to apply a message and
 * for its confirmation to come back (COMPLETE, then HANDOVER). The sender measures each during the pre-copy and feeds
 * them here; the decision itself is a pure function of those figures, so a test can drive it.
 *
 * The link's rate is the lowest of the last rounds big enough to measure it: one round that
 * crossed faster than the link usually carries (the destination idle, the host quiet) must not
 * promise a pause the next round would not get.
 */
#ifndef FTVM_MIGRATE_MIG_CONVERGE_H
#define FTVM_MIGRATE_MIG_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

/* Rounds whose rate counts; a round below MIG_CONVERGE_MEASURABLE bytes measures the round trip
 * more than the link, and counts only while no bigger round did. */
#define MIG_CONVERGE_ROUNDS 3
#define MIG_CONVERGE_MEASURABLE (64u << 10)

struct mig_converge {
	uint64_t rate[MIG_CONVERGE_ROUNDS];  /* bytes/s of the last measurable rounds, newest first */
	unsigned nrates;
	uint64_t small_rate;                 /* the lowest rate of smaller rounds (while nrates is 0) */
	uint64_t hold_ns[MIG_CONVERGE_ROUNDS]; /* how long holding the vCPU took, the last rounds */
	uint64_t confirm_ns;                 /* the shortest wait seen for an ACK once its message was
	                                      * written out (0: none yet; see mig_converge_confirmed()) */
	uint64_t state_bytes;                /* the final state without its pages */
	uint64_t encode_ns;                  /* the time encoding those took */
};

/* What a stop-and-copy now would take, and whether to start it. */
struct mig_converge_verdict {
	uint64_t expected_us;   /* the whole pause: fixed costs plus the bytes at the link's rate */
	uint64_t fixed_us;      /* its part that more rounds cannot shrink */
	uint64_t rate;          /* bytes/s the estimate assumes (0: none measured yet) */
	bool go;
};

/* Records a round: @bytes sent in @round_ns (0 bytes: no rate) and the vCPU hold of its
 * collection @hold_ns (its confirmation goes to mig_converge_confirmed()). */
void mig_converge_round(struct mig_converge *c, uint64_t bytes, uint64_t round_ns, uint64_t hold_ns);
/*
 * Records a wait of @ns for an ACK once its message was written to the socket (the start of the
 * stream's, a round's). Each wait is the round trip plus whatever the destination still had to
 * read and apply: after a round of megabytes, the socket buffers' backlog (tens of ms). The
 * stop-and-copy's state is small, so its confirmations cost the bare round trip, which the
 * shortest wait seen bounds from above.
 */
void mig_converge_confirmed(struct mig_converge *c, uint64_t ns);

/*
 * The decision for @left bytes still to send (dirty pages and disk blocks) with a target of
 * @downtime_ms. Without a measured rate nothing is known: no go unless nothing is left. When the
 * fixed costs alone exceed the target, no number of rounds brings the pause under it: the bytes
 * then get a quarter of the target, so the pause is as short as the pre-copy can make it.
 */
struct mig_converge_verdict mig_converge_judge(const struct mig_converge *c, uint64_t left, unsigned downtime_ms);

#endif
