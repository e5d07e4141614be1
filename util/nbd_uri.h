/*
 * nbd_uri.h — NBD URIs from untrusted text (command lines, domain XML), strictly.
 *
 * Two forms of the NBD URI specification (NetworkBlockDevice/nbd doc/uri.md) are accepted:
 *   nbd+unix:///EXPORT?socket=PATH     a Unix socket; the authority must be empty
 *   nbd://HOST[:PORT]/EXPORT           TCP; HOST a name, an IPv4 address or [IPv6]; PORT 1..65535,
 *                                      10809 when absent; no query
 * EXPORT (the path after its leading '/') may be empty or absent (the server's default export);
 * it and PATH are percent-decoded. Everything else is refused with a reason: TLS forms (nbds,
 * nbds+unix), user information, fragments, unknown or repeated query keys, control characters,
 * spaces, a %00 or a bad %XX, a relative socket path, parts longer than their caps.
 */
#ifndef FTVM_UTIL_NBD_URI_H
#define FTVM_UTIL_NBD_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

#define NBD_URI_MAX_LEN 4096u        /* the whole URI */
#define NBD_URI_MAX_EXPORT 4096u     /* the NBD protocol's limit on an export name */
#define NBD_URI_MAX_HOST 255u
#define NBD_URI_MAX_SOCKET 107u      /* sizeof(sockaddr_un.sun_path) - 1 */
#define NBD_URI_DEFAULT_PORT 10809u

enum nbd_uri_transport { NBD_URI_UNIX, NBD_URI_TCP };

struct nbd_uri {
	enum nbd_uri_transport transport;
	char export_name[NBD_URI_MAX_EXPORT + 1];
	char socket[NBD_URI_MAX_SOCKET + 1];  /* NBD_URI_UNIX */
	char host[NBD_URI_MAX_HOST + 1];      /* NBD_URI_TCP, without IPv6 brackets */
	uint16_t port;                        /* NBD_URI_TCP */
};

/* Whether s names an NBD disk at all ("nbd...://", any such scheme), not a file path. */
bool nbd_uri_is_nbd(const char *s);
/* 0 with *u filled, or -EINVAL with a one-line reason in err. */
int nbd_uri_parse(const char *s, struct nbd_uri *u, char *err, size_t errlen) FTVM_MUST_CHECK;
/* nbd_uri_parse() for its verdict only (the parts are not kept): 0, -EINVAL or -ENOMEM, with err. */
int nbd_uri_check(const char *s, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
