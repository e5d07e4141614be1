#!/usr/bin/env python3
"""snapshot_workloads.py — restore-then-replay to END for an idle guest and a CPU-bound one.

replay.snapshot proves the cut on the self-test (disk, entropy, console); kv_replay.py on kvd
serving a client over TAP. This covers the two other kinds of run:

- idle: the bundled guest's shell, told on the console to sleep 3 s and power off — nothing runs
  but the timer, so the log is timer interrupts and clock anchors, and a cut lands in WFI;
- cpu: the guest's CPU-bound task (`ftvm.workload=cpu`): long stretches of guest code between
  timer interrupts, so a cut lands inside them.

Each is recorded once, then cut at a seeded random icount after the guest is up and at one earlier
(the seed is printed; FTVM_TEST_SEED picks another), restored and replayed to END: exit 0, "replay
matched", every CHECK verified, the console of the two halves equal to the recording's.

Usage: snapshot_workloads.py FTVM GUEST_DIR   (exit 77 when GUEST_DIR has no Image)
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evlog  # noqa: E402
import rrlib  # noqa: E402
import snapshot_replay  # noqa: E402

TIMEOUT = 600
READY = b"ftvm-guest: ready"


def record_idle(ftvm, log_path, run_args):
    live = rrlib.Live([ftvm, "record", "--log", log_path] + run_args)
    if live.wait_for(READY, TIMEOUT):
        live.type(b"sleep 3; poweroff\n")
    return live.finish(TIMEOUT)


def record_task(ftvm, log_path, run_args):
    return rrlib.run([ftvm, "record", "--log", log_path] + run_args, timeout=TIMEOUT)


WORKLOADS = [
    ("idle", ["--extra-args", "ftvm.workload=shell"], record_idle),
    ("cpu", ["--extra-args", "ftvm.workload=cpu"], record_task),
]


def check_workload(f, ftvm, tmp, rnd, name, run_args, record):
    log_path = os.path.join(tmp, f"{name}.log")
    rec = record(ftvm, log_path, run_args)
    print(f"{name}: record exit {rec.code} in {rec.seconds:.1f} s", flush=True)
    if not f.expect(rec.code == 0 and READY in rec.out, f"{name}: record exit {rec.code}: {rec.err_text()[-1500:]}"):
        return
    log = evlog.Log.read(log_path)
    counts = log.counts()
    print(f"{name}: log " + ", ".join(f"{evlog.KIND_NAMES[k]} {n}" for k, n in sorted(counts.items())), flush=True)
    end = log.records[-1].icount
    checks = counts.get(evlog.CHECK, 0)
    f.expect(checks >= 4, f"{name}: only {checks} CHECK records: too short a run to cut and verify")
    # The guest is up once it read the typed command (idle); the CPU task's run is most of the
    # last third of its icounts. One cut at random there, one at half of the icounts before it.
    typed = log.of_kind(evlog.CONSOLE_IN)
    up = typed[0].icount if typed else end * 2 // 3
    points = [("random, guest up", rnd.randrange(up, end - 1000)), ("earlier", min(up, end * 2 // 3) // 2)]
    snap = os.path.join(tmp, f"{name}.snap")
    for what, icount in points:
        print(f"{name}, {what}: icount {icount} of {end}", flush=True)
        if os.path.exists(snap):
            os.unlink(snap)
        snapshot_replay.snapshot_at(f, ftvm, log_path, icount, snap, rec.out, run_args=run_args)


def main():
    ftvm, guest = sys.argv[1], sys.argv[2]
    if not rrlib.bundled_guest(guest):
        return rrlib.SKIP
    rnd = rrlib.seeded_random()
    f = rrlib.Failures("snapshot_workloads")
    with tempfile.TemporaryDirectory() as tmp:
        for name, run_args, record in WORKLOADS:
            check_workload(f, ftvm, tmp, rnd, name, run_args, record)
    return f.report()


if __name__ == "__main__":
    sys.exit(main())
