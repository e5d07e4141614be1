#!/usr/bin/env python3
"""test_migrate_ft_live.py — two cases of live-migrating FT nodes (docs/migration.md, "Migrating an
FT node") that migrate.ft does not cover, end to end with the bundled guest serving kvd on three
namespace hosts (scripts/ft-topology up3) and one client writing over one TCP connection throughout:

  1. A backup gone live without --spare moves: the primary on A is killed, its backup on B (given
     no --spare) goes live in epoch 1 as node 1 and runs alone; `ftvm migrate` moves it to
     `ftvm incoming --spare` on C (hand-over in epoch 2, to node 0), which clones to a spare
     started on A: protected again in epoch 4. B exits 0 once it handed over; the arbiter's
     decisions name each winner, and the claims of the dead primary (epoch 1) and of the old copy
     on B (epoch 2) are refused.
  2. The hand-over's judgement window: C (the primary of epoch 4, its backup on A) is migrated to
     a destination on B held by the test-only hook (FTVM_TEST_MIGRATE_STALL) once it confirmed
     COMPLETE, and killed there: C, without the hand-over's confirmation, claims epoch 5 and wins
     it, and is held by the hook right after its claim (source-judged). There the backup on A is
     killed: C's primary claims epoch 4, which the arbiter refuses (epoch 5 is decided), and it
     waits for the hand-over's judgement instead of halting. Let go, C runs on alone in epoch 5:
     exactly one copy runs (the destination never ran, the backup is gone), C is not halted, and
     the writes go on.
  3. The same window, the destination winning: C, protected again by a spare on A (epoch 7), is
     migrated to B; B's destination, held once it read HANDOVER, loses its link to C, then wins
     epoch 8 and runs; C, without the ACK, claims epoch 8 too, loses, and is held right there;
     its backup killed then, C's primary, its claim of epoch 7 refused, waits for the judgement,
     and once let go C stops as a source that handed over (exit 0): B is the one copy running.
  4. The client's one connection never broke and every acknowledged write reads back.
Exit 77 (skip) without root or the bundled guest.
"""
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ft"))
sys.path.insert(0, HERE)
import ftlab  # noqa: E402
import test_clone as tc  # noqa: E402  (the client helpers of the FT clone tests)
import test_migrate_ft as mf  # noqa: E402  (the nodes and commands of migrate.ft)

LOG_PORT = ftlab.LOG_PORT
IN_PORT = mf.IN_PORT
A_ON_C_LINK = "10.78.1.1"
B_ON_C_LINK = "10.78.2.2"
C_ON_B_LINK = "10.78.2.3"
A_ON_B_LINK = "10.78.0.1"
check = mf.check
# The downtime target of these migrations: what is tested is the hand-over, not the pause, and a
# guest under writes on a loaded host (or under ThreadSanitizer) must converge.
LOOSE = ["--downtime-ms", "300"]
# The last words of a source that handed its VM over (cmd/run_world.c).
HANDED_OVER = "the VM was handed over to its migration's destination; this copy has stopped"


def stall_file(workdir, name, step):
    """A stall file of the test hook naming @step (an empty one names nothing)."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(step + "\n")
    return path


def let_go(path):
    """Lets a side held by the hook go on: an empty file renamed over the one it reads."""
    tmp = path + ".new"
    open(tmp, "w").close()
    os.rename(tmp, path)


def start_dest(lab, host, tag, listen, spare, stall):
    """`ftvm incoming --spare` on @host, its hook reading the file @stall, once it waits."""
    n = mf.start(lab, host, "incoming", tag, ["--listen", f"{listen}:{IN_PORT}", "--spare", f"{spare}:{LOG_PORT}"],
                 env=[f"FTVM_TEST_MIGRATE_STALL={stall}"])
    n.wait_for("waiting for its migration", 60)
    return n


def migrate_c_to_b(lab, workdir, tag, dest_step, nodes):
    """`ftvm migrate` of C to a destination on B, held by the hook at @dest_step, with C to be
    held at source-judged: the destination, the command's process and the destination's stall file,
    once the destination is held."""
    b_stall = stall_file(workdir, f"stall-b{tag}", dest_step)
    target = start_dest(lab, "b", tag, B_ON_C_LINK, A_ON_B_LINK, b_stall)
    nodes.append(target)
    stall_file(workdir, "stall-c", "source-judged")
    proc = mf.migrate(lab, LOOSE, src="c", to=B_ON_C_LINK)
    target.wait_for(f"migration test hook: at {dest_step}", 120)
    return target, proc, b_stall


def c_link(lab, state):
    """B's end of its logging link to C, down (cut) or up."""
    subprocess.run(["ip", "netns", "exec", lab.ns("b"), "ip", "link", "set", "logc", state], check=True)


