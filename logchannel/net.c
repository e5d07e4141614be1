/*
 * net.c — the socket plumbing of the channel: "HOST:PORT" parsing (IPv4, [IPv6], names),
 * non-blocking connect with a deadline, listening sockets, and waiting for a socket with a
 * deadline. Plain sockets only, so a channel works between network namespaces like between hosts.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/net.h"

#include "util/diag.h"
#include "util/parse.h"
#include "util/time.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define PORT_TEXT_MAX 8

void chan_seterr(struct channel_err *err, int code, const char *fmt, ...)
{
	char msg[CHAN_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_error("%s", msg);
	if (err) {
		err->code = code;
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	}
}

uint64_t chnet_now_ns(void)
{
	return time_mono_ns();
}

uint64_t chnet_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return chnet_now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
}

int chnet_remaining_ms(uint64_t deadline)
{
	if (deadline == UINT64_MAX)
		return -1;
	uint64_t now = chnet_now_ns();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int channel_parse_addr(const char *hostport, int passive, struct sockaddr_storage *out,
		       socklen_t *outlen)
{
	char host[256], port[PORT_TEXT_MAX];
	const char *colon, *hstart = hostport;
	size_t hlen;

	if (!hostport)
		return -EINVAL;
	if (hostport[0] == '[') {
		const char *close = strchr(hostport, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hstart = hostport + 1;
		hlen = (size_t)(close - hstart);
		colon = close + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon || memchr(hostport, ':', (size_t)(colon - hostport)))
			return -EINVAL; /* no port, or a bare IPv6 address without brackets */
		hlen = (size_t)(colon - hostport);
	}
	size_t plen = strlen(colon + 1);
	if (hlen >= sizeof(host) || plen == 0 || plen >= sizeof(port))
		return -EINVAL;
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	memcpy(port, colon + 1, plen + 1);
	/* The port strictly (no sign, spaces or junk, which getaddrinfo would let through), then
	 * handed on in its canonical decimal form. */
	unsigned pnum;
	if (parse_uint(port, passive ? 0 : 1, UINT16_MAX, &pnum) < 0)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", pnum);

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	if (passive)
		hints.ai_flags |= AI_PASSIVE;
	const char *node = host;
	if (hlen == 0 || strcmp(host, "*") == 0) {
		if (!passive)
			return -EINVAL;
		node = NULL;
	}
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(node, port, &hints, &res);
	if (rc != 0 || !res)
		return rc == EAI_NONAME || rc == EAI_AGAIN || rc == EAI_FAIL ? -EHOSTUNREACH : -EINVAL;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*outlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int chnet_socket_opts(int fd)
{
	int one = 1;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	/* Only TCP sockets take TCP_NODELAY; a socketpair in a test is fine without it. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 && errno != EOPNOTSUPP &&
	    errno != ENOPROTOOPT)
		return -errno;
	return 0;
}

int chnet_connect(const char *hostport, int timeout_ms, struct channel_err *err)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int fd = -1, rc;

	rc = channel_parse_addr(hostport, 0, &sa, &salen);
	if (rc < 0) {
		chan_seterr(err, rc, "cannot parse or resolve channel address \"%s\" (want HOST:PORT)",
			    hostport ? hostport : "(null)");
		return rc;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		chan_seterr(err, rc, "socket: %s", strerror(errno));
		return rc;
	}
	rc = chnet_socket_opts(fd);
	if (rc < 0) {
		chan_seterr(err, rc, "socket options: %s", strerror(-rc));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		chan_seterr(err, rc, "connect to %s: %s", hostport, strerror(errno));
		goto out;
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		rc = -ETIMEDOUT;
		chan_seterr(err, rc, "connect to %s: no answer within %d ms", hostport, timeout_ms);
		goto out;
	}
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		rc = -soerr;
		chan_seterr(err, rc, "connect to %s: %s", hostport, strerror(soerr));
		goto out;
	}
	return fd;
out:
	close(fd);
	return rc;
}

int chnet_listen(const char *hostport, int *port_out)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int one = 1, fd, rc;

	rc = channel_parse_addr(hostport, 1, &sa, &salen);
	if (rc < 0)
		return rc;
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		goto out;
	}
	salen = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
		rc = -errno;
		goto out;
	}
	*port_out = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						     : ((struct sockaddr_in *)&sa)->sin_port);
	return fd;
out:
	close(fd);
	return rc;
}

/* Wait for @events on @fd until @deadline: 1 ready, 0 timed out, -errno. */
int chnet_wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;
	do
		rc = poll(&p, 1, chnet_remaining_ms(deadline));
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}
