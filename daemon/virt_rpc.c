/*
 * virt_rpc.c — see virt_rpc.h. The server of libvirt's RPC protocol: sockets, framing, the
 * keepalive program, errors and pushed events; the procedures themselves are in virt_proc.c.
 *
 * A frame is a 4-byte big-endian length (itself included), the 24-byte header (program, version,
 * procedure, type, serial, status) and the XDR body. A call is answered by a reply with its
 * serial: status 0 and the procedure's answer, or status 1 and a remote_error. Lifecycle events
 * are MESSAGE frames of procedure DOMAIN_EVENT_LIFECYCLE sent to the clients that registered for
 * them: the table's subscription queues them (quick, under a lock, never blocking the table) and
 * wakes the server thread through an eventfd, which sends them in order.
 *
 * Slow calls (virt_proc.slow: those that ask a VM's process) run off the server thread, on
 * util/worker_slots.h's threads: the server thread decodes the arguments and hands them, with a
 * copy of the connection's state, to a free slot, whose thread runs the procedure and encodes the
 * reply into v->slow[i]'s own scratch client. The caller's client is parked meanwhile (its next
 * call is not read, so its replies stay in call order; events and other clients are served as
 * usual). Once the slot's thread ended and was joined, the server thread appends the reply to the
 * client (if it is still the same connection: clients are numbered). Past VIRT_SLOW_MAX slow calls
 * at once a call is refused at once with VIR_ERR_RESOURCE_BUSY.
 */
#define DIAG_MODULE "ftvmd"
#include "daemon/virt_rpc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include <libvirt_rpc/virkeepaliveprotocol.h>
#include <libvirt_rpc/virnetprotocol.h>

#include "daemon/virt_proc.h"
#include "daemon/vmtab.h"
#include "util/diag.h"
#include "util/time.h"
#include "util/worker_slots.h"

#define HEADER_BYTES 24
#define LEN_BYTES 4
#define EVENT_QUEUE 1024        /* events not yet sent; more are dropped (and counted) */
#define READ_PAUSE_OUT (1u << 20) /* no more calls are read from a client with this much unsent */

struct client {
	int fd;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	uint64_t in_deadline_ms;    /* a started frame must be complete by then; 0: none started */
	uint64_t out_deadline_ms;   /* unsent bytes must move by then; 0: none unsent */
	bool closing;               /* send what is queued, then hang up */
	bool parked;                /* a slow call of its own is running */
	uint64_t serial;            /* the connection's number (from 1); 0: a free slot or a scratch */
	struct virt_conn conn;
};

/* A slow call being answered: the slot thread's until it ended, then the server thread's. */
struct slow_call {
	struct virt_rpc *v;
	const struct virt_proc *p;
	virNetMessageHeader h;
	void *args;                 /* decoded, the slot thread's */
	struct client reply;        /* scratch: the connection's state copied in, the reply queued out */
	struct client *client;
	uint64_t serial;            /* client's, when the call was read */
	bool ok;
};

struct event_rec {
	char name[VMTAB_NAME_MAX];
	uint8_t uuid[16];
	int id, event, detail;
};

struct virt_rpc {
	struct vmtab *t;
	int fd, wake_fd, sub;
	pthread_t thread;
	bool running;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_mutex_t lock;        /* stop and the event queue; the clients are the server thread's */
	bool stop;
	struct event_rec queue[EVENT_QUEUE];
	size_t q_head, q_len;
	uint64_t q_lost;
	struct client clients[VIRT_MAX_CLIENTS];
	uint64_t next_serial;
	struct worker_slots workers;
	struct worker_slot worker[VIRT_SLOW_MAX];
	struct slow_call slow[VIRT_SLOW_MAX];   /* indexed like worker[] */
};

/* ---- sending ---- */

static void client_drop(struct client *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	*c = (struct client){ .fd = -1 };
}

/* Room for size more bytes in the client's output; false when it cannot have it. */
static bool out_reserve(struct client *c, size_t size)
{
	if (c->out_len + size > VIRT_OUT_MAX)
		return false;
	if (c->out_len + size > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + size)
			cap *= 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			return false;
		c->out = p;
		c->out_cap = cap;
	}
	return true;
}

