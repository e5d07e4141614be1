#!/usr/bin/env python3
"""Tests of the bundled guest (guest/): kvd on the host, and reference boots on QEMU.

Subcommands (each exits 0 on success, 1 with a message on failure):
  kvd-host GUEST_BINARY   kvd (in the natively built multi-call binary, `BINARY kvd ...`), its log on a plain file: protocol, many concurrent
                          clients, durability across kill -9, a torn tail ignored at replay and
                          writes after it kept.
  qemu-selftest GUEST_DIR boots the guest on qemu-system-riscv64 -M virt with virtio-blk, -net and
                          -rng running `selftest` against a TCP echo peer on the host; expects the
                          ready marker, "selftest: PASS" and QEMU exit status 0.
  qemu-selftest-fail GUEST_DIR  the same without a disk: expects "selftest: FAIL" and a nonzero
                          exit status (the test-finisher failure code, see guest/README.md).
  qemu-workloads GUEST_DIR  `cpu` and `disk` print their scores and power off with status 0;
                          `idle` stays up.
  qemu-shell GUEST_DIR    the `shell` workload: busybox applets typed on the console, then poweroff.
  qemu-kvd GUEST_DIR      boots kvd with a user-mode network forward, checks SET/GET round trips
                          from concurrent clients, kills QEMU, boots again on the same disk image
                          and checks every acknowledged value is there.
"""
import atexit
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ports import free_port  # noqa: E402

BOOT_TIMEOUT = 90          # seconds from QEMU start to the ready marker
RUN_TIMEOUT = 120          # seconds for a whole selftest boot
READY = b"ftvm-guest: ready"
LOG_DATA_START = 4096      # kvd log layout, guest/README.md
REC_HEADER = struct.Struct("<IHHQQII")
REC_MAGIC = 0x4C44564B


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


