/*
 * fuzz_state.c — libFuzzer target for the state decoder (vm/state_format.c): any bytes offered as a
 * saved state to a freshly created machine (16 MiB, a disk, a NIC, an entropy device, a tiny raw
 * firmware image). The decoder must refuse or accept without a crash, a sanitizer report, a read
 * outside its buffers or a leak, whatever the input.
 *
 * Every section carries a CRC, so random mutations rarely get past the framing. The first input
 * byte picks the mode: odd, the harness rewrites the header's and every section's CRC to match
 * before decoding, so the fuzzer reaches the payload walks, the configuration check, the parts'
 * restore checks and the RAM runs; even, the bytes go in as they are (framing and CRC checks).
 *
 * One machine serves every input (creating one costs more than most decodes): the decoder must be
 * memory-safe on a machine in any state, restored or half restored; leaks show at exit.
 *
 * FUZZ_STATE_SEED=FILE: writes a valid state of the same machine to FILE (the seed corpus) and
 * exits.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_board.h"
#include "util/byteorder.h"
#include "util/crc32c.h"
#include "vm/machine.h"
#include "vm/state_format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct machine_config config;
static struct machine *machine;

struct input {
	const uint8_t *p;
	size_t len, pos;
};

static ssize_t input_read(void *ctx, void *buf, size_t len)
{
	struct input *in = ctx;
	size_t n = in->len - in->pos < len ? in->len - in->pos : len;
	memcpy(buf, in->p + in->pos, n);
	in->pos += n;
	return (ssize_t)n;
}

static int file_write(void *ctx, const void *buf, size_t len)
{
	return fwrite(buf, 1, len, ctx) == len ? 0 : -5;
}

static struct machine *create(void)
{
	return fuzz_board_create("fuzz_state", &config);
}

static void write_seed(const char *path)
{
	char err[256];
	FILE *f = fopen(path, "wb");
	struct machine *m = create();
	if (!f || state_encode(m, (struct state_sink){ .write = file_write, .ctx = f }, NULL, NULL, err, sizeof(err))) {
		fprintf(stderr, "fuzz_state: cannot write the seed %s\n", path);
		exit(1);
	}
	fclose(f);
	machine_destroy(m);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_board_init("fuzz_state", &config);
	const char *seed = getenv("FUZZ_STATE_SEED");
	if (seed) {
		write_seed(seed);
		fuzz_board_cleanup();
	}
	return 0;
}

/* Rewrites the header's and every whole section's CRC so that they match. */
static void fix_crcs(uint8_t *p, size_t len)
{
	if (len < STATE_HEADER_SIZE)
		return;
	put_le32(p + 12, crc32c(0, p, 12));
	fuzz_fix_sections(p, len, STATE_HEADER_SIZE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	if (size < 1)
		return 0;
	uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (data[0] & 1)
		fix_crcs(copy, size - 1);
	struct input in = { .p = copy, .len = size - 1 };
	struct state_extra *extra = malloc(sizeof(*extra));
	if (!machine)
		machine = create();
	if (extra)
		(void)state_decode(machine, (struct state_source){ .read = input_read, .ctx = &in }, extra, NULL, err,
				   sizeof(err));
	free(extra);
	free(copy);
	return 0;
}
