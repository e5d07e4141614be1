#!/usr/bin/env python3
"""test_snapshot.py — `ftvm snapshot` end to end with real processes (docs/control.md, snapshot).

usage: test_snapshot.py SCENARIO
  refusals        the bundled guest under `ftvm run`: an existing FILE without --force, a symbolic
                  link (even with --force), a directory that does not exist, a relative path in a
                  raw request, a second snapshot while one runs, bad arguments; status answered
                  at once while a snapshot runs; after each the VM
                  runs on (its icount grows) and no partial file is left; then a live snapshot
                  (mode 0600) and `ftvm run --restore` of it runs on.
  cold-migration  kvd under `ftvm run` on host A of scripts/ft-topology with a client writing keys
                  over one TCP connection; `ftvm snapshot --stop` while it writes; `ftvm run
                  --restore` of the file on host B with the same (shared) disk; the client's
                  connection carries on and every acknowledged key reads back. Then a full clone:
                  the VM on B saved with --stop, restored on A with a copy of the disk and a new
                  MAC (accepted, and said so), while another memory size is refused by name.
  ft-primary      an FT pair (tests/ft/ftlab.py) under a writing client: three live snapshots of
                  the primary; the backup stays protected (its CHECK digests keep matching, so no
                  divergence) and the backup's control socket refuses a snapshot; every
                  acknowledged key reads back; then the last snapshot, restored under `ftvm run`
                  with a copy of the disk, serves every key acknowledged before it began.
Prints one JSON line of measurements and exits non-zero on the first failed check, 77 to skip.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ft"))
import ftlab  # noqa: E402

FTVM = ftlab.ftvm_binary()


def check(cond, what, *nodes):
    if not cond:
        for n in nodes:
            if n:
                print(f"--- {n.name} output (tail) ---\n{n.output()[-4000:]}", file=sys.stderr)
        raise SystemExit(f"FAILED: {what}")


def ftvm(*args, ns=None):
    argv = ([ "ip", "netns", "exec", ns] if ns else []) + [FTVM] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def status(sock):
    out = ftvm("status", "--json", "--control", sock)
    return json.loads(out.stdout) if out.returncode == 0 else None


def raw(sock, lines):
    """Sends request lines on one connection and returns the answers, in order."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall("".join(l + "\n" for l in lines).encode())
    buf = b""
    while buf.count(b"\n") < len(lines):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return [json.loads(l) for l in buf.decode().splitlines()]


