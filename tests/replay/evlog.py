"""evlog.py — an independent reader of ftvm event logs, written from docs/log-format.md alone.

The record/replay tests use it to find records by kind (the input to perturb, the first CHECK
after it), to compute byte offsets of fields to corrupt, and to check that the log the recorder
wrote follows the specification (CRCs, LSN sequence, icount order, payload sizes). It shares no
code with replay/eventlog.c on purpose: a misreading of the spec on either side shows up as a
disagreement.

Command line: `evlog.py dump LOG` lists every record (offset, lsn, kind, icount, length).
"""
import struct
import sys

MAGIC = b"FTVMLOG\0"
VERSION = 1
HEADER_SIZE = 256
RECORD_HEAD = 24
RECORD_TAIL = 4
TIMEBASE_HZ = 10_000_000

TIME, NET_RX, DISK_DONE, RNG, CONSOLE_IN, DISK_DIGEST, CHECK, END = 1, 2, 3, 4, 5, 6, 16, 17
KIND_NAMES = {TIME: "TIME", NET_RX: "NET_RX", DISK_DONE: "DISK_DONE", RNG: "RNG",
              CONSOLE_IN: "CONSOLE_IN", DISK_DIGEST: "DISK_DIGEST", CHECK: "CHECK", END: "END"}
INPUT_KINDS = (TIME, NET_RX, DISK_DONE, RNG, CONSOLE_IN, DISK_DIGEST)
# Payload caps (docs/log-format.md, "Kinds and payloads"): (minimum, maximum).
PAYLOAD_SIZES = {TIME: (16, 16), NET_RX: (4 + 14, 4 + 65550), DISK_DONE: (16, 16 + 1048576),
                 RNG: (5, 4 + 4096), CONSOLE_IN: (1, 4096), DISK_DIGEST: (40, 40), CHECK: (64, 64),
                 END: (24, 24)}


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


class LogError(Exception):
    pass


class Record:
    def __init__(self, offset, kind, lsn, icount, payload):
        self.offset, self.kind, self.lsn, self.icount, self.payload = offset, kind, lsn, icount, payload

    @property
    def name(self):
        return KIND_NAMES.get(self.kind, f"kind{self.kind}")

    @property
    def size(self):
        return RECORD_HEAD + len(self.payload) + RECORD_TAIL

    @property
    def payload_offset(self):
        return self.offset + RECORD_HEAD

    @property
    def crc_offset(self):
        return self.offset + RECORD_HEAD + len(self.payload)

    def check(self):
        """CHECK payload as a dict."""
        scope, _, cpu, machine, console, net, disk, outputs, _ = struct.unpack("<IIQQQQQQQ", self.payload)
        return {"scope": scope, "cpu": cpu, "machine": machine, "console": console, "net": net,
                "disk": disk, "outputs": outputs}

    def end(self):
        exit_, status, digest, outputs = struct.unpack("<IiQQ", self.payload)
        return {"exit": exit_, "status": status, "machine": digest, "outputs": outputs}

    def time(self):
        return struct.unpack("<QQ", self.payload)


class Log:
    def __init__(self, data, verify_crc=True):
        if len(data) < HEADER_SIZE:
            raise LogError("header truncated")
        magic, version, hsize, flags, digest, start_lsn = struct.unpack_from("<8sHHIQQ", data, 0)
        if magic != MAGIC or version != VERSION or hsize != HEADER_SIZE or flags != 0:
            raise LogError(f"bad header: magic {magic!r} version {version} size {hsize} flags {flags}")
        if verify_crc and struct.unpack_from("<I", data, 252)[0] != crc32c(data[:252]):
            raise LogError("header CRC mismatch")
        self.config_digest, self.start_lsn = digest, start_lsn
        self.vm_name = data[32:96].split(b"\0", 1)[0].decode()
        self.summary = data[96:252].split(b"\0", 1)[0].decode()
        self.records = []
        self.trailing = 0  # bytes after the last complete record
        off, prev_lsn, prev_icount = HEADER_SIZE, start_lsn - 1, 0
        while off < len(data):
            if len(data) - off < RECORD_HEAD:
                self.trailing = len(data) - off
                break
            kind, rflags, reserved, length, lsn, icount = struct.unpack_from("<BBHIQQ", data, off)
            if kind not in PAYLOAD_SIZES:
                raise LogError(f"offset {off}: unknown kind {kind}")
            lo, hi = PAYLOAD_SIZES[kind]
            if not lo <= length <= hi:
                raise LogError(f"offset {off} lsn {lsn}: {KIND_NAMES[kind]} length {length} not in {lo}..{hi}")
            end = off + RECORD_HEAD + length + RECORD_TAIL
            if end > len(data):
                self.trailing = len(data) - off
                break
            if verify_crc:
                stored = struct.unpack_from("<I", data, end - RECORD_TAIL)[0]
                if stored != crc32c(data[off:end - RECORD_TAIL]):
                    raise LogError(f"offset {off} lsn {lsn}: CRC mismatch")
            if rflags or reserved:
                raise LogError(f"offset {off} lsn {lsn}: reserved fields set")
            if lsn != prev_lsn + 1 or icount < prev_icount:
                raise LogError(f"offset {off}: lsn {lsn} icount {icount} after lsn {prev_lsn} icount {prev_icount}")
            self.records.append(Record(off, kind, lsn, icount, bytes(data[off + RECORD_HEAD:end - RECORD_TAIL])))
            off, prev_lsn, prev_icount = end, lsn, icount

    @classmethod
    def read(cls, path, verify_crc=True):
        with open(path, "rb") as f:
            return cls(f.read(), verify_crc)

    def of_kind(self, kind):
        return [r for r in self.records if r.kind == kind]

    def counts(self):
        c = {}
        for r in self.records:
            c[r.kind] = c.get(r.kind, 0) + 1
        return c

    def guest_seconds(self):
        """Guest time of every record, in seconds, following the TIME anchors the way the guest
        clock does (vm/clock.h): time(i) = anchor_time + ((i - anchor_icount) * rate) >> 32, the
        nominal rate before the first anchor, and an anchor never moves time backwards."""
        anchor_icount, anchor_time, rate = 0, 0, (1 << 32) // 10
        times = []
        for r in self.records:
            now = anchor_time + (((r.icount - anchor_icount) * rate) >> 32)
            if r.kind == TIME:
                t, tpi = r.time()
                anchor_icount, anchor_time, rate = r.icount, max(t, now), tpi or 1
                now = anchor_time
            times.append(now / TIMEBASE_HZ)
        return times

    def first_check_after(self, rec):
        """The first CHECK the replayer verifies after applying `rec`: a CHECK at the same icount
        precedes the input (the recorder writes it first), so it must come later in the log."""
        for r in self.records:
            if r.lsn > rec.lsn and r.kind == CHECK:
                return r
        return None


def main(argv):
    if len(argv) != 3 or argv[1] != "dump":
        print("usage: evlog.py dump LOG", file=sys.stderr)
        return 2
    log = Log.read(argv[2])
    print(f"vm {log.vm_name}: {log.summary}, config digest {log.config_digest:016x}")
    for r in log.records:
        print(f"{r.offset:10d} lsn {r.lsn:8d} {r.name:<10} icount {r.icount:14d} len {len(r.payload)}")
    if log.trailing:
        print(f"{log.trailing} bytes of an incomplete record at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
