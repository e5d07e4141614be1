/*
 * test_elf.c — unit tests of elf_load(): a good file loads its segments and zero-fills .bss; every
 * kind of bad file (missing, not ELF, 32-bit, wrong machine, truncated, outside RAM) is an error
 * with a precise message and leaves the process running.
 */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "vm/elf.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE 0x10000ull
#define SEG_DATA "\x13\x05\x10\x00\x73\x00\x10\x00" /* li a0, 1; ebreak */
#define SEG_FILESZ 8
#define SEG_MEMSZ 32

struct image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t data[SEG_FILESZ];
};

static void make_image(struct image *im, uint64_t paddr)
{
	memset(im, 0, sizeof(*im));
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS64;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_ident[EI_VERSION] = EV_CURRENT;
	im->eh.e_type = ET_EXEC;
	im->eh.e_machine = EM_RISCV;
	im->eh.e_entry = paddr;
	im->eh.e_phoff = offsetof(struct image, ph);
	im->eh.e_ehsize = sizeof(Elf64_Ehdr);
	im->eh.e_phentsize = sizeof(Elf64_Phdr);
	im->eh.e_phnum = 1;
	im->ph.p_type = PT_LOAD;
	im->ph.p_offset = offsetof(struct image, data);
	im->ph.p_paddr = im->ph.p_vaddr = paddr;
	im->ph.p_filesz = SEG_FILESZ;
	im->ph.p_memsz = SEG_MEMSZ;
	memcpy(im->data, SEG_DATA, SEG_FILESZ);
}

static char path[64];

static void write_file(const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

struct fixture {
	struct vm_bus bus;
	uint8_t ram[RAM_SIZE];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	fx->bus.ram = fx->ram;
	fx->bus.ram_base = RAM_BASE;
	fx->bus.ram_size = RAM_SIZE;
	memset(fx->ram, 0xaa, RAM_SIZE);
	snprintf(path, sizeof(path), "/tmp/ftvm-test-elf-%d", (int)getpid());
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	free(*state);
	return 0;
}

static int load(struct fixture *fx, uint64_t *entry, char *err, size_t errlen)
{
	return elf_load(&fx->bus, path, entry, err, errlen);
}

static void test_good_file(void **state)
{
	struct fixture *fx = *state;
	struct image im;
	make_image(&im, RAM_BASE + 0x100);
	write_file(&im, sizeof(im));
	uint64_t entry = 0;
	char err[256] = "";
	assert_int_equal(load(fx, &entry, err, sizeof(err)), 0);
	assert_int_equal(entry, RAM_BASE + 0x100);
	assert_memory_equal(fx->ram + 0x100, SEG_DATA, SEG_FILESZ);
	for (unsigned i = SEG_FILESZ; i < SEG_MEMSZ; i++)
		assert_int_equal(fx->ram[0x100 + i], 0); /* .bss zero-filled */
	assert_int_equal(fx->ram[0x100 + SEG_MEMSZ], 0xaa); /* nothing beyond memsz touched */
}

static void expect_error(struct fixture *fx, const char *needle)
{
	uint64_t entry = 0;
	char err[256] = "";
	assert_true(load(fx, &entry, err, sizeof(err)) < 0);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
	assert_null(strchr(err, '\n'));
}

static void test_missing_file(void **state)
{
	expect_error(*state, "cannot open");
}

static void test_not_elf(void **state)
{
	write_file("#!/bin/sh\necho hello\n", 21);
	expect_error(*state, "not an ELF");
}

static void test_wrong_class(void **state)
{
	struct image im;
	make_image(&im, RAM_BASE);
	im.eh.e_ident[EI_CLASS] = ELFCLASS32;
	write_file(&im, sizeof(im));
	expect_error(*state, "not a 64-bit ELF");
}

static void test_wrong_machine(void **state)
{
	struct image im;
	make_image(&im, RAM_BASE);
	im.eh.e_machine = EM_X86_64;
	write_file(&im, sizeof(im));
	expect_error(*state, "not a RISC-V ELF");
}

static void test_truncated_header(void **state)
{
	struct image im;
	make_image(&im, RAM_BASE);
	write_file(&im, 40);
	expect_error(*state, "truncated ELF header");
}

static void test_truncated_segment(void **state)
{
	struct image im;
	make_image(&im, RAM_BASE);
	write_file(&im, sizeof(im) - 4);
	expect_error(*state, "truncated");
}

static void test_truncated_phdrs(void **state)
{
	struct image im;
	make_image(&im, RAM_BASE);
	im.eh.e_phnum = 1000;
	write_file(&im, sizeof(im));
	expect_error(*state, "program header");
}

static void test_outside_ram(void **state)
{
	struct fixture *fx = *state;
	struct image im;
	make_image(&im, RAM_BASE + RAM_SIZE - 8); /* memsz runs past the end of RAM */
	write_file(&im, sizeof(im));
	expect_error(fx, "outside guest RAM");
	make_image(&im, 0x1000); /* no region there at all */
	write_file(&im, sizeof(im));
	expect_error(fx, "outside guest RAM");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_elf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_class, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_machine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_phdrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outside_ram, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
