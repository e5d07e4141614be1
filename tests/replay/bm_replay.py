#!/usr/bin/env python3
"""bm_replay.py — record and replay of a bare-metal program (tests/board/bm/echo.S), end to end.

1. `ftvm record` runs echo.elf with console input typed on stdin in bursts, each after the echo of
   the one before and a pause (so no two bursts merge into one CONSOLE_IN record, however loaded
   the host is); `ftvm replay` with the same options, no
   stdin, reproduces the console output byte for byte and exits 0; `--stats` agrees with the
   recorder's table and with an independent parse of the file (evlog.py). A recording ended by
   Ctrl-A x exits 0 and replays too. The CHECKs stand at every multiple of 2^21 instructions
   below END and at END (docs/log-format.md): their number follows the run's length in
   instructions, which the host's speed decides while echo.elf polls for input, so only where
   they stand is asserted.
2. Bad logs: bytes flipped in the header, a record header, a payload, a CRC; truncated inside the
   header and inside records; cut at record boundaries (exit 5); recorded for another
   configuration (--mem, --append, another kernel).
3. Injected nondeterminism: --perturb-lsn on CONSOLE_IN and TIME records stops the replay at the
   first CHECK after the record, exit 3.

Usage: bm_replay.py FTVM BM_DIR  (BM_DIR "-" when no riscv64 cross compiler: skipped, exit 77)
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evlog  # noqa: E402
import rrlib  # noqa: E402

TYPED = [(0.05, b"hello"), (0.15, b" world\n"), (0.15, b"Mixed Case 123"), (0.15, b"\nabc"), (0.15, b"q")]
CHECK_CPU_EVERY = 1 << 21  # docs/log-format.md, CHECK


def echoed(data):
    """What echo.elf prints for `data` (everything before the 'q' that ends it)."""
    return bytes(c - 32 if ord("a") <= c <= ord("z") else c for c in data)


def feed_after_echo(bursts):
    """(feed, on_output) for rrlib.run: each burst is typed once the echo of all before it has been
    printed, so no two bursts reach the guest as one input, and the last (Ctrl-A x) never overtakes
    the input before it, whatever the host's load."""
    sent = [1]

    def on_output(out):
        if sent[0] == len(bursts):
            return None
        if out != echoed(b"".join(data for _, data in bursts[:sent[0]])):
            return []
        sent[0] += 1
        return [bursts[sent[0] - 1]]
    return bursts[:1], on_output


def main():
    ftvm, bm = sys.argv[1], sys.argv[2]
    if bm == "-":
        print("SKIP: no bare-metal programs (riscv64-unknown-elf-gcc missing)")
        return rrlib.SKIP
    echo = os.path.join(bm, "echo.elf")
    run_args = ["--bios", "none", "--kernel", echo]
    f = rrlib.Failures("bm_replay")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "echo.log")
        typed = b"".join(data for _, data in TYPED)
        want_out = echoed(typed[:-1])

        feed, on_output = feed_after_echo(TYPED)
        rec = rrlib.run([ftvm, "record", "--log", log_path] + run_args, feed=feed, on_output=on_output,
                        timeout=60)
        f.expect(rec.code == 0, f"record exit {rec.code}: {rec.err_text()}")
        f.expect(rec.out == want_out, f"record printed {rec.out!r}, want {want_out!r}")
        rep = rrlib.run([ftvm, "replay", "--log", log_path] + run_args, timeout=60)
        f.expect(rep.code == 0, f"replay exit {rep.code}: {rep.err_text()}")
        f.expect(rep.out == rec.out, f"replay printed {rep.out!r}, the recording {rec.out!r}")
        f.expect(re.search(r"^ftvm replay: replay matched: \d+ records, \d+ checks", rep.last_err_line()),
                 f"replay message '{rep.last_err_line()}'")
        if not os.path.exists(log_path) or rec.code != 0:
            return f.report()

        log, stats = rrlib.check_stats(f, ftvm, log_path, rec.err_text(), "echo")
        console = log.of_kind(evlog.CONSOLE_IN)
        f.expect(len(console) >= len(TYPED), f"only {len(console)} CONSOLE_IN records for {len(TYPED)} bursts of input")
        f.expect(b"".join(r.payload for r in console) == typed,
                 f"CONSOLE_IN payloads {[r.payload for r in console]} are not what was typed")
        f.expect(log.records[-1].kind == evlog.END and log.records[-1].end()["exit"] == 0,
                 "the log does not end with END (power-off)")
        f.expect(log.records[-2].kind == evlog.CHECK and log.records[-2].icount == log.records[-1].icount,
                 "no final CHECK at the END's icount")
        end = log.records[-1].icount
        want_checks = list(range(CHECK_CPU_EVERY, end, CHECK_CPU_EVERY)) + [end]
        got_checks = [r.icount for r in log.of_kind(evlog.CHECK)]
        f.expect(got_checks == want_checks,
                 f"CHECKs at icounts {got_checks}, want every multiple of {CHECK_CPU_EVERY} below END {end} and END")

        # A recording ended by Ctrl-A x (the program never powers off) is complete and replays.
        quit_log = os.path.join(tmp, "quit.log")
        feed, on_output = feed_after_echo([(0.05, b"ab"), (0.2, b"\x01x")])
        q = rrlib.run([ftvm, "record", "--log", quit_log] + run_args, feed=feed, on_output=on_output)
        f.expect(q.code == 0 and "terminated (Ctrl-A x)" in q.last_err_line() and q.out == b"AB",
                 f"record ended by Ctrl-A x: exit {q.code} '{q.last_err_line()}' printed {q.out!r}")
        r = rrlib.run([ftvm, "replay", "--log", quit_log] + run_args)
        f.expect(r.code == 0 and r.out == b"AB" and "replay matched" in r.last_err_line(),
                 f"replay of a recording ended by Ctrl-A x: exit {r.code} '{r.last_err_line()}' printed {r.out!r}")

        # Another machine configuration: refused before running.
        for other, what in ((["--mem", "128"] + run_args, "--mem 128"),
                            (run_args + ["--append", "x=1"], "--append"),
                            (["--bios", "none", "--kernel", os.path.join(bm, "timer.elf")], "another kernel")):
            r = rrlib.run([ftvm, "replay", "--log", log_path] + other)
            f.expect(r.code == 4 and "recorded for another configuration" in r.last_err_line()
                     and r.out == b"", f"replay with {what}: exit {r.code} '{r.last_err_line()}'")
        rrlib.check_bad_logs(f, ftvm, log_path, run_args, tmp)

        # Perturb the CONSOLE_IN records after the first (the first comes at icount 0, before any
        # CHECK) and a TIME record: the next CHECK catches each.
        times = log.of_kind(evlog.TIME)
        lsns = [r.lsn for r in console[1:] if log.first_check_after(r)]
        if times:
            lsns.append(times[len(times) // 2].lsn)
        f.expect(len(lsns) >= 3, f"only {len(lsns)} input records to perturb")
        rrlib.check_perturbations(f, ftvm, log_path, run_args, lsns)
    return f.report()


if __name__ == "__main__":
    sys.exit(main())