/* Queues frames already encoded (a slow call's reply); false: drop the client. */
static bool queue_bytes(struct client *c, const uint8_t *bytes, size_t len)
{
	if (!out_reserve(c, len))
		return false;
	if (len) {
		memcpy(c->out + c->out_len, bytes, len);
		if (c->out_len == c->out_off)
			c->out_deadline_ms = time_mono_ms() + VIRT_STALL_MS;
		c->out_len += len;
	}
	return true;
}

/* Queues one frame; false when it cannot (the client is then to be dropped). */
static bool queue_frame(struct client *c, const virNetMessageHeader *h, xdrproc_t body, void *obj)
{
	size_t size = LEN_BYTES + HEADER_BYTES + xdr_sizeof(body, obj);
	if (size > VIRT_FRAME_MAX || !out_reserve(c, size))
		return false;
	XDR x;
	u_int len = (u_int)size;
	virNetMessageHeader hh = *h;
	xdrmem_create(&x, (char *)c->out + c->out_len, (u_int)size, XDR_ENCODE);
	bool ok = xdr_u_int(&x, &len) && xdr_virNetMessageHeader(&x, &hh) && body(&x, obj);
	xdr_destroy(&x);
	if (!ok)
		return false;
	if (c->out_len == c->out_off)
		c->out_deadline_ms = time_mono_ms() + VIRT_STALL_MS;
	c->out_len += size;
	return true;
}

/* A reply with status 1: libvirt's remote_error, shown by the client as "error: MESSAGE". */
static bool queue_error(struct client *c, const virNetMessageHeader *call, int code, const char *msg)
{
	virNetMessageHeader h = *call;
	char *m = (char *)msg;
	remote_error e = { .code = code, .domain = VIR_FROM_REMOTE, .message = &m, .level = VIR_ERR_ERROR };
	h.type = VIR_NET_REPLY;
	h.status = VIR_NET_ERROR;
	return queue_frame(c, &h, (xdrproc_t)xdr_remote_error, &e);
}

/* ---- calls ---- */

/* Runs procedure p with its decoded args (taken) and queues its reply. false: drop the client. */
static bool call_answer(struct client *c, const struct virt_proc *p, const virNetMessageHeader *h, void *args)
{
	char err[512] = "";
	void *ret = calloc(1, p->ret_size + 1);
	bool ok;
	if (!ret) {
		ok = queue_error(c, h, VIR_ERR_NO_MEMORY, "out of memory");
	} else {
		int code = p->fn(&c->conn, args, ret, err, sizeof(err));
		if (code) {
			ok = queue_error(c, h, code, err[0] ? err : "operation failed");
		} else {
			virNetMessageHeader r = *h;
			r.type = VIR_NET_REPLY;
			r.status = VIR_NET_OK;
			ok = queue_frame(c, &r, p->ret_xdr, ret);
			if (!ok && c->out_len + VIRT_FRAME_MAX / 2 < VIRT_OUT_MAX)
				ok = queue_error(c, h, VIR_ERR_RPC, "the answer exceeds the daemon's frame cap");
		}
		xdr_free(p->ret_xdr, ret);
	}
	xdr_free(p->args_xdr, args);
	free(args);
	free(ret);
	return ok;
}

static void slow_run(void *arg)
{
	struct slow_call *s = arg;
	s->ok = call_answer(&s->reply, s->p, &s->h, s->args);
}

/* Starts slow procedure p for client c with its decoded args (taken): c is parked, or the call is
 * refused as busy. false: drop the client. */
