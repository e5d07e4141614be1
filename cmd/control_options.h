/*
 * control_options.h — the control-socket options of every subcommand that runs a VM under a name
 * (run, primary, backup): --vm NAME, --control PATH, --control-group GROUP, and starting the
 * socket at CONTROL_DEFAULT_DIR/NAME-ROLE.sock unless --control names another path.
 */
#ifndef FTVM_CMD_CONTROL_OPTIONS_H
#define FTVM_CMD_CONTROL_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <jansson.h>
#include "util/compiler.h"

#define CONTROL_DEFAULT_VM "ftvm"

struct control_config;
struct control_server;

struct control_options {
	const char *vm;            /* --vm NAME (default CONTROL_DEFAULT_VM) */
	const char *control;       /* --control PATH; default CONTROL_DEFAULT_DIR/VM-ROLE.sock */
	const char *control_group; /* --control-group: socket mode 0660, this group's members admitted */
	gid_t control_gid;         /* control_group resolved by control_options_check() */
	bool vm_given;
};

void control_options_init(struct control_options *co);
/* When argv[i] is one of the options: takes it and its value out of argv (argc adjusted) and
 * returns 1; 0 when it is not one; -EINVAL with err when its value is missing. */
int control_options_take(int *argc, char **argv, int i, struct control_options *co, char *err,
			 size_t errlen) FTVM_MUST_CHECK;
/* After parsing: the VM name is 1..63 characters without '/', the group resolves. */
int control_options_check(struct control_options *co, char *err, size_t errlen) FTVM_MUST_CHECK;
void control_options_help(FILE *out);
/* The socket path for this VM and role into buf (creating the default directory). */
int control_options_path(const struct control_options *co, const char *role, char *buf, size_t len) FTVM_MUST_CHECK;
/* Starts the socket for `role` with cfg's callbacks and commands (its path and group are filled in
 * here). A node runs on without one, with a warning under the role's name; *ctl stays NULL then. */
void control_options_start(const struct control_options *co, const char *role, struct control_config *cfg,
			   struct control_server **ctl);

/*
 * Client side (ftvm status, ftvm snapshot): sends request to the node's socket — path when given,
 * else CONTROL_DEFAULT_DIR/VM-ROLE.sock for role, or for each of run, primary, backup in turn
 * until one is reached — and returns the answer line (caller frees), with the socket that answered
 * in used; NULL with a message in err. A bad role is -EINVAL's message.
 */
/* For the clients of a node's socket (`ftvm migrate`, `ftvm ft`): takes `o v` when o is --vm,
 * --role or --control into *vm, *role or *path; false for any other option. */
bool control_options_take_target(const char *o, const char *v, const char **vm, const char **role,
				 const char **path);
char *control_options_ask(const char *vm, const char *role, const char *path, const json_t *request, char *used,
			  size_t usedlen, char *err, size_t errlen);

#endif
