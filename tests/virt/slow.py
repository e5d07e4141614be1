#!/usr/bin/env python3
"""slow.py (virt.slow) — a libvirt call that waits on a VM does not hold the daemon's libvirt server.

One ftvmd, its VM "slow" running the bare-metal tick.elf, whose `ftvm` process is stopped (SIGSTOP):
asking it for its FT figures (CONNECT_GET_ALL_DOMAIN_STATS, what `virsh domstats` sends) waits until
the daemon's status read times out. Checked while such calls wait:
  - the caller's own lifecycle events still reach it (a second VM defined and started meanwhile),
    and its reply comes after them, with its serial, in the order of its calls;
  - `virsh list --all` answers within a second, and 100 raw clients at once are all answered;
  - with VIRT_SLOW_MAX slow calls running, one more is refused at once with VIR_ERR_RESOURCE_BUSY;
  - once the VM process runs again every waiting call gets its record, and the daemon serves on and
    ends with status 0 on SIGTERM.

usage: slow.py FTVMD FTVM TICK_ELF   (no virsh or TICK_ELF "-": skip, status 77)
"""
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from rpc_client import LIST_ALL, MESSAGE, Client, error_of, frame, many_clients
from virt_test import Daemon, check, domain, finish, wait_for

FTVMD, FTVM, TICK = sys.argv[1:4]
if TICK == "-" or not shutil.which("virsh"):
    print("skip: needs virsh and the bare-metal tick.elf")
    sys.exit(77)

SLOW_MAX = 8                  # VIRT_SLOW_MAX (daemon/virt_rpc.h)
ALL_STATS, REGISTER_ANY, EVENT_LIFECYCLE = 344, 167, 107
ERR_RESOURCE_BUSY = 87
STATS_ARGS = struct.pack(">III", 0, 0, 0)   # every domain, every group (FT figures included), no flags


def ftvm(d, *args):
    r = subprocess.run([FTVM, *args, "--daemon-socket", os.path.join(d.tmp, "d.sock")], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def define_start(d, name):
    path = os.path.join(d.tmp, name + ".xml")
    with open(path, "w") as f:
        f.write(domain(name, TICK))
    return ftvm(d, "define", path)[0] == 0 and ftvm(d, "start", name)[0] == 0


def vm_pids(tmp, name):
    """The pids of the `ftvm` processes that run VM name of the daemon in tmp."""
    pids = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ftvm" and any(tmp.encode() in a for a in argv) \
                and any(name.encode() in a for a in argv):
            pids.append(int(p))
    return pids


def stats_call(path, serial):
    c = Client(path)
    c.s.settimeout(60)
    check(c.open(), "a raw client opens its connection")
    c.s.sendall(frame(ALL_STATS, STATS_ARGS, serial=serial))
    return c


tmp = tempfile.mkdtemp(prefix="virt-parked-")
d = Daemon(FTVMD, FTVM, tmp)
stopped = []
try:
    d.start()
    check(define_start(d, "slow"), "VM slow defined and started")
    check(wait_for(lambda: '"running"' in ftvm(d, "dominfo", "slow", "--json")[1], 30), "slow runs")
    check(wait_for(lambda: ftvm(d, "vmstats", "slow", "--json")[0] == 0, 30), "slow's process answers its status")
    stopped = vm_pids(tmp, "slow")
    check(len(stopped) == 1, f"slow's ftvm process found ({stopped})")
    for p in stopped:
        os.kill(p, signal.SIGSTOP)

    # The caller: registered for lifecycle events, then a slow call.
    s = Client(d.vsock)
    s.s.settimeout(60)
    check(s.open(), "the slow caller opens its connection")
    r = s.call(REGISTER_ANY, struct.pack(">i", 0), serial=2)
    check(r and r[5] == 0, "it registers for lifecycle events")
    began = time.monotonic()
    s.s.sendall(frame(ALL_STATS, STATS_ARGS, serial=3))

    (rc, out, err) = d.virsh("list", "--all")
    took = time.monotonic() - began
    check(rc == 0 and "slow" in out and took < 1.0,
          f"virsh list answers within a second while a stats call waits on the VM ({took:.3f} s, {err.strip()!r})")

    results = many_clients(d.vsock, 100)
    check(len(results) == 100 and all(results),
          f"100 clients at once are all answered while a call is slow ({results.count(True)}, "
          f"{time.monotonic() - began:.2f} s after the slow call)")

    # The cap: SLOW_MAX - 1 more slow calls beside the first, then one more is refused as busy.
    waiting = [stats_call(d.vsock, 10 + i) for i in range(SLOW_MAX - 1)]
    extra = stats_call(d.vsock, 50)
    r = extra.read()
    code, msg = error_of(r) if r and r[5] == 1 else (None, "")
    check(r and r[4] == 50 and code == ERR_RESOURCE_BUSY and "busy" in msg,
          f"a slow call past the cap of {SLOW_MAX} is refused as busy ({code}, {msg!r})")
    extra.close()

    # An event for the parked caller: a second VM comes to life meanwhile.
    check(define_start(d, "other"), "VM other defined and started while the calls wait")
    for p in stopped:
        os.kill(p, signal.SIGCONT)
    stopped = []

    frames = []
    while True:
        r = s.read()
        if r is None or r[3] != MESSAGE:
            break
        frames.append(r)
    check(any(f[2] == EVENT_LIFECYCLE for f in frames), f"the parked caller received lifecycle events "
          f"({len(frames)} before its reply)")
    check(r is not None and r[4] == 3 and r[5] == 0 and b"slow" in r[6],
          f"then its stats reply, serial 3, with slow's record ({r and r[:6]})")
    r = s.call(LIST_ALL, struct.pack(">iI", 1, 0), serial=4)
    while r is not None and r[3] == MESSAGE:
        r = s.read()
    check(r is not None and r[4] == 4 and r[5] == 0, "its next call is answered after it")
    s.close()
    for i, c in enumerate(waiting):
        r = c.read()
        check(r is not None and r[4] == 10 + i and r[5] == 0, f"waiting call {10 + i} answered ({r and r[:6]})")
        c.close()
    rc, out, err = d.virsh("domstats", "slow")
    check(rc == 0 and "Domain: 'slow'" in out, f"virsh domstats answers once the VM does ({err.strip()!r})")
    ftvm(d, "destroy", "other")
    ftvm(d, "destroy", "slow")
finally:
    for p in stopped:
        os.kill(p, signal.SIGCONT)
    d.stop()
finish(tmp)
