#!/usr/bin/env python3
"""icmp_probe.py — an ICMP echo probe every INTERVAL ms to HOST until STOPFILE appears, for the
migration benchmark: the guest's kernel answers each echo, so the runs of unanswered probes show
the pause a migration causes as the network sees it, whatever the migrating system reports about
itself.

Sends on a schedule (a probe due while the loop was late goes at once, so probes are never
skipped, only delayed) through a raw socket (needs root), matches replies by identifier and
sequence number (16 bits, so each reply names the newest probe with that number), and prints one
JSON object at the end:
  sent, answered;
  runs: every run of 2 or more consecutive unanswered probes as [start, span_ms, probes], start on
        CLOCK_MONOTONIC (system-wide, so the caller can place the run inside a migration), span
        from the first unanswered probe's send to the next answered one's;
  silences: every time of 3 ms or more between two replies received, as [start, ms];
  longest_silence_ms: the longest of them.
A reply arriving later than 1 s after its probe counts as unanswered; once STOPFILE appears no
probe leaves and replies are awaited 300 ms more, so a run still going then is a real one. Prints "probing" once the
first probe left. Run it at a real-time priority (chrt -f) on a loaded host: at normal priority the
probe's own scheduling delays reach tens of ms there.
usage: icmp_probe.py HOST STOPFILE [INTERVAL_MS]
"""
import json
import os
import select
import socket
import struct
import sys
import time

LATE_S = 1.0
DRAIN_S = 0.3
SILENCE_S = 0.003


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def echo(ident, seq):
    payload = b"ftvm-migration-probe"
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(head + payload), ident, seq) + payload


def main():
    host, stopfile = sys.argv[1], sys.argv[2]
    interval = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.001
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    sent_at, answered = [], []  # per probe: send time, answered in time
    last_reply, silences = None, []
    next_send, next_stop_check, end = time.monotonic(), 0.0, None
    while end is None or time.monotonic() < end:
        now = time.monotonic()
        if end is None and now >= next_stop_check:
            if os.path.exists(stopfile):
                end = now + DRAIN_S  # no more probes; the last ones' replies still count
            next_stop_check = now + 0.05
        if end is None and now >= next_send:
            n = len(sent_at)
            try:
                sock.sendto(echo(ident, n & 0xFFFF), (host, 0))
            except OSError:
                pass  # no route for an instant: the probe is simply unanswered
            sent_at.append(now)
            answered.append(False)
            if n == 0:
                print("probing", flush=True)
            next_send += interval
            if next_send < now - interval:  # far behind (a stalled host): keep the schedule sane
                next_send = now
        wake = end if end is not None else min(next_send, next_stop_check)
        ready, _, _ = select.select([sock], [], [], max(0.0, wake - time.monotonic()))
        if not ready:
            continue
        while True:
            try:
                packet = sock.recv(2048)
            except BlockingIOError:
                break
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 8:
                continue
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
            if kind != 0 or rid != ident:
                continue
            got = time.monotonic()
            n = len(sent_at) - 1
            n -= (n - rseq) & 0xFFFF  # the newest probe with that sequence number
            if n < 0 or got - sent_at[n] > LATE_S:
                continue
            answered[n] = True
            if last_reply is not None and got - last_reply >= SILENCE_S:
                silences.append([round(last_reply, 4), round((got - last_reply) * 1000, 1)])
            last_reply = got
    runs, i = [], 0
    while i < len(sent_at):
        if answered[i]:
            i += 1
            continue
        j = i
        while j < len(sent_at) and not answered[j]:
            j += 1
        if j - i >= 2:  # a run still going at the end lasts until the last probe
            last = sent_at[j] if j < len(sent_at) else sent_at[-1]
            runs.append([round(sent_at[i], 4), round((last - sent_at[i]) * 1000, 1), j - i])
        i = j
    print(json.dumps({"sent": len(sent_at), "answered": sum(answered), "runs": runs, "silences": silences,
                      "longest_silence_ms": max((ms for _, ms in silences), default=0.0)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
