/*
 * domain_clone.c — see domain_clone.h. The source is read with libxml2 (no network, no entities
 * fetched), edited as a tree (attribute values are escaped by libxml2), and written to a file
 * created with O_EXCL, so an existing file is never replaced.
 */
#include "cmd/domain_clone.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/disk_image.h"
#include "util/nbd_uri.h"

static bool is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, (const xmlChar *)name) == 0;
}

static xmlNode *child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
		if (is(n, name))
			return n;
	return NULL;
}

/* The clone's name: req->name, else dst's base name without ".xml"; [A-Za-z0-9._+-] only. */
static int clone_name(const struct domain_clone_request *req, char *name, size_t len, char *msg, size_t msglen)
{
	const char *base = strrchr(req->dst, '/');
	base = base ? base + 1 : req->dst;
	size_t n = req->name ? strlen(req->name) : strlen(base);
	if (!req->name && n > 4 && strcmp(base + n - 4, ".xml") == 0)
		n -= 4;
	if (n == 0 || n > DOMAIN_CLONE_NAME_MAX || n >= len) {
		snprintf(msg, msglen, "the new domain's name must have 1..%u characters (--name)", DOMAIN_CLONE_NAME_MAX);
		return -EINVAL;
	}
	memcpy(name, req->name ? req->name : base, n);
	name[n] = '\0';
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") != n || name[0] == '.') {
		snprintf(msg, msglen, "name '%s': letters, digits and . _ + - only, not starting with '.' (--name)", name);
		return -EINVAL;
	}
	return 0;
}

/* A random locally administered unicast MAC (bit 1 of the first byte set, bit 0 clear). */
static int new_mac(char *out, size_t len)
{
	uint8_t b[6];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[0] = (uint8_t)((b[0] & 0xfc) | 0x02);
	snprintf(out, len, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
	return 0;
}

/* Replaces disk's <source> by spec's: a file or block device, or an NBD export. */
static int point_disk(xmlNode *disk, const char *spec, char *msg, size_t msglen)
{
	xmlNode *old, *source, *driver = child(disk, "driver");
	char why[512];
	if (nbd_uri_is_nbd(spec)) {
		struct nbd_uri *u = malloc(sizeof(*u));
		int ret = u ? nbd_uri_parse(spec, u, why, sizeof(why)) : -ENOMEM;
		if (ret < 0) {
			snprintf(msg, msglen, "--disk %s: %s", spec, u ? why : "out of memory");
			free(u);
			return ret;
		}
		while ((old = child(disk, "source"))) {
			xmlUnlinkNode(old);
			xmlFreeNode(old);
		}
		source = xmlNewChild(disk, NULL, (const xmlChar *)"source", NULL);
		xmlNode *host = source ? xmlNewChild(source, NULL, (const xmlChar *)"host", NULL) : NULL;
		char port[8];
		snprintf(port, sizeof(port), "%u", u->port);
		if (host) {
			xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)"network");
			xmlSetProp(source, (const xmlChar *)"protocol", (const xmlChar *)"nbd");
			if (u->export_name[0])
				xmlSetProp(source, (const xmlChar *)"name", (const xmlChar *)u->export_name);
			if (u->transport == NBD_URI_UNIX) {
				xmlSetProp(host, (const xmlChar *)"transport", (const xmlChar *)"unix");
				xmlSetProp(host, (const xmlChar *)"socket", (const xmlChar *)u->socket);
			} else {
				xmlSetProp(host, (const xmlChar *)"name", (const xmlChar *)u->host);
				xmlSetProp(host, (const xmlChar *)"port", (const xmlChar *)port);
			}
		}
		free(u);
		if (!host) {
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
	} else {
		struct stat st;
		const char *format;
		if (stat(spec, &st) != 0) {
			snprintf(msg, msglen, "--disk %s: %s", spec, strerror(errno));
			return -EINVAL;
		}
		if (disk_image_file_format(spec, &format, why, sizeof(why)) < 0) {
			snprintf(msg, msglen, "--disk %s", why);
			return -EINVAL;
		}
		if (strcmp(format, "raw") != 0) {
			snprintf(msg, msglen, "--disk %s: a %s image; serve it with qemu-storage-daemon and give its NBD URI",
				 spec, format);
			return -EINVAL;
		}
		bool block = S_ISBLK(st.st_mode);
		while ((old = child(disk, "source"))) {
			xmlUnlinkNode(old);
			xmlFreeNode(old);
		}
		source = xmlNewChild(disk, NULL, (const xmlChar *)"source", NULL);
		if (!source) {
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
		xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)(block ? "block" : "file"));
		xmlSetProp(source, (const xmlChar *)(block ? "dev" : "file"), (const xmlChar *)spec);
	}
	if (driver && xmlHasProp(driver, (const xmlChar *)"type"))
		xmlSetProp(driver, (const xmlChar *)"type", (const xmlChar *)"raw"); /* what ftvm reads */
	return 0;
}

