#!/usr/bin/env python3
"""disk_bench.py — guest disk throughput through NBD (qemu-storage-daemon + libnbd) against the
raw file fast path and against QEMU's own virtio-blk on the same images, side by side in the same
run.

The bundled guest's disk workload (O_DIRECT, so the device is measured, not the page cache):
sequential write and read of a REGION MiB region in 64 KiB blocks, then OPS random 4 KiB reads and
OPS random 4 KiB writes. The guest's clock follows the wall clock, so its score is the throughput
a user of the VM sees — and, on a loaded host, mostly the emulated guest's speed. A second table
measures the host's I/O path alone (bench_disk_image: the same phases through util/disk_image.h,
one request at a time as the live back end runs them, no guest), where the cost of the NBD hop
shows undiluted. Each configuration runs --runs times, alternately; medians are shown, with each
NBD configuration's ratio to the raw file:

  raw file     --disk FILE (pread/pwrite on the image, no server)
  NBD raw      the same kind of file exported by qemu-storage-daemon (driver raw) on a Unix socket
  NBD qcow2    a new qcow2 image exported the same way (allocation on first write)
  NBD overlay  a linked clone (qcow2 overlay) of a raw base holding the region already
  QEMU raw     qemu-system-riscv64 -M virt (plain TCG, the same Image, initramfs, firmware, 256 MiB
               and kernel command line) on a raw file: -drive file=...,format=raw,if=none,id=d0
               -device virtio-blk-device,drive=d0
  QEMU qcow2   the same on a new qcow2 image, opened by QEMU's own block layer (format=qcow2):
               the image `NBD qcow2` serves to ftvm through qemu-storage-daemon

Both sides keep QEMU's default cache (the host's page cache: cache.direct off) and the guest's
clock follows the wall clock. QEMU's TCG runs the guest's CPU several times faster than ftvm's
deterministic interpreter, so the QEMU rows show mostly how much the emulated CPU bounds the
workload; the guest table then prints ftvm through NBD over QEMU on the same image. The host
path table has no QEMU rows (it is ftvm's I/O path alone).

Usage: disk_bench.py [--ftvm PATH] [--guest DIR] [--runs N] [--region MiB] [--ops N] [--no-qemu]
"""
import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "disk"))
import nbdserve  # noqa: E402

DISK_MIB = 64
HOST = re.compile(rb"seq-write (\d+) MB/s seq-read (\d+) MB/s rand-read (\d+) IOPS rand-write (\d+) IOPS")
SCORE = re.compile(rb"disk: score seq-write (\d+) MB/s, seq-read (\d+) MB/s, rand-read (\d+) IOPS, "
                   rb"rand-write (\d+) IOPS")
COLUMNS = ("seq-write MB/s", "seq-read MB/s", "rand-read IOPS", "rand-write IOPS")


def run_workload(ftvm, disk, region, ops, env):
    argv = [ftvm, "run", "--disk", disk, "--extra-args",
            f"ftvm.workload=disk ftvm.disk.mb={region} ftvm.disk.ops={ops}"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=1800)
    m = SCORE.search(p.stdout)
    if p.returncode != 0 or not m:
        sys.exit(f"disk_bench: {disk}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}")
    return [int(x) for x in m.groups()]


