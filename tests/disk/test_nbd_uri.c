/*
 * test_nbd_uri.c — disk.uri: the strict NBD URI parser (util/nbd_uri.h) on the forms it accepts,
 * on every kind of hostile input it must refuse with a reason, and on a stream of mutated URIs
 * (no crash, and whatever is accepted stays within its caps and parses again to the same thing).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/nbd_uri.h"

static struct nbd_uri u;
static char err[512];

static void accepts_unix_sockets(void **state)
{
	(void)state;
	assert_int_equal(nbd_uri_parse("nbd+unix:///disk0?socket=/run/qsd/nbd.sock", &u, err, sizeof(err)), 0);
	assert_int_equal(u.transport, NBD_URI_UNIX);
	assert_string_equal(u.export_name, "disk0");
	assert_string_equal(u.socket, "/run/qsd/nbd.sock");

	assert_int_equal(nbd_uri_parse("nbd+unix://?socket=/s", &u, err, sizeof(err)), 0);
	assert_string_equal(u.export_name, "");
	assert_string_equal(u.socket, "/s");
	assert_int_equal(nbd_uri_parse("nbd+unix:///?socket=/s", &u, err, sizeof(err)), 0);
	assert_string_equal(u.export_name, "");

	/* Percent escapes are decoded after the URI is cut, so %2F and %3F are plain bytes. */
	assert_int_equal(nbd_uri_parse("nbd+unix:///a%2Fb%20c%3F?socket=/tmp/x%20y%3Fz", &u, err, sizeof(err)), 0);
	assert_string_equal(u.export_name, "a/b c?");
	assert_string_equal(u.socket, "/tmp/x y?z");
}

