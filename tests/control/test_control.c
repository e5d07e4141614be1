/*
 * test_control.c — the control server (common/control.c) in-process, against a fake node status:
 * every error answer of docs/control.md and whether it keeps the connection; a client that closes
 * before its answer raises no SIGPIPE (this process keeps the default disposition); the request
 * deadline; control_stop() returning at once with blocked clients attached; the socket's mode under
 * umask 000, with and without a control group; a node that stops removes only its own socket;
 * and --control-group is a group's name or, strictly, its number (no sign, spaces, junk, overflow).
 * Commands besides status: a quick one refusing bad arguments, and jobs — status answering at
 * once while a job runs, a second job refused, a job's outcome and result, a failed job, and
 * control_stop() cancelling a running job.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/control.h"

static char dir[64], path[96];

static int setup(void **state)
{
	strcpy(dir, "/tmp/ftvm-ctl-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static void fake_status(void *ctx, struct ft_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->role, sizeof(st->role), "%s", (const char *)ctx);
	st->state = FT_STATE_PROTECTED;
	st->icount = 1234;
}

static struct control_server *start(bool group)
{
	struct control_config cfg = { .path = path, .has_group = group, .group = getegid(), .status = fake_status,
				      .ctx = "tester" };
	struct control_server *srv = NULL;
	char err[256];
	int ret = control_start(&cfg, &srv, err, sizeof(err));
	if (ret < 0)
		fail_msg("control_start: %s", err);
	return srv;
}

/* ---- commands of a fake node ---- */

static atomic_int release_job;   /* 1: the running job finishes; 2: it fails */

static int echo_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	json_t *n = json_object_get(req, "n");
	if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > 10) {
		snprintf(err, errlen, "echo: \"n\" must be an integer 0..10");
		return -EINVAL;
	}
	json_object_set_new(answer, "n", json_integer(json_integer_value(n)));
	json_object_set_new(answer, "uid", json_integer(control_peer_uid()));
	return 0;
}

static int work_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	int *arg = malloc(sizeof(*arg));
	if (!arg)
		return -ENOMEM;
	*arg = 7;
	*job_arg = arg;
	return 0;
}

/* Works until released (or cancelled), reporting a phase and progress. */
static int work_job(void *ctx, void *job_arg, struct control_job *job, char *err, size_t errlen)
{
	int seven = *(int *)job_arg;
	free(job_arg);
	control_job_phase(job, "working");
	control_job_progress(job, 4096, 8192);
	while (!atomic_load(&release_job) && !control_job_cancelled(job))
		usleep(1000);
	if (control_job_cancelled(job))
		return -ECANCELED;
	if (atomic_load(&release_job) == 2) {
		snprintf(err, errlen, "the work failed on purpose");
		return -EIO;
	}
	control_job_result(job, "seven", json_integer(seven));
	return 0;
}

static atomic_int release_slow;   /* 1: the slow handlers answer */

/* A slow command: answers once released (or after 20 s), on a thread of the server's. */
static int wait_handler(void *ctx, const json_t *req, json_t *answer, void **job_arg, char *err, size_t errlen)
{
	for (int i = 0; i < 20000 && !atomic_load(&release_slow); i++)
		usleep(1000);
	json_object_set_new(answer, "waited", json_true());
	json_object_set_new(answer, "uid", json_integer(control_peer_uid()));
	return 0;
}

static const struct control_command fake_commands[] = {
	{ .name = "echo", .handler = echo_handler },
	{ .name = "work", .handler = work_handler, .job = work_job, .job_arg_free = free },
	{ .name = "wait", .handler = wait_handler, .slow = true },
};

