#!/usr/bin/env python3
"""demo.py — the README's first command, after building: kvd under FT, a client, a primary crash.

1. Builds the two-host network (scripts/ft-topology), one disk replica per host (no shared data
   disk: only the small arbiter area is shared), the arbiter area and the pair's channel key
   (`ftvm keygen`; both nodes get it with --channel-key).
2. Starts `ftvm backup` on host B, then `ftvm primary` on host A; the guest boots on A.
3. A client on its own host writes unique keys over one TCP connection and remembers every OK.
4. Midway the primary process is killed with SIGKILL (its host "crashes").
5. The backup replays what it received, wins the arbiter, goes live on host B; the client carries on.
6. Host A "comes back": its node is restarted as `ftvm spare`; host B, told its spare with --spare,
   clones the running VM to it (docs/ft-clone.md), memory and disk replica, and is protected
   again, A now its backup.
7. Host B's process is killed in turn: A goes live, a second failover the other way.
8. Every acknowledged write is read back; the failover gaps seen by the client are printed.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftlab  # noqa: E402

CLIENT = os.path.join(ftlab.HERE, "kvclient.py")


def say(msg):
    print(f"demo: {msg}", flush=True)


def main():
    if os.geteuid() != 0:
        say("needs root (network namespaces, TAP devices)")
        return 2
    workdir = tempfile.mkdtemp(prefix="ftvm-demo-")
    # Host B restores redundancy to a spare on host A after it goes live.
    lab = ftlab.Lab("ftdemo", workdir, extra_backup=["--spare", f"10.78.0.1:{ftlab.LOG_PORT}"],
                    disk_mode="replicated")
    try:
        say(f"network up: host A (primary), host B (backup), client {ftlab.CLIENT_IP}; guest {ftlab.GUEST_IP}")
        say("disks: a replica per host (disk-a.img, disk-b.img); shared: only the arbiter area")
        t0 = time.monotonic()
        lab.start()
        say(f"guest ready under FT after {time.monotonic() - t0:.1f} s (backup replaying in lockstep)")
        logfile = os.path.join(workdir, "acked.txt")
        writer = subprocess.Popen(["ip", "netns", "exec", lab.ns("cl"), "python3", CLIENT, "write", ftlab.GUEST_IP,
                                   "--count", "1500", "--delay-ms", "5", "--prefix", "demo-", "--log", logfile],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        st = json.loads(lab.status("primary") or "{}")
        shown = {k: st.get(k) for k in ("state", "icount", "backup_lag_ms", "log_mbit_s", "outputs_held")}
        for k in ("backup_lag_ms", "log_mbit_s"):
            if isinstance(shown[k], float):
                shown[k] = round(shown[k], 3)
        say("primary status: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        with open(logfile) as f:
            acked_before = sum(1 for _ in f)
        say(f"killing the primary (SIGKILL) after {acked_before} acknowledged writes")
        t_kill = time.monotonic()
        lab.primary.kill()
        line = lab.backup.wait_for("live as primary", 60)
        say(f"backup went live {time.monotonic() - t_kill:.2f} s after the kill: {line.split('warn: ')[-1]}")
        say("host A comes back: its node starts as `ftvm spare`")
        spare = ftlab.Node("spare", ["ip", "netns", "exec", lab.ns("a"), ftlab.ftvm_binary(), "spare",
                                     "--listen", f"10.78.0.1:{ftlab.LOG_PORT}",
                                     "--spare", f"10.78.0.2:{ftlab.LOG_PORT}",
                                     "--control", os.path.join(workdir, "primary.sock")]
                           + lab.ft_options() + lab.run_options("a"))
        line = lab.backup.wait_for("protected again", 60)
        say(f"protected again {time.monotonic() - t_kill:.2f} s after the kill: {line.split('warn: ')[-1]}")
        st = json.loads(lab.status("backup") or "{}")
        say(f"the clone (memory and disk replica) sent {st.get('clone_bytes', 0) / 1048576:.1f} MiB")
        spare.wait_for("primary connected; replaying", 30)
        lab.primary = spare  # host A's node is now the backup
        time.sleep(2)
        say("killing host B's process (SIGKILL): the second failover, the other way")
        t_kill = time.monotonic()
        lab.backup.kill()
        line = spare.wait_for("live as primary", 60)
        say(f"host A went live {time.monotonic() - t_kill:.2f} s after the kill: {line.split('warn: ')[-1]}")
        out, err = writer.communicate(timeout=300)
        if writer.returncode != 0:
            say(f"client failed: {err.strip()[-500:]}")
            return 1
        summary = json.loads(out.strip().splitlines()[-1])
        say(f"client: {summary['acked']} writes acknowledged over {summary['connections']} connection(s) "
            f"({summary['reconnects']} reconnects); longest gap between replies {summary['max_gap_s']:.2f} s")
        v = subprocess.run(["ip", "netns", "exec", lab.ns("cl"), "python3", CLIENT, "verify", ftlab.GUEST_IP,
                            "--log", logfile], capture_output=True, text=True)
        result = json.loads(v.stdout.strip().splitlines()[-1]) if v.stdout.strip() else {"verified": 0, "bad": ["?"]}
        say(f"verified after two failovers: {result['verified']} of {summary['acked']} acknowledged writes read back "
            f"{'intact' if not result['bad'] else 'WITH ERRORS: ' + str(result['bad'])}")
        st = json.loads(lab.status("primary") or "{}")
        say("host A's node status: " + ", ".join(f"{k}={st.get(k)}" for k in
                                                 ("role", "state", "epoch", "failovers", "unprotected_ms", "reason")))
        return 0 if v.returncode == 0 else 1
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
