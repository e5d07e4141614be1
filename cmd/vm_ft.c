/*
 * vm_ft.c — the "ft" control command (see vm_ft.h). A quick command: the handler checks the
 * request and hands it to the node (ft_node_enable() / ft_node_disable()), which acts on its own
 * threads; progress shows in status (clone_phase, clones, unprotected_ms).
 */
#include "cmd/vm_ft.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/ft_node.h"
#include "cmd/vm_control.h"

static int ft_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	struct vm_control *vc = ctx;
	(void)job_arg;
	if (vc->ft_status != ft_node_status) {
		snprintf(err, errlen, "ft: this node cannot restore redundancy (start it with --arbiter and "
				      "--channel-key, or --spare)");
		return -EPERM;
	}
	return vm_ft_request(vc->ft_ctx, req, answer, err, errlen);
}

int vm_ft_request(struct ft_node *n, const json_t *req, json_t *answer, char *err, size_t errlen)
{
	const char *action = json_string_value(json_object_get(req, "action"));
	if (action && !strcmp(action, "enable")) {
		const char *peer = json_string_value(json_object_get(req, "peer"));
		if (!peer) {
			snprintf(err, errlen, "ft enable: \"peer\": HOST:PORT of an `ftvm spare` is required");
			return -EINVAL;
		}
		int ret = ft_node_enable(n, peer, err, errlen);
		if (!ret)
			json_object_set_new(answer, "peer", json_string(peer));
		return ret;
	}
	if (action && !strcmp(action, "disable"))
		return ft_node_disable(n, err, errlen);
	snprintf(err, errlen, "ft: \"action\" must be \"enable\" or \"disable\"");
	return -EINVAL;
}

const struct control_command vm_ft_command = {
	.name = "ft",
	.handler = ft_handler,
};
