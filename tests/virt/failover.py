#!/usr/bin/env python3
"""failover.py (virt.failover) — an FT pair managed with the real virsh on two hosts: an ftvmd in
each host namespace of scripts/ft-topology (host A 10.78.0.1, host B 10.78.0.2 on the logging
link), the pair's halves defined and started with `virsh define` / `virsh start` on each host, both
seen running in `virsh list`, the FT figures in `virsh domstats`; then A's primary destroyed, and
`virsh event --loop --all` on B shows the VM resuming there ("Resumed Migrated"), `virsh domstate
--reason` on B says "running (migrated)", python-libvirt on B receives the same event
(RESUMED, detail MIGRATED), and `virsh domstats` on B counts the failover.

usage: failover.py FTVMD FTVM TICK_ELF   (not root, no `ip`, TICK_ELF "-" or no virsh: skip, status 77)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from virt_test import Daemon, check, domain, finish, ft_metadata, wait_for

FTVMD, FTVM, TICK = sys.argv[1:4]
if TICK == "-" or os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("virsh"):
    print("skip: needs root (network namespaces), the bare-metal tick.elf and virsh")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TOPOLOGY = os.path.join(HERE, "..", "..", "scripts", "ft-topology")
PREFIX = f"vt{os.getpid() % 100000}"
PORT = 7711
# python-libvirt (Debian's python3 has it) printing each lifecycle event as "NAME EVENT DETAIL".
PY_WATCH = """
import sys, libvirt
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                            lambda c, d, e, x, o: print(d.name(), e, x, flush=True), None)
print("registered", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
"""

tmp = tempfile.mkdtemp(prefix="virt-failover-")
subprocess.run([TOPOLOGY, "up", PREFIX], check=True, stdout=subprocess.DEVNULL)
hosts = {}
watchers = []
try:
    for h in ("a", "b"):
        os.makedirs(os.path.join(tmp, h))
        hosts[h] = Daemon(FTVMD, FTVM, os.path.join(tmp, h), netns=f"{PREFIX}-{h}")
        hosts[h].start()
    a, b = hosts["a"], hosts["b"]
    ft = ft_metadata(FTVM, tmp, "pair")
    for d, half in ((b, f"listen='10.78.0.2:{PORT}'"), (a, f"peer='10.78.0.2:{PORT}'")):
        xml = os.path.join(d.tmp, "pair.xml")
        with open(xml, "w") as f:
            f.write(domain("pair", TICK, ft % half))
        rc, out, err = d.virsh("define", xml)
        check(rc == 0, f"virsh define on host {d.netns} ({err.strip()!r})")

    events = subprocess.Popen(["virsh", "-c", b.uri, "event", "--loop", "--all"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    watchers.append(events)
    os.set_blocking(events.stdout.fileno(), False)
    pywatch = None
    if os.path.exists("/usr/bin/python3"):
        pywatch = subprocess.Popen(["/usr/bin/python3", "-c", PY_WATCH, b.uri], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        watchers.append(pywatch)
        check(pywatch.stdout.readline().strip() == "registered", "python-libvirt registers for events on B")
        os.set_blocking(pywatch.stdout.fileno(), False)
    rc, out, err = b.virsh("start", "pair")
    check(rc == 0, f"virsh start on B: the backup ({err.strip()!r})")
    check(wait_for(lambda: os.path.exists(os.path.join(b.tmp, "state", "run", "pair.sock")), 20), "the backup listens")
    rc, out, err = a.virsh("start", "pair")
    check(rc == 0, f"virsh start on A: the primary ({err.strip()!r})")
    for d in (a, b):
        rc, out, _ = d.virsh("list")
        check(re.search(r"^\s*\d+\s+pair\s+running\s*$", out, re.M), f"virsh list on {d.netns}: pair running ({out!r})")

    def ft_state(d):
        rc, out, _ = d.virsh("domstats", "pair")
        m = re.search(r"ft\.ft_state=(\d+)", out)
        return int(m.group(1)) if m else None

    check(wait_for(lambda: ft_state(a) == 1, 30), "virsh domstats on A: ft.ft_state=1 (protected)")

    rc, out, err = a.virsh("destroy", "pair")
    check(rc == 0, "virsh destroy on A: the primary is gone")
    check(wait_for(lambda: b.virsh("domstate", "--reason", "pair")[1].strip() == "running (migrated)", 60),
          "virsh domstate --reason on B: running (migrated)")
    seen = []

    def failover_seen():
        try:
            seen.extend(x for x in events.stdout.read().splitlines() if x)
        except TypeError:
            pass
        return any("for domain 'pair': Resumed Migrated" in x for x in seen)

    check(wait_for(failover_seen, 30), f"virsh event --loop --all on B shows the failover ({seen})")
    if pywatch:
        py_seen = []

        def py_failover():
            try:
                py_seen.extend(pywatch.stdout.read().splitlines())
            except TypeError:
                pass
            return "pair 4 1" in py_seen   # VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_MIGRATED

        check(wait_for(py_failover, 30), f"python-libvirt on B receives the failover: RESUMED/MIGRATED ({py_seen})")
    rc, out, _ = b.virsh("domstats", "pair")
    check(re.search(r"^\s*ft\.failovers=1$", out, re.M) and re.search(r"ft\.last_failover_gap_ms=[0-9.]+", out),
          f"virsh domstats on B: ft.failovers=1 and the failover's gap ({out!r})")
    rc, out, _ = a.virsh("domstate", "--reason", "pair")
    check(out.strip() == "shut off (destroyed)", f"virsh domstate on A: shut off (destroyed) ({out.strip()!r})")
    for d in (a, b):
        check(d.alive(), f"ftvmd on {d.netns} is still running")
finally:
    for w in watchers:
        w.kill()
        w.wait()
    for d in hosts.values():
        d.virsh("destroy", "pair")
        d.stop()
    subprocess.run([TOPOLOGY, "down", PREFIX], stdout=subprocess.DEVNULL)
finish(tmp)
