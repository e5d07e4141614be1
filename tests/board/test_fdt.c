/*
 * test_fdt.c — the generated device tree, parsed back with libfdt: what Linux and OpenSBI look
 * for is there and wired correctly, and (when qemu-system-riscv64 is installed) the nodes ftvm
 * shares with QEMU's `virt` carry byte-identical compatible/reg/interrupt properties.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/board.h"
#include "vm/clock.h"

static uint8_t ours[65536];

static void build(uint64_t ram, const char *bootargs, uint64_t initrd_start, uint64_t initrd_end)
{
	struct board_fdt_params p = { .ram_size = ram, .bootargs = bootargs, .initrd_start = initrd_start,
				      .initrd_end = initrd_end };
	assert_int_equal(board_build_fdt(&p, ours, sizeof(ours)), 0);
	assert_int_equal(fdt_check_header(ours), 0);
}

static int node(const void *fdt, const char *path)
{
	int off = fdt_path_offset(fdt, path);
	if (off < 0)
		fail_msg("node %s missing: %s", path, fdt_strerror(off));
	return off;
}

static const char *str(const void *fdt, const char *path, const char *prop)
{
	const char *s = fdt_getprop(fdt, node(fdt, path), prop, NULL);
	if (!s)
		fail_msg("%s:%s missing", path, prop);
	return s;
}

static uint32_t u32(const void *fdt, const char *path, const char *prop)
{
	int len;
	const fdt32_t *v = fdt_getprop(fdt, node(fdt, path), prop, &len);
	assert_non_null(v);
	assert_int_equal(len, 4);
	return fdt32_to_cpu(*v);
}

static uint64_t u64(const void *fdt, const char *path, const char *prop)
{
	int len;
	const fdt64_t *v = fdt_getprop(fdt, node(fdt, path), prop, &len);
	assert_non_null(v);
	assert_int_equal(len, 8);
	return fdt64_to_cpu(*v);
}

static void test_cpu_memory_chosen(void **state)
{
	build(256ull << 20, "console=ttyS0 panic=1", 0x88200000, 0x88300000);
	assert_string_equal(str(ours, "/cpus/cpu@0", "riscv,isa"), "rv64imafdc");  /* no Sstc */
	assert_string_equal(str(ours, "/cpus/cpu@0", "mmu-type"), "riscv,sv39");
	assert_int_equal(u32(ours, "/cpus", "timebase-frequency"), CLOCK_TIMEBASE_HZ);
	assert_string_equal(str(ours, "/chosen", "bootargs"), "console=ttyS0 panic=1");
	assert_int_equal(u64(ours, "/chosen", "linux,initrd-start"), 0x88200000);
	assert_int_equal(u64(ours, "/chosen", "linux,initrd-end"), 0x88300000);
	/* stdout-path names the UART node. */
	const char *stdout_path = str(ours, "/chosen", "stdout-path");
	assert_string_equal(str(ours, stdout_path, "compatible"), "ns16550a");
	int len;
	const fdt64_t *reg = fdt_getprop(ours, node(ours, "/memory@80000000"), "reg", &len);
	assert_int_equal(len, 16);
	assert_int_equal(fdt64_to_cpu(reg[0]), BOARD_RAM_BASE);
	assert_int_equal(fdt64_to_cpu(reg[1]), 256ull << 20);

	/* Without an initrd or command line, the properties are absent. */
	build(64ull << 20, NULL, 0, 0);
	int chosen = node(ours, "/chosen");
	assert_null(fdt_getprop(ours, chosen, "linux,initrd-start", NULL));
	assert_null(fdt_getprop(ours, chosen, "bootargs", NULL));
}

