/*
 * domain_xml.c — reading a libvirt domain XML file into a VM definition (see domain_xml.h):
 * libxml2 for the document (XPath), the libvirt API for storage volumes and networks.
 */
#include "cmd/domain_xml.h"

#include <errno.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/nbd_uri.h"
#include "util/parse.h"

struct dom_ctx {
	const char *path;
	xmlDocPtr doc;
	xmlXPathContextPtr xp;
	const char *connect_uri;
	virConnectPtr conn;
	char *err;
	size_t errlen;
};

static int fail(struct dom_ctx *c, int code, const char *fmt, ...) FTVM_PRINTF(3, 4);
static int fail(struct dom_ctx *c, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
	return code;
}

/* The string value of @expr relative to @node (NULL: the document): 1 found, 0 absent or empty. */
static int xstr(struct dom_ctx *c, xmlNodePtr node, const char *expr, char *out, size_t outlen)
{
	c->xp->node = node ? node : xmlDocGetRootElement(c->doc);
	xmlChar *v = NULL;
	xmlXPathObjectPtr r = xmlXPathEvalExpression((const xmlChar *)expr, c->xp);
	if (r)
		v = xmlXPathCastToString(r);
	xmlXPathFreeObject(r);
	int found = v && v[0];
	snprintf(out, outlen, "%s", found ? (const char *)v : "");
	xmlFree(v);
	return found;
}

/* The nodes @expr selects (free with xmlXPathFreeObject). */
static xmlXPathObjectPtr xnodes(struct dom_ctx *c, const char *expr)
{
	c->xp->node = xmlDocGetRootElement(c->doc);
	return xmlXPathEvalExpression((const xmlChar *)expr, c->xp);
}

static int node_count(xmlXPathObjectPtr r)
{
	return r && r->nodesetval ? r->nodesetval->nodeNr : 0;
}

/* libvirt's memory units (docs: formatdomain "Memory Allocation"); default KiB. */
static int memory_mib(struct dom_ctx *c, uint64_t *mib)
{
	static const struct {
		const char *unit;
		uint64_t bytes;
	} units[] = {
		{ "b", 1 },	     { "bytes", 1 },	     { "KB", 1000 },	     { "k", 1024 },
		{ "KiB", 1024 },     { "MB", 1000000 },	     { "M", 1u << 20 },	     { "MiB", 1u << 20 },
		{ "GB", 1000000000 }, { "G", 1u << 30 },     { "GiB", 1u << 30 },    { "TB", 1000000000000 },
		{ "T", 1ull << 40 }, { "TiB", 1ull << 40 },
	};
	char val[64], unit[16];
	uint64_t n, mult = 0;

	if (!xstr(c, NULL, "string(/domain/memory)", val, sizeof(val)))
		return fail(c, -EINVAL, "<memory> is missing");
	if (!xstr(c, NULL, "string(/domain/memory/@unit)", unit, sizeof(unit)))
		snprintf(unit, sizeof(unit), "KiB");
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (strcmp(unit, units[i].unit) == 0)
			mult = units[i].bytes;
	if (!mult)
		return fail(c, -EINVAL, "<memory unit='%s'>: unknown unit", unit);
	if (parse_u64(val, 0, UINT64_MAX / mult, &n))
		return fail(c, -EINVAL, "<memory>%s</memory>: not a size", val);
	uint64_t bytes = n * mult;
	if (bytes % (1u << 20))
		return fail(c, -EINVAL, "<memory>: %" PRIu64 " bytes is not a whole number of MiB", bytes);
	*mib = bytes >> 20;
	if (*mib < MACHINE_MIN_MEM_MIB || *mib > MACHINE_MAX_MEM_MIB)
		return fail(c, -EINVAL, "<memory>: %" PRIu64 " MiB, ftvm runs %u..%u MiB", *mib,
			    MACHINE_MIN_MEM_MIB, MACHINE_MAX_MEM_MIB);
	return 0;
}

