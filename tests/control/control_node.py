#!/usr/bin/env python3
"""control_node.py — the control socket and console of a running FT node against hostile local
clients. A primary and a backup run the bare-metal echo.elf on loopback (echo.elf echoes console
input in upper case and powers off on 'q'); each scenario starts a fresh pair and checks one
promise of docs/control.md:

  sigpipe      clients that send {"cmd":"status"} and close before reading: both nodes live on
  console      the primary's console output is a pipe nobody reads any more: it lives on, exits 0
  drip         a client dripping a byte every half second: `ftvm status` still answers at once
  pipeline     a client pipelining requests without reading: others are served, it is dropped
  many         100 connections at once: extras get a one-line refusal, status answers, idle
               clients are dropped after the request deadline
  poweroff     hostile clients attached when the guest powers off: the nodes exit promptly
  perms        (root) under umask 000 the socket is 0600; a non-root user is refused, also when
               the socket file was opened up by hand (SO_PEERCRED); --control-group GROUP gives
               0660 and admits members of GROUP (primary or supplementary), nobody else

usage: control_node.py FTVM BM_DIR [SCENARIO...]   (BM_DIR "-": no bare-metal programs, skip: 77)
"""
import grp
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ports import free_port  # noqa: E402

FTVM, BM = sys.argv[1], sys.argv[2]
STATUS = b'{"cmd":"status"}\n'
NOBODY = 65534
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


class Pair:
    """A backup and a primary of echo.elf, control sockets p.sock and b.sock in a fresh directory."""

    def __init__(self, extra=(), umask=None, primary_stdout=subprocess.DEVNULL):
        self.dir = tempfile.mkdtemp(prefix="ftvm-ctl-")
        os.chmod(self.dir, 0o755)  # so that another user reaches the socket files themselves
        self.p_sock, self.b_sock = os.path.join(self.dir, "p.sock"), os.path.join(self.dir, "b.sock")
        arb = os.path.join(self.dir, "arb")
        with open(arb, "wb") as f:
            f.truncate(1 << 20)
        subprocess.run([FTVM, "arbiter", "init", arb, "--vm", "ctl"], check=True, stdout=subprocess.DEVNULL)
        key = os.path.join(self.dir, "channel.key")
        subprocess.run([FTVM, "keygen", key], check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        common = ["--arbiter", arb, "--vm", "ctl", "--channel-key", key,
                  "--bios", "none", "--kernel", os.path.join(BM, "echo.elf")]
        common += list(extra)
        pre = (lambda: os.umask(umask)) if umask is not None else None
        self.b_err = open(os.path.join(self.dir, "backup.err"), "w+")
        self.p_err = open(os.path.join(self.dir, "primary.err"), "w+")
        self.backup = subprocess.Popen([FTVM, "backup", "--listen", f"127.0.0.1:{port}", "--control", self.b_sock]
                                       + common, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=self.b_err, preexec_fn=pre)
        self.primary = None
        if not wait_for(lambda: os.path.exists(self.b_sock) or self.backup.poll() is not None, 10):
            self.abort("backup did not start")
        self.primary = subprocess.Popen([FTVM, "primary", "--peer", f"127.0.0.1:{port}", "--control", self.p_sock]
                                        + common, stdin=subprocess.PIPE, stdout=primary_stdout,
                                        stderr=self.p_err, preexec_fn=pre)
        if not wait_for(lambda: os.path.exists(self.p_sock) or self.primary.poll() is not None, 10):
            self.abort("primary did not start")
        if self.primary.poll() is not None or self.backup.poll() is not None:
            self.abort("a node ended at start")

    def abort(self, why):
        print(self.stderr(), file=sys.stderr)
        self.close()
        raise SystemExit(f"FAIL: {why}")

    def stderr(self):
        out = ""
        for name, f in (("primary", self.p_err), ("backup", self.b_err)):
            f.seek(0)
            out += f"--- {name} stderr ---\n{f.read()[-3000:]}\n"
        return out

    def alive(self):
        return self.primary.poll() is None and self.backup.poll() is None

    def type(self, data):
        """Console input for the guest; False when the primary is gone."""
        try:
            self.primary.stdin.write(data)
            self.primary.stdin.flush()
        except BrokenPipeError:
            return False
        return True

    def poweroff(self, timeout=20):
        """Types 'q'; returns (primary status, backup status, seconds until both ended)."""
        t0 = time.monotonic()
        self.type(b"q")
        codes = []
        for p in (self.primary, self.backup):
            try:
                codes.append(p.wait(timeout=max(0.1, timeout - (time.monotonic() - t0))))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes[0], codes[1], time.monotonic() - t0

    def finish(self, what="both nodes exit 0"):
        """Powers the guest off and checks that both nodes were alive and exit 0."""
        check(self.alive(), f"both nodes alive (primary {self.primary.poll()}, backup {self.backup.poll()})")
        p, b, secs = self.poweroff()
        check((p, b) == (0, 0), f"{what} (primary {p}, backup {b})")
        return secs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for p in (self.primary, self.backup):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        if failures:
            print(self.stderr(), file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)


def ftvm_status(path, user=None, timeout=10):
    """`ftvm status --json --control path` (as uid/gid/groups `user` through setpriv): (rc, out, s)."""
    cmd = [FTVM, "status", "--json", "--control", path]
    if user:
        uid, gid, groups = user
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}"] + (
            [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]) + cmd
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout", time.monotonic() - t0
    return r.returncode, r.stdout + r.stderr, time.monotonic() - t0


