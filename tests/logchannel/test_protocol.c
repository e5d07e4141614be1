/*
 * test_protocol.c — unit tests of the channel's pure pieces: frame header checks (every error of
 * docs/channel-protocol.md), HELLO and RDMA connection-data encoding, HOST:PORT parsing, the SPSC
 * ring's wrap-around copies, and the RDMA probe on a machine without a device.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "logchannel/channel.h"
#include "logchannel/net.h"
#include "logchannel/protocol.h"
#include "logchannel/rdma.h"
#include "logchannel/ring.h"
#include "util/crc32c.h"

static void test_header_roundtrip(void **state)
{
	uint8_t hdr[CHPROTO_HDR_SIZE], payload[100];
	struct chproto_hdr h;
	char why[256];

	for (unsigned i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	chproto_encode(hdr, CHPROTO_RECORD, 0x1122334455667788ull, payload, sizeof(payload));
	/* Wire layout is fixed little-endian: check a few bytes by hand. */
	assert_memory_equal(hdr, "FTLC", 4);
	assert_int_equal(hdr[CHPROTO_OFF_VERSION], 1);
	assert_int_equal(hdr[CHPROTO_OFF_KIND], CHPROTO_RECORD);
	assert_int_equal(hdr[CHPROTO_OFF_LEN], 100);
	assert_int_equal(hdr[CHPROTO_OFF_ARG], 0x88);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), 0);
	assert_int_equal(h.kind, CHPROTO_RECORD);
	assert_int_equal(h.len, 100);
	assert_true(h.arg == 0x1122334455667788ull);
	assert_int_equal(chproto_check_crc(hdr, &h, payload, why, sizeof(why)), 0);

	/* The CRC covers the header with the crc field zeroed, then the payload. */
	uint8_t z[CHPROTO_HDR_SIZE];
	memcpy(z, hdr, sizeof(z));
	memset(z + CHPROTO_OFF_CRC, 0, 4);
	assert_int_equal(h.crc, crc32c(crc32c(0, z, sizeof(z)), payload, sizeof(payload)));

	payload[50] ^= 1;
	assert_int_equal(chproto_check_crc(hdr, &h, payload, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "corrupt RECORD frame"));
	payload[50] ^= 1;
	hdr[CHPROTO_OFF_ARG] ^= 1; /* a flipped LSN is caught too */
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), 0);
	assert_int_equal(chproto_check_crc(hdr, &h, payload, why, sizeof(why)), -EBADMSG);
}

static void test_header_errors(void **state)
{
	uint8_t hdr[CHPROTO_HDR_SIZE];
	struct chproto_hdr h;
	char why[256];

	memset(hdr, 0x5a, sizeof(hdr));
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "garbage"));

	chproto_encode_version(hdr, 2, CHPROTO_HELLO, 0, NULL, 0);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EPROTONOSUPPORT);
	assert_non_null(strstr(why, "version 2"));

	chproto_encode(hdr, 42, 0, NULL, 0);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "unknown frame kind 42");
	chproto_encode(hdr, 0, 0, NULL, 0);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EPROTO);

	chproto_encode(hdr, CHPROTO_RECORD, 1, NULL, CHANNEL_MAX_RECORD + 1);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EMSGSIZE);
	assert_non_null(strstr(why, "oversized RECORD"));
	chproto_encode(hdr, CHPROTO_RECORD, 1, NULL, CHANNEL_MAX_RECORD);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), 0);
	chproto_encode(hdr, CHPROTO_ACK, 1, NULL, 1); /* ACK carries no payload */
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EMSGSIZE);
	chproto_encode(hdr, CHPROTO_RECORD, 1, NULL, 0xffffffffu);
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EMSGSIZE);

	chproto_encode(hdr, CHPROTO_ACK, 1, NULL, 0);
	hdr[CHPROTO_OFF_FLAGS] = 1;
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), -EBADMSG);
}

