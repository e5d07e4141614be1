#!/usr/bin/env python3
"""linux_selftest.py — record the bundled Linux guest running its self-test, replay it.

- `ftvm record --extra-args ftvm.workload=selftest` exits 0 (the self-test passed) and writes a log
  with TIME, DISK_DONE, RNG and CHECK records; `ftvm replay` with the same options reproduces the
  console output byte for byte and exits 0 (every CHECK and the END matched); --stats agrees with
  the file.
- The same log is refused (exit 4, before booting) by a machine with other --extra-args or --mem.
- A log cut at a record boundary in mid-boot ends the replay with exit 5.
- --perturb-lsn on the first RNG, DISK_DONE and a TIME record: exit 3 at the first CHECK after it
  (or earlier, at a WFI the recording did not have: see rrlib.check_perturbations).

Usage: linux_selftest.py FTVM GUEST_DIR   (exit 77 when GUEST_DIR has no Image: guest/build first)
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evlog  # noqa: E402
import rrlib  # noqa: E402

BOOT_TIMEOUT = 600


def main():
    ftvm, guest = sys.argv[1], sys.argv[2]
    if not rrlib.bundled_guest(guest):
        return rrlib.SKIP
    run_args = ["--extra-args", "ftvm.workload=selftest"]
    f = rrlib.Failures("linux_selftest")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "selftest.log")
        rec = rrlib.run([ftvm, "record", "--log", log_path] + run_args, timeout=BOOT_TIMEOUT)
        print(f"record: exit {rec.code} in {rec.seconds:.1f} s", flush=True)
        f.expect(rec.code == 0, f"record exit {rec.code}: {rec.err_text()[-2000:]}")
        f.expect(b"ftvm-guest: ready" in rec.out and b"selftest: PASS" in rec.out,
                 f"the recorded guest did not pass its self-test: {rec.out[-1500:]!r}")
        if rec.code != 0 or not os.path.exists(log_path):
            return f.report()
        rep = rrlib.run([ftvm, "replay", "--log", log_path] + run_args, timeout=BOOT_TIMEOUT)
        print(f"replay: exit {rep.code} in {rep.seconds:.1f} s: {rep.last_err_line()}", flush=True)
        f.expect(rep.code == 0, f"replay exit {rep.code}: {rep.err_text()[-2000:]}")
        f.expect(rep.out == rec.out, f"replayed console output differs ({len(rep.out)} vs {len(rec.out)} bytes); "
                 f"replay ends {rep.out[-500:]!r}")
        f.expect(re.search(r"replay matched: \d+ records, \d+ checks \([1-9]\d* with memory\), ended by power-off",
                           rep.last_err_line()), f"replay message '{rep.last_err_line()}'")

        log, _ = rrlib.check_stats(f, ftvm, log_path, rec.err_text(), "selftest")
        counts = log.counts()
        for kind in (evlog.TIME, evlog.DISK_DONE, evlog.RNG, evlog.CHECK, evlog.END):
            f.expect(counts.get(kind, 0) > 0, f"the log has no {evlog.KIND_NAMES[kind]} record")
        end = log.records[-1].end()
        f.expect(end["exit"] == 0 and end["status"] == 0, f"END says {end}")

        for other, what in ((["--extra-args", "ftvm.workload=cpu"], "--extra-args ftvm.workload=cpu"),
                            (["--mem", "128"] + run_args, "--mem 128")):
            r = rrlib.run([ftvm, "replay", "--log", log_path] + other, timeout=60)
            f.expect(r.code == 4 and "recorded for another configuration" in r.last_err_line() and r.out == b"",
                     f"replay with {what}: exit {r.code} '{r.last_err_line()}', want 4 before booting")

        # Cut after a CHECK a third into the run: every record matches, then the log ends.
        checks = log.of_kind(evlog.CHECK)
        last = checks[len(checks) // 3]
        cut_path = rrlib.mutated(log_path, os.path.join(tmp, "cut.log"), rrlib.cut(last.offset + last.size))
        r = rrlib.run([ftvm, "replay", "--quiet", "--log", cut_path] + run_args, timeout=BOOT_TIMEOUT)
        want = rf"the log ends at icount {last.icount} \(lsn {last.lsn}\).* without an END record"
        f.expect(r.code == 5 and re.search(want, r.last_err_line()),
                 f"log cut after lsn {last.lsn}: exit {r.code} '{r.last_err_line()}', want 5 /{want}/")

        # Injected nondeterminism, early in the run to keep the replays short.
        lsns = []
        for kind in (evlog.RNG, evlog.DISK_DONE):
            recs = log.of_kind(kind)
            if recs:
                lsns.append(recs[0].lsn)
        times = log.of_kind(evlog.TIME)
        if len(times) > 2:
            lsns.append(times[2].lsn)
        rrlib.check_perturbations(f, ftvm, log_path, run_args, lsns, deadline_s=BOOT_TIMEOUT, allow_earlier=True)
    return f.report()


if __name__ == "__main__":
    sys.exit(main())
