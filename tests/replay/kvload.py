"""kvload.py — a checking load generator for the guest's key-value server (kvd, guest/README.md).

Several client threads, each on its own connection and its own keys, send a random mix of
`SET key value` and `GET key` with random pauses between requests, and check every answer
against what that client last had acknowledged: `OK` for a SET, `VALUE v` (or `NONE` for a key
never set) for a GET. Used by tests/replay (correctness under record) and bench/replay (load).
"""
import random
import socket
import threading
import time

PORT = 7000


def wait_for_server(host, timeout, port=PORT):
    """Connects until the server answers a GET; True when it did within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(10)
                s.sendall(b"GET ping\n")
                if s.recv(64).endswith(b"\n"):
                    return True
        except OSError:
            time.sleep(0.2)
    return False


class _Client(threading.Thread):
    def __init__(self, host, index, requests, max_delay_s, value_bytes, seed, deadline):
        super().__init__(daemon=True)
        self.host, self.index, self.requests = host, index, requests
        self.max_delay_s, self.value_bytes, self.deadline = max_delay_s, value_bytes, deadline
        self.rng = random.Random(seed)
        self.sets = self.gets = self.bytes_sent = 0
        self.errors = []

    def _ask(self, sock, buf, line):
        sock.sendall(line)
        self.bytes_sent += len(line)
        while b"\n" not in buf[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("kvd closed the connection")
            buf[0] += chunk
        reply, buf[0] = buf[0].split(b"\n", 1)
        return reply.decode(errors="replace")

    def run(self):
        acked = {}
        keys = [f"c{self.index}k{i}" for i in range(16)]
        buf = [b""]
        try:
            with socket.create_connection((self.host, PORT), timeout=30) as sock:
                sock.settimeout(60)
                for _ in range(self.requests):
                    if time.monotonic() > self.deadline:
                        self.errors.append("deadline passed")
                        return
                    key = self.rng.choice(keys)
                    if self.rng.random() < 0.6:
                        value = "".join(self.rng.choice("abcdefghij") for _ in range(self.value_bytes))
                        value = f"{self.rng.randrange(1 << 30)}-{value}"
                        reply = self._ask(sock, buf, f"SET {key} {value}\n".encode())
                        self.sets += 1
                        if reply != "OK":
                            self.errors.append(f"SET {key}: {reply!r}")
                        else:
                            acked[key] = value
                    else:
                        reply = self._ask(sock, buf, f"GET {key}\n".encode())
                        self.gets += 1
                        want = f"VALUE {acked[key]}" if key in acked else "NONE"
                        if reply != want:
                            self.errors.append(f"GET {key}: {reply[:80]!r}, want {want[:80]!r}")
                    if self.max_delay_s:
                        time.sleep(self.rng.uniform(0, self.max_delay_s))
        except (OSError, ConnectionError) as e:
            self.errors.append(f"client {self.index}: {e}")


def run_load(host, clients=2, requests=150, max_delay_s=0.02, value_bytes=32, seed=1, timeout=300):
    """Runs the clients to completion; returns a summary dict (sets, gets, errors, seconds, bytes)."""
    start = time.monotonic()
    threads = [_Client(host, i, requests, max_delay_s, value_bytes, seed * 1000 + i, start + timeout)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    errors = [e for t in threads for e in t.errors]
    if any(t.is_alive() for t in threads):
        errors.append("a client did not finish")
    return {"sets": sum(t.sets for t in threads), "gets": sum(t.gets for t in threads),
            "bytes_sent": sum(t.bytes_sent for t in threads), "errors": errors,
            "seconds": time.monotonic() - start}
