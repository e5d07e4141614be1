/*
 * crc32c.c — CRC-32C with the reflected polynomial 0x82F63B78; hardware path via SSE4.2.
 */
#include "util/crc32c.h"

#include <nmmintrin.h>
#include <pthread.h>
#include <string.h>

static uint32_t crc_table[256];
static int use_hardware;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[i] = c;
	}
	__builtin_cpu_init();
	use_hardware = __builtin_cpu_supports("sse4.2");
}

static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = _mm_crc32_u8(c32, *p++);
	return c32;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&crc_once, crc32c_init);
	crc = ~crc;
	if (use_hardware) {
		crc = crc32c_hw(crc, p, len);
	} else {
		while (len--)
			crc = (crc >> 8) ^ crc_table[(crc ^ *p++) & 0xff];
	}
	return ~crc;
}
