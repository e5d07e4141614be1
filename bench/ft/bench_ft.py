#!/usr/bin/env python3
"""bench_ft.py — what fault tolerance costs and buys, measured side by side in one run.

The bundled guest serves kvd (durable SETs on a virtio-blk disk, virtio-net on a TAP device) on
host A of the two-host network of scripts/ft-topology, reached from the client host:
  * without FT: `ftvm run` in host A's namespace, with exactly the run options the FT pair uses
    (same --disk, --nic, kernel command line);
  * with FT: `ftvm backup` on host B, `ftvm primary` on host A (tests/ft/ftlab.py's Lab).
The two are booted alternately for --rounds rounds (each boot gets a fresh disk and arbiter area,
on tmpfs by default: --dir), so slow drift in the machine's load hits both alike; the table shows
the median over rounds. The FT processes' and plain run's CPU time is read from /proc.

Measured:
  1. kvd throughput (SET ops/s over --conns concurrent connections, closed loop, --seconds after
     a warm-up) and per-request latency p50/p99 (bench/ft/loadgen.py in the client's namespace),
     without and with FT, and the ratio FT/no-FT; the same over --light-conns connections first;
  2. logging-channel bandwidth from the primary's `ftvm status --json` log_bytes deltas: during
     the FT load and while the guest serves nothing for --idle seconds;
  3. backup lag: backup_lag_ms sampled from the primary's status during the load (its lag clock:
     how long ago the primary was at the icount the backup last reported, every 5 ms while it
     replays; primary/lag_clock.h — what `--max-lag` bounds), and measured directly as the
     primary's icount minus the backup's, both read from the control sockets back to back,
     converted to guest time at the primary's instruction rate over the load (icount delta / wall
     delta); and the share of the load during which the vCPU was slowed for lag;
  4. failover gap seen by a client: after each FT round's load, one connection sends SETs back to
     back, the primary is SIGKILLed, and the gap from the last reply before the kill to the first
     reply after it is taken from the client's reply times (CLOCK_MONOTONIC, one clock for every
     namespace). One kill per FT round, alternately a process kill (host A's kernel still resets
     the logging connection) and a host kill (host A's links cut first, so only the backup's
     silence timeout detects it); the table shows each and the median.
VMware FT's published numbers (/work/shared/notes/ft-anchors.md) are printed as reference lines.

--disk-modes shared,replicated runs the FT rounds once per disk mode (docs/disks.md): shared, one
disk both hosts reach, reads logged as digests where the backup can read the same bytes, the
primary's writes held as outputs; replicated, a replica per host, every read a digest and the
writes going straight to the primary's replica. Each mode gets its table against the same no-FT
rounds, then a side-by-side summary (throughput ratio, log bandwidth, latency).

Needs root (namespaces, TAP devices) and the bundled guest (guest/build).
usage: bench_ft.py [--ftvm PATH] [--rounds N] [--conns N] [--light-conns N] [--seconds S] [--idle S]
                   [--timeout-ms MS] [--dir DIR] [--disk-modes shared[,replicated]] [--json]
A default run (4 rounds) takes about 4 minutes.
"""
import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "ft"))
import ftlab  # noqa: E402

LOADGEN = os.path.join(HERE, "loadgen.py")
READY_TIMEOUT_S = 120
STATUS_PERIOD_S = 0.25      # how often the primary's status is sampled during the load
WARMUP_S = 2.0              # load before the measured window (connections ramp up)
GAP_READY_TIMEOUT_S = 30.0  # for the gap client's first replies
GAP_LEAD_S = 1.5            # the gap client runs this long after its first replies before the kill
GAP_TAIL_S = 2.0            # and this long after the backup says it is live
GAP_DELAY_MS = 2.0          # between the gap client's requests
KILLS = ("process", "host")  # FT round r ends with kill KILLS[r % 2]; see failover()
TARGET_RATIO = 0.95
TARGET_LOG_MBIT = 20.0
TARGET_LAG_MS = 100.0
TARGET_GAP_S = 1.0

