#!/usr/bin/env python3
"""bench_migrate.py — live migration of the bundled guest under ftvm and under QEMU, side by side in
one run, on the same two-host namespace network (scripts/ft-topology, tests/ft/ftlab.py).

Both systems run the same kernel, initramfs, 256 MiB of RAM, kernel command line (kvd, the guest's
address from `ip=`), guest MAC and an empty 64 MiB disk; host A's and host B's VM NIC is the TAP on
that host's bridge, so a client on the third host reaches the guest wherever it runs, over one TCP
connection. QEMU is qemu-system-riscv64 -M virt -icount shift=auto (tests' reference mode), its
`migrate` over TCP between the hosts' link to an -incoming QEMU, auto-converge on (ftvm always
slows a guest that outruns the link), the same downtime limit (30 ms), no bandwidth cap unless the
row sets one for both (bench/migrate/qemu_vm.py).

Rows (each: --runs migrations A -> B -> A ..., the VM booted once per row):
  idle    kvd with no client
  load    kvd under one client writing over one TCP connection (a write every 2 ms)
  dirty   kvd under four clients writing with no pause, over a link capped at 40 Mbit/s on both
          systems: the guest dirties memory faster than the link drains it, so a migration
          converges only by slowing the guest (or never)
  arbiter (ftvm only, --arbiter) the load row with an arbiter area judging each hand-over
For every migration: rounds, bytes sent, downtime as the system reports it (VM stopped; ftvm's runs
to the destination's confirmation, and beside it "state sent", held until the final state was
written out on the source, which is all QEMU's query-migrate downtime counts, and the pause ftvm
expected when it chose to stop, "expected"); "stopped", measured
the same way for both on the host's wall clock, from the source's vCPU stopping to the destination's
vCPU running (QEMU: the QMP events STOP on the source and RESUME on the destination; ftvm: the
source's "vCPU held at wall" and the destination's "vCPU starts at wall" lines, FTVM_DIAG=info);
total time, the highest throttle, whether it converged; and, measured from the client's side the same
way for both, an ICMP echo every 1 ms (bench/migrate/icmp_probe.py, at a real-time priority): the
longest run of unanswered probes and the longest silence between two replies during the
migration. The clients' longest gap between two kvd replies is given per row, and every
acknowledged write is read back at the end of a row (a lost one fails the run). A QEMU destination
that refuses the state after the source finished (QEMU then has no running copy) is reported as
such, and the source is resumed (`cont`) so the row goes on; medians count the moves that ran.
Prints the host, the commit, the load average before and after, each migration and the medians.
Needs root (namespaces, TAPs, raw sockets). usage: bench_migrate.py [--runs N] [--rows idle,load,dirty] [--arbiter]
"""
import json
import os
import platform
import re
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
import qemu_vm  # noqa: E402
import test_migrate as tm  # noqa: E402

DOWNTIME_MS = 30
DIRTY_MBIT = 40
QEMU_PORT = 7790
DONE = re.compile(r"done: (\d+) round\(s\), ([\d.]+) MiB of RAM sent of ([\d.]+) MiB, (?:[\d.]+ MiB of disk of [\d.]+ MiB, )?"
                  r"([\d.]+) MiB on the wire, downtime (\d+) ms, total (\d+) ms")
PROGRESS = re.compile(r"ftvm migrate: \S+ round (\d+), ([\d.]+)/[\d.]+ MiB sent.* throttle (\d+)%")
# Row: (writers, delay between a client's writes in ms, link cap in Mbit/s or None)
ROWS = {"idle": (0, 0, None), "load": (1, 2, None), "dirty": (4, 0, DIRTY_MBIT), "arbiter": (1, 2, None)}
# ftvm's pause to the destination's confirmation, and to the state written out on the source (what
# QEMU's query-migrate "downtime" counts), in microseconds, from the summary of ftvm migrate.
HELD = re.compile(r"held ([\d.]+) ms until the destination confirmed, ([\d.]+) ms until the state was sent")
# The switch-over's two ends on the wall clock (FTVM_DIAG=info): the source's vCPU held for the
# stop-and-copy, the destination's vCPU starting.
HELD_WALL = re.compile(r"vCPU held at wall ([\d.]+) s")
STARTS_WALL = re.compile(r"vCPU starts at wall ([\d.]+) s")
# The pause ftvm expected when it chose to stop (migrate/mig_converge.h).
ESTIMATE = re.compile(r"the estimate was (\d+) ms")
# The RAM the guest had touched (MiB): what the bytes on the wire are held against.
TOUCHED = re.compile(r"the guest had touched ([\d.]+) MiB of RAM")


