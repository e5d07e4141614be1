/*
 * nbd_uri.c — strict NBD URIs (see nbd_uri.h). The URI is cut at its fixed separators first
 * ("//", the first '/' or '?' after the authority, the '?' of the query), then each part is checked
 * and percent-decoded on its own, so no decoded byte can ever be mistaken for a separator.
 */
#include "util/nbd_uri.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"

static int fail(char *err, size_t errlen, const char *what, const char *uri)
{
	snprintf(err, errlen, "NBD URI %.200s: %s", uri, what);
	return -EINVAL;
}

bool nbd_uri_is_nbd(const char *s)
{
	if (!s || strncmp(s, "nbd", 3) != 0)
		return false;
	size_t scheme = strspn(s, "abcdefghijklmnopqrstuvwxyz+");
	return strncmp(s + scheme, "://", 3) == 0;
}

/* Decodes the n bytes at src (percent escapes) into dst of cap bytes plus a NUL: 0, -EINVAL for a
 * bad escape, %00 or a decoded control character, -ERANGE when longer than cap. */
static int decode(const char *src, size_t n, char *dst, size_t cap)
{
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '%') {
			int hi = i + 2 < n ? parse_hex_digit(src[i + 1]) : -1;
			int lo = hi >= 0 ? parse_hex_digit(src[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (c < 0x20 || c == 0x7f)
				return -EINVAL;
		}
		if (out == cap)
			return -ERANGE;
		dst[out++] = (char)c;
	}
	dst[out] = '\0';
	return 0;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool ipv6_char(char c)
{
	return parse_hex_digit(c) >= 0 || c == ':' || c == '.';
}

/* "HOST[:PORT]" or "[IPv6][:PORT]", n bytes at a. */
static int parse_authority(const char *a, size_t n, struct nbd_uri *u, const char *uri, char *err, size_t errlen)
{
	size_t host_len, i;
	const char *host = a, *rest;
	if (memchr(a, '@', n))
		return fail(err, errlen, "user information is not accepted", uri);
	if (n && a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (!close)
			return fail(err, errlen, "'[' of an IPv6 address without its ']'", uri);
		host = a + 1;
		host_len = (size_t)(close - host);
		rest = close + 1;
		for (i = 0; i < host_len; i++)
			if (!ipv6_char(host[i]))
				return fail(err, errlen, "bad character in the IPv6 address (zones are not accepted)", uri);
		if (host_len < 2 || !memchr(host, ':', host_len))
			return fail(err, errlen, "not an IPv6 address between '[' and ']'", uri);
	} else {
		const char *colon = memchr(a, ':', n);
		host_len = colon ? (size_t)(colon - a) : n;
		rest = a + host_len;
		for (i = 0; i < host_len; i++)
			if (!host_char(host[i]))
				return fail(err, errlen, "bad character in the host name", uri);
	}
	if (host_len == 0)
		return fail(err, errlen, "no host (nbd://HOST[:PORT]/EXPORT)", uri);
	if (host_len > NBD_URI_MAX_HOST)
		return fail(err, errlen, "host name too long", uri);
	memcpy(u->host, host, host_len);
	u->host[host_len] = '\0';

	size_t rest_len = n - (size_t)(rest - a);
	u->port = NBD_URI_DEFAULT_PORT;
	if (rest_len == 0)
		return 0;
	if (rest[0] != ':')
		return fail(err, errlen, "junk after the host", uri);
	unsigned port = 0;
	if (rest_len < 2 || rest_len > 6)
		return fail(err, errlen, "port not in 1..65535", uri);
	for (i = 1; i < rest_len; i++) {
		if (rest[i] < '0' || rest[i] > '9')
			return fail(err, errlen, "port is not a decimal number", uri);
		port = port * 10 + (unsigned)(rest[i] - '0');
	}
	if (port < 1 || port > 65535)
		return fail(err, errlen, "port not in 1..65535", uri);
	u->port = (uint16_t)port;
	return 0;
}

/* The query of a Unix-socket URI: exactly one "socket=PATH". */
static int parse_unix_query(const char *q, size_t n, struct nbd_uri *u, const char *uri, char *err,
			    size_t errlen)
{
	static const char key[] = "socket=";
	if (n < sizeof(key) - 1 || memcmp(q, key, sizeof(key) - 1) != 0)
		return fail(err, errlen, "the query must be socket=PATH (nbd+unix:///EXPORT?socket=PATH)", uri);
	q += sizeof(key) - 1;
	n -= sizeof(key) - 1;
	if (memchr(q, '&', n) || memchr(q, ';', n))
		return fail(err, errlen, "only one query parameter, socket=PATH, is accepted", uri);
	int ret = decode(q, n, u->socket, NBD_URI_MAX_SOCKET);
	if (ret == -ERANGE)
		return fail(err, errlen, "socket path longer than a Unix socket address holds", uri);
	if (ret < 0)
		return fail(err, errlen, "bad percent escape or control character in the socket path", uri);
	if (u->socket[0] != '/')
		return fail(err, errlen, "the socket path must be absolute", uri);
	return 0;
}

int nbd_uri_parse(const char *s, struct nbd_uri *u, char *err, size_t errlen)
{
	static const struct {
		const char *prefix;
		int transport;              /* -1: known but refused */
	} schemes[] = {
		{ "nbd://", NBD_URI_TCP }, { "nbd+tcp://", NBD_URI_TCP }, { "nbd+unix://", NBD_URI_UNIX },
		{ "nbds://", -1 }, { "nbds+tcp://", -1 }, { "nbds+unix://", -1 }, { "nbd+vsock://", -1 },
		{ "nbds+vsock://", -1 },
	};
	memset(u, 0, sizeof(*u));
	if (!s || !*s)
		return fail(err, errlen, "empty", "");
	size_t len = strnlen(s, NBD_URI_MAX_LEN + 1);
	if (len > NBD_URI_MAX_LEN) {
		snprintf(err, errlen, "NBD URI longer than %u bytes", NBD_URI_MAX_LEN);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return fail(err, errlen, "spaces, control and non-ASCII characters must be percent-encoded", s);
		if (c == '#')
			return fail(err, errlen, "fragments are not accepted", s);
	}
	const char *p = NULL;
	int transport = -2;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !p; i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncmp(s, schemes[i].prefix, n) == 0) {
			p = s + n;
			transport = schemes[i].transport;
		}
	}
	if (!p)
		return fail(err, errlen, "not an NBD URI (nbd+unix:///EXPORT?socket=PATH or nbd://HOST[:PORT]/EXPORT)", s);
	if (transport < 0)
		return fail(err, errlen, "TLS and vsock transports are not supported", s);
	u->transport = (enum nbd_uri_transport)transport;

	size_t auth_len = strcspn(p, "/?");
	const char *path = p + auth_len;
	size_t path_len = *path == '/' ? strcspn(path, "?") : 0;
	const char *query = path + path_len;
	bool has_query = *query == '?';
	if (has_query)
		query++;
	size_t query_len = strlen(query);

	if (path_len) {
		int ret = decode(path + 1, path_len - 1, u->export_name, NBD_URI_MAX_EXPORT);
		if (ret == -ERANGE)
			return fail(err, errlen, "export name longer than the NBD protocol allows", s);
		if (ret < 0)
			return fail(err, errlen, "bad percent escape or control character in the export name", s);
	}
	if (u->transport == NBD_URI_UNIX) {
		if (auth_len)
			return fail(err, errlen, "a Unix-socket URI has no host (nbd+unix:///EXPORT?socket=PATH)", s);
		if (!has_query)
			return fail(err, errlen, "no socket=PATH (nbd+unix:///EXPORT?socket=PATH)", s);
		return parse_unix_query(query, query_len, u, s, err, errlen);
	}
	if (has_query)
		return fail(err, errlen, "a TCP URI takes no query (nbd://HOST[:PORT]/EXPORT)", s);
	return parse_authority(p, auth_len, u, s, err, errlen);
}

int nbd_uri_check(const char *s, char *err, size_t errlen)
{
	struct nbd_uri *u = malloc(sizeof(*u)); /* 4.5 KiB: not on the stack */
	if (!u) {
		snprintf(err, errlen, "NBD URI: out of memory");
		return -ENOMEM;
	}
	int ret = nbd_uri_parse(s, u, err, errlen);
	free(u);
	return ret;
}
