/*
 * board.c — the board table and the device tree generated from it with libfdt.
 *
 * The tree follows what `qemu-system-riscv64 -M virt` emits (dumped with `-M virt,dumpdtb=`) for
 * the devices ftvm has: the same node names, compatible strings, phandle wiring and the
 * poweroff/reboot syscon nodes over the test finisher that Linux and OpenSBI use to power off.
 * It deliberately says `rv64imafdc` (no Sstc: the timer goes through SBI) and `riscv,sv39`.
 * Every virtio-mmio slot is listed, as QEMU does; an empty slot answers with device id 0.
 */
#include "vm/board.h"

#include <errno.h>
#include <libfdt.h>
#include <stdio.h>

#include "vm/clock.h"
#include "vm/cpu.h"

const struct board_device board_devices[] = {
	{ BOARD_ROM, "mrom", BOARD_RESET_PC, BOARD_ROM_SIZE, 0 },
	{ BOARD_FINISHER, "test", 0x100000, 0x1000, 0 },
	{ BOARD_CLINT, "clint", 0x2000000, 0x10000, 0 },
	{ BOARD_PLIC, "plic", 0xc000000, 0x600000, 0 },
	{ BOARD_UART, "serial", 0x10000000, 0x100, 10 },
	{ BOARD_VIRTIO, "virtio_mmio", 0x10001000, 0x1000, 1 },
};
const size_t board_ndevices = ARRAY_SIZE(board_devices);

/* Phandles, fixed so the tree is the same on every run. */
enum {
	PHANDLE_CPU = 1,
	PHANDLE_CPU_INTC = 2,
	PHANDLE_PLIC = 3,
	PHANDLE_FINISHER = 4,
};

const struct board_device *board_device_of(enum board_device_kind kind)
{
	for (size_t i = 0; i < board_ndevices; i++)
		if (board_devices[i].kind == kind)
			return &board_devices[i];
	return NULL;
}

/* libfdt calls return 0 or a negative FDT_ERR_*; the first failure ends the build, and
 * board_build_fdt() turns it into an errno. */
#define FDT_TRY(call)                                                                             \
	do {                                                                                      \
		int fdt_rc_ = (call);                                                             \
		if (fdt_rc_ < 0) {                                                                \
			ret = fdt_rc_;                                                            \
			goto out;                                                                 \
		}                                                                                 \
	} while (0)

static int prop_reg(void *fdt, uint64_t base, uint64_t size)
{
	fdt64_t cells[2] = { cpu_to_fdt64(base), cpu_to_fdt64(size) };
	return fdt_property(fdt, "reg", cells, sizeof(cells));
}

static int prop_cells(void *fdt, const char *name, const uint32_t *v, size_t n)
{
	fdt32_t cells[8];
	if (n > ARRAY_SIZE(cells))
		return -FDT_ERR_BADVALUE;
	for (size_t i = 0; i < n; i++)
		cells[i] = cpu_to_fdt32(v[i]);
	return fdt_property(fdt, name, cells, (int)(n * sizeof(cells[0])));
}

/* A string list property ("a\0b\0c"): sizeof includes the final NUL. */
#define PROP_STRINGS(fdt, name, lit) fdt_property((fdt), (name), (lit), sizeof(lit))

static int begin_node_at(void *fdt, const char *name, uint64_t addr)
{
	char node[64];
	snprintf(node, sizeof(node), "%s@%llx", name, (unsigned long long)addr);
	return fdt_begin_node(fdt, node);
}

static int add_syscon_node(void *fdt, const char *name, const char *compatible, uint32_t value)
{
	int ret = 0;
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_u32(fdt, "value", value));
	FDT_TRY(fdt_property_u32(fdt, "offset", 0));
	FDT_TRY(fdt_property_u32(fdt, "regmap", PHANDLE_FINISHER));
	FDT_TRY(fdt_property_string(fdt, "compatible", compatible));
	FDT_TRY(fdt_end_node(fdt));
out:
	return ret;
}

