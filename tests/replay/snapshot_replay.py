#!/usr/bin/env python3
"""snapshot_replay.py — the determinism proof with snapshots: record, cut, restore, replay to END.

1. `ftvm record` runs the bundled Linux guest's self-test (console output, virtio-rng, disk reads
   and writes, timers) and writes its log.
2. For a seeded random icount (the seed is printed; FTVM_TEST_SEED picks another) and three fixed
   places — early in boot (OpenSBI), mid-boot, near the end — `ftvm replay --snapshot-at N
   --snapshot FILE` stops at exactly N and saves the machine; `ftvm replay --restore FILE` then
   replays the rest of the same log and must end exactly as a full replay: exit 0, "replay
   matched", every CHECK verified, and the console output of the two halves together equal to the
   recording's, byte for byte.
3. After a restore the CHECKs are live: an input record perturbed after the cut (--perturb-lsn)
   ends the resumed replay with exit 3.
4. Refusals: a snapshot file is 0600; an existing file is not replaced without --force and a
   symbolic link never; a flipped byte in the snapshot (exit 4, naming offset and section); a
   snapshot restored with another --mem (`ftvm run --restore`: exit 1 naming "memory ... here, ...
   in the state"); a snapshot resumed against another log (exit 4).
5. `ftvm run --restore` continues the snapshot live to the guest's power-off (exit 0) with the
   self-test's PASS on the console.

Prints the snapshot size against the RAM size, and save and restore times.

Usage: snapshot_replay.py FTVM GUEST_DIR   (exit 77 when GUEST_DIR has no Image)
"""
import os
import re
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evlog  # noqa: E402
import rrlib  # noqa: E402

TIMEOUT = 600
RUN_ARGS = ["--extra-args", "ftvm.workload=selftest"]
SAVE_RE = re.compile(r"snapshot \S+ at icount (\d+): ([\d.]+) MiB for (\d+) MiB of RAM .* in ([\d.]+) s")
RESTORE_RE = re.compile(r"restored \S+ at icount (\d+): ([\d.]+) MiB, \d+ pages, in ([\d.]+) s")


def snapshot_at(f, ftvm, log_path, icount, snap, rec_out, extra=(), run_args=RUN_ARGS):
    """Cuts at icount, restores, replays to END; returns (save line match, restore line match).
    run_args are the recording's run options (a disk named there carries over from the cut to
    the restore: the replay that cut leaves it as it was at the cut)."""
    cut = rrlib.run([ftvm, "replay", "--log", log_path, "--snapshot-at", str(icount), "--snapshot", snap]
                    + list(run_args), timeout=TIMEOUT)
    save = SAVE_RE.search(cut.err_text())
    f.expect(cut.code == 0 and save and int(save.group(1)) == icount,
             f"snapshot at {icount}: exit {cut.code} '{cut.err_text()[-600:]}'")
    if cut.code != 0:
        return None, None
    rest = rrlib.run([ftvm, "replay", "--log", log_path, "--restore", snap] + list(extra) + list(run_args),
                     timeout=TIMEOUT)
    restored = RESTORE_RE.search(rest.err_text())
    print(f"  cut at {icount}: {save.group(0)}; restore: exit {rest.code}: {rest.last_err_line()}", flush=True)
    f.expect(rest.code == 0 and re.search(r"replay matched: \d+ records, \d+ checks .*ended by power-off",
                                          rest.last_err_line()),
             f"restore at {icount}: exit {rest.code} '{rest.err_text()[-800:]}'")
    f.expect(restored and int(restored.group(1)) == icount, f"restore at {icount} did not report the icount")
    f.expect(cut.out + rest.out == rec_out,
             f"cut at {icount}: console {len(cut.out)} + {len(rest.out)} bytes, recorded {len(rec_out)}")
    return save, restored


