/*
 * log_options.c — see log_options.h.
 */
#include "cmd/log_options.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"

void log_options_drop_args(int *argc, char **argv, int i, int n)
{
	memmove(&argv[i], &argv[i + n], sizeof(char *) * (size_t)(*argc - i - n + 1));
	*argc -= n;
}

int log_options_extract(int *argc, char **argv, struct log_options *lo, char *err, size_t errlen)
{
	memset(lo, 0, sizeof(*lo));
	for (int i = 1; i < *argc;) {
		const char *a = argv[i];
		const char **value = NULL;
		if (strcmp(a, "--log") == 0)
			value = &lo->log;
		else if (strcmp(a, "--vm") == 0)
			value = &lo->vm_name;
		if (value) {
			if (i + 1 >= *argc) {
				snprintf(err, errlen, "%s needs a value", a);
				return -EINVAL;
			}
			*value = argv[i + 1];
			log_options_drop_args(argc, argv, i, 2);
			continue;
		}
		if (strcmp(a, "--disk-reads") == 0) {
			const char *v = i + 1 < *argc ? argv[i + 1] : "";
			if (strcmp(v, "data") != 0 && strcmp(v, "digest") != 0) {
				snprintf(err, errlen, "--disk-reads needs 'data' or 'digest', not '%s'", v);
				return -EINVAL;
			}
			lo->disk_digests = strcmp(v, "digest") == 0;
			log_options_drop_args(argc, argv, i, 2);
			continue;
		}
		if (strcmp(a, "--perturb-lsn") == 0) {
			if (i + 1 >= *argc || parse_u64(argv[i + 1], 1, UINT64_MAX, &lo->perturb_lsn) < 0) {
				snprintf(err, errlen, "--perturb-lsn needs a record number > 0");
				return -EINVAL;
			}
			log_options_drop_args(argc, argv, i, 2);
			continue;
		}
		bool *flag = strcmp(a, "--stats") == 0 ? &lo->stats : strcmp(a, "--quiet") == 0 ? &lo->quiet
			   : strcmp(a, "--force") == 0 ? &lo->force : NULL;
		if (flag) {
			*flag = true;
			log_options_drop_args(argc, argv, i, 1);
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			lo->help = true;
		i++;
	}
	return 0;
}

void log_options_header_names(const struct log_options *lo, const struct run_options *o,
			      const struct machine_config *mc, struct evlog_header *h)
{
	char kernel[RUN_PATH_MAX];
	snprintf(kernel, sizeof(kernel), "%s", o->kernel_path);
	const char *base = basename(kernel);
	snprintf(h->vm_name, sizeof(h->vm_name), "%s", lo->vm_name ? lo->vm_name : o->bundled ? "bundled-guest" : base);
	snprintf(h->config_summary, sizeof(h->config_summary), "mem=%" PRIu64 "M disks=%u nics=%u rng=%d kernel=%.60s",
		 mc->mem_mib, mc->ndisks, mc->nnics, mc->rng ? 1 : 0, base);
}

void log_options_print_composition(FILE *out, const struct log_composition *c, icount_t icount, double seconds,
				   const char *seconds_what)
{
	static const enum evlog_kind kinds[] = { EVLOG_TIME, EVLOG_NET_RX, EVLOG_DISK_DONE, EVLOG_RNG,
						 EVLOG_CONSOLE_IN, EVLOG_DISK_DIGEST, EVLOG_CHECK, EVLOG_END };
	uint64_t records = 0, bytes = EVLOG_HEADER_SIZE;

	fprintf(out, "%-11s %10s %14s\n", "kind", "records", "bytes");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		enum evlog_kind k = kinds[i];
		fprintf(out, "%-11s %10" PRIu64 " %14" PRIu64 "\n", evlog_kind_name(k), c->records[k], c->bytes[k]);
		records += c->records[k];
		bytes += c->bytes[k];
	}
	fprintf(out, "%-11s %10" PRIu64 " %14" PRIu64 "  (with the %d-byte header)\n", "total", records, bytes,
		EVLOG_HEADER_SIZE);
	fprintf(out, "instructions %" PRIu64 ", %s %.3f s", (uint64_t)icount, seconds_what, seconds);
	if (seconds > 0)
		fprintf(out, ", log bandwidth %.4f Mbit/s", (double)bytes * 8 / 1e6 / seconds);
	fprintf(out, "\n");
}