class FtvmSide:
    name = "ftvm"

    def __init__(self, lab, arbiter=False):
        self.lab, self.nodes = lab, {}
        os.environ["FTVM_DIAG"] = "info"  # the wall-clock lines of the switch-over (HELD_WALL, STARTS_WALL)
        self.arb = ["--arbiter", lab.arbiter] if arbiter else []
        if arbiter:  # a fresh area: its epochs start again at 1
            subprocess.run([ftlab.ftvm_binary(), "arbiter", "init", lab.arbiter, "--vm", lab.vm_name(), "--force"],
                           check=True, stdout=subprocess.DEVNULL)

    def boot(self, host):
        self.nodes[host] = self.lab.start_run(host, self.arb)
        self.nodes[host].wait_for("ftvm-guest: ready", 300)

    def prepare(self, there):
        self.nodes[there] = self.lab.start_incoming(there, self.arb)

    def migrate(self, here, there, mbit):
        extra = ["--downtime-ms", str(DOWNTIME_MS)] + (["--bandwidth", str(mbit)] if mbit else [])
        rc, err, _ = self.lab.migrate(here, there, extra)
        progress = [(int(r), float(s), int(t)) for r, s, t in PROGRESS.findall(err)]
        m = DONE.search(err)
        if rc == 0 and m:
            row = {"converged": True, "rounds": int(m.group(1)), "sent_mib": float(m.group(4)),
                   "downtime_ms": int(m.group(5)), "total_ms": int(m.group(6)),
                   "throttle": max((t for _, _, t in progress), default=0)}
            held = HELD.search(err)
            if held:
                row.update(downtime_ms=float(held.group(1)), state_sent_ms=float(held.group(2)))
            row["stopped_ms"] = self.stopped_ms(here, there)
            estimate = ESTIMATE.search(err)
            if estimate:
                row["estimate_ms"] = int(estimate.group(1))
            touched = TOUCHED.search(err)
            if touched and float(touched.group(1)) > 0:
                row["per_touched"] = row["sent_mib"] / float(touched.group(1))
            return row
        if "round" not in err or not progress:  # not a failure to converge: the bench cannot go on
            raise SystemExit(f"ftvm migration {here} -> {there} failed:\n{err}")
        return {"converged": False, "rounds": progress[-1][0] + 1, "sent_mib": progress[-1][1], "downtime_ms": 0,
                "total_ms": 0, "throttle": max(t for _, _, t in progress), "error": err.strip().splitlines()[-1]}

    def stopped_ms(self, here, there):
        """From the source's hold to the destination's vCPU start, by their wall-clock lines (None
        from an ftvm that prints none)."""
        self.nodes[there].wait_for("handed over", 60)
        deadline = time.monotonic() + 5.0
        while True:
            held = HELD_WALL.findall(self.nodes[here].output())
            starts = STARTS_WALL.findall(self.nodes[there].output())
            if held and starts:
                return (float(starts[-1]) - float(held[-1])) * 1000
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def finish(self, here, there, moved):
        if moved:
            self.nodes[there].wait_for("handed over", 60)
            self.nodes[here].wait(60)
        else:  # the source runs on; the destination gave up
            self.nodes[there].kill()
            self.nodes[there].wait(30)

    def stop(self):
        for n in self.nodes.values():
            n.kill()
        self.nodes = {}


class QemuSide:
    name = "QEMU"

    def __init__(self, lab, workdir):
        self.lab, self.workdir, self.vms = lab, workdir, {}
        self.disk = os.path.join(workdir, "qemu-disk.img")
        with open(self.disk, "wb") as f:
            f.truncate(64 << 20)
        self.append = "console=ttyS0 panic=1 " + lab.run_options("a")[-1]

    def _vm(self, host, incoming=None):
        return qemu_vm.QemuVm(self.lab, host, self.workdir, self.disk, ftlab.MAC, self.append, ftlab.guest_dir(),
                              incoming=incoming)

    def boot(self, host):
        self.vms[host] = self._vm(host)
        self.vms[host].wait_console("ftvm-guest: ready", 300)

    def prepare(self, there):
        self.vms[there] = self._vm(there, (tm.HOST_IP[there], QEMU_PORT))

    def migrate(self, here, there, mbit):
        r = qemu_vm.migrate(self.vms[here], tm.HOST_IP[there], QEMU_PORT, DOWNTIME_MS, mbit)
        if r["status"] == "failed":
            raise SystemExit(f"QEMU migration {here} -> {there} failed: {r['error']}")
        if r["converged"] and not self.vms[there].running(10.0):
            # The source sent everything and stopped, but the destination refused the state (it
            # exited, or runs with a device it marked broken): the VM goes on where it was
            # (`cont`), as a user would have to do by hand.
            r["dest_failed"] = self.vms[there].error()
            self.vms[here].qmp("cont")
        since = r.pop("events_since")
        r["stopped_ms"] = qemu_vm.stopped_ms(self.vms[here], self.vms[there], since) if r["converged"] else None
        return r

    def finish(self, here, there, moved):
        self.vms.pop(here if moved else there).stop()

    def stop(self):
        for v in self.vms.values():
            v.stop()
        self.vms = {}


