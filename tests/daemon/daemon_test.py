"""daemon_test.py — what the daemon tests share: checks that collect failures, bounded waits, a free
loopback port, and the domain definition of a VM running the bare-metal tick.elf."""
import socket
import time

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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def domain(name, kernel, extra=""):
    """A 16 MiB VM entering kernel directly in M-mode; extra goes inside <domain> (FT metadata)."""
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>16</memory><vcpu>1</vcpu>"
            f"<os><type arch='riscv64' machine='virt'>hvm</type><kernel>{kernel}</kernel>"
            f"<loader>none</loader></os>{extra}</domain>\n")
