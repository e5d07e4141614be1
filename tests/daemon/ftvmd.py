#!/usr/bin/env python3
"""ftvmd.py — the real ftvmd and the real `ftvm` verbs over its JSON socket, with VMs running the
bare-metal tick.elf (idle, a '.' on the console every 100 ms of guest time).

  verbs      define, list, dominfo, dumpxml, start, vmstats, suspend, resume, nodeinfo, events,
             shutdown, destroy, undefine, each checked by its output and by the VM's process
  restart    ftvmd killed with SIGKILL while a VM runs: the VM runs on; a new ftvmd finds it (same
             id, running), and destroys it; SIGTERM ends ftvmd with the VMs left running
  hostile    malformed JSON, wrong types, unknown verbs, a name with '/', a definition that is not
             XML or too large, a request longer than the limit, clients that close mid-request,
             a client that drips bytes, 100 clients at once: clear errors, and the daemon answers
             everyone else meanwhile and afterwards
  perms      the socket is mode 0600 under umask 000; (root) another user is refused even when the
             file was opened up by hand; --socket-group gives 0660 and admits that group only, whose
             members may not define VMs (a definition names files the daemon's user opens)

  guest      (when the bundled guest is built) the real Linux guest defined without a kernel boots
             under the daemon to its "ready" line, holds still while suspended, and stops on shutdown

usage: ftvmd.py FTVMD FTVM TICK_ELF [GUEST_DIR]   (TICK_ELF "-": no bare-metal programs, skip: 77)
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

from daemon_test import check, domain, outcome, wait_for

FTVMD, FTVM, TICK = sys.argv[1], sys.argv[2], sys.argv[3]
GUEST = sys.argv[4] if len(sys.argv) > 4 else "-"
MAX_REQUEST = 2 * 256 * 1024 + 4096


class Daemon:
    def __init__(self, tmp):
        self.tmp = tmp
        self.state = os.path.join(tmp, "state")
        self.sock = os.path.join(tmp, "d.sock")
        self.proc = None

    def start(self):
        log = open(os.path.join(self.tmp, "ftvmd.log"), "a")
        self.proc = subprocess.Popen([FTVMD, "--state-dir", self.state, "--socket", self.sock, "--ftvm", FTVM,
                                      "--poll-ms", "100"], stdout=log, stderr=log)
        ok = wait_for(lambda: os.path.exists(self.sock) and self.ask({"cmd": "status"}).get("ok"), 20)
        check(ok, "ftvmd serves its socket")

    def alive(self):
        return self.proc.poll() is None

    def ftvm(self, *args):
        r = subprocess.run([FTVM, *args, "--daemon-socket", self.sock], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def ask(self, req, raw=None):
        """One request line on a fresh connection; the parsed answer ({} when none came)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(self.sock)
                s.sendall(raw if raw is not None else (json.dumps(req) + "\n").encode())
                buf = b""
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                return json.loads(buf.split(b"\n")[0]) if buf else {}
        except (OSError, ValueError):
            return {}

    def info(self, name):
        return self.ask({"cmd": "dominfo", "name": name}).get("vm", {})


