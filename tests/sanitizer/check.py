#!/usr/bin/env python3
"""check.py — proves tests/lib/sanitizer_check.py on a ThreadSanitizer build: a program that races,
then is killed with SIGKILL like an FT node, fails the check although nothing of the race shows in
its exit status; the same program with its counter under a lock passes the check through with the
kill's status.

Usage: check.py RACY
"""
import os
import signal
import subprocess
import sys

CHECK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", "sanitizer_check.py")


def run_killed(racy, *args):
    """sanitizer_check.py over @racy, which kills itself: (the check's exit status, its output)."""
    p = subprocess.run([sys.executable, CHECK, racy, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def main():
    racy = sys.argv[1]
    failures = 0
    status, out = run_killed(racy)
    if status != 1 or "WARNING: ThreadSanitizer: data race" not in out:
        print(f"FAILED: the racing program killed with SIGKILL: check status {status}, want 1 with its report:\n{out}")
        failures += 1
    status, out = run_killed(racy, "--locked")
    if status != 128 + signal.SIGKILL or "ThreadSanitizer" in out:
        print(f"FAILED: the locked program: check status {status}, want its own (137), no report:\n{out}")
        failures += 1
    print("ok" if not failures else f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
