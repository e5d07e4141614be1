#!/usr/bin/env python3
"""test_resync.py — a node that comes back gets only the blocks its replica may lack
(docs/disks.md, Resync), end to end with the bundled guest (kvd) on the two-host namespace
topology, replicated disks (a file per host, only the arbiter area shared).

Both replicas start as one 64 MiB image with 48 MiB of random data (so a full copy must send
them). kvd runs under one client's writes over one TCP connection throughout.

  1. Failover, repair: the primary (host A) is killed; B goes live and runs alone while the
     client writes; A's host comes back as a spare with its old replica (and its pairing mark),
     changed in three blocks B never wrote (as the old primary's last writes, which its backup
     never replayed, would be). The first resync is refused naming those blocks (and any the old
     primary wrote that B never replayed); the second
     sends them as data with B's writes: disk bytes sent under an eighth of the disk, the rest
     compared by digest; the clone finishes as usual (protected again).
  2. With the client paused and the backup replayed to the primary's icount the two replicas
     are byte-identical; every acknowledged write reads back.
  3. Backup lost after a long pairing: the pair runs in sync under 3000 acknowledged writes (each
     at least one 512-byte sector of kvd's log), then the backup (A) is killed; B runs alone a
     little; A comes back. The resync sends only the blocks written while A could not have them:
     under half of the blocks the pairing changed (which a bitmap kept from the pairing's start
     would all send). Replicas identical, every write reads back.
  4. Tampered: the primary (B) is killed, A goes live; B's replica is changed in 20 blocks nobody
     writes while it is away. B's host comes back as a spare: more ranges than a refusal can
     name, so the resync is refused by digest and a full copy follows at once; the replicas end
     byte-identical again, every acknowledged write reads back.
Prints the bytes and times of every clone.
"""
import json
import os
import random
import re
import sys
import tempfile
import time

import ftlab
from test_clone import (acked_lines, check, finish_writer, replica_difference, replicas_equal_when_idle,
                        start_node, start_pair, start_writer, status, verify, wait_acked_beyond)

DISK_MIB = 64
RANDOM_FROM, RANDOM_MIB = 8 << 20, 48   # kvd's log grows from the start of the disk
BLOCK = 64 << 10
# Blocks of the random region nobody writes (kvd's log grows from the start of the disk).
REPAIR_AT = [RANDOM_FROM + (37 << 20) + 12345, RANDOM_FROM + (37 << 20) + BLOCK + 7, RANDOM_FROM + (45 << 20) + 999]
FULL_COPY_AT = [RANDOM_FROM + (i * 2 << 20) + 4321 for i in range(20)]
PAIRING_WRITES = 3000


