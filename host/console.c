/*
 * console.c — the guest's serial console on the host (see console.h).
 *
 * Threads: the output buffer is filled by whoever performs the guest's console output — the vCPU
 * thread, or on an FT primary the Output Rule's releaser — and flushed by the vCPU thread, so it
 * is kept under out_mu. The reader thread owns the escape state and only posts into the input
 * queue. They share two atomics (input open, quit requested). The reader blocks in poll() on the
 * input and on a wake pipe that console_close() writes to.
 */
#define DIAG_MODULE "console"
#include "host/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "util/diag.h"
#include "vm/event.h"

#define CONSOLE_BUFFER 4096
#define CONSOLE_READ_CHUNK 256
#define CTRL_A 0x01
#define QUIT_KEY 'x'

struct console {
	int in_fd, out_fd;
	struct input_queue *queue;

	pthread_mutex_t out_mu;      /* guards out, outlen, out_closed */
	uint8_t out[CONSOLE_BUFFER];
	size_t outlen;
	bool out_closed;             /* writing failed: output is discarded from then on */

	pthread_t reader;
	bool reader_started;
	int wake_pipe[2];
	bool ctrl_a;                 /* reader: Ctrl-A seen, waiting for the command key */
	atomic_bool input_open;
	atomic_bool quit;
	bool raw;
	struct termios saved_termios;
};

static void flush_locked(struct console *c)
{
	size_t done = 0;
	while (done < c->outlen && !c->out_closed) {
		ssize_t n = write(c->out_fd, c->out + done, c->outlen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->out_closed = true;
			diag_warn("console output closed (%s): the guest runs on, its console output is discarded",
				 n < 0 ? strerror(errno) : "no progress");
			break;
		}
		done += (size_t)n;
	}
	c->outlen = 0;
}

void console_flush(struct console *c)
{
	pthread_mutex_lock(&c->out_mu);
	flush_locked(c);
	pthread_mutex_unlock(&c->out_mu);
}

void console_write(struct console *c, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&c->out_mu);
	while (len) {
		size_t n = MIN(len, sizeof(c->out) - c->outlen);
		memcpy(c->out + c->outlen, buf, n);
		c->outlen += n;
		buf += n;
		len -= n;
		if (c->outlen == sizeof(c->out))
			flush_locked(c);
	}
	pthread_mutex_unlock(&c->out_mu);
}

bool console_has_output(struct console *c)
{
	pthread_mutex_lock(&c->out_mu);
	bool has = c->outlen != 0;
	pthread_mutex_unlock(&c->out_mu);
	return has;
}

bool console_input_open(const struct console *c)
{
	return atomic_load(&c->input_open);
}

bool console_quit_requested(const struct console *c)
{
	return atomic_load(&c->quit);
}

/* Filters the QEMU-style escape (Ctrl-A x quits, Ctrl-A Ctrl-A is a literal Ctrl-A). */
static size_t filter_escapes(struct console *c, const uint8_t *in, size_t n, uint8_t *out)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (c->ctrl_a) {
			c->ctrl_a = false;
			if (in[i] == QUIT_KEY) {
				atomic_store(&c->quit, true);
				return m;
			}
			if (in[i] != CTRL_A)
				out[m++] = CTRL_A;
			out[m++] = in[i];
		} else if (in[i] == CTRL_A) {
			c->ctrl_a = true;
		} else {
			out[m++] = in[i];
		}
	}
	return m;
}

static void *reader_main(void *arg)
{
	struct console *c = arg;
	uint8_t buf[CONSOLE_READ_CHUNK], filtered[2 * CONSOLE_READ_CHUNK];
	struct pollfd fds[2] = { { .fd = c->in_fd, .events = POLLIN }, { .fd = c->wake_pipe[0], .events = POLLIN } };
	while (!atomic_load(&c->quit)) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents)
			break;  /* console_close() */
		if (!fds[0].revents)
			continue;
		ssize_t n = read(c->in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;  /* EOF: no more console input */
		size_t m = filter_escapes(c, buf, (size_t)n, filtered);
		if (m) {
			struct vm_event ev = { .kind = VM_EV_CONSOLE_IN, .len = (uint32_t)m, .data = filtered };
			input_queue_post(c->queue, &ev);
		}
	}
	atomic_store(&c->input_open, false);
	input_queue_wake(c->queue);
	return NULL;
}

static void enter_raw_mode(struct console *c)
{
	if (!isatty(c->in_fd) || tcgetattr(c->in_fd, &c->saved_termios) != 0)
		return;
	struct termios t = c->saved_termios;
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag = (t.c_cflag & ~(tcflag_t)(CSIZE | PARENB)) | CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	/* OPOST stays on, as QEMU keeps it, so the host terminal still renders output normally. */
	if (tcsetattr(c->in_fd, TCSANOW, &t) == 0)
		c->raw = true;
}

int console_open(int in_fd, int out_fd, struct input_queue *queue, struct console **out, char *err, size_t errlen)
{
	int ret = 0;
	*out = NULL;
	struct console *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->queue = queue;
	c->wake_pipe[0] = c->wake_pipe[1] = -1;
	pthread_mutex_init(&c->out_mu, NULL);
	if (in_fd >= 0) {
		if (pipe2(c->wake_pipe, O_CLOEXEC) != 0) {
			ret = -errno;
			snprintf(err, errlen, "console: %s", strerror(errno));
			goto out;
		}
		atomic_store(&c->input_open, true);
		enter_raw_mode(c);
		ret = -pthread_create(&c->reader, NULL, reader_main, c);
		if (ret) {
			atomic_store(&c->input_open, false);
			snprintf(err, errlen, "console: cannot start the reader thread: %s", strerror(-ret));
			goto out;
		}
		c->reader_started = true;
	}
	*out = c;
	c = NULL;
out:
	console_close(c);
	return ret;
}

void console_close(struct console *c)
{
	if (!c)
		return;
	console_flush(c);
	if (c->reader_started) {
		ssize_t n = write(c->wake_pipe[1], "q", 1);
		(void)n;
		pthread_join(c->reader, NULL);
	}
	if (c->raw)
		tcsetattr(c->in_fd, TCSANOW, &c->saved_termios);
	for (int i = 0; i < 2; i++)
		if (c->wake_pipe[i] >= 0)
			close(c->wake_pipe[i]);
	pthread_mutex_destroy(&c->out_mu);
	free(c);
}
