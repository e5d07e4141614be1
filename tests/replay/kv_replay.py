#!/usr/bin/env python3
"""kv_replay.py — kvd over TAP recorded under a client, replayed offline (run by kvd_tap.sh inside
its network namespace, where TAP has the host address 10.99.0.1/24).

Record: the bundled guest boots the `shell` workload with a fresh copy of a zeroed 64 MiB disk and
a virtio-net NIC on TAP (ip=10.99.0.2); the test types `kvd &` on the console, two clients send
a few hundred SET/GET with random pauses and check every answer (kvload.py), then the test types
`poweroff`. Replay, with another fresh copy of the zeroed disk and no network or console input:
exit 0 (matched to END), the same console output byte for byte, and the replay's disk ends
byte-identical to the recording's. The log must hold NET_RX, DISK_DONE and CONSOLE_IN records.
Restore-then-replay: cut at a seeded random icount while the clients' frames arrive (the seed is
printed; FTVM_TEST_SEED picks another), restore with the disk the cut left, replay to END: the same
console output and the same disk.
Then --perturb-lsn on a NET_RX record and on the CONSOLE_IN record: exit 3 at the next CHECK (or
earlier, when the change made the guest wait in WFI where the recording did not).

Usage: kv_replay.py FTVM GUEST_DIR TAP
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evlog  # noqa: E402
import kvload  # noqa: E402
import rrlib  # noqa: E402
import snapshot_replay  # noqa: E402

GUEST_IP, HOST_IP = "10.99.0.2", "10.99.0.1"
MAC = "52:54:00:00:00:01"
DISK_BYTES = 64 << 20
BOOT_TIMEOUT = 600
KVD_MAGIC = b"FTVMKVD1"


def main():
    ftvm, guest, tap = sys.argv[1:4]
    os.environ["FTVM_GUEST_DIR"] = guest
    f = rrlib.Failures("linux_kvd_tap")
    with tempfile.TemporaryDirectory() as tmp:
        zero = os.path.join(tmp, "zero.img")
        with open(zero, "wb") as z:
            z.truncate(DISK_BYTES)
        rec_disk = shutil.copyfile(zero, os.path.join(tmp, "rec.img"))
        rep_disk = shutil.copyfile(zero, os.path.join(tmp, "rep.img"))
        log_path = os.path.join(tmp, "kv.log")
        common = ["--nic", f"tap={tap},mac={MAC}",
                  "--extra-args", f"ftvm.workload=shell ip={GUEST_IP}::{HOST_IP}:255.255.255.0::eth0:off"]

        live = rrlib.Live([ftvm, "record", "--log", log_path, "--disk", rec_disk] + common)
        ok = f.expect(live.wait_for(b"ftvm-guest: ready", BOOT_TIMEOUT), "the guest never printed its ready marker")
        load = None
        if ok:
            live.type(b"kvd &\n")
            ok = f.expect(kvload.wait_for_server(GUEST_IP, 120), "kvd did not answer on port 7000")
        if ok:
            load = kvload.run_load(GUEST_IP, clients=2, requests=150, max_delay_s=0.03, seed=4)
            print(f"client: {load['sets']} SET, {load['gets']} GET in {load['seconds']:.1f} s", flush=True)
            f.expect(not load["errors"], f"client errors: {load['errors'][:5]}")
            f.expect(load["sets"] + load["gets"] >= 300, f"only {load['sets'] + load['gets']} requests")
        live.type(b"poweroff\n")
        rec = live.finish(BOOT_TIMEOUT if ok else 30)
        print(f"record: exit {rec.code} in {rec.seconds:.1f} s", flush=True)
        f.expect(rec.code == 0, f"record exit {rec.code}: {rec.err_text()[-1500:]}\nconsole: {rec.out[-1500:]!r}")
        if rec.code != 0 or not ok:
            return f.report()

        with open(rec_disk, "rb") as d:
            f.expect(d.read(len(KVD_MAGIC)) == KVD_MAGIC, "kvd did not format the recording's disk")
        log = evlog.Log.read(log_path, verify_crc=False)
        counts = log.counts()
        for kind in (evlog.NET_RX, evlog.DISK_DONE, evlog.CONSOLE_IN, evlog.CHECK):
            f.expect(counts.get(kind, 0) > 0, f"the log has no {evlog.KIND_NAMES[kind]} record")
        f.expect(counts.get(evlog.NET_RX, 0) >= load["sets"] + load["gets"],
                 f"{counts.get(evlog.NET_RX, 0)} NET_RX records for {load['sets'] + load['gets']} requests")
        print("log: " + ", ".join(f"{evlog.KIND_NAMES[k]} {n}" for k, n in sorted(counts.items())), flush=True)

        # Replay: no TAP traffic can reach it (ftvm replay opens no back end), no stdin.
        rep = rrlib.run([ftvm, "replay", "--log", log_path, "--disk", rep_disk] + common, timeout=BOOT_TIMEOUT)
        print(f"replay: exit {rep.code} in {rep.seconds:.1f} s: {rep.last_err_line()}", flush=True)
        f.expect(rep.code == 0, f"replay exit {rep.code}: {rep.err_text()[-1500:]}")
        f.expect(re.search(r"replay matched: .* ended by power-off", rep.last_err_line()),
                 f"replay message '{rep.last_err_line()}'")
        f.expect(rep.out == rec.out, f"console output differs: recorded {len(rec.out)} bytes, "
                 f"replayed {len(rep.out)}; replay ends {rep.out[-300:]!r}")
        same = subprocess.run(["cmp", rec_disk, rep_disk], capture_output=True, text=True)
        f.expect(same.returncode == 0, f"the replay's disk differs from the recording's: {same.stdout.strip()}")
        with open(zero, "rb") as z, open(rep_disk, "rb") as d:
            f.expect(z.read(1 << 20) != d.read(1 << 20), "the replay wrote nothing to its disk")

        # Restore-then-replay: cut at a seeded random icount while the clients' frames arrive,
        # restore with the disk as the cut left it, replay to END: the same console and disk.
        net = log.of_kind(evlog.NET_RX)
        icount = rrlib.seeded_random().randrange(net[0].icount, net[-1].icount)
        print(f"cut at icount {icount} (frames from {net[0].icount} to {net[-1].icount})", flush=True)
        cut_disk = shutil.copyfile(zero, os.path.join(tmp, "cut.img"))
        cut_args = ["--disk", cut_disk] + common
        snapshot_replay.snapshot_at(f, ftvm, log_path, icount, os.path.join(tmp, "kv.snap"), rec.out,
                                    run_args=cut_args)
        same = subprocess.run(["cmp", rec_disk, cut_disk], capture_output=True, text=True)
        f.expect(same.returncode == 0, f"the disk after cut and restore differs from the recording's: {same.stdout.strip()}")

        # Injected nondeterminism in a received frame (mid-run) and in the typed `kvd &`: the
        # first CHECK after each catches it. Each replay gets a fresh copy of the zeroed disk.
        lsns = [net[len(net) // 2].lsn, log.of_kind(evlog.CONSOLE_IN)[0].lsn]
        scratch = os.path.join(tmp, "perturb.img")
        rrlib.check_perturbations(f, ftvm, log_path, common, lsns, deadline_s=BOOT_TIMEOUT,
                                  fresh_disks=lambda: ["--disk", shutil.copyfile(zero, scratch)],
                                  allow_earlier=True)
    return f.report()


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)")
    sys.exit(code)