static bool slow_start(struct virt_rpc *v, struct client *c, const struct virt_proc *p, const virNetMessageHeader *h,
		       void *args)
{
	int slot = worker_slots_free(&v->workers);
	if (slot < 0) {
		char msg[128];
		xdr_free(p->args_xdr, args);
		free(args);
		snprintf(msg, sizeof(msg), "ftvmd is busy: %d slow calls are running already, try again", VIRT_SLOW_MAX);
		DIAG_RATELIMITED(DIAG_WARN, "libvirt client: %s", msg);
		return queue_error(c, h, VIR_ERR_RESOURCE_BUSY, msg);
	}
	struct slow_call *s = &v->slow[slot];
	*s = (struct slow_call){ .v = v, .p = p, .h = *h, .args = args, .client = c, .serial = c->serial,
				 .reply = { .fd = -1, .conn = c->conn } };
	int ret = worker_slots_start(&v->workers, (size_t)slot, slow_run, s);
	if (ret) {
		char msg[128];
		xdr_free(p->args_xdr, args);
		free(args);
		snprintf(msg, sizeof(msg), "ftvmd cannot run the call now: %s", strerror(ret));
		return queue_error(c, h, VIR_ERR_RESOURCE_BUSY, msg);
	}
	c->parked = true;
	return true;
}

/* The server thread: an ended slow call's reply to its client, if that is still connected. */
static void slow_finish(void *owner, size_t slot)
{
	struct virt_rpc *v = owner;
	struct slow_call *s = &v->slow[slot];
	struct client *c = s->client;

	if (c->fd >= 0 && c->serial == s->serial) {
		c->parked = false;   /* the reply goes out with the next poll */
		if (!s->ok || !queue_bytes(c, s->reply.out, s->reply.out_len))
			client_drop(c);
	}
	free(s->reply.out);
}

/* After the server thread ended: the reply has no client to go to. */
static void slow_discard(void *owner, size_t slot)
{
	struct virt_rpc *v = owner;
	free(v->slow[slot].reply.out);
}

static bool handle_call(struct virt_rpc *v, struct client *c, const virNetMessageHeader *h, XDR *x)
{
	char err[512] = "";
	if (h->prog != REMOTE_PROGRAM || h->vers != REMOTE_PROTOCOL_VERSION) {
		snprintf(err, sizeof(err), "this function is not supported by ftvmd: program 0x%x version %u", h->prog,
			 h->vers);
		return queue_error(c, h, VIR_ERR_NO_SUPPORT, err);
	}
	const struct virt_proc *p = virt_proc_find(h->proc);
	if (!p) {
		snprintf(err, sizeof(err), "this function is not supported by ftvmd (remote procedure %d)", h->proc);
		return queue_error(c, h, VIR_ERR_NO_SUPPORT, err);
	}
	if (!p->before_open && !c->conn.open)
		return queue_error(c, h, VIR_ERR_INTERNAL_ERROR, "the connection is not open (CONNECT_OPEN first)");

	void *args = calloc(1, p->args_size + 1);
	if (!args)
		return queue_error(c, h, VIR_ERR_NO_MEMORY, "out of memory");
	if (!p->args_xdr(x, args)) {
		xdr_free(p->args_xdr, args);
		free(args);
		snprintf(err, sizeof(err), "cannot decode the arguments of remote procedure %d", h->proc);
		return queue_error(c, h, VIR_ERR_RPC, err);
	}
	return p->slow ? slow_start(v, c, p, h, args) : call_answer(c, p, h, args);
}

/* One complete frame in c->in; false: drop the client. */
static bool handle_frame(struct virt_rpc *v, struct client *c)
{
	XDR x;
	virNetMessageHeader h;
	bool ok = true;
	xdrmem_create(&x, (char *)c->in + LEN_BYTES, (u_int)(c->in_len - LEN_BYTES), XDR_DECODE);
	if (!xdr_virNetMessageHeader(&x, &h)) {
		ok = false;
	} else if (h.prog == KEEPALIVE_PROGRAM) {
		if (h.proc == KEEPALIVE_PROC_PING && h.type == VIR_NET_MESSAGE) {
			virNetMessageHeader pong = { .prog = KEEPALIVE_PROGRAM, .vers = KEEPALIVE_PROTOCOL_VERSION,
						     .proc = KEEPALIVE_PROC_PONG, .type = VIR_NET_MESSAGE,
						     .status = VIR_NET_OK };
			ok = queue_frame(c, &pong, (xdrproc_t)virt_xdr_none, NULL);
		}
	} else if (h.type == VIR_NET_CALL) {
		ok = handle_call(v, c, &h, &x);
	} else {
		diag_debug("libvirt client: ignoring a frame of type %d", h.type);
	}
	xdr_destroy(&x);
	return ok;
}

