/*
 * console.h — the guest's serial console on the host: a terminal, or any pair of descriptors.
 *
 * Output is buffered by console_write() and written out by console_flush() (the live world flushes
 * at slice boundaries and before idling). When writing fails — a closed pipe, a full disk — the
 * console gives its output up for good with one warning: the guest runs on, its later output is
 * discarded. A VM's life does not depend on someone reading its console.
 *
 * Input, when there is an input descriptor, is read on a thread of its own: a terminal is put in
 * raw mode (restored by console_close), the QEMU-style escape is filtered (Ctrl-A x asks to quit,
 * Ctrl-A Ctrl-A sends one Ctrl-A) and the bytes are posted to the input queue as VM_EV_CONSOLE_IN
 * events. End of input, or a quit, wakes the queue so an idle vCPU notices.
 */
#ifndef FTVM_HOST_CONSOLE_H
#define FTVM_HOST_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "host/input_queue.h"
#include "util/compiler.h"

struct console;

/* Starts the console on in_fd (-1: no input) and out_fd; -errno with a one-line reason in err. */
int console_open(int in_fd, int out_fd, struct input_queue *queue, struct console **out, char *err,
		 size_t errlen) FTVM_MUST_CHECK;
/* Flushes output, stops the reader, restores the terminal. */
void console_close(struct console *c);
/* vCPU thread: buffers guest output, flushing whenever the buffer fills. */
void console_write(struct console *c, const uint8_t *buf, size_t len);
/* vCPU thread: writes out buffered output. */
void console_flush(struct console *c);
/* Buffered output waits to be written. */
bool console_has_output(struct console *c);
/* Input may still arrive (the input descriptor has not reached its end). */
bool console_input_open(const struct console *c);
/* Ctrl-A x was typed. */
bool console_quit_requested(const struct console *c);

#endif
