/*
 * mig_frames.c — the guest's frames that reach the source after the hand-over, forwarded to the
 * destination (see mig_frames.h for the steps and the bounds).
 *
 * The source's side runs on the migration's thread, after HANDOVER was confirmed: the vCPU never
 * runs again, so every input still queued in the live world is this side's to take. The
 * destination's side is a thread of its own beside the running VM; it only posts into the live
 * world's input queue, which is thread-safe, so the vCPU meets the frames at its next boundary.
 */
#define DIAG_MODULE "migrate"
#include "migrate/mig_frames.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/backend.h"
#include "logchannel/channel.h"
#include "migrate/mig_stream.h"
#include "util/byteorder.h"
#include "util/diag.h"
#include "util/time.h"

#define MS (1000ull * 1000)
/* The destination waits this much longer than the source forwards before it gives up on it. */
#define RECEIVER_SLACK_MS 1000u
#define SEND_TIMEOUT_MS 1000

static bool unicast(const uint8_t *frame)
{
	return !(frame[0] & 1); /* the I/G bit of the destination MAC */
}

static int send_frames(struct channel *ch, uint64_t *lsn, uint8_t *msg, size_t body)
{
	mig_hdr_encode(msg, MIG_FRAMES, 0, (uint32_t)body);
	int ret = channel_send_wait(ch, *lsn, msg, MIG_HDR_SIZE + body, SEND_TIMEOUT_MS);
	if (!ret)
		(*lsn)++;
	return ret;
}

int mig_frames_forward(struct channel *ch, uint64_t *lsn, struct world_live *world, uint8_t *msg,
		       struct mig_forward_stats *st)
{
	uint8_t *frame = malloc(VM_EVENT_MAX_FRAME);
	uint64_t t0 = time_mono_ns(), end = t0 + MIG_FORWARD_MAX_MS * MS, quiet_end = t0 + MIG_FORWARD_QUIET_MS * MS;
	size_t body = 0, len;
	unsigned nic;
	int ret = 0;
	memset(st, 0, sizeof(*st));
	if (!frame)
		return -ENOMEM;
	for (;;) {
		/* What is queued goes at once; a message waits for more only while frames keep coming. */
		uint64_t until = body ? time_mono_ns() : quiet_end < end ? quiet_end : end;
		int got = world_live_take_frame(world, until, &nic, frame, &len);
		if (got && !unicast(frame))
			continue;
		if (got && (st->frames >= MIG_FORWARD_MAX_FRAMES || st->bytes + len > MIG_FORWARD_MAX_BYTES)) {
			st->dropped++;
			continue;
		}
		if (body && (!got || body + MIG_FRAME_HDR_SIZE + len > MIG_MAX_BODY)) {
			ret = send_frames(ch, lsn, msg, body);
			body = 0;
			if (ret)
				break;
		}
		if (!got) {
			if (time_mono_ns() >= quiet_end || time_mono_ns() >= end)
				break;
			continue;
		}
		uint8_t *p = msg + MIG_HDR_SIZE + body;
		put_le32(p, nic);
		put_le32(p + 4, (uint32_t)len);
		memcpy(p + MIG_FRAME_HDR_SIZE, frame, len);
		body += MIG_FRAME_HDR_SIZE + len;
		st->frames++;
		st->bytes += len;
		quiet_end = time_mono_ns() + MIG_FORWARD_QUIET_MS * MS;
	}
	/* Whatever is left in the queue is lost with this copy: counted, as the bounds' drops are. */
	while (world_live_take_frame(world, 0, &nic, frame, &len) == 1)
		st->dropped += unicast(frame);
	free(frame);
	st->ms = (time_mono_ns() - t0) / MS;
	if (!ret)
		ret = channel_flush(ch, SEND_TIMEOUT_MS);
	return ret;
}