static int add_cpus(void *fdt)
{
	int ret = 0;
	FDT_TRY(fdt_begin_node(fdt, "cpus"));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 1));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 0));
	FDT_TRY(fdt_property_u32(fdt, "timebase-frequency", CLOCK_TIMEBASE_HZ));
	FDT_TRY(fdt_begin_node(fdt, "cpu@0"));
	FDT_TRY(fdt_property_u32(fdt, "phandle", PHANDLE_CPU));
	FDT_TRY(fdt_property_string(fdt, "device_type", "cpu"));
	FDT_TRY(fdt_property_u32(fdt, "reg", 0));
	FDT_TRY(fdt_property_string(fdt, "status", "okay"));
	FDT_TRY(fdt_property_string(fdt, "compatible", "riscv"));
	FDT_TRY(fdt_property_string(fdt, "riscv,isa", BOARD_ISA));
	FDT_TRY(fdt_property_string(fdt, "mmu-type", BOARD_MMU_TYPE));
	FDT_TRY(fdt_begin_node(fdt, "interrupt-controller"));
	FDT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
	FDT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
	FDT_TRY(fdt_property_string(fdt, "compatible", "riscv,cpu-intc"));
	FDT_TRY(fdt_property_u32(fdt, "phandle", PHANDLE_CPU_INTC));
	FDT_TRY(fdt_end_node(fdt)); /* interrupt-controller */
	FDT_TRY(fdt_end_node(fdt)); /* cpu@0 */
	FDT_TRY(fdt_end_node(fdt)); /* cpus */
out:
	return ret;
}

static int add_irq_client(void *fdt, unsigned irq)
{
	int ret = 0;
	FDT_TRY(fdt_property_u32(fdt, "interrupts", irq));
	FDT_TRY(fdt_property_u32(fdt, "interrupt-parent", PHANDLE_PLIC));
out:
	return ret;
}

static int add_soc_device(void *fdt, const struct board_device *d)
{
	int ret = 0;
	switch (d->kind) {
	case BOARD_ROM:
		break;  /* not described, as in QEMU */
	case BOARD_FINISHER:
		FDT_TRY(begin_node_at(fdt, d->name, d->base));
		FDT_TRY(fdt_property_u32(fdt, "phandle", PHANDLE_FINISHER));
		FDT_TRY(prop_reg(fdt, d->base, d->size));
		FDT_TRY(PROP_STRINGS(fdt, "compatible", "sifive,test1\0sifive,test0\0syscon"));
		FDT_TRY(fdt_end_node(fdt));
		break;
	case BOARD_CLINT: {
		const uint32_t ext[] = { PHANDLE_CPU_INTC, IRQ_M_SOFT, PHANDLE_CPU_INTC, IRQ_M_TIMER };
		FDT_TRY(begin_node_at(fdt, d->name, d->base));
		FDT_TRY(prop_cells(fdt, "interrupts-extended", ext, ARRAY_SIZE(ext)));
		FDT_TRY(prop_reg(fdt, d->base, d->size));
		FDT_TRY(PROP_STRINGS(fdt, "compatible", "sifive,clint0\0riscv,clint0"));
		FDT_TRY(fdt_end_node(fdt));
		break;
	}
	case BOARD_PLIC: {
		const uint32_t ext[] = { PHANDLE_CPU_INTC, IRQ_M_EXT, PHANDLE_CPU_INTC, IRQ_S_EXT };
		FDT_TRY(begin_node_at(fdt, d->name, d->base));
		FDT_TRY(fdt_property_u32(fdt, "phandle", PHANDLE_PLIC));
		FDT_TRY(fdt_property_u32(fdt, "riscv,ndev", BOARD_PLIC_SOURCES - 1));
		FDT_TRY(prop_reg(fdt, d->base, d->size));
		FDT_TRY(prop_cells(fdt, "interrupts-extended", ext, ARRAY_SIZE(ext)));
		FDT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
		FDT_TRY(PROP_STRINGS(fdt, "compatible", "sifive,plic-1.0.0\0riscv,plic0"));
		FDT_TRY(fdt_property_u32(fdt, "#address-cells", 0));
		FDT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
		FDT_TRY(fdt_end_node(fdt));
		break;
	}
	case BOARD_UART:
		FDT_TRY(begin_node_at(fdt, d->name, d->base));
		FDT_TRY(add_irq_client(fdt, d->irq));
		FDT_TRY(fdt_property_u32(fdt, "clock-frequency", BOARD_UART_CLOCK_HZ));
		FDT_TRY(prop_reg(fdt, d->base, d->size));
		FDT_TRY(fdt_property_string(fdt, "compatible", "ns16550a"));
		FDT_TRY(fdt_end_node(fdt));
		break;
	case BOARD_VIRTIO:
		/* Highest slot first, like QEMU: Linux probes in this order, so slot 7 is vda. */
		for (unsigned i = BOARD_VIRTIO_SLOTS; i-- > 0;) {
			uint64_t base = d->base + i * d->size;
			FDT_TRY(begin_node_at(fdt, d->name, base));
			FDT_TRY(add_irq_client(fdt, d->irq + i));
			FDT_TRY(prop_reg(fdt, base, d->size));
			FDT_TRY(fdt_property_string(fdt, "compatible", "virtio,mmio"));
			FDT_TRY(fdt_end_node(fdt));
		}
		break;
	}
out:
	return ret;
}

