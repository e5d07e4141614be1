#!/usr/bin/env python3
"""bench_migrate.py — live migration of the bundled guest, side by side with QEMU's, in one run.

Rows (each migration measured by the source: downtime = vCPU held for the stop-and-copy until the
destination confirmed the hand-over, and for ftvm also "state sent" = held until the final state
was written to the socket, which is all QEMU's query-migrate "downtime" counts; total time; bytes
on the wire against the RAM the guest had touched, which round 0 sends):
  ftvm idle      kvd with no client, migrated A -> B -> A ... on the namespace network
  ftvm kvd load  the same under a client writing over one TCP connection (its longest gap printed)
  ftvm kvd load, arbiter  the same with an arbiter area on both sides (--arbiter): each hand-over
                 waits for the destination's claim of the next epoch (docs/migration.md)
  QEMU idle      qemu-system-riscv64 -M virt of the same kernel, initrd and RAM, `migrate` over
                 TCP to an -incoming QEMU on this machine, downtime limit set to the same 30 ms
                 (QMP: migrate-set-parameters, migrate, query-migrate)
Prints the host, the commit, the load average before and after, every migration and the medians.
Needs root (namespaces).
usage: bench_migrate.py [--runs N]
"""
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "migrate"))
sys.path.insert(0, os.path.join(ROOT, "tests", "ft"))
import ftlab  # noqa: E402
import test_migrate as tm  # noqa: E402

DONE = re.compile(r"done: (\d+) round\(s\), ([\d.]+) MiB of RAM sent of ([\d.]+) MiB, (?:[\d.]+ MiB of disk of [\d.]+ MiB, )?"
                  r"([\d.]+) MiB on the wire, "
                  r"downtime (\d+) ms, total (\d+) ms")

# The pause to the destination's confirmation, and to the state written out on the source (what
# QEMU's query-migrate "downtime" counts), in the summary of ftvm migrate.
HELD = re.compile(r"held ([\d.]+) ms until the destination confirmed, ([\d.]+) ms until the state was sent")


def ftvm_rows(lab, workdir, runs, load, arbiter=False):
    arb = ["--arbiter", lab.arbiter] if arbiter else []
    if arbiter:  # a fresh area: its epochs start again at 1
        subprocess.run([ftlab.ftvm_binary(), "arbiter", "init", lab.arbiter, "--vm", lab.vm_name(), "--force"],
                       check=True, stdout=subprocess.DEVNULL)
    src = lab.start_run("a", arb)
    src.wait_for("ftvm-guest: ready", 180)
    writer = None
    if load:
        if os.path.exists(os.path.join(workdir, "stop")):  # the last row's writer was told to stop
            os.unlink(os.path.join(workdir, "stop"))
        writer, logfile, stopfile = tm.start_writer(lab, workdir)
        time.sleep(2.0)
    rows, here, there, nodes = [], "a", "b", {"a": src}
    for _ in range(runs):
        nodes[there] = lab.start_incoming(there, arb)
        rc, err, took = lab.migrate(here, there)
        m = DONE.search(err)
        if rc != 0 or not m:
            raise SystemExit(f"migration failed: {err}")
        handed = nodes[there].wait_for("handed over", 30)
        touched = int(re.search(r"\((\d+) pages in", handed).group(1))
        rows.append({"rounds": int(m.group(1)), "sent_mib": float(m.group(4)), "downtime_ms": int(m.group(5)),
                     "total_ms": int(m.group(6))})
        held = HELD.search(err)  # microsecond figures: to the confirmation, and QEMU's measure
        if held:
            rows[-1].update(downtime_ms=float(held.group(1)), state_sent_ms=float(held.group(2)))
        nodes[here].wait(30)
        here, there = there, here
        time.sleep(1.0)
    gap = None
    if writer:
        s = tm.stop_writer(writer, stopfile, [])
        gap = s["max_gap_s"] * 1000
        if s["reconnects"]:
            raise SystemExit("the client's connection broke")
    nodes[here].kill()
    return rows, gap