def fill_replicas(lab):
    """One image with random data, copied to both hosts."""
    rng = random.Random(1234)
    with open(lab.disks["a"], "r+b") as f:
        f.seek(RANDOM_FROM)
        for _ in range(RANDOM_MIB):
            f.write(rng.randbytes(1 << 20))
    with open(lab.disks["a"], "rb") as src, open(lab.disks["b"], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


def clone_line(node):
    lines = re.findall(r"protected again: .*clone of (\d+) bytes in (\d+) ms", node.output())
    return (int(lines[-1][0]), int(lines[-1][1])) if lines else (None, None)


def repair_blocks(line):
    """The blocks of disk 0 a refusal's "repair=DISK:BLOCK[+COUNT],... ." list names."""
    m = re.search(r"repair=([0-9:+,]+)\.", line)
    blocks = set()
    for item in (m.group(1).split(",") if m else []):
        disk, rest = item.split(":")
        first, _, count = rest.partition("+")
        if disk == "0":
            blocks.update(range(int(first), int(first) + int(count or 1)))
    return blocks


def changed_blocks(before, path):
    """64 KiB blocks of the file at @path that differ from the bytes @before."""
    n = 0
    with open(path, "rb") as f:
        for off in range(0, len(before), BLOCK):
            n += f.read(BLOCK) != before[off:off + BLOCK]
    return n


def pause_and_compare(lab, writer, stopfile, logfile, primary, nodes, what):
    """Stops the client, checks its connection never broke, the replicas equal and every
    acknowledged write."""
    summary = finish_writer(writer, stopfile, nodes)
    check(summary["reconnects"] == 0, f"{what}: the client's connection broke: {summary}", nodes)
    replicas_equal_when_idle(lab, primary, nodes, what)
    v = verify(lab, logfile, nodes)
    check(v["verified"] == summary["acked"], f"{what}: verified {v['verified']} of {summary['acked']}", nodes)
    return summary["acked"]


def fail_over_and_return(lab, nodes, dead, workdir, tag, tamper=(), backup=False, writes_before=30):
    """Kills the node on @dead (the primary, or with @backup the backup) under the client's
    writes, once @writes_before were acknowledged; the survivor runs alone for a while; @dead's
    host comes back as a spare with its replica (changed first at each offset of @tamper).
    Returns the survivor's status once protected again and the writer's files."""
    survivor = "b" if dead == "a" else "a"
    logfile, stopfile = os.path.join(workdir, f"acked-{tag}.txt"), os.path.join(workdir, f"stop-{tag}")
    writer = start_writer(lab, logfile, stopfile, f"{tag}-")
    check(wait_acked_beyond(logfile, writes_before, 120) is not None, f"{tag}: writes never flowed",
          nodes.values())
    nodes[dead].kill()
    nodes[dead].wait(10)
    nodes[survivor].wait_for("running on without a backup" if backup else "live as primary", 30)
    # Alone while the client writes: these are the blocks the resync must send.
    check(wait_acked_beyond(logfile, acked_lines(logfile) + 100, 60) is not None,
          f"{tag}: writes stopped after the failover", nodes.values())
    with open(lab.disks[dead], "r+b") as f:
        for at in tamper:
            f.seek(at)
            old = f.read(1)
            f.seek(at)
            f.write(bytes([old[0] ^ 0x5A]))
    spare = start_node(lab, dead, "spare", tag)
    nodes[dead] = spare
    before = len(re.findall("protected again", nodes[survivor].output()))
    deadline = time.monotonic() + 120
    while len(re.findall("protected again", nodes[survivor].output())) == before:
        check(time.monotonic() < deadline and nodes[survivor].proc.poll() is None,
              f"{tag}: not protected again", nodes.values())
        time.sleep(0.1)
    spare.wait_for("primary connected; replaying", 30)
    st = status(lab, survivor)
    check(st.get("state") == "protected", f"{tag}: survivor status {st}", nodes.values())
    check(wait_acked_beyond(logfile, acked_lines(logfile) + 30, 30) is not None,
          f"{tag}: writes stopped after the clone", nodes.values())
    return survivor, st, writer, logfile, stopfile


def main():
    if not os.path.exists(os.path.join(ftlab.guest_dir(), "Image")):
        print(f"SKIP: no bundled guest in {ftlab.guest_dir()} (run guest/build)")
        return 77
    workdir = tempfile.mkdtemp(prefix="ftvm-resync-")
    lab = ftlab.Lab(f"r{os.getpid() % 10000}", workdir, disk_mib=DISK_MIB, timeout_ms=None, disk_mode="replicated")
    disk_bytes = DISK_MIB << 20
    out = {"disk_bytes": disk_bytes}
    nodes = {}
    try:
        fill_replicas(lab)
        nodes = start_pair(lab)
        nodes["a"].wait_for("ftvm-guest: ready", 180)
        check(os.path.exists(lab.disks["a"] + ".ftvm-pairing") and os.path.exists(lab.disks["b"] + ".ftvm-pairing"),
              "the pair left no pairing marks", nodes.values())

        # 1-2. The old primary's host returns, its replica holding blocks the survivor never wrote.
        primary, st, writer, logfile, stopfile = fail_over_and_return(lab, nodes, "a", workdir, "r1",
                                                                      tamper=REPAIR_AT)
        text = nodes[primary].output()
        check("copying the whole replica" not in text, "the repairable resync fell back to a full copy",
              nodes.values())
        line = next((l for l in text.splitlines() if "resyncing again with those blocks" in l), "")
        named = repair_blocks(line)
        check({at // BLOCK for at in REPAIR_AT} <= named,
              f"the spare did not name the three changed blocks for repair: {line}", nodes.values())
        check(0 < st.get("clone_disk_bytes", 0) < disk_bytes // 8 and st.get("clone_disk_digested", 0) > disk_bytes // 2,
              f"resync: {st.get('clone_disk_bytes')} disk bytes sent, {st.get('clone_disk_digested')} by digest "
              f"of a {disk_bytes}-byte disk", nodes.values())
        sent, ms = clone_line(nodes[primary])
        out["repair"] = {"disk_bytes_sent": st["clone_disk_bytes"], "disk_bytes_digested": st["clone_disk_digested"],
                         "full_copy_bytes": disk_bytes, "clone_bytes": sent, "clone_ms": ms,
                         "message": line.strip()[-160:],
                         "refusal_heard": line.partition("refused the resync (")[2].partition(": the destination")[0]}
        out["repair"]["acked"] = pause_and_compare(lab, writer, stopfile, logfile, primary, nodes.values(), "repair")

        # 3. The backup is lost after a long pairing: only what it could not have is sent.
        dead = "a" if primary == "b" else "b"
        with open(lab.disks[primary], "rb") as f:
            before = f.read()
        primary, st, writer, logfile, stopfile = fail_over_and_return(lab, nodes, dead, workdir, "r2", backup=True,
                                                                      writes_before=PAIRING_WRITES)
        text = nodes[primary].output()
        check("refused the resync" not in text.split("running on without a backup")[-1],
              "the returning backup's resync was refused", nodes.values())
        sent, ms = clone_line(nodes[primary])
        out["backup_lost"] = {"disk_bytes_sent": st["clone_disk_bytes"], "clone_bytes": sent, "clone_ms": ms}
        out["backup_lost"]["acked"] = pause_and_compare(lab, writer, stopfile, logfile, primary, nodes.values(),
                                                        "backup lost")
        changed = changed_blocks(before, lab.disks[primary]) * BLOCK
        out["backup_lost"]["pairing_changed_bytes"] = changed
        check(changed >= PAIRING_WRITES * 512 and 0 < st.get("clone_disk_bytes", 0) < changed // 2,
              f"backup lost: {st.get('clone_disk_bytes')} disk bytes sent, the pairing changed {changed}",
              nodes.values())

        # 4. Too many blocks changed while away: refused by digest, a full copy follows.
        primary, st, writer, logfile, stopfile = fail_over_and_return(lab, nodes, primary, workdir, "r3",
                                                                      tamper=FULL_COPY_AT)
        text = nodes[primary].output()
        line = next((l for l in text.splitlines() if "copying the whole replica" in l), "")
        check("refused the resync" in line and "a full copy is needed" in line,
              "the tampered replica did not fall back to a full copy with one message naming why",
              nodes.values())
        out["fallback_message"] = line.strip()[-200:]
        check(st.get("clone_disk_bytes", 0) >= disk_bytes, f"full copy: {st}", nodes.values())
        sent, ms = clone_line(nodes[primary])
        out["full_copy"] = {"disk_bytes_sent": st["clone_disk_bytes"], "clone_bytes": sent, "clone_ms": ms}
        out["full_copy"]["acked"] = pause_and_compare(lab, writer, stopfile, logfile, primary, nodes.values(),
                                                      "after the fallback")
        check(replica_difference(lab) is None, "replicas differ at the end", nodes.values())
    finally:
        for n in nodes.values():
            n.kill()
        lab.close()
    print(json.dumps({"scenario": "resync", **out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
