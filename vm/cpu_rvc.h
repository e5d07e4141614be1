/*
 * cpu_rvc.h — the compressed-instruction expansion table (see cpu_rvc.c). vm/cpu*.c only.
 */
#ifndef FTVM_VM_CPU_RVC_H
#define FTVM_VM_CPU_RVC_H

#include <stdint.h>

/* cpu_rvc_table[c] is the 32-bit instruction equivalent to the 16-bit c, or 0 when c is illegal. */
extern uint32_t cpu_rvc_table[1u << 16];
/* Builds the table once per process (thread-safe). */
void cpu_rvc_init(void);

#endif
