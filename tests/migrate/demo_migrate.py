#!/usr/bin/env python3
"""demo_migrate.py — `scripts/demo --migrate`: live migration of the running demo VM, and back.

1. Builds the two-host network (scripts/ft-topology), a disk file per host (nothing shared) and
   a channel key (`ftvm keygen`).
2. Boots the bundled guest's key-value server under `ftvm run` on host A.
3. A client on a third host writes unique keys over one TCP connection and remembers every OK.
4. `ftvm incoming` waits on host B; `ftvm migrate --copy-storage` moves the running VM, memory,
   devices and disk, from A to B; then the same from B back to A.
5. Every acknowledged write is read back; the connection must never have broken.
Each command is printed as it is run, so the steps can be repeated by hand.
"""
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_migrate as tm  # noqa: E402
from test_migrate import ftlab  # noqa: E402


def say(msg):
    print(f"demo: {msg}", flush=True)


def shown(argv):
    """The command without the namespace wrapper, as a user on that host would type it."""
    argv = list(argv)
    if argv[:3] == ["ip", "netns", "exec"]:
        argv = argv[4:]
    return " ".join(shlex.quote(os.path.basename(a) if i == 0 else a) for i, a in enumerate(argv))


def main():
    if os.geteuid() != 0:
        say("needs root (network namespaces, TAP devices)")
        return 2
    workdir = tempfile.mkdtemp(prefix="ftvm-demo-migrate-")
    lab = tm.MigLab("ftdmig", workdir, disk_mode="replicated")
    nodes = {"a": None, "b": None}
    try:
        say(f"network up: host A {tm.HOST_IP['a']}, host B {tm.HOST_IP['b']}, client {ftlab.CLIENT_IP}; "
            f"guest {ftlab.GUEST_IP}; a disk file per host, nothing shared")
        nodes["a"] = lab.start_run("a")
        say("host A: " + shown(nodes["a"].proc.args))
        t0 = time.monotonic()
        nodes["a"].wait_for("ftvm-guest: ready", 180)
        say(f"guest ready on host A after {time.monotonic() - t0:.1f} s")
        writer, logfile, stopfile = tm.start_writer(lab, workdir, delay_ms=4, name="demo")
        time.sleep(3)
        here, there = "a", "b"
        for _ in range(2):
            nodes[there] = lab.start_incoming(there)
            say(f"host {there.upper()}: " + shown(nodes[there].proc.args))
            say(f"host {here.upper()}: ftvm migrate --control {lab.sock(here)} --to {tm.HOST_IP[there]}:{tm.PORT} "
                f"--channel-key {lab.key} --copy-storage")
            rc, err, took = lab.migrate(here, there, ["--copy-storage"])
            if rc != 0:
                say(f"the migration failed:\n{err}")
                return 1
            nodes[there].wait_for("handed over", 30)
            nodes[here].wait(30)
            done = [line for line in err.splitlines() if "done:" in line]
            say(f"moved {here.upper()} -> {there.upper()} in {took:.2f} s: "
                f"{done[-1].split('done: ')[-1] if done else '?'}")
            nodes[here] = None
            here, there = there, here
            time.sleep(3)
        summary = tm.stop_writer(writer, stopfile, nodes.values())
        say(f"client: {summary['acked']} writes acknowledged over {summary['connections']} connection(s) "
            f"({summary['reconnects']} reconnects); longest gap between replies {summary['max_gap_s'] * 1000:.0f} ms")
        v = tm.verify(lab, logfile, nodes.values())
        say(f"verified after two migrations: {v['verified']} of {summary['acked']} acknowledged writes read back")
        ok = summary["reconnects"] == 0 and summary["connections"] == 1 and v["verified"] == summary["acked"]
        return 0 if ok else 1
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
