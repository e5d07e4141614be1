#!/usr/bin/env python3
"""stranger.py — a machine on the logging network without the pair's key, trying what a stranger
can against a waiting `ftvm backup`: a plaintext HELLO of the right VM (the protocol before TLS),
half a HELLO then hanging up, a TLS-looking prefix then hanging up, connecting and closing at once,
and silent connections — more than the backup handshakes with at once, and a new one every 100 ms
for HOLD seconds. Prints one JSON line once the active tries are done: what the backup sent back
to the plaintext HELLO (hex) and how many connections were made. Usage: stranger.py HOST PORT VM_ID HOLD_SECONDS
"""
import json
import socket
import struct
import sys
import time

MAGIC = 0x434C5446
HELLO = 1


def hello_bytes(vm_id, epoch):
    vm = vm_id.encode()
    payload = struct.pack("<QQIIIHH", epoch, 1, 1 << 20, 100, 1000, len(vm), 0) + vm
    hdr = struct.pack("<IBBHIIQ", MAGIC, 1, HELLO, 0, len(payload), 0, 0)
    return hdr + payload


def connect(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 0))
    return s


def read_all(s, seconds):
    s.settimeout(seconds)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except (socket.timeout, ConnectionResetError):
        pass
    return got


def main():
    host, port, vm_id, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    made, answers = 0, {}
    silent = []
    for _ in range(20):
        silent.append(connect(host, port))
        made += 1
    s = connect(host, port)
    s.sendall(hello_bytes(vm_id, 1))
    answers["plain_hello"] = read_all(s, 3.0).hex()
    s.close()
    made += 1
    s = connect(host, port)
    s.sendall(hello_bytes(vm_id, 1)[:10])
    s.close()
    s = connect(host, port)
    s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
    s.close()
    s = connect(host, port)
    s.close()
    made += 3
    print(json.dumps({"connections": made, "answers": answers}), flush=True)
    end = time.monotonic() + hold
    while time.monotonic() < end:
        try:
            silent.append(connect(host, port))
        except OSError:
            break  # the backup paired and stopped listening
        made += 1
        time.sleep(0.1)
    for s in silent:
        s.close()


if __name__ == "__main__":
    main()
