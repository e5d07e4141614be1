/*
 * fuzz_eventlog.c — libFuzzer target for the event log decoder: any bytes, as a log file image,
 * must be decoded or refused with a message, never crash or read out of bounds (ASan/UBSan watch).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "replay/eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evlog_header h;
	char err[256];
	uint64_t prev_lsn;
	icount_t prev_icount = 0;

	if (evlog_decode_header(data, size, &h, err, sizeof(err)) < 0)
		return 0;
	prev_lsn = h.start_lsn - 1;
	size_t off = EVLOG_HEADER_SIZE;
	while (off < size) {
		struct evlog_record rec;
		size_t used;
		if (evlog_decode_record(data + off, size - off, &rec, &used, err, sizeof(err)) < 0)
			break;
		if (evlog_check_sequence(&rec, prev_lsn, prev_icount, err, sizeof(err)) < 0)
			break;
		struct vm_event ev;
		struct evlog_check c;
		struct evlog_end e;
		if (rec.kind == EVLOG_CHECK)
			(void)!evlog_check_from_record(&rec, &c, err, sizeof(err));
		else if (rec.kind == EVLOG_END)
			(void)!evlog_end_from_record(&rec, &e, err, sizeof(err));
		else if (evlog_event_from_record(&rec, &ev, err, sizeof(err)) == 0 && ev.len)
			(void)!memchr(ev.data, 0xff, ev.len); /* touch every payload byte */
		prev_lsn = rec.lsn;
		prev_icount = rec.icount;
		off += used;
	}
	return 0;
}
