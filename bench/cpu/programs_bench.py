#!/usr/bin/env python3
"""programs_bench.py — real programs in the bundled guest: ftvm's JIT and interpreter beside QEMU.

Boots the bundled guest with its `shell` workload under each engine — ftvm `--cpu interp`, ftvm
`--cpu jit`, qemu-system-riscv64 plain TCG and `-icount shift=auto` — and runs the same busybox
programs through its console in each, in the same run: sha256sum and md5sum over a few MiB, sort
of a generated file, an awk loop, gzip -9 of about 3 MiB (busybox's own binary twice and seq's
text; made before the timing starts). Each program's time is the host's wall clock from the
moment the guest prints a start marker to the moment it prints an end marker (the markers are
computed by the guest's shell, so the echo of the typed command does not match them). Prints the
median of --runs boots per engine and the ratio of each ftvm engine to each QEMU mode (> 1: ftvm
faster). Every program's output (for gzip: a digest of the compressed stream after its header,
which holds a time, and a gunzip round trip, checked after the timing) must be the same under
every engine and in every boot; otherwise the benchmark says where and exits 1.

Usage: programs_bench.py [--ftvm PATH] [--guest DIR] [--runs N] [--mib N]
"""
import argparse
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY = b"ftvm-guest: ready"
TIMEOUT_S = 600


GZIP_IN = "/tmp/gzip.in"
GZIP_OUT = "/tmp/gzip.out"


def programs(mib):
    """(name, setup, timed command, check): each leaves its output short, so the console is not
    what is timed; setup (untimed, before) and check (untimed, after; its output is compared
    across engines with the timed command's) may be None."""
    return [
        ("sha256sum", None, f"dd if=/dev/zero bs=1M count={mib} 2>/dev/null | sha256sum", None),
        ("md5sum", None, f"dd if=/dev/zero bs=1M count={mib} 2>/dev/null | md5sum", None),
        ("sort", None, "seq 60000 | sed 's/^/k/' | sort -r | tail -n 1", None),
        ("awk", None, "awk 'BEGIN { s = 0; for (i = 0; i < 400000; i++) s += i % 7; print s }'", None),
        ("gzip -9", f"{{ cat /bin/busybox /bin/busybox; seq 200000; }} > {GZIP_IN}",
         f"gzip -9 < {GZIP_IN} > {GZIP_OUT}",
         f"wc -c < {GZIP_IN}; wc -c < {GZIP_OUT}; tail -c +11 {GZIP_OUT} | sha256sum; "
         f"gunzip < {GZIP_OUT} | cmp - {GZIP_IN} && echo round-trip-ok; rm -f {GZIP_IN} {GZIP_OUT}"),
    ]


