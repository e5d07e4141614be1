/*
 * channel_types.h — the logging channel's vocabulary, shared by its public interface (channel.h)
 * and the pieces under it (sockets, TLS, the wire format, the RDMA transport), which use these
 * and nothing else of the channel: sizes, the transports, the pairing key, a failure's message.
 */
#ifndef FTVM_LOGCHANNEL_CHANNEL_TYPES_H
#define FTVM_LOGCHANNEL_CHANNEL_TYPES_H

#include <stdint.h>

/* Largest record payload: 1 MiB of data (a DISK_DONE) plus 64 bytes of event header. */
#define CHANNEL_MAX_RECORD (1024u * 1024u + 64u)
/* Longest VM id in the handshake (a name or a UUID string). */
#define CHANNEL_MAX_VM_ID 128u
/* Smallest send/receive buffer: must hold one maximal frame; rounded up to a power of two. */
#define CHANNEL_MIN_BUFFER (2u * 1024u * 1024u)
/* Bytes of a pairing key (the TLS 1.3 pre-shared key both nodes hold). */
#define CHANNEL_KEY_SIZE 32u
/* Connection attempts the backup handshakes with at once (channel_accept()). */
#define CHANNEL_MAX_PENDING 16u

enum channel_transport {
	CHANNEL_TCP = 0,  /* default */
	CHANNEL_RDMA = 1, /* RC queue pair; needs an RDMA device (see verbs.h, README "Logging channel") */
};

/*
 * What a channel carries, said in the HELLO's arg (docs/channel-protocol.md): the event log of an
 * FT pair, or one live migration's stream (docs/migration.md). A receiver takes only its own.
 */
enum channel_purpose {
	CHANNEL_PURPOSE_LOG = 0,
	CHANNEL_PURPOSE_MIGRATION = 1,
};

/* The pairing's secret: whoever holds it may act as primary or backup of the pair. */
struct channel_key {
	uint8_t bytes[CHANNEL_KEY_SIZE];
};

/* Why a connect/accept failed: a precise, human-readable message (also logged). */
struct channel_err {
	int code; /* the -errno that was returned */
	char msg[320];
};

#endif