int mig_frames_parse(const uint8_t *body, size_t len, unsigned nnics,
		     void (*deliver)(void *ctx, unsigned nic, const uint8_t *frame, size_t len), void *ctx, char *why,
		     size_t whylen)
{
	/* Checked whole first: a bad body delivers nothing. */
	for (int pass = 0; pass < 2; pass++) {
		size_t at = 0;
		if (!len) {
			snprintf(why, whylen, "FRAMES: empty body");
			return -EBADMSG;
		}
		while (at < len) {
			if (len - at < MIG_FRAME_HDR_SIZE) {
				snprintf(why, whylen, "FRAMES: at body byte %zu: %zu bytes left, a frame header needs %u", at,
					 len - at, MIG_FRAME_HDR_SIZE);
				return -EBADMSG;
			}
			uint32_t nic = get_le32(body + at), n = get_le32(body + at + 4);
			if (nic >= nnics || n < TAP_MIN_FRAME || n > VM_EVENT_MAX_FRAME || n > len - at - MIG_FRAME_HDR_SIZE) {
				snprintf(why, whylen, "FRAMES: at body byte %zu: a frame of %u bytes for NIC %u (this VM has %u "
					 "NIC(s), a frame holds %u..%u bytes, %zu are left)", at, n, nic, nnics, TAP_MIN_FRAME,
					 VM_EVENT_MAX_FRAME, len - at - MIG_FRAME_HDR_SIZE);
				return -EBADMSG;
			}
			if (pass)
				deliver(ctx, nic, body + at + MIG_FRAME_HDR_SIZE, n);
			at += MIG_FRAME_HDR_SIZE + n;
		}
	}
	return 0;
}

struct mig_frames_receiver {
	struct channel *ch;
	struct world_live *world;
	unsigned nnics;
	pthread_t thread;
	uint8_t *buf;                   /* MIG_MAX_MESSAGE bytes */
	struct mig_forward_stats st;    /* the thread's until joined */
};

static void deliver(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct mig_frames_receiver *r = ctx;
	if (r->st.frames >= MIG_FORWARD_MAX_FRAMES || r->st.bytes + len > MIG_FORWARD_MAX_BYTES ||
	    world_live_receive_frame(r->world, nic, frame, len)) {
		r->st.dropped++;
		return;
	}
	r->st.frames++;
	r->st.bytes += len;
}

static void *receiver_thread(void *arg)
{
	struct mig_frames_receiver *r = arg;
	uint64_t t0 = time_mono_ns(), end = t0 + (MIG_FORWARD_MAX_MS + RECEIVER_SLACK_MS) * MS;
	for (;;) {
		uint64_t now = time_mono_ns(), lsn;
		size_t len;
		char why[256];
		struct mig_hdr h;
		if (now >= end) {
			diag_warn("frames from the source: still coming after %u ms, no more taken", MIG_FORWARD_MAX_MS);
			break;
		}
		int ret = channel_recv(r->ch, &lsn, r->buf, MIG_MAX_MESSAGE, &len, (int)((end - now) / MS) + 1);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret)
			break; /* the source closed the stream (or went silent) */
		ret = mig_hdr_decode(r->buf, len, &h, why, sizeof(why));
		if (!ret && h.kind != MIG_FRAMES)
			snprintf(why, sizeof(why), "%s after HANDOVER", mig_kind_name(h.kind)), ret = -EBADMSG;
		if (!ret)
			ret = mig_frames_parse(r->buf + MIG_HDR_SIZE, h.len, r->nnics, deliver, r, why, sizeof(why));
		if (ret) {
			diag_warn("frames from the source: message %llu refused: %s", (unsigned long long)lsn, why);
			break;
		}
		channel_ack(r->ch, lsn);
	}
	r->st.ms = (time_mono_ns() - t0) / MS;
	diag_info("frames from the source after the hand-over: %llu (%llu bytes) in %llu ms, %llu dropped",
		  (unsigned long long)r->st.frames, (unsigned long long)r->st.bytes, (unsigned long long)r->st.ms,
		  (unsigned long long)r->st.dropped);
	channel_close(r->ch);
	r->ch = NULL;
	return NULL;
}

int mig_frames_receiver_start(struct channel *ch, struct world_live *world, unsigned nnics,
			      struct mig_frames_receiver **out)
{
	struct mig_frames_receiver *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (r)
		r->buf = malloc(MIG_MAX_MESSAGE);
	if (!r || !r->buf) {
		free(r);
		return -ENOMEM;
	}
	r->ch = ch;
	r->world = world;
	r->nnics = nnics;
	int ret = pthread_create(&r->thread, NULL, receiver_thread, r);
	if (ret) {
		free(r->buf);
		free(r);
		return -ret;
	}
	*out = r;
	return 0;
}

void mig_frames_receiver_stop(struct mig_frames_receiver *r)
{
	if (!r)
		return;
	pthread_join(r->thread, NULL);
	free(r->buf);
	free(r);
}
