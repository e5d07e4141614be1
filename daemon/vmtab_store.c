/*
 * vmtab_store.c — the table's state directory: each definition in vms/NAME.xml, written durably
 * (a scratch file, synced, renamed over the old one), and all of them loaded at open, with the
 * processes an earlier daemon left running found again (vm_proc_adopt()).
 */
#define DIAG_MODULE "vmtab"
#include "daemon/vmtab_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/diag.h"

void vmtab_xml_path(const struct vmtab *t, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.xml", t->vms_dir, name);
}

static void note_path(const struct vmtab *t, const char *name, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.%s", t->vms_dir, name, ext);
}

void vmtab_def_path(const struct vmtab *t, const struct vm *vm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.xml", vm->transient ? t->run_dir : t->vms_dir, vm->name);
}

/* A note is a small file beside the definition: written to a scratch file, synced and renamed,
 * or removed; then the directory is synced, so the note's presence is durable too. */
int vmtab_store_note(struct vmtab *t, const char *name, const char *ext, const char *text, char *err, size_t errlen)
{
	char path[4200], tmp[4300];
	note_path(t, name, ext, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int ret = 0;
	if (text) {
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		size_t len = strlen(text);
		if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
			ret = errno ? -errno : -EIO;
		if (fd >= 0 && close(fd) < 0 && !ret)
			ret = -errno;
		if (!ret && rename(tmp, path) < 0)
			ret = -errno;
		if (ret)
			unlink(tmp);
	} else if (unlink(path) < 0 && errno != ENOENT) {
		ret = -errno;
	}
	int dfd = ret ? -1 : open(t->vms_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!ret && (dfd < 0 || fsync(dfd) < 0))
		ret = -errno;
	if (dfd >= 0)
		close(dfd);
	if (ret)
		snprintf(err, errlen, "cannot %s %s: %s", text ? "write" : "remove", path, strerror(-ret));
	return ret;
}

/* The note's text (at most len - 1 bytes, up to the first newline) into buf: true if there is one. */
static bool read_note(const struct vmtab *t, const char *name, const char *ext, char *buf, size_t len)
{
	char path[4200];
	note_path(t, name, ext, path, sizeof(path));
	buf[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return true;
}

/* The definition, durably: a scratch file synced and renamed over the old one. */
int vmtab_store_xml(struct vmtab *t, const struct vm *vm, char *err, size_t errlen)
{
	char path[4200], tmp[4300];
	vmtab_def_path(t, vm, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(vm->xml), done = 0;
	while (fd >= 0 && done < len) {
		ssize_t n = write(fd, vm->xml + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	int ret = fd < 0 || done < len || fsync(fd) < 0 ? -errno : 0;
	if (fd >= 0 && close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "cannot store the definition %s: %s", path, strerror(-ret ? -ret : EIO));
		unlink(tmp);
	}
	return ret ? ret : 0;
}

int vmtab_make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", path);
		return -ENOTDIR;
	}
	/* Pid files, definitions and sockets are written there by name: no one else may plant a
	 * symbolic link or a file in it. */
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "%s must be owned by uid %u and writable by no one else (it is uid %u, mode %03o)",
			 path, (unsigned)geteuid(), (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

/* One stored definition, and its process if an earlier daemon left it running; a transient VM's
 * (in run/) only with its process, else its definition is removed. */
static void load_one(struct vmtab *t, const char *dir, const char *file, bool transient)
{
	char path[8192], err[512];
	size_t len = strlen(file);
	if (len < 5 || strcmp(file + len - 4, ".xml") != 0 || file[0] == '.')
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "re");
	char *buf = f ? malloc(DOMAIN_DOC_MAX + 1) : NULL;
	size_t n = buf ? fread(buf, 1, DOMAIN_DOC_MAX + 1, f) : 0;
	if (f)
		fclose(f);
	struct domain_doc doc = { 0 };
	struct vm *vm = NULL;
	int ret = !buf ? -EIO : n > DOMAIN_DOC_MAX ? -EFBIG : 0;
	if (!ret) {
		buf[n] = 0;
		ret = domain_doc_parse(buf, n, t->run_dir, &doc, err, sizeof(err));
	}
	if (!ret && (strncmp(file, doc.name, len - 4) || strlen(doc.name) != len - 4)) {
		snprintf(err, sizeof(err), "it defines VM %s", doc.name);
		ret = -EINVAL;
	}
	if (!ret && vmtab_find_uuid(t, doc.uuid)) {
		snprintf(err, sizeof(err), "its UUID is another VM's");
		ret = -EEXIST;
	}
	if (!ret && vmtab_find_name(t, doc.name, NULL)) {
		snprintf(err, sizeof(err), "its name is a defined VM's");
		ret = -EEXIST;
	}
	if (!ret && !(vm = calloc(1, sizeof(*vm))))
		ret = -ENOMEM;
	if (!ret) {
		vmtab_take_doc(vm, &doc);
		vm->state = VMTAB_SHUTOFF;
		vm->transient = transient;
		char note[sizeof(vm->pair)];
		vm->autostart = read_note(t, vm->name, VMTAB_NOTE_AUTOSTART, note, sizeof(note));
		vm->spare = read_note(t, vm->name, VMTAB_NOTE_SPARE, note, sizeof(note));
		if (read_note(t, vm->name, VMTAB_NOTE_PAIR, note, sizeof(note)))
			snprintf(vm->pair, sizeof(vm->pair), "%s", note);
		if (vm_proc_adopt(t->run_dir, vm->name, &vm->proc) == 0) {
			vm->state = VMTAB_RUNNING;
			vm->reason = VMTAB_REASON_UNKNOWN;
			snprintf(vm->ft_role, sizeof(vm->ft_role), "%s", !strcmp(vm->proc.role, "run") ? "off" : vm->proc.role);
			if (vm->proc.id >= t->next_id)
				t->next_id = vm->proc.id + 1;
			diag_info("%s: found running as process %d", vm->name, (int)vm->proc.pid);
		} else if (transient) {
			unlink(path);   /* its process is gone, and the VM with it */
			vmtab_vm_free(vm);
			vm = NULL;
		}
		if (vm && vmtab_insert(t, vm)) {
			vmtab_vm_free(vm);
			ret = -ENOMEM;
		}
	}
	if (ret)
		diag_warn("definition %s ignored: %s", path, ret == -ENOMEM ? "out of memory" : err);
	domain_doc_free(&doc);
	free(buf);
}

int vmtab_load_all(struct vmtab *t, char *err, size_t errlen)
{
	DIR *d = opendir(t->vms_dir);
	if (!d) {
		snprintf(err, errlen, "cannot read %s: %s", t->vms_dir, strerror(errno));
		return -errno;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		load_one(t, t->vms_dir, e->d_name, false);
	closedir(d);
	/* Transient VMs after the persistent ones: a name defined in vms/ wins. */
	if ((d = opendir(t->run_dir)) != NULL) {
		while ((e = readdir(d)) != NULL)
			load_one(t, t->run_dir, e->d_name, true);
		closedir(d);
	}
	return 0;
}
