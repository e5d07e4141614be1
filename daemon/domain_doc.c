/*
 * domain_doc.c — see domain_doc.h. libxml2 reads the text (no network, no entity expansion) for
 * <name> and <uuid>, inserts a generated <uuid> after <name> when there is none, and the result is
 * written to a scratch file that domain_load() checks exactly as `ftvm run --domain` will: a
 * definition the daemon accepts is one its VM process starts from.
 */
#include "daemon/domain_doc.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cmd/domain_xml.h"
#include "util/parse.h"
#include "util/private_file.h"

void domain_uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
		 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* libvirt accepts the 32 hex digits with or without the dashes of the canonical form. */
int domain_uuid_parse(const char *s, uint8_t uuid[16])
{
	size_t n = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '-')
			continue;
		int hi = parse_hex_digit(p[0]);
		int lo = p[1] ? parse_hex_digit(p[1]) : -1;
		if (n == 16 || hi < 0 || lo < 0)
			return -EINVAL;
		uuid[n++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	return n == 16 ? 0 : -EINVAL;
}

static xmlNodePtr child_named(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent->children; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name))
			return n;
	return NULL;
}

/* The <uuid>: read, or generated and inserted after <name>. */
static int take_uuid(xmlNodePtr root, xmlNodePtr name, uint8_t uuid[16], char *err, size_t errlen)
{
	char text[37];
	xmlNodePtr u = child_named(root, "uuid");
	if (u) {
		xmlChar *v = xmlNodeGetContent(u);
		int ret = v ? domain_uuid_parse((const char *)v, uuid) : -EINVAL;
		if (ret)
			snprintf(err, errlen, "<uuid>%.64s</uuid>: not a UUID", v ? (const char *)v : "");
		xmlFree(v);
		return ret;
	}
	if (getrandom(uuid, 16, 0) != 16) {
		snprintf(err, errlen, "cannot generate a UUID: %s", strerror(errno));
		return -EIO;
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);   /* version 4: random */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);   /* the RFC 4122 variant */
	domain_uuid_format(uuid, text);
	u = xmlNewNode(name->ns, BAD_CAST "uuid");
	if (!u || !xmlAddNextSibling(name, u)) {
		xmlFreeNode(u);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	xmlNodeAddContent(u, BAD_CAST text);
	return 0;
}

/* domain_load() reads a file: the definition goes through a private scratch file in dir. */
static int check_with_loader(const char *xml, size_t len, const char *dir, struct domain_doc *doc, char *err,
			     size_t errlen)
{
	char path[4096];
	struct domain_def *def = calloc(1, sizeof(*def));
	if (!def) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	static atomic_uint seq;
	snprintf(path, sizeof(path), "%s/.define-%d-%u.xml", dir, (int)getpid(), atomic_fetch_add(&seq, 1));
	int fd = private_file_create(path, true, "definition", err, errlen);
	int ret = fd < 0 ? fd : private_file_write_all(fd, xml, len);
	if (fd >= 0)
		close(fd);
	if (ret == 0) {
		ret = domain_load(path, NULL, def, err, errlen);
		doc->mem_kib = def->mem_mib * 1024;
		snprintf(doc->role, sizeof(doc->role), "%s", !def->ft.present ? "run" : def->ft.peer[0] ? "primary"
							 : def->ft.listen[0] ? "backup" : "run");
		if (!ret && def->ft.present && !strcmp(doc->role, "run") && def->ft.arbiter[0] && def->ft.channel_key[0]) {
			struct domain_run_ft *f = doc->run_ft = calloc(1, sizeof(*f));
			if (!f) {
				snprintf(err, errlen, "out of memory");
				ret = -ENOMEM;
			} else {
				snprintf(f->arbiter, sizeof(f->arbiter), "%s", def->ft.arbiter);
				snprintf(f->channel_key, sizeof(f->channel_key), "%s", def->ft.channel_key);
				snprintf(f->disk_mode, sizeof(f->disk_mode), "%s", def->ft.disk_mode);
				if (def->ft.has_timeout)
					snprintf(f->timeout_ms, sizeof(f->timeout_ms), "%u", def->ft.timeout_ms);
				if (def->ft.has_heartbeat)
					snprintf(f->heartbeat_ms, sizeof(f->heartbeat_ms), "%u", def->ft.heartbeat_ms);
			}
		}
	} else if (fd >= 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-ret));
	}
	unlink(path);
	free(def);
	return ret;
}

int domain_doc_parse(const char *xml, size_t len, const char *dir, struct domain_doc *doc, char *err, size_t errlen)
{
	xmlChar *out = NULL;
	int outlen = 0, ret = -EINVAL;

	memset(doc, 0, sizeof(*doc));
	if (len == 0 || len > DOMAIN_DOC_MAX || memchr(xml, 0, len)) {
		snprintf(err, errlen, "a domain definition is XML text of 1 byte to %d KiB", DOMAIN_DOC_MAX / 1024);
		return -EINVAL;
	}
	xmlDocPtr d = xmlReadMemory(xml, (int)len, "domain.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
									 XML_PARSE_NOWARNING);
	xmlNodePtr root = d ? xmlDocGetRootElement(d) : NULL;
	if (!root || strcmp((const char *)root->name, "domain") != 0) {
		snprintf(err, errlen, "not a domain definition: %s", root ? "the root element is not <domain>" : "no XML document");
		goto out;
	}
	xmlNodePtr name = child_named(root, "name");
	xmlChar *v = name ? xmlNodeGetContent(name) : NULL;
	size_t n = v ? strlen((const char *)v) : 0;
	if (n == 0 || n >= sizeof(doc->name) || strchr((const char *)v, '/') || ((const char *)v)[0] == '.') {
		snprintf(err, errlen, "<name>: a VM name is 1..%zu bytes, without '/', not starting with '.'",
			 sizeof(doc->name) - 1);
		xmlFree(v);
		goto out;
	}
	memcpy(doc->name, v, n + 1);
	xmlFree(v);
	ret = take_uuid(root, name, doc->uuid, err, errlen);
	if (ret)
		goto out;
	xmlDocDumpMemory(d, &out, &outlen);
	if (!out || outlen <= 0) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	ret = check_with_loader((const char *)out, (size_t)outlen, dir, doc, err, errlen);
	if (ret)
		goto out;
	doc->xml = strndup((const char *)out, (size_t)outlen);
	if (!doc->xml) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	}
out:
	xmlFree(out);
	xmlFreeDoc(d);
	return ret;
}

void domain_doc_free(struct domain_doc *doc)
{
	free(doc->xml);
	free(doc->run_ft);
	doc->xml = NULL;
	doc->run_ft = NULL;
}

void domain_run_ft_argv(const struct domain_run_ft *f, const char **argv)
{
	const char *const pairs[][2] = { { "--arbiter", f->arbiter },       { "--channel-key", f->channel_key },
					 { "--disk-mode", f->disk_mode },   { "--timeout", f->timeout_ms },
					 { "--heartbeat", f->heartbeat_ms } };
	size_t n = 0;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (pairs[i][1][0]) {
			argv[n++] = pairs[i][0];
			argv[n++] = pairs[i][1];
		}
	argv[n] = NULL;
}