def main():
    ftvm, guest = sys.argv[1], sys.argv[2]
    if not rrlib.bundled_guest(guest):
        return rrlib.SKIP
    rnd = rrlib.seeded_random()
    f = rrlib.Failures("snapshot_replay")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "selftest.log")
        rec = rrlib.run([ftvm, "record", "--log", log_path] + RUN_ARGS, timeout=TIMEOUT)
        print(f"record: exit {rec.code} in {rec.seconds:.1f} s", flush=True)
        if not f.expect(rec.code == 0 and b"selftest: PASS" in rec.out, f"record exit {rec.code}: {rec.err_text()[-1500:]}"):
            return f.report()
        log = evlog.Log.read(log_path)
        end = log.records[-1].icount
        disk_done = log.of_kind(evlog.DISK_DONE)
        f.expect(len(disk_done) > 0 and len(log.of_kind(evlog.RNG)) > 0, "the workload has no disk or entropy input")

        snap = os.path.join(tmp, "snap")
        points = [("random", rnd.randrange(1, end)), ("early boot", 2_000_000), ("mid-boot", end // 2),
                  ("near the end", end - 1000)]
        sizes = []
        for what, icount in points:
            print(f"{what}: icount {icount} of {end}", flush=True)
            if os.path.exists(snap):
                os.unlink(snap)
            save, restored = snapshot_at(f, ftvm, log_path, icount, snap, rec.out)
            if save and restored:
                sizes.append((icount, float(save.group(2)), int(save.group(3)), float(save.group(4)),
                              float(restored.group(3))))
        f.expect(stat.S_IMODE(os.stat(snap).st_mode) == 0o600, "the snapshot file is not mode 0600")
        for icount, mib, ram, save_s, restore_s in sizes:
            print(f"MEASURED icount {icount}: snapshot {mib:.1f} MiB for {ram} MiB of RAM ({100 * mib / ram:.1f}%), "
                  f"save {save_s * 1000:.0f} ms, restore {restore_s * 1000:.0f} ms")

        # The CHECKs after a restore are live: perturb an input after the cut.
        cut_at = end // 2
        later = [r for r in log.records if r.icount > cut_at and r.kind in (evlog.TIME, evlog.RNG, evlog.DISK_DONE)]
        if f.expect(later, "no input record in the second half of the log"):
            if os.path.exists(snap):
                os.unlink(snap)
            r = rrlib.run([ftvm, "replay", "--quiet", "--log", log_path, "--snapshot-at", str(cut_at),
                           "--snapshot", snap] + RUN_ARGS, timeout=TIMEOUT)
            r = rrlib.run([ftvm, "replay", "--quiet", "--log", log_path, "--restore", snap, "--perturb-lsn",
                           str(later[0].lsn)] + RUN_ARGS, timeout=TIMEOUT)
            f.expect(r.code == 3 and "divergence" in r.last_err_line(),
                     f"perturbed lsn {later[0].lsn} after a restore: exit {r.code} '{r.last_err_line()}', want 3")

        # Files: no replacing without --force, never through a symlink.
        r = rrlib.run([ftvm, "replay", "--quiet", "--log", log_path, "--snapshot-at", "1000", "--snapshot", snap]
                      + RUN_ARGS, timeout=TIMEOUT)
        f.expect(r.code == 1 and "the file exists (--force replaces it)" in r.err_text(),
                 f"existing snapshot: exit {r.code} '{r.last_err_line()}'")
        link = os.path.join(tmp, "link")
        os.symlink(os.path.join(tmp, "elsewhere"), link)
        r = rrlib.run([ftvm, "replay", "--quiet", "--log", log_path, "--snapshot-at", "1000", "--snapshot", link,
                       "--force"] + RUN_ARGS, timeout=TIMEOUT)
        f.expect(r.code == 1 and "symbolic link" in r.err_text() and not os.path.exists(os.path.join(tmp, "elsewhere")),
                 f"snapshot through a symlink: exit {r.code} '{r.last_err_line()}'")

        # A corrupt snapshot, another configuration, another log.
        size = os.path.getsize(snap)
        bad = rrlib.mutated(snap, os.path.join(tmp, "bad"), rrlib.flip(size // 2))
        r = rrlib.run([ftvm, "replay", "--quiet", "--log", log_path, "--restore", bad] + RUN_ARGS, timeout=TIMEOUT)
        f.expect(r.code == 4 and re.search(r"bad CRC in section \w+ at byte \d+", r.last_err_line()),
                 f"flipped snapshot: exit {r.code} '{r.last_err_line()}'")
        r = rrlib.run([ftvm, "run", "--mem", "128", "--restore", snap] + RUN_ARGS, timeout=TIMEOUT)
        f.expect(r.code == 1 and "memory 128 MiB here, 256 MiB in the state" in r.last_err_line(),
                 f"restore with --mem 128: exit {r.code} '{r.last_err_line()}'")
        other = os.path.join(tmp, "other.log")
        r = rrlib.run([ftvm, "record", "--log", other, "--clock", "virtual"] + RUN_ARGS, timeout=TIMEOUT)
        if r.code == 0:
            r = rrlib.run([ftvm, "replay", "--quiet", "--log", other, "--restore", snap] + RUN_ARGS, timeout=TIMEOUT)
            # Refused by whichever proof of the log comes first: its header, the record at the cut's
            # lsn, the log ending before that lsn (how long each log is depends on the recording's
            # speed), or the digest of the records before it.
            why = r.last_err_line()
            f.expect(r.code == 4 and any(s in why for s in ("another log", "resumes at lsn", "where the snapshot resumes",
                                                             "are not the ones the snapshot was taken on")),
                     f"snapshot against another log: exit {r.code} '{why}'")

        # Live from the snapshot: the guest finishes its self-test.
        r = rrlib.run([ftvm, "run", "--restore", snap] + RUN_ARGS, timeout=TIMEOUT)
        f.expect(r.code == 0 and b"selftest: PASS" in r.out and b"power off" in r.out,
                 f"run --restore: exit {r.code}, console ends {r.out[-300:]!r}, '{r.last_err_line()}'")
    return f.report()


if __name__ == "__main__":
    sys.exit(main())
