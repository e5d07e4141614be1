/*
 * guestlib.h — small helpers shared by the bundled guest's programs (init, kvd, workloads).
 *
 * The guest programs form one multi-call binary (main.c), cross-compiled statically against glibc
 * for riscv64; they use nothing from the host libraries in util/. The same sources build natively
 * so tests/guest can exercise kvd on the host against a plain file.
 */
#ifndef FTVM_GUEST_GUESTLIB_H
#define FTVM_GUEST_GUESTLIB_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GUEST_MUST_CHECK __attribute__((warn_unused_result))
#define GUEST_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define GUEST_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define NSEC_PER_SEC 1000000000ull
#define NSEC_PER_MSEC 1000000ull

/* Prints "<program>: <message>\n" to stderr in one write, so lines from several programs on the
 * console do not interleave mid-line. */
void guest_log(const char *fmt, ...) GUEST_PRINTF(1, 2);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t guest_now_ns(void);

/* Sleeps for ms milliseconds, restarting after signals. */
void guest_sleep_ms(unsigned ms);

/* CRC-32C (Castagnoli, reflected 0x82F63B78); pass 0 to start. crc("123456789") == 0xE3069283. */
uint32_t guest_crc32c(uint32_t crc, const void *data, size_t len);

/* Fills buf from the kernel's entropy pool (getrandom). */
int guest_random(void *buf, size_t len) GUEST_MUST_CHECK;

/* xorshift64* pseudo-random numbers for workloads that must be repeatable; state must be nonzero. */
uint64_t guest_prng_next(uint64_t *state);

/* Parses "A.B.C.D:PORT". */
int guest_parse_ipv4_port(const char *text, struct sockaddr_in *out) GUEST_MUST_CHECK;

/* Reads an unsigned decimal from environment variable name; def when unset. -EINVAL if malformed. */
int guest_env_u64(const char *name, uint64_t def, uint64_t *out) GUEST_MUST_CHECK;

/* Size of a block device or regular file in bytes. */
int guest_device_size(int fd, uint64_t *bytes) GUEST_MUST_CHECK;

/* pread/pwrite/write that loop over short transfers; 0 or -errno (-EIO on a premature end). */
int guest_pread_all(int fd, void *buf, size_t len, off_t off) GUEST_MUST_CHECK;
int guest_pwrite_all(int fd, const void *buf, size_t len, off_t off) GUEST_MUST_CHECK;
int guest_write_all(int fd, const void *buf, size_t len) GUEST_MUST_CHECK;

#endif