/* Reads what the client sent: at most the rest of one frame per call. false: drop it. */
static bool client_read(struct virt_rpc *v, struct client *c)
{
	size_t need = LEN_BYTES;
	if (c->in_len >= LEN_BYTES)
		need = ((size_t)c->in[0] << 24) | ((size_t)c->in[1] << 16) | ((size_t)c->in[2] << 8) | c->in[3];
	if (need > VIRT_FRAME_MAX)
		need = LEN_BYTES + HEADER_BYTES;   /* only the header of an oversized frame, to answer it */
	if (c->in_cap < need) {
		uint8_t *p = realloc(c->in, need);
		if (!p)
			return false;
		c->in = p;
		c->in_cap = need;
	}
	ssize_t n = read(c->fd, c->in + c->in_len, need - c->in_len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n < 0)
		return true;
	if (c->in_len == 0)
		c->in_deadline_ms = time_mono_ms() + VIRT_STALL_MS;
	c->in_len += (size_t)n;
	if (c->in_len < need)
		return true;
	if (need == LEN_BYTES) {
		size_t len = ((size_t)c->in[0] << 24) | ((size_t)c->in[1] << 16) | ((size_t)c->in[2] << 8) | c->in[3];
		if (len < LEN_BYTES + HEADER_BYTES) {
			DIAG_RATELIMITED(DIAG_WARN, "libvirt client sent a frame of %zu bytes (less than a header): hanging up", len);
			return false;
		}
		return true;
	}
	size_t len = ((size_t)c->in[0] << 24) | ((size_t)c->in[1] << 16) | ((size_t)c->in[2] << 8) | c->in[3];
	bool ok;
	if (len > VIRT_FRAME_MAX) {
		XDR x;
		virNetMessageHeader h;
		char msg[160];
		xdrmem_create(&x, (char *)c->in + LEN_BYTES, HEADER_BYTES, XDR_DECODE);
		ok = xdr_virNetMessageHeader(&x, &h);
		xdr_destroy(&x);
		snprintf(msg, sizeof(msg), "a frame of %zu bytes exceeds ftvmd's cap of %u bytes", len, VIRT_FRAME_MAX);
		DIAG_RATELIMITED(DIAG_WARN, "libvirt client: %s: hanging up", msg);
		if (ok)
			queue_error(c, &h, VIR_ERR_RPC, msg);
		c->closing = true;   /* the rest of the frame is never read */
		ok = true;
	} else {
		ok = handle_frame(v, c);
	}
	c->in_len = 0;
	c->in_deadline_ms = 0;
	return ok;
}

static bool client_flush(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)n;
		c->out_deadline_ms = time_mono_ms() + VIRT_STALL_MS;
	}
	c->out_off = c->out_len = 0;
	c->out_deadline_ms = 0;
	return !c->closing;
}

/* ---- events ---- */

/* On a table thread, under its lock: queue and wake, nothing more. */
static void on_event(const struct vmtab_info *vm, enum vmtab_event ev, enum vmtab_reason detail, void *opaque)
{
	struct virt_rpc *v = opaque;
	uint64_t one = 1;
	pthread_mutex_lock(&v->lock);
	if (v->q_len == EVENT_QUEUE) {
		v->q_lost++;
	} else {
		struct event_rec *e = &v->queue[(v->q_head + v->q_len++) % EVENT_QUEUE];
		snprintf(e->name, sizeof(e->name), "%s", vm->name);
		memcpy(e->uuid, vm->uuid, sizeof(e->uuid));
		e->id = vm->id;
		virt_proc_lifecycle(ev, detail, &e->event, &e->detail);
	}
	pthread_mutex_unlock(&v->lock);
	if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		diag_warn("cannot wake the libvirt server: %s", strerror(errno));
}

