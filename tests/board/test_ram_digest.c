/*
 * test_ram_digest.c — the RAM digest that skips untouched pages equals XXH3 of all the bytes,
 * whatever mix of written, read-only-touched and never-touched pages the memory holds, and it
 * changes when any byte does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>
#include <xxhash.h>

#include "util/ram_digest.h"

#define PAGES 3000u
#define PAGE 4096u

static void test_equals_plain_xxh3(void **state)
{
	size_t size = (size_t)PAGES * PAGE;
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(ram != MAP_FAILED);
	volatile uint8_t sink = 0;
	srand(7);
	for (unsigned p = 0; p < PAGES; p++) {
		int r = rand() % 4;
		if (r == 0)
			ram[(size_t)p * PAGE + (unsigned)rand() % PAGE] = (uint8_t)(rand() | 1); /* written */
		else if (r == 1)
			sink += ram[(size_t)p * PAGE]; /* read: maps the zero page */
		/* else never touched */
	}
	uint64_t fast = ram_digest(ram, size, 42);
	uint8_t *copy = malloc(size);
	assert_non_null(copy);
	memcpy(copy, ram, size);
	assert_int_equal(fast, XXH3_64bits_withSeed(copy, size, 42));
	/* one byte in a page that was never touched before */
	unsigned p = PAGES - 1;
	while (p > 0 && memcmp(ram + (size_t)p * PAGE, copy + (size_t)p * PAGE, PAGE) == 0 && copy[(size_t)p * PAGE] != 0)
		p--;
	ram[(size_t)p * PAGE + 100] ^= 1;
	assert_int_not_equal(ram_digest(ram, size, 42), fast);
	free(copy);
	munmap(ram, size);
	(void)sink;
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_equals_plain_xxh3) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
