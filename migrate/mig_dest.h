/*
 * mig_dest.h — the receiving side of a live migration: listen for one migration stream
 * (a logging channel opened with the migration purpose, TLS with the channel key), decode it into
 * a machine just built from this host's run options (mig_stream.h), and return once the source
 * handed the VM over.
 *
 * The machine runs only after HANDOVER. A stream that fails before it — the source cancelling,
 * dying, the link breaking, a malformed message, another configuration — leaves nothing running
 * here; for a refused stream the source is told why (REFUSE).
 *
 * With an arbiter area (arbiter), the arbiter judges: the source's START names the epoch and the
 * node id to claim it as; HANDOVER is acknowledged, and the machine runs, only once this side won
 * that epoch. A stream that ends after the whole state arrived (COMPLETE confirmed) without a
 * HANDOVER — the source silent, gone, or cancelling — makes this side claim the epoch all the
 * same: won, the VM runs here; lost, the source kept it.
 */
#ifndef FTVM_MIGRATE_MIG_DEST_H
#define FTVM_MIGRATE_MIG_DEST_H

#include <stddef.h>
#include "host/world_live.h"
#include "logchannel/channel_types.h"
#include "migrate/mig_frames.h"
#include "migrate/mig_stream.h"
#include "util/compiler.h"
#include "vm/machine.h"

struct mig_dest_config {
	const char *listen;             /* HOST:PORT */
	enum channel_transport transport; /* the channel's link: the source must use the same */
	const struct channel_key *key;
	const char *vm_id;              /* the VM's name the source must give */
	bool clone;                     /* take only an FT clone (`ftvm spare`), else only a migration */
	/* The disks: whether the stream must, may or must not carry them, and this host's replicas
	 * they are written into (opened for the stream only): the live world's disks when world is
	 * set (`ftvm incoming`), else the files or URIs of disk_path (a spare's run options). */
	enum mig_storage storage;
	const char *arbiter;            /* the VM's arbiter area (its name is vm_id), or NULL */
	struct world_live *world;
	unsigned ndisks;
	const char *disk_path[MACHINE_MAX_DISKS];
	/* A spare whose disk_path are replica files of its own (not a scratch disk): a clone may
	 * resync them, and a completed one leaves pairing marks beside them (replica_mark.h). */
	bool pairing_marks;
	/* Called once the socket listens (for the terminal): may be NULL. */
	void (*listening)(void *ctx, unsigned port);
	/* Called once a source's stream was accepted (the listener is closed), with the epoch its
	 * HELLO named: a spare opens its log listener here, so its primary can connect during the
	 * pre-copy. Non-zero refuses the stream (the source is told err). May be NULL. */
	int (*accepted)(void *ctx, uint64_t epoch, char *err, size_t errlen);
	void *ctx;
	/* A migration into world (not a clone): when set, the stream goes on after a successful
	 * HANDOVER on a receiver of the guest's frames the source forwards (mig_frames.h), returned
	 * here; the caller stops it (mig_frames_receiver_stop()) before the world goes. */
	struct mig_frames_receiver **frames;
	/* Where the final state is decoded (mig_dest_want): the caller's fresh machine_state_alloc(),
	 * freed by it once the VM runs; NULL: one allocated and freed here. */
	struct machine_state *scratch;
};

/* Waits for one migration and receives it into m: 0 when handed over, else -errno with err. */
int mig_dest_receive(const struct mig_dest_config *cfg, struct machine *m, struct mig_dest_result *res, char *err,
		     size_t errlen) FTVM_MUST_CHECK;

#endif
