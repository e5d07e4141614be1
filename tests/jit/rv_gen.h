/*
 * rv_gen.h — a seeded generator of random RV64IMC test programs for the JIT differential test.
 *
 * rv_gen_program() writes a whole bare-metal program into a RAM image: a prologue that sets up
 * the reserved registers, mtvec and the timer interrupt; a body of random instructions (integer,
 * M, compressed, loads and stores in a scratch area, loads of an icount-reading MMIO register,
 * forward branches and jumps, faulting accesses, ecall/ebreak/illegal, FENCE/FENCE.I, CSR
 * traffic, stores over the body itself) run in a loop; and a trap handler that skips the
 * faulting instruction and acknowledges interrupts through MMIO. The program need not terminate
 * or even stay sane (it rewrites itself): the test only needs both engines to agree on it.
 */
#ifndef FTVM_TESTS_JIT_RV_GEN_H
#define FTVM_TESTS_JIT_RV_GEN_H

#include <stddef.h>
#include <stdint.h>

#define GEN_RAM_BASE 0x80000000ull
#define GEN_RAM_SIZE (128u << 10)
#define GEN_BODY_OFF 0x100u      /* the random body, rewritten by its own stores */
#define GEN_BODY_MAX 0x0e00u     /* bytes: branches back to the body start stay in B range */
#define GEN_DMA_SUB_OFF 0x2000u  /* a subroutine whose code only the test device's DMA rewrites */
#define GEN_HANDLER_OFF 0x3000u
#define GEN_SCRATCH_OFF 0x10000u /* loads and stores land around here */
#define GEN_MMIO_BASE 0x10000000ull /* reads give the reader's icount; a write acks the timer */
#define GEN_MMIO_SIZE 0x1000u
/* A 64-bit write here is a DMA request to the test device: it writes the value's high 32 bits
 * into RAM at the physical address of its low 32 bits, as a virtio device writes a buffer
 * (bus_ram_range(), then bus_mark_dirty()). */
#define GEN_MMIO_DMA 16

/* Fills ram (GEN_RAM_SIZE bytes, at GEN_RAM_BASE) with the program for seed; entry at the base. */
void rv_gen_program(uint8_t *ram, uint64_t seed);

#endif
