#!/usr/bin/env python3
"""cpu_bench.py — guest MIPS on a CPU-bound bare-metal loop: ftvm vs QEMU, side by side.

Builds loop.S (mul, add, addi, bnez; 4 instructions per iteration) for a large and for a tiny
iteration count, runs each under `ftvm run --bios none --kernel` and under tests/cpu's hart runner
(the hart alone), each with the interpreter and with the JIT (`--cpu jit`), and under `qemu-system-riscv64 -M virt -bios none` with plain TCG and with
`-icount shift=auto`, from spawn to the test finisher's exit. The tiny run's time is subtracted
as start-up cost. Prints the median of --runs runs, in wall-clock and in CPU seconds (the host
is shared, so CPU time is the steadier number), and the ratios of ftvm to each QEMU mode.

Usage: cpu_bench.py [--ftvm PATH] [--runner PATH] [--iterations N] [--runs N]
"""
import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
INSNS_PER_ITERATION = 4
SETUP_INSNS = 10  # li/li/li before the loop and the finisher store after it (approximate)


def build(iterations, out):
    subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64imac", "-mabi=lp64", "-nostdlib", "-static",
                    f"-DLOOP_ITERATIONS={iterations}", "-T", os.path.join(REPO, "tests/cpu/rt/link.ld"),
                    "-Wl,--no-warn-rwx-segments", "-o", out, os.path.join(HERE, "loop.S")], check=True)


def timed(cmd):
    """(wall seconds, child CPU seconds) of one run, which must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"cpu_bench: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(name, make_cmd, big, tiny, insns, runs):
    walls, cpus = [], []
    for _ in range(runs):
        w0, c0 = timed(make_cmd(tiny))
        w1, c1 = timed(make_cmd(big))
        walls.append(max(w1 - w0, 1e-6))
        cpus.append(max(c1 - c0, 1e-6))
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    mips_wall, mips_cpu = insns / wall / 1e6, insns / cpu / 1e6
    print(f"{name:28s} {wall:8.3f} s {mips_wall:9.1f} MIPS   {cpu:8.3f} s CPU {mips_cpu:9.1f} MIPS/CPU-s")
    return mips_wall, mips_cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ftvm", default=os.path.join(REPO, "build", "cmd", "ftvm"))
    ap.add_argument("--runner", default=os.path.join(REPO, "build", "tests", "cpu", "cpu_hart_runner"))
    ap.add_argument("--iterations", type=int, default=100_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"host {platform.node()} {platform.machine()} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}), "
          f"commit {commit}, {args.iterations} iterations x {INSNS_PER_ITERATION} instructions, "
          f"median of {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        big, tiny = os.path.join(tmp, "loop.elf"), os.path.join(tmp, "tiny.elf")
        build(args.iterations, big)
        build(1, tiny)
        insns = args.iterations * INSNS_PER_ITERATION + SETUP_INSNS
        qemu = ["qemu-system-riscv64", "-M", "virt", "-bios", "none", "-display", "none", "-serial", "null",
                "-monitor", "none", "-kernel"]
        results = {}
        results["qemu"] = measure("qemu (TCG)", lambda e: qemu + [e], big, tiny, insns, args.runs)
        results["qemu_icount"] = measure("qemu -icount shift=auto", lambda e: qemu[:1] + ["-icount", "shift=auto"]
                                         + qemu[1:] + [e], big, tiny, insns, args.runs)
        if os.path.exists(args.ftvm):
            results["ftvm"] = measure("ftvm run --cpu interp", lambda e: [args.ftvm, "run", "--clock=virtual",
                                      "--cpu", "interp", "--bios", "none", "--kernel", e], big, tiny, insns,
                                      args.runs)
            results["ftvm_jit"] = measure("ftvm run --cpu jit", lambda e: [args.ftvm, "run", "--clock=virtual",
                                          "--cpu", "jit", "--bios", "none", "--kernel", e], big, tiny, insns,
                                          args.runs)
        if os.path.exists(args.runner):
            results["hart"] = measure("hart runner (hart alone)", lambda e: [args.runner, e], big, tiny, insns,
                                      args.runs)
            results["hart_jit"] = measure("hart runner --cpu jit", lambda e: [args.runner, "--cpu", "jit", e], big,
                                          tiny, insns, args.runs)
    if "ftvm" in results:
        print(f"ratio ftvm_jit/ftvm (JIT over interpreter) wall {results['ftvm_jit'][0] / results['ftvm'][0]:6.3f}   "
              f"CPU {results['ftvm_jit'][1] / results['ftvm'][1]:6.3f}")
    for who in ("ftvm", "ftvm_jit", "hart", "hart_jit"):
        if who not in results:
            continue
        for base in ("qemu", "qemu_icount"):
            w = results[who][0] / results[base][0]
            c = results[who][1] / results[base][1]
            print(f"ratio {who}/{base:12s} wall {w:6.3f}   CPU {c:6.3f}")
    if "ftvm" in results:
        target = results["qemu_icount"][1] / 3
        print(f"target (a third of qemu -icount, CPU time): {target:.1f} MIPS; ftvm: {results['ftvm'][1]:.1f} -> "
              f"{'met' if results['ftvm'][1] >= target else 'NOT met'}")
        target = results["qemu_icount"][1]
        print(f"target (qemu -icount, CPU time): {target:.1f} MIPS; ftvm --cpu jit: {results['ftvm_jit'][1]:.1f} -> "
              f"{'met' if results['ftvm_jit'][1] >= target else 'NOT met'}")


if __name__ == "__main__":
    main()
