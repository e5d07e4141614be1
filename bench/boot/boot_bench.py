#!/usr/bin/env python3
"""boot_bench.py — time from power-on to `ftvm-guest: ready` for the bundled guest.

Runs the same guest (Image, initramfs.cpio, fw_dynamic.bin, 256 MiB, a 64 MiB scratch virtio-blk
disk, virtio-rng, the self-test workload) under ftvm (the JIT and the interpreter, each with the wall
and the virtual clock) and under qemu-system-riscv64, plain TCG and `-icount shift=auto`, in the
same run; prints the median of several runs of each and the ratios ftvm/QEMU. Each run is stopped as soon as the marker appears.

Usage: boot_bench.py [--ftvm PATH] [--guest DIR] [--runs N]
"""
import argparse
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MARKER = b"ftvm-guest: ready"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APPEND = "console=ttyS0 panic=1 ftvm.workload=selftest"
TIMEOUT_S = 120


def time_to_marker(cmd, env=None):
    """Seconds from spawn to MARKER on stdout, or None if it never came."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    seen = b""
    elapsed = None
    try:
        while time.monotonic() - start < TIMEOUT_S:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen = (seen + chunk)[-4096:]
            if MARKER in seen:
                elapsed = time.monotonic() - start
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ftvm", default=os.path.join(REPO, "build", "cmd", "ftvm"))
    ap.add_argument("--guest", default=os.environ.get("FTVM_GUEST_DIR", os.path.join(REPO, "build", "guest")))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    g = args.guest
    for f in ("Image", "initramfs.cpio", "fw_dynamic.bin"):
        if not os.path.exists(os.path.join(g, f)):
            sys.exit(f"boot_bench: {g}/{f} missing (run guest/build)")

    with tempfile.NamedTemporaryFile(prefix="ftvm-bench-disk-") as disk:
        disk.truncate(64 << 20)
        ftvm = [args.ftvm, "run", "--extra-args", "ftvm.workload=selftest", "--disk", disk.name]
        qemu = ["qemu-system-riscv64", "-M", "virt", "-m", "256M", "-nographic", "-no-reboot",
                "-bios", f"{g}/fw_dynamic.bin", "-kernel", f"{g}/Image", "-initrd", f"{g}/initramfs.cpio",
                "-append", APPEND,
                "-drive", f"file={disk.name},format=raw,if=none,id=d0", "-device", "virtio-blk-device,drive=d0",
                "-device", "virtio-rng-device"]
        env = dict(os.environ, FTVM_GUEST_DIR=g)
        configs = [
            ("ftvm --cpu interp (wall clock)", ftvm + ["--cpu", "interp"]),
            ("ftvm --cpu interp (virtual clock)", ftvm + ["--cpu", "interp", "--clock=virtual"]),
            ("ftvm --cpu jit (wall clock)", ftvm + ["--cpu", "jit"]),
            ("ftvm --cpu jit (virtual clock)", ftvm + ["--cpu", "jit", "--clock=virtual"]),
            ("qemu TCG", qemu),
            ("qemu TCG -icount shift=auto", qemu + ["-icount", "shift=auto"]),
        ]
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        print(f"host {platform.node()} {platform.machine()} {os.cpu_count()} cpus, commit {commit}, "
              f"{args.runs} runs each, median seconds to '{MARKER.decode()}'")
        medians = {}
        for name, cmd in configs:
            times = [time_to_marker(cmd, env) for _ in range(args.runs)]
            ok = [t for t in times if t is not None]
            medians[name] = statistics.median(ok) if ok else None
            shown = " ".join("fail" if t is None else f"{t:.2f}" for t in times)
            print(f"  {name:34s} {medians[name] or float('nan'):7.2f} s   ({shown})")
        for ours in [name for name, _ in configs if name.startswith("ftvm")]:
            for base in ("qemu TCG", "qemu TCG -icount shift=auto"):
                if medians[ours] and medians[base]:
                    print(f"  ratio {ours} / {base}: {medians[ours] / medians[base]:.2f}")
        target = medians["ftvm --cpu jit (wall clock)"]  # the default engine
        print(f"  target: ready in < 5 s under ftvm: {'met' if target and target < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