def wait_count(node, pattern, count, timeout):
    """Until @node printed @count lines matching @pattern."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for line in node.output().splitlines() if rx.search(line)) >= count:
            return
        check(node.proc.poll() is None, f"{node.name} exited before /{pattern}/ x{count}", [node])
        time.sleep(0.05)
    check(False, f"{node.name}: /{pattern}/ not {count} times within {timeout} s", [node])


def only_runner(node, nodes):
    """Exactly one copy runs: @node."""
    running = [n.name for n in nodes if n.proc.poll() is None]
    check(running == [node.name], f"the copies running: {running}", nodes)


def decisions(lab):
    out = subprocess.run([ftlab.ftvm_binary(), "arbiter", "show", lab.arbiter, "--json"], capture_output=True,
                            text=True, timeout=60)
    return {d["epoch"]: d["winner"] for d in json.loads(out.stdout)["decided"]}


def writes_flow(logfile, what, nodes):
    check(tc.wait_acked_beyond(logfile, tc.acked_lines(logfile) + 20, 30) is not None, f"writes stopped {what}",
          nodes)


def run(lab, workdir):
    logfile, stopfile = os.path.join(workdir, "acked.txt"), os.path.join(workdir, "stop")
    # No --spare on either node of the first pair: the backup, once live, has nowhere to clone to.
    nodes = mf.start_pair(lab, [], [])
    primary, backup = nodes
    writer = None
    try:
        writer = mf.start_writes(lab, primary, logfile, stopfile, "l-", nodes)

        # 1. The primary killed: the backup goes live alone, without --spare, and is moved to C.
        primary.kill()
        primary.wait(10)
        backup.wait_for("live as primary", 30)
        st = tc.wait_status(lab, "b", lambda s: s.get("state") == "alone", 30)
        check(st.get("role") == "primary" and st.get("state") == "alone" and st.get("epoch") == 1
              and st.get("failovers") == 1, f"the backup gone live: {st}", nodes)
        writes_flow(logfile, "after the failover", nodes)
        spare = mf.start(lab, "a", "spare", "1", ["--listen", f"0.0.0.0:{LOG_PORT}"])
        nodes.append(spare)
        spare.wait_for("waiting for a clone", 60)
        # C's own migration later is held by the hook at source-judged: the file names it only then.
        c_stall = stall_file(workdir, "stall-c", "")
        dest = start_dest(lab, "c", "1", C_ON_B_LINK, A_ON_C_LINK, c_stall)
        nodes.append(dest)
        t0 = time.monotonic()
        proc = mf.migrate(lab, LOOSE, src="b", to=C_ON_B_LINK)
        _, err = proc.communicate(timeout=300)
        check(proc.returncode == 0, f"ftvm migrate of the backup gone live exited {proc.returncode}: {err}", nodes)
        print(f"moved the backup gone live: {err.strip().splitlines()[-1]}", flush=True)
        code = backup.wait(60)
        check(code == 0 and HANDED_OVER in backup.output(), f"the backup gone live exited {code} after the hand-over",
              nodes)
        dest.wait_for(r"runs alone in epoch 2", 30)
        dest.wait_for(r"protected again: primary of epoch 4 ", 120)
        t_protected = dest.time_of(r"protected again")
        spare.wait_for(r"clone complete .* backup of epoch 4", 30)
        st = tc.wait_status(lab, "c", lambda s: s.get("state") == "protected", 30)
        check(st.get("state") == "protected" and st.get("epoch") == 4, f"the destination's status: {st}", nodes)
        writes_flow(logfile, "after the move of the backup gone live", nodes)
        decided = decisions(lab)
        # 1 the backup went live (node 1), 2 the move to C (node 0), 3 C's clone (node 0).
        expected = {1: 1, 2: 0, 3: 0}
        check(all(decided.get(e) == w for e, w in expected.items()), f"the arbiter's decisions {decided}, "
              f"expected {expected}", nodes)
        for epoch, node, who in ((1, 0, "the dead primary"), (2, 1, "the old copy on B")):
            rc, out = mf.claim(lab, epoch, node)
            check(rc != 0, f"{who} won epoch {epoch}: {out}", nodes)
            print(f"{who} claiming epoch {epoch}: exit {rc}: {out}", flush=True)

        # 2. The judgement window: C wins epoch 5 itself (its destination killed after COMPLETE),
        # and loses its backup while held right after that claim.
        target, proc, _ = migrate_c_to_b(lab, workdir, "2", "dest-complete", nodes)
        target.kill()
        target.wait(10)
        dest.wait_for("migration test hook: at source-judged", 60)
        spare.kill()
        spare.wait(10)
        dest.wait_for("waiting for its judgement", 30)
        check(dest.proc.poll() is None and "halting this VM" not in dest.output(),
              "C halted on the refused claim of epoch 4", nodes)
        let_go(c_stall)
        _, err = proc.communicate(timeout=120)
        check(proc.returncode == 1 and "the arbiter gave epoch 5 to this host" in err,
              f"C did not keep the VM in epoch 5 ({proc.returncode}): {err}", nodes)
        print(f"destination killed after COMPLETE: {err.strip().splitlines()[-1]}", flush=True)
        dest.wait_for("the migration's source kept the VM in epoch 5", 30)
        st = tc.wait_status(lab, "c", lambda s: s.get("state") == "alone" and s.get("epoch") == 5, 30)
        check(st.get("state") == "alone" and st.get("epoch") == 5, f"C after the window: {st}", nodes)
        check(dest.proc.poll() is None and "halting this VM" not in dest.output(), "C halted", nodes)
        writes_flow(logfile, "after the judgement window", nodes)
        decided = decisions(lab)
        check(decided.get(5) == 0 and 4 not in decided, f"epoch 5 not C's (node 0): {decided}", nodes)
        for epoch, node, who in ((4, 1, "the killed backup"), (5, 1, "the killed destination")):
            rc, out = mf.claim(lab, epoch, node)
            check(rc != 0, f"{who} won epoch {epoch}: {out}", nodes)
            print(f"{who} claiming epoch {epoch}: exit {rc}: {out}", flush=True)
        # Exactly one copy runs: C; B's destination never ran, A's backup is gone.
        only_runner(dest, nodes)

        # 3. The window again, the destination winning: C, protected again by a spare on A (epoch
        # 7), is migrated to B, whose destination, held once it read HANDOVER, loses its link to C
        # and then wins epoch 8; C, without the ACK, claims epoch 8 too, loses, and is held
        # there; its backup killed then, its primary's refused claim of epoch 7 waits for the
        # judgement; let go, C stops as a source that handed over (exit 0), not as a halted one.
        spare = mf.start(lab, "a", "spare", "2", ["--listen", f"0.0.0.0:{LOG_PORT}"])
        nodes.append(spare)
        dest.wait_for(r"protected again: primary of epoch 7 ", 120)
        spare.wait_for(r"clone complete .* backup of epoch 7", 30)
        target, proc, b_stall = migrate_c_to_b(lab, workdir, "3", "dest-handover", nodes)
        c_link(lab, "down")
        try:
            let_go(b_stall)
            target.wait_for(r"runs alone in epoch 8", 30)
            wait_count(dest, "migration test hook: at source-judged", 2, 60)
            spare.kill()
            spare.wait(10)
            dest.wait_for(r"claim of epoch 7 was refused .* waiting for its judgement", 30)
            let_go(c_stall)
            code = dest.wait(60)
        finally:
            c_link(lab, "up")
        check(code == 0 and HANDED_OVER in dest.output(), f"C exited {code} after the destination won epoch 8",
              nodes)
        _, err = proc.communicate(timeout=120)
        print(f"destination won while its link was down: {err.strip().splitlines()[-1]}", flush=True)
        st = tc.wait_status(lab, "b", lambda s: s.get("state") == "alone", 30)
        check(st.get("state") == "alone" and st.get("epoch") == 8, f"B after the window: {st}", nodes)
        writes_flow(logfile, "after the destination won the window", nodes)
        decided = decisions(lab)
        check(decided.get(6) == 0 and decided.get(8) == 1 and 7 not in decided, f"epochs 6 and 8: {decided}", nodes)
        only_runner(target, nodes)

        # 4. Nothing acknowledged is lost, the connection never broke.
        summary, v = tc.finish_and_verify(lab, writer, stopfile, logfile, nodes)
        writer = None
        return {"acked": summary["acked"], "verified": v["verified"], "reconnects": summary["reconnects"],
                "max_client_gap_ms": round(summary["max_gap_s"] * 1000),
                "migrate_to_protected_ms": round((t_protected - t0) * 1000)}
    finally:
        mf.stop_all(writer, stopfile, nodes)


if __name__ == "__main__":
    sys.exit(mf.lab_main(run, "migrate-ft-live", "ml"))
