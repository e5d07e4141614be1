/*
 * uart.c — the 16550A register file (see uart.h). Registers are one byte apart (reg-shift 0);
 * an access of any size reads or writes the low byte of the register at its offset.
 */
#include "vm/uart.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm/state_io.h"

/* Register offsets. */
#define UART_RBR 0 /* read, DLAB = 0 */
#define UART_THR 0 /* write, DLAB = 0 */
#define UART_DLL 0 /* DLAB = 1 */
#define UART_IER 1 /* DLAB = 0 */
#define UART_DLM 1 /* DLAB = 1 */
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01   /* received data available */
#define IER_THRI 0x02  /* THR empty */
#define IER_RLSI 0x04  /* receiver line status */
#define IER_MSI 0x08   /* modem status */
#define IER_MASK 0x0f

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO_ENABLED 0xc0

#define FCR_ENABLE_FIFO 0x01
#define FCR_CLEAR_RCVR 0x02
#define FCR_CLEAR_XMIT 0x04
#define FCR_STORED_BITS 0xc9  /* FIFO enable, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_ERRORS 0x1e  /* OE, PE, FE, BI */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

void uart_init(struct uart *u, void (*out)(void *ctx, uint8_t byte), void (*set_irq)(void *ctx, bool level),
	       void *ctx)
{
	memset(u, 0, sizeof(*u));
	u->out = out;
	u->set_irq = set_irq;
	u->ctx = ctx;
}

/* The interrupt the IIR would report now, by 16550 priority. */
static uint8_t pending_interrupt(const struct uart *u)
{
	if ((u->ier & IER_RLSI) && (u->lsr_errors & LSR_ERRORS))
		return IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		return IIR_RDI;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return IIR_THRI;
	return IIR_NO_INT;  /* modem status never changes on this UART */
}

static void update_irq(struct uart *u)
{
	bool level = pending_interrupt(u) != IIR_NO_INT;
	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->set_irq)
			u->set_irq(u->ctx, level);
	}
}

static bool rx_push(struct uart *u, uint8_t byte)
{
	if (u->rx_count == UART_RX_BUFFER) {
		u->lsr_errors |= LSR_OE;
		return false;
	}
	u->rx[(u->rx_head + u->rx_count) % UART_RX_BUFFER] = byte;
	u->rx_count++;
	return true;
}

static uint8_t rx_pop(struct uart *u)
{
	if (!u->rx_count)
		return 0;
	uint8_t byte = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_BUFFER;
	u->rx_count--;
	return byte;
}

static uint8_t modem_status(const struct uart *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;  /* a terminal is always attached */
	uint8_t msr = 0;
	if (u->mcr & MCR_RTS)
		msr |= MSR_CTS;
	if (u->mcr & MCR_DTR)
		msr |= MSR_DSR;
	if (u->mcr & MCR_OUT1)
		msr |= MSR_RI;
	if (u->mcr & MCR_OUT2)
		msr |= MSR_DCD;
	return msr;
}

static int uart_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	struct uart *u = opaque;
	uint8_t v = 0;
	bool dlab = u->lcr & LCR_DLAB;
	switch (offset) {
	case UART_RBR:
		v = dlab ? u->dll : rx_pop(u);
		break;
	case UART_IER:
		v = dlab ? u->dlm : u->ier;
		break;
	case UART_IIR:
		v = pending_interrupt(u);
		if (v == IIR_THRI)
			u->thr_ipending = false;  /* reading IIR acknowledges THRE */
		if (u->fcr & FCR_ENABLE_FIFO)
			v |= IIR_FIFO_ENABLED;
		break;
	case UART_LCR:
		v = u->lcr;
		break;
	case UART_MCR:
		v = u->mcr;
		break;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | u->lsr_errors | (u->rx_count ? LSR_DR : 0);
		u->lsr_errors = 0;
		break;
	case UART_MSR:
		v = modem_status(u);
		break;
	case UART_SCR:
		v = u->scr;
		break;
	default:
		break;
	}
	*value = v;
	update_irq(u);
	return 0;
}

