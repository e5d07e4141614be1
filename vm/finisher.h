/*
 * finisher.h — the SiFive test finisher (`sifive,test1`): how the guest powers off, fails or resets.
 *
 * A 32-bit write to offset 0 with 0x5555 in the low half means pass/poweroff, 0x3333 fail with the
 * exit code in bits 31:16, 0x7777 reset; other values are ignored (as in QEMU). The finisher only
 * records the request and calls `fired` so the machine can stop the hart after this instruction.
 */
#ifndef FTVM_VM_FINISHER_H
#define FTVM_VM_FINISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/bus.h"

enum finisher_action { FINISHER_NONE, FINISHER_POWEROFF, FINISHER_RESET };

struct finisher {
	enum finisher_action action;
	int status;             /* POWEROFF: 0 for pass, the failure code otherwise */
	void (*fired)(void *ctx);
	void *ctx;
};

void finisher_init(struct finisher *f, void (*fired)(void *ctx), void *ctx);
struct bus_region finisher_region(struct finisher *f, uint64_t base, uint64_t size);

struct finisher_state {
	uint32_t action;        /* enum finisher_action */
	int32_t status;
};
struct state_io;
void finisher_save(const struct finisher *f, struct finisher_state *s);
int finisher_restore(struct finisher *f, const struct finisher_state *s, char *err, size_t errlen) FTVM_MUST_CHECK;
void finisher_state_io(struct state_io *io, void *state);
uint64_t finisher_digest(const struct finisher *f, uint64_t seed);

#endif
