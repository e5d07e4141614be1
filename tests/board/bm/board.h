/* Addresses and values of the board shared by the bare-metal test programs. */
#define UART_BASE 0x10000000
#define UART_LSR 5
#define UART_LSR_DR 0x01
#define FINISHER 0x100000
#define FINISHER_PASS 0x5555
#define FINISHER_FAIL 0x3333
#define FINISHER_RESET 0x7777
#define CLINT_MTIMECMP 0x2004000
#define CLINT_MTIME 0x200bff8
#define MIE_MTIE 0x80
#define MSTATUS_MIE 0x8
