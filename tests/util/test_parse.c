/*
 * test_parse.c — util/parse.h: the numbers and MACs that options and domain XML accept, and every
 * kind of input they must refuse (empty, sign, spaces, junk after, overflow, out of range).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "util/parse.h"

static void test_numbers(void **state)
{
	(void)state;
	uint64_t v = 7;
	assert_int_equal(parse_u64("0", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("42", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_u64("010", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 10); /* decimal, not octal */
	assert_int_equal(parse_u64("0x1F", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 31);
	assert_int_equal(parse_u64("0Xff", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 255);
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("0xffffffffffffffff", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_bad_numbers(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "\t1", "1x", "5ms", "0x", "0x-1", "0x 1", "1.5", "1e3",
		"abc", "0b101", "12\n", "ff", "--1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 99;
		int ret = parse_u64(bad[i], 0, UINT64_MAX, &v);
		if (ret != -EINVAL)
			fail_msg("'%s' gave %d, want -EINVAL", bad[i], ret);
		assert_int_equal(v, 99); /* untouched */
	}
	uint64_t v = 99;
	assert_int_equal(parse_u64(NULL, 0, 1, &v), -EINVAL);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64("0x10000000000000000", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(v, 99);
}

static void test_ranges(void **state)
{
	(void)state;
	uint64_t v = 0;
	assert_int_equal(parse_u64("5", 5, 10, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(parse_u64("10", 5, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_u64("4", 5, 10, &v), -ERANGE);
	assert_int_equal(parse_u64("11", 5, 10, &v), -ERANGE);
	assert_int_equal(v, 10);

	unsigned u = 3;
	assert_int_equal(parse_uint("600000", 1, 600000, &u), 0);
	assert_int_equal(u, 600000);
	assert_int_equal(parse_uint("600001", 1, 600000, &u), -ERANGE);
	assert_int_equal(parse_uint("0", 1, 600000, &u), -ERANGE);
	assert_int_equal(parse_uint("4294967296", 0, UINT_MAX, &u), -ERANGE);
	assert_int_equal(parse_uint("-1", 0, UINT_MAX, &u), -EINVAL);
	assert_int_equal(u, 600000);
}

static void test_macs(void **state)
{
	(void)state;
	uint8_t mac[PARSE_MAC_LEN];
	static const uint8_t want[PARSE_MAC_LEN] = { 0x52, 0x54, 0x00, 0xab, 0xCD, 0xef };
	assert_int_equal(parse_mac("52:54:00:ab:CD:eF", mac), 0);
	assert_memory_equal(mac, want, sizeof(want));

	static const char *const bad[] = {
		"", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:", "52:54:00:ab:cd:ef:01", "52:54:00:ab:cd:e",
		"52:54:00:ab:cd:eg", "52-54-00-ab-cd-ef", "5:54:00:ab:cd:ef", " 52:54:00:ab:cd:ef",
		"52:54:00:ab:cd:ef ", "-1:54:00:ab:cd:ef", "+2:54:00:ab:cd:ef", "525400abcdef",
		"01:00:5e:00:00:01" /* multicast */, "ff:ff:ff:ff:ff:ff" /* broadcast */,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(mac, 0x11, sizeof(mac));
		if (parse_mac(bad[i], mac) != -EINVAL)
			fail_msg("'%s' accepted as a MAC", bad[i]);
		for (int b = 0; b < PARSE_MAC_LEN; b++)
			assert_int_equal(mac[b], 0x11); /* untouched */
	}
	assert_int_equal(parse_mac(NULL, mac), -EINVAL);
}

static void test_hex_digits(void **state)
{
	(void)state;
	assert_int_equal(parse_hex_digit('0'), 0);
	assert_int_equal(parse_hex_digit('9'), 9);
	assert_int_equal(parse_hex_digit('a'), 10);
	assert_int_equal(parse_hex_digit('F'), 15);
	assert_int_equal(parse_hex_digit('g'), -1);
	assert_int_equal(parse_hex_digit('/'), -1);
	assert_int_equal(parse_hex_digit(':'), -1);
	assert_int_equal(parse_hex_digit('\0'), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers), cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_ranges), cmocka_unit_test(test_macs),
		cmocka_unit_test(test_hex_digits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
