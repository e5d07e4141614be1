/*
 * control_options.c — see control_options.h.
 */
#include "cmd/control_options.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/control.h"
#include "util/diag.h"

void control_options_init(struct control_options *co)
{
	memset(co, 0, sizeof(*co));
	co->vm = CONTROL_DEFAULT_VM;
}

int control_options_take(int *argc, char **argv, int i, struct control_options *co, char *err, size_t errlen)
{
	const char *a = argv[i];
	const char **str = !strcmp(a, "--vm") ? &co->vm : !strcmp(a, "--control") ? &co->control
			 : !strcmp(a, "--control-group") ? &co->control_group : NULL;
	if (!str)
		return 0;
	if (i + 1 >= *argc) {
		snprintf(err, errlen, "%s needs a value", a);
		return -EINVAL;
	}
	*str = argv[i + 1];
	co->vm_given |= str == &co->vm;
	memmove(&argv[i], &argv[i + 2], sizeof(char *) * (size_t)(*argc - i - 1));
	*argc -= 2;
	return 1;
}

int control_options_check(struct control_options *co, char *err, size_t errlen)
{
	if (strlen(co->vm) == 0 || strlen(co->vm) > 63 || strchr(co->vm, '/')) {
		snprintf(err, errlen, "--vm '%s': a name of 1..63 characters without '/'", co->vm);
		return -EINVAL;
	}
	if (co->control_group)
		return control_group_lookup(co->control_group, &co->control_gid, err, errlen);
	return 0;
}

void control_options_help(FILE *out)
{
	fprintf(out,
		"  --vm NAME           the VM's name (default " CONTROL_DEFAULT_VM "): names its control socket\n"
		"  --control PATH      JSON control socket (default " CONTROL_DEFAULT_DIR "/NAME-ROLE.sock),\n"
		"                      mode 0600: only root and this user may connect (docs/control.md)\n"
		"  --control-group G   also admit members of group G (socket mode 0660, group G)\n");
}

int control_options_path(const struct control_options *co, const char *role, char *buf, size_t len)
{
	if (co->control) {
		snprintf(buf, len, "%s", co->control);
		return 0;
	}
	if (mkdir(CONTROL_DEFAULT_DIR, 0755) != 0 && errno != EEXIST)
		return -errno;
	snprintf(buf, len, "%s/%s-%s.sock", CONTROL_DEFAULT_DIR, co->vm, role);
	return 0;
}

void control_options_start(const struct control_options *co, const char *role, struct control_config *cfg,
			   struct control_server **ctl)
{
	char path[256], err[512];

	*ctl = NULL;
	int ret = control_options_path(co, role, path, sizeof(path));
	if (ret == 0) {
		cfg->path = path;
		cfg->has_group = co->control_group != NULL;
		cfg->group = co->control_gid;
		ret = control_start(cfg, ctl, err, sizeof(err));
		cfg->path = NULL;
	} else {
		snprintf(err, sizeof(err), "cannot create %s: %s", CONTROL_DEFAULT_DIR, strerror(-ret));
	}
	/* Reported under the role's name, like the role's own diagnostics. */
	if (ret < 0 && DIAG_WARN <= diag_threshold)
		diag_message(DIAG_WARN, role, "no control socket: %s", err);
}

char *control_options_ask(const char *vm, const char *role, const char *path, const json_t *request, char *used,
			  size_t usedlen, char *err, size_t errlen)
{
	static const char *const roles[] = { "run", "primary", "backup" };
	char *answer = NULL;
	bool known = false;

	if (path) {
		snprintf(used, usedlen, "%s", path);
		return control_request_json(path, request, err, errlen);
	}
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]) && !answer; i++) {
		if (role && strcmp(role, roles[i]))
			continue;
		known = true;
		snprintf(used, usedlen, "%s/%s-%s.sock", CONTROL_DEFAULT_DIR, vm, roles[i]);
		answer = control_request_json(used, request, err, errlen);
	}
	if (!known)
		snprintf(err, errlen, "--role %s: neither run, primary nor backup", role);
	return answer;
}

bool control_options_take_target(const char *o, const char *v, const char **vm, const char **role,
				 const char **path)
{
	const char **to = !strcmp(o, "--vm") ? vm : !strcmp(o, "--role") ? role : !strcmp(o, "--control") ? path : NULL;
	if (to)
		*to = v;
	return to != NULL;
}