static void send_event(struct virt_rpc *v, const struct event_rec *e)
{
	virNetMessageHeader h = { .prog = REMOTE_PROGRAM, .vers = REMOTE_PROTOCOL_VERSION,
				  .proc = REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE, .type = VIR_NET_MESSAGE,
				  .status = VIR_NET_OK };
	remote_domain_event_lifecycle_msg m = { .dom = { .name = (char *)e->name, .id = e->id },
						.event = e->event, .detail = e->detail };
	memcpy(m.dom.uuid, e->uuid, sizeof(m.dom.uuid));
	for (size_t i = 0; i < VIRT_MAX_CLIENTS; i++) {
		struct client *c = &v->clients[i];
		if (c->fd >= 0 && c->conn.open && (c->conn.events & (1ull << VIR_DOMAIN_EVENT_ID_LIFECYCLE)) &&
		    !c->closing && !queue_frame(c, &h, (xdrproc_t)xdr_remote_domain_event_lifecycle_msg, &m)) {
			DIAG_RATELIMITED(DIAG_WARN, "libvirt client does not read its events: hanging up");
			client_drop(c);
		}
	}
}

static void send_events(struct virt_rpc *v)
{
	uint64_t n;
	if (read(v->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		diag_warn("libvirt server wake-up: %s", strerror(errno));
	for (;;) {
		struct event_rec e;
		pthread_mutex_lock(&v->lock);
		bool have = v->q_len > 0;
		if (have) {
			e = v->queue[v->q_head];
			v->q_head = (v->q_head + 1) % EVENT_QUEUE;
			v->q_len--;
		}
		pthread_mutex_unlock(&v->lock);
		if (!have)
			return;
		send_event(v, &e);
	}
}

/* ---- the server thread ---- */

/* Root or the daemon's own user: the socket's mode says the same, this holds even if it is opened up. */
static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == getuid();
}

static void accept_clients(struct virt_rpc *v)
{
	for (;;) {
		int fd = accept4(v->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (!peer_allowed(fd)) {
			DIAG_RATELIMITED(DIAG_WARN, "libvirt socket: refusing a client of another user");
			close(fd);
			continue;
		}
		struct client *c = NULL;
		for (size_t i = 0; i < VIRT_MAX_CLIENTS && !c; i++)
			if (v->clients[i].fd < 0)
				c = &v->clients[i];
		if (!c) {
			DIAG_RATELIMITED(DIAG_WARN, "libvirt socket: %d clients connected, refusing another", VIRT_MAX_CLIENTS);
			close(fd);
			continue;
		}
		*c = (struct client){ .fd = fd, .serial = ++v->next_serial, .conn = { .t = v->t } };
	}
}

static void *server_main(void *arg)
{
	struct virt_rpc *v = arg;
	struct pollfd fds[2 + VIRT_MAX_CLIENTS];
	struct client *polled[VIRT_MAX_CLIENTS];

	for (;;) {
		pthread_mutex_lock(&v->lock);
		bool stop = v->stop;
		pthread_mutex_unlock(&v->lock);
		if (stop)
			break;
		uint64_t now = time_mono_ms(), next = UINT64_MAX;
		size_t n = 2;
		fds[0] = (struct pollfd){ .fd = v->wake_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = v->fd, .events = POLLIN };
		for (size_t i = 0; i < VIRT_MAX_CLIENTS; i++) {
			struct client *c = &v->clients[i];
			if (c->fd < 0)
				continue;
			if ((c->in_deadline_ms && now >= c->in_deadline_ms) || (c->out_deadline_ms && now >= c->out_deadline_ms)) {
				DIAG_RATELIMITED(DIAG_WARN, "libvirt client stalled for %d ms: hanging up", VIRT_STALL_MS);
				client_drop(c);
				continue;
			}
			if (c->in_deadline_ms)
				next = c->in_deadline_ms < next ? c->in_deadline_ms : next;
			if (c->out_deadline_ms)
				next = c->out_deadline_ms < next ? c->out_deadline_ms : next;
			short events = 0;
			if (!c->closing && !c->parked && c->out_len - c->out_off < READ_PAUSE_OUT)
				events |= POLLIN;
			if (c->out_len > c->out_off)
				events |= POLLOUT;
			polled[n - 2] = c;
			fds[n++] = (struct pollfd){ .fd = c->fd, .events = events };
		}
		int timeout = next == UINT64_MAX ? -1 : (int)(next - now) + 1;
		if (poll(fds, n, timeout) < 0 && errno != EINTR) {
			diag_error("libvirt server: poll: %s", strerror(errno));
			break;
		}
		for (size_t i = 2; i < n; i++) {
			struct client *c = polled[i - 2];
			short ev = fds[i].revents;
			bool ok = true;
			if (!ev)
				continue;
			if ((ev & (POLLIN | POLLHUP | POLLERR)) && (fds[i].events & POLLIN))
				ok = client_read(v, c);
			else if (ev & (POLLHUP | POLLERR) && !(ev & POLLOUT))
				ok = false;
			if (ok && c->out_len > c->out_off)
				ok = client_flush(c);
			else if (ok && c->closing)
				ok = false;
			if (!ok)
				client_drop(c);
		}
		if (fds[0].revents) {
			send_events(v);
			worker_slots_collect(&v->workers, slow_finish, v);
		}
		if (fds[1].revents)
			accept_clients(v);
	}
	for (size_t i = 0; i < VIRT_MAX_CLIENTS; i++)
		if (v->clients[i].fd >= 0)
			client_drop(&v->clients[i]);
	return NULL;
}

/* Owner-only from the start: the umask covers the moment between bind() and chmod(). */
static int listen_owner_only(struct virt_rpc *v, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "libvirt socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	snprintf(v->path, sizeof(v->path), "%s", path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);   /* a stale socket of an earlier daemon */
	v->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177);
	int ret = v->fd < 0 || bind(v->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	umask(old);
	if (!ret && (chmod(path, 0600) < 0 || listen(v->fd, 128) < 0))
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "cannot listen on libvirt socket %s: %s", path, strerror(-ret));
		return ret;
	}
	return 0;
}