static struct control_server *start_with_commands(void)
{
	struct control_config cfg = { .path = path, .status = fake_status, .ctx = "tester",
				      .commands = fake_commands, .ncommands = 3 };
	struct control_server *srv = NULL;
	char err[256];
	if (control_start(&cfg, &srv, err, sizeof(err)) < 0)
		fail_msg("control_start: %s", err);
	return srv;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int client(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	return fd;
}

static void say(int fd, const char *text)
{
	assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* One answer line into buf (without the newline): its length, 0 at end of stream, -1 on timeout. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t used = 0;
	while (used + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		ssize_t n = recv(fd, buf + used, 1, 0);
		if (n <= 0)
			return used ? (int)used : 0;
		if (buf[used] == '\n')
			break;
		used += (size_t)n;
	}
	buf[used] = 0;
	return (int)used;
}

static void expect_answer(int fd, const char *request, const char *want)
{
	char line[2048];
	say(fd, request);
	assert_true(read_line(fd, line, sizeof(line), 2000) > 0);
	if (!strstr(line, want))
		fail_msg("request %s answered %s, want %s", request, line, want);
}

static void test_errors_keep_the_connection(void **state)
{
	struct control_server *srv = start(false);
	int fd = client();
	char line[2048];

	expect_answer(fd, "nonsense\n", "{\"ok\":false,\"error\":\"request is not a JSON object: ");
	expect_answer(fd, "[1]\n", "\"error\":\"request is not a JSON object: wrong type\"");
	expect_answer(fd, "{}\n", "\"error\":\"request has no \\\"cmd\\\" string\"");
	expect_answer(fd, "{\"cmd\":\"reboot\"}\n", "\"error\":\"unknown command \\\"reboot\\\"\"");
	expect_answer(fd, "{\"cmd\":\"status\"}\n", "{\"ok\":true,\"role\":\"tester\",\"state\":\"protected\"");
	/* Two requests in one write: two answers, in order. */
	say(fd, "{\"cmd\":\"status\"}\n{\"cmd\":\"what\"}\n");
	assert_true(read_line(fd, line, sizeof(line), 2000) > 0);
	assert_non_null(strstr(line, "\"ok\":true"));
	assert_true(read_line(fd, line, sizeof(line), 2000) > 0);
	if (!strstr(line, "unknown command"))
		fail_msg("second answer: %s", line);

	/* A request line past the limit: one error line, then the connection is closed. */
	char big[CONTROL_MAX_REQUEST + 100];
	memset(big, 'x', sizeof(big));
	assert_int_equal(send(fd, big, sizeof(big), MSG_NOSIGNAL), (ssize_t)sizeof(big));
	assert_true(read_line(fd, line, sizeof(line), 2000) > 0);
	assert_non_null(strstr(line, "request too long (limit 4096 bytes)"));
	assert_int_equal(read_line(fd, line, sizeof(line), 2000), 0);
	close(fd);
	control_stop(srv);
}

static void test_client_gone_before_its_answer(void **state)
{
	struct control_server *srv = start(false);
	for (int i = 0; i < 50; i++) {
		int fd = client();
		say(fd, "{\"cmd\":\"status\"}\n{\"cmd\":\"status\"}\n");
		close(fd);
	}
	/* This process would have died of SIGPIPE; it also still gets answers. */
	char err[256];
	char *answer = control_request(path, "status", err, sizeof(err));
	assert_non_null(answer);
	assert_non_null(strstr(answer, "\"ok\":true"));
	free(answer);
	control_stop(srv);
}

static void test_request_deadline(void **state)
{
	struct control_server *srv = start(false);
	char line[2048];
	int silent = client(), slow = client();
	double t0 = now_s();

	/* A complete request in time renews the deadline; a partial one does not. */
	usleep(CONTROL_REQUEST_TIMEOUT_MS * 1000 / 2);
	expect_answer(slow, "{\"cmd\":\"status\"}\n", "\"ok\":true");
	say(slow, "{\"cmd\":");
	assert_int_equal(read_line(silent, line, sizeof(line), CONTROL_REQUEST_TIMEOUT_MS + 1000), 0);
	double closed = now_s() - t0;
	assert_true(closed >= CONTROL_REQUEST_TIMEOUT_MS / 1000.0 - 0.05);
	assert_true(closed < CONTROL_REQUEST_TIMEOUT_MS / 1000.0 + 0.5);
	assert_int_equal(read_line(slow, line, sizeof(line), CONTROL_REQUEST_TIMEOUT_MS + 1000), 0);
	double slow_closed = now_s() - t0;
	assert_true(slow_closed >= 1.5 * CONTROL_REQUEST_TIMEOUT_MS / 1000.0 - 0.05);
	close(silent);
	close(slow);
	control_stop(srv);
}

static void test_stop_is_prompt(void **state)
{
	struct control_server *srv = start(false);
	int fds[CONTROL_MAX_CLIENTS + 4];
	static const char req[] = "{\"cmd\":\"status\"}\n";

	/* Every slot taken: pipeliners that never read (their answers fill the socket), a dripper, and
	 * silent ones; then a few more connections waiting to be refused. */
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		fds[i] = client();
		if (i < 4)
			for (int k = 0; k < 2000 && send(fds[i], req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) > 0; k++)
				;
		else if (i == 4)
			say(fds[i], "{");
	}
	usleep(200 * 1000);
	double t0 = now_s();
	control_stop(srv);
	double took = now_s() - t0;
	assert_true(took < 0.1);
	struct stat st;
	assert_int_equal(lstat(path, &st), -1);   /* the socket is gone with its server */
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close(fds[i]);
}

