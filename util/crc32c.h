/*
 * crc32c.h — CRC-32C (Castagnoli), the checksum of every log record, channel frame and arbiter
 * sector. Uses the SSE4.2 crc32 instruction when the host has it, a table otherwise.
 */
#ifndef FTVM_UTIL_CRC32C_H
#define FTVM_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: pass 0 to start. crc32c("123456789") == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