def wait_job_end(sock, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(sock)
        if st and st.get("job", {}).get("state") != "running":
            return st
        time.sleep(0.05)
    raise SystemExit("FAILED: the job did not end")


def grows(sock, node):
    """The guest executes on (an idle guest's timer wakes it within a few seconds)."""
    a = status(sock)
    deadline = time.monotonic() + 10
    while True:
        time.sleep(0.2)
        b = status(sock)
        if a and b and b["icount"] > a["icount"]:
            return
        check(time.monotonic() < deadline, f"the VM does not run on: {a} {b}", node)


def no_partials(d):
    left = [f for f in os.listdir(d) if f.endswith(".partial")]
    check(not left, f"partial files left: {left}")


def scenario_refusals(work):
    sock = os.path.join(work, "run.sock")
    vm = ftlab.Node("run", [FTVM, "run", "--control", sock, "--mem", "256"])
    try:
        vm.wait_for("ftvm-guest: ready", 120)
        snap = os.path.join(work, "a.snap")
        out = ftvm("snapshot", "--control", sock, snap)
        check(out.returncode == 0 and "saved" in out.stderr, f"snapshot: {out.stderr}", vm)
        check(os.stat(snap).st_mode & 0o777 == 0o600, "the snapshot is not mode 0600")
        saved_line = out.stderr.strip()

        out = ftvm("snapshot", "--control", sock, snap)
        check(out.returncode == 1 and "the file exists (--force replaces it)" in out.stderr, f"existing: {out.stderr}")
        link = os.path.join(work, "link.snap")
        os.symlink(os.path.join(work, "target"), link)
        for force in ([], ["--force"]):
            out = ftvm("snapshot", "--control", sock, *force, link)
            check(out.returncode == 1 and "symbolic link" in out.stderr, f"symlink: {out.stderr}")
        check(not os.path.exists(os.path.join(work, "target")), "written through a symbolic link")
        out = ftvm("snapshot", "--control", sock, os.path.join(work, "no-such-dir", "x.snap"))
        check(out.returncode == 1 and "No such file or directory" in out.stderr, f"bad dir: {out.stderr}")
        out = ftvm("snapshot", "--control", sock, "--role", "primary", snap)
        check(out.returncode == 1, "--control with a --role still answered by the socket")
        out = ftvm("snapshot", "--vm", "no-such-vm-ftvm", "x.snap")
        check(out.returncode == 1 and "cannot reach the control socket" in out.stderr, f"no node: {out.stderr}")
        out = ftvm("snapshot", "--control", sock)
        check(out.returncode == 2, "no FILE accepted")
        out = ftvm("snapshot", "--bogus", "--control", sock, "x")
        check(out.returncode == 2, "unknown option accepted")
        answers = raw(sock, ['{"cmd":"snapshot","path":"relative.snap"}', '{"cmd":"snapshot"}',
                             '{"cmd":"snapshot","path":"/tmp/x","force":"yes"}',
                             '{"cmd":"snapshot","path":"/tmp/x","stop":1}'])
        check(all(not a["ok"] for a in answers), f"bad arguments accepted: {answers}")
        check("absolute" in answers[0]["error"] and "true or false" in answers[2]["error"], f"{answers}")
        # A second job while one runs: both requests on one connection, the second answered at once.
        two = os.path.join(work, "b.snap"), os.path.join(work, "c.snap")
        answers = raw(sock, [json.dumps({"cmd": "snapshot", "path": p}) for p in two] + ['{"cmd":"status"}'])
        check(answers[0]["ok"] and not answers[1]["ok"] and "one job at a time" in answers[1]["error"],
              f"second job: {answers}")
        check(answers[2]["ok"] and answers[2]["job"]["state"] in ("running", "done"), f"status: {answers[2]}")
        st = wait_job_end(sock)
        check(st["job"]["state"] == "done" and st["job"]["phase"] == "saved", f"first job: {st}")
        check(os.path.exists(two[0]) and not os.path.exists(two[1]), "which files exist after a refusal")
        # Status answers at once while a job runs (the job holds the machine only as a reader).
        seen_running = 0
        for i in range(3):
            answers = raw(sock, [json.dumps({"cmd": "snapshot", "path": os.path.join(work, f"e{i}.snap")})])
            check(answers[0]["ok"], f"snapshot e{i}: {answers}")
            t0 = time.monotonic()
            st = raw(sock, ['{"cmd":"status"}'])[0]
            took = time.monotonic() - t0
            if st["job"]["state"] == "running":
                seen_running += 1
                check(took < 0.1, f"status took {took:.3f} s during a job")
            wait_job_end(sock)
        check(seen_running > 0, "never saw a job running: status waits for it?")
        grows(sock, vm)
        no_partials(work)
    finally:
        vm.kill()
        vm.wait(10)

    # The live snapshot restores and runs on.
    sock2 = os.path.join(work, "run2.sock")
    vm2 = ftlab.Node("restored", [FTVM, "run", "--restore", snap, "--control", sock2, "--mem", "256"])
    try:
        vm2.wait_for("restored", 30)
        time.sleep(1)
        grows(sock2, vm2)
        out = ftvm("snapshot", "--control", sock2, "--stop", os.path.join(work, "d.snap"))
        check(out.returncode == 0 and "stopped for good" in out.stderr, f"--stop: {out.stderr}", vm2)
        check(vm2.wait(10) == 0, f"the stopped VM exits {vm2.proc.returncode}", vm2)
        check("stopped for good after its snapshot" in vm2.output(), "no stop message", vm2)
    finally:
        vm2.kill()
    return {"snapshot": saved_line}


class Writer:
    """kvclient.py writing COUNT keys over one connection from the client's namespace."""

    def __init__(self, lab, log, count):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("cl"), "python3", os.path.join(ftlab.HERE, "kvclient.py"), "write",
             ftlab.GUEST_IP, "--count", str(count), "--delay-ms", "2", "--log", log],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, timeout=300):
        out, err = self.proc.communicate(timeout=timeout)
        check(self.proc.returncode == 0, f"client failed: {err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])


def acked(log):
    if not os.path.exists(log):
        return 0
    with open(log) as f:
        return sum(1 for line in f if line.strip())


def wait_acked(log, n, timeout=120, node=None):
    deadline = time.monotonic() + timeout
    while acked(log) < n:
        check(time.monotonic() < deadline, f"fewer than {n} writes acknowledged", node)
        time.sleep(0.05)


def verify(lab, log, *nodes):
    out = lab.client(["python3", os.path.join(ftlab.HERE, "kvclient.py"), "verify", ftlab.GUEST_IP, "--log", log],
                     capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, f"verification failed: {out.stdout} {out.stderr[-2000:]}", *nodes)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scenario_cold_migration(work):
    lab = ftlab.Lab(f"s{os.getpid() % 10000}", work)
    a = b = None
    try:
        sock_a, sock_b = os.path.join(work, "a.sock"), os.path.join(work, "b.sock")
        a = ftlab.Node("host-a", ["ip", "netns", "exec", lab.ns("a"), FTVM, "run", "--control", sock_a]
                       + lab.run_options())
        a.wait_for("ftvm-guest: ready", 120)
        log = os.path.join(work, "acked.log")
        writer = Writer(lab, log, 1500)
        wait_acked(log, 300, node=a)
        snap = os.path.join(work, "vm.snap")
        out = ftvm("snapshot", "--control", sock_a, "--stop", snap)
        check(out.returncode == 0, f"snapshot --stop: {out.stderr}", a)
        at_stop = acked(log)
        check(a.wait(10) == 0, "host A's VM did not stop", a)
        t0 = time.monotonic()
        b = ftlab.Node("host-b", ["ip", "netns", "exec", lab.ns("b"), FTVM, "run", "--restore", snap,
                                  "--control", sock_b] + lab.run_options())
        b.wait_for("restored", 30)
        summary = writer.finish()
        check(summary["acked"] == 1500, f"the client did not finish its writes: {summary}", b)
        result = verify(lab, log, b)
        check(result["verified"] == 1500, f"not every key read back: {result}", b)
        clone = clone_check(lab, work, sock_b, b)
        return {"clone": clone, "snapshot": out.stderr.strip(), "acked_at_stop": at_stop, "client": summary,
                "restore_to_end_s": round(time.monotonic() - t0, 2), "verified": result["verified"]}
    finally:
        for n in (a, b):
            if n:
                n.kill()
        lab.close()


def clone_check(lab, work, sock_b, b):
    snap = os.path.join(work, "clone.snap")
    out = ftvm("snapshot", "--control", sock_b, "--stop", snap)
    check(out.returncode == 0 and b.wait(10) == 0, f"snapshot --stop on B: {out.stderr}", b)
    disk = os.path.join(work, "clone-disk.img")
    subprocess.run(["cp", "--sparse=always", lab.disk, disk], check=True)
    opts = ["--disk", disk, "--nic", "tap=vmtap,mac=52:54:00:aa:bb:cc"] + lab.run_options()[4:]
    bad = ftvm("run", "--restore", snap, "--mem", "192", *opts, ns=lab.ns("a"))
    check(bad.returncode == 1 and "memory 192 MiB here" in bad.stderr, f"another memory size: {bad.stderr}")
    sock_c = os.path.join(work, "clone.sock")
    c = ftlab.Node("clone", ["ip", "netns", "exec", lab.ns("a"), FTVM, "run", "--restore", snap, "--control",
                             sock_c] + opts)
    try:
        line = c.wait_for("clone: NIC 0 keeps MAC 52:54:00:12:34:56 .* MAC 52:54:00:aa:bb:cc from its next reset", 30)
        c.wait_for("restored", 30)
        grows(sock_c, c)
        return line
    finally:
        c.kill()


def restore_primary_snapshot(lab, work, snap, log, acked_before):
    """The pair ends; the primary's last snapshot runs under `ftvm run` on host A with a copy of
    the disk and serves every key acknowledged before that snapshot began."""
    for n in (lab.primary, lab.backup):
        n.kill()
        n.wait(10)
    lab.primary = lab.backup = None
    disk = os.path.join(work, "restore-disk.img")
    subprocess.run(["cp", "--sparse=always", lab.disk, disk], check=True)
    vm = ftlab.Node("restored", ["ip", "netns", "exec", lab.ns("a"), FTVM, "run", "--restore", snap, "--control",
                                 os.path.join(work, "restored.sock"), "--disk", disk] + lab.run_options()[2:])
    try:
        vm.wait_for("restored", 30)
        early = os.path.join(work, "early.log")
        with open(log) as f, open(early, "w") as out:
            out.writelines(f.readlines()[:acked_before])
        result = verify(lab, early, vm)
        check(result["verified"] == acked_before, f"the restored primary lost keys: {result}", vm)
        return result["verified"]
    finally:
        vm.kill()


def scenario_ft_primary(work):
    lab = ftlab.Lab(f"p{os.getpid() % 10000}", work)
    try:
        lab.start()
        psock, bsock = os.path.join(work, "primary.sock"), os.path.join(work, "backup.sock")
        log = os.path.join(work, "acked.log")
        writer = Writer(lab, log, 1200)
        lines = []
        for i in range(3):
            wait_acked(log, 200 * (i + 1), node=lab.primary)
            acked_before = acked(log)   # acknowledged before the last snapshot began
            snap = os.path.join(work, f"p{i}.snap")
            out = ftvm("snapshot", "--control", psock, snap)
            check(out.returncode == 0, f"snapshot of the primary: {out.stderr}", lab.primary, lab.backup)
            lines.append(out.stderr.strip())
        out = ftvm("snapshot", "--control", bsock, os.path.join(work, "b.snap"))
        check(out.returncode == 1 and "refused on a backup" in out.stderr, f"backup: {out.stderr}")
        out = ftvm("snapshot", "--control", psock, "--stop", os.path.join(work, "stop.snap"))
        check(out.returncode == 1 and "refused on an FT primary" in out.stderr, f"--stop on a primary: {out.stderr}")
        summary = writer.finish()
        check(summary["acked"] == 1200, f"client: {summary}", lab.primary, lab.backup)
        time.sleep(1)
        ps, bs = status(psock), status(bsock)
        check(ps and ps["state"] == "protected" and bs and bs["state"] == "protected",
              f"the pair is no longer in sync: {ps} {bs}", lab.primary, lab.backup)
        check("diverge" not in lab.backup.output(), "the backup reported a divergence", lab.backup)
        result = verify(lab, log, lab.primary, lab.backup)
        check(ps["acked_lsn"] > 0 and bs["last_lsn"] > 0, "no log flowed")
        restored = restore_primary_snapshot(lab, work, snap, log, acked_before)
        return {"snapshots": lines, "client": summary, "verified": result["verified"],
                "primary_icount": ps["icount"], "backup_icount": bs["icount"], "restored": restored}
    finally:
        lab.close()


SCENARIOS = {"refusals": scenario_refusals, "cold-migration": scenario_cold_migration,
             "ft-primary": scenario_ft_primary}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(ftlab.guest_dir(), "Image")):
        print(f"SKIP: no bundled guest in {ftlab.guest_dir()}")
        return 77
    if sys.argv[1] != "refusals" and os.geteuid() != 0:
        print("SKIP: network namespaces need root")
        return 77
    work = tempfile.mkdtemp(prefix=f"ftvm-snap-{sys.argv[1]}-")
    print(json.dumps({"scenario": sys.argv[1], **SCENARIOS[sys.argv[1]](work)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
