/*
 * vm_ft.h — the control socket's "ft" command (docs/control.md, docs/ft-clone.md): fault tolerance
 * turned on for a running VM (`{"cmd":"ft","action":"enable","peer":"HOST:PORT"}`: an FT clone to
 * that spare, and again after every loss) or off (`"action":"disable"`: the backup is dropped, the
 * VM runs on alone). Served by nodes whose status is an ft_node's (cmd/ft_node.h).
 */
#ifndef FTVM_CMD_VM_FT_H
#define FTVM_CMD_VM_FT_H

#include "common/control.h"

extern const struct control_command vm_ft_command;

struct ft_node;
/* The request's action on node n (what the command's handler does once it has the node). */
int vm_ft_request(struct ft_node *n, const json_t *req, json_t *answer, char *err, size_t errlen);

#endif
