/*
 * mig_frames.h — frames for the guest that reach the source after its vCPU stopped, carried to
 * the destination (docs/migration.md, "Frames at the switch-over").
 *
 * From the stop-and-copy until the switches have learned the guest's MAC at the destination
 * (its RARP announcement), the network still delivers the guest's frames to the source's TAP.
 * Dropped there, a client's TCP segment would wait for its retransmission timeout (200 ms at
 * least). Instead:
 *   1. the source's TAP reader goes on queueing frames while the vCPU is held (as always);
 *   2. once the hand-over is confirmed, the source takes every unicast frame queued for the
 *      guest, oldest first, and sends them as FRAMES messages after HANDOVER; broadcast and
 *      multicast frames reach the destination's TAP directly and are not forwarded;
 *   3. it goes on forwarding what its TAP receives until none came for MIG_FORWARD_QUIET_MS
 *      (the switches have learned the new port), at most MIG_FORWARD_MAX_MS, and at most
 *      MIG_FORWARD_MAX_FRAMES frames and MIG_FORWARD_MAX_BYTES bytes (beyond, frames are dropped
 *      and counted, as a congested wire would drop them); then it closes the stream;
 *   4. the destination's receiver, a thread beside the running VM, checks each frame and hands
 *      it to the live world as if its own TAP had read it: the guest takes it through the one
 *      event interface, so a recorded or FT run logs it like any other NET_RX.
 * Nothing of it can make two copies run: the source forwards only after the destination
 * confirmed HANDOVER, and frames go to the running copy alone.
 */
#ifndef FTVM_MIGRATE_MIG_FRAMES_H
#define FTVM_MIGRATE_MIG_FRAMES_H

#include <stdint.h>
#include "host/world_live.h"
#include "logchannel/channel_types.h"
#include "util/compiler.h"

/* A frame in a FRAMES body: NIC (u32), length (u32), the bytes. */
#define MIG_FRAME_HDR_SIZE 8u
#define MIG_FORWARD_QUIET_MS 100u
#define MIG_FORWARD_MAX_MS 2000u
#define MIG_FORWARD_MAX_FRAMES 4096u
#define MIG_FORWARD_MAX_BYTES (16u << 20)

struct channel;

struct mig_forward_stats {
	uint64_t frames, bytes;         /* forwarded */
	uint64_t dropped;               /* beyond the bounds */
	uint64_t ms;                    /* how long the forwarding lasted */
};

/*
 * The source, after the destination confirmed HANDOVER (world handed over): forwards the guest's
 * unicast frames from world over ch as FRAMES messages, LSNs from *lsn on, until the network
 * went quiet or a bound was reached. msg is a buffer of MIG_MAX_MESSAGE bytes. 0, or -errno when
 * the channel failed (what was sent is sent; the rest is dropped).
 */
int mig_frames_forward(struct channel *ch, uint64_t *lsn, struct world_live *world, uint8_t *msg,
		       struct mig_forward_stats *st) FTVM_MUST_CHECK;

/*
 * Checks a FRAMES body of len bytes and hands each frame to deliver() in order: 0, or -EBADMSG
 * with why for a frame that does not fit the body, a frame of under 14 or over
 * VM_EVENT_MAX_FRAME bytes, or a NIC at or above nnics (nothing of a bad body is delivered).
 */
int mig_frames_parse(const uint8_t *body, size_t len, unsigned nnics,
		     void (*deliver)(void *ctx, unsigned nic, const uint8_t *frame, size_t len), void *ctx, char *why,
		     size_t whylen) FTVM_MUST_CHECK;

/* The destination's receiver: a thread that reads FRAMES from ch (the migration's channel, taken
 * over) after HANDOVER and hands their frames to world, until the source closes the stream, a
 * bound is reached or anything else arrives. */
struct mig_frames_receiver;
int mig_frames_receiver_start(struct channel *ch, struct world_live *world, unsigned nnics,
			      struct mig_frames_receiver **out) FTVM_MUST_CHECK;
/* Waits for the receiver to end (the source closes within MIG_FORWARD_MAX_MS, a silent one fails
 * the channel within its timeout), closes the channel, frees it; NULL is ignored. */
void mig_frames_receiver_stop(struct mig_frames_receiver *r);

#endif
