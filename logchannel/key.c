/*
 * key.c — pairing keys of the logging channel and making peer strings printable.
 *
 * A key is 32 random bytes (getrandom()) that both nodes of a pair hold; the channel uses it as
 * the TLS 1.3 pre-shared key (tls.c). On disk it is one text line, "ftvm-channel-key-v1 " and 64
 * lowercase hex digits, so it can be copied and compared by hand. The file is created 0600 with
 * O_EXCL and O_NOFOLLOW (never overwriting a key, never writing through a planted symlink), and a
 * key file anyone but its owner could read is refused at load: a leaked key lets its holder act
 * as either node.
 */
#define DIAG_MODULE "logchannel"
#include "logchannel/channel.h"
#include "logchannel/net.h"
#include "util/parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_TAG "ftvm-channel-key-v1 "
#define KEY_TAG_LEN (sizeof(KEY_TAG) - 1)
#define KEY_TEXT_LEN (KEY_TAG_LEN + 2 * CHANNEL_KEY_SIZE + 1) /* tag, hex, newline */

static int fill_random(uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

int channel_key_generate(const char *path, struct channel_err *err)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t key[CHANNEL_KEY_SIZE];
	char text[KEY_TEXT_LEN];
	int fd = -1, rc;

	rc = fill_random(key, sizeof(key));
	if (rc < 0) {
		chan_seterr(err, rc, "key: getrandom: %s", strerror(-rc));
		goto out;
	}
	memcpy(text, KEY_TAG, KEY_TAG_LEN);
	for (size_t i = 0; i < sizeof(key); i++) {
		text[KEY_TAG_LEN + 2 * i] = hex[key[i] >> 4];
		text[KEY_TAG_LEN + 2 * i + 1] = hex[key[i] & 15];
	}
	text[KEY_TEXT_LEN - 1] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		chan_seterr(err, rc, "key file %s: %s%s", path, strerror(errno),
			    errno == EEXIST ? " (a key is never overwritten: remove it first)" : "");
		goto out;
	}
	/* The umask cannot widen 0600, but may narrow it: make sure the owner can read it. */
	if (fchmod(fd, 0600) < 0 || write(fd, text, sizeof(text)) != (ssize_t)sizeof(text) ||
	    fsync(fd) < 0) {
		rc = errno ? -errno : -EIO;
		chan_seterr(err, rc, "key file %s: writing: %s", path, strerror(-rc));
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(text, sizeof(text));
	return rc;
}

int channel_key_load(const char *path, struct channel_key *key, struct channel_err *err)
{
	char text[KEY_TEXT_LEN + 1];
	struct stat st;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		chan_seterr(err, rc, "key file %s: %s%s", path, strerror(errno),
			    errno == ELOOP ? " (a symlink: give the key file itself)" : "");
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		chan_seterr(err, rc, "key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		chan_seterr(err, rc, "key file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = -EACCES;
		chan_seterr(err, rc,
			    "key file %s: mode %04o lets group or others at the key; refused "
			    "(chmod 600 it, or better make a new one with `ftvm keygen`)",
			    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = read(fd, text, sizeof(text));
	if (n < 0) {
		rc = -errno;
		chan_seterr(err, rc, "key file %s: %s", path, strerror(errno));
		goto out;
	}
	rc = -EINVAL;
	if ((n != KEY_TEXT_LEN && n != KEY_TEXT_LEN - 1) || memcmp(text, KEY_TAG, KEY_TAG_LEN) != 0 ||
	    (n == KEY_TEXT_LEN && text[KEY_TEXT_LEN - 1] != '\n')) {
		chan_seterr(err, rc, "key file %s: not an ftvm channel key (`ftvm keygen FILE` makes one)",
			    path);
		goto out;
	}
	for (size_t i = 0; i < CHANNEL_KEY_SIZE; i++) {
		int hi = parse_hex_digit(text[KEY_TAG_LEN + 2 * i]);
		int lo = parse_hex_digit(text[KEY_TAG_LEN + 2 * i + 1]);
		if (hi < 0 || lo < 0) {
			chan_seterr(err, rc, "key file %s: bad hex digit in the key", path);
			goto out;
		}
		key->bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	rc = 0;
out:
	explicit_bzero(text, sizeof(text));
	close(fd);
	return rc;
}

void channel_sanitize(char *out, size_t cap, const char *in)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (cap == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		bool plain = *p >= 0x20 && *p < 0x7f && *p != '\\';
		size_t need = plain ? 1 : 4;
		if (o + need >= cap)
			break;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}
