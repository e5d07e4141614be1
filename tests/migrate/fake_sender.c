/*
 * fake_sender.c — a hostile migration source for tests/migrate: it holds the channel key (so it
 * gets past TLS and HELLO, as only a trusted peer could) and then sends a stream that is wrong in
 * one chosen way. The destination (`ftvm incoming`) must refuse it with a message naming the
 * message and the fault, tell this sender why (REFUSE), run nothing, and exit 1.
 *
 * usage: fake_sender HOST:PORT KEYFILE VM MODE
 * MODE: magic (a message with a bad magic), order (PAGES before START), length (a body length
 * that disagrees with the message), config (a START whose configuration section is damaged, its
 * CRC right), truncated (COMPLETE where START belongs). Faults deeper in a stream (RAM sections,
 * the final state) need a START with the destination's configuration: the decoder's fuzz target
 * (fuzz_migration.c) reaches them.
 * Prints the channel's failure ("refused: ...") and exits 0 when the destination refused the
 * stream, 1 otherwise.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logchannel/channel.h"
#include "migrate/mig_stream.h"
#include "util/byteorder.h"
#include "util/crc32c.h"
#include "vm/state_format.h"

static struct channel *ch;
static uint64_t lsn = 1;
static uint8_t msg[MIG_MAX_MESSAGE];

static void send_msg(unsigned kind, uint32_t round, size_t body)
{
	mig_hdr_encode(msg, kind, round, (uint32_t)body);
	if (channel_send_wait(ch, lsn++, msg, MIG_HDR_SIZE + body, 5000))
		fprintf(stderr, "fake_sender: send failed: %s\n", channel_error(ch));
}

/* A START for a machine of 256 MiB whose CONFIG section is garbage with a right CRC: the
 * destination's configuration check must refuse it. */
static size_t start_body(bool damage)
{
	uint8_t *b = msg + MIG_HDR_SIZE;
	memset(b, 0, MIG_START_FIXED);
	put_le64(b + 8, 256ull << 20);
	uint8_t *sec = b + MIG_START_FIXED;
	uint32_t len = damage ? 7 : 100;
	put_le32(sec, 1 /* CONFIG */);
	put_le32(sec + 4, len);
	memset(sec + 8, 0x5a, len);
	put_le32(sec + 8 + len, crc32c(0, sec, 8 + len));
	return MIG_START_FIXED + 12 + len;
}

/* One RAM section of one page. */
static size_t pages_body(void)
{
	static uint8_t ram[4096];
	memset(ram, 0xab, sizeof(ram));
	return state_ram_section_build(msg + MIG_HDR_SIZE, ram, 0, 1);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: fake_sender HOST:PORT KEYFILE VM MODE\n");
		return 2;
	}
	const char *mode = argv[4];
	struct channel_key key;
	struct channel_err err = { 0 };
	if (channel_key_load(argv[2], &key, &err)) {
		fprintf(stderr, "fake_sender: %s\n", err.msg);
		return 2;
	}
	struct channel_config cc;
	channel_config_init(&cc);
	cc.vm_id = argv[3];
	cc.key = &key;
	cc.purpose = CHANNEL_PURPOSE_MIGRATION;
	if (channel_connect(&cc, argv[1], &ch, &err)) {
		fprintf(stderr, "fake_sender: %s\n", err.msg);
		return 1;
	}
	if (!strcmp(mode, "magic")) {
		size_t n = start_body(false);
		mig_hdr_encode(msg, MIG_START, 0, (uint32_t)n);
		put_le32(msg, 0xdeadbeef);
		if (channel_send_wait(ch, lsn++, msg, MIG_HDR_SIZE + n, 5000))
			fprintf(stderr, "fake_sender: send failed\n");
	} else if (!strcmp(mode, "order")) {
		send_msg(MIG_PAGES, 0, pages_body());
	} else if (!strcmp(mode, "length")) {
		size_t n = start_body(false);
		mig_hdr_encode(msg, MIG_START, 0, (uint32_t)n + 100);
		if (channel_send_wait(ch, lsn++, msg, MIG_HDR_SIZE + n, 5000))
			fprintf(stderr, "fake_sender: send failed\n");
	} else if (!strcmp(mode, "config")) {
		send_msg(MIG_START, 0, start_body(true));
	} else if (!strcmp(mode, "truncated")) {
		send_msg(MIG_COMPLETE, 0, 16);
	} else {
		fprintf(stderr, "fake_sender: unknown mode %s\n", mode);
		return 2;
	}
	/* The refusal arrives as the channel's failure. */
	for (int i = 0; i < 100 && channel_state(ch) == CHANNEL_UP; i++)
		usleep(50 * 1000);
	enum channel_state st = channel_state(ch);
	printf("%s: %s\n", channel_state_name(st), channel_error(ch));
	channel_close(ch);
	return st == CHANNEL_REFUSED ? 0 : 1;
}
