/*
 * fuzz_board.c — see fuzz_board.h.
 */
#include "fuzz_board.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/byteorder.h"
#include "util/crc32c.h"
#include "vm/state_format.h"

static char firmware[64];

void fuzz_board_init(const char *who, struct machine_config *config)
{
	static const uint8_t image[16] = { 0x73, 0x00, 0x50, 0x10 };  /* wfi */
	snprintf(firmware, sizeof(firmware), "/tmp/%s_fw.XXXXXX", who);
	int fd = mkstemp(firmware);
	if (fd < 0 || write(fd, image, sizeof(image)) != (ssize_t)sizeof(image)) {
		fprintf(stderr, "%s: firmware image: ", who);
		perror("");
		exit(1);
	}
	close(fd);
	*config = (struct machine_config){ .bios = firmware, .mem_mib = 16, .ndisks = 1, .disk_bytes = { 1 << 20 },
					   .nnics = 1, .rng = true };
	memcpy(config->nic_mac[0], "\x52\x54\x00\x00\x00\x01", 6);
}

void fuzz_board_cleanup(void)
{
	unlink(firmware);
}

struct machine *fuzz_board_create(const char *who, const struct machine_config *config)
{
	char err[256];
	struct machine *m;
	if (machine_create(config, &m, err, sizeof(err))) {
		fprintf(stderr, "%s: machine_create: %s\n", who, err);
		abort();
	}
	return m;
}

void fuzz_fix_sections(uint8_t *p, size_t len, size_t skip)
{
	for (size_t off = skip; off <= len && len - off >= STATE_SECTION_HEAD + STATE_SECTION_TAIL;) {
		uint64_t body = get_le32(p + off + 4);
		if (body > len - off - STATE_SECTION_HEAD - STATE_SECTION_TAIL)
			return;
		size_t crc_at = off + STATE_SECTION_HEAD + (size_t)body;
		put_le32(p + crc_at, crc32c(0, p + off, STATE_SECTION_HEAD + (size_t)body));
		off = crc_at + STATE_SECTION_TAIL;
	}
}
