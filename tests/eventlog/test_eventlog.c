/*
 * test_eventlog.c — the event log format as docs/log-format.md specifies it: every kind round-trips
 * through a file; every flipped bit and every truncation is refused with a message; sizes, kinds,
 * LSN gaps and backwards icounts are refused; DISK_DIGEST records carry a read's digest exactly. Log files are created private (0600 whatever the
 * umask), never over an existing file unless asked to replace it, and never through a symlink.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "replay/eventlog.h"
#include "replay/logfile.h"

static char tmp_path[64];

static int setup_tmp(void **state)
{
	strcpy(tmp_path, "/tmp/ftvm-evlog-XXXXXX");
	int fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int remove_tmp(void **state)
{
	unlink(tmp_path);
	return 0;
}

static struct evlog_header sample_header(void)
{
	struct evlog_header h = { .config_digest = 0x1122334455667788ull, .start_lsn = 1 };
	strcpy(h.vm_name, "kv1");
	strcpy(h.config_summary, "mem=256M disks=1");
	return h;
}

/* Writes one record of each kind; returns how many. */
static int write_sample_log(const char *path)
{
	struct evlog_header h = sample_header();
	struct logfile_writer *w;
	char err[256];
	uint8_t payload[EVLOG_MAX_PAYLOAD];
	uint8_t frame[60], sectors[1024];
	int n = 0;

	for (unsigned i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7);
	for (unsigned i = 0; i < sizeof(sectors); i++)
		sectors[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(logfile_create(path, &h, true, &w, err, sizeof(err)), 0);

	struct vm_event events[] = {
		{ .kind = VM_EV_TIME, .time = 12345, .ticks_per_insn = 1u << 28 },
		{ .kind = VM_EV_NET_RX, .device = 0, .data = frame, .len = sizeof(frame) },
		{ .kind = VM_EV_DISK_DONE, .device = 1, .request = 77, .status = VM_DISK_OK, .data = sectors,
		  .len = sizeof(sectors) },
		{ .kind = VM_EV_RNG, .device = 0, .data = frame, .len = 16 },
		{ .kind = VM_EV_CONSOLE_IN, .data = (const uint8_t *)"ls\n", .len = 3 },
	};
	for (unsigned i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		uint32_t len = evlog_payload_from_event(&events[i], payload, sizeof(payload));
		assert_true(len > 0);
		assert_int_equal(logfile_append(w, (enum evlog_kind)events[i].kind, 100 * (i + 1), payload, len, NULL), 0);
		n++;
	}
	struct evlog_check c = { .scope = EVLOG_CHECK_CPU, .cpu_digest = 0xabcdef,
				 .outputs = { .console = 1, .net = 2, .disk = 3, .count = 4 } };
	uint32_t len = evlog_payload_from_check(&c, payload, sizeof(payload));
	assert_int_equal(logfile_append(w, EVLOG_CHECK, 600, payload, len, NULL), 0);
	struct evlog_end e = { .exit = 0, .status = -3, .machine_digest = 99, .outputs = 4 };
	len = evlog_payload_from_end(&e, payload, sizeof(payload));
	assert_int_equal(logfile_append(w, EVLOG_END, 700, payload, len, NULL), 0);
	assert_int_equal(logfile_close(w), 0);
	return n + 2;
}

/* Reads the whole log; returns records read, or the negative error of the first failure. */
static int read_log(const char *path, char *err, size_t errlen)
{
	struct logfile_reader *r;
	struct evlog_header h;
	struct evlog_record rec;
	int n = 0, ret;

	ret = logfile_open(path, &r, &h, err, errlen);
	if (ret < 0)
		return ret;
	while ((ret = logfile_next(r, &rec, err, errlen)) == 1) {
		struct vm_event ev;
		struct evlog_check c;
		struct evlog_end e;
		if (rec.kind == EVLOG_CHECK)
			ret = evlog_check_from_record(&rec, &c, err, errlen);
		else if (rec.kind == EVLOG_END)
			ret = evlog_end_from_record(&rec, &e, err, errlen);
		else
			ret = evlog_event_from_record(&rec, &ev, err, errlen);
		if (ret < 0)
			break;
		n++;
	}
	logfile_close_reader(r);
	return ret < 0 ? ret : n;
}

static void test_round_trip(void **state)
{
	char err[256];
	int written = write_sample_log(tmp_path);
	struct logfile_reader *r;
	struct evlog_header h;
	struct evlog_record rec;
	struct vm_event ev;

	assert_int_equal(read_log(tmp_path, err, sizeof(err)), written);
	assert_int_equal(logfile_open(tmp_path, &r, &h, err, sizeof(err)), 0);
	assert_int_equal(h.config_digest, 0x1122334455667788ull);
	assert_string_equal(h.vm_name, "kv1");
	assert_int_equal(logfile_next(r, &rec, err, sizeof(err)), 1);
	assert_int_equal(rec.kind, EVLOG_TIME);
	assert_int_equal(rec.lsn, 1);
	assert_int_equal(rec.icount, 100);
	assert_int_equal(evlog_event_from_record(&rec, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.time, 12345);
	assert_int_equal(ev.ticks_per_insn, 1u << 28);
	assert_int_equal(logfile_next(r, &rec, err, sizeof(err)), 1);
	assert_int_equal(evlog_event_from_record(&rec, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.len, 60);
	assert_int_equal(ev.data[59], (uint8_t)(59 * 7));
	assert_int_equal(logfile_next(r, &rec, err, sizeof(err)), 1);
	assert_int_equal(evlog_event_from_record(&rec, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, VM_EV_DISK_DONE);
	assert_int_equal(ev.device, 1);
	assert_int_equal(ev.request, 77);
	assert_int_equal(ev.len, 1024);
	assert_int_equal(ev.data[1023], (uint8_t)(1023 ^ 0x5a));
	logfile_close_reader(r);
}

static long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

static void flip_bit(const char *path, long offset, int bit)
{
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, offset, SEEK_SET);
	int c = fgetc(f);
	fseek(f, offset, SEEK_SET);
	fputc(c ^ (1 << bit), f);
	fclose(f);
}

/* Every single flipped bit anywhere in the file is caught (CRC-32C detects all 1-bit errors). */
static void test_every_bit_flip_refused(void **state)
{
	char err[256];
	write_sample_log(tmp_path);
	long size = file_size(tmp_path);
	for (long off = 0; off < size; off++) {
		int bit = (int)(off % 8);
		flip_bit(tmp_path, off, bit);
		int ret = read_log(tmp_path, err, sizeof(err));
		if (ret >= 0)
			fail_msg("flip at byte %ld bit %d not detected", off, bit);
		assert_true(strlen(err) > 10);
		flip_bit(tmp_path, off, bit);
	}
	assert_int_equal(read_log(tmp_path, err, sizeof(err)), 7);
}

/* A cut inside a record is reported as truncation with its byte offset; a cut at a record
 * boundary reads as a shorter log (without its END record). */
static void test_truncation(void **state)
{
	char err[256];
	write_sample_log(tmp_path);
	long size = file_size(tmp_path);
	int boundaries = 0;
	for (long cut = size - 1; cut >= 0; cut--) {
		assert_int_equal(truncate(tmp_path, cut), 0);
		int ret = read_log(tmp_path, err, sizeof(err));
		if (ret >= 0) {
			boundaries++;
			continue;
		}
		assert_int_equal(ret, -EBADMSG);
		if (cut >= EVLOG_HEADER_SIZE && strstr(err, "truncated at byte") == NULL)
			fail_msg("cut at %ld: message '%s' does not say truncated", cut, err);
	}
	/* Exactly the 7 record boundaries (header alone, after record 1..6) read cleanly. */
	assert_int_equal(boundaries, 7);
}

static void test_oversized_and_unknown_refused(void **state)
{
	uint8_t buf[EVLOG_RECORD_OVERHEAD + 16];
	uint8_t payload[16] = { 0 };
	struct evlog_record rec = { .kind = EVLOG_TIME, .lsn = 1, .icount = 5, .len = 16, .payload = payload };
	struct evlog_record out;
	size_t used;
	char err[256];

	evlog_encode_record(&rec, buf);
	/* length field claims 4 GiB: refused by the cap before any read or allocation */
	buf[4] = 0xff, buf[5] = 0xff, buf[6] = 0xff, buf[7] = 0xff;
	assert_int_equal(evlog_decode_record(buf, sizeof(buf), &out, &used, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "exceeds the cap"));
	evlog_encode_record(&rec, buf);
	buf[0] = 99;
	assert_int_equal(evlog_decode_record(buf, sizeof(buf), &out, &used, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "unknown kind 99"));
	/* a TIME with a zero rate is a bad payload even with a good CRC */
	rec.len = 16;
	evlog_encode_record(&rec, buf);
	assert_int_equal(evlog_decode_record(buf, sizeof(buf), &out, &used, err, sizeof(err)), 0);
	struct vm_event ev;
	assert_int_equal(evlog_event_from_record(&out, &ev, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "ticks_per_insn is zero"));
	/* partial buffers ask for more */
	assert_int_equal(evlog_decode_record(buf, 10, &out, &used, err, sizeof(err)), -EAGAIN);
	assert_int_equal(evlog_decode_record(buf, 30, &out, &used, err, sizeof(err)), -EAGAIN);
	assert_int_equal(used, EVLOG_RECORD_OVERHEAD + 16);
}

static void test_sequence_rules(void **state)
{
	struct evlog_record rec = { .kind = EVLOG_RNG, .lsn = 5, .icount = 100 };
	char err[256];
	assert_int_equal(evlog_check_sequence(&rec, 4, 100, err, sizeof(err)), 0);
	assert_int_equal(evlog_check_sequence(&rec, 3, 100, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "expected lsn 4"));
	assert_int_equal(evlog_check_sequence(&rec, 4, 101, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "goes back"));
}

static void test_header_refusals(void **state)
{
	struct evlog_header h = sample_header(), out;
	uint8_t buf[EVLOG_HEADER_SIZE];
	char err[256];

	evlog_encode_header(&h, buf);
	assert_int_equal(evlog_decode_header(buf, sizeof(buf), &out, err, sizeof(err)), 0);
	assert_int_equal(evlog_decode_header(buf, 100, &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "truncated"));
	buf[8] = 2; /* version 2 */
	assert_int_equal(evlog_decode_header(buf, sizeof(buf), &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "version 2"));
	evlog_encode_header(&h, buf);
	buf[0] = 'X';
	assert_int_equal(evlog_decode_header(buf, sizeof(buf), &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "bad magic"));
}

static void test_output_digests_depend_on_content(void **state)
{
	struct evlog_outputs a = { 0 }, b = { 0 };
	evlog_outputs_console(&a, (const uint8_t *)"hello", 5);
	evlog_outputs_console(&b, (const uint8_t *)"hellp", 5);
	assert_int_not_equal(a.console, b.console);
	assert_int_equal(a.count, 1);
	uint8_t data[512] = { 1 };
	struct vm_disk_request w = { .id = 1, .op = VM_DISK_WRITE, .sector = 8, .len = 512, .data = data };
	evlog_outputs_disk(&a, 0, &w);
	data[511] = 9;
	evlog_outputs_disk(&b, 0, &w);
	assert_int_not_equal(a.disk, b.disk);
}

static int create_log(const char *path, bool replace, char *err, size_t errlen)
{
	struct evlog_header h = sample_header();
	struct logfile_writer *w;
	int ret = logfile_create(path, &h, replace, &w, err, errlen);
	if (ret == 0)
		assert_int_equal(logfile_close(w), 0);
	return ret;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void assert_text(const char *path, const char *text)
{
	char buf[64] = { 0 };
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(buf, 1, sizeof(buf) - 1, f) == strlen(text));
	fclose(f);
	assert_string_equal(buf, text);
}

static void test_files_private_exclusive_nofollow(void **state)
{
	char dir[] = "/tmp/ftvm-evlog-dir-XXXXXX", log[64], victim[64], link[64], err[256];
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/log", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(link, sizeof(link), "%s/link", dir);

	/* A new log is 0600 even under umask 000: it holds console input, disk data, entropy. */
	mode_t old = umask(0);
	assert_int_equal(create_log(log, false, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* An existing file is refused, with a message naming --force, and left as it was. */
	write_text(log, "precious");
	assert_int_equal(create_log(log, false, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "--force"));
	assert_text(log, "precious");

	/* Replacing it (--force) makes a fresh private file. */
	assert_int_equal(chmod(log, 0644), 0);
	assert_int_equal(create_log(log, true, err, sizeof(err)), 0);
	assert_int_equal(stat(log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, EVLOG_HEADER_SIZE);

	/* A symlink is never followed, not even with replace, and its target is untouched. */
	write_text(victim, "victim");
	assert_int_equal(symlink(victim, link), 0);
	assert_true(create_log(link, false, err, sizeof(err)) < 0);
	assert_true(create_log(link, true, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "symbolic link"));
	assert_text(victim, "victim");
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));

	/* A dangling symlink is not a way to create a file elsewhere either. */
	assert_int_equal(unlink(victim), 0);
	assert_true(create_log(link, true, err, sizeof(err)) < 0);
	assert_int_equal(access(victim, F_OK), -1);

	unlink(link);
	unlink(log);
	assert_int_equal(rmdir(dir), 0);
}

/* DISK_DIGEST: built from a read's completion, parsed back with its digest; the digest follows
 * the bytes; every field outside the specification is refused, and only reads that succeeded
 * have one. */
static void test_disk_digest(void **state)
{
	uint8_t data[4096], payload[64], buf[EVLOG_RECORD_OVERHEAD + 64];
	struct vm_event ev = { .kind = VM_EV_DISK_DONE, .device = 2, .request = 901, .status = VM_DISK_OK,
			       .len = sizeof(data), .data = data };
	struct evlog_disk_digest d;
	struct evlog_record rec, out;
	uint64_t lo, hi;
	size_t used;
	char err[256];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	uint32_t len = evlog_payload_from_disk_read(&ev, payload, sizeof(payload));
	assert_int_equal(len, 40);
	rec = (struct evlog_record){ .kind = EVLOG_DISK_DIGEST, .lsn = 3, .icount = 9, .len = len, .payload = payload };
	evlog_encode_record(&rec, buf);
	assert_int_equal(evlog_decode_record(buf, sizeof(buf), &out, &used, err, sizeof(err)), 0);
	assert_int_equal(evlog_disk_digest_from_record(&out, &d, err, sizeof(err)), 0);
	evlog_disk_data_digest(data, sizeof(data), &lo, &hi);
	assert_int_equal(d.disk, 2);
	assert_int_equal(d.request, 901);
	assert_int_equal(d.len, 4096);
	assert_true(d.digest_lo == lo && d.digest_hi == hi);
	data[4095] ^= 1;
	evlog_disk_data_digest(data, sizeof(data), &lo, &hi);
	assert_false(d.digest_lo == lo && d.digest_hi == hi);
	/* not an input event of its own: the data comes from the replayer's disk */
	assert_int_equal(evlog_event_from_record(&out, &ev, err, sizeof(err)), -EBADMSG);
	/* bad length, status, reserved field, and a payload of the wrong size */
	static const struct { unsigned off; uint32_t value; const char *msg; } bad[] = {
		{ 16, 0, "read length" }, { 16, 1000, "read length" }, { 16, (1u << 20) + 512, "read length" },
		{ 4, 1, "status" }, { 20, 7, "reserved" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[40];
		memcpy(p, payload, sizeof(p));
		p[bad[i].off] = (uint8_t)bad[i].value, p[bad[i].off + 1] = (uint8_t)(bad[i].value >> 8);
		p[bad[i].off + 2] = (uint8_t)(bad[i].value >> 16), p[bad[i].off + 3] = (uint8_t)(bad[i].value >> 24);
		struct evlog_record r2 = rec;
		r2.payload = p;
		assert_int_equal(evlog_disk_digest_from_record(&r2, &d, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, bad[i].msg));
	}
	rec.len = 39;
	assert_int_equal(evlog_disk_digest_from_record(&rec, &d, err, sizeof(err)), -EBADMSG);
	rec.len = 41;
	evlog_encode_record(&rec, buf);
	assert_int_equal(evlog_decode_record(buf, sizeof(buf), &out, &used, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "exceeds the cap"));
	/* no digest for a failed read or a write's completion */
	ev.status = VM_DISK_IOERR;
	assert_int_equal(evlog_payload_from_disk_read(&ev, payload, sizeof(payload)), 0);
	ev.status = VM_DISK_OK, ev.len = 0;
	assert_int_equal(evlog_payload_from_disk_read(&ev, payload, sizeof(payload)), 0);
}

int main(int argc, char **argv)
{
	/* `test_eventlog --write-sample PATH` writes the sample log (seed for the fuzz corpus). */
	if (argc == 3 && strcmp(argv[1], "--write-sample") == 0)
		return write_sample_log(argv[2]) > 0 ? 0 : 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_every_bit_flip_refused, setup_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_truncation, setup_tmp, remove_tmp),
		cmocka_unit_test(test_oversized_and_unknown_refused),
		cmocka_unit_test(test_sequence_rules),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_output_digests_depend_on_content),
		cmocka_unit_test(test_files_private_exclusive_nofollow),
		cmocka_unit_test(test_disk_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
