/*
 * digest_host.c — the host twin of the bare-metal FPU digest: runs digest_core.c with each
 * instruction word executed by vm/cpu_fpu.c on a bare struct cpu, and prints the same lines the
 * program prints on QEMU up to its "ops ... digest ..." line. run_digest_vs_qemu.sh compares the
 * two, which checks the FPU against QEMU without needing the integer core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm/cpu_internal.h"
#include "digest/digest.h"

#define CSR_FFLAGS 0x001u
#define CSR_FRM 0x002u

static struct cpu hart;

/* Stand-ins for the integer core: the digest uses no memory and must not trap. */
void cpu_raise_exception(struct cpu *cpu, enum cpu_exception cause, uint64_t tval)
{
	fprintf(stderr, "digest_host: unexpected exception %d (tval %#llx)\n", (int)cause, (unsigned long long)tval);
	exit(1);
}

bool cpu_load(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value)
{
	cpu_raise_exception(cpu, EXC_LOAD_ACCESS, vaddr);
	return false;
}

bool cpu_store(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value)
{
	cpu_raise_exception(cpu, EXC_STORE_ACCESS, vaddr);
	return false;
}

void digest_putc(char c)
{
	putchar(c);
}

void digest_set_frm(unsigned frm)
{
	if (!fpu_csr_write(&hart, CSR_FRM, frm))
		cpu_raise_exception(&hart, EXC_ILLEGAL_INSN, 0);
}

uint64_t digest_exec(uint32_t insn, int int_result, uint64_t a, uint64_t b, uint64_t c, uint64_t *flags)
{
	uint64_t f;

	if (!fpu_csr_write(&hart, CSR_FFLAGS, 0))
		cpu_raise_exception(&hart, EXC_ILLEGAL_INSN, 0);
	hart.f[DIGEST_FRS1] = a;
	hart.f[DIGEST_FRS2] = b;
	hart.f[DIGEST_FRS3] = c;
	hart.x[DIGEST_XREG] = a;
	fpu_execute(&hart, insn);
	if (!fpu_csr_read(&hart, CSR_FFLAGS, &f))
		cpu_raise_exception(&hart, EXC_ILLEGAL_INSN, 0);
	*flags = f;
	return int_result ? hart.x[DIGEST_XREG] : hart.f[DIGEST_FRD];
}

int main(void)
{
	hart.mstatus = MSTATUS_FS_DIRTY;
	puts("fpu-digest start");
	digest_run();
	return 0;
}