# VMware vSphere FT (record/replay), Scales et al., SIGOPS OSR 2010, and the vSphere 4 guidance,
# as summarised in /work/shared/notes/ft-anchors.md.
VMWARE_REFERENCE = [
    "FT/non-FT performance: SPECjbb2005 0.98, kernel compile 0.95, Swingbench 0.99, DVD Store 0.94",
    "logging bandwidth under load: 1.5 (SPECjbb) / 3.0 (kernel compile) / 12 (Swingbench) / 18 (DVD Store) Mbit/s",
    "idle VM logging: 1.43 Mbit/s at a 1000 Hz guest timer, 0.68 at 250 Hz, 0.15 at 82 Hz",
    "backup lag: normally under 100 ms; the primary is slowed above ~1 s",
    "failover: not given as a number; detection by UDP heartbeats and logging-traffic monitoring",
]


def say(msg):
    print(f"bench_ft: {msg}", file=sys.stderr, flush=True)


class BenchLab(ftlab.Lab):
    """ftlab's Lab plus a plain (non-FT) `ftvm run` on host A with the same run options, and a reset
    between boots (fresh shared disk and arbiter area on the same topology)."""

    def __init__(self, prefix, workdir, disk_mib, timeout_ms):
        self.disk_mib = disk_mib
        super().__init__(prefix, workdir, disk_mib=disk_mib, timeout_ms=timeout_ms)
        self.plain = None

    def reset(self):
        self.stop()
        self.set_host_a_links("up")
        # After a failover the bridges have learned the guest's MAC where host B announced it (the
        # switch on B's port, host A's bridge on its uplink); a guest booting afresh on host A
        # announces nothing, so they must forget it or no frame reaches the guest on A.
        for host, bridge in (("sw", "sw"), ("a", "vmbr"), ("b", "vmbr")):
            self.sh(["ip", "-n", self.ns(host), "link", "set", bridge, "type", "bridge", "fdb_flush"])
        for path in set(self.disks.values()):
            with open(path, "wb") as f:
                f.truncate(self.disk_mib << 20)
        self.sh([ftlab.ftvm_binary(), "arbiter", "init", self.arbiter, "--vm", self.vm_name(), "--force"])

    def use_disk_mode(self, mode):
        """The FT pair's disk mode from the next reset: one shared image, or a replica per host."""
        self.disk_mode = mode
        self.disks = {"a": self.disk, "b": self.disk} if mode == "shared" else \
            {h: os.path.join(self.workdir, f"disk-{h}.img") for h in ("a", "b")}

    def set_host_a_links(self, state):
        """Host A's logging link and its uplink to the switch: "down" cuts host A off entirely."""
        for dev in ("log", "up-a"):
            self.sh(["ip", "-n", self.ns("a"), "link", "set", dev, state])

    def start_plain(self):
        self.plain = ftlab.Node("plain", ["ip", "netns", "exec", self.ns("a"), ftlab.ftvm_binary(), "run"]
                                + self.run_options())
        self.plain.wait_for("ftvm-guest: ready", READY_TIMEOUT_S)

    def stop(self):
        for attr in ("plain", "primary", "backup"):
            n = getattr(self, attr)
            if n:
                n.kill()
                try:
                    n.wait(10)
                except subprocess.TimeoutExpired:
                    say(f"{n.name} (pid {n.proc.pid}) did not exit 10 s after SIGKILL")
                setattr(self, attr, None)

    def close(self):
        self.stop()
        subprocess.run([os.path.join(ftlab.ROOT, "scripts", "ft-topology"), "down", self.prefix])

    def status_json(self, role):
        out = self.status(role)
        if not out:
            raise RuntimeError(f"`ftvm status` of the {role} answered nothing")
        return json.loads(out)


