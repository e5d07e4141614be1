#!/usr/bin/env python3
"""loadgen.py — the load side of bench_ft.py, run inside the client's network namespace.

Two modes, each printing one JSON line on stdout when done:

  loadgen.py load HOST --conns N --seconds S [--warmup W]
      N connections, each a closed loop of "SET key value" -> "OK" (one request outstanding per
      connection), all driven by one selector loop so the client's own CPU use stays small.
      Requests completed during the first W seconds are not counted (connections ramp up, the
      guest's TCP windows open). Prints ops, ops/s and latency percentiles over the S measured
      seconds. Any connection error or unexpected reply is fatal: the load phase must be clean.

  loadgen.py gap HOST --seconds S [--delay-ms D]
      One connection sending SETs back to back (D ms apart), reconnecting when it must, recording
      the CLOCK_MONOTONIC time of every reply; prints "replying" once the first replies are in. Runs until S seconds have passed or stdin closes
      (the bench closes it once it has seen the failover), then prints every reply time, so the
      bench can find the gap that spans its kill.
      CLOCK_MONOTONIC is one clock for every network namespace, so the times compare directly.
"""
import argparse
import errno
import json
import os
import random
import selectors
import socket
import sys
import time

PORT = 7000
CONNECT_TIMEOUT_S = 2.0
GAP_READY_REPLIES = 10      # gap mode says "replying" on stdout after this many replies
CONNECT_GIVE_UP_S = 20.0    # a busy machine may drop a SYN or two; the load counts only after warm-up
REQUEST_TIMEOUT_S = 10.0


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def connect_retry(host, deadline):
    while True:
        try:
            s = socket.create_connection((host, PORT), timeout=CONNECT_TIMEOUT_S)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(REQUEST_TIMEOUT_S)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Conn:
    def __init__(self, idx, host):
        self.idx = idx
        self.sock = connect_retry(host, time.monotonic() + CONNECT_GIVE_UP_S)
        self.sock.setblocking(False)
        self.buf = b""
        self.seq = 0
        self.replies = 0
        self.sent_at = 0.0

    def send_next(self):
        self.seq += 1
        line = f"SET b{self.idx}-{self.seq} v{self.seq}-{random.randrange(1 << 30)}\n".encode()
        self.sent_at = time.monotonic()
        # A request line is tiny: the socket's send buffer always takes it whole.
        n = self.sock.send(line)
        if n != len(line):
            raise RuntimeError(f"connection {self.idx}: short send ({n} of {len(line)} bytes)")


def run_load(host, conns, seconds, warmup):
    sel = selectors.DefaultSelector()
    cs = [Conn(i, host) for i in range(conns)]
    t0 = time.monotonic()
    t_measure, t_end = t0 + warmup, t0 + warmup + seconds
    lat = []
    ops = 0
    for c in cs:
        sel.register(c.sock, selectors.EVENT_READ, c)
        c.send_next()
    last_progress = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        events = sel.select(timeout=min(0.5, t_end - now))
        if not events and time.monotonic() - last_progress > REQUEST_TIMEOUT_S:
            raise RuntimeError(f"no reply for {REQUEST_TIMEOUT_S} s")
        for key, _ in events:
            c = key.data
            try:
                chunk = c.sock.recv(4096)
            except BlockingIOError:
                continue
            if not chunk:
                raise RuntimeError(f"connection {c.idx}: server closed it")
            c.buf += chunk
            while b"\n" in c.buf:
                reply, c.buf = c.buf.split(b"\n", 1)
                done = time.monotonic()
                last_progress = done
                c.replies += 1
                if reply != b"OK":
                    raise RuntimeError(f"connection {c.idx}: unexpected reply {reply[:80]!r}")
                if c.sent_at >= t_measure and done <= t_end:
                    ops += 1
                    lat.append(done - c.sent_at)
                if done < t_end:
                    c.send_next()
    now = time.monotonic()
    # A request still unanswered at the end never shows in the latencies: report it separately.
    stuck = [round(now - c.sent_at, 3) for c in cs if c.replies < c.seq and now - c.sent_at > 1.0]
    per_conn = [c.replies for c in cs]
    for c in cs:
        sel.unregister(c.sock)
        c.sock.close()
    lat.sort()
    ms = lambda v: None if v is None else round(v * 1000.0, 3)  # noqa: E731
    return {"conns": conns, "seconds": seconds, "ops": ops, "ops_s": round(ops / seconds, 1),
            "p50_ms": ms(percentile(lat, 50)), "p99_ms": ms(percentile(lat, 99)),
            "max_ms": ms(lat[-1] if lat else None), "t_start": t_measure, "t_end": t_end,
            "stuck_s": stuck, "replies_per_conn": per_conn}


def stdin_closed():
    """True once the bench has closed our stdin (non-blocking check)."""
    import select
    r, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(r) and os.read(sys.stdin.fileno(), 1) == b""


def run_gap(host, seconds, delay_ms):
    t_end = time.monotonic() + seconds
    sock = connect_retry(host, t_end)
    buf, seq, reconnects, times = b"", 0, 0, []
    while time.monotonic() < t_end and not stdin_closed():
        seq += 1
        try:
            sock.sendall(f"SET gap-{seq} v{seq}\n".encode())
            while b"\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buf += chunk
        except OSError as e:
            if e.errno not in (None, errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.ECONNREFUSED,
                               errno.EHOSTUNREACH):
                raise
            sock.close()
            reconnects += 1
            buf = b""
            sock = connect_retry(host, t_end)
            continue
        reply, buf = buf.split(b"\n", 1)
        if reply != b"OK":
            raise RuntimeError(f"unexpected reply {reply[:80]!r}")
        times.append(round(time.monotonic(), 6))
        if len(times) == GAP_READY_REPLIES:
            print("replying", flush=True)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
    sock.close()
    return {"replies": len(times), "reconnects": reconnects, "times": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["load", "gap"])
    ap.add_argument("host")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    a = ap.parse_args()
    if a.mode == "load":
        out = run_load(a.host, a.conns, a.seconds, a.warmup)
    else:
        out = run_gap(a.host, a.seconds, a.delay_ms)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
