#!/usr/bin/env python3
"""pairing_kvd.py (virt.pairing_kvd) — the bundled Linux guest's key-value server protected by FT
pairing between two daemons, and a client's writes across a failover.

An ftvmd in each host namespace of scripts/ft-topology with the same --pair-key; the guest (kvd on
10.77.0.10, a shared disk, the TAP "vmtap" of each host's bridge) is defined and started on A only,
then `ftvm ft enable --vm kvd --host B` through A's daemon. A client in the client namespace writes
unique keys over one TCP connection; A's VM process is killed mid-stream. Checked: B's daemon shows
the VM running there (failed-over), the client's connection never broke, and every acknowledged
write reads back from the guest now running on B.

usage: pairing_kvd.py FTVMD FTVM GUEST_DIR   (not root, no `ip`, no built guest: skip, status 77)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from virt_test import Daemon, check, failures, finish, wait_for

FTVMD, FTVM, GUEST = sys.argv[1:4]
if os.geteuid() != 0 or not shutil.which("ip") or not all(
        os.path.exists(os.path.join(GUEST, f)) for f in ("Image", "initramfs.cpio", "fw_dynamic.bin")):
    print("skip: needs root (network namespaces) and the built guest (guest/build)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TOPOLOGY = os.path.join(HERE, "..", "..", "scripts", "ft-topology")
CLIENT = os.path.join(HERE, "..", "ft", "kvclient.py")
PREFIX = f"vk{os.getpid() % 100000}"
GUEST_IP = "10.77.0.10"


def ftvm(d, *args):
    r = subprocess.run([FTVM, *args, "--daemon-socket", os.path.join(d.tmp, "d.sock")], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def info(d):
    rc, out, _ = ftvm(d, "dominfo", "kvd", "--json")
    return json.loads(out).get("vm", {}) if rc == 0 else {}


def ft_state(d):
    rc, out, _ = ftvm(d, "vmstats", "kvd", "--json")
    return json.loads(out).get("stats", {}).get("ft_state") if rc == 0 else None


def acked(logfile):
    if not os.path.exists(logfile):
        return 0
    with open(logfile) as f:
        return sum(1 for line in f if line.strip())


def console(d):
    try:
        with open(os.path.join(d.tmp, "state", "run", "kvd.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


tmp = tempfile.mkdtemp(prefix="virt-pairing-kvd-")
subprocess.run([TOPOLOGY, "up", PREFIX], check=True, stdout=subprocess.DEVNULL)
key, chkey, arb, disk = (os.path.join(tmp, f) for f in ("pair.key", "channel.key", "arb", "disk.img"))
for k in (key, chkey):
    subprocess.run([FTVM, "keygen", k], check=True, stdout=subprocess.DEVNULL)
with open(arb, "wb") as f:
    f.truncate(1 << 20)
with open(disk, "wb") as f:
    f.truncate(64 << 20)
subprocess.run([FTVM, "arbiter", "init", arb, "--vm", "kvd"], check=True, stdout=subprocess.DEVNULL)
XML = f"""<domain type='qemu'><name>kvd</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
<metadata><ftvm:ft xmlns:ftvm='urn:x-ftvm:ft:1' arbiter='{arb}' channel-key='{chkey}' disk-mode='shared'
 timeout-ms='500' heartbeat-ms='100'/></metadata>
<os><type arch='riscv64' machine='virt'>hvm</type><loader>{GUEST}/fw_dynamic.bin</loader>
<kernel>{GUEST}/Image</kernel><initrd>{GUEST}/initramfs.cpio</initrd>
<cmdline>console=ttyS0 panic=1 ftvm.workload=kvd ip={GUEST_IP}::10.77.0.1:255.255.255.0::eth0:off</cmdline></os>
<devices><disk type='file' device='disk'><source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
<interface type='bridge'><source bridge='vmbr'/><target dev='vmtap'/><mac address='52:54:00:12:34:56'/>
<model type='virtio'/></interface></devices></domain>
"""
hosts = {}
writer = None
try:
    for h, addr in (("a", "10.78.0.1"), ("b", "10.78.0.2")):
        os.makedirs(os.path.join(tmp, h))
        hosts[h] = Daemon(FTVMD, FTVM, os.path.join(tmp, h), netns=f"{PREFIX}-{h}",
                          extra=["--pair-key", key, "--pair-listen", f"{addr}:7801"])
        hosts[h].start()
    a, b = hosts["a"], hosts["b"]
    path = os.path.join(tmp, "kvd.xml")
    with open(path, "w") as f:
        f.write(XML)
    rc, _, err = ftvm(a, "define", path)
    check(rc == 0 and ftvm(a, "start", "kvd")[0] == 0, f"kvd defined and started on A ({err.strip()!r})")
    check(wait_for(lambda: "ftvm-guest: ready" in console(a), 120), "the guest is ready on A")
    rc, _, err = ftvm(a, "ft", "enable", "--vm", "kvd", "--host", "10.78.0.2:7801")
    check(rc == 0, f"ftvm ft enable --host B ({err.strip()!r})")
    check(wait_for(lambda: ft_state(a) == 1, 120), "the pair is protected")

    logfile, stopfile = os.path.join(tmp, "acked.txt"), os.path.join(tmp, "stop")
    writer = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}-cl", "python3", CLIENT, "write", GUEST_IP,
                               "--count", "1000000", "--delay-ms", "4", "--log", logfile, "--stop-file", stopfile],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(wait_for(lambda: acked(logfile) > 50, 60), "the client's writes are acknowledged")
    with open(os.path.join(a.tmp, "state", "run", "kvd.pid")) as f:
        os.kill(int(f.read().split()[0]), signal.SIGKILL)
    before = acked(logfile)
    check(wait_for(lambda: info(b).get("reason") == "failed-over", 60), f"B's daemon shows kvd running there ({info(b)})")
    check(wait_for(lambda: acked(logfile) > before + 50, 60), "writes go on against B")
    open(stopfile, "w").close()
    out, err = writer.communicate(timeout=120)
    summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    check(writer.returncode == 0 and summary.get("reconnects") == 0, f"the client's connection held: {summary} {err[-500:]}")
    v = subprocess.run(["ip", "netns", "exec", f"{PREFIX}-cl", "python3", CLIENT, "verify", GUEST_IP, "--log", logfile],
                       capture_output=True, text=True, timeout=120)
    res = json.loads(v.stdout.strip().splitlines()[-1]) if v.stdout.strip() else {}
    check(v.returncode == 0 and res.get("verified") == summary.get("acked"),
          f"every acknowledged write reads back from B: {res} of {summary.get('acked')} {v.stderr[-500:]}")
    print(json.dumps({"acked": summary.get("acked"), "longest_gap_s": summary.get("max_gap_s")}), flush=True)
finally:
    if writer and writer.poll() is None:
        writer.kill()
        writer.wait()
    for h, d in hosts.items():
        if failures:   # what the VM's process and the daemon said, before the directory goes
            print(f"--- host {h}: kvd.log (end)\n{console(d)[-3000:]}\n--- ftvmd.log (end)\n{d.log_text()[-2000:]}")
        ftvm(d, "destroy", "kvd")
        d.stop()
    subprocess.run([TOPOLOGY, "down", PREFIX], stdout=subprocess.DEVNULL)
finish(tmp)
