"""ports.py — a TCP port on 127.0.0.1 that no socket holds right now, for a test's listener.

The port is free when this returns; another process may take it before the test binds it, which
on a test machine is rare enough that the tests simply fail then with the bind error.
"""
import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
