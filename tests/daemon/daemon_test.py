"""daemon_test.py — what the daemon tests share: checks that collect failures, bounded waits, a free
loopback port, the domain definition of a VM running the bare-metal tick.elf, and the exit status."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ports import free_port  # noqa: E402

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def wait_for(pred, timeout=20):
    """pred() until it is true (its value) or timeout seconds passed (its last value)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def domain(name, kernel, extra=""):
    """A 16 MiB VM entering kernel directly in M-mode; extra goes inside <domain> (FT metadata)."""
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>16</memory><vcpu>1</vcpu>"
            f"<os><type arch='riscv64' machine='virt'>hvm</type><kernel>{kernel}</kernel>"
            f"<loader>none</loader></os>{extra}</domain>\n")


def ft_metadata(ftvm, tmp, vm):
    """An arbiter area and a channel key for an FT pair of VM vm in tmp; returns the <metadata>
    both halves carry, with "%s" where each puts its own half (peer='...' or listen='...')."""
    import os
    import subprocess
    arb, key = os.path.join(tmp, "arb"), os.path.join(tmp, "channel.key")
    with open(arb, "wb") as f:
        f.truncate(1 << 20)
    subprocess.run([ftvm, "arbiter", "init", arb, "--vm", vm], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([ftvm, "keygen", key], check=True, stdout=subprocess.DEVNULL)
    return (f"<metadata><ftvm:ft xmlns:ftvm='urn:x-ftvm:ft:1' arbiter='{arb}' channel-key='{key}' "
            f"timeout-ms='400' heartbeat-ms='50' %s/></metadata>")


def outcome(tmp):
    """The test's exit status: 1 with the failures counted (their logs kept in @tmp), else 0."""
    if failures:
        print(f"{len(failures)} failure(s); logs in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("all ok")
    return 0
