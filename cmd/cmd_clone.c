/*
 * cmd_clone.c — `ftvm clone`: new disk images from an existing one, and new domains from an
 * existing domain XML (docs/disks.md, "Clones").
 *
 *   ftvm clone --linked SRC NEW    NEW is a qcow2 overlay whose backing file is SRC (qemu-img
 *                                  create -f qcow2 -b SRC -F FORMAT): only NEW is ever written
 *   ftvm clone --full SRC NEW      NEW is a standalone copy of SRC, backing chain flattened, in
 *                                  SRC's format (qemu-img convert)
 *   ftvm clone --domain SRC.xml NEW.xml [--name NAME] [--disk SPEC]...
 *                                  NEW.xml is SRC.xml with a new <name> (NAME, else NEW.xml's base
 *                                  name), no <uuid> (libvirt makes one), a new locally administered
 *                                  MAC on every <interface>, and with --disk (one per <disk>, in
 *                                  order) each disk pointed at SPEC: a file, or an NBD URI written
 *                                  as <disk type='network'> (cmd/domain_clone.c)
 *
 * A qcow2 image is run through NBD (docs/disks.md), so cloning a VM on a qcow2 base is: clone the
 * image, serve the clone with qemu-storage-daemon, clone the domain with --disk the clone's URI.
 * Nothing is ever overwritten: NEW must not exist. qemu-img comes from Debian's qemu-utils.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/domain_clone.h"
#include "cmd/exit_code.h"
#include "cmd/ftvm.h"
#include "util/disk_image.h"

extern char **environ;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ftvm clone --linked SRC NEW\n"
		"       ftvm clone --full SRC NEW\n"
		"       ftvm clone --domain SRC.xml NEW.xml [--name NAME] [--disk PATH|URI]...\n\n"
		"Images: --linked makes NEW a qcow2 overlay on SRC (SRC, raw or qcow2, is its backing\n"
		"file and must not change while clones of it exist); --full makes NEW a standalone copy\n"
		"in SRC's format. A qcow2 image runs through NBD: serve it with qemu-storage-daemon and\n"
		"give its URI as --disk (docs/disks.md).\n"
		"Domains: NEW.xml is SRC.xml with the name NAME (default: NEW.xml's base name), no uuid,\n"
		"a new locally administered MAC on every interface and, with --disk (one per disk, in\n"
		"order), each disk replaced by PATH or the NBD URI.\n"
		"NEW is never overwritten. Needs qemu-img (qemu-utils) for images.\n");
}

/* Runs argv (qemu-img ...), its output passed through: 0, or -EIO when it fails. */
static int run_tool(char *const argv[])
{
	pid_t pid;
	int status, ret = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (ret != 0) {
		fprintf(stderr, "ftvm clone: cannot run %s: %s (Debian package qemu-utils)\n", argv[0], strerror(ret));
		return -ret;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "ftvm clone: %s %s failed (status %d)\n", argv[0], argv[1], status);
		return -EIO;
	}
	return 0;
}

static int clone_image(bool linked, const char *src, const char *dst)
{
	char err[512], abs_src[PATH_MAX];
	const char *format;
	struct stat st;

	if (lstat(dst, &st) == 0 || errno != ENOENT) {
		fprintf(stderr, "ftvm clone: %s exists already: a clone never overwrites\n", dst);
		return FTVM_EXIT_FAILURE;
	}
	if (disk_image_file_format(src, &format, err, sizeof(err)) < 0) {
		fprintf(stderr, "ftvm clone: %s\n", err);
		return FTVM_EXIT_FAILURE;
	}
	if (!realpath(src, abs_src)) {
		fprintf(stderr, "ftvm clone: %s: %s\n", src, strerror(errno));
		return FTVM_EXIT_FAILURE;
	}
	if (strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0) {
		fprintf(stderr, "ftvm clone: %s is a %s image: only raw and qcow2 images are cloned\n", src, format);
		return FTVM_EXIT_FAILURE;
	}
	char *linked_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", abs_src, "-F", (char *)format,
				(char *)dst, NULL };
	char *full_argv[] = { "qemu-img", "convert", "-q", "-O", (char *)format, abs_src, (char *)dst, NULL };
	if (run_tool(linked ? linked_argv : full_argv) < 0)
		return FTVM_EXIT_FAILURE;
	printf("%s: %s of %s (%s)\n", dst, linked ? "linked clone (qcow2 overlay)" : "full copy", abs_src,
	       linked ? "qcow2" : format);
	return FTVM_EXIT_OK;
}

int cmd_clone_main(int argc, char **argv)
{
	enum { OPT_LINKED = 1, OPT_FULL, OPT_DOMAIN, OPT_NAME, OPT_DISK, OPT_HELP };
	static const struct option options[] = {
		{ "linked", no_argument, NULL, OPT_LINKED }, { "full", no_argument, NULL, OPT_FULL },
		{ "domain", no_argument, NULL, OPT_DOMAIN }, { "name", required_argument, NULL, OPT_NAME },
		{ "disk", required_argument, NULL, OPT_DISK }, { "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct domain_clone_request req = { 0 };
	int mode = 0, opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_LINKED:
		case OPT_FULL:
		case OPT_DOMAIN:
			if (mode && mode != opt) {
				fprintf(stderr, "ftvm clone: give one of --linked, --full and --domain\n");
				return FTVM_EXIT_USAGE;
			}
			mode = opt;
			break;
		case OPT_NAME:
			req.name = optarg;
			break;
		case OPT_DISK:
			if (req.ndisks == DOMAIN_CLONE_MAX_DISKS) {
				fprintf(stderr, "ftvm clone: at most %u --disk\n", DOMAIN_CLONE_MAX_DISKS);
				return FTVM_EXIT_USAGE;
			}
			req.disk[req.ndisks++] = optarg;
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			return FTVM_EXIT_OK;
		default:
			fprintf(stderr, "ftvm clone: unknown option %s\n", argv[optind - 1]);
			usage(stderr);
			return FTVM_EXIT_USAGE;
		}
	}
	if (!mode || argc - optind != 2) {
		usage(stderr);
		return FTVM_EXIT_USAGE;
	}
	if (mode != OPT_DOMAIN && (req.name || req.ndisks)) {
		fprintf(stderr, "ftvm clone: --name and --disk go with --domain\n");
		return FTVM_EXIT_USAGE;
	}
	if (mode != OPT_DOMAIN)
		return clone_image(mode == OPT_LINKED, argv[optind], argv[optind + 1]);

	char err[1024];
	req.src = argv[optind];
	req.dst = argv[optind + 1];
	int ret = domain_clone(&req, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "ftvm clone: %s\n", err);
		return ret == -EINVAL ? FTVM_EXIT_USAGE : FTVM_EXIT_FAILURE;
	}
	printf("%s\n", err); /* what was made */
	return FTVM_EXIT_OK;
}
