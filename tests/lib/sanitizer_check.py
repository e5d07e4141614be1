#!/usr/bin/env python3
"""sanitizer_check.py — runs one test command and fails it when any process it started, however
deep and however it ended, printed a sanitizer report.

A sanitizer report turns into a failing exit status (66) only when the process exits on its own;
the FT, daemon and migration tests end their nodes with SIGKILL, and ftvmd's VM processes write
to consoles the test may never read. So the command runs with log_path added to TSAN_OPTIONS,
ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS, pointing into a fresh directory: every sanitized
process below it (through ip netns exec, setpriv, ftvmd) writes each report to report.PID there
the moment it finds it, before any kill can lose it. When the command ends, a file there holding
a report ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", UBSan's
"runtime error:") fails the test (exit 1, the reports printed), whatever the command's status.
Without a sanitizer build no such file is ever written and the command's status passes through.

Usage: sanitizer_check.py COMMAND [ARGS...]
A test may look earlier with reports() (FTVM_SANITIZER_LOGS names the directory), to say which of
its processes reported.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

LOGS_ENV = "FTVM_SANITIZER_LOGS"
OPTIONS_ENV = ("TSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
REPORT = re.compile(r"WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")
EXCERPT = 6000  # characters of each report printed


def reports():
    """Reports written so far by the processes under the check, as (pid, text) sorted by pid;
    [] when the test runs without sanitizer_check.py."""
    logs = os.environ.get(LOGS_ENV)
    if not logs or not os.path.isdir(logs):
        return []
    found = []
    for name in os.listdir(logs):
        pid = name.rsplit(".", 1)[-1]
        try:
            with open(os.path.join(logs, name), errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if REPORT.search(text):
            found.append((int(pid) if pid.isdigit() else 0, text))
    return sorted(found)


def main(argv):
    if not argv:
        print("usage: sanitizer_check.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    logs = tempfile.mkdtemp(prefix="ftvm-sanitizer-")
    # Processes dropped to another user (setpriv in the permission tests) must create files here too:
    # sticky and unlistable, so with fs.protected_symlinks no other user's link is ever followed;
    # what another local user can still do is plant a report file, which fails the test, no worse.
    os.chmod(logs, 0o1733)
    env = dict(os.environ)
    env[LOGS_ENV] = logs
    for var in OPTIONS_ENV:
        env[var] = (env.get(var, "") + f" log_path={logs}/report").strip()
    try:
        child = subprocess.Popen(argv, env=env)
    except OSError as e:
        print(f"sanitizer_check: cannot run {argv[0]}: {e}", file=sys.stderr)
        shutil.rmtree(logs, ignore_errors=True)
        return 1
    # ctest ends a test past its timeout with SIGTERM or SIGKILL: pass a SIGTERM on so the test can
    # clean up its namespaces, and still read the reports.
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    status = child.wait()
    os.environ[LOGS_ENV] = logs
    found = reports()
    shutil.rmtree(logs, ignore_errors=True)
    if not found:
        return status if status >= 0 else 128 - status
    for pid, text in found:
        print(f"FAILED: a sanitizer report from process {pid}:\n{text[:EXCERPT]}", file=sys.stderr)
    print(f"FAILED: {len(found)} sanitizer report(s) from the test's processes (its own status {status})",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
