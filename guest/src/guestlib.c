/*
 * guestlib.c — helpers shared by the guest's programs: logging, clocks, CRC-32C, randomness,
 * parsing, and I/O loops. See guestlib.h.
 */
#include "guestlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CRC32C_POLY_REFLECTED 0x82F63B78u
#define LOG_LINE_MAX 512

void guest_log(const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	int n = snprintf(line, sizeof(line), "%s: ", program_invocation_short_name);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (guest_write_all(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* nowhere left to report it */
}

uint64_t guest_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

void guest_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * (long)NSEC_PER_MSEC };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

uint32_t guest_crc32c(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	const unsigned char *p = data;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int bit = 0; bit < 8; bit++)
				c = (c >> 1) ^ (CRC32C_POLY_REFLECTED & (0u - (c & 1)));
			table[i] = c;
		}
	}
	crc = ~crc;
	while (len--)
		crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xff];
	return ~crc;
}

int guest_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint64_t guest_prng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

int guest_parse_ipv4_port(const char *text, struct sockaddr_in *out)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(text, ':');
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

int guest_env_u64(const char *name, uint64_t def, uint64_t *out)
{
	const char *text = getenv(name);
	char *end;

	*out = def;
	if (!text || !*text)
		return 0;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || text[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

int guest_device_size(int fd, uint64_t *bytes)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, bytes) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -ENOTBLK;
	*bytes = (uint64_t)st.st_size;
	return 0;
}

enum io_kind { IO_PREAD, IO_PWRITE, IO_WRITE };

/* Repeats one kind of transfer until len bytes are done; a zero-length transfer is -EIO. */
static int io_all(int fd, enum io_kind kind, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = kind == IO_PREAD ? pread(fd, p, len, off)
			  : kind == IO_PWRITE ? pwrite(fd, p, len, off)
					      : write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int guest_pread_all(int fd, void *buf, size_t len, off_t off)
{
	return io_all(fd, IO_PREAD, buf, len, off);
}

int guest_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	return io_all(fd, IO_PWRITE, (void *)buf, len, off);
}

int guest_write_all(int fd, const void *buf, size_t len)
{
	return io_all(fd, IO_WRITE, (void *)buf, len, 0);
}
