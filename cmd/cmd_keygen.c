/*
 * cmd_keygen.c — `ftvm keygen FILE`: make a new pairing key for the logging channel.
 *
 * The key (32 bytes from getrandom()) goes to FILE, created 0600, never over an existing file nor
 * through a symlink (logchannel/key.c). Both nodes of a pair are given the same file with
 * --channel-key: copy it to the other host over a trusted path (scp, a configuration manager).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "logchannel/channel.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ftvm keygen FILE\n\n"
		"Writes a new random key for the logging channel to FILE (mode 0600; an existing FILE\n"
		"is never overwritten). Give the same key to the primary and the backup with\n"
		"--channel-key FILE; copy it to the other host over a trusted path.\n");
}

int cmd_keygen_main(int argc, char **argv)
{
	struct channel_err err = { 0 };

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return FTVM_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return FTVM_EXIT_USAGE;
	}
	if (channel_key_generate(argv[1], &err) < 0) {
		fprintf(stderr, "ftvm keygen: %s\n", err.msg);
		return FTVM_EXIT_FAILURE;
	}
	return FTVM_EXIT_OK;
}
