/*
 * boot.c — loads the power-on images and writes the reset ROM (see boot.h).
 *
 * Raw images are read straight into guest RAM after checking that they fit; an ELF kernel goes
 * through elf_load(). The reset vector is assembled here from named encodings rather than copied
 * as opaque words, so it can be read: six instructions, two addresses, then fw_dynamic_info.
 */
#include "vm/boot.h"

#include <elf.h>
#include <libfdt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/board.h"
#include "vm/elf.h"

#define MIB (1024ull * 1024ull)
#define BOOT_ALIGN (2 * MIB)
#define BOOT_INITRD_MAX_OFFSET (128 * MIB)
#define BOOT_FDT_LIMIT 0xc0000000ull  /* keep the DTB below 3 GiB for 32-bit addressing */
#define BOOT_FDT_BUFFER (64 * 1024)

/* fw_dynamic_info (OpenSBI include/sbi/fw_dynamic.h): six XLEN words. */
#define FW_DYNAMIC_INFO_MAGIC 0x4942534full  /* "OSBI" */
#define FW_DYNAMIC_INFO_VERSION 2
#define FW_DYNAMIC_INFO_NEXT_MODE_S 1

/* Registers and encodings used by the reset vector. */
enum { REG_ZERO = 0, REG_T0 = 5, REG_A0 = 10, REG_A1 = 11, REG_A2 = 12 };
#define CSR_MHARTID 0xf14u
#define OPC_AUIPC 0x17u
#define OPC_OP_IMM 0x13u
#define OPC_LOAD 0x03u
#define OPC_JALR 0x67u
#define OPC_SYSTEM 0x73u
#define FUNCT3_ADDI 0u
#define FUNCT3_LD 3u
#define FUNCT3_CSRRS 2u

static uint32_t enc_i(uint32_t opc, uint32_t funct3, unsigned rd, unsigned rs1, uint32_t imm12)
{
	return (imm12 & 0xfffu) << 20 | (uint32_t)rs1 << 15 | funct3 << 12 | (uint32_t)rd << 7 | opc;
}

/* Reset vector layout: instructions, then the two addresses they load, then fw_dynamic_info. */
#define ROM_INSNS 6
#define ROM_START_OFF (ROM_INSNS * 4)
#define ROM_FDT_OFF (ROM_START_OFF + 8)
#define ROM_DINFO_OFF (ROM_FDT_OFF + 8)
#define ROM_DINFO_WORDS 6

static void put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_rom(uint8_t *rom, size_t rom_size, uint64_t start, uint64_t fdt, uint64_t next_addr)
{
	const uint32_t insns[ROM_INSNS] = {
		OPC_AUIPC | REG_T0 << 7,                                       /* auipc t0, 0 */
		enc_i(OPC_OP_IMM, FUNCT3_ADDI, REG_A2, REG_T0, ROM_DINFO_OFF), /* addi a2, t0, dinfo */
		enc_i(OPC_SYSTEM, FUNCT3_CSRRS, REG_A0, REG_ZERO, CSR_MHARTID), /* csrr a0, mhartid */
		enc_i(OPC_LOAD, FUNCT3_LD, REG_A1, REG_T0, ROM_FDT_OFF),       /* ld a1, fdt(t0) */
		enc_i(OPC_LOAD, FUNCT3_LD, REG_T0, REG_T0, ROM_START_OFF),     /* ld t0, start(t0) */
		enc_i(OPC_JALR, 0, REG_ZERO, REG_T0, 0),                        /* jr t0 */
	};
	const uint64_t dinfo[ROM_DINFO_WORDS] = {
		FW_DYNAMIC_INFO_MAGIC, FW_DYNAMIC_INFO_VERSION, next_addr, FW_DYNAMIC_INFO_NEXT_MODE_S,
		0 /* options */, 0 /* boot hart */,
	};
	memset(rom, 0, rom_size);
	for (unsigned i = 0; i < ROM_INSNS; i++)
		for (unsigned b = 0; b < 4; b++)
			rom[i * 4 + b] = (uint8_t)(insns[i] >> (8 * b));
	put64(rom + ROM_START_OFF, start);
	put64(rom + ROM_FDT_OFF, fdt);
	for (unsigned i = 0; i < ROM_DINFO_WORDS; i++)
		put64(rom + ROM_DINFO_OFF + 8 * i, dinfo[i]);
}

/* Reads a whole raw image into guest RAM at addr, bounded by limit; folds its bytes into digest. */
static int load_raw(struct vm_bus *bus, const char *what, const char *path, uint64_t addr, uint64_t limit,
		    XXH3_state_t *digest, uint64_t *size_out, uint64_t *image_digest, char *err, size_t errlen)
{
	int ret = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s %s: cannot open: %s", what, path, strerror(errno));
		return ret;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t *dst = addr <= limit ? bus_ram_range(bus, addr, limit - addr) : NULL;
	if (size == 0) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s %s: file is empty", what, path);
		goto out;
	}
	if (!dst || size > limit - addr) {
		ret = -EFBIG;
		snprintf(err, errlen, "%s %s: %llu bytes do not fit in guest memory at 0x%llx (try a larger --mem)",
			 what, path, (unsigned long long)size, (unsigned long long)addr);
		goto out;
	}
	for (uint64_t done = 0; done < size;) {
		ssize_t n = read(fd, dst + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s %s: read failed: %s", what, path, n < 0 ? strerror(errno) : "short file");
			goto out;
		}
		done += (uint64_t)n;
	}
	XXH3_64bits_update(digest, dst, size);
	*image_digest = XXH3_64bits(dst, size);
	*size_out = size;
