/*
 * ftvmd.c — the host daemon: `ftvmd [--state-dir DIR] [--socket PATH] [--socket-group GROUP]
 * [--libvirt-socket PATH] [--metrics HOST:PORT] [--ftvm PATH] [--poll-ms N]`. It opens the VM table
 * (daemon/vmtab.h: the definitions in DIR, the VMs still running from an earlier daemon), serves the
 * JSON socket (daemon/json_api.h) and, when asked, libvirt's RPC protocol (daemon/virt_rpc.h) and the
 * Prometheus metrics (daemon/metrics.h), until SIGTERM or SIGINT; the VMs run on after it ends.
 * docs/daemon.md, docs/libvirt.md.
 */
#define DIAG_MODULE "ftvmd"
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/control.h"
#include "daemon/json_api.h"
#include "daemon/metrics.h"
#include "daemon/pairing.h"
#include "daemon/virt_rpc.h"
#include "daemon/vmtab.h"
#include "util/diag.h"
#include "util/parse.h"

#define DEFAULT_STATE_DIR "/var/lib/ftvm"
#define DEFAULT_SOCKET CONTROL_DAEMON_SOCKET

static void usage(FILE *out)
{
	fprintf(out, "usage: ftvmd [--state-dir DIR] [--socket PATH] [--socket-group GROUP] [--libvirt-socket PATH]\n"
		     "             [--metrics HOST:PORT] [--ftvm PATH] [--poll-ms N] [--pair-key FILE [--pair-listen HOST:PORT]]\n\n"
		     "The ftvm host daemon: keeps VM definitions (domain XML) in DIR (default " DEFAULT_STATE_DIR "),\n"
		     "runs each started VM as its own `ftvm` process that outlives the daemon, and finds them again\n"
		     "when restarted. Serves the JSON socket PATH (default " DEFAULT_SOCKET ", mode 0600, or 0660\n"
		     "for GROUP) that `ftvm define|list|start|...` use; with --libvirt-socket, libvirt's RPC protocol\n"
		     "(owner-only) for `virsh -c 'ftvm+unix:///system?socket=PATH'` and python-libvirt; Prometheus metrics at\n"
		     "http://HOST:PORT/metrics with --metrics. --ftvm: the ftvm command VMs run under (default:\n"
		     "the one next to ftvmd). --poll-ms: how often each VM's status is read (default 500).\n"
		     "--pair-key: the key (ftvm keygen) this daemon and its peers share for FT pairing (`ftvm ft\n"
		     "enable --host`); --pair-listen: serve the peers' pairing requests on HOST:PORT (default off).\n"
		     "VMs marked autostart start with the daemon.\n"
		     "SIGTERM or SIGINT ends the daemon; the VMs keep running. See docs/daemon.md.\n");
}

/* The ftvm next to this program, else the one of the build tree. */
static void default_ftvm(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		snprintf(buf, len, "%s/ftvm", dirname(self));
		if (access(buf, X_OK) == 0)
			return;
	}
	snprintf(buf, len, "%s", FTVM_BUILD_FTVM);
}

int main(int argc, char **argv)
{
	const char *state_dir = DEFAULT_STATE_DIR, *sock = DEFAULT_SOCKET, *group = NULL, *metrics = NULL,
		   *virt_sock = NULL, *pair_key = NULL, *pair_listen = NULL;
	char ftvm[PATH_MAX], err[512];
	unsigned poll_ms = 0;
	gid_t gid = 0;

	default_ftvm(ftvm, sizeof(ftvm));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			fprintf(stderr, "ftvmd: unknown option or missing value: %s\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--state-dir"))
			state_dir = v;
		else if (!strcmp(a, "--socket"))
			sock = v;
		else if (!strcmp(a, "--socket-group"))
			group = v;
		else if (!strcmp(a, "--libvirt-socket"))
			virt_sock = v;
		else if (!strcmp(a, "--pair-key"))
			pair_key = v;
		else if (!strcmp(a, "--pair-listen"))
			pair_listen = v;
		else if (!strcmp(a, "--metrics"))
			metrics = v;
		else if (!strcmp(a, "--ftvm"))
			snprintf(ftvm, sizeof(ftvm), "%s", v);
		else if (!strcmp(a, "--poll-ms")) {
			if (parse_uint(v, 10, 60000, &poll_ms)) {
				fprintf(stderr, "ftvmd: --poll-ms %s: expected 10..60000\n", v);
				return 2;
			}
		} else {
			fprintf(stderr, "ftvmd: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (pair_listen && !pair_key) {
		fprintf(stderr, "ftvmd: --pair-listen needs --pair-key FILE: peers are admitted by that key only\n");
		return 2;
	}
	if (group && control_group_lookup(group, &gid, err, sizeof(err))) {
		fprintf(stderr, "ftvmd: %s\n", err);
		return 2;
	}
	if (!strcmp(sock, DEFAULT_SOCKET))
		mkdir(CONTROL_DEFAULT_DIR, 0755);

	/* Every thread starts with these blocked; the main thread waits for them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct vmtab *t = NULL;
	struct json_api *api = NULL;
	struct metrics *m = NULL;
	struct virt_rpc *virt = NULL;
	struct pairing *pair = NULL;
	struct vmtab_config cfg = { .state_dir = state_dir, .ftvm = ftvm, .poll_ms = poll_ms };
	int ret = vmtab_open(&cfg, &t, err, sizeof(err));
	if (!ret && pair_key)
		ret = pairing_start(t, pair_key, pair_listen, &pair, err, sizeof(err));
	if (!ret)
		ret = json_api_start(t, pair, sock, group != NULL, gid, &api, err, sizeof(err));
	if (!ret && virt_sock)
		ret = virt_rpc_start(t, virt_sock, &virt, err, sizeof(err));
	if (!ret && metrics)
		ret = metrics_start(t, metrics, &m, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "ftvmd: %s\n", err);
	} else {
		vmtab_autostart_all(t);
		diag_info("serving %s%s%s (state %s, VMs run %s)", sock, metrics ? ", metrics at " : "",
			  metrics ? metrics : "", state_dir, ftvm);
		int sig;
		sigwait(&stop, &sig);
		diag_info("signal %d: ending; the VMs run on", sig);
	}
	metrics_stop(m);
	virt_rpc_stop(virt);
	json_api_stop(api);
	pairing_stop(pair);
	vmtab_close(t);
	return ret ? 1 : 0;
}
