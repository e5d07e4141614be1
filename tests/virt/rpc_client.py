"""rpc_client.py — a raw client of libvirt's RPC protocol for the virt.* tests that send frames by hand
(hostile.py, slow.py): frame building, a blocking client, and the error replies' fields."""
import socket
import struct
import threading

REMOTE, KEEPALIVE = 0x20008086, 0x6B656570
CALL, REPLY, MESSAGE = 0, 1, 2
OPEN, GET_TYPE, DEFINE_XML, LOOKUP_BY_NAME, LIST_ALL = 1, 3, 11, 23, 273
PING, PONG = 1, 2
ERR_INTERNAL, ERR_NO_SUPPORT, ERR_RPC = 1, 3, 39
FRAME_MAX = 4 << 20      # daemon/virt_rpc.h
MAX_CLIENTS = 128


def xdr_string(b):
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def frame(proc, body=b"", prog=REMOTE, typ=CALL, serial=1, vers=1, length=None):
    n = 28 + len(body) if length is None else length
    return struct.pack(">IIIiiII", n, prog, vers, proc, typ, serial, 0) + body


OPEN_ARGS = struct.pack(">I", 1) + xdr_string(b"ftvm:///system") + struct.pack(">I", 0)


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(20)
        self.s.connect(path)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def read(self):
        """(prog, vers, proc, type, serial, status, body), or None when the daemon hung up."""
        head = self.recv_exact(4)
        if head is None:
            return None
        rest = self.recv_exact(struct.unpack(">I", head)[0] - 4)
        return None if rest is None else struct.unpack(">IIiiII", rest[:24]) + (rest[24:],)

    def call(self, proc, body=b"", **kw):
        self.s.sendall(frame(proc, body, **kw))
        return self.read()

    def open(self):
        r = self.call(OPEN, OPEN_ARGS)
        return r is not None and r[5] == 0

    def hung_up(self):
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:   # it closed with our bytes unread
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def error_of(r):
    """(code, message) of an error reply."""
    body = r[6]
    code = struct.unpack(">i", body[:4])[0]
    has_msg = struct.unpack(">I", body[8:12])[0]
    msg = body[16:16 + struct.unpack(">I", body[12:16])[0]].decode() if has_msg else ""
    return code, msg


def many_clients(path, n, first_serial=100):
    """n clients at once, each opening a connection and listing the domains: one bool per client
    (answered with its serial and no error), in no particular order."""
    results = []

    def one(i):
        try:
            cl = Client(path)
            ok = cl.open()
            r = cl.call(LIST_ALL, struct.pack(">iI", 1, 0), serial=first_serial + i)
            results.append(ok and r is not None and r[4] == first_serial + i and r[5] == 0)
            cl.close()
        except OSError as e:
            results.append(False)
            print("client", i, e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
