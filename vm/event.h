/*
 * event.h — the determinism boundary: every nondeterministic input enters the guest here.
 *
 * The machine (machine.c) runs the hart in slices, in the world given to machine_run() for that
 * run only (a machine is built without one). At each slice boundary it asks the world for
 * events due at the current icount and applies them with machine_apply_event(); the world also
 * says how far the machine may run before asking again and what to do when the hart idles in WFI.
 * Outputs (console bytes, transmitted frames, disk requests, entropy requests) leave through the
 * same world at the moment the guest issues them.
 *
 * A plain run (host/world_live.c), a recording and a replay (replay/) differ only in the
 * world behind this interface; device models never branch on the mode.
 */
#ifndef FTVM_VM_EVENT_H
#define FTVM_VM_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include "vm/icount.h"

enum vm_event_kind {
	VM_EV_TIME = 1,       /* re-anchor the guest clock: time, ticks_per_insn (clock.h) */
	VM_EV_NET_RX = 2,     /* a frame arrived for NIC `device` */
	VM_EV_DISK_DONE = 3,  /* disk `device` completed request `request` with `status`; data = bytes read */
	VM_EV_RNG = 4,        /* entropy bytes for RNG `device` */
	VM_EV_CONSOLE_IN = 5, /* bytes typed on the console (UART receive) */
};

/* Caps that the device models, the log format and the channel all enforce. */
#define VM_EVENT_MAX_FRAME 65550u        /* largest NET_RX / net_tx frame (bare Ethernet, no virtio-net header) */
#define VM_EVENT_MAX_DISK_DATA (1u << 20) /* largest data of one DISK_DONE */
#define VM_EVENT_MAX_BYTES 4096u          /* largest RNG / CONSOLE_IN payload */

enum vm_disk_status { VM_DISK_OK = 0, VM_DISK_IOERR = 1, VM_DISK_UNSUPP = 2 };

struct vm_event {
	enum vm_event_kind kind;
	icount_t icount;       /* when it is applied */
	uint32_t device;       /* NIC, disk or RNG index (board order) */
	uint64_t request;      /* DISK_DONE: request id given at submit */
	uint32_t status;       /* DISK_DONE: enum vm_disk_status */
	uint64_t time;         /* TIME: timebase ticks */
	uint64_t ticks_per_insn; /* TIME: 32.32 rate */
	uint32_t len;          /* payload length */
	const uint8_t *data;   /* payload, owned by the world until the next call into it */
};

enum vm_disk_op { VM_DISK_READ = 0, VM_DISK_WRITE = 1, VM_DISK_FLUSH = 2 };

/* A disk request as the device submits it; ids increase by one per disk, from 1. For writes,
 * data is a bounce-buffer copy of the guest's bytes, valid only during the call. */
struct vm_disk_request {
	uint64_t id;
	enum vm_disk_op op;
	uint64_t sector;       /* 512-byte sectors */
	uint32_t len;          /* bytes, multiple of 512, <= VM_EVENT_MAX_DISK_DATA */
	const uint8_t *data;   /* WRITE only */
};

struct vm_world_ops {
	/* Outputs, called on the vCPU thread when the guest produces them. */
	void (*console_out)(void *ctx, const uint8_t *buf, size_t len);
	void (*net_tx)(void *ctx, unsigned nic, const uint8_t *frame, size_t len);
	void (*disk_submit)(void *ctx, unsigned disk, const struct vm_disk_request *req);
	/* Entropy wanted by RNG `dev`: at most `len` bytes come back as VM_EV_RNG. */
	void (*rng_request)(void *ctx, unsigned dev, uint32_t len);
	/* The next event due at `now`: returns 1 and fills *ev, or 0 when none is due now. A negative
	 * errno ends the run (e.g. a replay log that is corrupt or diverged). */
	int (*next_event)(void *ctx, icount_t now, struct vm_event *ev);
	/* The icount up to which the machine may run before asking next_event again (> now). */
	icount_t (*horizon)(void *ctx, icount_t now);
	/* The hart waits in WFI at `now`; nothing will change until an event arrives. `deadline` is the
	 * icount at which the guest's next timer fires if time advanced at the current rate
	 * (ICOUNT_MAX if none) and `deadline_time` that timer's time. Returns when next_event has
	 * something to apply at `now` (a live world sleeps, then anchors TIME); negative errno ends the run. */
	int (*idle)(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time);
};

struct vm_world {
	const struct vm_world_ops *ops;
	void *ctx;
};

#endif
