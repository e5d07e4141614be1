#!/usr/bin/env python3
"""busy.py (virt.busy) — a daemon keeps answering everyone while a slow request waits on another host.

One ftvmd with a pairing key on loopback; its VM runs the bare-metal tick.elf. `ftvm ft enable --host`
names a "daemon" that is a silent TCP listener (it accepts and never says a word), so the pairing
waits on it until the channel gives up. Checked meanwhile:
  - `ftvm list` and `virsh list --all` on the same daemon each answer within a second;
  - slow requests are capped: with CONTROL_SLOW_MAX of them waiting (raw clients on the JSON socket),
    one more is refused at once with "busy":true, and quick verbs are still answered;
  - every waiting request gets its answer in the end: a clear error naming the unreachable daemon;
  - the daemon serves on afterwards and ends with status 0 on SIGTERM.

usage: busy.py FTVMD FTVM TICK_ELF   (TICK_ELF "-": skip, status 77)
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from virt_test import Daemon, check, domain, finish, wait_for
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ports import free_port  # noqa: E402

FTVMD, FTVM, TICK = sys.argv[1:4]
if TICK == "-":
    print("skip: needs the bare-metal tick.elf")
    sys.exit(77)

SLOW_MAX = 8   # CONTROL_SLOW_MAX (common/control.h)


class SilentPeer:
    """A TCP listener on loopback that accepts every connection and never sends a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.held.append(conn)

    def accepted(self):
        with self.lock:
            return len(self.held)


def ftvm(d, *args, timeout=90):
    r = subprocess.run([FTVM, *args, "--daemon-socket", os.path.join(d.tmp, "d.sock")], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def timed(fn):
    """fn's result and seconds taken; asked again once if that took a second or more, so a load spike
    on a shared machine (a sanitizer build's client starting slowly) is not taken for a held daemon."""
    for _ in range(2):
        t = time.monotonic()
        out = fn()
        took = time.monotonic() - t
        if took < 1.0:
            break
    return out, took


def raw_request(d, req):
    """A client of the JSON socket that sends req and returns the connected socket (answer unread)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(os.path.join(d.tmp, "d.sock"))
    s.sendall((json.dumps(req) + "\n").encode())
    return s


def read_answer(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf) if buf else {}


tmp = tempfile.mkdtemp(prefix="virt-busy-")
key = os.path.join(tmp, "pair.key")
subprocess.run([FTVM, "keygen", key], check=True, stdout=subprocess.DEVNULL)
peer = SilentPeer()
d = Daemon(FTVMD, FTVM, tmp, extra=["--pair-key", key, "--pair-listen", f"127.0.0.1:{free_port()}"])
try:
    d.start()
    path = os.path.join(tmp, "slow.xml")
    with open(path, "w") as f:
        f.write(domain("slow", TICK))
    check(ftvm(d, "define", path)[0] == 0 and ftvm(d, "start", "slow")[0] == 0, "VM slow defined and started")
    check(wait_for(lambda: '"running"' in ftvm(d, "dominfo", "slow", "--json")[1], 30), "slow runs")

    host = f"127.0.0.1:{peer.port}"
    enable = subprocess.Popen([FTVM, "ft", "enable", "--vm", "slow", "--host", host, "--spare-port", "7999",
                               "--daemon-socket", os.path.join(tmp, "d.sock")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(wait_for(lambda: peer.accepted() >= 1, 20), "the pairing connects to the silent peer")
    started = time.monotonic()

    (rc, out, err), took = timed(lambda: ftvm(d, "list", "--json"))
    names = [v["name"] for v in json.loads(out)["vms"]] if rc == 0 else None
    check(rc == 0 and names == ["slow"] and took < 1.0,
          f"ftvm list answers within a second while the pairing waits ({took:.3f} s, {names}, {err.strip()!r})")
    (rc, out, err), took = timed(lambda: d.virsh("list", "--all"))
    check(rc == 0 and "slow" in out and took < 1.0,
          f"virsh list answers within a second while the pairing waits ({took:.3f} s, {err.strip()!r})")

    # The cap: SLOW_MAX - 1 more slow requests wait beside the first, one more is refused at once.
    req = {"cmd": "ft", "action": "enable", "name": "slow", "host": host, "spare_port": 7999}
    waiting = [raw_request(d, req) for _ in range(SLOW_MAX - 1)]
    check(wait_for(lambda: peer.accepted() >= SLOW_MAX, 20), f"{SLOW_MAX} pairings wait on the silent peer at once "
          f"({peer.accepted()})")
    (ans, took) = timed(lambda: read_answer(raw_request(d, req)))
    check(ans.get("ok") is False and ans.get("busy") is True and "busy" in ans.get("error", "") and took < 1.0,
          f"one slow request more is refused at once as busy ({took:.3f} s, {ans})")
    (rc, out, err), took = timed(lambda: ftvm(d, "dominfo", "slow", "--json"))
    check(rc == 0 and took < 1.0, f"a quick verb is still answered at the cap ({took:.3f} s)")

    rc = enable.wait(90)
    out, err = enable.communicate()
    check(rc == 1 and f"cannot reach the daemon at {host}" in err,
          f"ft enable ends with a clear error after {time.monotonic() - started:.1f} s ({err.strip()!r})")
    for s in waiting:
        ans = read_answer(s)
        check(ans.get("ok") is False and "cannot reach the daemon" in ans.get("error", ""),
              f"each waiting request gets its answer ({ans})")
    rc, out, _ = ftvm(d, "dominfo", "slow", "--json")
    vm = json.loads(out).get("vm", {}) if rc == 0 else {}
    check(vm.get("state") == "running" and vm.get("ft_role") != "primary", f"slow runs on unpaired ({vm})")
    rc, _, err = ftvm(d, "destroy", "slow")
    check(rc == 0, f"the daemon serves on afterwards ({err.strip()!r})")
finally:
    d.stop()
finish(tmp)
