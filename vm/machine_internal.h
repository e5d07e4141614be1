/*
 * machine_internal.h — the machine's parts, shared by machine.c (construction, run loop) and
 * machine_state.c (save, restore, digest). Not for use outside those two files.
 */
#ifndef FTVM_VM_MACHINE_INTERNAL_H
#define FTVM_VM_MACHINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "vm/board.h"
#include "vm/bus.h"
#include "vm/clint.h"
#include "vm/clock.h"
#include "vm/cpu.h"
#include "vm/finisher.h"
#include "vm/machine.h"
#include "vm/plic.h"
#include "vm/uart.h"
#include "vm/virtio.h"

enum slot_kind { SLOT_EMPTY, SLOT_BLK, SLOT_NET, SLOT_RNG };

/* machine_pause()'s handshake with the vCPU thread (machine_pause.c). */
struct machine_hold {
	pthread_mutex_t lock;
	pthread_cond_t cond;         /* at_rest, in_run or requests changed */
	atomic_uint requests;        /* pauses not yet resumed; read without the lock at each boundary */
	bool in_run;                 /* a machine_run() is in progress, on thread vcpu */
	bool at_rest;                /* that thread is parked or in the world's idle: the state holds still */
	pthread_t vcpu;
};

struct machine_state;

struct machine {
	struct vm_world world;       /* the world of the machine_run() in progress */
	struct vm_world dev_world;   /* what devices see: forwards to world, stops the hart after requests */
	struct vm_bus bus;
	struct machine_state *digest_scratch; /* reused by machine_digest (vCPU thread), so a CHECK allocates nothing */
	uint8_t *ram;
	size_t ram_size;
	uint8_t rom[BOARD_ROM_SIZE];
	struct vm_clock clock;
	struct cpu *cpu;
	struct clint clint;
	struct plic plic;
	struct uart uart;
	struct finisher finisher;
	struct virtio_device *slot[BOARD_VIRTIO_SLOTS];
	enum slot_kind slot_kind[BOARD_VIRTIO_SLOTS];
	struct virtio_device *disk[MACHINE_MAX_DISKS];
	struct virtio_device *nic[MACHINE_MAX_NICS];
	struct virtio_device *rng;
	unsigned ndisks, nnics;
	uint64_t config_digest;
	struct machine_identity identity;
	uint64_t input_digest;       /* every event applied so far: what reached the guest from outside */
	_Atomic icount_t progress;   /* icount at the latest slice boundary, for other threads */
	uint64_t trace_slice;        /* FTVM_TRACE: 0 = off */
	struct cpu_stats trace_stats;
	struct machine_hold hold;
};

/* machine_pause.c: set up and tear down the handshake; the run loop's side of it. */
int machine_hold_init(struct machine *m);
void machine_hold_destroy(struct machine *m);
void machine_hold_enter_run(struct machine *m);
void machine_hold_leave_run(struct machine *m);
/* At a slice boundary: parks while pauses are held (one relaxed load when none is). */
void machine_hold_boundary(struct machine *m);
/* Around the world's idle wait: the machine's state holds still in between. */
void machine_hold_idle_begin(struct machine *m);
void machine_hold_idle_end(struct machine *m);

#endif
