/*
 * log_accept.h — a spare's log listener (docs/ft-clone.md): opened when an FT clone's stream is
 * accepted, before the backup exists (its state is still coming), it accepts the clone's primary
 * on a thread of its own while the state comes in. The primary opens its log connection during
 * the pre-copy, so the guest's pause for the clone holds none of it (TCP, TLS, HELLO).
 *
 * The listener takes the channel settings of the backup it will serve (ft_backup_channel_config():
 * the VM id, the new pairing's epoch, the key); a primary of another VM or epoch is refused and
 * waited past, as ft_backup_accept() does. The first primary accepted is kept for
 * log_accept_take(); the listener is closed then.
 */
#ifndef FTVM_BACKUP_LOG_ACCEPT_H
#define FTVM_BACKUP_LOG_ACCEPT_H

#include <stddef.h>
#include "backup/ft_backup.h"
#include "util/compiler.h"

struct channel;
struct log_accept;

/* Listens on cfg->listen (bound when this returns) and starts accepting. 0, or -errno with err. */
int log_accept_start(const struct ft_backup_config *cfg, struct log_accept **out, char *err, size_t errlen)
	FTVM_MUST_CHECK;
/* Waits up to timeout_ms for the primary: 0 and its channel in *ch (the caller's from here), or
 * -ETIMEDOUT, or the accept's -errno, with err. */
int log_accept_take(struct log_accept *a, int timeout_ms, struct channel **ch, char *err, size_t errlen)
	FTVM_MUST_CHECK;
/* Stops the thread, closes the listener and any channel not taken (NULL: nothing). */
void log_accept_stop(struct log_accept *a);

#endif
