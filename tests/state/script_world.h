/*
 * script_world.h — a deterministic world for state tests whose own state can be copied.
 *
 * Disks are in memory; a request completes a pseudo-random number of instructions after it was
 * submitted (so saves often land with requests in flight), entropy likewise; frames arrive on
 * NIC 0 and bytes on the console at fixed icount intervals; an idle hart jumps to whichever comes
 * first, its timer or the next scheduled input. Everything is a function of the seed and of what
 * the guest did, and script_world_clone() copies all of it: a restored machine run in the clone
 * of its original's world receives exactly the inputs the original receives.
 */
#ifndef FTVM_TESTS_STATE_SCRIPT_WORLD_H
#define FTVM_TESTS_STATE_SCRIPT_WORLD_H

#include <stdint.h>
#include "vm/event.h"
#include "vm/machine.h"

#define SW_MAX_PENDING 2048u

struct sw_request {
	unsigned dev;
	uint64_t id;             /* disk request id; 0 for entropy */
	enum vm_disk_op op;
	uint64_t sector;
	uint32_t len;
	icount_t delay;          /* not yet dated: due is now + delay at the next boundary */
	icount_t due;
};

struct script_world {
	uint64_t rand;                       /* xorshift64 state */
	unsigned ndisks, nnics;
	uint8_t *disk[MACHINE_MAX_DISKS];
	uint64_t disk_bytes[MACHINE_MAX_DISKS];
	struct sw_request disk_req[SW_MAX_PENDING];
	unsigned ndisk_req;
	struct sw_request rng_req[SW_MAX_PENDING];
	unsigned nrng_req;
	icount_t rx_every, next_rx;          /* 0: no frames */
	icount_t console_every, next_console;
	uint64_t pending_time;               /* a TIME event to give (0: none) */
	uint64_t outputs;                    /* digest of everything the guest sent out */
	uint64_t events;                     /* events handed out */
	uint8_t payload[VM_EVENT_MAX_DISK_DATA];
};

/* Disks of the given sizes, zero-filled. Returns NULL when out of memory. */
struct script_world *script_world_create(uint64_t seed, unsigned ndisks, const uint64_t *disk_bytes,
					 unsigned nnics, icount_t rx_every, icount_t console_every);
struct script_world *script_world_clone(const struct script_world *w);
void script_world_destroy(struct script_world *w);
struct vm_world script_world_world(struct script_world *w);

#endif
