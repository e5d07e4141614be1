/*
 * backend_tap.c — TAP back end: the host side of a virtio-net NIC in a live run.
 *
 * Opens /dev/net/tun with IFF_TAP | IFF_NO_PI, so the fd carries bare Ethernet frames — the same
 * bare frames the device model exchanges with the world (the virtio-net header never leaves
 * virtio_net.c). A reader thread polls the fd and posts each frame read as VM_EV_NET_RX.
 * tap_backend_send() writes a frame; the fd is non-blocking, so a full host queue drops the frame
 * like a congested wire would. close() wakes the reader through an eventfd and joins it.
 */
#define DIAG_MODULE "tap"
#include "util/diag.h"
#include "host/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TUN_DEVICE "/dev/net/tun"

struct tap_backend {
	int fd;
	int stop_fd;               /* eventfd: close() asks the reader to leave */
	unsigned index;
	struct backend_sink sink;
	pthread_t thread;
	uint8_t buf[VM_EVENT_MAX_FRAME];
};

static void *reader_thread(void *arg)
{
	struct tap_backend *tap = arg;
	struct pollfd fds[2] = { { .fd = tap->fd, .events = POLLIN }, { .fd = tap->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			diag_error("tap%u: poll: %s", tap->index, strerror(errno));
			break;
		}
		if (fds[1].revents)
			break;
		if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			diag_error("tap%u: device went away", tap->index);
			break;
		}
		ssize_t n = read(tap->fd, tap->buf, sizeof(tap->buf));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			diag_error("tap%u: read: %s", tap->index, strerror(errno));
			break;
		}
		if (n < TAP_MIN_FRAME)
			continue;
		struct vm_event ev = {
			.kind = VM_EV_NET_RX,
			.device = tap->index,
			.len = (uint32_t)n,
			.data = tap->buf,
		};
		tap->sink.post(tap->sink.ctx, &ev);
	}
	return NULL;
}

int tap_backend_open(const char *ifname, unsigned index, struct backend_sink sink,
		     struct tap_backend **out, char *err, size_t errlen)
{
	struct ifreq ifr = { 0 };
	struct tap_backend *tap = NULL;
	int ret;
	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "tap: bad interface name '%s' (1 to %d characters)", ifname ? ifname : "",
			 IFNAMSIZ - 1);
		return -EINVAL;
	}
	tap = calloc(1, sizeof(*tap));
	if (!tap) {
		snprintf(err, errlen, "tap %s: out of memory", ifname);
		return -ENOMEM;
	}
	tap->stop_fd = -1;
	tap->fd = open(TUN_DEVICE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tap->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "tap %s: cannot open %s: %s", ifname, TUN_DEVICE, strerror(errno));
		goto out;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(tap->fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		snprintf(err, errlen, "tap %s: cannot attach: %s%s", ifname, strerror(errno),
			 errno == EPERM ? " (needs CAP_NET_ADMIN, or a tap owned by this user)" :
			 errno == EBUSY ? " (in use by another process, or not a tap)" : "");
		goto out;
	}
	tap->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (tap->stop_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "tap %s: eventfd: %s", ifname, strerror(errno));
		goto out;
	}
	tap->index = index;
	tap->sink = sink;
	ret = -pthread_create(&tap->thread, NULL, reader_thread, tap);
	if (ret < 0) {
		snprintf(err, errlen, "tap %s: cannot start reader thread: %s", ifname, strerror(-ret));
		goto out;
	}
	*out = tap;
	return 0;
out:
	if (tap->stop_fd >= 0)
		close(tap->stop_fd);
	if (tap->fd >= 0)
		close(tap->fd);
	free(tap);
	return ret;
}

void tap_backend_send(struct tap_backend *tap, const uint8_t *frame, size_t len)
{
	if (len < TAP_MIN_FRAME)
		return;
	if (write(tap->fd, frame, len) < 0)
		DIAG_RATELIMITED(DIAG_WARN, "tap%u: frame of %zu bytes dropped: %s", tap->index, len, strerror(errno));
}

void tap_backend_close(struct tap_backend *tap)
{
	uint64_t one = 1;
	if (!tap)
		return;
	if (write(tap->stop_fd, &one, sizeof(one)) != sizeof(one))
		diag_error("tap%u: cannot wake reader: %s", tap->index, strerror(errno));
	pthread_join(tap->thread, NULL);
	close(tap->stop_fd);
	close(tap->fd);
	free(tap);
}
