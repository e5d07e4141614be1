/*
 * main.c — the guest's multi-call binary: runs the applet named by argv[0]'s last component
 * (/init, /usr/bin/kvd, ...) or, when that is not an applet, by argv[1] ("ftvm-guest kvd -p 7000",
 * as tests/guest runs the natively built binary). One static binary instead of five saves about
 * 1.6 MB of initramfs.
 */
#include "applets.h"
#include "guestlib.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
} applets[] = {
	{ "init", init_main },
	{ "kvd", kvd_main },
	{ "ftvm-selftest", selftest_main },
	{ "ftvm-cpu", cpu_main },
	{ "ftvm-disk", disk_main },
};

static int (*find_applet(const char *path))(int, char **)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;

	for (size_t i = 0; i < GUEST_ARRAY_SIZE(applets); i++)
		if (strcmp(applets[i].name, name) == 0)
			return applets[i].main;
	return NULL;
}

int main(int argc, char **argv)
{
	int (*applet)(int, char **) = argc > 0 ? find_applet(argv[0]) : NULL;

	if (!applet && argc > 1) {
		applet = find_applet(argv[1]);
		argc--;
		argv++;
	}
	if (!applet) {
		fprintf(stderr, "usage: ftvm-guest APPLET [ARGS]; applets:");
		for (size_t i = 0; i < GUEST_ARRAY_SIZE(applets); i++)
			fprintf(stderr, " %s", applets[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	return applet(argc, argv);
}