static int read_os(struct dom_ctx *c, struct domain_def *d)
{
	char arch[32], machine[64], buf[32];

	xstr(c, NULL, "string(/domain/os/type/@arch)", arch, sizeof(arch));
	xstr(c, NULL, "string(/domain/os/type/@machine)", machine, sizeof(machine));
	if (strcmp(arch, "riscv64") != 0 || strncmp(machine, "virt", 4) != 0)
		return fail(c, -EINVAL,
			    "<os><type arch='%s' machine='%s'>: ftvm runs arch='riscv64' machine='virt'",
			    arch, machine);
	if (xstr(c, NULL, "string(/domain/vcpu)", buf, sizeof(buf)) && strcmp(buf, "1") != 0)
		return fail(c, -EINVAL, "<vcpu>%s</vcpu>: ftvm runs exactly one vCPU", buf);
	xstr(c, NULL, "string(/domain/os/kernel)", d->kernel, sizeof(d->kernel));
	xstr(c, NULL, "string(/domain/os/initrd)", d->initrd, sizeof(d->initrd));
	xstr(c, NULL, "string(/domain/os/cmdline)", d->cmdline, sizeof(d->cmdline));
	xstr(c, NULL, "string(/domain/os/loader)", d->loader, sizeof(d->loader));
	if (d->initrd[0] && !d->kernel[0])
		return fail(c, -EINVAL, "<os><initrd> without <os><kernel>");
	return 0;
}

static const char *virt_error(void)
{
	virErrorPtr e = virGetLastError();
	return e && e->message ? e->message : "unknown error";
}

static int connect_libvirt(struct dom_ctx *c, const char *why)
{
	if (c->conn)
		return 0;
	c->conn = virConnectOpenReadOnly(c->connect_uri);
	if (!c->conn)
		return fail(c, -ENOENT, "%s: cannot connect to libvirt at %s: %s", why,
			    c->connect_uri ? c->connect_uri : "the default URI", virt_error());
	return 0;
}