class KvClient:
    """A line-protocol client of kvd."""

    def __init__(self, port, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise TestFailure("kvd closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, request):
        self.send(request.encode() + b"\n")
        return self.line()

    def close(self):
        self.sock.close()


def protocol_checks(port):
    """Round trips and errors every kvd must get right."""
    c = KvClient(port)
    check(c.ask("GET missing") == "NONE", "GET of an unknown key is NONE")
    check(c.ask("SET greeting hello world") == "OK", "SET answers OK")
    check(c.ask("GET greeting") == "VALUE hello world", "GET returns a value with spaces")
    check(c.ask("SET greeting bye") == "OK", "SET overwrites")
    check(c.ask("get greeting") == "VALUE bye", "commands are case-insensitive")
    check(c.ask("SET crlf value\r") == "OK" and c.ask("GET crlf\r") == "VALUE value", "CRLF lines")
    for bad, answer in [("", "ERR empty line"), ("PUT a b", "ERR unknown command"),
                        ("SET a", "ERR usage: SET key value"), ("SET a ", "ERR usage: SET key value"),
                        ("GET", "ERR usage: GET key"), ("GET a b", "ERR usage: GET key"),
                        ("SET " + "k" * 251 + " v", "ERR key too long"),
                        ("SET k " + "v" * 4001, "ERR value too long")]:
        got = c.ask(bad)
        check(got == answer, f"{bad[:20]!r} answers {answer!r}, got {got!r}")
    check(c.ask("SET " + "k" * 250 + " " + "v" * 4000) == "OK", "largest key and value")
    check(c.ask("GET " + "k" * 250) == "VALUE " + "v" * 4000, "largest value read back")
    c.send(b"X" * 10000 + b"\nGET greeting\n")
    check(c.line() == "ERR line too long", "overlong line rejected")
    check(c.line() == "VALUE bye", "the connection survives an overlong line")
    # Pipelined requests answer in order, a GET after a SET sees it.
    c.send(b"".join(b"SET pipe%d v%d\nGET pipe%d\n" % (i, i, i) for i in range(50)))
    for i in range(50):
        check(c.line() == "OK" and c.line() == f"VALUE v{i}", f"pipelined SET/GET {i}")
    c.close()
    return {"greeting": "bye", "crlf": "value", "k" * 250: "v" * 4000,
            **{f"pipe{i}": f"v{i}" for i in range(50)}}


def concurrent_sets(port, clients=16, per_client=25, prefix="c"):
    """Many clients setting keys at once; returns what was acknowledged."""
    acked = {}
    errors = []
    lock = threading.Lock()

    def worker(n):
        try:
            c = KvClient(port)
            for i in range(per_client):
                key, value = f"{prefix}{n}_{i}", f"value-{n}-{i}-" + "x" * (i * 7 % 100)
                if c.ask(f"SET {key} {value}") != "OK":
                    raise TestFailure(f"SET {key} not OK")
                with lock:
                    acked[key] = value
            c.close()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"concurrent clients failed: {errors[:3]}")
    check(len(acked) == clients * per_client, "every concurrent SET acknowledged")
    return acked


def expect_values(port, expected):
    c = KvClient(port)
    for key, value in expected.items():
        got = c.ask(f"GET {key}")
        check(got == f"VALUE {value}", f"GET {key}: wanted {value[:30]!r}, got {got[:40]!r}")
    c.close()


def log_records(path):
    """Offsets of the kvd log's records, parsed from the format in guest/README.md."""
    data = open(path, "rb").read()
    check(data[:8] == b"FTVMKVD1", "log header magic")
    generation = struct.unpack_from("<Q", data, 16)[0]
    off, seq, found = LOG_DATA_START, 1, []
    while off + REC_HEADER.size <= len(data):
        rest = 512 - off % 512 if off % 512 else 4
        if data[off:off + rest] == bytes(rest):
            if off % 512 == 0:
                break
            off += rest
            continue
        magic, klen, vlen, gen, rseq, _crc, _ = REC_HEADER.unpack_from(data, off)
        if magic != REC_MAGIC or gen != generation or rseq != seq:
            break
        found.append((off, data[off + 32:off + 32 + klen].decode()))
        off += 32 + klen + vlen
        seq += 1
    return found


CHILDREN = []   # processes to kill when a test fails half-way


def kill_children():
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


atexit.register(kill_children)


class KvdProcess:
    def __init__(self, binary, log_path, port):
        self.proc = subprocess.Popen([binary, "kvd", "-d", log_path, "-p", str(port)],
                                     stderr=subprocess.PIPE, text=True)
        CHILDREN.append(self.proc)
        self.port = port
        KvClient(port).close()   # waits until it listens

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return self.proc.stderr.read()


def test_kvd_host(binary):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "log.img")
        with open(path, "wb") as f:
            f.truncate(16 << 20)
        port = free_port()
        kvd = KvdProcess(binary, path, port)
        expected = protocol_checks(port)
        expected.update(concurrent_sets(port))
        expect_values(port, expected)
        # Many connections open at once, each with a SET in flight: one group commit answers all.
        conns = [KvClient(port) for _ in range(150)]
        for n, c in enumerate(conns):
            c.send(b"SET open%d %d\n" % (n, n * n))
        for n, c in enumerate(conns):
            check(c.line() == "OK", f"SET on connection {n}")
            expected[f"open{n}"] = str(n * n)
        for c in conns:
            c.close()

        # Batches whose padding is shorter than a record header (records ending 1-3 bytes before
        # a sector boundary) must not end the log at replay.
        c = KvClient(port)
        for n, vlen in enumerate((472, 473, 474)):   # 32-byte header + "edgeN" + value
            for key, value in ((f"edge{n}", "e" * vlen), (f"after{n}", "x")):
                check(c.ask(f"SET {key} {value}") == "OK", f"SET {key}")
                expected[key] = value
        c.close()
        err = kvd.kill()
        check("formatted a new log" in err, "kvd formats a blank device")

        kvd = KvdProcess(binary, path, port)       # durability across kill -9
        expect_values(port, expected)
        c = KvClient(port)
        check(c.ask("SET last one") == "OK", "SET after restart")
        c.close()
        err = kvd.kill()
        check(f", {len(expected)} keys;" in err, f"kvd replays its log ({len(expected)} keys):\n{err}")
        expected["last"] = "one"

        # Tear the last record (as a crash mid-write would): replay must stop before it, and
        # records written after the torn point must survive the next restart.
        records = log_records(path)
        check(records and records[-1][1] == "last", "the last record is the last SET")
        with open(path, "r+b") as f:
            f.seek(records[-1][0] + REC_HEADER.size + 1)
            f.write(b"\xff")
        kvd = KvdProcess(binary, path, port)
        c = KvClient(port)
        check(c.ask("GET last") == "NONE", "a torn record is ignored")
        del expected["last"]
        check(c.ask("SET after torn") == "OK", "SET after a torn tail")
        c.close()
        err = kvd.kill()
        check("invalid record" in err, "kvd reports the torn tail")
        kvd = KvdProcess(binary, path, port)
        expected["after"] = "torn"
        expect_values(port, expected)
        kvd.kill()

        # A full log refuses SETs (after answering earlier ones) and keeps what it acknowledged.
        small = os.path.join(tmp, "small.img")
        with open(small, "wb") as f:
            f.truncate(300 * 1024)
        kvd = KvdProcess(binary, small, port)
        c = KvClient(port)
        big, answers = "v" * 4000, []
        c.send(b"".join(b"SET big%d %s\n" % (i, big.encode()) for i in range(100)))
        answers = [c.line() for _ in range(100)]
        full = answers.index("ERR log full") if "ERR log full" in answers else -1
        check(full > 10 and all(a == "OK" for a in answers[:full]) and
              all(a == "ERR log full" for a in answers[full:]), f"log full answers: {answers}")
        c.close()
        kvd.kill()
        kvd = KvdProcess(binary, small, port)
        expect_values(port, {f"big{i}": big for i in range(full)})
        c = KvClient(port)
        check(c.ask(f"GET big{full}") == "NONE", "a refused SET is not stored")
        c.close()
        kvd.kill()

        # A device with foreign contents is not formatted.
        with open(path, "r+b") as f:
            f.write(b"not a kvd log")
        proc = subprocess.run([binary, "kvd", "-d", path, "-p", str(port)], stderr=subprocess.PIPE,
                              text=True, timeout=10)
        check(proc.returncode != 0 and "refusing" in proc.stderr, "foreign device refused")


