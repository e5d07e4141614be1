"""test_cpu.py — FTVM_TEST_CPU: run a test's VMs under one engine of the hart.

`FTVM_TEST_CPU=interp` (or `jit`) makes the test helpers that start ftvm (tests/ft/ftlab.py,
tests/replay/rrlib.py) add `--cpu ENGINE` right after the subcommand of every command that runs a
VM. ftvm's default is the JIT, so this is how CI keeps a few tests on the interpreter
(the `*.interp` variants in tests/ft and tests/replay)."""
import os

# Subcommands that run a VM and so take `--cpu`.
VM_VERBS = ("run", "primary", "backup", "spare", "incoming", "record", "replay")


def with_test_cpu(argv):
    """argv with `--cpu $FTVM_TEST_CPU` right after the ftvm subcommand when that variable is set
    and the subcommand runs a VM. It goes first, so a test that picks an engine for one node (the
    jit-* scenarios, jit.linux_cross) still does: the later option wins."""
    engine = os.environ.get("FTVM_TEST_CPU")
    if not engine:
        return argv
    if engine not in ("interp", "jit"):
        raise ValueError(f"FTVM_TEST_CPU={engine!r}: expected interp or jit")
    for i, word in enumerate(argv[:-1]):
        if os.path.basename(str(word)) == "ftvm" and argv[i + 1] in VM_VERBS:
            return argv[:i + 2] + ["--cpu", engine] + argv[i + 2:]
    return argv
