#!/usr/bin/env python3
"""run_hostile.py — runs one hostile bare-metal program under `ftvm run --bios none` and requires
that ftvm survives it: the exit status is the program's (through the test finisher, 0 unless told
otherwise) and, with --max-rss-mib, ftvm's peak resident memory stays under the bound. A scratch
disk is attached with --disk-mib; --tap attaches a virtio-net on a TAP device in a private network
namespace when running as root (skipped otherwise). Sanitizer reports are caught by
tests/lib/sanitizer_check.py, which runs this script in ctest.

Usage: run_hostile.py FTVM ELF [--disk-mib N] [--max-rss-mib N] [--tap] [--timeout S]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ftvm")
    ap.add_argument("elf")
    ap.add_argument("--disk-mib", type=int, default=0)
    ap.add_argument("--max-rss-mib", type=int, default=0)
    ap.add_argument("--tap", action="store_true")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [a.ftvm, "run", "--bios", "none", "--kernel", a.elf]
        if a.disk_mib:
            disk = os.path.join(tmp, "disk.img")
            with open(disk, "wb") as f:
                f.truncate(a.disk_mib << 20)
            cmd += ["--disk", disk]
        netns = None
        if a.tap and os.geteuid() == 0:
            netns = "ftvm-hostile-%d" % os.getpid()
            try:
                subprocess.run(["ip", "netns", "add", netns], check=True)
                subprocess.run(["ip", "-n", netns, "tuntap", "add", "dev", "tap0", "mode", "tap"], check=True)
                subprocess.run(["ip", "-n", netns, "link", "set", "tap0", "up"], check=True)
                cmd = ["ip", "netns", "exec", netns] + cmd + ["--nic", "tap=tap0"]
            except (subprocess.CalledProcessError, FileNotFoundError) as e:
                print("no TAP device (%s): virtio-net not attacked" % e)
                subprocess.run(["ip", "netns", "del", netns], stderr=subprocess.DEVNULL)
                netns = None
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=a.timeout)
        except subprocess.TimeoutExpired:
            print("FAIL: %s did not finish within %ss" % (os.path.basename(a.elf), a.timeout))
            return 1
        finally:
            if netns:
                subprocess.run(["ip", "netns", "del", netns], stderr=subprocess.DEVNULL)
        rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    printable = "".join(c for c in out if c == "\n" or " " <= c <= "~")
    sys.stdout.write(printable)
    print("exit status %d, peak RSS %.0f MiB" % (p.returncode, rss_mib))
    status = 0
    if p.returncode != 0:
        print("FAIL: exit status %d, want 0" % p.returncode)
        status = 1
    if status:
        sys.stdout.write(err[-6000:])
    if a.max_rss_mib and rss_mib > a.max_rss_mib:
        print("FAIL: peak RSS %.0f MiB over the bound of %d MiB" % (rss_mib, a.max_rss_mib))
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