def run_qemu(guest, disk, fmt, region, ops):
    """The same workload under qemu-system-riscv64 -M virt, the disk on QEMU's virtio-blk."""
    argv = ["qemu-system-riscv64", "-M", "virt", "-m", "256M", "-nographic", "-no-reboot",
            "-bios", os.path.join(guest, "fw_dynamic.bin"), "-kernel", os.path.join(guest, "Image"),
            "-initrd", os.path.join(guest, "initramfs.cpio"),
            "-append", f"console=ttyS0 panic=1 ftvm.workload=disk ftvm.disk.mb={region} ftvm.disk.ops={ops}",
            "-drive", f"file={disk},format={fmt},if=none,id=d0", "-device", "virtio-blk-device,drive=d0",
            "-device", "virtio-rng-device"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    m = SCORE.search(p.stdout)
    if not m:
        sys.exit(f"disk_bench: QEMU on {disk}: exit {p.returncode}: {p.stdout.decode(errors='replace')[-500:]}"
                 f"{p.stderr.decode(errors='replace')[-300:]}")
    return [int(x) for x in m.groups()]


def run_host_path(tool, disk, region, ops):
    p = subprocess.run([tool, disk, str(region), str(ops)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=1800)
    m = HOST.search(p.stdout)
    if p.returncode != 0 or not m:
        sys.exit(f"disk_bench: bench_disk_image {disk}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
    return [int(x) for x in m.groups()]


def table(title, kinds, results):
    med = {k: [statistics.median(r[c] for r in results[k]) for c in range(4)] for k in kinds}
    print(f"\n{title}")
    print(f"{'':12s} " + " ".join(f"{c:>16s}" for c in COLUMNS))
    for k in kinds:
        cells = []
        for c in range(4):
            v, raw = med[k][c], med["raw file"][c]
            cells.append(f"{v:>9.0f}" + (f" ({v / raw:4.2f})" if k != "raw file" and raw else "       "))
        print(f"{k:12s} " + " ".join(f"{x:>16s}" for x in cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ftvm", default=os.path.join(REPO, "build", "cmd", "ftvm"))
    ap.add_argument("--tool", default=os.path.join(REPO, "build", "bench", "disk", "bench_disk_image"))
    ap.add_argument("--guest", default=os.environ.get("FTVM_GUEST_DIR", os.path.join(REPO, "build", "guest")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--region", type=int, default=32, help="MiB of the sequential phases")
    ap.add_argument("--ops", type=int, default=2000, help="random 4 KiB reads, and as many writes")
    ap.add_argument("--no-qemu", action="store_true", help="leave out the QEMU virtio-blk rows")
    a = ap.parse_args()
    missing = nbdserve.tools_missing() + ([] if a.no_qemu or shutil.which("qemu-system-riscv64")
                                         else ["qemu-system-riscv64"])
    if missing:
        sys.exit(f"disk_bench: {' '.join(missing)} not installed (scripts/setup)")
    env = dict(os.environ, FTVM_GUEST_DIR=a.guest)
    tmp = tempfile.mkdtemp(prefix="ftvm-disk-bench-")
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    print(f"host {platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; commit {commit}; "
          f"region {a.region} MiB, {a.ops} random ops, {a.runs} runs each")

    base = os.path.join(tmp, "base.img")
    with open(base, "wb") as fh:
        fh.truncate(DISK_MIB << 20)
    subprocess.run(["qemu-io", "-f", "raw", "-c", f"write -P 0x5a 0 {a.region}M", base], check=True,
                   stdout=subprocess.DEVNULL)

    def fresh(kind, i):
        path = os.path.join(tmp, f"{kind.replace(' ', '-')}-{i}")
        if kind in ("raw file", "NBD raw", "QEMU raw"):
            with open(path, "wb") as fh:
                fh.truncate(DISK_MIB << 20)
            return path, "raw"
        if kind in ("NBD qcow2", "QEMU qcow2"):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, f"{DISK_MIB}M"], check=True)
        else:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", path], check=True)
        return path, "qcow2"

    ours = ("raw file", "NBD raw", "NBD qcow2", "NBD overlay")
    kinds = ours + (() if a.no_qemu else ("QEMU raw", "QEMU qcow2"))
    guest = {k: [] for k in kinds}
    host = {k: [] for k in ours}
    for i in range(a.runs):
        for kind in kinds:
            if kind.startswith("QEMU"):
                path, fmt = fresh(kind, i)
                guest[kind].append(run_qemu(a.guest, path, fmt, a.region, a.ops))
                os.unlink(path)
                print(f"  run {i + 1} {kind:12s} guest {guest[kind][-1]}", flush=True)
                continue
            for results, run in ((guest, lambda d: run_workload(a.ftvm, d, a.region, a.ops, env)),
                                 (host, lambda d: run_host_path(a.tool, d, a.region, a.ops))):
                path, fmt = fresh(kind, i)
                if kind == "raw file":
                    results[kind].append(run(path))
                else:
                    with nbdserve.StorageDaemon(path, fmt, path + ".sock", path + ".log") as d:
                        results[kind].append(run(d.uri))
                os.unlink(path)
            print(f"  run {i + 1} {kind:12s} guest {guest[kind][-1]} host path {host[kind][-1]}", flush=True)

    table("guest's disk workload (medians)", kinds, guest)
    table("host I/O path alone, bench_disk_image (medians)", ours, host)
    print("(ratio to the raw file in parentheses)")
    for mine, theirs in (() if a.no_qemu else (("raw file", "QEMU raw"), ("NBD qcow2", "QEMU qcow2"))):
        ratios = [statistics.median(r[c] for r in guest[mine]) / max(1, statistics.median(r[c] for r in guest[theirs]))
                  for c in range(4)]
        print(f"ftvm {mine} / {theirs}, same image: " + ", ".join(f"{n} {x:.2f}" for n, x in zip(COLUMNS, ratios)))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
