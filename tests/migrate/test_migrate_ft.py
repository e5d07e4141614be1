#!/usr/bin/env python3
"""test_migrate_ft.py — live migration of an FT-protected VM (docs/migration.md, "Migrating an FT
node"), end to end with the bundled guest serving kvd on three namespace hosts (scripts/ft-topology
up3): the primary on host A, its backup on host B, the destination `ftvm incoming --spare` on
host C. One client writes over one TCP connection throughout.

  1. Fault: the migration A -> C crawls (--bandwidth 8) and the destination is killed in its
     pre-copy: `ftvm migrate` fails, the source runs on as the primary of epoch 1, still
     protected by its backup, and the writes go on.
  2. Fault after the whole state arrived: the destination, held by the test-only hook
     (FTVM_TEST_MIGRATE_STALL) once it confirmed COMPLETE, is killed there. The source, without
     the hand-over's confirmation, asks the arbiter and wins epoch 2 itself: its pairing of epoch
     1 is spent, so it ends its log (the backup, seeing epoch 2 decided, becomes a spare again),
     runs on alone and clones back to that spare (given --spare): protected again in epoch 4.
  3. The move: a new destination on C, the migration A -> C. The source hands over (epoch 5,
     judged in the arbiter area) and exits; its backup on B, whose primary ended the log for a
     newer epoch, becomes a spare again; C runs the VM alone and clones it at once to that spare,
     which becomes its backup: C is protected again (status: a backup, epoch 7). The time from
     the migrate command to protected again is printed.
  4. A backup gone live moves too: C (the primary) is killed, B goes live in epoch 7 (node 1)
     and, its own spare never answering, runs alone; it is migrated to a new destination on C
     (hand-over in epoch 8, to node 0), which clones to a spare started on A: protected again
     in epoch 10.
  5. A stale backup: C's backup on A is frozen (SIGSTOP); C, alone after winning epoch 10, is
     migrated to B (epoch 11). The frozen backup, thawed, finds its primary gone and claims epoch
     10: refused (a later epoch is decided), it halts for good, saying so (exit 6). A spare
     started on A in its place makes B protected again in epoch 13.
  6. Stale nodes: claims of the old pairings' epochs 1, 4, 7 and 10 and of the hand-overs' epochs
     5, 8 and 11 by the nodes that lost them are all refused by the arbiter.
  7. The client's one connection never broke and every acknowledged write reads back.
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
import test_clone as tc  # noqa: E402  (the client helpers of the FT clone tests)

LOG_PORT = ftlab.LOG_PORT
IN_PORT = 7710
C_ON_A_LINK = "10.78.1.3"   # host C on its link to A: the destination's address
B_ON_C_LINK = "10.78.2.2"   # host B on its link to C: the spare the destination clones to


def check(cond, what, nodes=()):
    tc.check(cond, what, [n for n in nodes if n])


def sock(lab, host):
    return os.path.join(lab.workdir, f"{host}.sock")


def start(lab, host, verb, tag, extra, env=()):
    argv = ["ip", "netns", "exec", lab.ns(host), "env"] + list(env) + [ftlab.ftvm_binary(), verb] + extra + \
        ["--control", sock(lab, host)] + lab.ft_options() + lab.run_options(host)
    return ftlab.Node(f"{verb}-{host}{tag}", argv)


def start_incoming(lab, tag, stall=None, listen=C_ON_A_LINK, spare=B_ON_C_LINK):
    n = start(lab, "c", "incoming", tag, ["--listen", f"{listen}:{IN_PORT}",
                                         "--spare", f"{spare}:{LOG_PORT}"],
              env=[f"FTVM_TEST_MIGRATE_STALL={stall}"] if stall else [])
    n.wait_for("waiting for its migration", 60)
    return n


def migrate(lab, extra=(), src="a", to=C_ON_A_LINK):
    return subprocess.Popen(["ip", "netns", "exec", lab.ns(src), ftlab.ftvm_binary(), "migrate",
                             "--control", sock(lab, src), "--to", f"{to}:{IN_PORT}",
                             "--channel-key", lab.key] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_precopy(lab, proc, nodes, timeout=90):
    """Until A's migration job has sent pages (the fault lands in the pre-copy, never before): A's
    status then, which shows the job's phase beside the FT state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        st = tc.status(lab, "a")
        job = st.get("job") or {}
        if job.get("kind") == "migrate" and job.get("state") == "running" and job.get("bytes_done", 0) > 0:
            return st
        time.sleep(0.05)
    check(False, f"the migration never streamed (ftvm migrate exited {proc.poll()})", nodes)


