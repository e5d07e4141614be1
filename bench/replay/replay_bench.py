#!/usr/bin/env python3
"""replay_bench.py — event log bandwidth and recording overhead of `ftvm record` on the bundled guest.

For each workload, `ftvm run` (the baseline) and `ftvm record` run the same guest with the same
inputs, alternately, --runs times each; the table shows medians:

  idle   `ftvm.workload=idle` for --idle-seconds after the ready marker, then Ctrl-A x on stdin
  cpu    `ftvm.workload=cpu ftvm.cpu.rounds=N` (fixed work), powers off by itself
  disk   `ftvm.workload=disk` on the 64 MiB scratch disk (fixed work), powers off by itself
  kvd    `shell` workload; `kvd &` typed on the console; kvload.py clients send SET/GET as fast as
         they can over a TAP device in a private network namespace; `poweroff` typed at the end
         (needs root and /dev/net/tun; skipped otherwise)
  W+digest  workload W recorded with `--disk-reads digest`: each disk read logged as its XXH3-128
         digest (what an FT primary with replicated disks sends), next to W, whose reads carry
         their data (what a shared-disk pair sends), in the same run

Columns:
  rec s         seconds the recorder ran the machine
  Mbit/s run    log bytes (header included) / seconds of the whole recording (boot too; the
                recorder's machine_run time, which guest time tracks)
  Mbit/s phase  log bytes of the records after the ready marker / guest seconds since it (the
                marker's guest time is taken from the wall clock, which the recorder's guest
                clock tracks within milliseconds); for idle, the steady state
  wall ratio    recorded run's wall time / plain run's (same work; meaningless for idle)
  cpu plain/rec user+sys CPU seconds of the whole ftvm process
  cpu/insn      recorded run's (CPU seconds / instructions) over the plain run's: the overhead
                measure that survives a shared, loaded host
  net fixed     the same after subtracting the fixed cost of any recording (measured first, on a
                10-instruction program): the overhead that grows with the length of the run
  kv req/s      kvd only: client requests per second, plain -> recorded

Usage: replay_bench.py [--ftvm PATH] [--guest DIR] [--runs N] [--idle-seconds S] [--only W,W]
"""
import argparse
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "replay"))
import evlog  # noqa: E402
import kvload  # noqa: E402

MARKER = b"ftvm-guest: ready"
TAP, HOST_IP, GUEST_IP, MAC = "rbtap0", "10.98.0.1", "10.98.0.2", "52:54:00:00:00:02"
CTRL_A_X = b"\x01x"
TIMEOUT_S = 900


