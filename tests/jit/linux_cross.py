#!/usr/bin/env python3
"""linux_cross.py — the bundled Linux guest under --cpu jit, checked against the interpreter.

- With --clock=virtual a run is a pure function of its options, so the guest's self-test recorded
  under --cpu interp and under --cpu jit must give the same log record for record: every CHECK
  (CPU and machine digests at the same icounts), every input, the END.
- The same for the cpu workload (integer and floating-point rounds): identical logs, the same
  score line and checksum.
- Wall-clock recordings (real nondeterminism): the log recorded under the JIT replays under the
  interpreter, and the interpreter's log replays under the JIT, each with every CHECK matching
  and the console output byte for byte.
- A snapshot cut under the JIT at an odd icount in mid-boot (`replay --snapshot-at`: the JIT must
  stop exactly there) restores under either engine and replays the rest with every CHECK.

Usage: linux_cross.py FTVM GUEST_DIR   (exit 77 when GUEST_DIR has no Image)
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "replay"))
import evlog  # noqa: E402
import rrlib  # noqa: E402

BOOT_TIMEOUT = 600
MATCHED = r"replay matched: \d+ records, [1-9]\d* checks .*ended by power-off"


def main():
    ftvm, guest = sys.argv[1], sys.argv[2]
    if not rrlib.bundled_guest(guest):
        return rrlib.SKIP
    run_args = ["--extra-args", "ftvm.workload=selftest"]
    f = rrlib.Failures("linux_cross")
    with tempfile.TemporaryDirectory() as tmp:
        logs = {}
        for clock in ("virtual", "wall"):
            for cpu in ("interp", "jit"):
                path = os.path.join(tmp, f"{clock}-{cpu}.log")
                rec = rrlib.run([ftvm, "record", "--cpu", cpu, f"--clock={clock}", "--log", path] + run_args,
                                timeout=BOOT_TIMEOUT)
                print(f"record --cpu {cpu} --clock={clock}: exit {rec.code} in {rec.seconds:.1f} s", flush=True)
                ok = f.expect(rec.code == 0 and b"selftest: PASS" in rec.out,
                              f"record --cpu {cpu} --clock={clock}: exit {rec.code}, {rec.err_text()[-1500:]}")
                logs[(clock, cpu)] = (path, rec.out) if ok else None

        a, b = logs[("virtual", "interp")], logs[("virtual", "jit")]
        if a and b:
            la, lb = evlog.Log.read(a[0]), evlog.Log.read(b[0])
            ra = [(r.kind, r.icount, r.payload) for r in la.records]
            rb = [(r.kind, r.icount, r.payload) for r in lb.records]
            checks = len(la.of_kind(evlog.CHECK))
            f.expect(checks > 10, f"only {checks} CHECK records in the virtual-clock log")
            first = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), None)
            f.expect(ra == rb, f"virtual-clock logs differ: {len(ra)} vs {len(rb)} records, first difference "
                     f"at record {first}: {ra[first][:2] if first is not None else ''} vs "
                     f"{rb[first][:2] if first is not None else ''}")
            f.expect(la.config_digest == lb.config_digest, "the configuration digest depends on --cpu")
            f.expect(a[1] == b[1], "virtual-clock console output differs between the engines")
            print(f"virtual clock: {len(ra)} records, {checks} CHECKs, identical under both engines", flush=True)

        cpu_args = ["--extra-args", "ftvm.workload=cpu ftvm.cpu.rounds=20"]
        outs = {}
        for cpu in ("interp", "jit"):
            path = os.path.join(tmp, f"cpu-{cpu}.log")
            rec = rrlib.run([ftvm, "record", "--cpu", cpu, "--clock=virtual", "--log", path] + cpu_args,
                            timeout=BOOT_TIMEOUT)
            print(f"cpu workload, record --cpu {cpu}: exit {rec.code} in {rec.seconds:.1f} s", flush=True)
            if f.expect(rec.code == 0 and b"cpu: score" in rec.out, f"cpu workload under --cpu {cpu}: exit "
                        f"{rec.code}, {rec.out[-500:]!r}"):
                outs[cpu] = (path, rec.out)
        if len(outs) == 2:
            ra = [(r.kind, r.icount, r.payload) for r in evlog.Log.read(outs["interp"][0]).records]
            rb = [(r.kind, r.icount, r.payload) for r in evlog.Log.read(outs["jit"][0]).records]
            f.expect(ra == rb, f"cpu workload: the logs differ ({len(ra)} vs {len(rb)} records)")
            f.expect(outs["interp"][1] == outs["jit"][1], "cpu workload: console output differs between engines")

        for rec_cpu, rep_cpu in (("jit", "interp"), ("interp", "jit")):
            got = logs[("wall", rec_cpu)]
            if not got:
                continue
            rep = rrlib.run([ftvm, "replay", "--cpu", rep_cpu, "--log", got[0]] + run_args, timeout=BOOT_TIMEOUT)
            print(f"recorded --cpu {rec_cpu}, replayed --cpu {rep_cpu}: exit {rep.code} in {rep.seconds:.1f} s: "
                  f"{rep.last_err_line()}", flush=True)
            f.expect(rep.code == 0 and re.search(MATCHED, rep.last_err_line()),
                     f"replay --cpu {rep_cpu} of a --cpu {rec_cpu} log: exit {rep.code} '{rep.last_err_line()}'")
            f.expect(rep.out == got[1], f"replay --cpu {rep_cpu}: console output differs from the recording")
        got = logs[("wall", "jit")]
        if got:
            end = evlog.Log.read(got[0]).records[-1].icount
            at = end // 3 + 17
            snap = os.path.join(tmp, "mid.snap")
            cut = rrlib.run([ftvm, "replay", "--cpu", "jit", "--quiet", "--log", got[0], "--snapshot-at", str(at),
                             "--snapshot", snap] + run_args, timeout=BOOT_TIMEOUT)
            f.expect(cut.code == 0 and f"stopped at icount {at} " in cut.last_err_line(),
                     f"snapshot cut under the JIT at {at}: exit {cut.code} '{cut.last_err_line()}'")
            for cpu in ("interp", "jit"):
                r = rrlib.run([ftvm, "replay", "--cpu", cpu, "--log", got[0], "--restore", snap] + run_args,
                              timeout=BOOT_TIMEOUT)
                print(f"snapshot at {at} restored under --cpu {cpu}: exit {r.code}: {r.last_err_line()}", flush=True)
                f.expect(r.code == 0 and re.search(MATCHED, r.last_err_line()),
                         f"restore under --cpu {cpu}: exit {r.code} '{r.last_err_line()}'")
    return f.report()


if __name__ == "__main__":
    sys.exit(main())