static int edit(xmlNode *root, const struct domain_clone_request *req, const char *name, char *summary,
		size_t len, char *msg, size_t msglen)
{
	xmlNode *n, *next, *devices = child(root, "devices");
	unsigned ndisks = 0, nnics = 0;
	int ret;

	if (!(n = child(root, "name")))
		n = xmlNewChild(root, NULL, (const xmlChar *)"name", NULL);
	if (!n)
		return -ENOMEM;
	xmlNodeSetContent(n, (const xmlChar *)name); /* checked: no character needs escaping */
	for (n = root->children; n; n = next) {
		next = n->next;
		if (is(n, "uuid")) {
			if (next && xmlIsBlankNode(next)) { /* the indentation after it */
				xmlNode *blank = next;
				next = next->next;
				xmlUnlinkNode(blank);
				xmlFreeNode(blank);
			}
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
	}
	for (n = devices ? devices->children : NULL; n; n = n->next)
		ndisks += is(n, "disk");
	if (req->ndisks && req->ndisks != ndisks) {
		snprintf(msg, msglen, "%s has %u <disk> elements and %u --disk were given: give one per disk, in order",
			 req->src, ndisks, req->ndisks);
		return -EINVAL;
	}
	int used = snprintf(summary, len, "%s: domain %s", req->dst, name);
	unsigned d = 0;
	for (n = devices ? devices->children : NULL; n; n = n->next) {
		if (is(n, "disk") && req->ndisks) {
			ret = point_disk(n, req->disk[d++], msg, msglen);
			if (ret < 0)
				return ret;
		}
		if (!is(n, "interface"))
			continue;
		char mac[18];
		xmlNode *m = child(n, "mac");
		if (new_mac(mac, sizeof(mac)) < 0 || (!m && !(m = xmlNewChild(n, NULL, (const xmlChar *)"mac", NULL)))) {
			snprintf(msg, msglen, "cannot make a MAC address");
			return -EIO;
		}
		xmlSetProp(m, (const xmlChar *)"address", (const xmlChar *)mac);
		if (used >= 0 && (size_t)used < len)
			used += snprintf(summary + used, len - (size_t)used, "%s MAC %s", nnics ? "," : ";", mac);
		nnics++;
	}
	if (req->ndisks && used >= 0 && (size_t)used < len)
		snprintf(summary + used, len - (size_t)used, "; %u disk%s replaced", req->ndisks, req->ndisks > 1 ? "s" : "");
	return 0;
}

int domain_clone(const struct domain_clone_request *req, char *msg, size_t msglen)
{
	char name[DOMAIN_CLONE_NAME_MAX + 1], summary[512];
	xmlDoc *doc = NULL;
	FILE *f = NULL;
	struct stat st;
	int ret = clone_name(req, name, sizeof(name), msg, msglen);
	if (ret < 0)
		return ret;
	if (lstat(req->dst, &st) == 0 || errno != ENOENT) {
		snprintf(msg, msglen, "%s exists already: a clone never overwrites", req->dst);
		return -EEXIST;
	}
	doc = xmlReadFile(req->src, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || !is(root, "domain")) {
		snprintf(msg, msglen, "%s: %s", req->src, doc ? "expected a libvirt <domain>" : "cannot read it as XML");
		ret = -EINVAL;
		goto out;
	}
	ret = edit(root, req, name, summary, sizeof(summary), msg, msglen);
	if (ret == -ENOMEM)
		snprintf(msg, msglen, "out of memory");
	if (ret < 0)
		goto out;
	int fd = open(req->dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		ret = -errno;
		snprintf(msg, msglen, "%s: %s", req->dst, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (xmlDocFormatDump(f, doc, 1) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		ret = -EIO;
		snprintf(msg, msglen, "%s: cannot write it", req->dst);
		unlink(req->dst);
		goto out;
	}
	snprintf(msg, msglen, "%s", summary);
out:
	if (f)
		fclose(f);
	xmlFreeDoc(doc);
	return ret;
}