static void test_mode_whatever_the_umask(void **state)
{
	struct stat st;
	mode_t old = umask(0);
	struct control_server *srv = start(false);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	control_stop(srv);

	old = umask(0);
	srv = start(true);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, getegid());
	control_stop(srv);

	/* No private directory is left behind next to the socket. */
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
}

static void test_stop_removes_only_its_own_socket(void **state)
{
	struct control_server *a = start(false);
	struct control_server *b = start(false);   /* replaces a's socket file, as for a stale one */
	control_stop(a);
	char err[256];
	char *answer = control_request(path, "status", err, sizeof(err));
	assert_non_null(answer);
	free(answer);
	control_stop(b);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_quick_command_checks_its_arguments(void **state)
{
	struct control_server *srv = start_with_commands();
	int fd = client();
	char want[64];
	snprintf(want, sizeof(want), "{\"ok\":true,\"n\":3,\"uid\":%u}", (unsigned)geteuid());
	expect_answer(fd, "{\"cmd\":\"echo\",\"n\":3}\n", want);   /* the handler knows its client */
	expect_answer(fd, "{\"cmd\":\"echo\"}\n", "{\"ok\":false,\"error\":\"echo: \\\"n\\\" must be an integer 0..10\"}");
	expect_answer(fd, "{\"cmd\":\"echo\",\"n\":\"3\"}\n", "must be an integer");
	expect_answer(fd, "{\"cmd\":\"echo\",\"n\":11}\n", "must be an integer");
	expect_answer(fd, "{\"cmd\":\"ech\"}\n", "unknown command \\\"ech\\\"");
	expect_answer(fd, "{\"cmd\":\"status\"}\n", "\"ok\":true");   /* no job yet: no "job" object */
	char line[2048];
	say(fd, "{\"cmd\":\"status\"}\n");
	assert_true(read_line(fd, line, sizeof(line), 2000) > 0);
	assert_null(strstr(line, "\"job\""));
	close(fd);
	control_stop(srv);
}

/* Asks for status until the job no longer runs; the last answer in line. */
static void status_after_job(int fd, char *line, size_t len)
{
	for (int i = 0; i < 200; i++) {
		say(fd, "{\"cmd\":\"status\"}\n");
		assert_true(read_line(fd, line, len, 2000) > 0);
		if (!strstr(line, "\"state\":\"running\""))
			return;
		usleep(10 * 1000);
	}
}

static void test_jobs_one_at_a_time(void **state)
{
	struct control_server *srv = start_with_commands();
	int fd = client(), other = client();
	char line[2048];

	atomic_store(&release_job, 0);
	expect_answer(fd, "{\"cmd\":\"work\"}\n", "{\"ok\":true,\"job_id\":1}");
	/* While it runs: status answers at once on any connection and shows the job's progress. */
	for (int i = 0; i < 20; i++) {
		double t0 = now_s();
		say(other, "{\"cmd\":\"status\"}\n");
		assert_true(read_line(other, line, sizeof(line), 2000) > 0);
		assert_true(now_s() - t0 < 0.5);
		assert_non_null(strstr(line, "\"job\":{\"id\":1,\"kind\":\"work\",\"state\":\"running\""));
		if (strstr(line, "\"phase\":\"working\""))
			break;
		usleep(10 * 1000);
	}
	assert_non_null(strstr(line, "\"bytes_done\":4096,\"bytes_total\":8192"));
	/* A second job is refused clearly, and the first goes on. */
	expect_answer(other, "{\"cmd\":\"work\"}\n", "\"error\":\"a work job is running (phase working, for ");
	expect_answer(fd, "{\"cmd\":\"echo\",\"n\":1}\n", "\"ok\":true");   /* quick commands still run */
	atomic_store(&release_job, 1);
	status_after_job(fd, line, sizeof(line));
	if (!strstr(line, "\"kind\":\"work\",\"state\":\"done\"") || !strstr(line, "\"result\":{\"seven\":7}"))
		fail_msg("after the job: %s", line);

	/* The next job may start now; this one fails, and says why. */
	atomic_store(&release_job, 2);
	expect_answer(fd, "{\"cmd\":\"work\"}\n", "{\"ok\":true,\"job_id\":2}");
	status_after_job(fd, line, sizeof(line));
	if (!strstr(line, "\"id\":2,\"kind\":\"work\",\"state\":\"failed\"") ||
	    !strstr(line, "\"error\":\"the work failed on purpose\""))
		fail_msg("after the failed job: %s", line);

	/* Stopping the node cancels a running job and waits for it. */
	atomic_store(&release_job, 0);
	expect_answer(fd, "{\"cmd\":\"work\"}\n", "{\"ok\":true,\"job_id\":3}");
	close(fd);
	close(other);
	double t0 = now_s();
	control_stop(srv);
	assert_true(now_s() - t0 < 0.5);
}

/* Slow commands answer later, off the server thread: everyone else is answered meanwhile, the
 * cap refuses one more as busy, and a client's next request is answered after its slow one. */
static void test_slow_commands_answer_later(void **state)
{
	struct control_server *srv = start_with_commands();
	int waiting[CONTROL_SLOW_MAX], other = client(), extra = client();
	char line[2048], want[64];

	atomic_store(&release_slow, 0);
	for (int i = 0; i < CONTROL_SLOW_MAX; i++) {
		waiting[i] = client();
		say(waiting[i], "{\"cmd\":\"wait\"}\n{\"cmd\":\"echo\",\"n\":3}\n");
	}
	/* Meanwhile: status and a quick command at once; the slow callers have no answer yet. */
	double t0 = now_s();
	expect_answer(other, "{\"cmd\":\"status\"}\n", "\"ok\":true");
	expect_answer(other, "{\"cmd\":\"echo\",\"n\":2}\n", "\"n\":2");
	assert_true(now_s() - t0 < 0.5);
	assert_int_equal(read_line(waiting[0], line, sizeof(line), 100), -1);
	/* One more slow request: refused at once, worth retrying. */
	say(extra, "{\"cmd\":\"wait\"}\n");
	assert_true(read_line(extra, line, sizeof(line), 2000) > 0);
	if (!strstr(line, "\"ok\":false") || !strstr(line, "\"busy\":true") || !strstr(line, "slow requests"))
		fail_msg("one slow request past the cap: %s", line);
	/* Released: each gets its answer, then the answer of the request it sent after it. */
	atomic_store(&release_slow, 1);
	snprintf(want, sizeof(want), "\"uid\":%u", (unsigned)geteuid());
	for (int i = 0; i < CONTROL_SLOW_MAX; i++) {
		assert_true(read_line(waiting[i], line, sizeof(line), 5000) > 0);
		if (!strstr(line, "\"waited\":true") || !strstr(line, want))
			fail_msg("slow answer %d: %s", i, line);
		assert_true(read_line(waiting[i], line, sizeof(line), 5000) > 0);
		if (!strstr(line, "\"n\":3"))
			fail_msg("the request after slow answer %d: %s", i, line);
		close(waiting[i]);
	}
	/* The slots are free again; stop waits for a slow handler still running. */
	atomic_store(&release_slow, 0);
	say(extra, "{\"cmd\":\"wait\"}\n");
	usleep(50 * 1000);
	atomic_store(&release_slow, 1);
	control_stop(srv);
	close(extra);
	close(other);
}

/* A group given by number is read strictly; a name that is neither a group nor a number fails. */
static void test_group_lookup(void **state)
{
	char err[256];
	gid_t gid = 12345;
	static const char *const bad[] = { "", " 0", "0 ", "+0", "-1", "12abc", "0x", "no-such-group-ftvm" };

	assert_int_equal(control_group_lookup("0", &gid, err, sizeof(err)), 0);
	assert_int_equal(gid, 0);
	assert_int_equal(control_group_lookup("4294967294", &gid, err, sizeof(err)), 0);
	assert_int_equal(gid, 4294967294u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gid = 12345;
		assert_int_equal(control_group_lookup(bad[i], &gid, err, sizeof(err)), -ENOENT);
		assert_non_null(strstr(err, "no such group"));
		assert_int_equal(gid, 12345);
	}
	/* (gid_t)-1 means "no group" to chown: refused like anything larger. */
	assert_int_equal(control_group_lookup("4294967295", &gid, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "group id out of range"));
	assert_int_equal(control_group_lookup("99999999999999999999999", &gid, err, sizeof(err)), -ERANGE);
	assert_int_equal(gid, 12345);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_errors_keep_the_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_before_its_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_is_prompt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_whatever_the_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_removes_only_its_own_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quick_command_checks_its_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs_one_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_commands_answer_later, setup, teardown),
		cmocka_unit_test(test_group_lookup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