static void accepts_tcp(void **state)
{
	(void)state;
	assert_int_equal(nbd_uri_parse("nbd://storage.example", &u, err, sizeof(err)), 0);
	assert_int_equal(u.transport, NBD_URI_TCP);
	assert_string_equal(u.host, "storage.example");
	assert_int_equal(u.port, 10809);
	assert_string_equal(u.export_name, "");

	assert_int_equal(nbd_uri_parse("nbd://10.0.0.1:1234/vm/disk", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "10.0.0.1");
	assert_int_equal(u.port, 1234);
	assert_string_equal(u.export_name, "vm/disk");

	assert_int_equal(nbd_uri_parse("nbd://[fd00::1]:65535/e", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "fd00::1");
	assert_int_equal(u.port, 65535);

	assert_int_equal(nbd_uri_parse("nbd+tcp://h:1/", &u, err, sizeof(err)), 0);
	assert_int_equal(u.port, 1);
	assert_string_equal(u.export_name, "");
}

static void refuses(const char *uri, const char *reason)
{
	err[0] = '\0';
	int ret = nbd_uri_parse(uri, &u, err, sizeof(err));
	if (ret != -EINVAL || !strstr(err, reason))
		fail_msg("%s: got %d \"%s\", wanted -EINVAL naming \"%s\"", uri ? uri : "(null)", ret, err, reason);
}

static void refuses_hostile_input(void **state)
{
	(void)state;
	char big[NBD_URI_MAX_LEN + 64];

	refuses(NULL, "empty");
	refuses("", "empty");
	refuses("/srv/disk.img", "not an NBD URI");
	refuses("nbd:/h/e", "not an NBD URI");
	refuses("NBD://h/e", "not an NBD URI");
	refuses("nbds://h/e", "TLS");
	refuses("nbds+unix:///e?socket=/s", "TLS");
	refuses("nbd+vsock://2/e", "vsock");
	/* Unix sockets */
	refuses("nbd+unix:///e", "no socket");
	refuses("nbd+unix://host/e?socket=/s", "no host");
	refuses("nbd+unix:///e?socket=rel/s", "absolute");
	refuses("nbd+unix:///e?socket=", "absolute");
	refuses("nbd+unix:///e?socket=/s&tls=on", "only one");
	refuses("nbd+unix:///e?socket=/s;x", "only one");
	refuses("nbd+unix:///e?tls=on&socket=/s", "socket=PATH");
	refuses("nbd+unix:///e?socket=/a%00b", "percent");
	refuses("nbd+unix:///e?socket=/a%0Ab", "percent");
	refuses("nbd+unix:///e?socket=/a%", "percent");
	refuses("nbd+unix:///e?socket=/a%4", "percent");
	refuses("nbd+unix:///e?socket=/a%g0", "percent");
	memset(big, 0, sizeof(big));
	snprintf(big, sizeof(big), "nbd+unix:///e?socket=/%0*d", (int)NBD_URI_MAX_SOCKET, 0);
	refuses(big, "longer");
	/* TCP */
	refuses("nbd://", "no host");
	refuses("nbd:///e", "no host");
	refuses("nbd://:10809/e", "no host");
	refuses("nbd://h:0/e", "1..65535");
	refuses("nbd://h:65536/e", "1..65535");
	refuses("nbd://h:1234567/e", "1..65535");
	refuses("nbd://h:/e", "1..65535");
	refuses("nbd://h:-1/e", "decimal");
	refuses("nbd://h:0x10/e", "decimal");
	refuses("nbd://h:1:2/e", "decimal");
	refuses("nbd://user@h/e", "user information");
	refuses("nbd://h/e?socket=/s", "no query");
	refuses("nbd://h_x/e", "host name");
	refuses("nbd://h%41/e", "host name");
	refuses("nbd://[::1/e", "']'");
	refuses("nbd://[zz::1]/e", "IPv6");
	refuses("nbd://[fe80::1%25eth0]/e", "zones");
	refuses("nbd://[]/e", "IPv6");
	refuses("nbd://[1.2.3.4]/e", "IPv6");
	refuses("nbd://[::1]x/e", "junk");
	snprintf(big, sizeof(big), "nbd://%0*d/e", (int)NBD_URI_MAX_HOST + 1, 0);
	refuses(big, "too long");
	/* anywhere */
	refuses("nbd://h/e#frag", "fragment");
	refuses("nbd://h/a b", "percent-encoded");
	refuses("nbd://h/a\tb", "percent-encoded");
	refuses("nbd://h/\x7f", "percent-encoded");
	refuses("nbd://h/caf\xc3\xa9", "percent-encoded");
	refuses("nbd://h/e%", "percent");
	refuses("nbd://h/e%1f", "percent");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "nbd://h/", 8);
	refuses(big, "longer than");
}

static void tells_uris_from_paths(void **state)
{
	(void)state;
	assert_true(nbd_uri_is_nbd("nbd://h/e"));
	assert_true(nbd_uri_is_nbd("nbd+unix:///e?socket=/s"));
	assert_true(nbd_uri_is_nbd("nbds://h/e")); /* an NBD URI, refused by the parser with its reason */
	assert_false(nbd_uri_is_nbd(NULL));
	assert_false(nbd_uri_is_nbd("nbd.img"));
	assert_false(nbd_uri_is_nbd("nbdisk"));
	assert_false(nbd_uri_is_nbd("nbd:disk.img"));
	assert_false(nbd_uri_is_nbd("./nbd://h/e"));
	assert_false(nbd_uri_is_nbd("/srv/nbd://h"));
	assert_false(nbd_uri_is_nbd("nbdX://h/e"));
}

/* Random edits of valid URIs: whatever is accepted is within its caps and parses to itself. */
static void survives_mutations(void **state)
{
	(void)state;
	static const char *seeds[] = { "nbd+unix:///disk%200?socket=/run/a%20b.sock", "nbd://[fd00::1]:10809/a/b",
				       "nbd://host.example:1/e%41" };
	static const char alphabet[] = "%/?&;:@[]#=+0aF \x01\x7f\xff";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char buf[256];
	unsigned accepted = 0;
	for (unsigned i = 0; i < 200000; i++) {
		const char *seed = seeds[i % 3];
		size_t len = strlen(seed);
		memcpy(buf, seed, len + 1);
		for (unsigned k = 0; k < 1 + i % 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t pos = (size_t)(x % (len + 1));
			char c = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
			if ((x >> 40) % 3 == 0 && len + 1 < sizeof(buf)) { /* insert */
				memmove(buf + pos + 1, buf + pos, len - pos + 1);
				buf[pos] = c;
				len++;
			} else if ((x >> 40) % 3 == 1 && pos < len) { /* delete */
				memmove(buf + pos, buf + pos + 1, len - pos);
				len--;
			} else if (pos < len) {
				buf[pos] = c;
			}
		}
		if (nbd_uri_parse(buf, &u, err, sizeof(err)) != 0) {
			assert_true(strlen(err) > 0);
			continue;
		}
		accepted++;
		assert_true(strlen(u.export_name) <= NBD_URI_MAX_EXPORT);
		assert_true(strlen(u.socket) <= NBD_URI_MAX_SOCKET);
		assert_true(strlen(u.host) <= NBD_URI_MAX_HOST);
		for (const char *p = u.export_name; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
		if (u.transport == NBD_URI_UNIX)
			assert_true(u.socket[0] == '/');
		else
			assert_true(u.port >= 1 && u.host[0]);
	}
	assert_true(accepted > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_unix_sockets),
		cmocka_unit_test(accepts_tcp),
		cmocka_unit_test(refuses_hostile_input),
		cmocka_unit_test(tells_uris_from_paths),
		cmocka_unit_test(survives_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
