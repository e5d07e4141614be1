/*
 * rvc_c.c — drives rvc.S and prints each result (the compressed forms and load/store widths).
 */
#include "rt.h"

#define NOUT 31
void rvc_run(uint64_t *out, uint64_t *buf);

int main(void)
{
	static uint64_t out[NOUT], buf[8] = {
		0x80818283f4f5f6f7ul, 0x3ff8000000000000ul, 0, 0, 0, 0, 0, 0,
	};
	rvc_run(out, buf);
	for (unsigned i = 0; i < NOUT; i++) {
		rt_puts("out");
		rt_putc((char)('0' + i / 10));
		rt_putc((char)('0' + i % 10));
		rt_print("", out[i]);
	}
	for (unsigned i = 0; i < 8; i++)
		rt_print("buf", buf[i]);
	rt_print_trap("no_traps", 0);
	return 0;
}
