/*
 * fuzz_board.h — the board the decoders' libFuzzer targets restore into (tests/state,
 * tests/migrate): 16 MiB of RAM, a 1 MiB disk, a NIC, an entropy device and a tiny raw firmware
 * image (one wfi) written to a temporary file, so creating a machine needs no guest build.
 */
#ifndef FTVM_TESTS_FUZZ_BOARD_H
#define FTVM_TESTS_FUZZ_BOARD_H

#include <stddef.h>
#include <stdint.h>
#include "vm/machine.h"

/* Writes the firmware image (named after @who) and fills *config; exits on failure. */
void fuzz_board_init(const char *who, struct machine_config *config);
/* Removes the firmware image (a target that only writes its seed). */
void fuzz_board_cleanup(void);
/* A machine of that board; aborts on failure. */
struct machine *fuzz_board_create(const char *who, const struct machine_config *config);

/* Rewrites the CRC32C of every whole state-format section in p[skip..len) (a fix-up that lets
 * mutations reach the payloads); stops at the first section that does not fit. */
void fuzz_fix_sections(uint8_t *p, size_t len, size_t skip);

#endif
