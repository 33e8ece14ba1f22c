"""SPOP 2.0 as HAProxy speaks it, for the tests: one encoder/decoder (varints, typed
data, KV lists, messages, frames, actions) and a client connection, Conn.

Written from the SPOP specification and HAProxy's behaviour, not from the agent's C
code, so that the conformance suite stays a black-box check; the conformance suite,
the fuzz seeds, the capacity bench and the e2e suites all use this one copy.

Wire format as HAProxy sends it (the spec grammar abbreviates this): KV names,
message names and set-var variable names are <LEN:varint><BYTES> with no type
byte; values are typed data <TYPE: low nibble | FLAGS: high nibble><DATA>.
"""
import socket
import struct
import time
from collections import namedtuple

from .tap import Fail, check, eq

IO_TIMEOUT = 3.0        # default bound for every socket wait

# ============================================================== codec
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STR, T_BIN = range(10)
INT_TYPES = (T_INT32, T_UINT32, T_INT64, T_UINT64)
UNSET, HELLO, DISCON, NOTIFY = 0, 1, 2, 3
AGENT_HELLO, AGENT_DISCON, ACK = 101, 102, 103
FIN, ABORT = 1, 2
U64 = (1 << 64) - 1


# The agent answers each archestra-req with one set-var(txn, "verdict", ...) among
# other variables whose set may grow; ACK checks count verdicts in a well-formed
# action list instead of comparing bytes. ALLOW * n means "n verdicts".
class Verdicts:
    def __init__(self, n=1):
        self.n = n

    def __mul__(self, k):
        return Verdicts(self.n * k)

    def __repr__(self):
        return f"{self.n} verdict set-var(s)"


ALLOW = Verdicts(1)


class DecodeError(Exception):
    pass


def enc_varint(v):
    if v < 240:
        return bytes([v])
    out = bytearray([0xF0 | (v & 0x0F)])
    v = (v - 240) >> 4
    while v >= 128:
        out.append(0x80 | (v & 0x7F))
        v = (v - 128) >> 7
    return bytes(out + bytes([v]))


def dec_varint(b, p):
    if p >= len(b):
        raise DecodeError("truncated varint")
    v, p, shift = b[p], p + 1, 4
    if v < 240:
        return v, p
    while True:
        if p >= len(b):
            raise DecodeError("truncated varint")
        v, p = v + (b[p] << shift), p + 1
        if b[p - 1] < 128:
            return v, p
        shift += 7


def enc_name(s):
    raw = s if isinstance(s, bytes) else s.encode()
    return enc_varint(len(raw)) + raw


def dec_name(b, p):
    n, p = dec_varint(b, p)
    if p + n > len(b):
        raise DecodeError("string length past end")
    return bytes(b[p:p + n]), p + n


# Typed values: (type, value) pairs, written by these constructors.
def NULL(): return (T_NULL, None)
def BOOL(v): return (T_BOOL, bool(v))
def I32(v): return (T_INT32, v)
def U32(v): return (T_UINT32, v)
def I64(v): return (T_INT64, v)
def UI64(v): return (T_UINT64, v)
def IP4(a): return (T_IPV4, a)
def IP6(a): return (T_IPV6, a)
def STR(s): return (T_STR, s)
def BIN(b): return (T_BIN, b)


ADDR = {T_IPV4: (socket.AF_INET, 4), T_IPV6: (socket.AF_INET6, 16)}


def enc_data(d):
    t, v = d
    if t == T_NULL:
        return b"\x00"
    if t == T_BOOL:
        return bytes([T_BOOL | (0x10 if v else 0)])
    if t in INT_TYPES:
        return bytes([t]) + enc_varint(v & U64)          # signed values: two's complement
    if t in ADDR:
        return bytes([t]) + socket.inet_pton(ADDR[t][0], v)
    return bytes([t]) + enc_name(v)                      # STRING / BINARY


def dec_data(b, p):
    if p >= len(b):
        raise DecodeError("truncated typed data")
    t, flags, p = b[p] & 0x0F, b[p] >> 4, p + 1
    if t == T_NULL:
        return (t, None), p
    if t == T_BOOL:
        return (t, bool(flags & 1)), p
    if t in INT_TYPES:
        v, p = dec_varint(b, p)
        return (t, v), p
    if t in ADDR:
        fam, n = ADDR[t]
        if p + n > len(b):
            raise DecodeError("truncated address")
        return (t, socket.inet_ntop(fam, bytes(b[p:p + n]))), p + n
    if t in (T_STR, T_BIN):
        raw, p = dec_name(b, p)
        return (t, raw.decode("utf-8", "replace") if t == T_STR else raw), p
    raise DecodeError(f"bad typed-data type {t}")


