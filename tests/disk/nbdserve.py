"""nbdserve.py — disk images served over NBD by QEMU's storage code, for the disk tests and the
disk benchmark: qemu-storage-daemon exporting one image (qcow2 or raw) on a Unix socket, and the
qemu-img / qemu-io helpers that read images back independently of ftvm.
"""
import os
import shutil
import signal
import subprocess
import time
import urllib.parse


def tools_missing():
    """The QEMU tools that are not installed (Debian: qemu-system-common, qemu-utils)."""
    return [t for t in ("qemu-storage-daemon", "qemu-nbd", "qemu-img", "qemu-io") if not shutil.which(t)]


def qemu_img(*args):
    """Runs qemu-img ARGS; returns (exit code, output)."""
    p = subprocess.run(["qemu-img", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    return p.returncode, p.stdout.decode(errors="replace")


def qemu_io(image, fmt, command):
    """Runs one qemu-io command on image; returns (exit code, output). qemu-io exits 0 even when a
    pattern check fails, so callers look for its "Pattern verification failed" line too."""
    p = subprocess.run(["qemu-io", "-f", fmt, "-c", command, image], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    out = p.stdout.decode(errors="replace")
    return (1 if "failed" in out.lower() else p.returncode), out


class StorageDaemon:
    """qemu-storage-daemon serving image (format fmt) as export EXPORT on a Unix socket; with
    qemu_nbd=True, qemu-nbd instead (one client at a time, kept serving with --persistent)."""

    EXPORT = "disk0"

    def __init__(self, image, fmt, sock, log_path, writable=True, qemu_nbd=False):
        self.sock = sock
        if os.path.exists(sock):
            os.unlink(sock)
        self.log = open(log_path, "ab")
        argv = ["qemu-storage-daemon",
                "--blockdev", f"driver=file,node-name=file0,filename={image}",
                "--blockdev", f"driver={fmt},node-name=fmt0,file=file0",
                "--nbd-server", f"addr.type=unix,addr.path={sock}",
                "--export", f"type=nbd,id=exp0,node-name=fmt0,name={self.EXPORT},"
                            f"writable={'on' if writable else 'off'}"]
        if qemu_nbd:
            argv = ["qemu-nbd", "--persistent", "-f", fmt, "-k", sock, "-x", self.EXPORT] \
                + ([] if writable else ["--read-only"]) + [image]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"qemu-storage-daemon did not serve {image}; see {log_path}")
            time.sleep(0.05)

    @property
    def uri(self):
        return f"nbd+unix:///{self.EXPORT}?socket={urllib.parse.quote(self.sock)}"

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self):
        """Ends the daemon (SIGTERM, then SIGKILL) and waits for it: the image is closed after."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