def qmp(sock_path):
    s = socket.socket(socket.AF_UNIX)
    for _ in range(100):
        try:
            s.connect(sock_path)
            break
        except OSError:
            time.sleep(0.1)
    f = s.makefile("rw")
    json.loads(f.readline())

    def cmd(name, **args):
        f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                return r
    cmd("qmp_capabilities")
    return cmd


def qemu_rows(workdir, runs):
    g = ftlab.guest_dir()
    base = ["qemu-system-riscv64", "-M", "virt", "-m", "256", "-nographic", "-icount", "shift=auto",
            "-bios", os.path.join(g, "fw_dynamic.bin"), "-kernel", os.path.join(g, "Image"),
            "-initrd", os.path.join(g, "initramfs.cpio"), "-append", "console=ttyS0 panic=1 ftvm.workload=idle",
            "-device", "virtio-rng-device", "-serial", "null", "-monitor", "none"]
    rows = []
    for i in range(runs):
        qs, qd = os.path.join(workdir, f"qs{i}.qmp"), os.path.join(workdir, f"qd{i}.qmp")
        port = 7790 + i
        src = subprocess.Popen(base + ["-qmp", f"unix:{qs},server,nowait"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        dst = subprocess.Popen(base + ["-qmp", f"unix:{qd},server,nowait", "-incoming", f"tcp:127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(8.0)  # boot to the idle workload
            c = qmp(qs)
            c("migrate-set-parameters", **{"downtime-limit": 30})
            c("migrate", uri=f"tcp:127.0.0.1:{port}")
            while True:
                r = c("query-migrate")["return"]
                if r.get("status") in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            if r["status"] != "completed":
                raise SystemExit(f"QEMU migration {r['status']}")
            rows.append({"rounds": r["ram"].get("dirty-sync-count", 0), "sent_mib": r["ram"]["transferred"] / 1048576,
                         "downtime_ms": r.get("downtime", 0), "total_ms": r.get("total-time", 0)})
        finally:
            for p in (src, dst):
                p.kill()
                p.wait()
    return rows


def show(name, rows, gap=None):
    for r in rows:
        sent = f"  state sent {r['state_sent_ms']:5.1f} ms" if "state_sent_ms" in r else ""
        print(f"  {name:14} rounds {r['rounds']:3}  sent {r['sent_mib']:6.1f} MiB  downtime {r['downtime_ms']:6.1f} ms  "
              f"total {r['total_ms']:6} ms{sent}")
    med = {k: statistics.median(r[k] for r in rows) for k in ("sent_mib", "downtime_ms", "total_ms")}
    extra = f", client's longest gap {gap:.0f} ms" if gap is not None else ""
    if all("state_sent_ms" in r for r in rows):  # beside QEMU's downtime, which counts only this
        extra += f", state sent after {statistics.median(r['state_sent_ms'] for r in rows):.1f} ms"
    print(f"{name:16} median: downtime {med['downtime_ms']:.1f} ms, total {med['total_ms']:.0f} ms, "
          f"sent {med['sent_mib']:.1f} MiB{extra}", flush=True)
    return med


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 4
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"host {platform.node()} {platform.machine()}, {os.cpu_count()} cpus; commit {commit}; {runs} runs per row; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    workdir = tempfile.mkdtemp(prefix="ftvm-bench-migrate-")
    lab = tm.MigLab(f"bm{os.getpid() % 1000}", workdir)
    try:
        idle, _ = ftvm_rows(lab, workdir, runs, False)
        m_idle = show("ftvm idle", idle)
        load, gap = ftvm_rows(lab, workdir, runs, True)
        show("ftvm kvd load", load, gap)
        arb, gap = ftvm_rows(lab, workdir, runs, True, arbiter=True)
        show("ftvm kvd+arb", arb, gap)
    finally:
        lab.close()
    q = qemu_rows(workdir, runs)
    m_q = show("QEMU idle", q)
    if m_q["downtime_ms"]:
        print(f"idle downtime ftvm/QEMU {m_idle['downtime_ms'] / m_q['downtime_ms']:.1f}x")
    print(f"idle total time ftvm/QEMU {m_idle['total_ms'] / max(m_q['total_ms'], 1):.2f}x, "
          f"bytes ftvm/QEMU {m_idle['sent_mib'] / max(m_q['sent_mib'], 0.001):.2f}x")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