def start_probe(lab, workdir):
    stop = os.path.join(workdir, "probe-stop")
    if os.path.exists(stop):
        os.unlink(stop)
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns("cl"), "chrt", "-f", "20", sys.executable,
                             os.path.join(HERE, "icmp_probe.py"), ftlab.GUEST_IP, stop],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "probing":
        raise SystemExit("the ICMP probe did not start")
    return proc, stop


def stop_probe(probe):
    proc, stop = probe
    open(stop, "w").close()
    out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def run_row(side, lab, workdir, row, runs):
    nwriters, delay, mbit = ROWS[row]
    side.boot("a")
    # The client forgets the guest's MAC, so its next packet asks for it (ARP) and the guest's
    # answer teaches the switch where the guest now is: a VM booted anew (not migrated) announces
    # nothing, and the switch may still send its MAC to the host the last row ended on.
    lab.client(["ip", "neigh", "flush", "dev", "eth0"], check=True)
    probe = start_probe(lab, workdir)
    if os.path.exists(os.path.join(workdir, "stop")):  # the last row's writers were told to stop
        os.unlink(os.path.join(workdir, "stop"))
    writers = [tm.start_writer(lab, workdir, delay_ms=delay, name=f"{side.name}-{row}-{i}") for i in range(nwriters)]
    time.sleep(2.0)
    rows, here, there, lost = [], "a", "b", False
    try:
        for _ in range(runs):
            side.prepare(there)
            t0 = time.monotonic()
            try:
                r = side.migrate(here, there, mbit)
            except (qemu_vm.QmpError, OSError) as e:  # the VM itself is gone: the row ends here
                print(f"  {side.name} {row}: the VM was lost during a migration {here} -> {there}: {e}", flush=True)
                lost = True
                break
            r["window"] = (t0, time.monotonic() + 1.0)
            r["moved"] = r["converged"] and "dest_failed" not in r
            side.finish(here, there, r["moved"])
            rows.append(r)
            if r["moved"]:
                here, there = there, here
            time.sleep(1.0)
        gaps, reconnects, acked = [], 0, 0
        for proc, logfile, stopfile in writers:
            if lost:
                proc.kill()
                continue
            s = tm.stop_writer(proc, stopfile, [])
            tm.verify(lab, logfile, [])  # every acknowledged write reads back, or the run fails
            gaps.append(s["max_gap_s"] * 1000)
            reconnects += s["reconnects"]
            acked += s["acked"]
    finally:
        icmp = stop_probe(probe)
        side.stop()
    for r in rows:
        lo, hi = r.pop("window")
        r["icmp_missed_ms"] = max((ms for t, ms, _ in icmp["runs"] if lo <= t <= hi), default=0.0)
        r["icmp_silence_ms"] = max((ms for t, ms in icmp["silences"] if lo <= t <= hi), default=0.0)
    client = {"gap_ms": max(gaps) if gaps else None, "reconnects": reconnects, "acked": acked,
              "probes": icmp["sent"], "answered": icmp["answered"]}
    return rows, client


