/*
 * pair_probe.c — a peer of ftvmd's pairing port that holds the pairing key, for virt.pair_hostile:
 * it speaks the pairing channel (TLS keyed by the key, HELLO "ftvmd-pairing", docs/daemon.md) but
 * sends what a daemon never would.
 *
 *   pair_probe KEY HOST:PORT send FILE     the file's bytes as the one request record; prints
 *                                          "acked" (exit 0) or "refused: MESSAGE" (exit 1)
 *   pair_probe KEY HOST:PORT silent SECS   connects, prints "connected", sends nothing for SECS
 *
 * Exit 2 when it cannot connect (the reason on stderr), 64 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logchannel/channel.h"

#define PROBE_WAIT_MS 20000   /* for the daemon's verdict: longer than its own REQUEST_WAIT_MS */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	struct channel_key key;
	struct channel_err cerr = { 0 };
	struct channel_config cfg;
	struct channel *ch;

	if (argc != 5 || (strcmp(argv[3], "send") && strcmp(argv[3], "silent"))) {
		fprintf(stderr, "usage: pair_probe KEY HOST:PORT send FILE | silent SECONDS\n");
		return 64;
	}
	if (channel_key_load(argv[1], &key, &cerr)) {
		fprintf(stderr, "pair_probe: %s: %s\n", argv[1], cerr.msg);
		return 64;
	}
	channel_config_init(&cfg);
	cfg.vm_id = "ftvmd-pairing";
	cfg.purpose = CHANNEL_PURPOSE_MIGRATION;
	cfg.key = &key;
	cfg.buffer_bytes = 4u << 20;
	cfg.heartbeat_ms = 500;
	cfg.timeout_ms = PROBE_WAIT_MS;
	if (channel_connect(&cfg, argv[2], &ch, &cerr)) {
		fprintf(stderr, "pair_probe: cannot connect to %s: %s\n", argv[2], cerr.msg);
		return 2;
	}
	if (!strcmp(argv[3], "silent")) {
		printf("connected\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[4]));
		channel_close(ch);
		return 0;
	}
	size_t len = 0;
	char *buf = read_file(argv[4], &len);
	if (!buf) {
		fprintf(stderr, "pair_probe: cannot read %s: %s\n", argv[4], strerror(errno));
		channel_close(ch);
		return 64;
	}
	int ret = channel_send_wait(ch, 1, buf, len, PROBE_WAIT_MS);
	if (!ret)
		ret = channel_wait_acked(ch, 1, PROBE_WAIT_MS);
	if (ret)
		printf("refused: %s\n", channel_error(ch)[0] ? channel_error(ch) : strerror(-ret));
	else
		printf("acked\n");
	free(buf);
	channel_close(ch);
	return ret ? 1 : 0;
}
