/*
 * parse.h — numbers and MAC addresses from untrusted text (command lines, domain XML), strictly.
 *
 * A number is the whole string: decimal digits, or 0x and hex digits. Nothing else is accepted —
 * no sign, no spaces, no suffix, no empty string, nothing that overflows 64 bits — so "-1", " 5",
 * "5ms" and "99999999999999999999" are errors, not wrapped or truncated values. Leading zeros are
 * decimal (no octal surprise). Callers name the option in their own error message.
 */
#ifndef FTVM_UTIL_PARSE_H
#define FTVM_UTIL_PARSE_H

#include <stdint.h>
#include "util/compiler.h"

#define PARSE_MAC_LEN 6

/* 0 with the value in *out; -EINVAL if not a number as above, -ERANGE outside [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) FTVM_MUST_CHECK;

/* parse_u64 into an unsigned (milliseconds, counts): the same rules, max at most UINT_MAX. */
int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) FTVM_MUST_CHECK;

/* The value of one hex digit (either case), or -1. */
int parse_hex_digit(char c);

/*
 * A NIC's address, "xx:xx:xx:xx:xx:xx" (two hex digits per byte, either case): 0, or -EINVAL
 * for anything else and for a multicast address (bit 0 of the first byte), which no NIC owns.
 */
int parse_mac(const char *s, uint8_t mac[PARSE_MAC_LEN]) FTVM_MUST_CHECK;

#endif
