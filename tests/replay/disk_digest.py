#!/usr/bin/env python3
"""disk_digest.py FTVM GUEST_DIR — disk reads logged as digests (`ftvm record --disk-reads digest`).

1. The disk workload recorded twice on fresh disks, with the reads' data and with digests only:
   the digest log must be at least 20 times smaller, hold DISK_DIGEST records and no read data,
   and replay on a fresh copy of the disk to END with every CHECK matching, leaving the copy
   byte-identical to the recorded disk.
2. The shell workload reads a disk that starts with known bytes (dd of /dev/vda), recorded with
   digests: replayed on an exact copy it matches; replayed on a copy with one byte changed in the
   area the guest reads it must stop with exit 3 naming the DISK_DIGEST record, the disk, the
   request and both digests — the changed byte never reaches the guest silently; replayed with no
   copy of that content (a fresh empty disk) it diverges the same way.
Skips (77) while build/guest has no Image.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evlog  # noqa: E402
import rrlib  # noqa: E402

DISK_MIB = 64
PATTERN = b"ftvm-disk-digest-pattern"
PATTERN_AT = 1000


def fresh_disk(path, with_pattern=False):
    with open(path, "wb") as f:
        f.truncate(DISK_MIB << 20)
        if with_pattern:
            f.seek(PATTERN_AT)
            f.write(PATTERN)
    return path


def read_log(path):
    with open(path, "rb") as fh:
        return evlog.Log(fh.read())


def kinds(log_path):
    counts = {}
    for rec in read_log(log_path).records:
        counts[rec.kind] = counts.get(rec.kind, 0) + 1
    return counts


def main():
    ftvm, guest = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(guest, "Image")):
        print(f"SKIP: no bundled guest in {guest}")
        return rrlib.SKIP
    f = rrlib.Failures("replay.disk_digest")
    tmp = tempfile.mkdtemp(prefix="ftvm-digest-")
    env = dict(os.environ, FTVM_GUEST_DIR=guest)
    work = ["--clock", "virtual", "--extra-args", "ftvm.workload=disk ftvm.disk.mb=8 ftvm.disk.ops=300"]

    # 1. data vs digest, replay, identical disks
    sizes = {}
    for mode in ("data", "digest"):
        disk = fresh_disk(os.path.join(tmp, f"rec-{mode}.img"))
        log = os.path.join(tmp, f"{mode}.log")
        r = rrlib.run([ftvm, "record", "--log", log, "--disk-reads", mode, "--disk", disk] + work, env=env)
        f.expect(r.code == 0, f"record --disk-reads {mode}: exit {r.code}: {r.last_err_line()}")
        sizes[mode] = os.path.getsize(log)
    counts = kinds(os.path.join(tmp, "digest.log"))
    f.expect(counts.get(evlog.DISK_DIGEST, 0) > 100, f"digest log kinds {counts}: expected DISK_DIGEST records")
    big = [r for r in read_log(os.path.join(tmp, "digest.log")).records
           if r.kind == evlog.DISK_DONE and len(r.payload) > 16]
    f.expect(not big, f"{len(big)} DISK_DONE records still carry data in the digest log")
    f.expect(sizes["digest"] * 20 < sizes["data"], f"log sizes {sizes}: digests should be 20x smaller")
    copy = fresh_disk(os.path.join(tmp, "copy.img"))
    r = rrlib.run([ftvm, "replay", "--quiet", "--log", os.path.join(tmp, "digest.log"), "--disk", copy] + work,
                  env=env)
    f.expect(r.code == 0 and "replay matched" in r.err_text(), f"replay of the digest log: exit {r.code}: "
             f"{r.last_err_line()}")
    with open(copy, "rb") as a, open(os.path.join(tmp, "rec-digest.img"), "rb") as b:
        f.expect(a.read() == b.read(), "the replayed copy differs from the recorded disk")

    # 2. a disk with content read by the guest: exact copy, changed byte, empty disk
    shell = ["--clock", "virtual", "--extra-args", "ftvm.workload=shell"]
    disk = fresh_disk(os.path.join(tmp, "pattern.img"), with_pattern=True)
    pristine = rrlib.fresh_copy(disk, os.path.join(tmp, "pattern-0.img"))
    log = os.path.join(tmp, "shell.log")
    live = rrlib.Live([ftvm, "record", "--log", log, "--disk-reads", "digest", "--disk", disk] + shell, env=env)
    ok = live.wait_for(b"# ", 120)
    live.type(b"dd if=/dev/vda of=/dev/null bs=65536 count=64 && echo READ-DONE\n")
    ok = ok and live.wait_for(b"READ-DONE\r\n", 120) or live.wait_for(b"READ-DONE\n", 1)
    live.type(b"poweroff -f\n")
    r = live.finish(120)
    f.expect(ok and r.code == 0, f"recording the shell reading the disk: exit {r.code}: {r.last_err_line()}")
    f.expect(kinds(log).get(evlog.DISK_DIGEST, 0) > 0, "the shell's reads left no DISK_DIGEST record")

    def replay(copy):
        return rrlib.run([ftvm, "replay", "--quiet", "--log", log, "--disk", copy] + shell, env=env)

    r = replay(rrlib.fresh_copy(pristine, os.path.join(tmp, "exact.img")))
    f.expect(r.code == 0, f"replay on an exact copy: exit {r.code}: {r.last_err_line()}")
    changed = rrlib.fresh_copy(pristine, os.path.join(tmp, "changed.img"))
    with open(changed, "r+b") as c:
        c.seek(PATTERN_AT + 3)
        c.write(b"X")
    for what, copy in (("one changed byte", changed), ("an empty disk", fresh_disk(os.path.join(tmp, "e.img")))):
        r = replay(copy)
        msg = r.last_err_line()
        f.expect(r.code == 3, f"replay on {what}: exit {r.code}, expected 3 (diverged): {msg}")
        f.expect("DISK_DIGEST lsn" in msg and "disk 0 request" in msg and "digest" in msg and "icount" in msg,
                 f"replay on {what} does not name the record, disk, request and digests: {msg}")
    return f.report()


if __name__ == "__main__":
    sys.exit(main())