static void test_hello(void **state)
{
	struct chproto_hello in = { .epoch = 7, .start_lsn = 1000, .max_record = CHANNEL_MAX_RECORD,
				    .heartbeat_ms = 100, .timeout_ms = 1000 };
	struct chproto_hello out;
	uint8_t buf[CHPROTO_HELLO_MAX];
	char why[256];

	strcpy(in.vm_id, "6f1c3a52-9d2e-4b7a-8c11-0e5d2f9a7b31");
	in.vm_id_len = (uint16_t)strlen(in.vm_id);
	uint32_t len = chproto_hello_encode(buf, &in);
	assert_int_equal(len, CHPROTO_HELLO_FIXED + in.vm_id_len);
	assert_int_equal(chproto_hello_decode(buf, len, &out, why, sizeof(why)), 0);
	assert_string_equal(out.vm_id, in.vm_id);
	assert_true(out.epoch == 7 && out.start_lsn == 1000);

	assert_int_equal(chproto_hello_decode(buf, len - 1, &out, why, sizeof(why)), -EPROTO);
	assert_int_equal(chproto_hello_decode(buf, 10, &out, why, sizeof(why)), -EPROTO);
	buf[CHPROTO_HELLO_FIXED + 3] = 0; /* NUL inside the id */
	assert_int_equal(chproto_hello_decode(buf, len, &out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "NUL"));
	in.start_lsn = 0;
	len = chproto_hello_encode(buf, &in);
	assert_int_equal(chproto_hello_decode(buf, len, &out, why, sizeof(why)), -EPROTO);
	in.start_lsn = 1;
	in.max_record = CHANNEL_MAX_RECORD + 1;
	len = chproto_hello_encode(buf, &in);
	assert_int_equal(chproto_hello_decode(buf, len, &out, why, sizeof(why)), -EPROTO);
	/* The transport travels in the HELLO; an unknown one is malformed. */
	in.max_record = CHANNEL_MAX_RECORD;
	in.transport = CHANNEL_RDMA;
	len = chproto_hello_encode(buf, &in);
	assert_int_equal(chproto_hello_decode(buf, len, &out, why, sizeof(why)), 0);
	assert_int_equal(out.transport, CHANNEL_RDMA);
	in.transport = 7;
	len = chproto_hello_encode(buf, &in);
	assert_int_equal(chproto_hello_decode(buf, len, &out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "unknown transport 7"));
}

static void test_conndata(void **state)
{
	struct chrdma_conndata in = { .qpn = 0x123456, .psn = 0xabcdef, .lid = 7, .mtu = 3,
				      .gid_index = 1, .rkey = 0xdeadbeef,
				      .ring_size = 4u << 20, .addr = 0x7f0012345000ull };
	struct chrdma_conndata out;
	uint8_t buf[CHPROTO_CONNDATA_SIZE];
	char why[256];

	for (int i = 0; i < CHRDMA_GID_SIZE; i++)
		in.gid[i] = (uint8_t)(0xfe - i);
	chrdma_conndata_encode(buf, &in);
	assert_memory_equal(buf, "CRDM", 4);
	assert_int_equal(chrdma_conndata_decode(buf, sizeof(buf), &out, why, sizeof(why)), 0);
	assert_true(out.qpn == in.qpn && out.psn == in.psn && out.lid == in.lid &&
		    out.mtu == in.mtu && out.gid_index == in.gid_index && out.rkey == in.rkey &&
		    out.ring_size == in.ring_size && out.addr == in.addr);
	assert_memory_equal(out.gid, in.gid, CHRDMA_GID_SIZE);

	assert_int_equal(chrdma_conndata_decode(buf, sizeof(buf) - 1, &out, why, sizeof(why)),
			 -EPROTO);
	struct chrdma_conndata bad = in;
	bad.qpn = 0x1000000;
	chrdma_conndata_encode(buf, &bad);
	assert_int_equal(chrdma_conndata_decode(buf, sizeof(buf), &out, why, sizeof(why)), -EPROTO);
	bad = in;
	bad.mtu = 9;
	chrdma_conndata_encode(buf, &bad);
	assert_int_equal(chrdma_conndata_decode(buf, sizeof(buf), &out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "MTU"));
	bad = in;
	bad.ring_size = (4u << 20) + 4096;
	chrdma_conndata_encode(buf, &bad);
	assert_int_equal(chrdma_conndata_decode(buf, sizeof(buf), &out, why, sizeof(why)), -EPROTO);
	chrdma_conndata_encode(buf, &in);
	buf[0] ^= 0xff;
	assert_int_equal(chrdma_conndata_decode(buf, sizeof(buf), &out, why, sizeof(why)), -EPROTO);
}

