/*
 * digest.h — the FPU digest, shared by the bare-metal program (tests/fpu/guest, run on QEMU and
 * on ftvm) and its host twin (digest_host.c, which feeds the same instruction words to
 * vm/cpu_fpu.c directly). digest_core.c owns the operand tables, the list of instruction words
 * and the hashing; each platform supplies how to execute one word and how to print.
 */
#ifndef FTVM_TESTS_FPU_DIGEST_H
#define FTVM_TESTS_FPU_DIGEST_H

#include <stdint.h>

/* Register use of every digest instruction: float operands in f0, f1, f2, a float result in f3;
 * an integer operand or result in x10 (a0). */
#define DIGEST_FRS1 0u
#define DIGEST_FRS2 1u
#define DIGEST_FRS3 2u
#define DIGEST_FRD 3u
#define DIGEST_XREG 10u

/* Executes `insn` with f0..f2 = a, b, c (raw 64-bit) and x10 = a, from clear fflags; returns f3
 * (raw) or, if int_result, x10, and stores the fflags raised in *flags. */
uint64_t digest_exec(uint32_t insn, int int_result, uint64_t a, uint64_t b, uint64_t c, uint64_t *flags);
void digest_set_frm(unsigned frm);
void digest_putc(char c);

void digest_puts(const char *s);
void digest_puthex(uint64_t v, int digits);
/* Runs every instruction group and prints one line each, then "ops N digest H". */
void digest_run(void);

#endif