def connect(path, timeout=None):
    """A connected client; with a timeout the connect itself does not wait for a full backlog."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.settimeout(3)
    return s


def read_until_closed(s, timeout):
    """Everything the server sends until it closes the connection; None if it is still open."""
    s.settimeout(0.2)
    data, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


class Dripper(threading.Thread):
    """Sends a status request one byte every half second, forever (until stopped or dropped)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = connect(path)
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.sock.send(STATUS[i % len(STATUS):i % len(STATUS) + 1])
            except OSError:
                return
            i += 1
            self.stop.wait(0.5)


def pipeliner(path):
    """A client that sends status requests back to back and never reads; returns its socket."""
    s = connect(path)
    s.setblocking(False)
    try:
        for _ in range(20000):
            s.send(STATUS)
    except (BlockingIOError, OSError):
        pass
    return s


def scenario_sigpipe():
    with Pair() as pair:
        for path in (pair.p_sock, pair.b_sock):
            for _ in range(20):
                try:
                    s = connect(path)
                    s.sendall(STATUS)
                    s.close()
                except OSError as e:  # the node is gone
                    check(False, f"client {path}: {e}")
                    break
        time.sleep(0.5)
        check(pair.primary.poll() is None, f"primary alive after 20 clients closed unread (exit {pair.primary.poll()})")
        check(pair.backup.poll() is None, f"backup alive after 20 clients closed unread (exit {pair.backup.poll()})")
        rc, out, _ = ftvm_status(pair.p_sock)
        check(rc == 0 and '"role":"primary"' in out, f"status answers afterwards: {out.strip()[:200]}")
        pair.finish("both nodes exit 0 on guest poweroff")


def scenario_console():
    with Pair(primary_stdout=subprocess.PIPE) as pair:
        pair.type(b"first line\n")
        check(wait_for(lambda: pair.primary.stdout.read(1) != b"", 5), "console output arrives")
        pair.primary.stdout.close()  # like `ftvm primary ... | head -c 1`
        for _ in range(5):
            pair.type(b"more output nobody reads\n")
            time.sleep(0.2)
        check(pair.primary.poll() is None, f"primary alive with its console pipe closed (exit {pair.primary.poll()})")
        rc, out, _ = ftvm_status(pair.p_sock)
        check(rc == 0, f"status answers with the console pipe closed: {out.strip()[:200]}")
        pair.finish("both nodes exit 0 on guest poweroff")
        pair.p_err.seek(0)
        check("console output" in pair.p_err.read(), "the primary says once that the console output is gone")


def scenario_drip():
    with Pair() as pair:
        drips = [Dripper(pair.p_sock), Dripper(pair.b_sock)]
        for d in drips:
            d.start()
        time.sleep(0.5)
        for path, role in ((pair.p_sock, "primary"), (pair.b_sock, "backup")):
            rc, out, secs = ftvm_status(path)
            check(rc == 0 and f'"role":"{role}"' in out and secs < 2.0,
                  f"{role}: status with a dripping client attached: exit {rc} in {secs:.2f} s")
        # The dripper never completes a request within the deadline: the server drops it.
        closed = read_until_closed(drips[0].sock, 5)
        check(closed is not None, "the dripping client is dropped at the request deadline")
        for d in drips:
            d.stop.set()
        pair.finish()


def scenario_pipeline():
    with Pair() as pair:
        s = pipeliner(pair.p_sock)
        time.sleep(0.3)
        rc, out, secs = ftvm_status(pair.p_sock)
        check(rc == 0 and secs < 2.0, f"status with a pipelining client that never reads: exit {rc} in {secs:.2f} s")
        data = read_until_closed(s, 6)
        check(data is not None, "the pipelining client is dropped")
        answers = data.count(b"\n") if data else 0
        check(answers < 20000, f"it got a bounded number of answers ({answers}) before the server dropped it")
        pair.finish()