static void test_parse_addr(void **state)
{
	struct sockaddr_storage sa;
	socklen_t len;

	assert_int_equal(channel_parse_addr("127.0.0.1:7000", 0, &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
	assert_int_equal(ntohs(in4->sin_port), 7000);
	assert_int_equal(ntohl(in4->sin_addr.s_addr), 0x7f000001);

	assert_int_equal(channel_parse_addr("[::1]:65535", 0, &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
	assert_int_equal(ntohs(in6->sin6_port), 65535);
	assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));

	assert_int_equal(channel_parse_addr("[fe80::1%lo]:9", 0, &sa, &len), 0);
	assert_int_equal(channel_parse_addr("localhost:80", 0, &sa, &len), 0);
	assert_int_equal(channel_parse_addr(":7000", 1, &sa, &len), 0);
	assert_int_equal(channel_parse_addr("*:0", 1, &sa, &len), 0);

	assert_int_equal(channel_parse_addr(":7000", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:0", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:65536", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:7x", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("::1:7000", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("[::1]7000", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("[::1", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr(NULL, 0, &sa, &len), -EINVAL);
	/* The port is read strictly: no sign, no spaces, no junk, no overflow. */
	assert_int_equal(channel_parse_addr("127.0.0.1:+7000", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1: 7000", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:7000 ", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:-1", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:-0", 1, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:4294967297", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("127.0.0.1:99999", 0, &sa, &len), -EINVAL);
	assert_int_equal(channel_parse_addr("[::1]:", 1, &sa, &len), -EINVAL);
	/* Leading zeros are decimal, and the port reaches the resolver in canonical form. */
	assert_int_equal(channel_parse_addr("127.0.0.1:07000", 0, &sa, &len), 0);
	assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 7000);
}

static void test_ring_wrap(void **state)
{
	struct chring r;
	uint8_t in[300], out[300];

	assert_int_equal(chring_init(&r, 1000), 0);
	assert_int_equal(r.cap, 1024);
	/* Positions that straddle the end in every way; counters keep running past the capacity. */
	uint64_t pos = 0;
	for (int round = 0; round < 50; round++) {
		size_t n = 1 + (size_t)(round * 37) % sizeof(in);
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(round + i);
		chring_put(&r, pos, in, n);
		chring_publish(&r, pos + n);
		assert_true(chring_head(&r, memory_order_acquire) - chring_tail(&r, memory_order_acquire) ==
			    n);
		chring_get(&r, pos, out, n);
		assert_memory_equal(in, out, n);
		pos += n;
		chring_release(&r, pos);
	}
	assert_true(pos > 4 * r.cap);
	chring_destroy(&r);
	assert_int_equal(chring_init(&r, SIZE_MAX), -EINVAL);
}

static void test_rdma_probe(void **state)
{
	struct channel_err err = { 0 };
	struct channel_config cfg;
	struct channel *ch = NULL;

	int rc = chrdma_probe(&err);
	if (rc == 0) {
		print_message("an RDMA device is present: the no-device path is not exercised\n");
		return;
	}
	if (rc == -ENODEV) {
		assert_string_equal(err.msg, "no RDMA device found; use the TCP transport");
	} else {
		/* Built without libibverbs. */
		assert_int_equal(rc, -EOPNOTSUPP);
		assert_non_null(strstr(err.msg, "use the TCP transport"));
	}
	/* channel_connect with the RDMA transport fails the same way before touching the network. */
	static const struct channel_key key;
	channel_config_init(&cfg);
	cfg.vm_id = "vm-rdma";
	cfg.transport = CHANNEL_RDMA;
	cfg.key = &key;
	memset(&err, 0, sizeof(err));
	assert_int_equal(channel_connect(&cfg, "127.0.0.1:9", &ch, &err), rc);
	assert_int_equal(err.code, rc);
	assert_null(ch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrip), cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_hello),		 cmocka_unit_test(test_conndata),
		cmocka_unit_test(test_parse_addr),	 cmocka_unit_test(test_ring_wrap),
		cmocka_unit_test(test_rdma_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
