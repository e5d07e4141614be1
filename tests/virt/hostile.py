#!/usr/bin/env python3
"""hostile.py (virt.hostile) — raw frames on ftvmd's libvirt socket from a client that follows no
rules, and the daemon's answers: a remote_error for an unknown procedure or program (libvirt's
"not supported", code 3), for arguments that do not decode, for a call before CONNECT_OPEN and for a
frame above the cap (then it hangs up); a hang-up for a frame shorter than a header; PONG for a
keepalive PING; clients that vanish mid-frame or mid-call, one that stalls mid-frame, 100 clients
at once, and one more than the daemon admits; (root) another user, refused by the socket's mode
and, once the file is opened up by hand, by its uid. Through all of it, and after it, the daemon answers
everyone else (the real virsh included) and ends with status 0 on SIGTERM.

usage: hostile.py FTVMD FTVM TICK_ELF   (no virsh: skip, status 77)
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from rpc_client import (DEFINE_XML, ERR_INTERNAL, ERR_NO_SUPPORT, ERR_RPC, FRAME_MAX, GET_TYPE,
                        KEEPALIVE, LIST_ALL, LOOKUP_BY_NAME, MAX_CLIENTS, MESSAGE, OPEN, OPEN_ARGS, PING, PONG,
                        Client, error_of, frame, many_clients, xdr_string)
from virt_test import Daemon, check, finish

FTVMD, FTVM = sys.argv[1:3]
if not shutil.which("virsh"):
    print("skip: needs virsh")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="virt-hostile-")
d = Daemon(FTVMD, FTVM, tmp)
d.start()


def serving():
    rc, out, _ = d.virsh("list", "--all", timeout=30)
    return rc == 0 and "Id" in out


try:
    c = Client(d.vsock)
    r = c.call(GET_TYPE, serial=7)
    check(r and r[5] == 1 and r[4] == 7 and error_of(r)[0] == ERR_INTERNAL, f"a call before CONNECT_OPEN: an error ({r and error_of(r)})")
    check(c.open(), "CONNECT_OPEN")
    r = c.call(GET_TYPE, serial=8)
    check(r and r[5] == 0 and r[4] == 8 and b"ftvm" in r[6], "GET_TYPE answers ftvm with the call's serial")
    r = c.call(9999, serial=9)
    code, msg = error_of(r) if r and r[5] == 1 else (None, "")
    check(r and r[2] == 9999 and r[4] == 9 and code == ERR_NO_SUPPORT and "9999" in msg,
          f"an unknown procedure: not supported ({code}, {msg!r})")
    r = c.call(1, prog=0x11223344, serial=10)
    code, msg = error_of(r) if r and r[5] == 1 else (None, "")
    check(code == ERR_NO_SUPPORT and "0x11223344" in msg, f"an unknown program: not supported ({msg!r})")
    r = c.call(GET_TYPE, vers=7, serial=11)
    check(r and r[5] == 1 and error_of(r)[0] == ERR_NO_SUPPORT, "an unknown protocol version: not supported")
    r = c.call(PING, prog=KEEPALIVE, typ=MESSAGE, serial=0)
    check(r and r[0] == KEEPALIVE and r[2] == PONG and r[3] == MESSAGE, "keepalive PING: PONG")
    r = c.call(LOOKUP_BY_NAME, struct.pack(">I", 1000) + b"ab", serial=12)
    code, msg = error_of(r) if r and r[5] == 1 else (None, "")
    check(code == ERR_RPC and "decode" in msg, f"arguments that do not decode: an RPC error ({msg!r})")
    r = c.call(DEFINE_XML, struct.pack(">I", 0x7FFFFFF0) + b"<domain/>", serial=13)
    check(r and r[5] == 1 and error_of(r)[0] == ERR_RPC, "a string claiming 2 GiB inside a small frame: an RPC error")
    r = c.call(LOOKUP_BY_NAME, xdr_string(b"x" * 300), serial=14)
    check(r and r[5] == 1 and error_of(r)[0] == 42, "a lookup of a name longer than any VM's: no domain")
    c.s.sendall(frame(GET_TYPE, typ=MESSAGE, serial=15))   # not a call: nothing to answer
    r = c.call(GET_TYPE, serial=16)
    check(r and r[4] == 16 and r[5] == 0, "a MESSAGE from the client is ignored; the next call is answered")
    r = c.call(LIST_ALL, struct.pack(">iI", 1, 0), serial=17)
    check(r and r[5] == 0 and struct.unpack(">I", r[6][:4])[0] == 0, "LIST_ALL_DOMAINS: none")
    c.close()

    c = Client(d.vsock)
    c.open()
    c.s.sendall(frame(GET_TYPE, serial=21, length=FRAME_MAX + 1))
    r = c.read()
    code, msg = error_of(r) if r and r[5] == 1 else (None, "")
    check(r and r[4] == 21 and code == ERR_RPC and "cap" in msg, f"a frame above the cap: an error naming it ({msg!r})")
    check(c.hung_up(), "... and the daemon hangs up")
    c.close()
    c = Client(d.vsock)
    c.s.sendall(struct.pack(">I", 8) + b"\0" * 8)
    check(c.hung_up(), "a frame shorter than its header: the daemon hangs up")
    c.close()

    for i in range(20):   # vanish mid-frame and mid-call
        c = Client(d.vsock)
        c.s.sendall(OPEN_ARGS[:5] if i % 2 else frame(OPEN, OPEN_ARGS) + frame(LIST_ALL, struct.pack(">iI", 1, 0)))
        c.close()
    check(serving(), "after 20 clients vanished mid-frame or mid-call, virsh list works")

    stalled = Client(d.vsock)
    stalled.s.sendall(frame(OPEN, OPEN_ARGS)[:10])
    check(serving(), "with a client stalled mid-frame, virsh list works")

    results = many_clients(d.vsock, 100)
    check(len(results) == 100 and all(results), f"100 clients at once are all answered ({results.count(True)})")

    held = [stalled] + [Client(d.vsock) for _ in range(MAX_CLIENTS - 1)]
    for h in held[1:4]:
        h.open()
    extra = Client(d.vsock)
    check(extra.hung_up(), f"client {MAX_CLIENTS + 1} is refused while {MAX_CLIENTS} are connected")
    extra.close()
    check(held[3].call(GET_TYPE, serial=5) is not None, "the connected clients are still answered")
    for h in held:
        h.close()
    check(serving(), "once they leave, virsh list works again")

    mode = os.stat(d.vsock).st_mode & 0o777
    check(mode == 0o600, f"the socket is owner-only ({mode:o})")
    if os.geteuid() == 0 and os.path.exists("/usr/bin/python3"):   # another user: refused by the mode, and by its uid once the file is opened up
        probe = ("import socket, struct, sys\n"
                 "s = socket.socket(socket.AF_UNIX); s.settimeout(10)\n"
                 "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('denied'); sys.exit()\n"
                 "try:\n    s.sendall(bytes.fromhex(sys.argv[2]))\n"
                 "    print('answered' if s.recv(4) else 'closed')\n"
                 "except (ConnectionResetError, BrokenPipeError):\n    print('closed')\n")

        def as_nobody():
            r = subprocess.run(["/usr/bin/python3", "-c", probe, d.vsock, frame(OPEN, OPEN_ARGS).hex()],
                               capture_output=True, text=True, timeout=30, user="nobody")
            return (r.stdout + r.stderr).strip()

        os.chmod(tmp, 0o755)   # only the socket's own mode stands in the way
        check(as_nobody() == "denied", "another user cannot connect to the 0600 socket")
        os.chmod(d.vsock, 0o666)
        got = as_nobody()
        check(got == "closed", f"another user is hung up on even when the socket file is opened up ({got!r})")
        os.chmod(d.vsock, 0o600)
    check(d.alive(), "ftvmd is still running")
finally:
    d.stop()
finish(tmp)