class Session:
    """One ftvm process: console on pipes, CPU time from wait4."""

    def __init__(self, argv, env):
        self.start = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.out = b""
        self.ready_at = None

    def _drain(self):
        try:
            chunk = self.p.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            self.out += chunk
            if self.ready_at is None and MARKER in self.out:
                self.ready_at = time.monotonic() - self.start

    def wait_ready(self):
        deadline = time.monotonic() + TIMEOUT_S
        while self.ready_at is None:
            self._drain()
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no ready marker: {self.out[-500:]!r}")
            time.sleep(0.02)

    def type(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def finish(self):
        """Waits for the exit, draining stdout; returns (exit code, wall s, cpu s, stderr)."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            self._drain()
            pid, status, usage = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.p.kill()
            time.sleep(0.02)
        wall = time.monotonic() - self.start
        self.p.returncode = os.waitstatus_to_exitcode(status)
        os.set_blocking(self.p.stdout.fileno(), True)
        self.out += self.p.stdout.read()
        err = self.p.stderr.read().decode(errors="replace")
        return self.p.returncode, wall, usage.ru_utime + usage.ru_stime, err


def workload_args(name, a):
    name = name.split("+")[0]
    if name == "idle":
        return ["--extra-args", "ftvm.workload=idle"]
    if name == "cpu":
        return ["--extra-args", f"ftvm.workload=cpu ftvm.cpu.rounds={a.cpu_rounds}"]
    if name == "disk":
        return ["--extra-args", f"ftvm.workload=disk ftvm.disk.mb={a.disk_mb} ftvm.disk.ops={a.disk_ops}"]
    return ["--nic", f"tap={TAP},mac={MAC}",
            "--extra-args", f"ftvm.workload=shell ip={GUEST_IP}::{HOST_IP}:255.255.255.0::eth0:off"]


# A 10-instruction bare-metal program (raw image at 0x80000000) that writes the test finisher's
# PASS value: recording it costs only what every recording costs regardless of length.
POWEROFF_PROGRAM = [
    0x001002B7,  # lui  t0, 0x100          t0 = 0x100000, the finisher
    0x00005337,  # lui  t1, 0x5
    0x55530313,  # addi t1, t1, 0x555      t1 = 0x5555, PASS
    0x0062A023,  # sw   t1, 0(t0)
    0x0000006F,  # j    .
]


def fixed_cost(a, tmp, runs):
    """Median CPU seconds a recording costs beyond a plain run of the same trivial program: the
    per-recording constant (today the full-RAM digests of the final CHECK and END)."""
    prog = os.path.join(tmp, "poweroff.bin")
    with open(prog, "wb") as fo:
        fo.write(struct.pack(f"<{len(POWEROFF_PROGRAM)}I", *POWEROFF_PROGRAM))
    extra = []
    for _ in range(runs):
        cpu = {}
        for mode in ("plain", "record"):
            argv = [a.ftvm, "run"] if mode == "plain" else [a.ftvm, "record", "--force", "--log", os.path.join(tmp, "p.log")]
            s = Session(argv + ["--bios", "none", "--kernel", prog], dict(os.environ))
            code, _, cpu[mode], err = s.finish()
            if code != 0:
                raise RuntimeError(f"{mode} of the power-off program: exit {code}: {err[-500:]}")
        extra.append(cpu["record"] - cpu["plain"])
    return statistics.median(extra)


def one_run(name, mode, a, tmp):
    """Runs workload `name` under `ftvm run` (mode 'plain') or `ftvm record`; returns a dict."""
    env = dict(os.environ, FTVM_GUEST_DIR=a.guest, FTVM_DIAG="info")
    log_path = os.path.join(tmp, f"{name}.log")
    argv = [a.ftvm, "run"] if mode == "plain" else [a.ftvm, "record", "--force", "--log", log_path]
    if mode == "record" and name.endswith("+digest"):
        argv += ["--disk-reads", "digest"]
    s = Session(argv + workload_args(name, a), env)
    s.wait_ready()
    load = None
    if name == "idle":
        time.sleep(a.idle_seconds)
        s.type(CTRL_A_X)
    elif name.startswith("kvd"):
        s.type(b"kvd &\n")
        if not kvload.wait_for_server(GUEST_IP, 120):
            raise RuntimeError("kvd did not answer")
        load = kvload.run_load(GUEST_IP, clients=a.kv_clients, requests=a.kv_requests, max_delay_s=0,
                               value_bytes=a.kv_value_bytes, seed=7)
        if load["errors"]:
            raise RuntimeError(f"kvd client errors: {load['errors'][:3]}")
        s.type(b"poweroff\n")
    code, wall, cpu, err = s.finish()
    if code != 0:
        raise RuntimeError(f"{mode} {name}: exit {code}: {err[-800:]}")
    m = re.search(r"machine stopped .* at icount (\d+)", err) if mode == "plain" else \
        re.search(r"^instructions (\d+), recorded for ([0-9.]+) s", err, re.M)
    if not m:
        raise RuntimeError(f"{mode} {name}: no instruction count in: {err[-800:]}")
    r = {"wall": wall, "cpu": cpu, "insns": int(m.group(1)), "ready": s.ready_at, "load": load}
    if mode == "record":
        log = evlog.Log.read(log_path, verify_crc=False)
        times = log.guest_seconds()
        total = os.path.getsize(log_path)
        # Guest time tracks the wall clock while recording, and a guest idling in WFI at the end
        # has no anchor after its last wake-up: the run's length is the recorder's own timing.
        end = float(m.group(2))
        # The phase: after the ready marker, or for idle the second half (pure idling).
        since = end / 2 if name == "idle" else s.ready_at
        phase = sum(rec.size for rec, t in zip(log.records, times) if t >= since)
        r.update(bytes=total, guest_s=end, mbit_run=total * 8 / 1e6 / end,
                 mbit_phase=phase * 8 / 1e6 / max(end - since, 1e-9), counts=log.counts())
        os.unlink(log_path)
    return r


def setup_netns():
    """Re-executes this script in a private network namespace with the TAP device up."""
    if os.environ.get("REPLAY_BENCH_IN_NS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"], check=True)
        try:
            with open(f"/proc/sys/net/ipv6/conf/{TAP}/disable_ipv6", "w") as knob:
                knob.write("1")
        except OSError:
            pass  # no IPv6 at all: nothing to silence
        subprocess.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", TAP], check=True)
        subprocess.run(["ip", "link", "set", TAP, "up"], check=True)
        return True
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or \
            subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return False
    env = dict(os.environ, REPLAY_BENCH_IN_NS="1")
    os.execvpe("unshare", ["unshare", "-n", sys.executable] + sys.argv, env)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ftvm", default=os.path.join(REPO, "build", "cmd", "ftvm"))
    ap.add_argument("--guest", default=os.path.join(REPO, "build", "guest"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--cpu-rounds", type=int, default=150)
    ap.add_argument("--disk-mb", type=int, default=32)
    ap.add_argument("--disk-ops", type=int, default=1000)
    ap.add_argument("--kv-clients", type=int, default=4)
    ap.add_argument("--kv-requests", type=int, default=500)
    ap.add_argument("--kv-value-bytes", type=int, default=100)
    ap.add_argument("--only", default="idle,cpu,disk,disk+digest,kvd,kvd+digest")
    a = ap.parse_args()
    a.ftvm, a.guest = os.path.abspath(a.ftvm), os.path.abspath(a.guest)
    if not os.path.exists(os.path.join(a.guest, "Image")):
        sys.exit(f"no bundled guest in {a.guest} (guest/build)")
    workloads = a.only.split(",")
    if any(w.startswith("kvd") for w in workloads) and not setup_netns():
        print("kvd: skipped (needs root, /dev/net/tun and unshare -n)")
        workloads = [w for w in workloads if not w.startswith("kvd")]

    print(f"ftvm {a.ftvm}; {a.runs} runs each, medians; load average {os.getloadavg()[0]:.1f} at start")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fixed = fixed_cost(a, tmp, max(a.runs, 3))
        print(f"fixed cost of a recording (a 10-instruction program, default --mem): {fixed:.2f} CPU s")
        for name in workloads:
            results = {"plain": [], "record": []}
            for _ in range(a.runs):
                for mode in ("plain", "record"):
                    results[mode].append(one_run(name, mode, a, tmp))
            rows.append((name, results))
            print_row(name, results, fixed, header=len(rows) == 1)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("targets: idle < 0.05 Mbit/s, CPU-bound < 0.1, kv far under 20, disk+digest < 5, overhead < 5%")
    last = {name: res["record"][-1] for name, res in rows}
    for name, r in last.items():
        kinds = ", ".join(f"{evlog.KIND_NAMES[k]} {n}" for k, n in sorted(r["counts"].items()))
        print(f"  {name} log records (last run): {kinds}")


def med(results, key):
    return statistics.median(r[key] for r in results)


def print_row(name, results, fixed, header):
    plain, rec = results["plain"], results["record"]
    if header:
        print(f"{'workload':<12}{'log MB':>8}{'rec s':>7}{'Mbit/s run':>12}{'Mbit/s phase':>14}"
              f"{'wall plain':>12}{'wall rec':>10}{'wall ratio':>12}{'cpu plain':>11}{'cpu rec':>9}"
              f"{'cpu/insn':>10}{'net fixed':>11}  kv req/s")
    cpi_plain = statistics.median(r["cpu"] / r["insns"] for r in plain)
    cpi_rec = statistics.median(r["cpu"] / r["insns"] for r in rec)
    cpi_net = statistics.median((r["cpu"] - fixed) / r["insns"] for r in rec)
    kv = ""
    if plain[0]["load"]:
        rate = [statistics.median((r["load"]["sets"] + r["load"]["gets"]) / r["load"]["seconds"] for r in x)
                for x in (plain, rec)]
        kv = f"{rate[0]:.0f} -> {rate[1]:.0f}"
    print(f"{name:<12}{med(rec, 'bytes') / 1e6:>8.3f}{med(rec, 'guest_s'):>7.1f}{med(rec, 'mbit_run'):>12.4f}"
          f"{med(rec, 'mbit_phase'):>14.4f}{med(plain, 'wall'):>12.2f}{med(rec, 'wall'):>10.2f}"
          f"{med(rec, 'wall') / med(plain, 'wall'):>12.3f}{med(plain, 'cpu'):>11.2f}{med(rec, 'cpu'):>9.2f}"
          f"{cpi_rec / cpi_plain:>10.3f}{cpi_net / cpi_plain:>11.3f}  {kv}", flush=True)


if __name__ == "__main__":
    main()
