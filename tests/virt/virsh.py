#!/usr/bin/env python3
"""virsh.py (virt.virsh) — the real `virsh` (Debian's libvirt-clients) against a real ftvmd over
libvirt's RPC protocol, each command checked by its output and by what the daemon then reports:
version, hostname, nodeinfo, define, list --all, dominfo, domstate, domid, domuuid, dumpxml, start,
suspend, resume, domstats (with the FT figures), shutdown, destroy, undefine, and their refusals
(start twice, undefine while running, destroy when shut off, broken XML); `virsh event --loop
--all` sees each lifecycle event; a procedure ftvmd does not serve answers "not supported".

usage: virsh.py FTVMD FTVM TICK_ELF   (TICK_ELF "-" or no virsh: skip, status 77)
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from virt_test import Daemon, check, domain, finish, wait_for

FTVMD, FTVM, TICK = sys.argv[1:4]
if TICK == "-" or not shutil.which("virsh"):
    print("skip: needs the bare-metal tick.elf and virsh")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="virt-virsh-")
d = Daemon(FTVMD, FTVM, tmp)
d.start()
events = subprocess.Popen(["virsh", "-c", d.uri, "event", "--loop", "--all"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
try:
    rc, out, err = d.virsh("version")
    check(rc == 0 and "Using API: ftvm 9.0.0" in out and "Running hypervisor: ftvm 0.1.0" in out,
          f"virsh version names ftvm ({out.strip()!r} {err.strip()!r})")
    rc, out, _ = d.virsh("hostname")
    check(rc == 0 and out.strip() == socket.gethostname(), f"virsh hostname: this host's ({out.strip()!r})")
    rc, out, _ = d.virsh("nodeinfo")
    cpus = re.search(r"CPU\(s\):\s+(\d+)", out)
    check(rc == 0 and cpus and int(cpus.group(1)) == os.cpu_count() and "Memory size:" in out,
          f"virsh nodeinfo shows this host's {os.cpu_count()} CPUs ({out.strip()!r})")

    xml = os.path.join(tmp, "vm1.xml")
    with open(xml, "w") as f:
        f.write(domain("vm1", TICK))
    rc, out, err = d.virsh("define", xml)
    check(rc == 0 and "Domain 'vm1' defined" in out, f"virsh define ({out.strip()!r} {err.strip()!r})")
    rc, out, _ = d.virsh("list", "--all")
    check(rc == 0 and re.search(r"^\s*-\s+vm1\s+shut off\s*$", out, re.M), f"list --all: vm1 shut off ({out!r})")
    rc, out, _ = d.virsh("list")
    check(rc == 0 and "vm1" not in out, "list (active only) leaves out the shut-off vm1")
    rc, out, _ = d.virsh("dominfo", "vm1")
    uuid = re.search(r"UUID:\s+([0-9a-f-]{36})", out)
    check(rc == 0 and uuid and re.search(r"State:\s+shut off", out) and re.search(r"Max memory:\s+16384 KiB", out)
          and re.search(r"Persistent:\s+yes", out) and re.search(r"OS Type:\s+hvm", out),
          f"dominfo vm1 ({out!r})")
    rc, out, _ = d.virsh("dumpxml", "vm1")
    check(rc == 0 and "<name>vm1</name>" in out and uuid and uuid.group(1) in out and TICK in out,
          "dumpxml vm1 is its definition with its UUID")
    rc, out, _ = d.virsh("domstate", "vm1")
    check(rc == 0 and out.strip() == "shut off", f"domstate vm1: shut off ({out.strip()!r})")

    rc, out, err = d.virsh("start", "vm1")
    check(rc == 0 and "Domain 'vm1' started" in out, f"start vm1 ({out.strip()!r} {err.strip()!r})")
    rc, out, _ = d.virsh("list")
    m = re.search(r"^\s*(\d+)\s+vm1\s+running\s*$", out, re.M)
    check(rc == 0 and m, f"list: vm1 running with an id ({out!r})")
    if m:
        rc, out, _ = d.virsh("dominfo", m.group(1))
        check(rc == 0 and re.search(r"Name:\s+vm1", out), "dominfo by id finds vm1")
    rc, out, err = d.virsh("start", "vm1")
    check(rc == 1 and "already active" in err, f"start of a running VM: already active ({err.strip()!r})")
    rc, out, _ = d.virsh("domid", "vm1")
    check(rc == 0 and m and out.strip() == m.group(1), f"domid vm1: {out.strip()!r}")
    rc, out, _ = d.virsh("domuuid", "vm1")
    check(rc == 0 and uuid and out.strip() == uuid.group(1), f"domuuid vm1: {out.strip()!r}")
    rc, out, _ = d.virsh("domstate", "--reason", "vm1")
    check(rc == 0 and out.strip() == "running (booted)", f"domstate --reason: running (booted) ({out.strip()!r})")

    def instructions():
        rc, out, _ = d.virsh("domstats", "vm1")
        m = re.search(r"ft\.instructions=(\d+)", out)
        return int(m.group(1)) if rc == 0 and m else 0

    def domstats_with_ft():   # the FT figures appear once the daemon has read the new VM's status
        r = d.virsh("domstats", "vm1")
        return r if "ft.icount=" in r[1] else None

    rc, out, _ = wait_for(domstats_with_ft, 20) or d.virsh("domstats", "vm1")
    check(rc == 0 and "Domain: 'vm1'" in out and "state.state=1" in out and "ft.icount=" in out,
          f"domstats vm1: state and FT figures ({out!r})")
    first = instructions()
    check(wait_for(lambda: instructions() > first, 20), "domstats: the guest's instruction count grows")
    rc, out, _ = d.virsh("domstats")
    check(rc == 0 and "Domain: 'vm1'" in out, "domstats without a name covers every VM")
    rc, out, _ = d.virsh("domstats", "--state", "vm1")
    check(rc == 0 and "state.state=1" in out and "ft." not in out and "cpu.time" not in out,
          f"domstats --state: only the state group ({out!r})")

    rc, out, _ = d.virsh("suspend", "vm1")
    check(rc == 0 and "suspended" in out, "suspend vm1")
    rc, out, _ = d.virsh("domstate", "--reason", "vm1")
    check(out.strip() == "paused (user)", f"domstate: paused (user) ({out.strip()!r})")
    held = instructions()
    time.sleep(0.5)
    check(instructions() == held, "a suspended VM retires no instructions")
    rc, out, _ = d.virsh("resume", "vm1")
    check(rc == 0 and "resumed" in out, "resume vm1")
    check(wait_for(lambda: instructions() > held, 20), "the resumed VM runs on")

    rc, out, err = d.virsh("undefine", "vm1")
    check(rc == 1 and "stop it before undefining it" in err, f"undefine of a running VM is refused ({err.strip()!r})")

    rc, out, err = d.virsh("shutdown", "vm1")
    check(rc == 0 and "is being shutdown" in out, f"shutdown vm1 ({out.strip()!r} {err.strip()!r})")
    check(wait_for(lambda: d.virsh("domstate", "vm1")[1].strip() == "shut off", 30), "vm1 shuts off after shutdown")
    rc, out, err = d.virsh("destroy", "vm1")
    check(rc == 1 and "not running" in err, f"destroy of a shut-off VM is a clear error ({err.strip()!r})")
    rc, out, err = d.virsh("start", "vm1")
    check(rc == 0, "vm1 starts again")
    rc, out, err = d.virsh("destroy", "vm1")
    check(rc == 0 and "destroyed" in out, f"destroy vm1 ({out.strip()!r} {err.strip()!r})")
    rc, out, _ = d.virsh("domstate", "--reason", "vm1")
    check(out.strip() == "shut off (destroyed)", f"domstate: shut off (destroyed) ({out.strip()!r})")
    rc, out, err = d.virsh("undefine", "vm1")
    check(rc == 0 and "undefined" in out, f"undefine vm1 ({out.strip()!r} {err.strip()!r})")
    rc, out, _ = d.virsh("list", "--all")
    check(rc == 0 and "vm1" not in out, "list --all: vm1 is gone")

    rc, out, err = d.virsh("dominfo", "nosuch")
    check(rc == 1 and "failed to get domain 'nosuch'" in err, f"dominfo of an unknown VM fails ({err.strip()!r})")
    rc, out, err = d.virsh("net-list")
    check(rc == 1 and "not supported" in err, f"a procedure ftvmd does not serve: 'not supported' ({err.strip()!r})")
    bad = os.path.join(tmp, "bad.xml")
    with open(bad, "w") as f:
        f.write("<domain><name>x</nam")
    rc, out, err = d.virsh("define", bad)
    check(rc == 1 and "error" in err, f"define of broken XML is refused ({err.strip()!r})")

    want = ["Defined Added", "Started Booted", "Suspended Paused", "Resumed Unpaused", "Stopped Shutdown",
            "Started Booted", "Stopped Destroyed", "Undefined Removed"]
    seen = []

    def got_all():
        seen.extend(line for line in os.read(events.stdout.fileno(), 65536).decode().splitlines() if line)
        got = [line.split(": ", 1)[1] for line in seen if "for domain 'vm1'" in line]
        it = iter(got)
        return all(w in it for w in want)   # in this order, others (a redefine) may come between

    os.set_blocking(events.stdout.fileno(), False)
    check(wait_for(lambda: got_all() if events.poll() is None else False, 20) or False,
          f"virsh event --loop --all shows every lifecycle event in order ({seen})")
    check(d.alive(), "ftvmd is still running")
finally:
    events.kill()
    events.wait()
    d.stop()
finish(tmp)
