/*
 * elf.c — the bare-metal ELF loader (see elf.h).
 *
 * The file is read whole (capped at ELF_MAX_FILE_SIZE), its headers are validated against the
 * file size before anything is copied, and each PT_LOAD segment goes to guest RAM through
 * bus_ram_range(); a segment outside RAM is written byte by byte through the bus, which lets a
 * writable region take it and turns an unmapped address into an error.
 */
#include "vm/elf.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bare-metal program or kernel image larger than this is certainly a mistake. */
#define ELF_MAX_FILE_SIZE (1ull << 30)

static int read_whole_file(const char *path, uint8_t **data, size_t *size, char *err, size_t errlen)
{
	int ret = 0;
	uint8_t *buf = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return ret;
	}
	if (fseek(f, 0, SEEK_END) != 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot seek: %s", path, strerror(errno));
		goto out;
	}
	long len = ftell(f);
	if (len < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot read size: %s", path, strerror(errno));
		goto out;
	}
	if ((unsigned long long)len > ELF_MAX_FILE_SIZE) {
		ret = -EFBIG;
		snprintf(err, errlen, "%s: file too large (%ld bytes)", path, len);
		goto out;
	}
	rewind(f);
	buf = malloc(len ? (size_t)len : 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		ret = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	*data = buf;
	*size = (size_t)len;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return ret;
}

static int check_header(const Elf64_Ehdr *eh, size_t size, const char *path, char *err, size_t errlen)
{
	if (size < EI_NIDENT || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
		snprintf(err, errlen, "%s: not an ELF file", path);
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64) {
		snprintf(err, errlen, "%s: not a 64-bit ELF (class %u)", path, eh->e_ident[EI_CLASS]);
		return -ENOEXEC;
	}
	if (size < sizeof(*eh)) {
		snprintf(err, errlen, "%s: truncated ELF header (%zu bytes)", path, size);
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB) {
		snprintf(err, errlen, "%s: not a little-endian ELF", path);
		return -ENOEXEC;
	}
	if (eh->e_machine != EM_RISCV) {
		snprintf(err, errlen, "%s: not a RISC-V ELF (machine %u)", path, eh->e_machine);
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) {
		snprintf(err, errlen, "%s: not an executable ELF (type %u)", path, eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phnum == 0) {
		snprintf(err, errlen, "%s: ELF has no program headers", path);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff) {
		snprintf(err, errlen, "%s: truncated or malformed program header table", path);
		return -ENOEXEC;
	}
	return 0;
}

/* Copies filesz bytes of src then zero-fills up to memsz at guest physical address paddr. */
static int load_segment(struct vm_bus *bus, uint64_t paddr, const uint8_t *src, uint64_t filesz, uint64_t memsz)
{
	uint8_t *dst = bus_ram_range(bus, paddr, memsz);
	if (dst) {
		memcpy(dst, src, filesz);
		memset(dst + filesz, 0, memsz - filesz);
		return 0;
	}
	for (uint64_t i = 0; i < memsz; i++)
		if (bus_write(bus, paddr + i, 1, i < filesz ? src[i] : 0) != 0)
			return -EFAULT;
	return 0;
}

int elf_load(struct vm_bus *bus, const char *path, uint64_t *entry, char *err, size_t errlen)
{
	uint8_t *data = NULL;
	size_t size = 0;
	int ret = read_whole_file(path, &data, &size, err, errlen);
	if (ret)
		return ret;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
	ret = check_header(eh, size, path, err, errlen);
	if (ret)
		goto out;

	unsigned loaded = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, data + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > size || ph.p_filesz > size - ph.p_offset) {
			snprintf(err, errlen, "%s: segment %u is truncated (offset 0x%llx, size 0x%llx, file 0x%zx)",
				 path, i, (unsigned long long)ph.p_offset, (unsigned long long)ph.p_filesz, size);
			ret = -ENOEXEC;
			goto out;
		}
		if (ph.p_paddr + ph.p_memsz < ph.p_paddr ||
		    load_segment(bus, ph.p_paddr, data + ph.p_offset, ph.p_filesz, ph.p_memsz) != 0) {
			snprintf(err, errlen, "%s: segment %u [0x%llx, 0x%llx) lies outside guest RAM [0x%llx, 0x%llx)",
				 path, i, (unsigned long long)ph.p_paddr,
				 (unsigned long long)(ph.p_paddr + ph.p_memsz), (unsigned long long)bus->ram_base,
				 (unsigned long long)(bus->ram_base + bus->ram_size));
			ret = -ERANGE;
			goto out;
		}
		loaded++;
	}
	if (loaded == 0) {
		snprintf(err, errlen, "%s: ELF has no loadable segments", path);
		ret = -ENOEXEC;
		goto out;
	}
	*entry = eh->e_entry;
out:
	free(data);
	return ret;
}
