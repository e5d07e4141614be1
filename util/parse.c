/*
 * parse.c — strict numbers and MAC addresses (see parse.h). Digits are checked by hand before
 * strtoull sees them, because strtoull itself skips spaces and accepts a sign (and wraps "-1").
 */
#include "util/parse.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>

int parse_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool all_digits(const char *s, bool hex)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		int d = parse_hex_digit(*s);
		if (d < 0 || (!hex && d > 9))
			return false;
	}
	return true;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *digits = hex ? s + 2 : s;
	if (!all_digits(digits, hex))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(digits, &end, hex ? 16 : 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;
	int ret = parse_u64(s, min, max, &v);
	if (ret < 0)
		return ret;
	*out = (unsigned)v;
	return 0;
}

int parse_mac(const char *s, uint8_t mac[PARSE_MAC_LEN])
{
	uint8_t m[PARSE_MAC_LEN];
	if (!s)
		return -EINVAL;
	for (int i = 0; i < PARSE_MAC_LEN; i++, s += 3) {
		int hi = parse_hex_digit(s[0]), lo = hi < 0 ? -1 : parse_hex_digit(s[1]);
		char sep = lo < 0 ? '?' : s[2];
		if (lo < 0 || sep != (i == PARSE_MAC_LEN - 1 ? '\0' : ':'))
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	if (m[0] & 1)
		return -EINVAL;
	for (int i = 0; i < PARSE_MAC_LEN; i++)
		mac[i] = m[i];
	return 0;
}
