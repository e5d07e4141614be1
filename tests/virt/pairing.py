#!/usr/bin/env python3
"""pairing.py (virt.pairing) — FT pairing daemon to daemon, and autostart, on two namespace hosts.

An ftvmd in each host namespace of scripts/ft-topology (A 10.78.0.1, B 10.78.0.2), both with the same
--pair-key and --pair-listen on the logging link. The VM ("pair", the bare-metal tick.elf, FT settings
without peer or listen) is defined and started on A only. Checked:
  - a third daemon holding another key asks B for a spare: refused, B defines and starts nothing,
    B's log names the failed authentication; a peer that connects to B's pairing port and says
    nothing meanwhile blocks no one; a VM without FT settings is refused by B with the reason;
  - `ftvm ft enable --vm pair --host B` through A's daemon: B defines the VM (same UUID, marked as
    the backup half, listen on B's spare port) and runs its spare; the pair becomes protected;
  - A's VM process killed: B's daemon shows the VM running there (failed-over), alone;
  - the returning host joins as a spare again when B's daemon is told (`ft enable --host A`): the
    pair is protected again, now with its primary on B;
  - `ftvm ft disable` through B's daemon: the VM runs on alone on B, the half on A is removed;
  - autostart: a VM defined with `ftvm define --autostart` is started by the next daemon, and a VM
    already running is not started twice (`virsh autostart` marks one too);
  - a transient VM (`virsh create`): running, not persistent, found by a restarted daemon, gone
    from the table with its definition once destroyed.

usage: pairing.py FTVMD FTVM TICK_ELF   (not root, no `ip`, TICK_ELF "-": skip, status 77)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from virt_test import Daemon, check, domain, finish, ft_metadata, wait_for

FTVMD, FTVM, TICK = sys.argv[1:4]
if TICK == "-" or os.geteuid() != 0 or not shutil.which("ip"):
    print("skip: needs root (network namespaces) and the bare-metal tick.elf")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TOPOLOGY = os.path.join(HERE, "..", "..", "scripts", "ft-topology")
PREFIX = f"vp{os.getpid() % 100000}"
ADDR = {"a": "10.78.0.1", "b": "10.78.0.2"}
PAIR_PORT, SPARE, METRICS_PORT = 7801, 7721, 9111   # the same spare port on both hosts: B's half names A's as its way back


def ftvm(d, *args):
    r = subprocess.run([FTVM, *args, "--daemon-socket", os.path.join(d.tmp, "d.sock")], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def info(d, name):
    rc, out, _ = ftvm(d, "dominfo", name, "--json")
    return json.loads(out).get("vm", {}) if rc == 0 else {}


def ft_state(d, name):
    rc, out, _ = ftvm(d, "vmstats", name, "--json")
    return json.loads(out).get("stats", {}).get("ft_state") if rc == 0 else None


def names(d):
    rc, out, _ = ftvm(d, "list", "--json")
    return [v["name"] for v in json.loads(out)["vms"]] if rc == 0 else None


def scrape(h):
    """Host h's daemon's /metrics, fetched inside its namespace."""
    r = subprocess.run(["ip", "netns", "exec", f"{PREFIX}-{h}", "python3", "-c",
                        "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
                        f"http://{ADDR[h]}:{METRICS_PORT}/metrics"], capture_output=True, text=True, timeout=30)
    return r.stdout


def define(d, name, xml, *opts):
    path = os.path.join(d.tmp, name + ".xml")
    with open(path, "w") as f:
        f.write(xml)
    return ftvm(d, "define", path, *opts)


tmp = tempfile.mkdtemp(prefix="virt-pairing-")
subprocess.run([TOPOLOGY, "up", PREFIX], check=True, stdout=subprocess.DEVNULL)
key, wrong = os.path.join(tmp, "pair.key"), os.path.join(tmp, "wrong.key")
for k in (key, wrong):
    subprocess.run([FTVM, "keygen", k], check=True, stdout=subprocess.DEVNULL)
hosts = {}
silent = None
try:
    for h in ("a", "b"):
        os.makedirs(os.path.join(tmp, h))
        hosts[h] = Daemon(FTVMD, FTVM, os.path.join(tmp, h), netns=f"{PREFIX}-{h}",
                          extra=["--pair-key", key, "--pair-listen", f"{ADDR[h]}:{PAIR_PORT}",
                                 "--metrics", f"{ADDR[h]}:{METRICS_PORT}"])
        hosts[h].start()
    a, b = hosts["a"], hosts["b"]
    os.makedirs(os.path.join(tmp, "c"))
    c = Daemon(FTVMD, FTVM, os.path.join(tmp, "c"), netns=f"{PREFIX}-a", extra=["--pair-key", wrong])
    c.start()
    hosts["c"] = c

    ft = ft_metadata(FTVM, tmp, "pair") % ""
    xml = domain("pair", TICK, ft)
    rc, _, err = define(a, "pair", xml)
    check(rc == 0, f"pair defined on A ({err.strip()!r})")
    check(ftvm(a, "start", "pair")[0] == 0, "pair started on A")
    check(wait_for(lambda: info(a, "pair").get("ft_role") == "alone", 30), f"A runs pair alone: {info(a, 'pair')}")

    # A peer that connects to B's pairing port and says nothing, held open during what follows.
    silent = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}-a", "python3", "-c",
                               "import socket,sys,time; s=socket.create_connection((sys.argv[1], int(sys.argv[2])));"
                               "print('connected', flush=True); time.sleep(60)", ADDR["b"], str(PAIR_PORT)],
                              stdout=subprocess.PIPE, text=True)
    check(silent.stdout.readline().strip() == "connected", "a silent peer holds a connection to B's pairing port")

    # The wrong key: refused, nothing defined or started on B.
    rc, _, err = define(c, "intruder", domain("intruder", TICK, ft))
    check(rc == 0 and ftvm(c, "start", "intruder")[0] == 0, "a VM runs under the daemon with the wrong key")
    rc, _, err = ftvm(c, "ft", "enable", "--vm", "intruder", "--host", f"{ADDR['b']}:{PAIR_PORT}",
                      "--spare-port", str(SPARE))
    check(rc == 1 and "cannot reach the daemon" in err, f"ft enable with the wrong key fails ({err.strip()!r})")
    check(names(b) == [], f"B defined nothing ({names(b)})")
    check(wait_for(lambda: "failed authentication" in b.log_text(), 10), "B's log tells the failed authentication")
    ftvm(c, "destroy", "intruder")

    # A VM without FT settings: B refuses its definition, nothing is left there.
    rc, _, err = define(a, "plain", domain("plain", TICK))
    check(rc == 0 and ftvm(a, "start", "plain")[0] == 0, "a VM without FT settings runs on A")
    rc, _, err = ftvm(a, "ft", "enable", "--vm", "plain", "--host", f"{ADDR['b']}:{PAIR_PORT}")
    check(rc == 1 and "<ftvm:ft>" in err, f"ft enable of it is refused by B with the reason ({err.strip()!r})")
    check(names(b) == [] and info(a, "plain").get("ft_role") == "off", "nothing defined on B, plain runs on unpaired")
    ftvm(a, "destroy", "plain")
    ftvm(a, "undefine", "plain")

    # Pairing: A asks B for a spare, then clones to it.
    rc, _, err = ftvm(a, "ft", "enable", "--vm", "pair", "--host", f"{ADDR['b']}:{PAIR_PORT}",
                      "--spare-port", str(SPARE))
    check(rc == 0, f"ftvm ft enable --host B through A's daemon ({err.strip()!r})")
    ib, ia = info(b, "pair"), info(a, "pair")
    check(ib.get("uuid") == ia.get("uuid") and ib.get("uuid"), f"B defined pair with A's UUID ({ib})")
    rc, out, _ = ftvm(b, "dumpxml", "pair")
    check(f"listen=\"{ADDR['b']}:{SPARE}\"" in out and "peer=" not in out and f"spares=\"{ADDR['a']}:{SPARE}\"" in out,
          "B's half listens on B's spare port, its way back is A's")
    check(wait_for(lambda: ft_state(a, "pair") == 1, 60), "the pair is protected (ft_state 1 on A)")
    check(wait_for(lambda: info(b, "pair").get("ft_role") == "backup", 20), f"B runs the backup: {info(b, 'pair')}")
    check(info(a, "pair").get("ft_role") == "primary", f"A runs the primary: {info(a, 'pair')}")
    text = scrape("a")
    check('ftvm_clones_total{vm="pair",role="primary"} 1\n' in text and
          'ftvm_clone_phase{vm="pair",role="primary",phase="completed"} 1\n' in text and
          'ftvm_clone_transferred_bytes{vm="pair",role="primary"} ' in text,
          "A's metrics show the clone done: ftvm_clones_total 1, phase completed, its bytes")
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0, f"promtool check metrics: {(r.stdout + r.stderr).strip() or 'clean'}")
    silent.kill()
    silent.wait()

    # Failover: A's VM process killed.
    with open(os.path.join(a.tmp, "state", "run", "pair.pid")) as f:
        os.kill(int(f.read().split()[0]), signal.SIGKILL)
    check(wait_for(lambda: info(b, "pair").get("reason") == "failed-over", 60),
          f"B's daemon shows pair running there after the failover ({info(b, 'pair')})")
    check(info(b, "pair").get("state") == "running" and wait_for(lambda: info(b, "pair").get("ft_role") == "alone"),
          "running alone on B")
    rc, out, _ = ftvm(b, "events")
    check("pair resumed (failed-over)" in out, "B's events show the failover")
    check(wait_for(lambda: info(a, "pair").get("state") == "crashed", 20), f"A shows its process gone ({info(a, 'pair')})")

    # The returning host joins as a spare when B's daemon is told.
    rc, _, err = ftvm(b, "ft", "enable", "--vm", "pair", "--host", f"{ADDR['a']}:{PAIR_PORT}",
                      "--spare-port", str(SPARE))
    check(rc == 0, f"ftvm ft enable --host A through B's daemon ({err.strip()!r})")
    check(wait_for(lambda: ft_state(b, "pair") == 1, 60), "protected again, the primary on B")
    check(wait_for(lambda: info(a, "pair").get("ft_role") == "backup", 20), f"A runs the backup: {info(a, 'pair')}")

    # FT off through B's daemon: the half on A is removed, B runs on alone.
    rc, _, err = ftvm(b, "ft", "disable", "--vm", "pair")
    check(rc == 0, f"ftvm ft disable through B's daemon ({err.strip()!r})")
    check(names(a) == [], f"A's half is gone ({names(a)})")
    check(wait_for(lambda: info(b, "pair").get("ft_role") == "alone", 20), "B runs pair alone")

    # Autostart across a daemon restart.
    rc, _, err = define(a, "auto", domain("auto", TICK), "--autostart")
    check(rc == 0 and info(a, "auto").get("autostart") is True, f"auto defined with --autostart ({err.strip()!r})")
    rc, out, err = b.virsh("autostart", "pair")
    check(rc == 0 and info(b, "pair").get("autostart"), f"pair marked autostart on B by virsh autostart ({err.strip()!r})")
    check(re.search(r"^Autostart:\s+enable$", b.virsh("dominfo", "pair")[1], re.M), "virsh dominfo on B: Autostart enable")
    running_id = info(b, "pair").get("id")
    for d in (a, b):
        d.stop()
        d.start()
    check(wait_for(lambda: info(a, "auto").get("state") == "running", 20), f"the restarted daemon started auto ({info(a, 'auto')})")
    check(info(b, "pair").get("id") == running_id, "B's running pair was found, not started again")
    check(ftvm(a, "destroy", "auto")[0] == 0 and ftvm(a, "autostart", "auto", "--disable")[0] == 0, "auto destroyed, unmarked")
    a.stop()
    a.start()
    check(wait_for(lambda: bool(info(a, "auto")), 10) and info(a, "auto").get("state") == "shutoff",
          "unmarked, it stays shut off")

    # A transient VM (virsh create): running at once, not persistent, found by a restarted daemon,
    # gone with its process.
    path = os.path.join(a.tmp, "temp.xml")
    with open(path, "w") as f:
        f.write(domain("temp", TICK))
    rc, out, err = a.virsh("create", path)
    check(rc == 0 and info(a, "temp").get("state") == "running", f"virsh create: temp runs ({err.strip()!r})")
    check(re.search(r"^Persistent:\s+no$", a.virsh("dominfo", "temp")[1], re.M), "virsh dominfo: Persistent no")
    rc, _, err = ftvm(a, "autostart", "temp")
    check(rc == 1 and "transient" in err, f"a transient VM cannot be marked autostart ({err.strip()!r})")
    temp_id = info(a, "temp").get("id")
    a.stop()
    a.start()
    check(info(a, "temp").get("id") == temp_id and info(a, "temp").get("persistent") is False,
          f"the restarted daemon found the transient VM ({info(a, 'temp')})")
    check(a.virsh("destroy", "temp")[0] == 0, "virsh destroy temp")
    check(wait_for(lambda: "temp" not in (names(a) or ["temp"]), 10), f"temp is gone from the table ({names(a)})")
    check(not os.path.exists(os.path.join(a.tmp, "state", "run", "temp.xml")), "and its definition with it")
    for d in (a, b, c):
        check(d.alive(), "ftvmd is still running")
finally:
    if silent and silent.poll() is None:
        silent.kill()
        silent.wait()
    for d in hosts.values():
        for vm in ("pair", "intruder", "auto", "plain", "temp"):
            ftvm(d, "destroy", vm)
        d.stop()
    subprocess.run([TOPOLOGY, "down", PREFIX], stdout=subprocess.DEVNULL)
finish(tmp)
