/*
 * uart.h — a 16550A UART (`ns16550a`), enough for Linux's 8250 driver and OpenSBI's uart8250.
 *
 * Transmission is instantaneous: a byte written to THR leaves through `out` at once, so THR and
 * the shift register are always empty (LSR.THRE|TEMT) and a THRE interrupt becomes pending right
 * after each write, as when a real UART finishes sending. Received bytes (CONSOLE_IN events) wait
 * in a buffer larger than the 16-byte FIFO so a paste is not lost; if even that overflows, LSR.OE
 * is set and the byte dropped, deterministically. The interrupt line is recomputed after every
 * access and every received byte, with the 16550 priority order RLS > RDI > THRI > MSI.
 */
#ifndef FTVM_VM_UART_H
#define FTVM_VM_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/bus.h"

#define UART_RX_BUFFER 4096u

struct uart {
	uint8_t ier, lcr, mcr, lsr_errors, scr, dll, dlm, fcr;
	bool thr_ipending;
	bool irq_level;
	uint32_t rx_head, rx_count;
	uint8_t rx[UART_RX_BUFFER];
	void (*out)(void *ctx, uint8_t byte);
	void (*set_irq)(void *ctx, bool level);
	void *ctx;
};

void uart_init(struct uart *u, void (*out)(void *ctx, uint8_t byte), void (*set_irq)(void *ctx, bool level),
	       void *ctx);
struct bus_region uart_region(struct uart *u, uint64_t base, uint64_t size);
/* Bytes typed on the console; returns how many were accepted (the rest set the overrun error). */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len);

/* The received bytes are saved in order from the oldest, so the ring's position is not state. */
struct uart_state {
	uint8_t ier, lcr, mcr, lsr_errors, scr, dll, dlm, fcr;
	bool thr_ipending;
	bool irq_level;
	uint32_t rx_count;
	uint8_t rx[UART_RX_BUFFER];
};
struct state_io;
void uart_save(const struct uart *u, struct uart_state *s);
/* Refuses register bits the UART never stores and more bytes than the buffer holds; the caller
 * (the machine) drives the interrupt line from the restored irq_level. */
int uart_restore(struct uart *u, const struct uart_state *s, char *err, size_t errlen) FTVM_MUST_CHECK;
void uart_state_io(struct state_io *io, void *state);
uint64_t uart_digest(const struct uart *u, uint64_t seed);

#endif
