/*
 * vm_migrate.h — the control socket's "migrate" command (docs/control.md): a live migration of
 * the node's VM to `ftvm incoming`, run as the socket's job (migrate/mig_source.h), its
 * statistics in status under job.result.migration.
 */
#ifndef FTVM_CMD_VM_MIGRATE_H
#define FTVM_CMD_VM_MIGRATE_H

#include "common/control.h"

extern const struct control_command vm_migrate_command;

#endif
