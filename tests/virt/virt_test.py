"""virt_test.py — what the virt.* tests share: a real ftvmd serving libvirt's protocol on a UNIX
socket in a temporary directory, the URI stock clients use for it, and the daemon tests' helpers
(checks that collect failures, bounded waits, the tick.elf domain definition)."""
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from daemon_test import check, domain, failures, ft_metadata, wait_for  # noqa: E402,F401


class Daemon:
    """ftvmd with its state, JSON socket and libvirt socket under tmp, in network namespace netns
    if given (its UNIX sockets are reached from anywhere on the file system); extra: more ftvmd
    options."""

    def __init__(self, ftvmd, ftvm, tmp, netns=None, extra=()):
        self.ftvmd, self.ftvm, self.tmp, self.netns, self.extra = ftvmd, ftvm, tmp, netns, list(extra)
        self.vsock = os.path.join(tmp, "libvirt-sock")
        self.uri = "ftvm+unix:///system?socket=" + self.vsock
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.tmp, "ftvmd.log"), "a")
        where = ["ip", "netns", "exec", self.netns] if self.netns else []   # exec: the pid is ftvmd's
        self.proc = subprocess.Popen(where + [self.ftvmd, "--state-dir", os.path.join(self.tmp, "state"), "--socket",
                                      os.path.join(self.tmp, "d.sock"), "--libvirt-socket", self.vsock,
                                      "--ftvm", self.ftvm, "--poll-ms", "100", *self.extra],
                                     stdout=self.log, stderr=self.log)
        check(wait_for(lambda: os.path.exists(self.vsock), 20), "ftvmd serves its libvirt socket")

    def alive(self):
        return self.proc.poll() is None

    def virsh(self, *args, timeout=60):
        """The real virsh against this daemon: (status, stdout, stderr)."""
        r = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def stop(self):
        """SIGTERM: the daemon must end with status 0."""
        if self.proc and self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                check(self.proc.wait(30) == 0, "ftvmd ends with status 0 on SIGTERM")
            except subprocess.TimeoutExpired:
                check(False, "ftvmd ends on SIGTERM")
        if self.proc and self.alive():
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        with open(os.path.join(self.tmp, "ftvmd.log")) as f:
            return f.read()


def finish(tmp):
    """Removes tmp; the verdict and the exit status."""
    shutil.rmtree(tmp, ignore_errors=True)
    print("FAILED: " + "; ".join(failures) if failures else "all passed", flush=True)
    sys.exit(1 if failures else 0)