static int add_chosen(void *fdt, const struct board_fdt_params *p)
{
	int ret = 0;
	const struct board_device *uart = board_device_of(BOARD_UART);
	char stdout_path[64];
	snprintf(stdout_path, sizeof(stdout_path), "/soc/%s@%llx", uart->name, (unsigned long long)uart->base);
	FDT_TRY(fdt_begin_node(fdt, "chosen"));
	if (p->initrd_end > p->initrd_start) {
		FDT_TRY(fdt_property_u64(fdt, "linux,initrd-end", p->initrd_end));
		FDT_TRY(fdt_property_u64(fdt, "linux,initrd-start", p->initrd_start));
	}
	if (p->bootargs)
		FDT_TRY(fdt_property_string(fdt, "bootargs", p->bootargs));
	FDT_TRY(fdt_property_string(fdt, "stdout-path", stdout_path));
	FDT_TRY(fdt_end_node(fdt));
out:
	return ret;
}

int board_build_fdt(const struct board_fdt_params *p, void *buf, size_t bufsize)
{
	int ret = 0;
	if (bufsize > INT32_MAX || p->ram_size == 0)
		return -EINVAL;
	FDT_TRY(fdt_create(buf, (int)bufsize));
	FDT_TRY(fdt_finish_reservemap(buf));
	FDT_TRY(fdt_begin_node(buf, ""));
	FDT_TRY(fdt_property_u32(buf, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(buf, "#size-cells", 2));
	FDT_TRY(fdt_property_string(buf, "compatible", "riscv-virtio"));
	FDT_TRY(fdt_property_string(buf, "model", "riscv-virtio,qemu"));
	FDT_TRY(add_chosen(buf, p));
	FDT_TRY(add_syscon_node(buf, "poweroff", "syscon-poweroff", BOARD_FINISHER_PASS));
	FDT_TRY(add_syscon_node(buf, "reboot", "syscon-reboot", BOARD_FINISHER_RESET));
	FDT_TRY(begin_node_at(buf, "memory", BOARD_RAM_BASE));
	FDT_TRY(fdt_property_string(buf, "device_type", "memory"));
	FDT_TRY(prop_reg(buf, BOARD_RAM_BASE, p->ram_size));
	FDT_TRY(fdt_end_node(buf));
	FDT_TRY(add_cpus(buf));
	FDT_TRY(fdt_begin_node(buf, "soc"));
	FDT_TRY(fdt_property_u32(buf, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(buf, "#size-cells", 2));
	FDT_TRY(fdt_property_string(buf, "compatible", "simple-bus"));
	FDT_TRY(fdt_property(buf, "ranges", NULL, 0));
	for (size_t i = 0; i < board_ndevices; i++)
		FDT_TRY(add_soc_device(buf, &board_devices[i]));
	FDT_TRY(fdt_end_node(buf)); /* soc */
	FDT_TRY(fdt_end_node(buf)); /* root */
	FDT_TRY(fdt_finish(buf));
	FDT_TRY(fdt_pack(buf));
out:
	if (ret == -FDT_ERR_NOSPACE)
		return -ENOSPC;
	return ret < 0 ? -EINVAL : 0;
}