out:
	close(fd);
	return ret;
}

/* Folds a file's bytes into digest; *image_digest is the XXH3-64 of the file alone. */
static int hash_file(const char *path, XXH3_state_t *digest, uint64_t *image_digest)
{
	uint8_t buf[65536];
	int ret = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	XXH3_state_t *own = XXH3_createState();
	if (!own) {
		close(fd);
		return -ENOMEM;
	}
	XXH3_64bits_reset(own);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = -errno;
		if (n <= 0)
			break;
		XXH3_64bits_update(digest, buf, (size_t)n);
		XXH3_64bits_update(own, buf, (size_t)n);
	}
	close(fd);
	*image_digest = XXH3_64bits_digest(own);
	XXH3_freeState(own);
	return ret;
}

static bool file_is_elf(const char *path)
{
	unsigned char magic[SELFMAG];
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	bool elf = fread(magic, 1, SELFMAG, f) == SELFMAG && memcmp(magic, ELFMAG, SELFMAG) == 0;
	fclose(f);
	return elf;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int load_kernel(struct vm_bus *bus, const struct machine_config *config, uint64_t fw_end, uint64_t ram_end,
		       XXH3_state_t *digest, struct boot_layout *layout, char *err, size_t errlen)
{
	int ret;
	if (file_is_elf(config->kernel)) {
		char why[256];
		ret = elf_load(bus, config->kernel, &layout->kernel, why, sizeof(why));
		if (ret) {
			snprintf(err, errlen, "kernel %s", why);
			return ret;
		}
		if (config->bios && layout->kernel < fw_end) {
			snprintf(err, errlen, "kernel %s: ELF entry 0x%llx lies inside the firmware (use --bios none?)",
				 config->kernel, (unsigned long long)layout->kernel);
			return -EINVAL;
		}
		ret = hash_file(config->kernel, digest, &layout->kernel_digest);
		if (ret)
			snprintf(err, errlen, "kernel %s: read failed: %s", config->kernel, strerror(-ret));
		return ret;
	}
	uint64_t size;
	layout->kernel = config->bios ? align_up(fw_end, BOOT_ALIGN) : BOARD_RAM_BASE;
	return load_raw(bus, "kernel", config->kernel, layout->kernel, ram_end, digest, &size, &layout->kernel_digest,
			err, errlen);
}

int boot_load(struct vm_bus *bus, uint8_t *rom, size_t rom_size, const struct machine_config *config,
	      XXH3_state_t *digest, struct boot_layout *layout, char *err, size_t errlen)
{
	int ret;
	uint64_t ram_end = bus->ram_base + bus->ram_size;
	uint64_t fw_end = BOARD_RAM_BASE;
	memset(layout, 0, sizeof(*layout));

	/* The DTB first: its place bounds what the kernel and initrd may use. */
	uint8_t fdt[BOOT_FDT_BUFFER];
	uint64_t fdt_top = MIN(ram_end, BOOT_FDT_LIMIT);
	struct board_fdt_params params = { .ram_size = bus->ram_size, .bootargs = config->append };
	uint64_t initrd_size = 0;

	if (config->bios) {
		uint64_t size;
		ret = load_raw(bus, "firmware", config->bios, BOARD_RAM_BASE, fdt_top, digest, &size, &layout->bios_digest,
			       err, errlen);
		if (ret)
			return ret;
		fw_end = BOARD_RAM_BASE + size;
	}
	if (config->kernel) {
		ret = load_kernel(bus, config, fw_end, fdt_top, digest, layout, err, errlen);
		if (ret)
			return ret;
	} else {
		layout->kernel = align_up(fw_end, BOOT_ALIGN);
	}
	if (config->initrd) {
		if (!config->kernel) {
			snprintf(err, errlen, "an initrd needs a kernel");
			return -EINVAL;
		}
		layout->initrd_start = layout->kernel + MIN(bus->ram_size / 2, BOOT_INITRD_MAX_OFFSET);
		ret = load_raw(bus, "initrd", config->initrd, layout->initrd_start, fdt_top - BOOT_ALIGN, digest,
			       &initrd_size, &layout->initrd_digest, err, errlen);
		if (ret)
			return ret;
		layout->initrd_end = layout->initrd_start + initrd_size;
		params.initrd_start = layout->initrd_start;
		params.initrd_end = layout->initrd_end;
	}
	ret = board_build_fdt(&params, fdt, sizeof(fdt));
	if (ret) {
		snprintf(err, errlen, "device tree: cannot build (%s): command line too long?", strerror(-ret));
		return ret;
	}
	layout->fdt_size = fdt_totalsize(fdt);
	layout->fdt = (fdt_top - layout->fdt_size) & ~(BOOT_ALIGN - 1);
	uint8_t *dst = bus_ram_range(bus, layout->fdt, layout->fdt_size);
	if (!dst || layout->fdt < layout->initrd_end) {
		snprintf(err, errlen, "device tree: no room at the top of guest memory (try a larger --mem)");
		return -ENOSPC;
	}
	memcpy(dst, fdt, layout->fdt_size);
	XXH3_64bits_update(digest, fdt, layout->fdt_size);
	layout->fdt_digest = XXH3_64bits(fdt, layout->fdt_size);

	layout->start = config->bios ? BOARD_RAM_BASE : layout->kernel;
	write_rom(rom, rom_size, layout->start, layout->fdt, layout->kernel);
	XXH3_64bits_update(digest, rom, rom_size);
	return 0;
}