def enc_kv(items):
    return b"".join(enc_name(k) + enc_data(d) for k, d in items)


def dec_kv(b):
    p, out = 0, {}
    while p < len(b):
        k, p = dec_name(b, p)
        out[k.decode("utf-8", "replace")], p = dec_data(b, p)
    return out


def enc_msg(name, args=()):
    return enc_name(name) + bytes([len(args)]) + enc_kv(args)


def enc_hdrs(pairs):
    """req.hdrs_bin / res.hdrs_bin: <name><value> length-prefixed, ended by two empty
    strings. HTX holds names lower-cased: pass them so."""
    return b"".join(enc_name(n) + enc_name(v) for n, v in pairs) + b"\x00\x00"


Frame = namedtuple("Frame", "type flags sid fid payload")


def frame_body(ftype, payload=b"", sid=0, fid=0, flags=FIN):
    return struct.pack(">BI", ftype, flags) + enc_varint(sid) + enc_varint(fid) + payload


def enc_frame(ftype, payload=b"", sid=0, fid=0, flags=FIN):
    body = frame_body(ftype, payload, sid, fid, flags)
    return struct.pack(">I", len(body)) + body


def dec_frame(body):
    if len(body) < 7:
        raise DecodeError(f"frame of {len(body)} bytes is shorter than 7")
    ftype, flags = struct.unpack_from(">BI", body)
    sid, p = dec_varint(body, 5)
    fid, p = dec_varint(body, p)
    return Frame(ftype, flags, sid, fid, bytes(body[p:]))


def frame_complete(buf):
    """Whether buf starts with a whole frame (its 4-byte length and that many bytes)."""
    return len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">I", buf)[0]


class FrameReader:
    """Splits a byte stream into frames."""
    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def next(self):
        if len(self.buf) < 4:
            return None
        n = struct.unpack_from(">I", self.buf)[0]
        if n > 16 << 20:
            raise DecodeError(f"agent sent a frame length of {n}")
        if len(self.buf) < 4 + n:
            return None
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return dec_frame(body)


def hello_items(versions="2.0", mfs=16380, caps="pipelining,async", omit=(), extra=()):
    items = [("supported-versions", STR(versions)),
             ("max-frame-size", mfs if isinstance(mfs, tuple) else U32(mfs)),
             ("capabilities", STR(caps))]
    return [kv for kv in items if kv[0] not in omit] + list(extra)


def hello_frame(sid=0, fid=0, flags=FIN, **kw):
    return enc_frame(HELLO, enc_kv(hello_items(**kw)), sid, fid, flags)


def disconnect_kv(status=0, message="bye"):
    """The payload of a HAPROXY-DISCONNECT (or AGENT-DISCONNECT) frame."""
    return enc_kv([("status-code", U32(status)), ("message", STR(message))])


def describe(f):
    if f is None:
        return "connection closed"
    s = f"frame type={f.type} flags={f.flags:#x} stream-id={f.sid} frame-id={f.fid}"
    if f.type in (AGENT_HELLO, AGENT_DISCON):
        try:
            return f"{s} kv={dec_kv(f.payload)}"
        except DecodeError as e:
            return f"{s} undecodable kv ({e}): {f.payload[:64].hex()}"
    return f"{s} payload={f.payload[:64].hex()}{'...' if len(f.payload) > 64 else ''}"


def dec_actions(b):
    """Decodes a LIST-OF-ACTIONS into [(type, scope, name, value)]; raises on malformed."""
    out, p = [], 0
    while p < len(b):
        if p + 3 > len(b):
            raise DecodeError("truncated action")
        t, nargs, scope = b[p], b[p + 1], b[p + 2]
        p += 3
        if (t, nargs) not in ((1, 3), (2, 2)) or scope > 4:
            raise DecodeError(f"bad action header {t}/{nargs}/{scope}")
        name, p = dec_name(b, p)
        val = None
        if t == 1:
            val, p = dec_data(b, p)
        out.append((t, scope, name, val))
    return out