class Guest:
    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.seen = b""

    def wait_for(self, marker, timeout):
        """Host time at which marker appeared in the output (searched from where the last one ended)."""
        return self.wait_with_output(marker, timeout)[0]

    def wait_with_output(self, marker, timeout):
        """(host time at which marker appeared, the output before it since the last marker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.seen.find(marker)
            if i >= 0:
                before = self.seen[:i]
                self.seen = self.seen[i + len(marker):]
                return time.monotonic(), before
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.seen += chunk
            elif self.proc.poll() is not None:
                break
        raise TimeoutError(f"no {marker!r} within {timeout} s; last output: {self.seen[-300:]!r}")

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def run_untimed(g, tag, line):
    """Runs line in the guest and returns its output (between markers made as in one_boot)."""
    g.type(f"echo B$(({tag}+3000))C; {line}; echo D$(({tag}+3000))F")
    g.wait_for(f"B{tag + 3000}C".encode(), TIMEOUT_S)
    return g.wait_with_output(f"D{tag + 3000}F".encode(), TIMEOUT_S)[1]


def one_boot(cmd, env, progs):
    """({program: seconds}, {program: output}) for one boot of the guest."""
    g = Guest(cmd, env)
    try:
        g.wait_for(READY, 120)
        # Bytes typed before the shell has opened the console are lost: ask until it answers.
        for attempt in range(20):
            g.type(f"echo P$(({attempt}+2000))Q")
            try:
                g.wait_for(f"P{attempt + 2000}Q".encode(), 3)
                break
            except TimeoutError:
                if attempt == 19:
                    raise
        times, outputs = {}, {}
        for i, (name, setup, line, check) in enumerate(progs):
            if setup:
                run_untimed(g, 2 * i, setup)
            # S<i>T / E<i>N come from the guest's arithmetic: the typed line shows $((...)) instead.
            g.type(f"echo S$(({i}+1000))T; {line}; echo E$(({i}+1000))N")
            start = g.wait_for(f"S{i + 1000}T".encode(), TIMEOUT_S)
            end, out = g.wait_with_output(f"E{i + 1000}N".encode(), TIMEOUT_S)
            times[name] = end - start
            if check:
                out += run_untimed(g, 2 * i + 1, check)
            outputs[name] = b" ".join(out.split())
        return times, outputs
    finally:
        g.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ftvm", default=os.path.join(REPO, "build", "cmd", "ftvm"))
    ap.add_argument("--guest", default=os.environ.get("FTVM_GUEST_DIR", os.path.join(REPO, "build", "guest")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=16, help="MiB hashed by sha256sum and md5sum")
    args = ap.parse_args()
    g = args.guest
    for f in ("Image", "initramfs.cpio", "fw_dynamic.bin"):
        if not os.path.exists(os.path.join(g, f)):
            sys.exit(f"programs_bench: {g}/{f} missing (run guest/build)")
    progs = programs(args.mib)
    ftvm = [args.ftvm, "run", "--extra-args", "ftvm.workload=shell"]
    qemu = ["qemu-system-riscv64", "-M", "virt", "-m", "256M", "-nographic", "-no-reboot",
            "-bios", f"{g}/fw_dynamic.bin", "-kernel", f"{g}/Image", "-initrd", f"{g}/initramfs.cpio",
            "-append", "console=ttyS0 panic=1 ftvm.workload=shell", "-device", "virtio-rng-device"]
    engines = [
        ("ftvm --cpu interp", ftvm + ["--cpu", "interp"]),
        ("ftvm --cpu jit", ftvm + ["--cpu", "jit"]),
        ("qemu TCG", qemu),
        ("qemu -icount shift=auto", qemu + ["-icount", "shift=auto"]),
    ]
    env = dict(os.environ, FTVM_GUEST_DIR=g)
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"host {platform.node()} {platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"commit {commit}, {args.runs} boots per engine (interleaved), median seconds per program")
    names = [p[0] for p in progs]
    samples = {name: {p: [] for p in names} for name, _ in engines}
    outputs = {p: {} for p in names}  # program -> output -> the engines (and boots) that printed it
    for run in range(args.runs):
        for name, cmd in engines:
            times, outs = one_boot(cmd, env, progs)
            for p, t in times.items():
                samples[name][p].append(t)
                outputs[p].setdefault(outs[p], []).append(f"{name} (boot {run + 1})")
    med = {name: {p: statistics.median(v) for p, v in per.items()} for name, per in samples.items()}
    print(f"  {'program':12s}" + "".join(f"{name:>26s}" for name, _ in engines))
    for p in names:
        print(f"  {p:12s}" + "".join(f"{med[name][p]:25.2f}s" for name, _ in engines))
    for ours in ("ftvm --cpu interp", "ftvm --cpu jit"):
        for base in ("qemu TCG", "qemu -icount shift=auto"):
            ratios = " ".join(f"{p} {med[base][p] / med[ours][p]:.2f}" for p in names)
            print(f"  speed {ours} / {base} (> 1: ftvm faster): {ratios}")
    differ = [p for p in names if len(outputs[p]) != 1]
    for p in names:
        if p in differ:
            for out, who in outputs[p].items():
                print(f"  {p}: output {out[-200:]!r} from {', '.join(who)}")
        else:
            print(f"  {p}: the same output under every engine: {next(iter(outputs[p]))[-160:].decode(errors='replace')}")
    if differ:
        sys.exit(f"programs_bench: the engines disagree on {', '.join(differ)}")


if __name__ == "__main__":
    main()