static void transmit(struct uart *u, uint8_t byte)
{
	if (u->mcr & MCR_LOOP)
		(void)rx_push(u, byte);
	else if (u->out)
		u->out(u->ctx, byte);
	u->thr_ipending = true;
}

static int uart_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct uart *u = opaque;
	uint8_t v = (uint8_t)value;
	bool dlab = u->lcr & LCR_DLAB;
	switch (offset) {
	case UART_THR:
		if (dlab)
			u->dll = v;
		else
			transmit(u, v);
		break;
	case UART_IER:
		if (dlab) {
			u->dlm = v;
		} else {
			if ((v & IER_THRI) && !(u->ier & IER_THRI))
				u->thr_ipending = true;  /* THR is empty: enabling THRI raises it */
			u->ier = v & IER_MASK;
		}
		break;
	case UART_FCR:
		if (v & FCR_CLEAR_RCVR) {
			u->rx_head = 0;
			u->rx_count = 0;
		}
		u->fcr = v & FCR_STORED_BITS;
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		u->mcr = v & MCR_MASK;
		break;
	case UART_SCR:
		u->scr = v;
		break;
	default:
		break;  /* LSR and MSR are read-only */
	}
	update_irq(u);
	return 0;
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;
	while (n < len && rx_push(u, buf[n]))
		n++;
	update_irq(u);
	return n;
}

struct bus_region uart_region(struct uart *u, uint64_t base, uint64_t size)
{
	return (struct bus_region){ .name = "serial", .base = base, .size = size, .opaque = u,
				    .read = uart_read, .write = uart_write };
}

void uart_save(const struct uart *u, struct uart_state *s)
{
	memset(s, 0, sizeof(*s));
	s->ier = u->ier;
	s->lcr = u->lcr;
	s->mcr = u->mcr;
	s->lsr_errors = u->lsr_errors;
	s->scr = u->scr;
	s->dll = u->dll;
	s->dlm = u->dlm;
	s->fcr = u->fcr;
	s->thr_ipending = u->thr_ipending;
	s->irq_level = u->irq_level;
	s->rx_count = u->rx_count;
	for (uint32_t i = 0; i < u->rx_count; i++)
		s->rx[i] = u->rx[(u->rx_head + i) % UART_RX_BUFFER];
}

int uart_restore(struct uart *u, const struct uart_state *s, char *err, size_t errlen)
{
	const char *why = NULL;
	if (s->rx_count > UART_RX_BUFFER)
		why = "more received bytes than the buffer holds";
	else if ((s->ier & ~IER_MASK) || (s->mcr & ~MCR_MASK) || (s->fcr & ~FCR_STORED_BITS) ||
		 (s->lsr_errors & ~LSR_ERRORS))
		why = "register bits the UART never stores";
	if (why) {
		snprintf(err, errlen, "uart: %s", why);
		return -EINVAL;
	}
	u->ier = s->ier;
	u->lcr = s->lcr;
	u->mcr = s->mcr;
	u->lsr_errors = s->lsr_errors;
	u->scr = s->scr;
	u->dll = s->dll;
	u->dlm = s->dlm;
	u->fcr = s->fcr;
	u->thr_ipending = s->thr_ipending;
	u->irq_level = s->irq_level;
	u->rx_head = 0;
	u->rx_count = s->rx_count;
	memcpy(u->rx, s->rx, s->rx_count);
	return 0;
}

void uart_state_io(struct state_io *io, void *state)
{
	struct uart_state *s = state;
	uint8_t *regs[] = { &s->ier, &s->lcr, &s->mcr, &s->lsr_errors, &s->scr, &s->dll, &s->dlm, &s->fcr };
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		state_io_u8(io, regs[i]);
	state_io_bool(io, &s->thr_ipending);
	state_io_bool(io, &s->irq_level);
	state_io_u32(io, &s->rx_count);
	/* Only the bytes that are there; a count beyond the buffer is refused by uart_restore. */
	state_io_bytes(io, s->rx, s->rx_count <= UART_RX_BUFFER ? s->rx_count : 0);
}

uint64_t uart_digest(const struct uart *u, uint64_t seed)
{
	struct uart_state s;
	uart_save(u, &s);
	return state_io_digest(uart_state_io, &s, seed);
}
