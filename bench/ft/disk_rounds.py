"""disk_rounds.py — the guest's disk workload (guest/src/ftvm-disk.c) in bench_ft.py's rounds
(`--workloads disk`): what FT costs a disk-bound guest and what its log carries, per disk mode.

Each round boots the workload on host A of bench_ft's lab, once per kind:
  * no FT: `ftvm run` with the FT pair's run options;
  * FT in each --disk-modes mode (replicated: every read logged as a digest, the backup reading
    its own replica; shared: one image, reads as digests where the backup can read the same bytes);
  * reads with data: `ftvm record --disk-reads data`, the log every read's bytes make (what the
    FT log carried before reads became digests) — the log's size is read from its file.
Measured between the guest's "disk: N MiB region" line and its "disk: score" line (the workload
itself, not the boot): the wall time, the guest's score (sequential MB/s, random IOPS), and the
log bytes written meanwhile (the primary's log_bytes, sampled from its control socket; the record
log's file size), as Mbit/s over that time.
"""
import os
import re
import statistics
import time

import ftlab

SCORE = re.compile(r"disk: score seq-write (\d+) MB/s, seq-read (\d+) MB/s, rand-read (\d+) IOPS, "
                   r"rand-write (\d+) IOPS")
REGION = r"disk: \d+ MiB region"
RUN_TIMEOUT_S = 900
READY_TIMEOUT_S = 300
SAMPLE_PERIOD_S = 0.2
TARGET_DISK_LOG_MBIT = 5.0   # the disk workload's log under FT (179 Mbit/s when reads carried data)


def workload_args(a):
    return f"ftvm.workload=disk ftvm.disk.mb={a.disk_region_mib} ftvm.disk.ops={a.disk_ops}"


def follow(node, log_bytes):
    """Waits for the workload's region and score lines on node, calling log_bytes() (None when it
    cannot answer) every SAMPLE_PERIOD_S meanwhile; returns the measurement."""
    node.wait_for(REGION, RUN_TIMEOUT_S)
    t0, b0 = time.monotonic(), log_bytes()
    t1, b1 = t0, b0
    deadline = t0 + RUN_TIMEOUT_S
    while not SCORE.search(node.output()):
        if node.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{node.name}: no disk score:\n{node.output()[-2000:]}")
        b = log_bytes()
        if b is not None:
            t1, b1 = time.monotonic(), b
        time.sleep(SAMPLE_PERIOD_S)
    tr, ts = node.time_of(REGION), node.time_of(SCORE.pattern)
    m = SCORE.search(node.output())
    out = {"workload_s": round(ts - tr, 2), "seq_write_mb_s": int(m[1]), "seq_read_mb_s": int(m[2]),
           "rand_read_iops": int(m[3]), "rand_write_iops": int(m[4])}
    if b0 is not None and t1 > t0:
        out["log_mbit_s"] = round((b1 - b0) * 8 / 1e6 / (t1 - t0), 3)
        out["log_mb"] = round((b1 - b0) / 1e6, 2)
    return out


def primary_log_bytes(lab):
    def sample():
        try:
            return lab.status_json("primary")["log_bytes"]
        except (RuntimeError, ValueError, KeyError):
            return None
    return sample


def plain_round(lab, a):
    lab.reset()
    lab.start_plain()
    try:
        return follow(lab.plain, lambda: None)
    finally:
        lab.stop()


def ft_round(lab, a, mode):
    lab.use_disk_mode(mode)
    lab.reset()
    lab.start(READY_TIMEOUT_S)
    try:
        res = follow(lab.primary, primary_log_bytes(lab))
        lab.backup.wait_for("replay matched", RUN_TIMEOUT_S)
        return res
    finally:
        lab.stop()


def data_round(lab, a):
    """`ftvm record --disk-reads data` of the same boot: the log that carries every read's bytes."""
    lab.reset()
    log = os.path.join(lab.workdir, "with-data.log")
    lab.plain = ftlab.Node("record", ["ip", "netns", "exec", lab.ns("a"), ftlab.ftvm_binary(), "record",
                                      "--force", "--log", log, "--disk-reads", "data"] + lab.run_options())
    try:
        return follow(lab.plain, lambda: os.path.getsize(log) if os.path.exists(log) else None)
    finally:
        lab.stop()


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def run(lab, a, modes, say):
    """--rounds rounds of no FT, FT in each mode and the with-data record, alternating the order."""
    lab.workload = workload_args(a)
    kinds = ["plain"] + list(modes) + ["data"]
    rows = {k: [] for k in kinds}
    for r in range(a.rounds):
        for kind in (kinds if r % 2 == 0 else list(reversed(kinds))):
            if kind == "plain":
                res = plain_round(lab, a)
            elif kind == "data":
                res = data_round(lab, a)
            else:
                res = ft_round(lab, a, kind)
            rows[kind].append(res)
            say(f"disk round {r} {kind}: {res['workload_s']} s, log {res.get('log_mbit_s', '-')} Mbit/s, "
                f"seq-write {res['seq_write_mb_s']} MB/s, rand-write {res['rand_write_iops']} IOPS")
    lab.workload = "ftvm.workload=kvd"
    return rows


def report(a, rows, modes, load_start):
    plain = rows["plain"]
    cols = [("no FT", plain)] + [(f"FT {m}", rows[m]) for m in modes] + [("reads w/ data", rows["data"])]

    def fmt(v, spec="{:.2f}"):
        return "-" if v is None else spec.format(v)

    def ratio(rs, key, inverse=False):
        p, f = med(plain, key), med(rs, key)
        if not p or not f:
            return "-"
        return f"{(p / f if inverse else f / p):.3f}"

    metrics = [
        ("workload time, region to score (s)", lambda rs: fmt(med(rs, "workload_s"))),
        ("throughput vs no FT (time no FT / time)", lambda rs: ratio(rs, "workload_s", inverse=True)),
        ("seq-write / seq-read (MB/s)",
         lambda rs: f"{fmt(med(rs, 'seq_write_mb_s'), '{:.0f}')} / {fmt(med(rs, 'seq_read_mb_s'), '{:.0f}')}"),
        ("rand-read / rand-write (IOPS)",
         lambda rs: f"{fmt(med(rs, 'rand_read_iops'), '{:.0f}')} / {fmt(med(rs, 'rand_write_iops'), '{:.0f}')}"),
        ("log bandwidth (Mbit/s)", lambda rs: fmt(med(rs, "log_mbit_s"), "{:.3f}")),
        ("log during the workload (MB)", lambda rs: fmt(med(rs, "log_mb"))),
    ]
    print(f"\ndisk workload ({a.disk_region_mib} MiB region, {a.disk_ops} random ops), median of {a.rounds} "
          f"rounds; load average at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}")
    w0 = max(len(m[0]) for m in metrics)
    print(f"{'metric':<{w0}} | " + " | ".join(f"{c:>14}" for c, _ in cols))
    for name, cell in metrics:
        print(f"{name:<{w0}} | " + " | ".join(f"{cell(rs) if rs else '-':>14}" for _, rs in cols))
    met = {m: bool(rows[m]) and all(r.get("log_mbit_s", 1e9) < TARGET_DISK_LOG_MBIT for r in rows[m])
           for m in modes}
    print("target: disk workload log < {:.0f} Mbit/s under FT: {}".format(
        TARGET_DISK_LOG_MBIT, ", ".join(f"{m} {'met' if v else 'MISSED'}" for m, v in met.items())))
    return met
