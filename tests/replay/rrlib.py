"""rrlib.py — helpers shared by the record/replay tests: running ftvm with console input fed at
chosen times, reading --stats tables, and the bad-log and perturbation checks that are the same
for a bare-metal program and for the Linux guest.
"""
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

import evlog

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from test_cpu import with_test_cpu  # noqa: E402 (FTVM_TEST_CPU)

SKIP = 77


def bundled_guest(guest):
    """True when the directory guest holds the bundled guest (FTVM_GUEST_DIR then points at it);
    else says SKIP, for a test to return SKIP."""
    if not os.path.exists(os.path.join(guest, "Image")):
        print(f"SKIP: no bundled guest in {guest} (build it with guest/build)")
        return False
    os.environ["FTVM_GUEST_DIR"] = guest
    return True
def seeded_random():
    """A random.Random seeded from FTVM_TEST_SEED, or at random; the seed is printed so a failing
    run can be repeated."""
    seed = int(os.environ.get("FTVM_TEST_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"FTVM_TEST_SEED={seed}", flush=True)
    return random.Random(seed)


LSN_FIELD = 9  # a byte inside the record header's lsn (bytes 8..15)


class Failures:
    """Collects failed expectations; a test ends with report()."""

    def __init__(self, name):
        self.name, self.failed, self.passed = name, [], 0

    def expect(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed.append(what)
            print(f"FAIL: {what}", flush=True)
        return cond

    def report(self):
        if self.failed:
            print(f"{self.name}: {len(self.failed)} of {self.passed + len(self.failed)} checks failed")
            return 1
        print(f"{self.name}: all {self.passed} checks passed")
        return 0


class Result:
    def __init__(self, code, out, err, seconds):
        self.code, self.out, self.err, self.seconds = code, out, err, seconds

    def err_text(self):
        return self.err.decode(errors="replace")

    def last_err_line(self):
        lines = self.err_text().strip().splitlines()
        return lines[-1] if lines else ""


def run(argv, feed=None, timeout=300, env=None, on_output=None):
    """Runs argv. `feed` is a list of (delay_s, bytes) written to stdin in order (each after its
    delay); stdin is closed after the last one, or is /dev/null without a feed. With `on_output`,
    once the items run out it is called with the stdout read so far (every 10 ms until it answers):
    a list of more (delay, bytes) items feeds them ([] means "not yet"), None closes stdin."""
    start = time.monotonic()
    argv = with_test_cpu(argv)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = bytearray(), bytearray()

    def pump(stream, buf):
        while True:
            b = stream.read1(65536)
            if not b:
                return
            buf.extend(b)

    threads = [threading.Thread(target=pump, args=(p.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    try:
        if feed is not None:
            pending = list(feed)
            while pending:
                delay, data = pending.pop(0)
                time.sleep(delay)
                p.stdin.write(data)
                p.stdin.flush()
                while not pending and on_output and p.poll() is None and time.monotonic() - start < timeout:
                    more = on_output(bytes(out))
                    if more is None:
                        break
                    pending.extend(more)
                    if not more:
                        time.sleep(0.01)
            p.stdin.close()
        code = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        code = p.wait()
        err.extend(f"\n[killed after {timeout} s]".encode())
    except BrokenPipeError:
        code = p.wait(timeout=timeout)
    for t in threads:
        t.join()
    return Result(code, bytes(out), bytes(err), time.monotonic() - start)


def parse_stats(text):
    """The composition table of `ftvm record` (stderr) or `ftvm replay --stats` (stdout):
    {kind name: (records, bytes)}, plus 'total' and the instruction count under 'icount'."""
    table = {}
    for line in text.splitlines():
        m = re.match(r"^(TIME|NET_RX|DISK_DONE|RNG|CONSOLE_IN|DISK_DIGEST|CHECK|END|total)\s+(\d+)\s+(\d+)", line)
        if m:
            table[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        m = re.match(r"^instructions (\d+)", line)
        if m:
            table["icount"] = int(m.group(1))
        m = re.search(r"log bandwidth ([0-9.]+) Mbit/s", line)
        if m:
            table["mbit"] = float(m.group(1))
    return table


def check_stats(f, ftvm, log_path, recorded_stats_text, what):
    """`replay --stats` agrees with the recorder's own table and with an independent parse of the
    file: records and bytes per kind, total = file size, instruction count = the END's icount."""
    st = run([ftvm, "replay", "--log", log_path, "--stats"])
    f.expect(st.code == 0, f"{what}: replay --stats exit {st.code}: {st.err_text()}")
    got = parse_stats(st.out.decode())
    rec = parse_stats(recorded_stats_text)
    log = evlog.Log.read(log_path)
    size = os.path.getsize(log_path)
    for kind, name in evlog.KIND_NAMES.items():
        recs = log.of_kind(kind)
        want = (len(recs), sum(r.size for r in recs))
        f.expect(got.get(name) == want, f"{what}: --stats {name} {got.get(name)}, the file has {want}")
        f.expect(rec.get(name) == want, f"{what}: recorder's {name} {rec.get(name)}, the file has {want}")
    f.expect(got.get("total") == (len(log.records), size),
             f"{what}: --stats total {got.get('total')}, file {len(log.records)} records {size} bytes")
    f.expect(got.get("icount") == log.records[-1].icount,
             f"{what}: --stats instructions {got.get('icount')}, last record at {log.records[-1].icount}")
    f.expect("mbit" in got, f"{what}: --stats prints no bandwidth")
    return log, got


def mutated(src, dst, edit):
    """Copies the log src to dst and applies edit(bytearray) -> bytearray."""
    with open(src, "rb") as fi:
        data = bytearray(fi.read())
    data = edit(data)
    with open(dst, "wb") as fo:
        fo.write(data)
    return dst


def flip(offset, mask=0x01):
    def edit(data):
        data[offset] ^= mask
        return data
    return edit


def cut(length):
    return lambda data: data[:length]


def check_bad_logs(f, ftvm, log_path, run_args, workdir, deadline_s=120, fresh_disks=None):
    """Corrupted copies of a good log are refused with exit 4 and a message naming the record; a
    log cut at a record boundary gives exit 5. `fresh_disks()` (optional) returns extra run
    arguments for each replay (e.g. new disk copies)."""
    log = evlog.Log.read(log_path)
    recs = log.records
    inputs = [r for r in recs if r.kind in evlog.INPUT_KINDS]
    checks = log.of_kind(evlog.CHECK)
    mid_input = inputs[len(inputs) // 2]
    mid_check = checks[len(checks) // 2]
    end = recs[-1]
    bad = os.path.join(workdir, "bad.log")

    def replay(what):
        extra = fresh_disks() if fresh_disks else []
        return run([ftvm, "replay", "--quiet", "--log", bad] + run_args + extra, timeout=deadline_s)

    header_cases = [
        (0, r"log header: bad magic"),
        (8, r"log header: version \d+, this ftvm reads version 1"),
        (10, r"log header: header_size"),
        (20, r"log header: CRC mismatch"),           # inside the config digest
        (40, r"log header: CRC mismatch"),           # vm_name
        (253, r"log header: CRC mismatch"),          # the CRC itself
    ]
    for offset, pattern in header_cases:
        mutated(log_path, bad, flip(offset))
        r = replay(f"header byte {offset}")
        f.expect(r.code == 4 and re.search(pattern, r.last_err_line()),
                 f"header byte {offset} flipped: exit {r.code} '{r.last_err_line()}', want 4 /{pattern}/")

    def at(rec, own_lsn=True):
        """The message names the byte offset and the last good record; and the record's own LSN
        unless that is the field that was corrupted."""
        lsn = rec.lsn if own_lsn else r"\d+"
        return (rf"^ftvm replay: log corrupt at byte {rec.offset}, the record after lsn {rec.lsn - 1}: "
                rf"record lsn {lsn}( \(\w+\))?: ")

    record_cases = [
        (mid_input.offset + 0, 0x40, mid_input, r"unknown kind"),                # kind
        (mid_input.offset + 1, 0x01, mid_input, r"CRC mismatch|reserved"),       # flags
        (mid_input.offset + 7, 0x01, mid_input, r"exceeds the cap"),             # length, high byte
        (mid_input.offset + LSN_FIELD, 0x01, mid_input, r"CRC mismatch"),        # lsn
        (mid_input.offset + 17, 0x01, mid_input, r"CRC mismatch"),               # icount
        (mid_input.payload_offset, 0x01, mid_input, r"CRC mismatch"),            # payload, first byte
        (mid_input.crc_offset - 1, 0x80, mid_input, r"CRC mismatch"),            # payload, last byte
        (mid_input.crc_offset + 2, 0x01, mid_input, r"CRC mismatch"),            # CRC
        (mid_check.payload_offset + 8, 0x01, mid_check, r"CRC mismatch"),        # a CHECK's cpu digest
        (end.payload_offset + 4, 0x01, end, r"CRC mismatch"),                    # the END's status
    ]
    for offset, mask, rec, pattern in record_cases:
        mutated(log_path, bad, flip(offset, mask))
        r = replay(f"byte {offset}")
        line = r.last_err_line()
        where = at(rec, own_lsn=offset != rec.offset + LSN_FIELD)
        f.expect(r.code == 4 and re.search(where, line) and re.search(pattern, line),
                 f"byte {offset} (lsn {rec.lsn} {rec.name}) ^{mask:#x}: exit {r.code} '{line}', "
                 f"want 4 /{where}/ /{pattern}/")

    # Truncated inside the header, inside a record header, inside a payload.
    mutated(log_path, bad, cut(100))
    r = replay("cut at 100")
    f.expect(r.code == 4 and "log header: truncated" in r.last_err_line(),
             f"cut inside the header: exit {r.code} '{r.last_err_line()}', want 4 'log header: truncated'")
    prev = recs[recs.index(mid_input) - 1]
    for length in (mid_input.offset + 10, mid_input.payload_offset + 1, end.offset + 20):
        victim = mid_input if length < end.offset else end
        before = prev if victim is mid_input else recs[-2]
        mutated(log_path, bad, cut(length))
        r = replay(f"cut at {length}")
        want = rf"log truncated at byte {victim.offset}: record after lsn {before.lsn} needs"
        f.expect(r.code == 4 and re.search(want, r.last_err_line()),
                 f"cut at byte {length}: exit {r.code} '{r.last_err_line()}', want 4 /{want}/")

    # Cut at record boundaries: every record matched, but no END.
    for last in (mid_check, recs[-2]):
        mutated(log_path, bad, cut(last.offset + last.size))
        r = replay(f"cut after lsn {last.lsn}")
        want = rf"the log ends at icount {last.icount} \(lsn {last.lsn}\).* without an END record"
        f.expect(r.code == 5 and re.search(want, r.last_err_line()),
                 f"cut after lsn {last.lsn}: exit {r.code} '{r.last_err_line()}', want 5 /{want}/")
    mutated(log_path, bad, cut(evlog.HEADER_SIZE))
    r = replay("header only")
    f.expect(r.code == 5 and re.search(r"the log ends at icount 0 \(lsn 0\).* without an END record", r.last_err_line()),
             f"a log of just the header: exit {r.code} '{r.last_err_line()}', want 5")
    st = run([ftvm, "replay", "--stats", "--log", bad])
    f.expect(st.code == 0 and b"no END record" in st.out,
             f"--stats of a log without END: exit {st.code}, says {st.out[-200:]!r}")
    mutated(log_path, bad, flip(mid_input.payload_offset))
    st = run([ftvm, "replay", "--stats", "--log", bad])
    f.expect(st.code == 4 and "CRC mismatch" in st.last_err_line(),
             f"--stats of a corrupt log: exit {st.code} '{st.last_err_line()}'")


def check_perturbations(f, ftvm, log_path, run_args, lsns, deadline_s=120, fresh_disks=None, allow_earlier=False):
    """For each input record LSN: a replay that perturbs it stops with exit 3 at the first CHECK
    after it, and the message names that CHECK's icount and LSN.

    allow_earlier (Linux guests): a perturbed input may also change the guest's control flow so
    that it waits in WFI, or runs past a record, before that CHECK; the replayer then reports the
    divergence at once, naming the icount and the next record. That is accepted only when it is
    no later than the first CHECK after the perturbed record."""
    log = evlog.Log.read(log_path, verify_crc=False)
    by_lsn = {r.lsn: r for r in log.records}
    for lsn in lsns:
        rec = by_lsn[lsn]
        chk = log.first_check_after(rec)
        extra = fresh_disks() if fresh_disks else []
        r = run([ftvm, "replay", "--quiet", "--log", log_path, "--perturb-lsn", str(lsn)] + run_args + extra,
                timeout=deadline_s)
        line = r.last_err_line()
        want = rf"^ftvm replay: divergence at icount {chk.icount} \(CHECK lsn {chk.lsn}\): "
        caught = bool(re.search(want, line))
        how = "at the first CHECK after it"
        if not caught and allow_earlier:
            m = re.search(r"divergence: the guest waits in WFI at icount (\d+), but the next record "
                          r"\(lsn (\d+), \w+\) is at icount (\d+)", line) or \
                re.search(r"divergence: the machine is at icount (\d+), past record lsn (\d+) \(\w+\) "
                          r"at icount (\d+)", line)
            if m:
                at, next_lsn = int(m.group(1)), int(m.group(2))
                caught = rec.icount <= at <= chk.icount and rec.lsn < next_lsn <= chk.lsn
                how = f"before the first CHECK after it (lsn {chk.lsn}): the control flow changed"
        f.expect(r.code == 3 and caught,
                 f"perturbed lsn {lsn} ({rec.name} at icount {rec.icount}): exit {r.code} "
                 f"'{line}', want 3 /{want}/" + (" or an earlier WFI/past-record divergence" if allow_earlier else ""))
        print(f"perturbed lsn {lsn} ({rec.name}), caught {how}: {line} [{r.seconds:.1f} s]", flush=True)


def fresh_copy(src, dst):
    shutil.copyfile(src, dst)
    return dst


class Live:
    """A process whose console is driven interactively: type() on stdin, wait_for() output."""

    def __init__(self, argv, env=None):
        self.start = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.out, self.err = bytearray(), bytearray()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                        for s, b in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _pump(self, stream, buf):
        while True:
            b = stream.read1(65536)
            if not b:
                return
            with self.lock:
                buf.extend(b)

    def output(self):
        with self.lock:
            return bytes(self.out)

    def wait_for(self, needle, timeout):
        """True once `needle` (bytes) is in the output; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return True
            if self.p.poll() is not None:
                return needle in self.output()
            time.sleep(0.05)
        return False

    def type(self, data):
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
        except BrokenPipeError:
            pass

    def finish(self, timeout):
        """Waits for the exit (killing it after timeout); returns a Result."""
        try:
            code = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            code = self.p.wait()
            self.err.extend(f"\n[killed after {timeout} s]".encode())
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        for t in self.threads:
            t.join()
        return Result(code, bytes(self.out), bytes(self.err), time.monotonic() - self.start)
