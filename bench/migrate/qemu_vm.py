#!/usr/bin/env python3
"""qemu_vm.py — the bundled guest under qemu-system-riscv64 on the namespace network of
scripts/ft-topology, for the migration benchmark's QEMU rows: the same kernel, initramfs, RAM,
kernel command line, guest MAC and disk image as the ftvm rows, the NIC on the host's TAP
"vmtap" (bridged to the switch the client is on), and QEMU's own live migration between the
hosts over their link (10.78.0.x), driven over QMP.

QEMU runs with -icount shift=auto (the mode its record/replay needs and the one closest to
ftvm's deterministic CPU in speed) on the virt board with virtio-mmio devices in their version 2
(modern) layout, as ftvm's board has them (-global virtio-mmio.force-legacy=false). Both hosts see the same disk file (shared storage; QEMU flushes and hands the
image over at the switch-over). After a migration the destination QEMU announces the guest's MAC
itself (RARP frames out of its TAP, with QEMU 7.2's announce parameters as they are:
announce-initial 50 ms, announce-rounds 5, announce-step 100 ms, announce-max 550 ms), as ftvm's
destination does with its own announcement. Auto-converge keeps QEMU's defaults too (throttle from
20 % in steps of 10 % up to 99 %, when a round dirtied more than 50 % of what it sent). QEMU's
default link cap (max-bandwidth 128 MiB/s) is lifted unless a row caps both systems.
"""
import json
import os
import re
import socket
import subprocess
import time

QEMU = "qemu-system-riscv64"
MIB = 1 << 20


class QmpError(RuntimeError):
    pass


