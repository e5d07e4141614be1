#!/usr/bin/env python3
"""snapshot_bench.py — live snapshots of the bundled guest: how long the vCPU is held, the whole
save, the file's size, against the RAM the guest has touched.

Rows (each the median of --runs snapshots of one VM):
  idle          the guest idle after boot (the `shell` workload at its prompt)
  filled N      after the guest wrote up to N MiB of random bytes into its tmpfs (RAM); the
                touched column says how much it had touched when the snapshot began
  dirtying      while the guest rewrites a 32 MiB tmpfs file in a loop (pages dirtied during the copy)
  kvd load      kvd with a client writing keys (needs root: network namespaces); also the client's
                longest gap between two replies
The baseline, measured in the same snapshot: the whole save's time, which is at least what a
stop-and-copy snapshot (vCPU held from the first page copied to the last) would hold the vCPU;
`held/total` is the live save's ratio to it.

Usage: snapshot_bench.py [--ftvm PATH] [--runs N] [--mem MiB]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "ft"))
import ftlab  # noqa: E402


def snap(ftvm, sock, path):
    out = subprocess.run([ftvm, "snapshot", "--control", sock, "--force", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"snapshot failed: {out.stderr}")
    st = json.loads(subprocess.run([ftvm, "status", "--json", "--control", sock], capture_output=True,
                                   text=True).stdout)
    return st["job"]["result"]


def row(name, results, extra=""):
    held = statistics.median(r["pause_ms"] for r in results)
    total = statistics.median(r["total_ms"] for r in results)
    touched = statistics.median(r["ram_touched"] for r in results) / 2**20
    size = statistics.median(r["bytes"] for r in results) / 2**20
    final = statistics.median(r["pages_final"] for r in results)
    print(f"{name:<14} {touched:8.1f} {size:8.1f} {held:9.2f} {total:9.0f} {held / total:9.5f} {final:7.0f}  {extra}",
          flush=True)


def shell_rows(ftvm, runs, mem, work):
    sock = os.path.join(work, "bench.sock")
    vm = subprocess.Popen([ftvm, "run", "--control", sock, "--mem", str(mem), "--extra-args", "ftvm.workload=shell"],
                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(8)   # to the prompt

        def sh(cmd, wait=0.0):
            vm.stdin.write((cmd + "\n").encode())
            vm.stdin.flush()
            time.sleep(wait)

        path = os.path.join(work, "bench.snap")
        row("idle", [snap(ftvm, sock, path) for _ in range(runs)])
        filled = 0
        for mib in (32, 128, min(384, mem - 160)):
            sh(f"dd if=/dev/urandom of=/tmp/fill{mib} bs=1M count={mib - filled} 2>/dev/null", wait=(mib - filled) / 4 + 2)
            filled = mib
            row(f"filled {mib}", [snap(ftvm, sock, path) for _ in range(runs)])
        sh("while true; do dd if=/dev/zero of=/tmp/dirty bs=1M count=32 2>/dev/null; done &", wait=3)
        row("dirtying", [snap(ftvm, sock, path) for _ in range(runs)])
    finally:
        os.killpg(vm.pid, 9)
        vm.wait()


def kvd_row(ftvm, runs, work):
    lab = ftlab.Lab(f"b{os.getpid() % 10000}", work)
    vm = None
    try:
        sock = os.path.join(work, "kvd.sock")
        vm = ftlab.Node("kvd", ["ip", "netns", "exec", lab.ns("a"), ftvm, "run", "--control", sock]
                        + lab.run_options())
        vm.wait_for("ftvm-guest: ready", 120)
        log = os.path.join(work, "acked.log")
        client = subprocess.Popen(["ip", "netns", "exec", lab.ns("cl"), "python3",
                                   os.path.join(ftlab.HERE, "kvclient.py"), "write", ftlab.GUEST_IP,
                                   "--count", "4000", "--log", log], stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        results = []
        for _ in range(runs):
            results.append(snap(ftvm, sock, os.path.join(work, "kvd.snap")))
            time.sleep(0.3)
        summary = json.loads(client.communicate(timeout=300)[0].strip().splitlines()[-1])
        row("kvd load", results, f"client: {summary['acked']} writes, longest gap {summary['max_gap_s'] * 1000:.0f} ms")
    finally:
        if vm:
            vm.kill()
        lab.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ftvm", default=os.path.join(REPO, "build", "cmd", "ftvm"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mem", type=int, default=512)
    a = ap.parse_args()
    os.environ["FTVM"] = a.ftvm
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"host {platform.node()} ({platform.machine()}, {os.cpu_count()} cpus), commit {commit}, "
          f"guest {a.mem} MiB, median of {a.runs}")
    print(f"{'row':<14} {'touched':>8} {'file':>8} {'held ms':>9} {'total ms':>9} {'held/total':>9} {'pg held':>7}")
    print(f"{'':<14} {'MiB':>8} {'MiB':>8}")
    work = tempfile.mkdtemp(prefix="ftvm-snap-bench-")
    shell_rows(a.ftvm, a.runs, a.mem, work)
    if os.geteuid() == 0:
        kvd_row(a.ftvm, a.runs, work)
    else:
        print("kvd load       skipped (needs root for network namespaces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
