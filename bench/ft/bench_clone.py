#!/usr/bin/env python3
"""bench_clone.py — restoring redundancy by FT clones (docs/ft-clone.md), measured.

On the two-host network of scripts/ft-topology an FT pair runs the bundled guest, every node with
--spare naming the other host. Each round kills the primary, starts a spare on its host at once,
and waits until the survivor, live, has cloned to it and is protected again; the next round kills
that new primary. Two loads: the guest idle, and kvd under one client's writes (4 ms apart). Per
failover it prints: kill -> live (the baseline: a failover without restoring redundancy), kill ->
protected again and its ratio to kill -> live, the guest's pause for the clone (stop-and-copy to
the hand-over's confirmation, then until it runs as the new primary), the clone's bytes and duration, and the
client's gap after the kill (kvd).

With --disk-mode replicated each host has its own 64 MiB disk file and every clone copies the
primary's replica too; --fill-mib N first writes N MiB of random data at the end of both replicas
(equal), so the clone has that much disk data to send besides the holes. A spare that comes back
keeps its replica and pairing mark, so these clones are resyncs (docs/disks.md, Resync): only
the blocks written since the pairing cross as data. --resync-vs-full runs every load twice, the
second time removing the returning host's pairing mark before its spare starts (the spare then
refuses the resync and gets a full copy), and prints disk bytes sent and clone time side by side.

    bench/ft/bench_clone.py [--rounds 5] [--loads idle,kvd] [--disk-mode replicated [--fill-mib N]
                            [--resync-vs-full]]
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ft"))
import ftlab  # noqa: E402
import test_clone as tc  # noqa: E402

HELD = re.compile(r"protected again: primary of epoch (\d+) with \S+; guest held ([\d.]+) ms \(stop-and-copy (\d+) ms, "
                  r"(?:then|log connection) ([\d.]+) ms(?: to run as its primary)?\); clone of (\d+) bytes in (\d+) ms")


def fill_tail(lab, mib):
    """The same random data in the last mib MiB of both replicas."""
    data = os.urandom(mib << 20)
    for path in set(lab.disks.values()):
        with open(path, "r+b") as f:
            f.seek(-(mib << 20), os.SEEK_END)
            f.write(data)


def one_load(load, rounds, workdir, disk_mode="shared", fill_mib=0, full_copy=False):
    workload = "ftvm.workload=kvd" if load == "kvd" else "ftvm.workload=idle"
    lab = ftlab.Lab(f"bc{os.getpid() % 1000}{load[0]}", workdir, timeout_ms=None, workload=workload,
                    disk_mode=disk_mode)
    if fill_mib:
        fill_tail(lab, fill_mib)
    nodes, rows, writer = {}, [], None
    logfile, stopfile = os.path.join(workdir, "acked.txt"), os.path.join(workdir, "stop")
    try:
        nodes["b"] = tc.start_node(lab, "b", "backup", "0")
        nodes["b"].wait_for("listening on", 30)
        nodes["a"] = tc.start_node(lab, "a", "primary", "0")
        nodes["a"].wait_for("ftvm-guest: ready", 180)
        if load == "kvd":
            writer = tc.start_writer(lab, logfile, stopfile, "b-")
            tc.wait_acked_beyond(logfile, 20, 60)
        time.sleep(1.0)
        primary = "a"
        for i in range(rounds):
            survivor = tc.other(primary)
            acked = tc.acked_lines(logfile)
            nodes[primary].kill()
            t_kill = time.monotonic()
            nodes[primary].wait(10)
            mark = lab.disks[primary] + ".ftvm-pairing"
            if full_copy and os.path.exists(mark):
                os.unlink(mark)
            spare = tc.start_node(lab, primary, "spare", str(i + 1))
            t_back = tc.wait_acked_beyond(logfile, acked, 30) if writer else None
            nodes[survivor].wait_for("live as primary", 30)
            t_live = nodes[survivor].time_of("live as primary")
            line = nodes[survivor].wait_for("protected again", 60)
            t_prot = nodes[survivor].time_of("protected again")
            spare.wait_for("primary connected; replaying", 30)
            nodes[primary] = spare
            m = HELD.search(line)
            row = {"load": load, "failover": i + 1, "live_ms": round((t_live - t_kill) * 1000),
                   "protected_again_ms": round((t_prot - t_kill) * 1000),
                   "held_ms": float(m.group(2)) if m else None, "stop_and_copy_ms": int(m.group(3)) if m else None,
                   "after_handover_ms": float(m.group(4)) if m else None, "clone_bytes": int(m.group(5)) if m else None,
                   "clone_ms": int(m.group(6)) if m else None,
                   "client_gap_ms": round((t_back - t_kill) * 1000) if t_back else None}
            row["protected_over_live"] = round(row["protected_again_ms"] / max(1, row["live_ms"]), 1)
            st = tc.status(lab, survivor)
            row.update(copy="full" if full_copy else "resync", disk_sent=st.get("clone_disk_bytes"),
                       disk_digested=st.get("clone_disk_digested"))
            print(json.dumps(row), flush=True)
            rows.append(row)
            time.sleep(1.0)  # the new pair runs a moment before its primary is killed in turn
            primary = survivor
        if writer:
            summary = tc.finish_writer(writer, stopfile, nodes.values())
            writer = None
            v = tc.verify(lab, logfile, nodes.values())
            print(json.dumps({"load": load, "acked": summary["acked"], "verified": v["verified"],
                              "reconnects": summary["reconnects"]}), flush=True)
    finally:
        if writer:
            writer.kill()
        for n in nodes.values():
            n.kill()
        lab.close()
    return rows


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loads", default="idle,kvd")
    ap.add_argument("--disk-mode", choices=("shared", "replicated"), default="shared")
    ap.add_argument("--fill-mib", type=int, default=0)
    ap.add_argument("--resync-vs-full", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(ftlab.guest_dir(), "Image")):
        print(f"no bundled guest in {ftlab.guest_dir()} (run guest/build)")
        return 1
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(json.dumps({"host": platform.node(), "cpus": os.cpu_count(), "commit": commit,
                      "loadavg_start": os.getloadavg()[0], "disk_mode": a.disk_mode, "fill_mib": a.fill_mib}),
          flush=True)
    for load in a.loads.split(","):
        rows = one_load(load, a.rounds, tempfile.mkdtemp(prefix=f"ftvm-bench-clone-{load}-"), a.disk_mode, a.fill_mib)
        if a.resync_vs_full:
            full = one_load(load, a.rounds, tempfile.mkdtemp(prefix=f"ftvm-bench-clone-{load}-full-"), a.disk_mode,
                            a.fill_mib, full_copy=True)
            for name, rs in (("resync", rows), ("full copy", full)):
                sent, ms = med(rs, "disk_sent"), med(rs, "clone_ms")
                if sent[0] is not None:
                    print(f"{load} {name}: disk MiB sent median {sent[0] / 1048576:.2f} ({sent[1] / 1048576:.2f}-"
                          f"{sent[2] / 1048576:.2f}); clone ms median {ms[0]:g} ({ms[1]:g}-{ms[2]:g})", flush=True)
        parts = []
        for key in ("live_ms", "protected_again_ms", "held_ms", "clone_bytes", "client_gap_ms"):
            m, lo, hi = med(rows, key)
            if m is None:
                continue
            if key == "clone_bytes":
                parts.append(f"clone MiB median {m / 1048576:.1f} ({lo / 1048576:.1f}-{hi / 1048576:.1f})")
            else:
                parts.append(f"{key} median {m:g} ({lo:g}-{hi:g})")
        print(f"{load}: " + "; ".join(parts), flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
