#!/usr/bin/env python3
"""ftlab.py — drives an FT pair on the two-host test network of scripts/ft-topology, for the FT
tests, the benchmarks and the demo.

A Lab owns one topology (namespaces PREFIX-a, -b, -sw, -cl), the guest's disk, an arbiter area
and the pair's channel key (`ftvm keygen`) in a work directory, and the two ftvm processes: the
backup in PREFIX-b, the primary in PREFIX-a, each with the guest's NIC on the host's TAP "vmtap".
The guest serves kvd on GUEST_IP (or runs `workload`'s kernel arguments). The disk is one shared
image (disk_mode "shared") or one replica per host, both created empty (disk_mode "replicated":
disk-a.img for the primary's host, disk-b.img for the backup's).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import sanitizer_check  # noqa: E402
from test_cpu import with_test_cpu  # noqa: E402 (FTVM_TEST_CPU)
GUEST_IP = "10.77.0.10"
HOST_GW = "10.77.0.1"
CLIENT_IP = "10.77.0.100"
MAC = "52:54:00:12:34:56"
LOG_PORT = 7700


def guest_dir():
    return os.environ.get("FTVM_GUEST_DIR", os.path.join(ROOT, "build", "guest"))


def first_difference(path_a, path_b):
    """Offset of the first byte where two files differ (a shorter one differs where it ends), or None."""
    with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return off + next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
            if not x:
                return None
            off += len(x)


def sanitizer_reports():
    """Sanitizer reports written so far by the nodes and every other process of the test, as
    (who, excerpt), who a node's name where the report is a node's: a node killed by the test never
    exits with the sanitizer's status, so tests/lib/sanitizer_check.py (which runs the test) keeps
    each report in a file of its own, and fails the test on it at the end in any case."""
    names = {n.proc.pid: n.name for n in Node.started}
    return [(names.get(pid, f"process {pid}"), text[:3000]) for pid, text in sanitizer_check.reports()]


def sanitizer_verdict():
    """A test's exit status at its end: 1 with each report printed when a sanitizer reported, else 0."""
    reports = sanitizer_reports()
    for name, report in reports:
        print(f"FAILED: a sanitizer report from {name}:\n{report}", file=sys.stderr)
    return 1 if reports else 0


def ftvm_binary():
    return os.environ.get("FTVM", os.path.join(ROOT, "build", "cmd", "ftvm"))


class Node:
    """One ftvm process; its stdout (the guest console) and stderr are collected line by line.

    The two are read apart, so that ftvm's own messages can never land inside a line the guest
    is printing (one pipe for both interleaves them mid-line)."""

    started = []  # every Node of this process, for sanitizer_reports()

    def __init__(self, name, argv):
        Node.started.append(self)
        self.name = name
        self.lines = []
        self.lock = threading.Lock()
        argv = with_test_cpu(argv)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.readers = [threading.Thread(target=self._read, args=(f,), daemon=True)
                        for f in (self.proc.stdout, self.proc.stderr)]
        for r in self.readers:
            r.start()

    def _read(self, stream):
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self.lock:
                self.lines.append((time.monotonic(), line))
            if os.environ.get("FTLAB_VERBOSE"):
                print(f"[{self.name}] {line}", file=sys.stderr, flush=True)

    def output(self):
        with self.lock:
            return "\n".join(l for _, l in self.lines)

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            with self.lock:
                for _, l in self.lines:
                    if rx.search(l):
                        return l
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain
                with self.lock:
                    for _, l in self.lines:
                        if rx.search(l):
                            return l
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before /{pattern}/:\n"
                                   + self.output()[-3000:])
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no /{pattern}/ within {timeout}s:\n" + self.output()[-3000:])

    def time_of(self, pattern):
        """CLOCK_MONOTONIC time at which the first line matching @pattern was read, or None."""
        rx = re.compile(pattern)
        with self.lock:
            return next((t for t, l in self.lines if rx.search(l)), None)

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout):
        """The exit status; by then every line the process wrote has been read (its pipes hit end
        of file), so output() holds its last words too."""
        code = self.proc.wait(timeout)
        for r in self.readers:
            r.join(5)
        return code