int virt_rpc_start(struct vmtab *t, const char *path, struct virt_rpc **out, char *err, size_t errlen)
{
	struct virt_rpc *v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v->t = t;
	v->fd = v->wake_fd = -1;
	v->sub = -1;
	pthread_mutex_init(&v->lock, NULL);
	for (size_t i = 0; i < VIRT_MAX_CLIENTS; i++)
		v->clients[i].fd = -1;
	int ret = listen_owner_only(v, path, err, errlen);
	if (!ret && (v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
	}
	if (!ret)
		worker_slots_init(&v->workers, v->worker, VIRT_SLOW_MAX, v->wake_fd);
	if (!ret && (v->sub = vmtab_subscribe(t, on_event, v)) < 0) {
		ret = v->sub;
		snprintf(err, errlen, "cannot subscribe to the VM table: %s", strerror(-ret));
	}
	if (!ret && (ret = -pthread_create(&v->thread, NULL, server_main, v)) != 0)
		snprintf(err, errlen, "cannot start the libvirt server thread: %s", strerror(-ret));
	v->running = ret == 0;
	if (ret) {
		virt_rpc_stop(v);
		return ret;
	}
	*out = v;
	return 0;
}

void virt_rpc_stop(struct virt_rpc *v)
{
	if (!v)
		return;
	if (v->sub > 0)
		vmtab_unsubscribe(v->t, v->sub);
	if (v->running) {
		uint64_t one = 1;
		pthread_mutex_lock(&v->lock);
		v->stop = true;
		pthread_mutex_unlock(&v->lock);
		if (write(v->wake_fd, &one, sizeof(one)) < 0)
			diag_warn("cannot wake the libvirt server: %s", strerror(errno));
		pthread_join(v->thread, NULL);
	}
	if (v->workers.slot) {   /* each asks a VM with a bounded wait */
		worker_slots_join_all(&v->workers, slow_discard, v);
		worker_slots_destroy(&v->workers);
	}
	if (v->fd >= 0) {
		close(v->fd);
		unlink(v->path);
	}
	if (v->wake_fd >= 0)
		close(v->wake_fd);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
