/*
 * ft_options.c — see ft_options.h.
 */
#include "cmd/ft_options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/domain_xml.h"
#include "cmd/run_world.h"
#include "host/backend.h"
#include "host/world_live.h"
#include "common/control.h"
#include "logchannel/channel.h"
#include "migrate/replica_mark.h"
#include "util/diag.h"
#include "util/disk_digest.h"
#include "util/time.h"
#include "util/parse.h"

#define FT_MAX_MS 600000  /* the longest timeout, heartbeat or lag accepted */

/* A number option's value within [min, max], or a message naming the option. */
static int parse_number(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err,
			size_t errlen)
{
	uint64_t v;
	if (parse_u64(s, 0, UINT64_MAX, &v) < 0 || v < min) {
		snprintf(err, errlen, "%s: '%s' is not a number >= %llu", opt, s, (unsigned long long)min);
		return -EINVAL;
	}
	if (v > max) {
		snprintf(err, errlen, "%s: at most %llu ms", opt, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int check(struct ft_options *fo, char *err, size_t errlen)
{
	int ret = control_options_check(&fo->co, err, errlen);
	if (ret < 0)
		return ret;
	if (fo->heartbeat_ms >= fo->timeout_ms) {
		snprintf(err, errlen, "--heartbeat (%u ms) must be shorter than --timeout (%u ms)", fo->heartbeat_ms,
			 fo->timeout_ms);
		return -EINVAL;
	}
	return 0;
}

int ft_options_extract(int *argc, char **argv, struct ft_options *fo, char *err, size_t errlen)
{
	memset(fo, 0, sizeof(*fo));
	fo->epoch = 1;
	fo->timeout_ms = CHANNEL_DEFAULT_TIMEOUT_MS;
	fo->heartbeat_ms = CHANNEL_DEFAULT_HEARTBEAT_MS;
	control_options_init(&fo->co);
	fo->max_lag_ms = FT_DEFAULT_MAX_LAG_MS;
	for (int i = 1; i < *argc;) {
		const char *a = argv[i];
		const char **str = NULL, *transport = NULL;
		int taken = control_options_take(argc, argv, i, &fo->co, err, errlen);
		if (taken < 0)
			return taken;
		if (taken)
			continue;
		uint64_t *num = NULL, tmp = 0, min = 0, max = UINT64_MAX;
		if (!strcmp(a, "--spare")) {
			if (fo->nspares == FT_MAX_SPARES) {
				snprintf(err, errlen, "--spare: at most %d spares", FT_MAX_SPARES);
				return -EINVAL;
			}
			str = &fo->spare[fo->nspares++];
		} else if (!strcmp(a, "--peer"))
			str = &fo->peer;
		else if (!strcmp(a, "--listen"))
			str = &fo->listen;
		else if (!strcmp(a, "--arbiter"))
			str = &fo->arbiter;
		else if (!strcmp(a, "--channel-key"))
			str = &fo->channel_key;
		else if (!strcmp(a, "--log-transport") || !strcmp(a, "--disk-mode"))
			str = &transport;
		else if (!strcmp(a, "--epoch"))
			num = &fo->epoch, min = 1;
		else if (!strcmp(a, "--timeout") || !strcmp(a, "--heartbeat"))
			num = &tmp, min = 10, max = FT_MAX_MS;
		else if (!strcmp(a, "--max-lag"))
			num = &fo->max_lag_ms, min = 0, max = FT_MAX_MS;
		else if (!strcmp(a, "--clone-bandwidth"))
			num = &fo->clone_bandwidth_mbit, min = 1, max = 1000000;
		else if (!strcmp(a, "--perturb-lsn"))
			num = &fo->perturb_lsn, min = 1;
		else if (!strcmp(a, "--replay-delay-us"))
			num = &fo->replay_delay_us, min = 0, max = 100000;
		if (!str && !num) {
			if (!strcmp(a, "--help") || !strcmp(a, "-h"))
				fo->help = true;
			i++;
			continue;
		}
		if (i + 1 >= *argc) {
			snprintf(err, errlen, "%s needs a value", a);
			return -EINVAL;
		}
		fo->epoch_given |= num == &fo->epoch;
		fo->timeout_given |= !strcmp(a, "--timeout");
		fo->heartbeat_given |= !strcmp(a, "--heartbeat");
		fo->max_lag_given |= num == &fo->max_lag_ms;
		fo->transport_given |= !strcmp(a, "--log-transport");
		fo->disk_mode_given |= !strcmp(a, "--disk-mode");
		if (!strcmp(a, "--disk-mode")) {
			if (strcmp(argv[i + 1], "replicated") != 0 && strcmp(argv[i + 1], "shared") != 0) {
				snprintf(err, errlen, "--disk-mode: \"%s\" is neither replicated nor shared", argv[i + 1]);
				return -EINVAL;
			}
			fo->disk_shared = !strcmp(argv[i + 1], "shared");
		} else if (str == &transport) {
			if (strcmp(argv[i + 1], "tcp") != 0 && strcmp(argv[i + 1], "rdma") != 0) {
				snprintf(err, errlen, "--log-transport: \"%s\" is neither tcp nor rdma", argv[i + 1]);
				return -EINVAL;
			}
			fo->rdma = !strcmp(argv[i + 1], "rdma");
		} else if (str) {
			*str = argv[i + 1];
		} else {
			int ret = parse_number(a, argv[i + 1], min, max, num, err, errlen);
			if (ret < 0)
				return ret;
			if (num == &tmp)
				*(!strcmp(a, "--timeout") ? &fo->timeout_ms : &fo->heartbeat_ms) = (unsigned)tmp;
		}
		memmove(&argv[i], &argv[i + 2], sizeof(char *) * (size_t)(*argc - i - 1));
		*argc -= 2;
	}
	return check(fo, err, errlen);
}

int ft_options_apply_domain(struct ft_options *fo, const struct domain_def *d, char *err, size_t errlen)
{
	const struct domain_ft *f = &d->ft;

	if (!fo->co.vm_given)
		fo->co.vm = d->name;
	if (!fo->peer && f->peer[0])
		fo->peer = f->peer;
	if (!fo->listen && f->listen[0])
		fo->listen = f->listen;
	if (!fo->arbiter && f->arbiter[0])
		fo->arbiter = f->arbiter;
	if (!fo->co.control && f->control[0])
		fo->co.control = f->control;
	if (!fo->channel_key && f->channel_key[0])
		fo->channel_key = f->channel_key;
	if (!fo->epoch_given && f->has_epoch)
		fo->epoch = f->epoch;
	if (!fo->timeout_given && f->has_timeout)
		fo->timeout_ms = f->timeout_ms;
	if (!fo->heartbeat_given && f->has_heartbeat)
		fo->heartbeat_ms = f->heartbeat_ms;
	if (!fo->max_lag_given && f->has_max_lag)
		fo->max_lag_ms = f->max_lag_ms;
	if (!fo->transport_given && f->log_transport[0])
		fo->rdma = strcmp(f->log_transport, "rdma") == 0;
	if (!fo->disk_mode_given && f->disk_mode[0])
		fo->disk_shared = strcmp(f->disk_mode, "shared") == 0;
	_Static_assert(DOMAIN_MAX_SPARES == FT_MAX_SPARES, "the XML's spares must fit the options'");
	if (fo->nspares == 0) /* --spare replaces the XML's list */
		for (unsigned i = 0; i < f->nspares; i++)
			fo->spare[fo->nspares++] = f->spare[i];
	return check(fo, err, errlen);
}

void ft_options_help(FILE *out)
{
	fprintf(out,
		"  --arbiter PATH      shared arbiter area (`ftvm arbiter init PATH --vm NAME`), required\n"
		"  --channel-key FILE  the pair's key (`ftvm keygen FILE`, copied to the other host over a\n"
		"                      trusted path; mode 0600), required: the logging channel runs in\n"
		"                      TLS 1.3 authenticated by it\n"
		"  --vm NAME           the VM's name (default " CONTROL_DEFAULT_VM "); must match the arbiter area\n"
		"  --epoch N           pairing epoch (default 1): the channel's and the arbiter claim's\n"
		"  --spare HOST:PORT   an `ftvm spare` to restore redundancy to after every loss of the peer\n"
		"                      (repeatable, up to 8: the first that answers; docs/ft-clone.md)\n"
		"  --clone-bandwidth MBIT  cap on an FT clone's use of the link (default: none)\n"
		"  --timeout MS        peer silence that counts as failure (default %u ms)\n"
		"  --heartbeat MS      heartbeat interval (default %u ms)\n"
		"  --log-transport T   tcp (default) or rdma (RDMA verbs; needs a device on both hosts,\n"
		"                      and the same choice on both nodes)\n"
		"  --disk-mode M       replicated (default): each node has its own copy of every disk, the\n"
		"                      --disk files of its run options, equal when the pair starts (e.g. two\n"
		"                      copies of one image); the backup runs the guest's disk requests on its\n"
		"                      copy and the log carries a digest per read instead of the data.\n"
		"                      shared: both nodes name the same shared disk; the backup leaves it\n"
		"                      alone until it goes live and the log carries the data of every read.\n"
		"                      Both nodes must give the same mode.\n"
		"  --control PATH      JSON control socket (default " CONTROL_DEFAULT_DIR "/NAME-ROLE.sock),\n"
		"                      mode 0600: only root and this user may connect (docs/control.md)\n"
		"  --control-group G   also admit members of group G (socket mode 0660, group G)\n"
		"  --perturb-lsn N     (tests, backup) corrupt the first input record at or after LSN N: the\n"
		"                      backup must detect the divergence and end FT\n"
		"  --replay-delay-us N (tests, backup) pause N us before replaying each record, so the\n"
		"                      replay lags behind the log it has received and acknowledged\n",
		CHANNEL_DEFAULT_TIMEOUT_MS, CHANNEL_DEFAULT_HEARTBEAT_MS);
}

int ft_options_load_key(const struct ft_options *fo, struct channel_key *key, char *err, size_t errlen)
{
	struct channel_err cerr = { 0 };

	if (!fo->channel_key) {
		snprintf(err, errlen,
			 "--channel-key FILE is required: make a key with `ftvm keygen FILE` on one host, "
			 "copy it to the other over a trusted path, and give it to both nodes");
		return -EINVAL;
	}
	int ret = channel_key_load(fo->channel_key, key, &cerr);
	if (ret < 0)
		snprintf(err, errlen, "%s", cerr.msg);
	return ret;
}

int ft_options_check_role(struct ft_options *fo, const struct domain_def *dom, bool primary, struct channel_key *key,
			  char *err, size_t errlen)
{
	if (dom && ft_options_apply_domain(fo, dom, err, errlen))
		return -EINVAL;
	if (!(primary ? fo->peer : fo->listen) || !fo->arbiter) {
		snprintf(err, errlen, "%s HOST:PORT and --arbiter PATH are required", primary ? "--peer" : "--listen");
		return -EINVAL;
	}
	return ft_options_load_key(fo, key, err, errlen);
}

/* A backup's VM is a replica that follows its primary's log: it has nothing of its own to save. */
static int backup_snapshot(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	(void)ctx, (void)req, (void)answer, (void)job_arg;
	snprintf(err, errlen, "snapshot: refused on a backup, whose VM replays its primary's log; "
			      "take the snapshot on the primary (--role primary)");
	return -EPERM;
}

static const struct control_command backup_commands[] = {
	{ .name = "snapshot", .handler = backup_snapshot },
};

void ft_options_start_control(const struct ft_options *fo, const char *role, void (*status)(void *, struct ft_status *),
			      void *ctx, const struct control_command *own, size_t nown, struct control_command *commands,
			      struct control_server **ctl)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(backup_commands) / sizeof(backup_commands[0]); i++)
		commands[n++] = backup_commands[i];
	for (size_t i = 0; i < nown && n < FT_CONTROL_COMMANDS; i++)
		commands[n++] = own[i];
	struct control_config cc = { .status = status, .ctx = ctx, .commands = commands, .ncommands = n };
	control_options_start(&fo->co, role, &cc, ctl);
}

void ft_options_vm_id(const struct ft_options *fo, uint64_t config_digest, char *buf, size_t len)
{
	snprintf(buf, len, "%s@%016llx/%s", fo->co.vm, (unsigned long long)config_digest,
		 fo->disk_shared ? "shared" : "replicated");
}

int ft_options_pair_id(const struct ft_options *fo, const char *vm_id, struct world_live *w, const char *const *paths,
		       unsigned n, char *buf, size_t len, char *err, size_t errlen)
{
	struct disk_image *img[MACHINE_MAX_DISKS] = { 0 };
	char hex[DISK_DIGEST_HEX], why[320];
	int ret = 0;
	if (fo->disk_shared || n == 0) {
		snprintf(buf, len, "%s", vm_id);
		return 0;
	}
	n = n > MACHINE_MAX_DISKS ? MACHINE_MAX_DISKS : n;
	uint64_t t0 = time_mono_ns(), bytes = 0;
	for (unsigned i = 0; i < n && !ret; i++) {
		struct disk_backend *be = w ? world_live_disk_backend(w, i) : NULL;
		ret = be ? disk_backend_reopen(be, true, &img[i], why, sizeof(why))
			 : disk_image_open(paths[i], true, &img[i], why, sizeof(why));
		if (ret)
			snprintf(err, errlen, "cannot read replica %u for its digest: %s", i, why);
		else
			bytes += disk_image_size(img[i]);
	}
	if (!ret) {
		ret = disk_images_digest(img, n, hex, why, sizeof(why));
		if (ret)
			snprintf(err, errlen, "digest of the replicas: %s", why);
	}
	for (unsigned i = 0; i < n; i++)
		disk_image_close(img[i]);
	if (ret)
		return ret;
	diag_info("digest of the replicas (%llu MiB) in %.1f ms: %s", (unsigned long long)(bytes >> 20),
		  (time_mono_ns() - t0) / 1e6, hex);
	snprintf(buf, len, "%s/disks=%s", vm_id, hex);
	return 0;
}

void ft_options_mark_replicas(const struct ft_options *fo, const struct run_world *rw, uint64_t epoch)
{
	if (!fo->disk_shared && rw->scratch_fd < 0)
		replica_marks_write_all(rw->config.disk_path, rw->config.ndisks, fo->co.vm, epoch);
}
