/*
 * snapshot_options.c — see snapshot_options.h.
 */
#include "cmd/snapshot_options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/log_options.h"
#include "host/state_file.h"
#include "util/parse.h"
#include "util/time.h"

int snapshot_options_extract(int *argc, char **argv, struct snapshot_options *so, char *err, size_t errlen)
{
	memset(so, 0, sizeof(*so));
	for (int i = 1; i < *argc;) {
		const char *a = argv[i];
		const char **value = !strcmp(a, "--snapshot") ? &so->snapshot : !strcmp(a, "--restore") ? &so->restore
				   : NULL;
		bool at = !strcmp(a, "--snapshot-at");
		if (!value && !at) {
			i++;
			continue;
		}
		if (i + 1 >= *argc) {
			snprintf(err, errlen, "%s needs a value", a);
			return -EINVAL;
		}
		if (at) {
			uint64_t v;
			if (parse_u64(argv[i + 1], 0, ICOUNT_MAX - 1, &v) < 0) {
				snprintf(err, errlen, "--snapshot-at needs an instruction count");
				return -EINVAL;
			}
			so->snapshot_at = v;
			so->have_at = true;
		} else {
			*value = argv[i + 1];
		}
		log_options_drop_args(argc, argv, i, 2);
	}
	return 0;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

int snapshot_save(const char *cmd, const char *path, bool replace, const struct machine *m,
		  const struct state_extra *extra, char *err, size_t errlen)
{
	struct state_stats st;
	uint64_t t0 = time_mono_ns();
	int ret = state_file_save(path, replace, m, extra, &st, err, errlen);
	if (ret)
		return ret;
	fprintf(stderr, "ftvm %s: snapshot %s at icount %llu: %.1f MiB for %.0f MiB of RAM (%llu pages written, %llu zero, %llu untouched) in %.3f s\n",
		cmd, path, (unsigned long long)machine_icount(m), mib(st.bytes), mib(st.ram_pages * 4096),
		(unsigned long long)st.ram_pages_written, (unsigned long long)st.ram_pages_zero,
		(unsigned long long)st.ram_pages_untouched, (double)(time_mono_ns() - t0) / 1e9);
	return 0;
}

int snapshot_restore(const char *cmd, const char *path, struct machine *m, struct state_extra *extra, char *err,
		     size_t errlen)
{
	struct state_stats st;
	uint64_t t0 = time_mono_ns();
	int ret = state_file_load(path, m, extra, &st, err, errlen);
	if (ret)
		return ret;
	fprintf(stderr, "ftvm %s: restored %s at icount %llu: %.1f MiB, %llu pages, in %.3f s\n", cmd, path,
		(unsigned long long)machine_icount(m), mib(st.bytes), (unsigned long long)st.ram_pages_written,
		(double)(time_mono_ns() - t0) / 1e9);
	return 0;
}
