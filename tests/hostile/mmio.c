/*
 * mmio.c — loads and stores of every width at every offset of every device of the board (CLINT,
 * PLIC, UART, test finisher, each virtio-mmio slot, and the gaps after them), aligned or not,
 * with values that set every bit and then clear them. Whatever a device makes of them (ignored,
 * a value, an access fault, a virtio device that needs a reset), the machine must run on: at the
 * end each virtio device must still answer a reset, the UART must still print, and the program
 * exits through the finisher with success. The PLIC is swept over its priority, pending and
 * enable blocks and the first contexts byte by byte, and at every 4 KiB page elsewhere.
 */
#include "hostile.h"

static const unsigned widths[] = { 1, 2, 4, 8 };

/* Every width at offset off of base: a load, then stores of the given values. */
static void poke(uint64_t base, uint64_t off, const uint64_t *values, unsigned nvalues)
{
	for (unsigned w = 0; w < 4; w++) {
		h_read(base + off, widths[w]);
		for (unsigned v = 0; v < nvalues; v++)
			h_write(base + off, widths[w], values[v]);
	}
}

static void sweep(const char *name, uint64_t base, uint64_t size, uint64_t stride, const uint64_t *values,
		  unsigned nvalues)
{
	rt_clear_trap();
	for (uint64_t off = 0; off < size; off += stride)
		poke(base, off, values, nvalues);
	rt_puts(name);
	rt_puts(": faults ");
	rt_puthex(rt_last.count);
	rt_putc('\n');
}

static void uart_sane(void)
{
	h_write(H_UART + 3, 1, 0x03); /* LCR: 8N1, DLAB off */
	h_write(H_UART + 1, 1, 0x00); /* IER */
	h_write(H_UART + 4, 1, 0x00); /* MCR: no loopback */
}

int main(void)
{
	static const uint64_t ones_zero[] = { ~0ul, 0 };
	static const uint64_t zero[] = { 0 };

	sweep("clint", H_CLINT, H_CLINT_SIZE + 0x100, 1, ones_zero, 2);
	h_write(H_CLINT + 0x4000, 8, ~0ul); /* mtimecmp far away again */
	h_write(H_CLINT, 4, 0);             /* msip clear */

	sweep("plic-low", H_PLIC, 0x2100, 1, ones_zero, 2);
	sweep("plic-context", H_PLIC + 0x200000, 0x2010, 1, ones_zero, 2);
	sweep("plic-pages", H_PLIC, H_PLIC_SIZE + 0x2000, 0x1000, ones_zero, 2);
	sweep("plic-page-ends", H_PLIC + 0xff8, H_PLIC_SIZE, 0x1000, ones_zero, 2);

	/* The UART: 0x00 and 0xff to every register, then make it printable again. */
	sweep("uart", H_UART, H_UART_SIZE + 0x100, 1, ones_zero, 2);
	uart_sane();
	rt_puts("\nuart alive\n");

	/* The finisher: loads everywhere, stores everywhere but its status register. */
	sweep("finisher-read", H_FINISHER, 0x1000, 1, zero, 0);
	sweep("finisher-write", H_FINISHER + 8, 0x1000 - 8, 1, ones_zero, 2);

	/* Every virtio slot and the gap after the last one. */
	for (unsigned s = 0; s < H_VIRTIO_SLOTS; s++) {
		uint64_t slot = H_VIRTIO + s * H_VIRTIO_SLOT_SIZE;
		uint32_t id = vm_rd(slot, VM_DEVICE_ID);
		sweep("virtio-slot", slot, H_VIRTIO_SLOT_SIZE, 1, ones_zero, 2);
		vm_wr(slot, VM_STATUS, 0);
		if (vm_rd(slot, VM_MAGIC) != VIRTIO_MAGIC || vm_rd(slot, VM_DEVICE_ID) != id ||
		    vm_rd(slot, VM_STATUS) != 0) {
			rt_puts("virtio slot does not answer a reset\n");
			return 1;
		}
	}
	sweep("after-virtio", H_VIRTIO + H_VIRTIO_SLOTS * H_VIRTIO_SLOT_SIZE, 0x1000, 1, ones_zero, 2);
	sweep("page-0", 0, 0x1000, 1, ones_zero, 2);
	rt_puts("mmio sweep done\n");
	return 0;
}