class Qemu:
    """One boot of the bundled guest; console output collected by a thread."""

    def __init__(self, guest_dir, workload, disk=None, netdev_extra="", append_extra="",
                 console_input=False):
        for name in ("Image", "initramfs.cpio", "fw_dynamic.bin"):
            check(os.path.exists(os.path.join(guest_dir, name)),
                  f"{guest_dir}/{name} missing: run guest/build")
        append = (f"console=ttyS0 panic=1 quiet ftvm.workload={workload} "
                  f"ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off {append_extra}")
        # One hart and no Sstc, like ftvm's board: the timer goes through SBI.
        cmd = ["qemu-system-riscv64", "-M", "virt", "-cpu", "rv64,sstc=off", "-smp", "1", "-m", "128M",
               "-nodefaults", "-display", "none",
               "-serial", "stdio", "-no-reboot",
               "-bios", os.path.join(guest_dir, "fw_dynamic.bin"),
               "-kernel", os.path.join(guest_dir, "Image"),
               "-initrd", os.path.join(guest_dir, "initramfs.cpio"),
               "-append", append]
        # virtio-mmio slots are taken from the top down in -device order.
        if disk:
            cmd += ["-drive", f"file={disk},format=raw,if=none,id=d0",
                    "-device", "virtio-blk-device,drive=d0"]
        cmd += ["-netdev", "user,id=n0" + netdev_extra, "-device", "virtio-net-device,netdev=n0",
                "-device", "virtio-rng-device"]
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if console_input else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        CHILDREN.append(self.proc)
        self.output = b""
        self.ready_at = None
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            with self.cond:
                if not chunk:
                    self.cond.notify_all()
                    return
                self.output += chunk
                if self.ready_at is None and READY in self.output:
                    self.ready_at = time.monotonic() - self.start
                self.cond.notify_all()

    def wait_ready(self):
        with self.cond:
            ok = self.cond.wait_for(lambda: self.ready_at is not None or self.proc.poll() is not None,
                                    timeout=BOOT_TIMEOUT)
        check(ok and self.ready_at is not None, "guest never printed the ready marker:\n" + self.text())
        return self.ready_at

    def wait_exit(self):
        try:
            status = self.proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("guest did not power off in time:\n" + self.text())
        self.reader.join(timeout=5)
        return status

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=5)

    def text(self):
        return self.output.decode(errors="replace")


def has_ready_line(text):
    return any(line.strip("\r") == READY.decode() for line in text.splitlines())


