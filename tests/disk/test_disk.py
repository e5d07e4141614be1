#!/usr/bin/env python3
"""test_disk.py SCENARIO FTVM GUEST_DIR — disks served by QEMU's storage code over NBD, with the
bundled guest (ctest disk.SCENARIO). Every image is made by qemu-img or `ftvm clone`, served by
qemu-storage-daemon on a Unix socket, and read back by qemu-img/qemu-io, never by ftvm itself.

The base image is a 64 MiB qcow2 holding a 1 MiB pattern (0xab) at 40 MiB, outside the region the
guest's disk workload writes (its first 8 MiB). The workload runs with --clock virtual, so what it
writes is a pure function of the guest: a raw reference disk with the same pattern, run the same
way through the raw fast path, must end byte-identical to every NBD disk (`qemu-img compare`).

  qcow2          the disk workload on a linked clone (qcow2 overlay) of the base, served by
                 qemu-storage-daemon: the guest's own read-back checks pass, the overlay then equals
                 the raw reference, its pattern still reads through from the base (qemu-io), and
                 the base is unchanged (its SHA-256); the same overlay given as a domain XML's
                 <disk type='network'> boots too, and a second overlay served by qemu-nbd ends the
                 same. A qcow2 file given as a plain --disk is refused.
  record-replay  the workload recorded on an NBD disk with reads as digests, then replayed on a
                 second clone of the base served the same way: every CHECK and DISK_DIGEST
                 matches, and the replay's overlay equals the recorded one.
  server-death   the disk workload on a bigger region, its server SIGKILLed in the middle, then
                 a second run with its server SIGSTOPped (a hung server): each time ftvm names the
                 failed NBD connection, the guest sees an I/O error (never "disk: score"), and ftvm
                 exits by itself well before the test's limit; qemu-img check finds the overlay
                 consistent.
  ft             an FT pair (scripts/ft-topology namespaces, root) running the workload on NBD disks:
                 replicated, each node's replica a linked clone served by its own daemon (the two
                 overlays equal at the end); shared, both nodes on one export (the backup's
                 connection read-only). Both nodes end cleanly and the backup's replay matches.
                 Then replicated again with the primary SIGKILLed mid-workload: the backup goes
                 live on its NBD replica and the guest's own read-back checks pass there.
  migrate        a live migration with --copy-storage between two ftvm processes on this host,
                 each disk a linked clone served by qemu-nbd without --shared (one client at a
                 time): the source reads its disk for the copy and the destination writes its
                 replica through the connection their back ends hold, so the one-client servers
                 suffice. The migration happens during the disk workload; the destination's guest
                 finishes it with its read-back checks passing, and the base's pattern reads
                 through the destination's overlay (qemu-io).
  clone          two linked clones of one base, made with `ftvm clone --linked`, each with a domain
                 made by `ftvm clone --domain` (new name, new MAC, the clone's NBD URI), run at once:
                 both workloads pass, both overlays equal the reference, the base is unchanged; a
                 --full clone of one stands alone with the same bytes; clones never overwrite, and
                 bad names, disk counts and disks are refused, leaving no file behind.
Skips (77) without the bundled guest or the QEMU tools.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "replay"))
import nbdserve  # noqa: E402
import rrlib  # noqa: E402

DISK_MIB = 64
PATTERN_AT_MIB = 40
WORKLOAD = ["--clock", "virtual", "--extra-args", "ftvm.workload=disk ftvm.disk.mb=8 ftvm.disk.ops=300"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Bench:
    """The work directory: base image, raw reference, clones and their daemons."""

    def __init__(self, f, ftvm, tmp):
        self.f, self.ftvm, self.tmp = f, ftvm, tmp
        self.daemons = []
        self.base = os.path.join(tmp, "base.qcow2")
        code, out = nbdserve.qemu_img("create", "-q", "-f", "qcow2", self.base, f"{DISK_MIB}M")
        assert code == 0, out
        code, out = nbdserve.qemu_io(self.base, "qcow2", f"write -P 0xab {PATTERN_AT_MIB}M 1M")
        assert code == 0, out
        self.base_sum = sha256(self.base)

    def clone(self, name):
        path = os.path.join(self.tmp, name)
        r = rrlib.run([self.ftvm, "clone", "--linked", self.base, path], timeout=120)
        self.f.expect(r.code == 0 and os.path.exists(path), f"ftvm clone --linked: exit {r.code}: {r.last_err_line()}")
        return path

    def serve(self, image, fmt="qcow2", qemu_nbd=False):
        d = nbdserve.StorageDaemon(image, fmt, image + ".sock", image + ".qsd.log", qemu_nbd=qemu_nbd)
        self.daemons.append(d)
        return d

    def reference(self):
        """The raw reference: the same pattern, the workload run on the raw fast path."""
        ref = os.path.join(self.tmp, "reference.img")
        code, out = nbdserve.qemu_img("convert", "-q", "-O", "raw", self.base, ref)
        assert code == 0, out
        r = rrlib.run([self.ftvm, "run", "--disk", ref] + WORKLOAD, timeout=600)
        self.f.expect(r.code == 0 and b"disk: score" in r.out, f"reference run on a raw file: exit {r.code}: "
                      f"{r.last_err_line()}")
        return ref

    def check_image(self, image, ref, what):
        code, out = nbdserve.qemu_img("compare", "-q", "-f", "raw", "-F", "qcow2", ref, image)
        self.f.expect(code == 0, f"{what}: qemu-img compare with the raw reference: exit {code}: {out.strip()}")
        code, out = nbdserve.qemu_io(image, "qcow2", f"read -P 0xab {PATTERN_AT_MIB}M 1M")
        self.f.expect(code == 0, f"{what}: the base's pattern does not read through the overlay: {out.strip()}")

    def check_base(self):
        self.f.expect(sha256(self.base) == self.base_sum, "the base image changed")

    def close(self):
        for d in self.daemons:
            d.stop()


def workload_ok(f, r, what):
    return f.expect(r.code == 0 and b"disk: score" in r.out,
                    f"{what}: exit {r.code}, score {b'disk: score' in r.out}: {r.last_err_line()}")


def scenario_qcow2(b):
    f, ftvm = b.f, b.ftvm
    ref = b.reference()
    overlay = b.clone("vm.qcow2")
    r = rrlib.run([ftvm, "run", "--disk", overlay] + WORKLOAD, timeout=120)
    f.expect(r.code == 1 and "a qcow2 image, not a raw one" in r.err_text() and "NBD URI" in r.err_text(),
             f"a qcow2 overlay as a plain --disk: exit {r.code}: {r.last_err_line()}")
    d = b.serve(overlay)
    r = rrlib.run([ftvm, "run", "--disk", d.uri] + WORKLOAD, timeout=600)
    workload_ok(f, r, "disk workload on the qcow2 overlay over NBD")
    # The same overlay as a domain's network disk (the workload's data is rewritten identically).
    xml = os.path.join(b.tmp, "vm.xml")
    with open(xml, "w") as fh:
        fh.write(domain_xml("vm", f"<disk type='network' device='disk'><source protocol='nbd' name='disk0'>"
                                  f"<host transport='unix' socket='{d.sock}'/></source>"
                                  f"<target dev='vda' bus='virtio'/></disk>"))
    r = rrlib.run([ftvm, "run", "--domain", xml] + WORKLOAD, timeout=600)
    workload_ok(f, r, "the same overlay as <disk type='network'> of a domain")
    d.stop()
    b.check_image(overlay, ref, "overlay")
    # qemu-nbd serves the same kind of overlay just as well.
    other = b.clone("vm-qemu-nbd.qcow2")
    d = b.serve(other, qemu_nbd=True)
    r = rrlib.run([ftvm, "run", "--disk", d.uri] + WORKLOAD, timeout=600)
    workload_ok(f, r, "disk workload on a qcow2 overlay served by qemu-nbd")
    d.stop()
    b.check_image(other, ref, "overlay served by qemu-nbd")
    b.check_base()


def scenario_record_replay(b):
    f, ftvm = b.f, b.ftvm
    rec, rep = b.clone("rec.qcow2"), b.clone("rep.qcow2")
    log = os.path.join(b.tmp, "nbd.log")
    d = b.serve(rec)
    r = rrlib.run([ftvm, "record", "--log", log, "--disk-reads", "digest", "--disk", d.uri] + WORKLOAD,
                  timeout=600)
    workload_ok(f, r, "recording on an NBD disk")
    d.stop()
    d = b.serve(rep)
    r = rrlib.run([ftvm, "replay", "--quiet", "--log", log, "--disk", d.uri] + WORKLOAD, timeout=600)
    f.expect(r.code == 0 and "replay matched" in r.err_text(),
             f"replay on an NBD disk: exit {r.code}: {r.last_err_line()}")
    d.stop()
    code, out = nbdserve.qemu_img("compare", "-q", rec, rep)
    f.expect(code == 0, f"the replay's overlay differs from the recorded one: {out.strip()}")
    b.check_base()


def scenario_server_death(b):
    f, ftvm = b.f, b.ftvm
    # A region of 48 MiB and many random ops: the guest is still doing I/O when the server goes.
    work = ["--extra-args", "ftvm.workload=disk ftvm.disk.mb=48 ftvm.disk.ops=1000000"]
    for how, sig, limit in (("killed", signal.SIGKILL, 120), ("hung", signal.SIGSTOP, 180)):
        overlay = b.clone(f"{how}.qcow2")
        d = b.serve(overlay)
        live = rrlib.Live([ftvm, "run", "--disk", d.uri] + work)
        started = live.wait_for(b"MiB region", 300)
        f.expect(started, f"{how}: the disk workload did not start")
        time.sleep(1.0)
        t0 = time.monotonic()
        d.signal(sig)
        r = live.finish(limit)
        took = time.monotonic() - t0
        err = r.err_text()
        f.expect(r.code not in (0, None) and "killed after" not in err,
                 f"{how}: ftvm exit {r.code} after {took:.1f} s: {r.last_err_line()}")
        f.expect("NBD connection is given up" in err,
                 f"{how}: no host message about the NBD connection: {err.strip()[-400:]}")
        f.expect(b"I/O failed" in r.out and b"disk: score" not in r.out,
                 f"{how}: the guest did not see an I/O error: {r.out.decode(errors='replace')[-400:]}")
        if how == "hung":
            f.expect("no answer within 10000 ms" in err, f"hung: the deadline was not named: {err.strip()[-400:]}")
        print(f"{how} server: ftvm ended {took:.1f} s after the signal, exit {r.code}", flush=True)
        d.stop()
        code, out = nbdserve.qemu_img("check", "-q", overlay)
        f.expect(code in (0, 3), f"{how}: qemu-img check of the overlay: exit {code}: {out.strip()}")
    b.check_base()


def domain_xml(name, disk, nic=""):
    guest = os.environ["FTVM_GUEST_DIR"]
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>0b5e6b8a-6d2f-4f5e-9a35-0c1f3d8f6a11</uuid>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='riscv64' machine='virt'>hvm</type>
    <loader>{guest}/fw_dynamic.bin</loader>
    <kernel>{guest}/Image</kernel>
    <initrd>{guest}/initramfs.cpio</initrd>
    <cmdline>console=ttyS0 panic=1</cmdline>
  </os>
  <devices>
    {disk}
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    {nic}
  </devices>
</domain>
"""


