/*
 * ram_digest.h — XXH3 digest of guest RAM that does not touch pages the guest never touched.
 *
 * Pages the host never backed (ram_pages.h) are all zeros: the digest feeds zeros for them instead
 * of reading them, which would fault in and zero-fill every page — the same bytes, so the value is
 * exactly the XXH3 of the whole of RAM whatever the host's page state is.
 */
#ifndef FTVM_UTIL_RAM_DIGEST_H
#define FTVM_UTIL_RAM_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 (seeded) of ram[0..size), size a multiple of the host page size. */
uint64_t ram_digest(const uint8_t *ram, size_t size, uint64_t seed);

#endif