static void test_interrupt_wiring(void **state)
{
	build(128ull << 20, "x", 0, 0);
	uint32_t intc = u32(ours, "/cpus/cpu@0/interrupt-controller", "phandle");
	uint32_t plic = u32(ours, "/soc/plic@c000000", "phandle");
	assert_int_equal(u32(ours, "/soc/plic@c000000", "riscv,ndev"), BOARD_PLIC_SOURCES - 1);
	int len;
	const fdt32_t *ext = fdt_getprop(ours, node(ours, "/soc/plic@c000000"), "interrupts-extended", &len);
	assert_int_equal(len, 16);
	assert_int_equal(fdt32_to_cpu(ext[0]), intc);
	assert_int_equal(fdt32_to_cpu(ext[1]), 11);  /* M external */
	assert_int_equal(fdt32_to_cpu(ext[3]), 9);   /* S external */
	assert_int_equal(u32(ours, "/soc/serial@10000000", "interrupt-parent"), plic);
	assert_int_equal(u32(ours, "/soc/serial@10000000", "interrupts"), 10);
	for (unsigned i = 0; i < BOARD_VIRTIO_SLOTS; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/soc/virtio_mmio@%x", 0x10001000 + 0x1000 * i);
		assert_int_equal(u32(ours, path, "interrupts"), 1 + i);
		assert_int_equal(u32(ours, path, "interrupt-parent"), plic);
	}
	/* poweroff/reboot point at the finisher through its phandle. */
	uint32_t test = u32(ours, "/soc/test@100000", "phandle");
	assert_int_equal(u32(ours, "/poweroff", "regmap"), test);
	assert_int_equal(u32(ours, "/poweroff", "value"), BOARD_FINISHER_PASS);
	assert_int_equal(u32(ours, "/reboot", "regmap"), test);
	assert_int_equal(u32(ours, "/reboot", "value"), BOARD_FINISHER_RESET);
}

static void test_too_small_buffer(void **state)
{
	uint8_t small[256];
	struct board_fdt_params p = { .ram_size = 1 << 20 };
	assert_int_equal(board_build_fdt(&p, small, sizeof(small)), -ENOSPC);
}

/* The same nodes in QEMU's tree carry the same bytes. */
static void test_matches_qemu(void **state)
{
	const char *qemu = getenv("QEMU_RISCV64");
	if (!qemu || access(qemu, X_OK) != 0) {
		print_message("qemu-system-riscv64 not found: comparison skipped\n");
		skip();
	}
	char dtb[] = "/tmp/ftvm-virt-XXXXXX";
	int fd = mkstemp(dtb);
	assert_true(fd >= 0);
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s -M virt,dumpdtb=%s -m 256M -nographic -bios none >/dev/null 2>&1", qemu, dtb);
	assert_int_equal(system(cmd), 0);
	static uint8_t theirs[1 << 20];
	FILE *f = fopen(dtb, "rb");
	assert_non_null(f);
	size_t n = fread(theirs, 1, sizeof(theirs), f);
	fclose(f);
	unlink(dtb);
	assert_true(n > 0);
	assert_int_equal(fdt_check_header(theirs), 0);

	build(256ull << 20, NULL, 0, 0);
	static const char *const nodes[] = {
		"/", "/cpus", "/cpus/cpu@0", "/cpus/cpu@0/interrupt-controller", "/memory@80000000",
		"/soc", "/soc/serial@10000000", "/soc/test@100000", "/soc/plic@c000000", "/soc/clint@2000000",
		"/soc/virtio_mmio@10001000", "/soc/virtio_mmio@10008000", "/poweroff", "/reboot",
	};
	static const char *const props[] = {
		"compatible", "reg", "interrupts", "interrupt-parent", "interrupts-extended", "phandle",
		"#address-cells", "#size-cells", "#interrupt-cells", "interrupt-controller", "timebase-frequency",
		"device_type", "value", "offset", "regmap", "clock-frequency", "status",
	};
	unsigned compared = 0;
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		int a = node(ours, nodes[i]), b = node(theirs, nodes[i]);
		for (size_t j = 0; j < sizeof(props) / sizeof(props[0]); j++) {
			int la, lb;
			const void *pa = fdt_getprop(ours, a, props[j], &la);
			const void *pb = fdt_getprop(theirs, b, props[j], &lb);
			if (!pa && !pb)
				continue;
			if (!pa || !pb || la != lb || memcmp(pa, pb, (size_t)la) != 0)
				fail_msg("%s:%s differs from QEMU's", nodes[i], props[j]);
			compared++;
		}
	}
	assert_true(compared > 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_memory_chosen),
		cmocka_unit_test(test_interrupt_wiring),
		cmocka_unit_test(test_too_small_buffer),
		cmocka_unit_test(test_matches_qemu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
