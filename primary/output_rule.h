/*
 * output_rule.h — the Output Rule: an output leaves only after the backup has the log that made it.
 *
 *   1. When the guest produces an output (console bytes, a frame, a disk request), the primary
 *      copies it into the held queue, stamped with the LSN of the last log record appended so far:
 *      every input the output can depend on is at or below that LSN.
 *   2. The vCPU keeps running; only the output waits.
 *   3. The releaser thread takes outputs in the order they were produced and performs each one
 *      once the gate says its LSN may pass (the backup acknowledged receipt of the log up to it).
 *      Disk reads queue behind earlier writes too, so a read never overtakes a held write. A
 *      write to a shared disk over a range whose read the backup has not replayed yet also
 *      waits until the backup's replay passed that read (replay/shared_reads.h).
 *   4. When FT ends (backup lost and the arbiter won), the gate opens for every LSN; when this
 *      node must halt, the gate refuses and held outputs are dropped, never performed.
 * Held memory is bounded: past OUTPUT_RULE_MAX_HELD_BYTES the producing (vCPU) thread waits.
 */
#ifndef FTVM_PRIMARY_OUTPUT_RULE_H
#define FTVM_PRIMARY_OUTPUT_RULE_H

#include <stdint.h>
#include "common/ft_status.h"
#include "util/compiler.h"
#include "vm/event.h"
#include "vm/icount.h"

#define OUTPUT_RULE_MAX_HELD_BYTES (64u << 20)

struct output_gate {
	/* Waits up to timeout_ms until outputs stamped `lsn` may leave: returns 0 when they may,
	 * -ETIMEDOUT when not yet, -ECANCELED when they never will (this node halts). */
	int (*wait)(void *ctx, uint64_t lsn, int timeout_ms);
	/* Waits likewise until the backup has replayed past `icount` (NULL: never needed). */
	int (*wait_replayed)(void *ctx, icount_t icount, int timeout_ms);
	void *ctx;
};

struct output_rule_stats {
	uint64_t held;          /* outputs waiting now */
	uint64_t held_bytes;
	uint64_t released;      /* outputs performed so far */
	uint64_t dropped;       /* outputs dropped because this node halts */
	uint64_t max_wait_us;   /* longest time an output was held */
	uint64_t hold_le[FT_HOLD_BUCKETS];   /* released outputs held at most ft_hold_bucket_us[i] (cumulative) */
	uint64_t hold_count;    /* released outputs counted in the histogram (all buckets and beyond) */
	uint64_t hold_sum_us;   /* total time released outputs were held */
};

struct output_rule;

/* `live` performs released outputs (its output ops are called only from the releaser thread). */
int output_rule_create(struct vm_world live, struct output_gate gate, struct output_rule **out) FTVM_MUST_CHECK;
/* Stops the releaser; held outputs not yet released are dropped. */
void output_rule_destroy(struct output_rule *rule);
/* Outputs produced at `lsn`. Called on the vCPU thread; copies the data. */
void output_rule_console(struct output_rule *rule, uint64_t lsn, const uint8_t *buf, size_t len);
void output_rule_net(struct output_rule *rule, uint64_t lsn, unsigned nic, const uint8_t *frame, size_t len);
void output_rule_disk(struct output_rule *rule, uint64_t lsn, unsigned disk, const struct vm_disk_request *req);
/* A disk request that also waits for the backup's replay to pass icount replayed_past (0: no). */
void output_rule_disk_after(struct output_rule *rule, uint64_t lsn, icount_t replayed_past, unsigned disk,
			    const struct vm_disk_request *req);
/* Waits until nothing is held (up to timeout_ms): 0 or -ETIMEDOUT. */
int output_rule_drain(struct output_rule *rule, int timeout_ms) FTVM_MUST_CHECK;
/* Wakes the releaser after the gate's answer may have changed (FT ended, halt). */
void output_rule_kick(struct output_rule *rule);
void output_rule_get_stats(struct output_rule *rule, struct output_rule_stats *st);

#endif
