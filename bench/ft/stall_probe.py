#!/usr/bin/env python3
"""stall_probe.py — catches the FT-only stall bench_ft.py sometimes reports (a whole second or more
in which no kvd request is answered), with evidence from both ftvm processes.

Boots one FT pair like bench_ft.py, runs 8-connection SET loads back to back, and samples every
50 ms the primary's status (icount, last_lsn, outputs) and the packet counters of host A's TAP.
A stall is: the primary's icount has not moved for STALL_S while frames keep arriving at its TAP.
On the first stall it prints the timeline around it and, when gdb is installed, every thread's
backtrace of the primary and the backup (the pair runs with a 20 s failure timeout so that gdb's
pause is not taken for a crash); then it stops.

What it found (2026-11-27): the primary's vCPU sits in machine_digest() from rec_next_event(), the
full-machine CHECK at icount 2^28 (RECORDER_CHECK_MACHINE_EVERY), hashing all of guest RAM; the
first such hash touches every never-used RAM page and takes ~1.5 s on this host (a 256 MiB
XXH3 over fresh MAP_NORESERVE memory: 1545 ms, later passes 40-70 ms); the backup pays the same
when it replays that CHECK, and since it acknowledges records only as it replays them, the
primary's outputs wait through that too. Exit status 0: a stall was caught; 1: none
within --loads loads.

usage: stall_probe.py [--ftvm PATH] [--loads N]      (root; the bundled guest)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_ft  # noqa: E402
from bench_ft import ftlab  # noqa: E402

SAMPLE_S = 0.05
STALL_S = 0.5
FT_TIMEOUT_MS = 20000   # gdb stops a process while it reads its stacks: that must not look like a failure


def tap_counters(lab):
    out = subprocess.run(["ip", "-n", lab.ns("a"), "-s", "-j", "link", "show", "vmtap"], capture_output=True,
                         text=True).stdout
    st = json.loads(out)[0]["stats64"]
    return st["tx"]["packets"], st["rx"]["packets"]   # host -> guest, guest -> host


def backtraces(pid):
    if not shutil.which("gdb"):
        return "(no gdb)"
    return subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 6"], capture_output=True,
                          text=True, timeout=60).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ftvm")
    ap.add_argument("--loads", type=int, default=30)
    a = ap.parse_args()
    if a.ftvm:
        os.environ["FTVM"] = os.path.abspath(a.ftvm)
    os.environ.setdefault("FTVM_GUEST_DIR", ftlab.guest_dir())
    workdir = tempfile.mkdtemp(prefix="ftvm-stall-", dir="/dev/shm")
    lab = bench_ft.BenchLab(f"stp{os.getpid() % 10000}", workdir, 64, FT_TIMEOUT_MS)
    samples, caught, stop = [], [], threading.Event()

    def sampler():
        sock = os.path.join(lab.workdir, "primary.sock")
        while not stop.is_set():
            try:
                p = bench_ft.control_status(sock)
                to_vm, from_vm = tap_counters(lab)
            except (OSError, RuntimeError, ValueError):
                time.sleep(SAMPLE_S)
                continue
            now = time.monotonic()
            samples.append((now, p["icount"], p["last_lsn"], p["acked_lsn"], p["outputs_held"], to_vm, from_vm))
            old = [s for s in samples if s[0] <= now - STALL_S]
            if not caught and old and old[-1][1] == p["icount"] and to_vm > old[-1][5]:
                caught.append((now, backtraces(lab.primary.proc.pid), backtraces(lab.backup.proc.pid)))
            time.sleep(SAMPLE_S)

    try:
        lab.start(bench_ft.READY_TIMEOUT_S)
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        args = argparse.Namespace(conns=8, seconds=5.0)
        for i in range(a.loads):
            r = bench_ft.load(lab, args)
            print(f"load {i}: {r['ops_s']} ops/s, max latency {r['max_ms']} ms, unanswered {r['stuck_s']}", flush=True)
            if caught:
                break
        stop.set()
        th.join()
        if not caught:
            print("no stall caught")
            return 1
        t, bt_p, bt_b = caught[0]
        print(f"\nstall: primary icount unchanged for {STALL_S} s while frames reached its TAP "
              f"(RECORDER machine CHECK every 2^28 = {1 << 28} insns)")
        print("   t(s)      icount   icount/2^28  last_lsn  acked  held  tap->guest  guest->tap")
        for s in samples:
            if t - 3.0 <= s[0] <= t + 1.0:
                print(f"{s[0] - t:7.2f} {s[1]:11d} {s[1] / (1 << 28):12.5f} {s[2]:9d} {s[3]:6d} {s[4]:5d} "
                      f"{s[5]:11d} {s[6]:11d}")
        print("\n--- primary threads ---\n" + bt_p + "\n--- backup threads ---\n" + bt_b)
        return 0
    finally:
        stop.set()
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