class Lab:
    def __init__(self, prefix, workdir, disk_mib=64, timeout_ms=500, extra_run=None, extra_backup=None,
                 disk_mode="shared", workload=None, extra_primary=None, hosts=2):
        self.prefix, self.workdir = prefix, workdir
        self.disk_mode = disk_mode
        self.workload = workload or "ftvm.workload=kvd"
        self.disk = os.path.join(workdir, "shared-disk.img")
        self.disks = {"a": self.disk, "b": self.disk}
        if disk_mode == "replicated":
            self.disks = {h: os.path.join(workdir, f"disk-{h}.img") for h in ("a", "b")}
        self.arbiter = os.path.join(workdir, "arbiter.img")
        self.key = os.path.join(workdir, "channel.key")
        self.timeout_ms = timeout_ms
        self.extra_run = extra_run or []
        self.extra_backup = extra_backup or []
        self.extra_primary = extra_primary or []
        self.primary = self.backup = None
        os.makedirs(workdir, exist_ok=True)
        for path in set(self.disks.values()):
            with open(path, "wb") as f:
                f.truncate(disk_mib << 20)
        # hosts=3: a host C (PREFIX-c) besides A and B, with logging links to both (ft-topology up3).
        self.sh([os.path.join(ROOT, "scripts", "ft-topology"), "up3" if hosts == 3 else "up", prefix])
        self.sh([ftvm_binary(), "arbiter", "init", self.arbiter, "--vm", self.vm_name(), "--force"])
        if os.path.exists(self.key):
            os.unlink(self.key)
        self.sh([ftvm_binary(), "keygen", self.key])

    def vm_name(self):
        return "kv-" + self.prefix

    @staticmethod
    def sh(argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def run_options(self, host="a"):
        return ["--disk", self.disks[host], "--nic", f"tap=vmtap,mac={MAC}",
                "--extra-args", f"{self.workload} ip={GUEST_IP}::{HOST_GW}:255.255.255.0::eth0:off"] \
            + self.extra_run

    def ft_options(self):
        opts = ["--arbiter", self.arbiter, "--vm", self.vm_name(), "--channel-key", self.key,
                "--disk-mode", self.disk_mode]
        if self.timeout_ms is None:  # ftvm's own defaults (logchannel/channel.h)
            return opts
        return opts + ["--timeout", str(self.timeout_ms), "--heartbeat", str(max(10, self.timeout_ms // 5))]

    def start(self, ready_timeout=120):
        self.start_backup()
        try:
            self.start_primary(ready_timeout)
        except (TimeoutError, RuntimeError) as e:
            raise RuntimeError(f"{e}\n{self.post_mortem()}") from None

    def post_mortem(self):
        """What a stuck start needs to be diagnosed: the backup's output, both nodes' status and,
        where gdb is installed, every thread's stack of each live process."""
        parts = []
        if self.backup:
            parts.append("--- backup output (tail):\n" + self.backup.output()[-3000:])
        for role in ("primary", "backup"):
            parts.append(f"--- {role} status: {self.status(role)}")
        gdb = shutil.which("gdb")
        for node in (self.primary, self.backup):
            if gdb and node and node.proc.poll() is None:
                out = subprocess.run([gdb, "-p", str(node.proc.pid), "-batch", "-nx",
                                      "-ex", "thread apply all bt 30"],
                                     capture_output=True, text=True, timeout=60)
                parts.append(f"--- {node.name} threads:\n" + out.stdout[-8000:])
        return "\n".join(parts)

    def start_backup(self):
        ftvm = ftvm_binary()
        self.backup = Node("backup", ["ip", "netns", "exec", self.ns("b"), ftvm, "backup",
                                      "--listen", f"10.78.0.2:{LOG_PORT}",
                                      "--control", os.path.join(self.workdir, "backup.sock")]
                           + self.ft_options() + self.extra_backup + self.run_options("b"))
        self.backup.wait_for("listening on", 30)

    def start_primary(self, ready_timeout=120):
        ftvm = ftvm_binary()
        self.primary = Node("primary", ["ip", "netns", "exec", self.ns("a"), ftvm, "primary",
                                        "--peer", f"10.78.0.2:{LOG_PORT}",
                                        "--control", os.path.join(self.workdir, "primary.sock")]
                            + self.ft_options() + self.extra_primary + self.run_options())
        self.primary.wait_for("ftvm-guest: ready", ready_timeout)

    def client(self, argv, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns("cl")] + argv, **kw)

    def status(self, role):
        out = subprocess.run([ftvm_binary(), "status", "--json", "--control",
                              os.path.join(self.workdir, f"{role}.sock")], capture_output=True, text=True)
        return out.stdout.strip()

    def stop_nodes(self):
        """SIGKILLs both nodes (what each wrote to its disk is in the file already)."""
        for n in (self.primary, self.backup):
            if n:
                n.kill()
                try:
                    n.wait(10)
                except subprocess.TimeoutExpired:
                    pass

    def close(self):
        self.stop_nodes()
        subprocess.run([os.path.join(ROOT, "scripts", "ft-topology"), "down", self.prefix])