/* <disk type='volume'><source pool volume>: the volume's path, from libvirt. */
static int volume_path(struct dom_ctx *c, const char *pool, const char *vol, char *out, size_t outlen)
{
	char what[240];
	snprintf(what, sizeof(what), "<disk> volume '%.100s' of pool '%.100s'", vol, pool);
	int rc = connect_libvirt(c, what);
	if (rc < 0)
		return rc;
	virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
	if (!p)
		return fail(c, -ENOENT, "%s: no such pool: %s", what, virt_error());
	virStorageVolPtr v = virStorageVolLookupByName(p, vol);
	char *path = v ? virStorageVolGetPath(v) : NULL;
	if (!path)
		rc = fail(c, -ENOENT, "%s: %s", what, virt_error());
	else
		snprintf(out, outlen, "%s", path);
	free(path);
	if (v)
		virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

/* Percent-encodes src into out for an NBD URI: anything but unreserved characters and '/'. */
static int uri_encode(const char *src, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			     strchr("-._~/", *p);
		if (o + (plain ? 1 : 3) >= outlen)
			return -ENAMETOOLONG;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* <disk type='network'><source protocol='nbd' name='EXPORT'><host transport='unix' socket='PATH'/>
 * (or <host name='HOST' port='PORT'/>): the NBD URI, checked like a --disk URI. */
static int network_disk(struct dom_ctx *c, xmlNodePtr node, char *out, size_t outlen)
{
	/* Each buffer holds more than its part may have, so that a longer value is refused below
	 * (by the encoder or the URI parser), never cut silently into another valid name. */
	char protocol[32], tls[16], name[DOMAIN_PATH_MAX], transport[16], socket[DOMAIN_PATH_MAX];
	char host[NBD_URI_MAX_HOST + 2], port[16], enc_name[DOMAIN_PATH_MAX], enc_sock[DOMAIN_PATH_MAX];
	char why[512];
	xmlXPathObjectPtr hosts;
	int nhosts, n;

	if (!xstr(c, node, "string(source/@protocol)", protocol, sizeof(protocol)) || strcmp(protocol, "nbd") != 0)
		return fail(c, -EINVAL, "<disk type='network'> with <source protocol='%s'>: only nbd is supported",
			    protocol);
	if (xstr(c, node, "string(source/@tls)", tls, sizeof(tls)) && strcmp(tls, "no") != 0)
		return fail(c, -EINVAL, "<disk type='network'> with <source tls='%s'>: NBD over TLS is not supported",
			    tls);
	c->xp->node = node;
	hosts = xmlXPathEvalExpression((const xmlChar *)"source/host", c->xp);
	nhosts = node_count(hosts);
	xmlXPathFreeObject(hosts);
	if (nhosts != 1)
		return fail(c, -EINVAL, "<disk type='network'>: expected exactly one <source><host>, found %d", nhosts);
	xstr(c, node, "string(source/@name)", name, sizeof(name));
	if (!xstr(c, node, "string(source/host/@transport)", transport, sizeof(transport)))
		snprintf(transport, sizeof(transport), "tcp");
	if (uri_encode(name, enc_name, sizeof(enc_name)) < 0)
		return fail(c, -EINVAL, "<disk type='network'>: export name too long");
	if (strcmp(transport, "unix") == 0) {
		if (!xstr(c, node, "string(source/host/@socket)", socket, sizeof(socket)))
			return fail(c, -EINVAL, "<disk type='network'>: <host transport='unix'> without socket");
		if (uri_encode(socket, enc_sock, sizeof(enc_sock)) < 0)
			return fail(c, -EINVAL, "<disk type='network'>: socket path too long");
		n = snprintf(out, outlen, "nbd+unix:///%s?socket=%s", enc_name, enc_sock);
	} else if (strcmp(transport, "tcp") == 0) {
		if (!xstr(c, node, "string(source/host/@name)", host, sizeof(host)))
			return fail(c, -EINVAL, "<disk type='network'>: <host> without name");
		bool v6 = strchr(host, ':') != NULL;
		if (!xstr(c, node, "string(source/host/@port)", port, sizeof(port)))
			snprintf(port, sizeof(port), "%u", NBD_URI_DEFAULT_PORT);
		n = snprintf(out, outlen, "nbd://%s%s%s:%s/%s", v6 ? "[" : "", host, v6 ? "]" : "", port, enc_name);
	} else {
		return fail(c, -EINVAL, "<disk type='network'>: <host transport='%s'>: expected tcp or unix", transport);
	}
	if (n < 0 || (size_t)n >= outlen)
		return fail(c, -EINVAL, "<disk type='network'>: the NBD URI would be too long");
	int rc = nbd_uri_check(out, why, sizeof(why));
	return rc < 0 ? fail(c, rc, "<disk type='network'>: %s", why) : 0;
}

static int read_disks(struct dom_ctx *c, struct domain_def *d)
{
	xmlXPathObjectPtr r = xnodes(c, "/domain/devices/disk");
	int n = node_count(r), rc = 0;

	for (int i = 0; i < n && rc == 0; i++) {
		xmlNodePtr node = r->nodesetval->nodeTab[i];
		char type[32], device[32], bus[32], src[DOMAIN_PATH_MAX], pool[DOMAIN_STR_MAX];
		xstr(c, node, "string(@type)", type, sizeof(type));
		if (!xstr(c, node, "string(@device)", device, sizeof(device)))
			snprintf(device, sizeof(device), "disk");
		if (strcmp(device, "disk") != 0) {
			rc = fail(c, -EINVAL, "<disk device='%s'>: ftvm has only virtio disks", device);
			break;
		}
		if (xstr(c, node, "string(target/@bus)", bus, sizeof(bus)) && strcmp(bus, "virtio") != 0) {
			rc = fail(c, -EINVAL, "<disk> with <target bus='%s'>: ftvm disks are virtio", bus);
			break;
		}
		if (d->ndisks == MACHINE_MAX_DISKS) {
			rc = fail(c, -EINVAL, "more than %u <disk> elements", MACHINE_MAX_DISKS);
			break;
		}
		char *dst = d->disk[d->ndisks], format[32];
		if (xstr(c, node, "string(driver/@type)", format, sizeof(format)) && strcmp(format, "raw") != 0) {
			rc = fail(c, -EINVAL,
				  "<disk> with <driver type='%s'>: ftvm reads raw disks; serve the image with "
				  "qemu-storage-daemon and give it as <disk type='network'> with <source protocol='nbd'>",
				  format);
			break;
		}
		if (strcmp(type, "file") == 0 && xstr(c, node, "string(source/@file)", src, sizeof(src))) {
			snprintf(dst, DOMAIN_PATH_MAX, "%s", src);
		} else if (strcmp(type, "block") == 0 &&
			   xstr(c, node, "string(source/@dev)", src, sizeof(src))) {
			snprintf(dst, DOMAIN_PATH_MAX, "%s", src);
		} else if (strcmp(type, "volume") == 0 &&
			   xstr(c, node, "string(source/@pool)", pool, sizeof(pool)) &&
			   xstr(c, node, "string(source/@volume)", src, sizeof(src))) {
			rc = volume_path(c, pool, src, dst, DOMAIN_PATH_MAX);
		} else if (strcmp(type, "network") == 0) {
			rc = network_disk(c, node, dst, DOMAIN_PATH_MAX);
		} else {
			rc = fail(c, -EINVAL,
				  "<disk type='%s'>: expected type 'file' with <source file>, 'block' with "
				  "<source dev>, 'volume' with <source pool volume>, or 'network' with <source protocol='nbd'>",
				  type);
		}
		d->ndisks += rc == 0;
	}
	xmlXPathFreeObject(r);
	return rc;
}

/* The bridge a network device is a port of ("" if none), from sysfs. */
static void port_of(const char *ifname, char *bridge, size_t len)
{
	char link[64], target[DOMAIN_PATH_MAX];
	snprintf(link, sizeof(link), "/sys/class/net/%s/master", ifname);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	bridge[0] = '\0';
	if (n > 0) {
		target[n] = '\0';
		const char *slash = strrchr(target, '/');
		snprintf(bridge, len, "%.15s", slash ? slash + 1 : target); /* IFNAMSIZ - 1 */
	}
}

static int check_port(struct dom_ctx *c, const char *ifname, const char *bridge, const char *what)
{
	char master[IFNAMSIZ + 16];
	port_of(ifname, master, sizeof(master));
	if (strcmp(master, bridge) != 0)
		return fail(c, -EINVAL, "<interface> %s: TAP device %s is %s%s, not a port of bridge %s",
			    what, ifname, master[0] ? "a port of " : "on no bridge", master, bridge);
	return 0;
}

static int read_nic(struct dom_ctx *c, xmlNodePtr node, struct domain_nic *nic)
{
	char type[32], dev[64], model[32], mac[32], bridge[DOMAIN_STR_MAX], net[DOMAIN_STR_MAX];

	xstr(c, node, "string(@type)", type, sizeof(type));
	if (!xstr(c, node, "string(target/@dev)", dev, sizeof(dev)) || strlen(dev) >= IFNAMSIZ)
		return fail(c, -EINVAL,
			    "<interface type='%s'> needs <target dev='TAP'> (1..%d characters): ftvm "
			    "attaches to an existing TAP device",
			    type, IFNAMSIZ - 1);
	snprintf(nic->ifname, sizeof(nic->ifname), "%s", dev);
	if (xstr(c, node, "string(model/@type)", model, sizeof(model)) && strcmp(model, "virtio") != 0)
		return fail(c, -EINVAL, "<interface> %s: <model type='%s'>: ftvm NICs are virtio", dev,
			    model);
	if (xstr(c, node, "string(mac/@address)", mac, sizeof(mac))) {
		if (parse_mac(mac, nic->mac))
			return fail(c, -EINVAL, "<interface> %s: <mac address='%s'>: not a unicast MAC",
				    dev, mac);
		nic->has_mac = true;
	}
	if (strcmp(type, "ethernet") == 0)
		return 0;
	if (strcmp(type, "bridge") == 0) {
		if (!xstr(c, node, "string(source/@bridge)", bridge, sizeof(bridge)))
			return fail(c, -EINVAL, "<interface type='bridge'> %s without <source bridge>", dev);
		return check_port(c, dev, bridge, "type 'bridge'");
	}
	if (strcmp(type, "network") == 0) {
		if (!xstr(c, node, "string(source/@network)", net, sizeof(net)))
			return fail(c, -EINVAL, "<interface type='network'> %s without <source network>",
				    dev);
		char what[DOMAIN_STR_MAX + 32];
		snprintf(what, sizeof(what), "network '%.200s'", net);
		int rc = connect_libvirt(c, what);
		if (rc < 0)
			return rc;
		virNetworkPtr n = virNetworkLookupByName(c->conn, net);
		char *br = n ? virNetworkGetBridgeName(n) : NULL;
		if (!br)
			rc = fail(c, -ENOENT, "<interface> %s: %s: %s", dev, what, virt_error());
		else
			rc = check_port(c, dev, br, what);
		free(br);
		if (n)
			virNetworkFree(n);
		return rc;
	}
	return fail(c, -EINVAL,
		    "<interface type='%s'> %s: ftvm takes type 'ethernet', 'bridge' or 'network'", type,
		    dev);
}

static int read_devices(struct dom_ctx *c, struct domain_def *d)
{
	static const char *const refused[] = { "hostdev", "graphics", "video", "sound", "filesystem",
					       "smartcard", "tpm", "shmem", "iommu" };
	char expr[96];
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		snprintf(expr, sizeof(expr), "/domain/devices/%s", refused[i]);
		xmlXPathObjectPtr r = xnodes(c, expr);
		int n = node_count(r);
		xmlXPathFreeObject(r);
		if (n)
			return fail(c, -EINVAL, "<%s>: ftvm has no such device", refused[i]);
	}
	rc = read_disks(c, d);
	if (rc < 0)
		return rc;
	xmlXPathObjectPtr r = xnodes(c, "/domain/devices/interface");
	int n = node_count(r);
	if (n > MACHINE_MAX_NICS)
		rc = fail(c, -EINVAL, "%d <interface> elements, ftvm has at most %u", n, MACHINE_MAX_NICS);
	for (int i = 0; i < n && rc == 0; i++) {
		rc = read_nic(c, r->nodesetval->nodeTab[i], &d->nic[i]);
		d->nnics += rc == 0;
	}
	xmlXPathFreeObject(r);
	if (rc < 0)
		return rc;
	r = xnodes(c, "/domain/devices/rng");
	n = node_count(r);
	for (int i = 0; i < n && rc == 0; i++) {
		char model[32];
		xstr(c, r->nodesetval->nodeTab[i], "string(@model)", model, sizeof(model));
		if (strcmp(model, "virtio") != 0)
			rc = fail(c, -EINVAL, "<rng model='%s'>: ftvm's RNG is virtio", model);
	}
	d->rng = n > 0;
	xmlXPathFreeObject(r);
	return rc;
}

static int ft_number(struct dom_ctx *c, xmlNodePtr ft, const char *attr, uint64_t max, uint64_t *v,
		     bool *has)
{
	char expr[64], val[32];
	snprintf(expr, sizeof(expr), "string(@%s)", attr);
	if (!xstr(c, ft, expr, val, sizeof(val)))
		return 0;
	if (parse_u64(val, 0, max, v))
		return fail(c, -EINVAL, "<ftvm:ft %s='%s'>: expected an integer up to %" PRIu64, attr, val,
			    max);
	*has = true;
	return 0;
}

static int read_ft(struct dom_ctx *c, struct domain_ft *f)
{
	xmlXPathObjectPtr r = xnodes(c, "/domain/metadata/ftvm:ft");
	int n = node_count(r), rc = 0;
	uint64_t v;

	if (n > 1)
		rc = fail(c, -EINVAL, "%d <ftvm:ft> elements in <metadata>, expected one", n);
	if (n == 1 && rc == 0) {
		xmlNodePtr ft = r->nodesetval->nodeTab[0];
		f->present = true;
		xstr(c, ft, "string(@arbiter)", f->arbiter, sizeof(f->arbiter));
		xstr(c, ft, "string(@peer)", f->peer, sizeof(f->peer));
		xstr(c, ft, "string(@listen)", f->listen, sizeof(f->listen));
		xstr(c, ft, "string(@control)", f->control, sizeof(f->control));
		xstr(c, ft, "string(@channel-key)", f->channel_key, sizeof(f->channel_key));
		xstr(c, ft, "string(@log-transport)", f->log_transport, sizeof(f->log_transport));
		if (f->log_transport[0] && strcmp(f->log_transport, "tcp") != 0 &&
		    strcmp(f->log_transport, "rdma") != 0)
			rc = fail(c, -EINVAL, "<ftvm:ft log-transport='%s'>: expected tcp or rdma",
				  f->log_transport);
		xstr(c, ft, "string(@disk-mode)", f->disk_mode, sizeof(f->disk_mode));
		if (rc == 0 && f->disk_mode[0] && strcmp(f->disk_mode, "replicated") != 0 &&
		    strcmp(f->disk_mode, "shared") != 0)
			rc = fail(c, -EINVAL, "<ftvm:ft disk-mode='%s'>: expected replicated or shared", f->disk_mode);
		if (rc == 0)
			rc = ft_number(c, ft, "epoch", UINT64_MAX, &f->epoch, &f->has_epoch);
		if (rc == 0 && f->has_epoch && f->epoch == 0)
			rc = fail(c, -EINVAL, "<ftvm:ft epoch='0'>: epochs start at 1");
		if (rc == 0 && (rc = ft_number(c, ft, "timeout-ms", 600000, &v, &f->has_timeout)) == 0)
			f->timeout_ms = (unsigned)v;
		if (rc == 0 && (rc = ft_number(c, ft, "heartbeat-ms", 600000, &v, &f->has_heartbeat)) == 0)
			f->heartbeat_ms = (unsigned)v;
		if (rc == 0 && (rc = ft_number(c, ft, "max-lag-ms", 600000, &v, &f->has_max_lag)) == 0)
			f->max_lag_ms = (unsigned)v;
	}
	xmlXPathFreeObject(r);
	return rc;
}

static void quiet_xml_errors(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void quiet_virt_errors(void *ctx, virErrorPtr e)
{
	(void)ctx;
	(void)e;
}

int domain_load(const char *path, const char *connect_uri, struct domain_def *d, char *err,
		size_t errlen)
{
	struct dom_ctx c = { .path = path, .connect_uri = connect_uri, .err = err, .errlen = errlen };
	int rc;

	memset(d, 0, sizeof(*d));
	xmlSetGenericErrorFunc(NULL, quiet_xml_errors);
	c.doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!c.doc) {
		const xmlError *e = xmlGetLastError();
		if (access(path, R_OK) != 0)
			return fail(&c, -ENOENT, "cannot read it: %s", strerror(errno));
		return fail(&c, -EINVAL, "not well-formed XML (line %d): %s", e ? e->line : 0,
			    e && e->message ? e->message : "parse error");
	}
	/* libvirt's own diagnostics go to our messages, not to stderr. */
	virSetErrorFunc(NULL, quiet_virt_errors);
	c.xp = xmlXPathNewContext(c.doc);
	xmlNodePtr root = xmlDocGetRootElement(c.doc);
	if (!c.xp || xmlXPathRegisterNs(c.xp, (const xmlChar *)"ftvm", (const xmlChar *)DOMAIN_FT_NS)) {
		rc = fail(&c, -ENOMEM, "cannot set up XPath");
	} else if (!root || xmlStrcmp(root->name, (const xmlChar *)"domain") != 0) {
		rc = fail(&c, -EINVAL, "the root element is <%s>, expected a libvirt <domain>",
			  root ? (const char *)root->name : "");
	} else {
		xstr(&c, NULL, "string(/domain/name)", d->name, sizeof(d->name));
		rc = d->name[0] ? 0 : fail(&c, -EINVAL, "<name> is missing");
		if (rc == 0)
			rc = memory_mib(&c, &d->mem_mib);
		if (rc == 0)
			rc = read_os(&c, d);
		if (rc == 0)
			rc = read_devices(&c, d);
		if (rc == 0)
			rc = read_ft(&c, &d->ft);
	}
	if (c.conn)
		virConnectClose(c.conn);
	xmlXPathFreeContext(c.xp);
	xmlFreeDoc(c.doc);
	return rc;
}
