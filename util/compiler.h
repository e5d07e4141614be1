/*
 * compiler.h — attributes and tiny helpers shared by every layer.
 *
 * Functions that can fail return 0 or -errno and are marked FTVM_MUST_CHECK so a caller cannot
 * drop an error on the floor.
 */
#ifndef FTVM_UTIL_COMPILER_H
#define FTVM_UTIL_COMPILER_H

#define FTVM_MUST_CHECK __attribute__((warn_unused_result))
#define FTVM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define FTVM_NORETURN __attribute__((noreturn))
#define FTVM_UNUSED __attribute__((unused))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