def scenario_clone(b):
    f, ftvm = b.f, b.ftvm
    ref = b.reference()
    src = os.path.join(b.tmp, "src.xml")
    with open(src, "w") as fh:
        fh.write(domain_xml("src", "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                                   f"<source file='{b.base}'/><target dev='vda' bus='virtio'/></disk>",
                            "<interface type='ethernet'><mac address='52:54:00:12:34:56'/>"
                            "<target dev='ftclone0'/><model type='virtio'/></interface>"))
    clones, runs = [], []
    for name in ("one", "two"):
        overlay = b.clone(f"{name}.qcow2")
        d = b.serve(overlay)
        xml = os.path.join(b.tmp, f"{name}.xml")
        r = rrlib.run([ftvm, "clone", "--domain", src, xml, "--disk", d.uri], timeout=60)
        f.expect(r.code == 0, f"ftvm clone --domain: exit {r.code}: {r.last_err_line()}")
        with open(xml) as fh:
            text = fh.read()
        f.expect(f"<name>{name}</name>" in text and "<uuid>" not in text and "52:54:00:12:34:56" not in text,
                 f"the cloned domain keeps the old name, uuid or MAC:\n{text}")
        # The NIC's TAP device is not needed to show the disks: drop the interface for the run.
        start, end = text.find("<interface"), text.find("</interface>")
        with open(xml, "w") as fh:
            fh.write(text[:start] + text[end + len("</interface>"):])
        clones.append((overlay, d))
        runs.append(rrlib.Live([ftvm, "run", "--domain", xml] + WORKLOAD))
    for (overlay, d), live in zip(clones, runs):
        r = live.finish(900)
        workload_ok(f, r, f"linked clone {os.path.basename(overlay)} (both running at once)")
        d.stop()
        b.check_image(overlay, ref, os.path.basename(overlay))
    b.check_base()
    # A full clone of a linked one stands alone (no backing file) and holds the same bytes.
    one, full = clones[0][0], os.path.join(b.tmp, "full.qcow2")
    r = rrlib.run([ftvm, "clone", "--full", one, full], timeout=120)
    f.expect(r.code == 0, f"ftvm clone --full: exit {r.code}: {r.last_err_line()}")
    code, info = nbdserve.qemu_img("info", full)
    f.expect(code == 0 and "backing file" not in info, f"the full clone has a backing file:\n{info}")
    code, out = nbdserve.qemu_img("compare", "-q", one, full)
    f.expect(code == 0, f"the full clone differs from its source: {out.strip()}")
    # Refusals: nothing is overwritten, names and disk counts are checked.
    before = sha256(one)
    for argv, want, text in (
            (["--linked", b.base, one], 1, "exists already"),
            (["--full", b.base, one], 1, "exists already"),
            (["--domain", src, os.path.join(b.tmp, "x.xml"), "--name", "../evil"], 2, "letters, digits"),
            (["--domain", src, os.path.join(b.tmp, "y.xml"), "--disk", ref, "--disk", ref], 2, "one per disk"),
            (["--domain", src, os.path.join(b.tmp, "z.xml"), "--disk", one], 2, "a qcow2 image"),
            (["--domain", src, os.path.join(b.tmp, "w.xml"), "--disk", "nbd://h:0/e"], 2, "1..65535"),
            (["--linked", "--full", b.base, os.path.join(b.tmp, "v.qcow2")], 2, "one of --linked")):
        r = rrlib.run([ftvm, "clone"] + argv, timeout=60)
        f.expect(r.code == want and text in r.err_text(),
                 f"ftvm clone {' '.join(argv)}: exit {r.code} (want {want}): {r.last_err_line()}")
    f.expect(sha256(one) == before, "a refused clone changed an existing image")
    f.expect(not any(os.path.exists(os.path.join(b.tmp, n)) for n in ("x.xml", "y.xml", "z.xml", "w.xml", "v.qcow2")),
             "a refused clone left a file behind")


