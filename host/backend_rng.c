/*
 * backend_rng.c — host entropy for virtio-rng in a live run.
 *
 * rng_backend_request() reads up to VM_EVENT_MAX_BYTES from getrandom() and posts them as one
 * VM_EV_RNG event; the vCPU applies it later at an icount the world chooses. getrandom() with no
 * flags blocks only before the host's pool is initialised, which is over long before a VM runs.
 * Should it fail anyway, an empty RNG event still answers the request (the device returns the
 * buffer with 0 bytes and the driver asks again), so the guest never waits forever.
 */
#define DIAG_MODULE "rng"
#include "util/diag.h"
#include "host/backend.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

void rng_backend_request(unsigned index, uint32_t len, struct backend_sink sink)
{
	uint8_t buf[VM_EVENT_MAX_BYTES];
	size_t want = MIN(len, VM_EVENT_MAX_BYTES), got = 0;
	while (got < want) {
		ssize_t n = getrandom(buf + got, want - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			DIAG_RATELIMITED(DIAG_ERROR, "rng%u: getrandom: %s", index, strerror(errno));
			break;
		}
		got += (size_t)n;
	}
	struct vm_event ev = { .kind = VM_EV_RNG, .device = index, .len = (uint32_t)got, .data = buf };
	sink.post(sink.ctx, &ev);
}
