/*
 * machine.h — the board (a subset of QEMU's riscv64 `virt`) and its run loop.
 *
 * machine_create() builds RAM, the hart, the devices of the board table (board.c), loads firmware,
 * kernel, initrd and the generated device tree, exactly as `qemu-system-riscv64 -M virt -bios FW
 * -kernel K -initrd I -append A` would. The machine knows nothing of the world it will run in:
 * machine_run(m, world, ...) binds one for the length of that call, runs slices of the hart, applies
 * the world's events at slice boundaries and stops at power-off, at a requested icount, or on error.
 * Outputs only ever leave during machine_run, so consecutive runs may use different worlds (a
 * replay, then the live world at FT go-live) and the machine never learns that anything changed.
 */
#ifndef FTVM_VM_MACHINE_H
#define FTVM_VM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/board.h"
#include "vm/clint.h"
#include "vm/clock.h"
#include "vm/cpu.h"
#include "vm/finisher.h"
#include "vm/plic.h"
#include "vm/uart.h"
#include "vm/virtio_state.h"
#include "vm/event.h"
#include "vm/icount.h"
#include "vm/machine_config.h"

struct machine;

/* Builds the machine; on error returns -errno and writes a one-line reason to err. */
int machine_create(const struct machine_config *config, struct machine **out, char *err,
		   size_t errlen) FTVM_MUST_CHECK;
void machine_destroy(struct machine *m);

enum machine_exit {
	MACHINE_EXIT_POWEROFF,    /* test finisher: *status is 0 for pass/poweroff, the code otherwise */
	MACHINE_EXIT_RESET,       /* test finisher asked for a reset */
	MACHINE_EXIT_STOP_ICOUNT, /* reached the requested icount */
	MACHINE_EXIT_ERROR,       /* the world or an event failed; *status is -errno */
};

/* Runs in `world` until power-off, reset, icount == stop_at (ICOUNT_MAX for never) or an error. */
enum machine_exit machine_run(struct machine *m, struct vm_world world, icount_t stop_at, int *status);

/* Applies one event at the current icount (vCPU thread). -EINVAL when it does not fit. */
int machine_apply_event(struct machine *m, const struct vm_event *ev) FTVM_MUST_CHECK;

/* The vCPU thread's exact icount (call it from that thread, or when no run is in progress). */
icount_t machine_icount(const struct machine *m);
/* The hart's counters (vm/cpu.h), from the vCPU's thread or once it has stopped. */
void machine_cpu_stats(const struct machine *m, struct cpu_stats *out);
/* Any thread: the icount of the latest slice boundary (status reports, never replay decisions). */
icount_t machine_progress(const struct machine *m);
/* The guest clock, for a world that takes over (FT go-live). */
const struct vm_clock *machine_clock(const struct machine *m);
/* Go-live: submits again, to `world`, every disk request that was submitted and has no completion
 * (virtio_blk_pending); returns how many. Safe because disk writes are idempotent. */
unsigned machine_reissue_disk_requests(struct machine *m, struct vm_world world);

/* Dirty-page tracking for pre-copy (vm/machine_dirty.c). While on, every write into guest RAM —
 * by the hart (plain, compressed, FP, AMO/SC stores, any privilege and translation, page-table
 * A/D updates) or by a device (virtio used rings, received frames, disk reads, entropy) — marks
 * its 4 KiB page in a bitmap: bit p % 64 of word p / 64 stands for the page at RAM offset
 * p * 4096. A page may be marked without its bytes changing (a store of the same value, a page
 * the hart held a store translation for); a page whose bytes changed is always marked. Writes
 * through machine_ram() (restoring RAM) are not the guest's and are not tracked. Tracking changes
 * nothing the guest can see: same instructions, icounts, digests and events.
 * Call these on the vCPU thread between machine_run()s, or from any thread while the vCPU is
 * held by machine_pause(). */
/* Words of the bitmap (ceil(RAM pages / 64)). */
size_t machine_dirty_words(const struct machine *m);
/* Starts tracking with every page clean (a pre-copy's first round copies all of RAM anyway).
 * 0, -EALREADY when on, -ENOMEM. */
int machine_dirty_start(struct machine *m) FTVM_MUST_CHECK;
/* Copies the pages written since the start or the previous collection into `bitmap`
 * (machine_dirty_words() words) and starts the next round with every page clean. Returns how
 * many pages were marked, or -EINVAL when tracking is off or `words` is not the bitmap's size. */
long machine_dirty_collect(struct machine *m, uint64_t *bitmap, size_t words) FTVM_MUST_CHECK;
/* Stops tracking (nothing when off). */
void machine_dirty_stop(struct machine *m);
/* From the thread that collects, while the vCPU may run: whether page p was marked since the
 * last collection (false when tracking is off). A racy read by design: a page it finds marked is
 * in the next collection (only a collection clears a mark); one marked meanwhile may read as not
 * marked. A pre-copy skips the pages it finds marked: they go again in the next round anyway. */
bool machine_dirty_marked_racy(const struct machine *m, size_t p);