class Qmp:
    def __init__(self, path, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rw")
        self.events = []  # every event read so far, in order
        json.loads(self.f.readline())  # the greeting
        self("qmp_capabilities")

    def __call__(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise QmpError(f"QMP closed during {name}")
            r = json.loads(line)
            if "event" in r:
                self.events.append(r)
            if "error" in r:
                raise QmpError(f"{name}: {r['error'].get('desc')}")
            if "return" in r:
                return r["return"]

    def event_time(self, name, since=0):
        """The wall-clock time (s) of the last event @name read so far, from the @since'th event
        on (QEMU stamps events with the host's real-time clock), or None."""
        t = [e["timestamp"] for e in self.events[since:] if e["event"] == name]
        return t[-1]["seconds"] + t[-1]["microseconds"] / 1e6 if t else None

    def close(self):
        self.sock.close()


class QemuVm:
    """One QEMU process in host @host's namespace of @lab, its console in a file."""

    def __init__(self, lab, host, workdir, disk, mac, append, guest, incoming=None, mem_mib=256, icount=True):
        """@incoming: (ip, port) to wait on for a migration, or None to boot; @icount: -icount shift=auto
        (else plain TCG)."""
        self.host = host
        tag = f"{host}{int(time.monotonic() * 1000) % 100000}"
        self.console = os.path.join(workdir, f"qemu-{tag}.console")
        self.qmp_path = os.path.join(workdir, f"qemu-{tag}.qmp")
        argv = ["ip", "netns", "exec", lab.ns(host), QEMU, "-M", "virt", "-m", str(mem_mib), "-smp", "1",
                *(["-icount", "shift=auto"] if icount else []), "-display", "none", "-monitor", "none", "-no-reboot",
                "-serial", f"file:{self.console}", "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-bios", os.path.join(guest, "fw_dynamic.bin"), "-kernel", os.path.join(guest, "Image"),
                "-initrd", os.path.join(guest, "initramfs.cpio"), "-append", append,
                "-global", "virtio-mmio.force-legacy=false",
                "-drive", f"file={disk},format=raw,if=none,id=d0,file.locking=off",
                "-device", "virtio-blk-device,drive=d0",
                "-netdev", "tap,id=n0,ifname=vmtap,script=no,downscript=no,vnet_hdr=off",
                "-device", f"virtio-net-device,netdev=n0,mac={mac}", "-device", "virtio-rng-device"]
        if incoming is not None:
            argv += ["-incoming", f"tcp:{incoming[0]}:{incoming[1]}"]
        self.stderr = open(os.path.join(workdir, f"qemu-{tag}.stderr"), "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)
        self.qmp = Qmp(self.qmp_path)

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_console(self, pattern, timeout):
        deadline, rx = time.monotonic() + timeout, re.compile(pattern)
        while time.monotonic() < deadline:
            if rx.search(self.console_text()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise TimeoutError(f"QEMU on {self.host}: no /{pattern}/ on the console:\n{self.console_text()[-2000:]}")

    def running(self, timeout):
        """Whether the VM runs within @timeout s with its devices whole: QEMU marks a device whose
        loaded state fails its checks as broken and runs on (virtio_error(), e.g. `VQ 1 size 0x400
        Guest index ... inconsistent with Host index ...`), or exits when the load itself fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.qmp("query-status").get("running"):
                    return "inconsistent" not in self.error() and "error" not in self.error().lower()
            except (QmpError, OSError):
                break
            time.sleep(0.05)
        return False

    def error(self):
        """QEMU's last message on stderr."""
        with open(self.stderr.name, errors="replace") as f:
            lines = f.read().strip().splitlines()
        return lines[-1] if lines else f"exited with status {self.proc.poll()}"

    def stop(self):
        try:
            self.qmp("quit")
        except (QmpError, OSError):
            pass
        self.qmp.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.stderr.close()


def stopped_ms(src, dst, since):
    """From the source's STOP (the VM stopped for the switch-over) to the destination's RESUME (its
    vCPU ran), by the QMP events' wall-clock stamps; None when either is missing. Only the
    source's events from the @since'th on count (migrate() returns it: the migration's own).
    An event may reach the socket after a reply that follows it (the source's STOP after
    query-migrate's "completed"): each side is asked for its status, which reads what came
    meanwhile, until both are there or 2 s passed."""
    deadline = time.monotonic() + 2.0
    while True:
        stop, resume = src.qmp.event_time("STOP", since), dst.qmp.event_time("RESUME")
        if stop is not None and resume is not None or time.monotonic() > deadline:
            break
        try:
            src.qmp("query-status")
            dst.qmp("query-status")
        except (QmpError, OSError):
            break
        time.sleep(0.05)
    return (resume - stop) * 1000 if stop is not None and resume is not None else None


def migrate(src, dst_ip, port, downtime_ms, bandwidth_mbit=None, give_up_s=60.0):
    """QEMU's live migration of @src to the -incoming QEMU at dst_ip:port, with auto-converge on
    and the downtime limit set. A link cap of @bandwidth_mbit (None: 10 GiB/s, so none that
    matters here). Returns QEMU's own figures: status, rounds (dirty-sync-count), bytes sent,
    downtime and total time (ms), the highest CPU throttle seen, whether it converged (a
    migration still running after @give_up_s is cancelled: the VM runs on at the source); and
    events_since, the index of the source's first QMP event of this migration (stopped_ms())."""
    q = src.qmp
    since = len(q.events)
    q("migrate-set-capabilities", capabilities=[{"capability": "auto-converge", "state": True}])
    bw = 10 << 30 if bandwidth_mbit is None else bandwidth_mbit * 1000 * 1000 // 8
    q("migrate-set-parameters", **{"downtime-limit": downtime_ms, "max-bandwidth": bw})
    q("migrate", uri=f"tcp:{dst_ip}:{port}")
    deadline, throttle, cancelled = time.monotonic() + give_up_s, 0, False
    while True:
        r = q("query-migrate")
        throttle = max(throttle, r.get("cpu-throttle-percentage", 0))
        if r.get("status") in ("completed", "failed", "cancelled"):
            break
        if not cancelled and time.monotonic() > deadline:
            q("migrate_cancel")
            cancelled = True
        time.sleep(0.02)
    ram = r.get("ram", {})
    return {"status": r["status"], "converged": r["status"] == "completed",
            "rounds": ram.get("dirty-sync-count", 0), "sent_mib": ram.get("transferred", 0) / MIB,
            "downtime_ms": r.get("downtime", 0), "total_ms": r.get("total-time", 0), "throttle": throttle,
            "error": r.get("error-desc", ""), "events_since": since}
