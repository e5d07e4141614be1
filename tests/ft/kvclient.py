#!/usr/bin/env python3
"""kvclient.py — a client of the bundled guest's key-value server (kvd, TCP port 7000) that keeps
account of every acknowledged write, for the FT tests and benchmarks.

Protocol (guest/README.md): "SET key value" -> "OK", "GET key" -> "VALUE value" | "NONE".

Used as a module by the tests, or standalone:
  kvclient.py write HOST --count N [--delay-ms D] [--prefix P] [--log FILE] [--stop-file F]
      writes unique keys over one connection (stopping early once F exists), reconnecting only
      when it must, and prints a JSON summary (acknowledged writes, reconnects, the longest gap
      between two replies);
  kvclient.py verify HOST --log FILE
      reads back every acknowledged write listed in FILE and fails on any missing or wrong value.
"""
import argparse
import json
import os
import random
import socket
import sys
import time

PORT = 7000


class KvConnection:
    def __init__(self, host, port=PORT, timeout=10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.buf = b""
        self.connects = 0

    def connect(self, deadline):
        while True:
            try:
                s = socket.create_connection((self.host, self.port), timeout=2.0)
                s.settimeout(self.timeout)
                self.sock, self.buf = s, b""
                self.connects += 1
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def request(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n", 1)
        return reply.decode()


def write_keys(host, count, delay_ms=0, prefix="k", log=None, give_up_s=60.0, stop=None):
    """Writes prefix-i = v-i for i in range(count). Returns a summary dict; every key acknowledged
    with OK is appended to `log` (a file object) before the next request."""
    conn = KvConnection(host)
    conn.connect(time.monotonic() + give_up_s)
    acked, reconnects, max_gap, last_reply = [], 0, 0.0, time.monotonic()
    i = 0
    while i < count and not (stop and stop()):
        key, value = f"{prefix}{i}", f"v{i}-{random.randrange(1 << 30)}"
        try:
            reply = conn.request(f"SET {key} {value}")
        except (OSError, ConnectionError):
            # The write may or may not have happened; it is not acknowledged, so it is not counted.
            conn.close()
            reconnects += 1
            conn.connect(time.monotonic() + give_up_s)
            continue
        now = time.monotonic()
        max_gap = max(max_gap, now - last_reply)
        last_reply = now
        if reply != "OK":
            raise RuntimeError(f"SET {key}: unexpected reply {reply!r}")
        acked.append((key, value))
        if log:
            log.write(f"{key} {value}\n")
            log.flush()
        i += 1
        if delay_ms:
            time.sleep(random.uniform(0, 2 * delay_ms) / 1000.0)
    conn.close()
    return {"acked": len(acked), "reconnects": reconnects, "max_gap_s": round(max_gap, 4),
            "connections": conn.connects}


def verify_keys(host, pairs, give_up_s=60.0):
    """Reads every (key, value) back; returns the list of mismatches."""
    conn = KvConnection(host)
    conn.connect(time.monotonic() + give_up_s)
    bad = []
    for key, value in pairs:
        reply = conn.request(f"GET {key}")
        if reply != f"VALUE {value}":
            bad.append((key, value, reply))
    conn.close()
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "verify"])
    ap.add_argument("host")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--delay-ms", type=float, default=0)
    ap.add_argument("--prefix", default="k")
    ap.add_argument("--log")
    ap.add_argument("--stop-file", help="write: stop early once this file exists")
    a = ap.parse_args()
    if a.mode == "write":
        stop = (lambda: os.path.exists(a.stop_file)) if a.stop_file else None
        with open(a.log, "a") if a.log else open("/dev/null", "w") as log:
            print(json.dumps(write_keys(a.host, a.count, a.delay_ms, a.prefix, log, stop=stop)))
        return 0
    pairs = [tuple(line.split(" ", 1)) for line in open(a.log).read().splitlines() if line]
    bad = verify_keys(a.host, [(k, v) for k, v in pairs])
    print(json.dumps({"verified": len(pairs) - len(bad), "bad": bad[:10]}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
