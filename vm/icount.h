/*
 * icount.h — the only clock of replay.
 *
 * icount counts instructions the hart has executed since power-on. Exactly what counts:
 *   - every instruction the hart fetches and executes counts once, including one that ends in
 *     an exception (ECALL, EBREAK, a page fault, an illegal instruction): its effect is the trap;
 *   - WFI counts once when executed; while the hart then waits, icount does not move;
 *   - taking an interrupt is not an instruction and does not count;
 *   - a fetch that faults counts once (the trap is that step's effect).
 * So every step of the hart advances icount by exactly one, and "the machine state at icount N" is
 * the state after N steps, before any interrupt that is pending at N is taken. Events stamped N are
 * applied at that point.
 */
#ifndef FTVM_VM_ICOUNT_H
#define FTVM_VM_ICOUNT_H

#include <stdint.h>

typedef uint64_t icount_t;

#define ICOUNT_MAX ((icount_t)UINT64_MAX)

#endif