def scenario_ft(b):
    """An FT pair on NBD disks, both modes (needs root for the namespaces of scripts/ft-topology)."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ft"))
    import ftlab  # noqa: E402
    f = b.f
    os.environ["FTVM"] = b.ftvm
    for mode in ("replicated", "shared", "replicated-crash"):
        disk_mode = mode.split("-")[0]
        crash = mode.endswith("crash")
        workload = f"ftvm.workload=disk ftvm.disk.mb={16 if crash else 8} ftvm.disk.ops={2000 if crash else 300}"
        hosts = ("a", "b") if disk_mode == "replicated" else ("a",)
        images = {h: b.clone(f"{mode}-{h}.qcow2") for h in hosts}
        daemons = {h: b.serve(images[h]) for h in hosts}
        lab = ftlab.Lab(f"nd{os.getpid() % 1000}{mode[0]}{int(crash)}", os.path.join(b.tmp, f"ft-{mode}"),
                        disk_mode=disk_mode, timeout_ms=None, workload=workload)
        lab.disks = {h: daemons[h if disk_mode == "replicated" else "a"].uri for h in ("a", "b")}
        try:
            lab.start(ready_timeout=300)
            if crash:
                # The primary dies mid-workload; the backup goes live on its own NBD replica and the
                # guest's read-back checks must pass there.
                lab.primary.wait_for(r"disk: \d+ MiB region", 120)
                time.sleep(0.5)
                lab.primary.kill()
                lab.backup.wait_for("live as primary", 60)
                code = lab.backup.wait(300)
                f.expect(code == 0 and "disk: score" in lab.backup.output(),
                         f"FT on NBD, primary killed: the new primary's guest ended with {code}:\n"
                         + lab.backup.output()[-1500:])
            else:
                lab.primary.wait_for("disk: score", 600)
                code_p, code_b = lab.primary.wait(300), lab.backup.wait(300)
                f.expect(code_p == 0 and code_b == 0,
                         f"FT {mode} on NBD: exit statuses primary {code_p}, backup {code_b}")
                f.expect("replay matched" in lab.backup.output(),
                         f"FT {mode} on NBD: the backup's replay did not match:\n" + lab.backup.output()[-1500:])
        except (TimeoutError, RuntimeError) as e:
            f.expect(False, f"FT {mode} on NBD: {e}")
        finally:
            lab.close()
        for d in daemons.values():
            d.stop()
        if mode == "replicated":
            code, out = nbdserve.qemu_img("compare", "-q", images["a"], images["b"])
            f.expect(code == 0, f"the two replicas (qcow2 overlays) differ: {out.strip()}")
    b.check_base()


def scenario_migrate(b):
    """A live migration with the disk copied, both sides on one-client qemu-nbd servers."""
    f = b.f
    images = {h: b.clone(f"migrate-{h}.qcow2") for h in ("src", "dst")}
    daemons = {h: b.serve(images[h], qemu_nbd=True) for h in images}
    key, ctl = os.path.join(b.tmp, "migrate.key"), os.path.join(b.tmp, "migrate-src.sock")
    r = rrlib.run([b.ftvm, "keygen", key], timeout=60)
    f.expect(r.code == 0, f"ftvm keygen: exit {r.code}: {r.last_err_line()}")
    port = 20000 + os.getpid() % 20000
    workload = ["--vm", "nbdmig", "--extra-args", "ftvm.workload=disk ftvm.disk.mb=8 ftvm.disk.ops=10000"]
    logs = {h: open(os.path.join(b.tmp, f"migrate-{h}.log"), "w+b") for h in images}
    dst = subprocess.Popen([b.ftvm, "incoming", "--listen", f"127.0.0.1:{port}", "--channel-key", key,
                            "--disk", daemons["dst"].uri] + workload,
                           stdin=subprocess.DEVNULL, stdout=logs["dst"], stderr=subprocess.STDOUT)
    src = subprocess.Popen([b.ftvm, "run", "--control", ctl, "--disk", daemons["src"].uri] + workload,
                           stdin=subprocess.DEVNULL, stdout=logs["src"], stderr=subprocess.STDOUT)

    def text(h):
        logs[h].flush()
        with open(logs[h].name, "rb") as fh:
            return fh.read().decode(errors="replace")
    try:
        deadline = time.monotonic() + 300
        while "disk: 8 MiB region" not in text("src") and src.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        f.expect("disk: 8 MiB region" in text("src"), "the source's workload never started:\n" + text("src")[-1500:])
        r = rrlib.run([b.ftvm, "migrate", "--control", ctl, "--to", f"127.0.0.1:{port}", "--channel-key", key,
                       "--copy-storage"], timeout=300)
        f.expect(r.code == 0, f"ftvm migrate --copy-storage between one-client NBD servers: exit {r.code}: "
                              f"{r.last_err_line()}\n--- source ---\n{text('src')[-1500:]}"
                              f"\n--- destination ---\n{text('dst')[-1500:]}")
        if r.code == 0:
            code = dst.wait(600)
            f.expect(code == 0 and "disk: score" in text("dst"),
                     f"the migrated guest ended with {code}:\n" + text("dst")[-1500:])
            f.expect(src.wait(60) == 0, "the source did not end after the hand-over")
    except subprocess.TimeoutExpired as e:
        f.expect(False, f"migration on one-client NBD servers: {e}")
    finally:
        for p in (src, dst):
            if p.poll() is None:
                p.kill()
                p.wait()
    for d in daemons.values():
        d.stop()
    code, out = nbdserve.qemu_io(images["dst"], "qcow2", f"read -P 0xab {PATTERN_AT_MIB}M 1M")
    f.expect(code == 0, f"the base's pattern does not read through the destination's overlay: {out.strip()}")
    b.check_base()


SCENARIOS = {"migrate": scenario_migrate, "qcow2": scenario_qcow2, "ft": scenario_ft, "record-replay": scenario_record_replay,
             "server-death": scenario_server_death, "clone": scenario_clone}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in SCENARIOS:
        print(f"usage: test_disk.py {{{','.join(SCENARIOS)}}} FTVM GUEST_DIR", file=sys.stderr)
        return 2
    name, ftvm, guest = sys.argv[1:]
    if not rrlib.bundled_guest(guest):
        return rrlib.SKIP
    if name == "ft" and (os.geteuid() != 0 or not shutil.which("ip")):
        print("SKIP: the FT pair's network namespaces need root and iproute2")
        return rrlib.SKIP
    missing = nbdserve.tools_missing()
    if missing:
        print(f"SKIP: {' '.join(missing)} not installed (scripts/setup)")
        return rrlib.SKIP
    f = rrlib.Failures(f"disk.{name}")
    tmp = tempfile.mkdtemp(prefix=f"ftvm-disk-{name}-")
    b = Bench(f, ftvm, tmp)
    t0 = time.monotonic()
    try:
        SCENARIOS[name](b)
    finally:
        b.close()
    print(f"disk.{name}: {time.monotonic() - t0:.1f} s", flush=True)
    code = f.report()
    if code == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"work directory kept: {tmp}")
    return code


if __name__ == "__main__":
    sys.exit(main())