def vm_pid(d, name):
    try:
        with open(os.path.join(d.state, "run", name + ".pid")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def events(d):
    return [(e["name"], e["event"], e["detail"]) for e in d.ask({"cmd": "events"}).get("events", [])]


def verbs(d, tmp):
    path = os.path.join(tmp, "vm1.xml")
    with open(path, "w") as f:
        f.write(domain("vm1", TICK))
    rc, out, err = d.ftvm("define", path)
    check(rc == 0 and "vm1 defined" in out, f"define: {out.strip()} {err.strip()}")
    check(os.path.exists(os.path.join(d.state, "vms", "vm1.xml")), "the definition is in the state directory")
    rc, out, _ = d.ftvm("list")
    check(rc == 0 and "vm1" in out and "shutoff" in out, "list shows vm1 shut off")
    rc, out, _ = d.ftvm("dumpxml", "vm1")
    check(rc == 0 and "<uuid>" in out and "<name>vm1</name>" in out, "dumpxml gives the definition with its UUID")
    rc, out, _ = d.ftvm("start", "vm1")
    check(rc == 0 and "started" in out, "start")
    pid = vm_pid(d, "vm1")
    check(pid > 0 and pid_alive(pid), "the VM runs as its own process")
    check(os.getsid(pid) == pid, "in a session of its own")
    check(wait_for(lambda: d.info("vm1").get("instructions", 0) > 100), "its guest retires instructions")
    rc, out, _ = d.ftvm("dominfo", "vm1")
    check(rc == 0 and "running" in out and "FT role:         off" in out, "dominfo: running, FT off")
    rc, out, _ = d.ftvm("vmstats", "vm1")
    check(rc == 0 and "icount" in out and "cpu_time_ns" in out, "vmstats")
    rc, out, _ = d.ftvm("suspend", "vm1")
    check(rc == 0 and d.info("vm1").get("state") == "paused", "suspend")
    i1 = d.ask({"cmd": "stats", "name": "vm1"}).get("stats", {}).get("icount")
    time.sleep(0.5)
    i2 = d.ask({"cmd": "stats", "name": "vm1"}).get("stats", {}).get("icount")
    check(i1 is not None and i1 == i2, f"a suspended guest does not run ({i1} -> {i2})")
    rc, out, err = d.ftvm("suspend", "vm1")
    check(rc == 1 and "paused" in err, f"suspend twice is refused: {err.strip()}")
    rc, out, _ = d.ftvm("resume", "vm1")
    check(rc == 0 and d.info("vm1").get("state") == "running", "resume")
    rc, out, _ = d.ftvm("nodeinfo")
    check(rc == 0 and "cpus" in out and "memory_kib" in out, "nodeinfo")
    rc, out, err = d.ftvm("undefine", "vm1")
    check(rc == 1 and "running" in err, "undefine of a running VM is refused")
    rc, out, _ = d.ftvm("shutdown", "vm1")
    check(rc == 0 and wait_for(lambda: d.info("vm1").get("state") == "shutoff"), "shutdown stops it")
    check(not pid_alive(pid), "its process is gone")
    check(d.info("vm1").get("reason") == "shutdown", "stopped for the reason 'shutdown'")
    rc, out, _ = d.ftvm("start", "vm1")
    pid = vm_pid(d, "vm1")
    rc, out, _ = d.ftvm("destroy", "vm1")
    check(rc == 0 and d.info("vm1").get("state") == "shutoff" and not pid_alive(pid),
          "destroy: shut off when it returns, the process gone")
    rc, out, _ = d.ftvm("events")
    ev = events(d)
    want = [("vm1", "defined", "unknown"), ("vm1", "started", "booted"), ("vm1", "suspended", "user"),
            ("vm1", "resumed", "user"), ("vm1", "stopped", "shutdown"), ("vm1", "started", "booted"),
            ("vm1", "stopped", "destroyed")]
    check(ev == want, f"events in order: {ev}")
    check("stopped (destroyed)" in out, "ftvm events prints them")
    last = d.ask({"cmd": "events"}).get("last")
    check(d.ask({"cmd": "events", "since": last}).get("events") == [], "events since the last: none")
    # ftvm events --follow prints what happens from now on.
    follow = subprocess.Popen([FTVM, "events", "--follow", "--since", str(last), "--daemon-socket", d.sock],
                              stdout=subprocess.PIPE, text=True)
    d.ftvm("start", "vm1")
    d.ftvm("destroy", "vm1")
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(follow.stdout.readline() for _ in range(2)))
    reader.start()
    reader.join(timeout=20)
    follow.kill()
    follow.wait()
    check([line.split(" ", 1)[1].strip() for line in seen if " " in line] ==
          ["vm1 started (booted)", "vm1 stopped (destroyed)"], f"ftvm events --follow: {seen}")
    rc, out, _ = d.ftvm("undefine", "vm1")
    check(rc == 0 and not os.path.exists(os.path.join(d.state, "vms", "vm1.xml")), "undefine")
    rc, out, err = d.ftvm("dominfo", "vm1")
    check(rc == 1 and "no VM named" in err, "an undefined VM is gone")


def restart(d, tmp):
    path = os.path.join(tmp, "vm2.xml")
    with open(path, "w") as f:
        f.write(domain("vm2", TICK))
    d.ftvm("define", path)
    d.ftvm("start", "vm2")
    pid = vm_pid(d, "vm2")
    vm_id = d.info("vm2").get("id")
    check(wait_for(lambda: d.info("vm2").get("instructions", 0) > 100), "vm2 runs")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    time.sleep(0.3)
    check(pid_alive(pid), "the VM survives a SIGKILL of the daemon")
    d.start()
    info = d.info("vm2")
    check(info.get("state") == "running" and info.get("id") == vm_id, f"a new daemon finds it running: {info}")
    check(wait_for(lambda: d.info("vm2").get("instructions", 0) > 0), "and reads its status")
    rc, out, _ = d.ftvm("destroy", "vm2")
    check(rc == 0 and not pid_alive(pid) and d.info("vm2").get("state") == "shutoff", "and can destroy it")
    d.ftvm("start", "vm2")
    pid = vm_pid(d, "vm2")
    d.proc.send_signal(signal.SIGTERM)
    check(d.proc.wait(timeout=20) == 0, "SIGTERM ends ftvmd with status 0")
    check(pid_alive(pid), "leaving the VM running")
    d.start()
    check(d.info("vm2").get("state") == "running", "found again")
    d.ftvm("destroy", "vm2")