def claim(lab, epoch, node):
    out = subprocess.run([ftlab.ftvm_binary(), "arbiter", "claim", lab.arbiter, "--epoch", str(epoch),
                          "--node", str(node), "--vm", lab.vm_name(), "--timeout", "20"],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, (out.stdout + out.stderr).strip()


def start_pair(lab, backup_extra, primary_extra):
    """The backup on B (listening on every address of B) and its primary on A: [primary, backup]."""
    backup = start(lab, "b", "backup", "0", ["--listen", f"0.0.0.0:{LOG_PORT}"] + backup_extra)
    backup.wait_for("listening on", 30)
    return [start(lab, "a", "primary", "0", ["--peer", f"10.78.0.2:{LOG_PORT}"] + primary_extra), backup]


def start_writes(lab, primary, logfile, stopfile, prefix, nodes):
    """Once the guest is ready, the client writing over one TCP connection: its process."""
    primary.wait_for("ftvm-guest: ready", 180)
    writer = tc.start_writer(lab, logfile, stopfile, prefix)
    check(tc.wait_acked_beyond(logfile, 20, 60) is not None, "writes never flowed", nodes)
    return writer


def run(lab, workdir):
    logfile, stopfile = os.path.join(workdir, "acked.txt"), os.path.join(workdir, "stop")
    # The backup listens on every address of host B: the primary reaches it over the A-B link,
    # the destination (once it is a spare again) over the C-B link.
    # Its --spare names a port where nothing listens: once live (step 4) it stays alone.
    nodes = start_pair(lab, ["--spare", f"10.78.0.1:{LOG_PORT + 1}"], ["--spare", f"10.78.0.2:{LOG_PORT}"])
    primary, backup = nodes
    writer = None
    try:
        writer = start_writes(lab, primary, logfile, stopfile, "m-", nodes)

        # 1. The destination killed in the pre-copy: the source stays a protected primary.
        dest = start_incoming(lab, "1")
        nodes.append(dest)
        proc = migrate(lab, ["--bandwidth", "8"])
        st = wait_precopy(lab, proc, nodes)
        check(st.get("state") == "protected" and st["job"].get("phase") == "precopy",
              f"the source during its pre-copy: {st}", nodes)
        dest.kill()
        dest.wait(10)
        _, err = proc.communicate(timeout=120)
        check(proc.returncode == 1, f"the migration to a killed destination exited {proc.returncode}: {err}", nodes)
        print(f"destination killed in the pre-copy: {err.strip().splitlines()[-1]}", flush=True)
        st = tc.wait_status(lab, "a", lambda s: s.get("state") == "protected", 30)
        check(st.get("role") == "primary" and st.get("state") == "protected" and st.get("epoch") == 1,
              f"after the failed migration the source is {st}", nodes)
        st = tc.status(lab, "b")
        check(st.get("state") == "protected" and st.get("epoch") == 1, f"after the failed migration the backup is {st}",
              nodes)
        check(tc.wait_acked_beyond(logfile, tc.acked_lines(logfile) + 20, 30) is not None,
              "writes stopped after the failed migration", nodes)

        # 2. The destination killed once it holds the whole state: the source wins epoch 2 itself,
        # drops its pairing's backup (a spare again) and clones back to it.
        stallfile = os.path.join(workdir, "stall")
        with open(stallfile, "w") as f:
            f.write("dest-complete\n")
        dest = start_incoming(lab, "2", stall=stallfile)
        nodes.append(dest)
        proc = migrate(lab)
        dest.wait_for("migration test hook: at dest-complete", 120)
        dest.kill()
        dest.wait(10)
        _, err = proc.communicate(timeout=120)
        check(proc.returncode == 1 and "the arbiter gave epoch 2 to this host" in err,
              f"the source did not keep the VM in epoch 2 ({proc.returncode}): {err}", nodes)
        print(f"destination killed after COMPLETE: {err.strip().splitlines()[-1]}", flush=True)
        primary.wait_for("the migration's source kept the VM in epoch 2", 30)
        backup.wait_for("this node is a spare again", 60)
        primary.wait_for(r"protected again: primary of epoch 4 ", 120)
        backup.wait_for(r"clone complete .* backup of epoch 4", 30)
        st = tc.wait_status(lab, "a", lambda s: s.get("state") == "protected", 30)
        check(st.get("state") == "protected" and st.get("epoch") == 4, f"after the regroup the source is {st}", nodes)
        check(tc.wait_acked_beyond(logfile, tc.acked_lines(logfile) + 20, 30) is not None,
              "writes stopped after the regroup", nodes)

        # 3. The move A -> C; B becomes C's backup by a clone.
        dest = start_incoming(lab, "3")
        nodes.append(dest)
        t0 = time.monotonic()
        proc = migrate(lab)
        _, err = proc.communicate(timeout=300)
        check(proc.returncode == 0, f"ftvm migrate exited {proc.returncode}: {err}", nodes)
        print(f"migrated: {err.strip().splitlines()[-1]}", flush=True)
        code = primary.wait(60)
        check(code == 0, f"the source exited {code} after the hand-over", nodes)
        dest.wait_for(r"runs alone in epoch 5", 30)
        backup.wait_for(r"past this pairing's \(4\).*spare again", 60)
        line = dest.wait_for(r"protected again: primary of epoch \d+", 120)
        t_protected = dest.time_of(r"protected again")
        backup.wait_for(r"clone complete .* backup of epoch 7", 30)
        check("epoch 7 with" in line, f"the new pairing: {line}", nodes)
        st = tc.wait_status(lab, "c", lambda s: s.get("state") == "protected", 30)
        check(st.get("role") == "primary" and st.get("state") == "protected" and st.get("epoch") == 7
              and st.get("clones") == 1, f"the destination's status: {st}", nodes)
        st = tc.wait_status(lab, "b", lambda s: s.get("state") == "protected", 30)
        check(st.get("role") == "backup" and st.get("epoch") == 7, f"the old backup's status: {st}", nodes)
        check(tc.wait_acked_beyond(logfile, tc.acked_lines(logfile) + 20, 30) is not None,
              "writes stopped after the move", nodes)

        # 4. The backup gone live, alone, moves to C; C clones to a spare on A.
        dest.kill()
        dest.wait(10)
        backup.wait_for("live as primary", 30)
        st = tc.wait_status(lab, "b", lambda s: s.get("state") == "alone", 30)
        check(st.get("role") == "primary" and st.get("epoch") == 7, f"the backup gone live: {st}", nodes)
        spare = start(lab, "a", "spare", "1", ["--listen", f"0.0.0.0:{LOG_PORT}"])
        nodes.append(spare)
        spare.wait_for("waiting for a clone", 60)
        dest = start_incoming(lab, "4", listen="10.78.2.3", spare="10.78.1.1")
        nodes.append(dest)
        proc = migrate(lab, src="b", to="10.78.2.3")
        _, err = proc.communicate(timeout=300)
        check(proc.returncode == 0, f"ftvm migrate of the backup gone live exited {proc.returncode}: {err}", nodes)
        code = backup.wait(60)
        check(code == 0, f"the backup gone live exited {code} after the hand-over", nodes)
        dest.wait_for(r"runs alone in epoch 8", 30)
        dest.wait_for(r"protected again: primary of epoch 10 ", 120)
        spare.wait_for(r"clone complete .* backup of epoch 10", 30)
        st = tc.wait_status(lab, "c", lambda s: s.get("state") == "protected", 30)
        check(st.get("epoch") == 10, f"the destination's status: {st}", nodes)
        check(tc.wait_acked_beyond(logfile, tc.acked_lines(logfile) + 20, 30) is not None,
              "writes stopped after the second move", nodes)

        # 5. C's backup frozen: C goes alone (epoch 10), moves to B (11); the thawed backup claims
        # epoch 10, loses and halts; a spare on A in its place makes B protected (13).
        backup = spare
        os.killpg(backup.proc.pid, signal.SIGSTOP)
        st = tc.wait_status(lab, "c", lambda s: s.get("state") == "alone", 30)
        check(st.get("state") == "alone" and st.get("epoch") == 10, f"C without its frozen backup: {st}", nodes)
        primary = dest
        dest = start(lab, "b", "incoming", "5", ["--listen", f"{B_ON_C_LINK}:{IN_PORT}",
                                                  "--spare", f"10.78.0.1:{LOG_PORT}"])
        nodes.append(dest)
        dest.wait_for("waiting for its migration", 60)
        proc = migrate(lab, src="c", to=B_ON_C_LINK)
        _, err = proc.communicate(timeout=300)
        check(proc.returncode == 0, f"ftvm migrate of C exited {proc.returncode}: {err}", nodes)
        check(primary.wait(60) == 0, "the source C did not stop after the hand-over", nodes)
        dest.wait_for(r"runs alone in epoch 11", 30)
        os.killpg(backup.proc.pid, signal.SIGCONT)
        code = backup.wait(60)
        check(code == 6 and "halting this VM" in backup.output(), f"the stale backup on A exited {code}", nodes)
        print(f"stale backup: {backup.wait_for('halting this VM', 1)}", flush=True)
        spare = start(lab, "a", "spare", "2", ["--listen", f"0.0.0.0:{LOG_PORT}"])
        nodes.append(spare)
        dest.wait_for(r"protected again: primary of epoch 13 ", 120)
        spare.wait_for(r"clone complete .* backup of epoch 13", 30)
        check(tc.wait_acked_beyond(logfile, tc.acked_lines(logfile) + 20, 30) is not None,
              "writes stopped after the third move", nodes)

        # 6. The area's decisions name each step's winner, and nodes of the older pairings win nothing.
        out = subprocess.run([ftlab.ftvm_binary(), "arbiter", "show", lab.arbiter, "--json"], capture_output=True,
                             text=True, timeout=60)
        decided = {d["epoch"]: d["winner"] for d in json.loads(out.stdout)["decided"]}
        # 2 the source kept the VM (node 0), 3 its clone's pairing, 5 the move to C (node 1), 6 C's
        # clone, 7 B going live (node 1), 8 the move of B to C (node 0), 9 C's clone, 10 C alone
        # (node 0), 11 the move of C to B (node 1), 12 B's clone.
        expected = {2: 0, 3: 0, 5: 1, 6: 0, 7: 1, 8: 0, 9: 0, 10: 0, 11: 1, 12: 0}
        check(all(decided.get(e) == w for e, w in expected.items()) and 1 not in decided and 4 not in decided,
              f"the arbiter's decisions {decided}, expected {expected}", nodes)
        for epoch, node, who in ((1, 1, "the first backup"), (4, 1, "the old backup"), (5, 0, "the old source"),
                                 (7, 0, "the killed primary"), (8, 1, "the backup gone live"),
                                 (10, 1, "the frozen backup"), (11, 0, "C")):
            rc, out = claim(lab, epoch, node)
            check(rc != 0, f"{who} won epoch {epoch}: {out}", nodes)
            print(f"{who} claiming epoch {epoch}: exit {rc}: {out}", flush=True)

        # 7. Nothing acknowledged is lost, the connection never broke.
        summary, v = tc.finish_and_verify(lab, writer, stopfile, logfile, nodes)
        writer = None
        if lab.disk_mode == "replicated":
            # The last pair's replicas (B's, copied from C, cloned to A's) are equal once the backup
            # on A replayed to the primary's icount, with the client stopped.
            time.sleep(1.0)
            target = tc.status(lab, "b").get("icount", 0)
            st = tc.wait_status(lab, "a", lambda s: s.get("icount", 0) >= target, 60)
            check(st.get("icount", 0) >= target, f"the backup on A did not replay to icount {target}: {st}", nodes)
            off = ftlab.first_difference(lab.disks["b"], lab.disks["a"])
            check(off is None, f"the replicas of B and A differ at byte {off}", nodes)
        return {"acked": summary["acked"], "verified": v["verified"], "reconnects": summary["reconnects"],
                "max_client_gap_ms": round(summary["max_gap_s"] * 1000),
                "migrate_to_protected_ms": round((t_protected - t0) * 1000)}
    finally:
        stop_all(writer, stopfile, nodes)


def stop_all(writer, stopfile, nodes):
    """The end of a run, passed or not: the client stopped, every node killed."""
    if writer:
        open(stopfile, "w").close()
        writer.kill()
    for n in nodes:
        n.kill()


def lab_main(scenario, name, tag, disk_mode="shared"):
    """Runs scenario(lab, workdir) on three namespace hosts (their names start with @tag) and prints
    its summary: the exit status (77 without root or the bundled guest)."""
    if os.geteuid() != 0 or not os.path.exists(os.path.join(ftlab.guest_dir(), "Image")):
        print("skipped: needs root and the bundled guest")
        return 77
    workdir = tempfile.mkdtemp(prefix=f"ftvm-{name}-")
    lab = ftlab.Lab(f"{tag}{os.getpid() % 1000}", workdir, timeout_ms=None, hosts=3, disk_mode=disk_mode)
    if disk_mode == "shared":
        lab.disks["c"] = lab.disk  # one shared disk, seen by the three hosts
    else:
        # A replica per host, all empty at first: each migration copies the source's into C's.
        lab.disks["c"] = os.path.join(workdir, "disk-c.img")
        with open(lab.disks["c"], "wb") as f:
            f.truncate(os.path.getsize(lab.disks["a"]))
    try:
        print(json.dumps(scenario(lab, workdir)), flush=True)
    finally:
        lab.close()
    return ftlab.sanitizer_verdict()


def main():
    disk_mode = sys.argv[sys.argv.index("--disk-mode") + 1] if "--disk-mode" in sys.argv else "shared"
    return lab_main(run, "migrate-ft", "mf", disk_mode)


if __name__ == "__main__":
    sys.exit(main())
