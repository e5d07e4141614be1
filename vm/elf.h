/*
 * elf.h — loads a bare-metal RV64 ELF (the program of `ftvm run --bios none --kernel prog.elf`).
 *
 * Only what QEMU's -kernel loader does for an ELF: every PT_LOAD segment is copied to its
 * physical address (p_paddr) in guest RAM (or a writable bus region) and the rest of its
 * memory size is zero-filled; the entry point is returned. Anything wrong with the file is a
 * one-line message in `err`, never a crash.
 */
#ifndef FTVM_VM_ELF_H
#define FTVM_VM_ELF_H

#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/bus.h"

/* Returns 0 and the entry address, or -errno with a one-line reason in err (errlen bytes). */
int elf_load(struct vm_bus *bus, const char *path, uint64_t *entry, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