def show(label, rows, client):
    if not rows:
        print(f"{label:17} no migration finished", flush=True)
        return None
    for r in rows:
        state = "" if r["converged"] else f"  NOT CONVERGED ({r.get('error', '')[:80]})"
        if "dest_failed" in r:
            state = f"  DESTINATION REFUSED THE STATE, the source resumed ({r['dest_failed'][:100]})"
        sent = f" (state sent {r['state_sent_ms']:5.1f})" if "state_sent_ms" in r else ""
        sent += f" (expected {r['estimate_ms']:3})" if "estimate_ms" in r else ""
        stopped = f"{r['stopped_ms']:6.1f}" if r.get("stopped_ms") is not None else "     -"
        state += f"  sent/touched {r['per_touched']:.2f}" if "per_touched" in r else ""
        print(f"  {label:15} rounds {r['rounds']:3}  sent {r['sent_mib']:6.1f} MiB  downtime {r['downtime_ms']:6.1f}{sent} ms  "
              f"stopped {stopped} ms  "
              f"total {r['total_ms']:6} ms  throttle {r['throttle']:2}%  ICMP missed {r['icmp_missed_ms']:6.1f} ms"
              f"  silent {r['icmp_silence_ms']:6.1f} ms{state}", flush=True)
    done = [r for r in rows if r["moved"]] or rows
    med = {k: statistics.median(r[k] for r in done)
           for k in ("sent_mib", "downtime_ms", "total_ms", "icmp_missed_ms", "icmp_silence_ms", "rounds")}
    med["converged"] = sum(r["converged"] for r in rows)
    med["moved"] = sum(r["moved"] for r in rows)
    med["throttle"] = max(r["throttle"] for r in rows)
    stops = [r["stopped_ms"] for r in done if r.get("stopped_ms") is not None]
    med["stopped_ms"] = statistics.median(stops) if stops else None
    extra, sent = "", ""
    if all("state_sent_ms" in r for r in done):  # beside QEMU's downtime, which counts only this part
        sent = f" (state sent after {statistics.median(r['state_sent_ms'] for r in done):.1f})"
    if client["gap_ms"] is not None:
        extra = (f"; clients: {client['acked']} writes acknowledged, all read back, {client['reconnects']} "
                 f"reconnect(s), longest gap {client['gap_ms']:.0f} ms")
    stopped = f", stopped {med['stopped_ms']:.1f} ms" if med["stopped_ms"] is not None else ""
    if all("per_touched" in r for r in done):  # ftvm: the bytes on the wire per byte of RAM touched
        extra += f"; sent per MiB touched {min(r['per_touched'] for r in done):.2f}-{max(r['per_touched'] for r in done):.2f}"
    print(f"{label:17} median: downtime {med['downtime_ms']:.1f}{sent} ms{stopped}, ICMP missed {med['icmp_missed_ms']:.0f} ms "
          f"(silent {med['icmp_silence_ms']:.0f} ms), total {med['total_ms']:.0f} ms, sent {med['sent_mib']:.1f} MiB, "
          f"rounds {med['rounds']:.0f}, throttle up to {med['throttle']}%, converged {med['converged']}/{len(rows)}, "
          f"running at the destination {med['moved']}/{len(rows)}"
          f"{extra}; {client['answered']}/{client['probes']} probes answered", flush=True)
    return med


def main():
    argv = sys.argv[1:]
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 4
    wanted = argv[argv.index("--rows") + 1].split(",") if "--rows" in argv else ["idle", "load", "dirty"]
    if "--arbiter" in argv:
        wanted.append("arbiter")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"host {platform.node()} {platform.machine()}, {os.cpu_count()} cpus; commit {commit}; {runs} runs per row; "
          f"downtime limit {DOWNTIME_MS} ms; load average {os.getloadavg()[0]:.1f}", flush=True)
    qemu = subprocess.run([qemu_vm.QEMU, "--version"], capture_output=True, text=True).stdout.splitlines()
    print(qemu[0] if qemu else f"{qemu_vm.QEMU}: not found", flush=True)
    workdir = tempfile.mkdtemp(prefix="ftvm-bench-migrate-")
    lab = tm.MigLab(f"bm{os.getpid() % 1000}", workdir)
    medians = {}
    try:
        for row in wanted:
            systems = [FtvmSide(lab, arbiter=row == "arbiter")] + ([QemuSide(lab, workdir)] if row != "arbiter" else [])
            for side in systems:
                rows, client = run_row(side, lab, workdir, row, runs)
                medians[(side.name, row)] = show(f"{side.name} {row}", rows, client)
    finally:
        lab.close()
    for row in wanted:
        f, q = medians.get(("ftvm", row)), medians.get(("QEMU", row))
        if f and q:
            stopped = (f", stopped {f['stopped_ms']:.0f} / {q['stopped_ms']:.0f} ms"
                       if f["stopped_ms"] is not None and q["stopped_ms"] is not None else "")
            print(f"{row}: downtime ftvm {f['downtime_ms']:.0f} / QEMU {q['downtime_ms']:.0f} ms{stopped}, ICMP missed "
                  f"{f['icmp_missed_ms']:.0f} / {q['icmp_missed_ms']:.0f} ms, total {f['total_ms']:.0f} / "
                  f"{q['total_ms']:.0f} ms, sent {f['sent_mib']:.1f} / {q['sent_mib']:.1f} MiB", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