/* Holding the vCPU at a slice boundary for another thread (vm/machine_pause.c): snapshots and
 * migration read the machine's state and RAM, or collect dirty pages, between the two calls.
 * machine_pause() returns once the vCPU thread is parked at a boundary — between slices, before
 * it asks the world for the boundary's events, or inside the world's idle wait, where the
 * machine's state does not change either — or no machine_run() is in progress; a machine_run()
 * that starts while the machine is held parks before its first instruction. machine_resume()
 * lets it go on. The pause injects nothing and moves no boundary's icount: the guest sees only
 * that wall time passed. A running slice is not cut short, so the wait is at most one slice (the
 * world's horizon: 2^20 instructions for the live world) or as long as a call into the world
 * blocks (a full log buffer holding the primary's vCPU; the idle wait counts as parked). Pauses
 * nest (each machine_pause() needs its machine_resume()). Never call machine_pause() on the vCPU
 * thread (-EDEADLK): code there is at a boundary already. */
int machine_pause(struct machine *m) FTVM_MUST_CHECK;
void machine_resume(struct machine *m);

/* Everything of a machine but its RAM, as plain data: the hart, the clock's anchor, the input
 * digest, every board device and each occupied virtio slot (board order, top slot first as
 * machine_create fills them). Saved at a slice boundary, restored into a machine created with the
 * same configuration (config_digest must match). */
struct machine_state {
	uint64_t config_digest;
	uint64_t input_digest;
	struct vm_clock clock;
	struct cpu_state cpu;
	struct clint_state clint;
	struct plic_state plic;
	struct uart_state uart;
	struct finisher_state finisher;
	uint32_t nvirtio;
	struct virtio_state *virtio[BOARD_VIRTIO_SLOTS];
};

/* A state with room for every virtio slot (NULL when out of memory); freed with what it owns. */
struct machine_state *machine_state_alloc(void);
void machine_state_free(struct machine_state *s);
/* Backs the host memory the hart fills as it runs (cpu_warm()), ahead of the first run of a
 * machine that takes over a running guest: on a migration's destination the restored guest
 * otherwise spent its first 100-150 ms faulting in the decode cache and the JIT's tables, a page
 * at a time, at a few thousand instructions per 100 ms. Nothing the guest sees changes. */
void machine_warm(struct machine *m);
/* The hart's TLB emptied, as machine_restore() leaves it (cpu_tlb_flush()): an FT clone's source
 * does this at the cut, so it runs on from the same TLB as its new backup, which restored the
 * state (not during machine_run). */
void machine_flush_tlb(struct machine *m);
/* Saves at a slice boundary (not during machine_run). 0 or -ENOMEM. */
int machine_save(const struct machine *m, struct machine_state *s) FTVM_MUST_CHECK;
/* Loads a saved state into a machine that has not run; every part is checked before it is used
 * (see each part's restore). On failure (-EINVAL, -ENOMEM; reason in err) the machine may be
 * half restored and must be destroyed. RAM is restored separately (machine_ram). */
int machine_restore(struct machine *m, const struct machine_state *s, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Walks the parts of a machine_state that are not sections of their own (state_io.h):
 * config digest, input digest and clock. */
void machine_core_state_io(struct state_io *io, void *state);
/* Guest RAM (for the state format: RAM is saved and restored as pages). The writable one tells
 * the JIT that RAM is being replaced (it checks every block's bytes again before running it), so
 * it is for restores, on the vCPU thread or with the vCPU held; readers use the const one. */
uint8_t *machine_ram(struct machine *m, size_t *size);
const uint8_t *machine_ram_const(const struct machine *m, size_t *size);

/* Drops all of guest RAM: every page reads as zero again and the host backs none of them (a
 * restore's first step, so pages a state does not carry stay untouched). 0 or -errno. */
int machine_ram_drop(struct machine *m) FTVM_MUST_CHECK;

/* Digest of the saved state (CPU, clock, input digest, devices): the hash of machine_save's
 * bytes; with the RAM digest too when include_memory. */
uint64_t machine_digest(const struct machine *m, bool include_memory);
/* Both digests from one save (a CHECK needs the state digest and, now and then, the one with
 * memory): *state = machine_digest(m, false) and, when full is not NULL,
 * *full = machine_digest(m, true). */
void machine_digests(const struct machine *m, uint64_t *state, uint64_t *full);
/* Digest of the configuration (memory size, devices, firmware/kernel/initrd bytes, command line):
 * a log recorded for one configuration is refused for another. */
uint64_t machine_config_digest(const struct machine *m);

/* The configuration as a saved state records it (docs/state-format.md, CONFIG): the digest above
 * and enough beside it to name what differs when a state is offered to another machine. */
struct machine_identity {
	uint64_t config_digest;
	uint64_t mem_mib;
	uint32_t ndisks, nnics;
	bool rng, bios;
	uint64_t disk_bytes[MACHINE_MAX_DISKS];
	bool disk_read_only[MACHINE_MAX_DISKS];
	uint8_t nic_mac[MACHINE_MAX_NICS][6];
	uint64_t bios_digest, kernel_digest, initrd_digest, fdt_digest; /* XXH3-64 of each image, 0 if none */
};
const struct machine_identity *machine_identity(const struct machine *m);

#endif
