/*
 * jit.h — the JIT: guest basic blocks translated to x86-64, run in the interpreter's place
 * (docs/jit.md). Attaching it is not guest-visible: the guest state at every icount is the one
 * the interpreter would produce, so a run may use either and a log recorded under one replays
 * under the other.
 */
#ifndef FTVM_VM_JIT_H
#define FTVM_VM_JIT_H

#include "util/compiler.h"

struct cpu;

/* Makes cpu run translated code from its next cpu_run() (no-op when attached). 0, -ENOTSUP on a
 * host the JIT does not emit code for, -ENOMEM or another -errno when the code area cannot be
 * mapped (said through diag). Between runs only. */
int jit_attach(struct cpu *cpu) FTVM_MUST_CHECK;
/* Translates a block once it has been entered `entries` times (1..the default, which is tuned
 * for a boot) instead of the default: for tests that want as much code translated as they can
 * get. No-op unless attached. */
void jit_set_hot(struct cpu *cpu, unsigned entries);
/* Back to the interpreter alone; frees the translated code. */
void jit_detach(struct cpu *cpu);

#endif