class EchoPeer:
    """A TCP echo server on the host, reachable from the guest as 10.0.2.2:port."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.served = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            conn, _ = self.sock.accept()
            with conn:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    conn.sendall(data)
            self.served += 1


def make_disk(tmp, size=64 << 20):
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_qemu_selftest(guest_dir):
    with tempfile.TemporaryDirectory() as tmp:
        peer = EchoPeer()
        vm = Qemu(guest_dir, "selftest", disk=make_disk(tmp),
                  append_extra=f"ftvm.peer=10.0.2.2:{peer.port}")
        status = vm.wait_exit()
        text = vm.text()
        print(text)
        check(has_ready_line(text), "ready marker printed on a line of its own")
        for name in ("memory", "timer", "rng", "disk", "loopback", "peer"):
            check(f"selftest: {name} ok" in text, f"selftest check {name} passed")
        check("selftest: PASS" in text, "selftest verdict PASS")
        check(status == 0, f"QEMU exit status 0 after a passing selftest, got {status}")
        check(peer.served >= 1, "the host peer was reached")


def test_qemu_selftest_fail(guest_dir):
    vm = Qemu(guest_dir, "selftest")   # no disk: the disk check must fail
    status = vm.wait_exit()
    text = vm.text()
    print(text)
    check(has_ready_line(text), "ready marker printed")
    check("selftest: disk FAILED" in text and "selftest: FAIL (1 of 6 checks)" in text,
          "selftest reports the missing disk")
    check(status == 1, f"QEMU exit status is the number of failed checks (1), got {status}")


def test_qemu_kvd(guest_dir):
    with tempfile.TemporaryDirectory() as tmp:
        disk = make_disk(tmp)
        port = free_port()
        fwd = f",hostfwd=tcp:127.0.0.1:{port}-:7000"
        vm = Qemu(guest_dir, "kvd", disk=disk, netdev_extra=fwd)
        try:
            ready = vm.wait_ready()
            print(f"first boot ready after {ready:.1f} s")
            expected = protocol_checks(port)
            expected.update(concurrent_sets(port, clients=8, per_client=10))
            expect_values(port, expected)
        finally:
            vm.kill()          # a crash, not a clean shutdown
        print(vm.text())

        vm = Qemu(guest_dir, "kvd", disk=disk, netdev_extra=fwd)
        try:
            ready = vm.wait_ready()
            print(f"second boot ready after {ready:.1f} s")
            expect_values(port, expected)
            c = KvClient(port)
            check(c.ask("SET second boot") == "OK", "SET on the second boot")
            c.close()
        finally:
            vm.kill()
        text = vm.text()
        print(text)
        check(f", {len(expected)} keys;" in text, "kvd replayed every key on the second boot")


def test_qemu_workloads(guest_dir):
    """cpu and disk run to completion, print their scores and power off with status 0; idle idles."""
    vm = Qemu(guest_dir, "cpu", append_extra="ftvm.cpu.rounds=20")
    status = vm.wait_exit()
    text = vm.text()
    print(text)
    check(re.search(r"^cpu: score \d+ \(20 rounds in \d+ ms, checksum [0-9a-f]{16}\)\r?$", text, re.M),
          "cpu prints its score")
    check(status == 0, f"cpu ends with status 0, got {status}")
    with tempfile.TemporaryDirectory() as tmp:
        vm = Qemu(guest_dir, "disk", disk=make_disk(tmp, 8 << 20),
                  append_extra="ftvm.disk.mb=4 ftvm.disk.ops=200")
        status = vm.wait_exit()
        text = vm.text()
        print(text)
        check(re.search(r"^disk: score seq-write \d+ MB/s, seq-read \d+ MB/s, rand-read \d+ IOPS, "
                        r"rand-write \d+ IOPS\r?$", text, re.M), "disk prints its score")
        check(status == 0, f"disk ends with status 0, got {status}")
    vm = Qemu(guest_dir, "disk")   # no disk: the workload fails and says so in the exit status
    status = vm.wait_exit()
    check(status != 0, "disk without a disk ends with a nonzero status")
    vm = Qemu(guest_dir, "idle")   # idle: ready, then nothing, and no power off
    try:
        vm.wait_ready()
        time.sleep(2)
        check(vm.proc.poll() is None, "the idle guest keeps running")
    finally:
        vm.kill()
    check("power off" not in vm.text(), "the idle guest does not power off")


def test_qemu_shell(guest_dir):
    """busybox on the console: a few applets, then `poweroff` (signals init, which powers off)."""
    vm = Qemu(guest_dir, "shell", console_input=True)
    vm.wait_ready()
    script = (b"echo sum-$((40+2)); ls /usr/bin/kvd; cat /proc/cmdline | grep -c workload=shell; "
              b"ip addr show lo | grep -c 127.0.0.1; poweroff\n")
    vm.proc.stdin.write(script)
    vm.proc.stdin.flush()
    status = vm.wait_exit()
    text = vm.text()
    print(text)
    lines = [line.strip("\r") for line in text.splitlines()]
    check("sum-42" in lines, "the shell runs commands")
    check("/usr/bin/kvd" in lines, "ls sees the guest programs")
    check(lines.count("1") >= 2, "grep, cat and ip work")
    check("ftvm-guest: power off (status 0)" in lines and status == 0, f"poweroff ends QEMU with 0, got {status}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tests = {"kvd-host": test_kvd_host, "qemu-selftest": test_qemu_selftest,
             "qemu-selftest-fail": test_qemu_selftest_fail, "qemu-kvd": test_qemu_kvd,
             "qemu-shell": test_qemu_shell, "qemu-workloads": test_qemu_workloads}
    try:
        tests[sys.argv[1]](sys.argv[2])
    except TestFailure as e:
        print(f"FAIL: {e}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