def scenario_many():
    with Pair() as pair:
        socks, refused_at_connect = [], 0
        for _ in range(100):
            try:
                socks.append(connect(pair.p_sock, timeout=2))
            except OSError:
                refused_at_connect += 1
        check(refused_at_connect == 0, f"100 connects complete ({refused_at_connect} failed or hung)")
        time.sleep(0.3)
        busy = 0
        for s in socks:
            s.settimeout(0.05)
            try:
                line = s.recv(4096)
            except socket.timeout:
                continue
            if b'"ok":false' in line and b"too many" in line:
                busy += 1
        check(busy >= 100 - 16, f"connections past the limit get a one-line refusal ({busy} of 100)")
        rc, out, secs = ftvm_status(pair.p_sock)
        check(rc == 0 and secs < 4.0, f"status answers with 100 connections open: exit {rc} in {secs:.2f} s: {out.strip()[:200]}")
        open_after = sum(1 for s in socks if read_until_closed(s, 0.05 if s is not socks[0] else 4) is None)
        check(open_after == 0, f"silent clients are dropped after the request deadline ({open_after} still open)")
        for s in socks:
            s.close()
        pair.finish()


def scenario_poweroff():
    with Pair() as pair:
        p0, b0, normal = pair.poweroff()
        check((p0, b0) == (0, 0), f"reference pair exits 0 in {normal:.2f} s")
    with Pair() as pair:
        hostile = []
        for path in (pair.p_sock, pair.b_sock):
            d = Dripper(path)
            d.start()
            hostile += [d.sock, pipeliner(path)] + [connect(path) for _ in range(20)]
        time.sleep(0.3)
        p, b, secs = pair.poweroff()
        check((p, b) == (0, 0), f"both nodes exit 0 with hostile clients attached (primary {p}, backup {b})")
        check(secs < normal + 1.5, f"they exit promptly: {secs:.2f} s after 'q' (without clients {normal:.2f} s)")
        for s in hostile:
            s.close()


def scenario_perms():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("skip: perms needs root and setpriv")
        return
    nogroup = grp.getgrnam("nogroup").gr_gid
    users = grp.getgrnam("users").gr_gid
    nobody = (NOBODY, nogroup, None)
    with Pair(umask=0) as pair:
        for path in (pair.p_sock, pair.b_sock):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            check(mode == 0o600, f"{os.path.basename(path)} under umask 000: mode {mode:o}, want 600")
        rc, out, _ = ftvm_status(pair.p_sock)
        check(rc == 0, "root is served")
        rc, out, _ = ftvm_status(pair.p_sock, user=nobody)
        check(rc != 0, f"uid {NOBODY} is refused: exit {rc}: {out.strip()[:200]}")
        os.chmod(pair.p_sock, 0o666)  # an administrator's mistake: SO_PEERCRED still refuses
        rc, out, _ = ftvm_status(pair.p_sock, user=nobody)
        check(rc != 0 and "not allowed" in out, f"uid {NOBODY} refused by credentials: exit {rc}: {out.strip()[:200]}")
        check(out.strip().count("\n") == 0, "the refusal is one line")
    with Pair(extra=["--control-group", "nogroup"], umask=0) as pair:
        st = os.stat(pair.p_sock)
        check(stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == nogroup,
              f"--control-group nogroup: mode {stat.S_IMODE(st.st_mode):o} group {st.st_gid}, want 660 {nogroup}")
        rc, out, _ = ftvm_status(pair.p_sock, user=nobody)
        check(rc == 0, f"a user whose group is nogroup is served: exit {rc} {out.strip()[:200]}")
        rc, out, _ = ftvm_status(pair.p_sock, user=(NOBODY, users, [users, nogroup]))
        check(rc == 0, f"a supplementary member of nogroup is served: exit {rc} {out.strip()[:200]}")
        os.chmod(pair.p_sock, 0o666)
        rc, out, _ = ftvm_status(pair.p_sock, user=(NOBODY, users, None))
        check(rc != 0 and "not allowed" in out, f"a non-member is refused: exit {rc}: {out.strip()[:200]}")
        pair.finish()


SCENARIOS = {name[len("scenario_"):]: f for name, f in globals().items() if name.startswith("scenario_")}


def main():
    if BM == "-":
        print("SKIP: no bare-metal programs (riscv64-unknown-elf-gcc missing)")
        return 77
    for name in sys.argv[3:] or SCENARIOS:
        print(f"== {name}", flush=True)
        SCENARIOS[name]()
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all control checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
