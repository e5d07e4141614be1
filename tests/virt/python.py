#!/usr/bin/env python3
"""python.py (virt.python) — python3-libvirt, libvirt's own Python binding, against a real ftvmd:
open the connection, define, list, start, read state and info, destroy and undefine a VM, while a
lifecycle callback registered through libvirt's default event loop receives each event.

usage: python.py FTVMD FTVM TICK_ELF   (TICK_ELF "-" or no python3-libvirt: skip, status 77)
"""
import os
import sys
import tempfile
import threading

from virt_test import Daemon, check, domain, finish, wait_for

FTVMD, FTVM, TICK = sys.argv[1:4]
try:
    import libvirt
except ImportError:
    libvirt = None
    # python3-libvirt installs for Debian's python3; another python3 may come first in PATH.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
if TICK == "-" or libvirt is None:
    print("skip: needs the bare-metal tick.elf and python3-libvirt")
    sys.exit(77)

libvirt.virEventRegisterDefaultImpl()
stop_loop = threading.Event()


def run_loop():
    while not stop_loop.is_set():
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=run_loop, daemon=True).start()

tmp = tempfile.mkdtemp(prefix="virt-python-")
d = Daemon(FTVMD, FTVM, tmp)
d.start()
events = []
lock = threading.Lock()


def on_lifecycle(conn, dom, event, detail, opaque):
    with lock:
        events.append((dom.name(), event, detail))


def saw(ev):
    with lock:
        return ev in events


conn = None
try:
    conn = libvirt.open(d.uri)
    check(conn is not None and conn.getType() == "ftvm", "libvirt.open: an ftvm connection")
    cb = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
    check(conn.listAllDomains() == [], "no domains at first")

    dom = conn.defineXML(domain("py1", TICK))
    check(dom.name() == "py1" and len(dom.UUIDString()) == 36, "defineXML returns the domain with a UUID")
    names = [x.name() for x in conn.listAllDomains()]
    check(names == ["py1"], f"listAllDomains: py1 ({names})")
    check(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE) == [], "no active domain yet")
    check(dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN] and not dom.isActive(),
          f"py1 is shut off ({dom.state()})")

    dom.create()
    check(dom.isActive() and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, "create(): py1 runs")
    check(dom.ID() > 0 and conn.lookupByID(dom.ID()).name() == "py1", "lookupByID finds the running py1")
    check(conn.lookupByUUIDString(dom.UUIDString()).name() == "py1", "lookupByUUIDString finds py1")
    info = dom.info()
    check(info[0] == libvirt.VIR_DOMAIN_RUNNING and info[1] == 16384 and info[3] == 1, f"info() ({info})")
    def ft_stats():   # the FT figures appear once the daemon has read the new VM's status
        stats = conn.getAllDomainStats()
        return stats if stats and "ft.icount" in stats[0][1] else None

    stats = wait_for(ft_stats, 20) or conn.getAllDomainStats()
    st = dict(stats[0][1]) if stats else {}
    check(stats and stats[0][0].name() == "py1" and st.get("state.state") == 1 and "ft.icount" in st,
          f"getAllDomainStats: py1's state and FT figures ({st})")

    dom.destroy()
    check(not dom.isActive() and dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED],
          f"destroy(): py1 is shut off, destroyed ({dom.state()})")
    dom.undefine()
    check(conn.listAllDomains() == [], "undefine(): no domains left")
    try:
        conn.lookupByName("py1")
        check(False, "lookupByName of an undefined domain fails")
    except libvirt.libvirtError as e:
        check(e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN, f"lookupByName: VIR_ERR_NO_DOMAIN ({e})")
    try:
        conn.listAllNetworks()
        check(False, "listAllNetworks is not supported")
    except libvirt.libvirtError as e:
        check(e.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT, f"listAllNetworks: VIR_ERR_NO_SUPPORT ({e})")

    L = libvirt
    want = [("py1", L.VIR_DOMAIN_EVENT_DEFINED, L.VIR_DOMAIN_EVENT_DEFINED_ADDED),
            ("py1", L.VIR_DOMAIN_EVENT_STARTED, L.VIR_DOMAIN_EVENT_STARTED_BOOTED),
            ("py1", L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_DESTROYED),
            ("py1", L.VIR_DOMAIN_EVENT_UNDEFINED, L.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED)]
    check(wait_for(lambda: all(saw(w) for w in want), 20), f"the lifecycle callback saw every event ({events})")
    with lock:
        check([e for e in events if e in want] == want, "in order")
    conn.domainEventDeregisterAny(cb)
    conn.close()
    conn = None
    check(d.alive(), "ftvmd is still running")
finally:
    if conn:
        conn.close()
    stop_loop.set()
    d.stop()
finish(tmp)
