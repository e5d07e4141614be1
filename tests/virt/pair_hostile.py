#!/usr/bin/env python3
"""pair_hostile.py (virt.pair_hostile) — a pairing peer that holds the key but misbehaves.

One ftvmd with --pair-key and --pair-listen on loopback; pair_probe (pair_probe.c) holds the same key,
so it passes the TLS handshake, and then sends what a daemon never would. Checked:
  - a peer that connects and says nothing delays no other: meanwhile a malformed request (not JSON),
    an oversized one (above PAIRING_MAX_REQUEST), an unknown "op", a "spare" whose definition does
    not load and an "unpair" of a VM the daemon does not have are each refused with their reason,
    within seconds (the silent peer's own wait is 10 s);
  - with PAIRING_SERVERS silent peers connected, one more request is refused at once as busy;
  - the daemon defines nothing, answers `ftvm list` throughout and ends with status 0 on SIGTERM.

usage: pair_hostile.py FTVMD FTVM PAIR_PROBE
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from virt_test import Daemon, check, finish
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ports import free_port  # noqa: E402

FTVMD, FTVM, PROBE = sys.argv[1:4]
SERVERS = 4                       # PAIRING_SERVERS (daemon/pairing.c)
MAX_REQUEST = 2 * 256 * 1024 + 4096   # PAIRING_MAX_REQUEST (daemon/pairing.h)


def names(d):
    r = subprocess.run([FTVM, "list", "--json", "--daemon-socket", os.path.join(d.tmp, "d.sock")],
                       capture_output=True, text=True, timeout=30)
    return [v["name"] for v in json.loads(r.stdout)["vms"]] if r.returncode == 0 else None


tmp = tempfile.mkdtemp(prefix="virt-pairhostile-")
key = os.path.join(tmp, "pair.key")
subprocess.run([FTVM, "keygen", key], check=True, stdout=subprocess.DEVNULL)
addr = f"127.0.0.1:{free_port()}"
d = Daemon(FTVMD, FTVM, tmp, extra=["--pair-key", key, "--pair-listen", addr])
silent = []


def hold():
    """A peer with the key that connects and stays silent."""
    p = subprocess.Popen([PROBE, key, addr, "silent", "40"], stdout=subprocess.PIPE, text=True)
    silent.append(p)
    return p.stdout.readline().strip() == "connected"


def send(payload, tag):
    """payload as one request record: (exit status, the probe's verdict, seconds taken)."""
    path = os.path.join(tmp, tag)
    with open(path, "wb") as f:
        f.write(payload)
    t = time.monotonic()
    r = subprocess.run([PROBE, key, addr, "send", path], capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip(), time.monotonic() - t


try:
    d.start()
    check(hold(), "a silent peer holding the key is connected")
    cases = [
        (b"not json {", "malformed", "a request must be a JSON object"),
        (b"{" + b" " * (MAX_REQUEST + 4096) + b"}", "oversized", f"at most {MAX_REQUEST} bytes"),
        (json.dumps({"op": "format-disk", "path": "/"}).encode(), "unknown", 'unknown request "format-disk"'),
        (json.dumps({"op": "spare", "xml": "<domain", "listen": "127.0.0.1:7999", "from": addr}).encode(),
         "badxml", ""),
        (json.dumps({"op": "unpair", "name": "nosuchvm"}).encode(), "unpair", "nosuchvm"),
        (json.dumps([1, 2, 3]).encode(), "array", "a request must be a JSON object"),
    ]
    for payload, tag, reason in cases:
        rc, verdict, took = send(payload, tag)
        check(rc == 1 and verdict.startswith("refused:") and reason in verdict and took < 8,
              f"{tag} request refused with its reason while a silent peer waits ({took:.2f} s, {verdict[:160]!r})")
        check(names(d) == [], f"... the daemon answers and defines nothing ({tag})")

    for _ in range(SERVERS):
        check(hold(), "another silent peer holding the key is connected")
    verdict = ""
    for _ in range(10):   # the daemon takes each accepted channel a moment after its peer sees it connected
        rc, verdict, took = send(b"{}", "surplus")
        if "busy" in verdict:
            break
        time.sleep(0.3)
    check("busy" in verdict, f"with {SERVERS} silent peers served, one more request is refused as busy ({verdict!r})")
    check(names(d) == [], "the JSON socket answers while the pairing port is busy")
    check(d.alive(), "the daemon is alive")
finally:
    d.stop()
    for p in silent:
        p.kill()
        p.wait()
finish(tmp)
