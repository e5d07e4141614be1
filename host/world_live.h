/*
 * world_live.h — the world behind a plain run (`ftvm run`): the terminal, live back ends, and a
 * guest clock that follows either the wall clock or nothing at all.
 *
 * WORLD_CLOCK_WALL: the console (console.h) is the terminal or the descriptors given; disk, TAP
 * and entropy requests go to the back ends of backend.h and come back through the input queue. Guest time tracks wall time: at
 * slice boundaries the world re-anchors TIME, with a rate fitted to the measured instruction speed,
 * only when the guest clock has drifted more than a few ms; while the hart idles it sleeps until
 * the wall time of the next timer deadline or an input, then anchors.
 *
 * WORLD_CLOCK_VIRTUAL (tests, benchmarks): the wall clock is never read. Time runs at the nominal
 * rate, an idle hart jumps straight to its timer deadline, disk requests complete at the next
 * slice boundary (the world waits for the back end there) and entropy comes from a PRNG seeded with
 * rng_seed — so two runs with the same inputs are bit-identical (console input and TAP frames, if
 * any arrive, are the only exceptions).
 */
#ifndef FTVM_HOST_WORLD_LIVE_H
#define FTVM_HOST_WORLD_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/clock.h"
#include "vm/event.h"
#include "vm/machine.h"

enum world_clock_mode { WORLD_CLOCK_WALL, WORLD_CLOCK_VIRTUAL };

struct world_live_config {
	enum world_clock_mode clock;
	unsigned ndisks;
	const char *disk_path[MACHINE_MAX_DISKS];
	bool disk_read_only[MACHINE_MAX_DISKS];
	unsigned nnics;
	const char *tap_ifname[MACHINE_MAX_NICS];
	uint64_t rng_seed;        /* virtual clock only */
	int console_in_fd;        /* -1: no console input */
	int console_out_fd;
};

struct world_live;

/* Opens the back ends and starts the console reader; -errno with a one-line reason in err. */
int world_live_create(const struct world_live_config *config, struct world_live **out, char *err,
		      size_t errlen) FTVM_MUST_CHECK;
/* Stops the reader, restores the terminal, closes the back ends. */
void world_live_destroy(struct world_live *w);
struct vm_world world_live_world(struct world_live *w);
uint64_t world_live_disk_size(const struct world_live *w, unsigned disk);
/* True once the user typed Ctrl-A x (machine_run then ended with -ECANCELED). */
bool world_live_quit_requested(const struct world_live *w);
/* Async-signal-safe: ends the run at the next boundary (or within 100 ms of idling) with
 * -ECANCELED, so the terminal is restored; world_live_quit_signal() then returns signo. */
void world_live_request_quit(struct world_live *w, int signo);
int world_live_quit_signal(const struct world_live *w);
/* Any thread: ends the run for good at the next boundary, before the guest executes anything more
 * (a VM held at a boundary by machine_pause() stops as soon as it is let go), with -ECANCELED, as
 * `ftvm snapshot --stop` needs once its snapshot is complete. */
void world_live_request_stop(struct world_live *w);
bool world_live_stop_requested(const struct world_live *w);
/* For a new machine after a guest reset: time restarts at 0, requests still in flight are
 * completed and dropped (the old devices are gone); console input already queued is kept. */
void world_live_reset(struct world_live *w);
/* Continues a guest whose clock was driven by someone else (a replay going live at icount `now`):
 * guest time carries on from `clock` and tracks the wall clock from here. What its first 100,000
 * instructions here cost the vCPU thread is printed at FTVM_DIAG=info ("taken over: ..."). */
void world_live_take_clock(struct world_live *w, icount_t now, const struct vm_clock *clock);
/* Flushes buffered console output. */
void world_live_flush(struct world_live *w);
/* Live migration, with the vCPU held (machine_pause): waits until every disk request handed to
 * the back ends has reached the disk, so no write of this host can land after the destination
 * took the disk over. Their completions stay queued. */
void world_live_drain_disks(struct world_live *w);
/* A live copy of the disks (migration with its storage, FT clone): the number of disks and disk
 * i's back end (dirty-block tracking and a handle of one's own, backend.h). */
unsigned world_live_ndisks(const struct world_live *w);
unsigned world_live_nnics(const struct world_live *w);
struct disk_backend *world_live_disk_backend(struct world_live *w, unsigned disk);
/* Live migration's hand-over: this copy of the VM stops for good. The run ends at the next
 * boundary with -ECANCELED before another instruction (world_live_handed_over() then says why);
 * nothing more leaves. */
void world_live_hand_over(struct world_live *w);
bool world_live_handed_over(const struct world_live *w);
/* After the hand-over, for the migration's sender (any one thread): the next frame the TAPs
 * received for the guest, oldest first, discarding every other queued input (this copy never runs
 * again). Waits until the monotonic time until_ns at most: 1 with the frame in buf
 * (VM_EVENT_MAX_FRAME bytes), *len and *nic, 0 when none came. */
int world_live_take_frame(struct world_live *w, uint64_t until_ns, unsigned *nic, uint8_t *buf, size_t *len);
/* Any thread: a frame for NIC nic enters the guest as if its TAP had read it (the migration's
 * destination, for frames its source received after the hand-over). Bounded like a TAP's frames:
 * 14 .. VM_EVENT_MAX_FRAME bytes, an existing NIC; -EINVAL otherwise. */
int world_live_receive_frame(struct world_live *w, unsigned nic, const uint8_t *frame, size_t len) FTVM_MUST_CHECK;
/* The FT clone's cut: the run ends at the next boundary with -ECANCELED before another
 * instruction, like a hand-over, but this copy goes on (the caller runs the machine again, now
 * recorded for its new backup); outputs still leave. world_live_take_cut() says whether a cut
 * ended the run and clears it. */
void world_live_cut(struct world_live *w);
bool world_live_take_cut(struct world_live *w);

#endif