def cpu_seconds_each(nodes):
    """User+system CPU time so far of each given ftvm process, all its threads (/proc/PID/stat).
    `ip netns exec` execs ftvm in place, so a Node's pid is the ftvm process."""
    each = []
    for n in nodes:
        with open(f"/proc/{n.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        each.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return each


def measured_load(lab, a, nodes):
    """The load, with the CPU time the given ftvm processes spent on it (warm-up included)."""
    e0, t0 = cpu_seconds_each(nodes), time.monotonic()
    res = load(lab, a)
    e1, t1 = cpu_seconds_each(nodes), time.monotonic()
    c0, c1 = sum(e0), sum(e1)
    res["ftvm_cpu_cores"] = round((c1 - c0) / (t1 - t0), 3)
    ops_total = res["ops"] * (t1 - t0) / a.seconds      # the warm-up's requests cost CPU as well
    res["ftvm_cpu_ms_per_op"] = round((c1 - c0) * 1000.0 / max(1.0, ops_total), 3)
    # Per process (FT: primary, then backup).
    res["ftvm_cpu_ms_per_op_each"] = [round((b - a_) * 1000.0 / max(1.0, ops_total), 3)
                                      for a_, b in zip(e0, e1)]
    return res


def run_client(lab, argv, timeout):
    r = lab.client(["python3", LOADGEN] + argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"loadgen {' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def load(lab, a, conns=None):
    conns = conns or a.conns
    return run_client(lab, ["load", ftlab.GUEST_IP, "--conns", str(conns), "--seconds", str(a.seconds),
                            "--warmup", str(WARMUP_S)], timeout=a.seconds + WARMUP_S + 60)


def control_status(path):
    """One status request on an FT node's control socket (what `ftvm status --json` sends), without
    the fork and exec of the command, so that two nodes can be sampled within a millisecond."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        s.connect(path)
        s.sendall(b'{"cmd":"status"}\n')
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"control socket {path} closed without an answer")
            buf += chunk
    st = json.loads(buf.split(b"\n", 1)[0])
    if not st.get("ok"):
        raise RuntimeError(f"control socket {path}: {st.get('error')}")
    return st


class StatusSampler:
    """Samples both nodes' status in a thread, backup, primary, backup back to back: the primary's
    icount minus the backup's (taken right after) is the lag measured directly, next to the
    primary's own backup_lag_ms (its lag clock applied to the icount the backup last reported,
    at most about 5 ms old while the backup replays). Samples: (time, primary, backup)."""

    def __init__(self, lab):
        self.lab, self.samples, self.error = lab, [], None
        self.paths = {r: os.path.join(lab.workdir, f"{r}.sock") for r in ("primary", "backup")}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                control_status(self.paths["backup"])
                p = control_status(self.paths["primary"])
                t = time.monotonic()
                b = control_status(self.paths["backup"])
                self.samples.append((t, p, b))
            except (OSError, RuntimeError, ValueError) as e:
                self.error = str(e)
            self.stopping.wait(max(0.0, STATUS_PERIOD_S - (time.monotonic() - t0)))

    def stop(self):
        self.stopping.set()
        self.thread.join()
        return self.samples


def window(samples, t_start, t_end):
    return [x for x in samples if t_start <= x[0] <= t_end]


def mbit_s(s0, s1):
    (t0, a), (t1, b) = s0, s1
    return (b["log_bytes"] - a["log_bytes"]) * 8 / 1e6 / (t1 - t0)


def light_load(lab, a):
    """The same SET loop over --light-conns connections (only throughput and latency kept): with
    one connection every request waits for its own disk sync, the case the Output Rule hits hardest
    per request but where the CPU is idle most of the time."""
    if a.light_conns <= 0:
        return {}
    r = load(lab, a, a.light_conns)
    return {"light_ops_s": r["ops_s"], "light_p50_ms": r["p50_ms"], "light_p99_ms": r["p99_ms"]}


def plain_round(lab, a):
    lab.reset()
    t0 = time.monotonic()
    lab.start_plain()
    boot = time.monotonic() - t0
    light = light_load(lab, a)
    res = measured_load(lab, a, [lab.plain])
    lab.stop()
    return {"boot_s": round(boot, 2), **light, **res}


def ft_round(lab, a, idle_s, kill):
    lab.reset()
    t0 = time.monotonic()
    lab.start(READY_TIMEOUT_S)
    boot = time.monotonic() - t0
    out = {"boot_s": round(boot, 2), **light_load(lab, a)}

    # Load, with the primary's status sampled throughout.
    sampler = StatusSampler(lab)
    res = measured_load(lab, a, [lab.primary, lab.backup])
    samples = sampler.stop()
    out.update(res)
    w = window(samples, res["t_start"], res["t_end"])
    if len(w) < 2:
        raise RuntimeError(f"too few status samples in the load window ({len(w)}): {sampler.error}")
    (ta, sa, _), (tb, sb, _) = w[0], w[-1]
    out["log_mbit_s_load"] = round(mbit_s((ta, sa), (tb, sb)), 3)
    out["log_bytes_per_op"] = round((sb["log_bytes"] - sa["log_bytes"]) / max(1, res["ops"]), 1)
    rate = (sb["icount"] - sa["icount"]) / (tb - ta)      # guest instructions per wall second
    out["insn_rate_mips"] = round(rate / 1e6, 2)
    out["status_samples"] = len(w)
    reported = sorted(p["backup_lag_ms"] for _, p, _ in w)
    out["lag_ms_p50"] = round(reported[len(reported) // 2], 3)
    out["lag_ms_max"] = round(reported[-1], 3)
    direct = sorted(max(0, p["icount"] - b["icount"]) for _, p, b in w)
    for name, lags in (("lag_direct", direct),):
        out[f"{name}_insns_p50"] = lags[len(lags) // 2]
        out[f"{name}_insns_max"] = lags[-1]
        out[f"{name}_ms_p50"] = round(lags[len(lags) // 2] / rate * 1000.0, 3) if rate > 0 else None
        out[f"{name}_ms_max"] = round(lags[-1] / rate * 1000.0, 3) if rate > 0 else None
    out["throttled_ms"] = sb.get("throttled_ms", 0) - sa.get("throttled_ms", 0)
    out["throttled_share"] = round(out["throttled_ms"] / 1000.0 / (tb - ta), 3)
    out["state"] = sb["state"]
    if sb["state"] != "protected":
        raise RuntimeError(f"the pair is not protected after the load: {sb}")

    # Idle: nothing connects; the guest's timer and housekeeping are all the log carries.
    if idle_s > 0:
        s0 = (time.monotonic(), lab.status_json("primary"))
        time.sleep(idle_s)
        s1 = (time.monotonic(), lab.status_json("primary"))
        out["log_mbit_s_idle"] = round(mbit_s(s0, s1), 6)
        out["idle_records_s"] = round((s1[1]["log_records"] - s0[1]["log_records"]) / (s1[0] - s0[0]), 1)

    out.update(failover(lab, kill))
    return out


def failover(lab, kill):
    """One client connection sends SETs back to back; SIGKILL the primary; the gap in its replies
    that spans the kill is the failover as the client sees it. kill "process": only the primary
    process dies, so host A's kernel still resets its logging connection and the backup hears of it
    at once; "host": host A's links go down first (the host is gone, nothing is sent), so the
    backup notices only by the silence timeout."""
    budget = GAP_LEAD_S + READY_TIMEOUT_S
    client = subprocess.Popen(["ip", "netns", "exec", lab.ns("cl"), "python3", LOADGEN, "gap", ftlab.GUEST_IP,
                               "--seconds", str(budget), "--delay-ms", str(GAP_DELAY_MS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([client.stdout], [], [], GAP_READY_TIMEOUT_S)
        if not ready or client.stdout.readline().strip() != "replying":
            raise RuntimeError(f"the gap client got no replies within {GAP_READY_TIMEOUT_S} s")
        time.sleep(GAP_LEAD_S)
        if client.poll() is not None:
            raise RuntimeError(f"gap client ended early: {client.stderr.read()[-1500:]}")
        t_kill = time.monotonic()
        if kill == "host":
            lab.set_host_a_links("down")
        lab.primary.kill(signal.SIGKILL)
        lab.backup.wait_for("live as primary", 30)
        t_live = time.monotonic()
        time.sleep(GAP_TAIL_S)
        out, err = client.communicate(timeout=30)   # closes its stdin: it finishes and reports
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if client.returncode != 0:
        raise RuntimeError(f"gap client failed ({client.returncode}): {err[-1500:]}")
    res = json.loads(out.strip().splitlines()[-1])
    # Replies the dead primary had already released may still arrive just after t_kill, so the gap
    # that counts is the longest interval between two replies ending after the kill and starting
    # before the backup was live.
    ts = res["times"]
    spans = [(t1 - t0, t0, t1) for t0, t1 in zip(ts, ts[1:]) if t1 >= t_kill and t0 <= t_live]
    if not spans:
        raise RuntimeError(f"no replies around the kill at {t_kill:.3f} (live at {t_live:.3f}): "
                           f"{res['replies']} replies, last at {ts[-1] if ts else None}")
    gap = max(spans)[0]
    before = [t1 - t0 for t0, t1 in zip(ts, ts[1:]) if t1 < t_kill]
    st = lab.status_json("backup")
    return {"kill": kill, "gap_s": round(gap, 4), "golive_s": round(t_live - t_kill, 3),
            "gap_reconnects": res["reconnects"], "gap_replies": res["replies"],
            "reply_interval_ms_before": round(statistics.median(before) * 1000.0, 2) if before else None, "after_state": st["state"], "after_failovers": st["failovers"]}


def channel_defaults():
    """(timeout ms, heartbeat ms) that ftvm uses when given neither, from logchannel/channel.h."""
    with open(os.path.join(ftlab.ROOT, "logchannel", "channel.h")) as f:
        text = f.read()
    return tuple(int(re.search(rf"#define CHANNEL_DEFAULT_{name}_MS (\d+)u", text).group(1))
                 for name in ("TIMEOUT", "HEARTBEAT"))


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio_of(fts, plains, key):
    f, p = med(fts, key), med(plains, key)
    return fmt(f / p if f is not None and p else None, "{:.2f}x")


def worst(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return max(vals) if vals else None


def host_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True,
                            text=True).stdout.strip() or "?"
    return {"host": platform.node(), "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()[0], "commit": commit, "ftvm": ftlab.ftvm_binary()}


def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def compare_modes(a, plains, by_mode):
    """The disk modes side by side: what each costs against the same no-FT rounds."""
    p_ops = med(plains, "ops_s")
    rows = [(f"kvd SET throughput, {a.conns} conns (ops/s)", lambda f: fmt(med(f, "ops_s"))),
            ("FT/no-FT throughput", lambda f: fmt(med(f, "ops_s") / p_ops if p_ops else None, "{:.3f}")),
            (f"latency p50 / p99, {a.conns} conns (ms)",
             lambda f: f"{fmt(med(f, 'p50_ms'), '{:.2f}')} / {fmt(med(f, 'p99_ms'), '{:.2f}')}"),
            ("log bandwidth under the load (Mbit/s)", lambda f: fmt(med(f, "log_mbit_s_load"), "{:.3f}")),
            ("log bytes per SET", lambda f: fmt(med(f, "log_bytes_per_op"), "{:.0f}")),
            ("failover gap, median (s)", lambda f: fmt(statistics.median(r["gap_s"] for r in f), "{:.3f}"))]
    modes = list(by_mode)
    w0 = max(len(r[0]) for r in rows)
    print(f"\ndisk modes side by side (no FT: {fmt(p_ops)} ops/s, the same rounds for both)")
    print(f"{'metric':<{w0}} | " + " | ".join(f"{m:>14}" for m in modes))
    for name, cell in rows:
        print(f"{name:<{w0}} | " + " | ".join(f"{cell(by_mode[m]):>14}" for m in modes))


def report(info, a, plains, fts, wall):
    p_ops, f_ops = med(plains, "ops_s"), med(fts, "ops_s")
    ratio = f_ops / p_ops if p_ops else None
    p_light, f_light = med(plains, "light_ops_s"), med(fts, "light_ops_s")
    light_ratio = f_light / p_light if p_light else None
    gaps = [r["gap_s"] for r in fts]
    if a.timeout_ms is None:   # ftvm's own defaults: the pair ran without --timeout/--heartbeat
        detect = channel_defaults()
    else:
        detect = (a.timeout_ms, max(10, a.timeout_ms // 5))   # as ftlab.Lab.ft_options() sets it
    rows = [
        (f"kvd SET throughput, {a.conns} conns (ops/s)", fmt(p_ops), fmt(f_ops),
         f"{fmt(ratio, '{:.3f}')} (target >= {TARGET_RATIO})"),
        (f"latency p50, {a.conns} conns (ms)", fmt(med(plains, "p50_ms"), "{:.2f}"), fmt(med(fts, "p50_ms"), "{:.2f}"),
         ratio_of(fts, plains, "p50_ms")),
        (f"latency p99, {a.conns} conns (ms)", fmt(med(plains, "p99_ms"), "{:.2f}"), fmt(med(fts, "p99_ms"), "{:.2f}"),
         ratio_of(fts, plains, "p99_ms")),
        (f"latency max, {a.conns} conns, worst round (ms)", fmt(worst(plains, "max_ms"), "{:.0f}"),
         fmt(worst(fts, "max_ms"), "{:.0f}"), "stalls show here"),
        ("requests unanswered for > 1 s at a load's end", str(sum(len(r.get("stuck_s", [])) for r in plains)),
         str(sum(len(r.get("stuck_s", [])) for r in fts)), "should be 0"),
        (f"kvd SET throughput, {a.light_conns} conn(s) (ops/s)", fmt(p_light), fmt(f_light),
         f"{fmt(light_ratio, '{:.3f}')} (target >= {TARGET_RATIO})"),
        (f"latency p50, {a.light_conns} conn(s) (ms)", fmt(med(plains, "light_p50_ms"), "{:.2f}"),
         fmt(med(fts, "light_p50_ms"), "{:.2f}"), ratio_of(fts, plains, "light_p50_ms")),
        (f"latency p99, {a.light_conns} conn(s) (ms)", fmt(med(plains, "light_p99_ms"), "{:.2f}"),
         fmt(med(fts, "light_p99_ms"), "{:.2f}"), ratio_of(fts, plains, "light_p99_ms")),
        (f"ftvm CPU during the {a.conns}-conn load (cores; FT: both)", fmt(med(plains, "ftvm_cpu_cores"), "{:.2f}"),
         fmt(med(fts, "ftvm_cpu_cores"), "{:.2f}"), f"of {os.cpu_count()} cpus, shared with the client"),
        ("ftvm CPU per SET (ms)", fmt(med(plains, "ftvm_cpu_ms_per_op"), "{:.2f}"),
         fmt(med(fts, "ftvm_cpu_ms_per_op"), "{:.2f}"), ratio_of(fts, plains, "ftvm_cpu_ms_per_op")),
        ("  of which the primary / the backup (ms)", "-",
         "{} / {}".format(*(fmt(statistics.median(r["ftvm_cpu_ms_per_op_each"][i] for r in fts), "{:.2f}")
                            for i in (0, 1))) if fts else "-", ""),
        (f"log bandwidth under the {a.conns}-conn load (Mbit/s)", "-", fmt(med(fts, "log_mbit_s_load"), "{:.3f}"),
         f"target << {TARGET_LOG_MBIT:.0f}"),
        ("log bytes per SET", "-", fmt(med(fts, "log_bytes_per_op"), "{:.0f}"), ""),
        (f"log bandwidth idle, {a.idle:.0f} s (Mbit/s)", "-", fmt(med(fts, "log_mbit_s_idle"), "{:.6f}"),
         f"target << {TARGET_LOG_MBIT:.0f}"),
        ("guest insn rate under load (MIPS)", "-", fmt(med(fts, "insn_rate_mips"), "{:.1f}"), ""),
        ("backup lag, primary's backup_lag_ms p50 (ms)", "-", fmt(med(fts, "lag_ms_p50"), "{:.1f}"),
         f"target < {TARGET_LAG_MS:.0f}; in time (lag clock)"),
        ("backup lag, primary's backup_lag_ms max (ms)", "-", fmt(worst(fts, "lag_ms_max"), "{:.1f}"),
         f"target < {TARGET_LAG_MS:.0f}; --max-lag slows above"),
        ("share of the load the vCPU was slowed for lag", "-", fmt(med(fts, "throttled_share"), "{:.3f}"),
         "throttled_ms / load time"),
        ("backup lag, icount primary - backup p50 (ms)", "-", fmt(med(fts, "lag_direct_ms_p50"), "{:.1f}"),
         f"target < {TARGET_LAG_MS:.0f}"),
        ("backup lag, icount primary - backup max (ms)", "-", fmt(worst(fts, "lag_direct_ms_max"), "{:.1f}"),
         f"target < {TARGET_LAG_MS:.0f}"),
        ("failover gap seen by client, median (s)", "-", fmt(statistics.median(gaps) if gaps else None, "{:.3f}"),
         f"target < {TARGET_GAP_S:.0f}"),
    ]
    for kind in KILLS:
        kg = [r["gap_s"] for r in fts if r["kill"] == kind]
        if kg:
            rows.append((f"  {kind} kill: each gap (s)", "-", ", ".join(f"{g:.3f}" for g in kg),
                         "RST reaches the backup" if kind == "process" else f"detection timeout {detect[0]} ms"))
    rows += [
        ("  kill -> backup live (s)", "-", ", ".join(f"{r['golive_s']:.3f}" for r in fts), ""),
        ("  reply interval before the kill (ms)", "-", fmt(med(fts, "reply_interval_ms_before"), "{:.1f}"),
         f"one connection, {GAP_DELAY_MS:.0f} ms pause"),
        ("boot to ready (s)", fmt(med(plains, "boot_s"), "{:.2f}"), fmt(med(fts, "boot_s"), "{:.2f}"), ""),
    ]
    print(f"ftvm FT benchmark — host {info['host']} ({info['cpu']}, {info['cpus']} cpus, kernel {info['kernel']})")
    print(f"commit {info['commit']}; binary {info['ftvm']}")
    mode = fts[0].get("disk_mode", "shared") if fts else "shared"
    print(f"disk mode {mode}: {'one image' if mode == 'shared' else 'a replica per host'} in "
          f"{a.dir or tempfile.gettempdir()} ({a.disk_mib} MiB); FT detection timeout "
          f"{detect[0]} ms, heartbeat {detect[1]} ms{' (ftvm defaults)' if a.timeout_ms is None else ''}")
    print(f"load average at start {info['loadavg_start']:.2f}, at end {os.getloadavg()[0]:.2f}; "
          f"{a.rounds} alternating rounds (no FT, FT), {a.seconds:.0f} s measured per load, "
          f"{WARMUP_S:.0f} s warm-up; total {wall:.0f} s")
    print()
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "no FT")])
    w2 = max(len(r[2]) for r in rows + [("", "", "FT")])
    print(f"{'metric':<{w0}} | {'no FT':>{w1}} | {'FT':>{w2}} | ratio/target")
    print(f"{'-' * w0}-+-{'-' * w1}-+-{'-' * w2}-+-{'-' * 28}")
    for r in rows:
        print(f"{r[0]:<{w0}} | {r[1]:>{w1}} | {r[2]:>{w2}} | {r[3]}")
    print()
    print(f"per round, {a.conns} conns (ops/s no FT -> FT):",
          ", ".join(f"{p['ops_s']:.0f} -> {f['ops_s']:.0f}" for p, f in zip(plains, fts)))
    if a.light_conns > 0:
        print(f"per round, {a.light_conns} conn(s) (ops/s no FT -> FT):",
              ", ".join(f"{p['light_ops_s']:.0f} -> {f['light_ops_s']:.0f}" for p, f in zip(plains, fts)))
    print()
    print("reference, VMware vSphere FT (record/replay; Scales et al. 2010, vSphere 4 guidance):")
    for line in VMWARE_REFERENCE:
        print(f"  {line}")
    verdict = {
        "throughput_ratio": ratio is not None and ratio >= TARGET_RATIO,
        "throughput_ratio_light": light_ratio is None or light_ratio >= TARGET_RATIO,
        "log_load": all(r["log_mbit_s_load"] < TARGET_LOG_MBIT for r in fts),
        "log_idle": all(r.get("log_mbit_s_idle", 0) < TARGET_LOG_MBIT for r in fts),
        "lag": all(r["lag_direct_ms_max"] is not None and r["lag_direct_ms_max"] < TARGET_LAG_MS for r in fts),
        "failover_gap": bool(gaps) and statistics.median(gaps) < TARGET_GAP_S,
    }
    print()
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in verdict.items()))
    return verdict


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ftvm", help="the ftvm binary (default: $FTVM, else build/cmd/ftvm)")
    ap.add_argument("--rounds", type=int, default=4, help="alternating no-FT/FT boots; one kill per FT round")
    ap.add_argument("--conns", type=int, default=8, help="connections of the main load")
    ap.add_argument("--light-conns", type=int, default=1, help="connections of the light load (0: none)")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured time of each load")
    ap.add_argument("--idle", type=float, default=10.0, help="idle log measurement, first FT round only")
    ap.add_argument("--timeout-ms", type=int, default=None,
                    help="FT failure-detection timeout (default: ftvm's own, with its heartbeat)")
    ap.add_argument("--disk-mib", type=int, default=64)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the shared disk image lives (default /dev/shm: the host's fdatasync is then "
                         "nearly free and steady, so the ratio shows FT's own cost, not the host disk's noise)")
    ap.add_argument("--disk-modes", default="shared",
                    help="FT rounds in each of these disk modes, comma-separated: shared, replicated")
    ap.add_argument("--json", action="store_true", help="also print every round's raw numbers as JSON")
    a = ap.parse_args()
    if a.ftvm:
        os.environ["FTVM"] = os.path.abspath(a.ftvm)
    # A binary built elsewhere would look for the guest next to its own sources: name it.
    os.environ.setdefault("FTVM_GUEST_DIR", ftlab.guest_dir())
    if os.geteuid() != 0:
        sys.exit("bench_ft: needs root (network namespaces, TAP devices)")
    if not os.path.exists(os.path.join(ftlab.guest_dir(), "Image")):
        sys.exit(f"bench_ft: no bundled guest in {ftlab.guest_dir()} (run guest/build)")
    if not os.access(ftlab.ftvm_binary(), os.X_OK):
        sys.exit(f"bench_ft: no ftvm binary at {ftlab.ftvm_binary()} (build it, or pass --ftvm)")

    info = host_info()
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="ftvm-bench-ft-", dir=a.dir)
    lab = BenchLab(f"bft{os.getpid() % 10000}", workdir, a.disk_mib, a.timeout_ms)
    modes = a.disk_modes.split(",")
    if not modes or any(m not in ("shared", "replicated") for m in modes) or len(set(modes)) != len(modes):
        sys.exit(f"bench_ft: --disk-modes {a.disk_modes!r}: a comma-separated list of shared, replicated")
    plains, by_mode = [], {m: [] for m in modes}
    try:
        for r in range(a.rounds):
            # Alternate which goes first so that a trend in the machine's load favours neither.
            order = ("plain",) + tuple(modes) if r % 2 == 0 else tuple(reversed(modes)) + ("plain",)
            for kind in order:
                if kind == "plain":
                    res = plain_round(lab, a)
                    plains.append(res)
                    say(f"round {r} no FT: {res['ops_s']:.0f} ops/s p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms")
                else:
                    lab.use_disk_mode(kind)
                    res = ft_round(lab, a, a.idle if r == 0 else 0, KILLS[r % len(KILLS)])
                    res["disk_mode"] = kind
                    by_mode[kind].append(res)
                    say(f"round {r} FT ({kind}): {res['ops_s']:.0f} ops/s p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms, "
                        f"log {res['log_mbit_s_load']} Mbit/s, lag max {res['lag_ms_max']} ms "
                        f"(direct {res['lag_direct_ms_max']} ms), "
                        f"failover ({res['kill']} kill) gap {res['gap_s']} s")
    except Exception:
        for n in (lab.plain, lab.primary, lab.backup):
            if n:
                print(f"--- {n.name} output (tail) ---\n{n.output()[-3000:]}", file=sys.stderr)
        raise
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)   # the disk image lives in RAM by default
    verdict = {}
    for m in modes:
        verdict[m] = report(info, a, plains, by_mode[m], time.monotonic() - t0)
        print()
    if len(modes) > 1:
        compare_modes(a, plains, by_mode)
    if a.json:
        print(json.dumps({"info": info, "no_ft": plains, "ft": by_mode, "targets_met": verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