def drip(d, stop):
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    try:
        while not stop.is_set():
            s.send(b" ")
            time.sleep(0.5)
    except OSError:
        pass
    s.close()


def hostile(d, tmp):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(d.sock)
        f = s.makefile("rwb")
        for line, what in ((b"not json\n", "request is not a JSON object"), (b"[1,2]\n", "not a JSON object"),
                           (b'{"cmd":7}\n', "no \\\"cmd\\\" string"), (b'{"cmd":"reboot"}\n', "unknown"),
                           (b'{"cmd":"start","name":7}\n', "\\\"name\\\" must be"),
                           (b'{"cmd":"start","name":"../x"}\n', "\\\"name\\\" must be"),
                           (b'{"cmd":"start","name":"a\\u0000b"}\n', "not allowed"),
                           (b'{"cmd":"define","xml":5}\n', "\\\"xml\\\" must be"),
                           (b'{"cmd":"define","xml":"<domain>"}\n', "domain"),
                           (b'{"cmd":"events","since":-1}\n', "since")):
            f.write(line)
            f.flush()
            ans = f.readline()
            check(b'"ok":false' in ans and what.encode() in ans, f"{line.strip()[:40]!r} -> {ans.strip()[:100]!r}")
    big = "<domain>" + "x" * (300 * 1024) + "</domain>"
    ans = d.ask({"cmd": "define", "xml": big})
    check(ans.get("ok") is False and "256 KiB" in ans.get("error", ""), f"a 300 KiB definition: {ans.get('error')}")
    path = os.path.join(tmp, "big.xml")
    with open(path, "w") as f:
        f.write(big)
    rc, _, err = d.ftvm("define", path)
    check(rc == 1 and "larger than" in err, f"ftvm define refuses it before sending: {err.strip()}")
    ans = d.ask(None, raw=b'{"cmd":"list","pad":"' + b"y" * (MAX_REQUEST + 10))
    check("too long" in ans.get("error", ""), f"an endless request line: {ans}")
    # Clients that close mid-request, with and without a partial line.
    for i in range(50):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(d.sock)
            if i % 2:
                try:
                    s.send(b'{"cmd":"li')
                except (BrokenPipeError, ConnectionResetError):
                    pass  # already turned away (every slot busy): it vanishes all the same
    # The vanished ones may still hold every slot for a moment (longer on a loaded machine or
    # under ASan): come back, as clients do, for up to 10 s; a daemon that never answers fails.
    deadline = time.monotonic() + 10
    ans = d.ask({"cmd": "list"})
    while ans.get("ok") is not True and (not ans or ans.get("busy")) and time.monotonic() < deadline:
        time.sleep(0.2)
        ans = d.ask({"cmd": "list"})
    check(ans.get("ok") is True, f"after 50 clients vanished mid-request, list answers: {ans}")
    stop = threading.Event()
    dripper = threading.Thread(target=drip, args=(d, stop))
    dripper.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    ans = d.ask({"cmd": "list"})
    check(ans.get("ok") is True and time.monotonic() - t0 < 2, "a dripping client does not hold up the others")
    stop.set()
    dripper.join()
    # 100 clients at once: each gets one line (its answer, or a refusal to come back later).
    answers = [None] * 100

    def one(i):
        answers[i] = d.ask({"cmd": "list"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = sum(1 for a in answers if a.get("ok") is True)
    refused = sum(1 for a in answers if a.get("ok") is False and "too many" in a.get("error", ""))
    check(served + refused == 100 and served >= 16, f"100 clients at once: {served} served, {refused} told to retry")
    procs = [subprocess.Popen([FTVM, "list", "--daemon-socket", d.sock], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(30)]
    codes = [p.wait(timeout=60) for p in procs]
    check(codes.count(0) == 30, f"30 ftvm list at once all succeed (they retry a full server): {codes}")
    check(d.alive() and d.ask({"cmd": "list"}).get("ok") is True, "the daemon is alive and answers")


def as_user(d, groups, *args):
    """ftvm ARGS run as nobody with the given supplementary groups: (exit status, stderr)."""
    g = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", *g, FTVM, *args, "--daemon-socket", d.sock],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


def perms(tmp):
    d = Daemon(os.path.join(tmp, "perms"))
    os.makedirs(d.tmp)
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(d.sock).st_mode)
    check(mode == 0o600, f"the socket is mode {oct(mode)} under umask 000")
    if os.geteuid() == 0 and shutil.which("setpriv"):
        os.chmod(tmp, 0o755)
        os.chmod(d.tmp, 0o755)
        os.chmod(d.sock, 0o666)   # widened by hand: SO_PEERCRED still refuses a stranger
        rc, err = as_user(d, [], "list")
        check(rc == 1 and "permission denied" in err, f"another user is refused: {err.strip()}")
    d.proc.terminate()
    d.proc.wait(timeout=20)
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("not root or no setpriv: the --socket-group checks skipped")
        return
    gid = 1   # Debian's "daemon" group, of which nobody is not a member
    d = Daemon(os.path.join(tmp, "group"))
    os.makedirs(d.tmp, mode=0o755)
    d.proc = subprocess.Popen([FTVMD, "--state-dir", d.state, "--socket", d.sock, "--ftvm", FTVM,
                               "--socket-group", str(gid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(wait_for(lambda: os.path.exists(d.sock)), "ftvmd with --socket-group serves")
    st = os.stat(d.sock)
    check(stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid, f"the socket is 0660, group {st.st_gid}")
    rc, err = as_user(d, [gid], "list")
    check(rc == 0, f"a member of the group is served {err.strip()}")
    path = os.path.join(d.tmp, "g.xml")
    with open(path, "w") as f:
        f.write(domain("g", TICK))
    os.chmod(path, 0o644)
    rc, err = as_user(d, [gid], "define", path)
    check(rc == 1 and "only root and the daemon's user may define" in err, f"but may not define a VM: {err.strip()}")
    rc, err = as_user(d, [], "list")
    check(rc == 1 and ("denied" in err or "Permission" in err), f"a non-member is not: {err.strip()}")
    d.proc.terminate()
    d.proc.wait(timeout=20)


def guest(d, tmp):
    if GUEST == "-" or not os.path.exists(os.path.join(GUEST, "Image")):
        print("the bundled guest is not built: the guest scenario skipped")
        return
    path = os.path.join(tmp, "linux.xml")
    with open(path, "w") as f:
        f.write("<domain type='qemu'><name>linux</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                "<os><type arch='riscv64' machine='virt'>hvm</type></os></domain>\n")
    check(d.ftvm("define", path)[0] == 0 and d.ftvm("start", "linux")[0] == 0, "the bundled guest defined, started")
    log = os.path.join(d.state, "run", "linux.log")

    def console():
        try:
            with open(log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    check(wait_for(lambda: "ftvm-guest: ready" in console(), 120), "it boots to its ready line")
    d.ftvm("suspend", "linux")
    i1 = d.ask({"cmd": "stats", "name": "linux"}).get("stats", {}).get("icount")
    time.sleep(0.5)
    i2 = d.ask({"cmd": "stats", "name": "linux"}).get("stats", {}).get("icount")
    check(i1 is not None and i1 == i2 and i1 > 10**7, f"suspended at icount {i1}, it stays there")
    d.ftvm("resume", "linux")
    check(wait_for(lambda: (d.ask({"cmd": "stats", "name": "linux"}).get("stats", {}).get("icount") or 0) > i1),
          "resumed, it goes on")
    pid = vm_pid(d, "linux")
    t0 = time.monotonic()
    d.ftvm("shutdown", "linux")
    check(wait_for(lambda: d.info("linux").get("state") == "shutoff", 30) and not pid_alive(pid),
          f"shutdown stops it ({time.monotonic() - t0:.2f} s)")
    d.ftvm("undefine", "linux")


def main():
    if TICK == "-":
        print("no bare-metal programs: skipped")
        return 77
    tmp = tempfile.mkdtemp(prefix="ftvmd-test-")
    d = Daemon(tmp)
    try:
        d.start()
        verbs(d, tmp)
        guest(d, tmp)
        restart(d, tmp)
        hostile(d, tmp)
        perms(tmp)
    finally:
        for name in ("vm1", "vm2", "linux"):
            pid = vm_pid(d, name)
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if d.proc and d.alive():
            d.proc.kill()
            d.proc.wait()
    return outcome(tmp)


if __name__ == "__main__":
    sys.exit(main())