def ack_matches(payload, want):
    """want: bytes (exact) or Verdicts(n): n txn 'verdict' set-vars in well-formed actions."""
    if isinstance(want, bytes):
        return payload == want
    try:
        acts = dec_actions(payload)
    except DecodeError:
        return False
    return sum(1 for t, sc, n, _ in acts if t == 1 and sc == 2 and n == b"verdict") == want.n


def disconnect_status(f):
    """Validates an AGENT-DISCONNECT frame and returns its status code."""
    check(f is not None, "connection closed without AGENT-DISCONNECT")
    check(f.type == AGENT_DISCON, f"expected AGENT-DISCONNECT, got {describe(f)}")
    eq(f.flags, FIN, "AGENT-DISCONNECT flags")
    eq((f.sid, f.fid), (0, 0), "AGENT-DISCONNECT stream-id/frame-id")
    kv = dec_kv(f.payload)
    sc, msg = kv.get("status-code"), kv.get("message")
    check(sc is not None and sc[0] == T_UINT32, f"status-code missing or not UINT32: {kv}")
    check(msg is not None and msg[0] == T_STR, f"message missing or not STRING: {kv}")
    return sc[1]


# ============================================================== a peer
class Conn:
    """A client connection that speaks SPOP like HAProxy. Its expect_* methods raise
    Fail when the agent answers otherwise."""
    def __init__(self, family, addr, timeout=IO_TIMEOUT):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(addr)
        except BaseException:
            self.sock.close()
            raise
        self.rd, self.eof = FrameReader(), False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    close = __exit__

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, payload=b"", sid=0, fid=0, flags=FIN):
        self.send(enc_frame(ftype, payload, sid, fid, flags))

    def notify(self, sid, fid, msgs, flags=FIN):
        self.send_frame(NOTIFY, b"".join(msgs), sid, fid, flags)

    def read_frame(self, timeout=IO_TIMEOUT, what="a frame"):
        """The next frame, or None once the agent has closed (FIN or RST)."""
        deadline = time.monotonic() + timeout
        while (f := self.rd.next()) is None:
            if self.eof:
                check(not self.rd.buf, f"closed mid-frame: {bytes(self.rd.buf[:32]).hex()}")
                return None
            rem = deadline - time.monotonic()
            try:
                check(rem > 0, "")
                self.sock.settimeout(rem)
                data = self.sock.recv(65536)
            except (Fail, socket.timeout):
                raise Fail(f"timeout after {timeout:.1f}s waiting for {what}") from None
            except ConnectionResetError:
                data = b""
            self.rd.feed(data)
            self.eof = not data
        return f

    def hello(self, items=None, **kw):
        self.send_frame(HELLO, enc_kv(items if items is not None else hello_items(**kw)))
        f = self.read_frame(what="AGENT-HELLO")
        check(f is not None and f.type == AGENT_HELLO, f"expected AGENT-HELLO, got {describe(f)}")
        eq(f.flags, FIN, "AGENT-HELLO flags")
        eq((f.sid, f.fid), (0, 0), "AGENT-HELLO stream-id/frame-id")
        return dec_kv(f.payload)

    def expect_ack(self, sid, fid, payload=ALLOW, timeout=IO_TIMEOUT):
        f = self.read_frame(timeout, what=f"ACK {sid}/{fid}")
        check(f is not None and f.type == ACK, f"expected ACK {sid}/{fid}, got {describe(f)}")
        eq(f.flags, FIN, "ACK flags")
        eq((f.sid, f.fid), (sid, fid), "ACK stream-id/frame-id")
        check(ack_matches(f.payload, payload), f"ACK actions {f.payload.hex()} do not hold {payload!r}")

    def expect_disconnect(self, status, timeout=IO_TIMEOUT):
        f = self.read_frame(timeout, what=f"AGENT-DISCONNECT status {status}")
        check(f is not None, f"connection closed without AGENT-DISCONNECT (expected {status})")
        eq(disconnect_status(f), status, "AGENT-DISCONNECT status-code")
        self.expect_eof()

    def expect_eof(self, timeout=IO_TIMEOUT):
        f = self.read_frame(timeout, what="the agent to close the connection")
        check(f is None, f"expected the connection to be closed, got {describe(f)}")
