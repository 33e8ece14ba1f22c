#!/usr/bin/env python3
"""Black-box SPOP 2.0 conformance suite for archestra-spoa.

Usage: python3 tests/conformance/spop_conformance.py path/to/archestra-spoa

Starts the agent itself on free loopback ports, speaks SPOP to it through the tests'
own encoder/decoder (tests/pylib/spop.py, written from the specification, independent
of the agent's C code) and prints TAP version 12 on stdout. Exit status 0 when every
test passed, 1 otherwise. Python 3.11 standard library only.
"""
import json, os, random, resource, signal, socket, struct, subprocess
import sys, tempfile, threading, time, traceback
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pylib.ports import free_port, wait_listening  # noqa: E402
from pylib.spop import (  # noqa: E402
    ABORT, ACK, AGENT_DISCON, AGENT_HELLO, ALLOW, BIN, BOOL, DISCON, FIN, HELLO, I32, I64, IO_TIMEOUT,
    IP4, IP6, NOTIFY, NULL, STR, T_STR, U32, U64, UI64, UNSET, Conn, FrameReader, ack_matches,
    dec_actions, dec_varint, describe, disconnect_kv, disconnect_status, enc_frame, enc_hdrs, enc_kv,
    enc_msg, enc_name, enc_varint, frame_body, hello_frame, hello_items)
from pylib.tap import Fail, check, eq, result  # noqa: E402

SUITE_BUDGET = 40.0     # regular tests are not started after this many seconds

# ============================================================== test plumbing
def parse_listen(spec):
    if spec.startswith("unix:"):
        return socket.AF_UNIX, spec[5:]
    if spec.startswith("["):
        host, port = spec[1:].split("]:")
        return socket.AF_INET6, (host, int(port))
    host, port = spec.rsplit(":", 1)
    return socket.AF_INET, (host, int(port))

class Agent:
    """One agent process; `start` returns once it accepts connections."""
    def __init__(self, name, listen=None, config=None, extra=()):
        self.name, self.config, self.extra = name, config, list(extra)
        self.listen = listen or f"127.0.0.1:{free_port()}"
        self.family, self.addr = parse_listen(self.listen)
        self.proc, self.errpath = None, os.path.join(TMP, f"{name}.stderr")

    def start(self):
        args = [AGENT_BIN, "--listen", self.listen] + self.extra
        if self.config is not None:
            path = os.path.join(TMP, f"{self.name}.json")
            with open(path, "w") as fh:
                json.dump(self.config, fh)
            args += ["--config", path]
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        if wait_listening(self.addr, self.family, self.proc, timeout=5, connect_timeout=0.5):
            return self
        if self.proc.poll() is not None:
            raise Fail(f"agent {self.name} exited {self.proc.returncode} before ready; "
                       f"stderr: {self.stderr_tail()}")
        self.kill()
        raise Fail(f"agent {self.name} not accepting on {self.listen} within 5 s; "
                   f"stderr: {self.stderr_tail()}")

    def connect(self, timeout=IO_TIMEOUT):
        return Conn(self.family, self.addr, timeout)

    def stderr_tail(self, n=6):
        try:
            with open(self.errpath, "rb") as fh:
                lines = fh.read().decode("utf-8", "replace").splitlines()
            return " | ".join(lines[-n:]) or "(empty)"
        except OSError:
            return "(none)"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

def ipv6_port():
    try:
        return free_port(socket.AF_INET6, "::1")
    except OSError as e:
        raise Fail(f"::1 is unusable on this machine: {e}") from None

AGENT_SPECS = {   # shared agents, started on first use, stopped by the final tests
    "main": lambda: Agent("main", extra=["--threads", "2"]),
    "timeouts": lambda: Agent("timeouts", config={"timeouts": {"hello_ms": 300, "idle_ms": 500}}),
    "limits": lambda: Agent("limits", config={"max_connections": 5}),
    "custom": lambda: Agent("custom", config={
        "max_frame_size": 4096,
        "capabilities": {"pipelining": True, "async": False, "fragmentation": False}}),
    "ipv6": lambda: Agent("ipv6", listen=f"[::1]:{ipv6_port()}"),
    "unix": lambda: Agent("unix", listen="unix:" + os.path.join(TMP, "spoa.sock")),
}
AGENTS, AGENT_ERRORS = {}, {}

def agent(name):
    if name in AGENT_ERRORS:
        raise Fail(f"agent {name!r} unavailable: {AGENT_ERRORS[name]}")
    if name not in AGENTS:
        try:
            AGENTS[name] = AGENT_SPECS[name]()
            AGENTS[name].start()
        except Exception as e:
            AGENT_ERRORS[name] = str(e)
            raise
    return AGENTS[name]

def ready_conn(where="main", **kw):
    """A connection that completed the HELLO handshake (`where`: agent name or Agent)."""
    c = (agent(where) if isinstance(where, str) else where).connect()
    try:
        c.hello(**kw)
    except BaseException:
        c.close()
        raise
    return c

TESTS = []

def test(desc):
    def deco(fn):
        TESTS.append((desc, fn))
        return fn
    return deco

def add(desc, fn, *args):
    TESTS.append((desc, lambda: fn(*args)))

REQ = "archestra-req"
SIMPLE = enc_msg(REQ, [("id", STR("x"))])
DISCON_KV = disconnect_kv(0, "bye")
DISCON_FRAME = enc_frame(DISCON, DISCON_KV)

def realistic_req(body=b'{"model":"gpt","messages":[]}'):
    hdrs = [("host", "api.example.com"), ("content-type", "application/json"),
            ("authorization", "Bearer sk-test-conformance")]
    return enc_msg(REQ, [
        ("id", STR("7f3c2a9e-1b4d-4e0f-9a51-0c2d3e4f5a6b")), ("method", STR("POST")),
        ("path", STR("/v1/openai/chat/completions")),
        ("hdrs", BIN(enc_hdrs(hdrs))),
        ("body", BIN(body)), ("body_len", I64(len(body))), ("src", IP4("10.1.2.3")),
        ("tls", BOOL(True)), ("missing", NULL()), ("src6", IP6("2001:db8::1")),
        ("ts", I64(1732550000123)), ("bytes_in", UI64(2 ** 40 + 5))])


# ============================================================== CLI
def run_cli(*args):
    r = subprocess.run([AGENT_BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    return r, [l for l in r.stderr.decode("utf-8", "replace").splitlines() if l.strip()]

@test("CLI: unknown flag --nope exits non-zero with a one-line error on stderr")
def _():
    r, lines = run_cli("--nope")
    check(r.returncode != 0, "exit status was 0")
    eq(len(lines), 1, f"stderr line count (stderr={r.stderr[:300]!r})")

@test("CLI: --version exits 0 and prints something")
def _():
    r, _ = run_cli("--version")
    eq(r.returncode, 0, f"exit status (stderr={r.stderr[:200]!r})")
    check(r.stdout.strip() or r.stderr.strip(), "--version printed nothing")

@test("CLI: --help exits 0")
def _():
    r, _ = run_cli("--help")
    eq(r.returncode, 0, f"exit status (stderr={r.stderr[:200]!r})")

@test("codec self-check: peers varint vectors and round trips")
def _():
    for v, h in {0: "00", 239: "ef", 240: "f000", 256: "f001", 2287: "ff7f", 2288: "f08000",
                 264431: "ffff7f", 264432: "f0808000"}.items():
        eq(enc_varint(v).hex(), h, f"enc_varint({v})")
    for v in [0, 1, 239, 240, 2287, 2288, 264431, 264432, 33818863, 33818864, 2**32 - 1, U64]:
        eq(dec_varint(enc_varint(v), 0), (v, len(enc_varint(v))), f"varint round trip {v}")


# ============================================================== HELLO
def t_hello_ok(versions, mfs, caps, want_mfs, want_caps, name="main"):
    with agent(name).connect() as c:
        kv = c.hello(versions=versions, mfs=mfs, caps=caps)
        eq(kv.get("version"), STR("2.0"), "version")
        eq(kv.get("max-frame-size"), U32(want_mfs), "max-frame-size")
        eq(kv.get("capabilities"), STR(want_caps), "capabilities")
        c.notify(1, 1, [SIMPLE])
        c.expect_ack(1, 1)

PA = "pipelining,async"
for v in ["2.0", "2.5", " 1.0 , 2.0 "]:
    add(f"HELLO supported-versions {v!r} -> AGENT-HELLO version 2.0", t_hello_ok,
        v, 16380, PA, 16380, PA)
add("HELLO max-frame-size 4294967295 -> agent's 1048576", t_hello_ok, "2.0", 2**32 - 1, PA, 1048576, PA)
add("HELLO max-frame-size 256 (minimum) accepted", t_hello_ok, "2.0", 256, PA, 256, PA)
add("HELLO max-frame-size as UINT64 (an integer type) accepted", t_hello_ok,
    "2.0", UI64(16380), PA, 16380, PA)
for offered, want in [(PA, PA), ("", ""), ("async", "async"),
                      ("pipelining, async, fragmentation, foo", "pipelining,async,fragmentation"),
                      ("fragmentation,async,pipelining", "pipelining,async,fragmentation"),
                      ("  pipelining  ", "pipelining")]:
    add(f"HELLO capabilities {offered!r} -> {want!r}", t_hello_ok, "2.0", 16380, offered, 16380, want)
add("config max_frame_size 4096, async+fragmentation disabled -> mfs 4096, caps 'pipelining'",
    t_hello_ok, "2.0", 16380, "pipelining,async,fragmentation", 4096, "pipelining", "custom")

@test("HELLO with engine-id, healthcheck=false and keys in another order -> AGENT-HELLO")
def _():
    items = [("engine-id", STR("3F1D0C9E-7B5A-4C2E-9D1F-00AA11BB22CC")), ("healthcheck", BOOL(False))]
    with agent("main").connect() as c:
        eq(c.hello(items + hello_items()[::-1]).get("version"), STR("2.0"), "version")
        c.notify(9, 9, [SIMPLE])
        c.expect_ack(9, 9)

@test("healthcheck HELLO -> AGENT-HELLO then close without DISCONNECT")
def _():
    with agent("main").connect() as c:
        kv = c.hello(hello_items(extra=[("healthcheck", BOOL(True))]))
        eq(kv.get("version"), STR("2.0"), "version")
        c.expect_eof()

def t_reject_first(status, raw, name="main"):
    with agent(name).connect() as c:
        c.send(raw)
        c.expect_disconnect(status)

for desc, status, raw in [
    ("supported-versions '1.0'", 8, hello_frame(versions="1.0")),
    ("supported-versions '3.0'", 8, hello_frame(versions="3.0")),
    ("supported-versions 'garbage'", 8, hello_frame(versions="garbage")),
    ("supported-versions '1.9, 3.0'", 8, hello_frame(versions="1.9, 3.0")),
    ("missing supported-versions", 5, hello_frame(omit=("supported-versions",))),
    ("missing max-frame-size", 6, hello_frame(omit=("max-frame-size",))),
    ("max-frame-size as STRING", 6, hello_frame(mfs=STR("16380"))),
    ("missing capabilities", 7, hello_frame(omit=("capabilities",))),
    ("max-frame-size 255", 9, hello_frame(mfs=255)),
    ("max-frame-size 0", 9, hello_frame(mfs=0)),
    ("HELLO with stream-id 1", 4, hello_frame(sid=1)),
    ("HELLO with frame-id 1", 4, hello_frame(fid=1)),
    ("HELLO without FIN", 10, hello_frame(flags=0)),
    ("NOTIFY before HELLO", 4, enc_frame(NOTIFY, SIMPLE, 1, 1)),
    ("UNSET before HELLO", 4, enc_frame(UNSET, b"", 1, 1)),
    ("unknown type 50 before HELLO", 4, enc_frame(50, b"abc")),
    ("frame length 0 before HELLO", 4, b"\x00\x00\x00\x00"),
    ("HAPROXY-DISCONNECT before HELLO", 0, DISCON_FRAME),
    ("length 1048577 before HELLO (no body sent)", 3, struct.pack(">I", 1048577)),
]:
    add(f"{desc} -> AGENT-DISCONNECT {status}", t_reject_first, status, raw)
add("config max_frame_size 4096: length 4097 before HELLO -> AGENT-DISCONNECT 3",
    t_reject_first, 3, struct.pack(">I", 4097), "custom")

def t_reject_after_hello(status, raw, caps=PA, mfs=16380, name="main"):
    with ready_conn(name, caps=caps, mfs=mfs) as c:
        c.send(raw)
        c.expect_disconnect(status)

for desc, status, raw in [
    ("second HELLO", 4, hello_frame()),
    ("AGENT-HELLO (101) sent to the agent", 4, enc_frame(AGENT_HELLO, enc_kv(
        [("version", STR("2.0")), ("max-frame-size", U32(16380)), ("capabilities", STR(""))]))),
    ("AGENT-DISCONNECT (102) sent to the agent", 4, enc_frame(AGENT_DISCON, DISCON_KV)),
    ("ACK (103) sent to the agent", 4, enc_frame(ACK, b"", 1, 1)),
    ("UNSET without negotiated fragmentation", 10, enc_frame(UNSET, SIMPLE, 1, 1)),
    ("NOTIFY without FIN without negotiated fragmentation", 10, enc_frame(NOTIFY, SIMPLE, 1, 1, 0)),
    ("HAPROXY-DISCONNECT", 0, DISCON_FRAME),
    ("frame length 3", 4, b"\x00\x00\x00\x03\x03\x00\x00"),
    ("frame length 6", 4, b"\x00\x00\x00\x06\x03\x00\x00\x00\x01\x00"),
]:
    add(f"after HELLO: {desc} -> AGENT-DISCONNECT {status}", t_reject_after_hello, status, raw)
add("config fragmentation disabled (offered anyway): UNSET -> AGENT-DISCONNECT 10",
    t_reject_after_hello, 10, enc_frame(UNSET, SIMPLE, 1, 1), "pipelining,async,fragmentation",
    16380, "custom")
add("negotiated max-frame-size 1000: length 1001 (no body sent) -> AGENT-DISCONNECT 3",
    t_reject_after_hello, 3, struct.pack(">I", 1001), PA, 1000)

H, A = enc_name(REQ), enc_name("a")
for desc, payload in [
    ("message name length past end", b"\x0aarc"),
    ("message without nb-args byte", H),
    ("nb-args 3 with one arg present", H + b"\x03" + enc_kv([("a", I32(1))])),
    ("arg name truncated", H + b"\x01\x05ab"),
    ("arg without typed data", H + b"\x01" + A),
    ("typed-data type 12", H + b"\x01" + A + b"\x0c\x01\x02"),
    ("typed-data type 15", H + b"\x01" + A + b"\x0f"),
    ("STRING length past end", H + b"\x01" + A + b"\x08\x20abc"),
    ("IPV6 value truncated", H + b"\x01" + A + b"\x07" + b"\x00" * 8),
    ("IPV4 value truncated", H + b"\x01" + A + b"\x06\x0a\x00"),
    ("INT32 varint truncated", H + b"\x01" + A + b"\x02\xf5"),
    ("valid message then a truncated one", SIMPLE + b"\x0eother"),
]:
    add(f"malformed NOTIFY ({desc}) -> AGENT-DISCONNECT 4",
        t_reject_after_hello, 4, enc_frame(NOTIFY, payload, 1, 1))

def sized_notify(sid, fid, size):
    """A NOTIFY frame whose length (without the 4-byte prefix) is exactly `size`."""
    for pad in range(size, -1, -1):
        body = frame_body(NOTIFY, enc_msg(REQ, [("body", BIN(b"x" * pad))]), sid, fid)
        if len(body) == size:
            return struct.pack(">I", size) + body
    raise ValueError(size)

@test("negotiated max-frame-size 1000: a NOTIFY of exactly 1000 bytes is ACKed")
def _():
    with ready_conn(mfs=1000) as c:
        c.send(sized_notify(3, 4, 1000))
        c.expect_ack(3, 4)

@test("unknown frame types (4, 50, 100, 104, 255) after HELLO are skipped")
def _():
    with ready_conn() as c:
        c.send(b"".join(enc_frame(t, b"\x01\x02junk", 1, 1) for t in (4, 50, 100, 104, 255)))
        c.notify(5, 6, [SIMPLE])
        c.expect_ack(5, 6)
        c.send(DISCON_FRAME)
        c.expect_disconnect(0)


# ============================================================== NOTIFY / ACK
@test("NOTIFY archestra-req with realistic args -> ACK with set-var(txn,verdict,'allow') and routing vars")
def _():
    with ready_conn() as c:
        c.notify(17, 1, [realistic_req()])
        f = c.read_frame(what="ACK 17/1")
        check(f is not None and f.type == ACK and (f.sid, f.fid) == (17, 1), f"got {describe(f)}")
        acts = {n: v for t, sc, n, v in dec_actions(f.payload) if t == 1 and sc == 2}
        eq(acts.get(b"verdict"), (T_STR, "allow"), "txn verdict")
        eq(acts.get(b"provider"), (T_STR, "openai"), "txn provider")
        eq(acts.get(b"upstream_path"), (T_STR, "/v1/chat/completions"), "txn upstream_path")

@test("NOTIFY with every typed-data type, edge values and an unnamed arg -> ACK allow")
def _():
    args = [("null", NULL()), ("f", BOOL(False)), ("t", BOOL(True)), ("i32", I32(2**31 - 1)),
            ("u32", U32(2**32 - 1)), ("neg", I64(-1)), ("u64", UI64(U64)), ("v4", IP4("0.0.0.0")),
            ("v6", IP6("::ffff:1.2.3.4")), ("es", STR("")), ("eb", BIN(b"")), ("", STR("anon")),
            ("utf8", STR("h\u00e9llo \u2603")), ("bin", BIN(bytes(range(256))))]
    with ready_conn() as c:
        c.notify(1, 2, [enc_msg(REQ, args)])
        c.expect_ack(1, 2)

for desc, msgs, acts in [
    ("unknown messages ('other', 'archestra-re', 'archestra-reqx') -> empty ACK",
     [enc_msg("other", [("a", I32(1))]), enc_msg("archestra-re"), enc_msg("archestra-reqx")], b""),
    ("archestra-req + unknown -> exactly one action", [realistic_req(), enc_msg("other")], ALLOW),
    ("unknown + archestra-req -> exactly one action", [enc_msg("other"), SIMPLE], ALLOW),
    ("two archestra-req messages -> two actions", [SIMPLE, realistic_req()], ALLOW * 2),
    ("zero messages -> empty ACK", [], b""),
]:
    def _t(msgs=msgs, acts=acts):
        with ready_conn() as c:
            c.notify(2, 3, msgs)
            c.expect_ack(2, 3, acts)
    add(f"NOTIFY {desc}", _t)

def read_acks(c, expected, payload=ALLOW, timeout=10.0):
    """Reads len(expected) ACKs and checks that each id pair comes exactly once."""
    deadline, got = time.monotonic() + timeout, Counter()
    for n in range(len(expected)):
        f = c.read_frame(max(0.05, deadline - time.monotonic()), what=f"ACK #{n + 1}")
        check(f is not None and f.type == ACK, f"after {n} ACKs: got {describe(f)}")
        check(ack_matches(f.payload, payload) and f.flags == FIN, f"bad ACK {describe(f)}")
        got[(f.sid, f.fid)] += 1
    bad = {k: n for k, n in got.items() if n != 1 or k not in expected}
    check(not bad, f"ids not matched exactly once: {dict(list(bad.items())[:10])}, "
                   f"missing: {sorted(set(expected) - set(got))[:10]}")

@test("stream-ids/frame-ids at varint boundaries are echoed exactly")
def _():
    vals = [0, 1, 239, 240, 2287, 2288, 264431, 264432, 33818863, 33818864, 2**32 - 1, 2**40]
    pairs = set([(v, v) for v in vals] + [(v, 1) for v in vals] + [(1, v) for v in vals])
    with ready_conn() as c:
        c.send(b"".join(enc_frame(NOTIFY, SIMPLE, s, f) for s, f in pairs))
        read_acks(c, pairs)

@test("1000 NOTIFY frames pipelined in one sendall -> 1000 ACKs, ids matched once each")
def _():
    ids = [(i * 997 + 1, i % 7 + 1) for i in range(1000)]
    with ready_conn() as c:
        c.send(b"".join(enc_frame(NOTIFY, realistic_req(), s, f) for s, f in ids))
        read_acks(c, set(ids))
        c.send(DISCON_FRAME)
        c.expect_disconnect(0)          # and nothing else came before it

@test("4 connections sending NOTIFYs alternately each get their own ACKs")
def _():
    conns = []
    try:
        conns += [ready_conn() for _ in range(4)]
        for rnd in range(25):
            for i, c in enumerate(conns):
                c.notify(1000 * i + rnd, rnd, [SIMPLE])
        for i, c in enumerate(conns):
            read_acks(c, {(1000 * i + rnd, rnd) for rnd in range(25)})
    finally:
        for c in conns:
            c.close()

def timed_roundtrip(c, sid):
    t0 = time.monotonic()
    c.notify(sid, 1, [SIMPLE])
    c.expect_ack(sid, 1)
    return time.monotonic() - t0

@test("byte-by-byte HELLO and NOTIFY work; another connection is served meanwhile")
def _():
    with agent("main").connect() as slow, ready_conn() as other:
        slow.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, data in enumerate([hello_frame(), enc_frame(NOTIFY, realistic_req(), 77, 3)]):
            for j, byte in enumerate(data):
                slow.send(bytes([byte]))
                time.sleep(0.002)
                if j == len(data) // 2:
                    dt = timed_roundtrip(other, 100 + i)
                    check(dt < 1.0, f"other connection waited {dt:.2f}s for its ACK")
            if i == 0:
                f = slow.read_frame(what="AGENT-HELLO")
                check(f is not None and f.type == AGENT_HELLO, f"got {describe(f)}")
        slow.expect_ack(77, 3)


# ============================================================== fragmentation
FRAG = "pipelining,async,fragmentation"

@test("fragmentation: NOTIFY(no FIN) + UNSET + UNSET(FIN) -> one correct ACK")
def _():
    payload = SIMPLE + enc_msg("other", [("x", I32(5))]) + realistic_req()
    a, b = 7, len(payload) // 2 + 3                     # split inside strings
    with ready_conn(caps=FRAG) as c:
        c.send_frame(NOTIFY, payload[:a], 40, 2, 0)
        c.send_frame(UNSET, payload[a:b], 40, 2, 0)
        c.send_frame(UNSET, payload[b:], 40, 2, FIN)
        c.expect_ack(40, 2, ALLOW * 2)
        c.notify(41, 1, [SIMPLE])
        c.expect_ack(41, 1)

@test("fragmentation: reassembled NOTIFY larger than max-frame-size 1000 is ACKed")
def _():
    payload = enc_msg(REQ, [("body", BIN(os.urandom(2800)))])
    chunks = [payload[i:i + 900] for i in range(0, len(payload), 900)]
    with ready_conn(caps=FRAG, mfs=1000) as c:
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send_frame(UNSET if i else NOTIFY, ch, 8, 8, FIN if last else 0)
        c.expect_ack(8, 8)

def t_frag_error(status, frames):
    with ready_conn(caps=FRAG) as c:
        c.send(b"".join(frames))
        c.expect_disconnect(status)

FIRST = enc_frame(NOTIFY, SIMPLE[:5], 40, 2, 0)
for desc, status, frames in [
    ("UNSET with another frame-id -> 12", 12, [FIRST, enc_frame(UNSET, SIMPLE[5:], 40, 3, FIN)]),
    ("UNSET with another stream-id -> 12", 12, [FIRST, enc_frame(UNSET, SIMPLE[5:], 41, 2, FIN)]),
    ("UNSET with no fragmented frame in progress -> 12", 12, [enc_frame(UNSET, SIMPLE, 40, 2, FIN)]),
    ("NOTIFY interleaved in a fragmented frame -> 11", 11, [FIRST, enc_frame(NOTIFY, SIMPLE, 41, 1)]),
]:
    add(f"fragmentation: {desc}", t_frag_error, status, frames)

@test("fragmentation: ABORT drops the partial frame (no ACK); next NOTIFY is ACKed")
def _():
    with ready_conn(caps=FRAG) as c:
        c.send_frame(NOTIFY, SIMPLE[:6], 50, 1, 0)
        c.send_frame(UNSET, SIMPLE[6:9], 50, 1, 0)
        c.send_frame(UNSET, b"", 50, 1, FIN | ABORT)
        c.notify(51, 1, [SIMPLE])
        c.expect_ack(51, 1)
        c.send(DISCON_FRAME)
        c.expect_disconnect(0)          # proves no stray ACK for 50/1 was queued


# ============================================================== robustness
def drain_outcome(c, deadline, allowed):
    """Reads until close: only `allowed` frame types, and the last one must be a DISCONNECT."""
    last = None
    while (f := c.read_frame(max(0.05, deadline - time.monotonic()), "disconnect or close")):
        check(f.type in allowed, f"unexpected {describe(f)}")
        if f.type == AGENT_DISCON:
            disconnect_status(f)
        last = f
    check(last is None or last.type == AGENT_DISCON, f"closed after {describe(last)}")

@test("garbage (seeded random bytes) on fresh and HELLOed connections -> DISCONNECT or close")
def _():
    rng, ag, conns = random.Random(20241125), agent("timeouts"), []
    try:
        for i in range(40):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            kind = i % 4                 # 0 raw, 1 length-prefixed, 2 HELLO-typed, 3 post-HELLO NOTIFY
            junk = [junk, struct.pack(">I", len(junk)) + junk, enc_frame(HELLO, junk),
                    enc_frame(NOTIFY, junk, rng.randrange(2**20), 1)][kind]
            conns.append((ready_conn(ag) if kind == 3 else ag.connect(), kind))
            try:
                conns[-1][0].send(junk)
            except OSError:
                pass                      # the agent already closed: acceptable
        deadline = time.monotonic() + 3
        for c, kind in conns:
            drain_outcome(c, deadline, {AGENT_DISCON, ACK} if kind == 3 else {AGENT_DISCON})
    finally:
        for c, _ in conns:
            c.close()
    with ready_conn("timeouts") as c:
        c.notify(1, 1, [SIMPLE])
        c.expect_ack(1, 1)

@test("truncated frame then client close / RST: the agent keeps serving")
def _():
    with agent("main").connect() as c:
        c.send(b"\x00\x00")                            # half a length prefix, pre-HELLO
    with ready_conn() as c:
        c.send(enc_frame(NOTIFY, realistic_req(), 1, 1)[:40])
    with ready_conn() as c:                             # RST with 200 ACKs pending
        c.send(b"".join(enc_frame(NOTIFY, SIMPLE, i, 1) for i in range(200)))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.1)
    with ready_conn() as c:
        c.notify(2, 2, [SIMPLE])
        c.expect_ack(2, 2)

@test("500 concurrent connections each doing HELLO + 10 NOTIFY get all ACKs")
def _():
    n, ag, errors = 500, agent("main"), []
    barrier = threading.Barrier(n, timeout=15)          # all 500 are open at the same time

    def worker(i):
        try:
            with ready_conn(ag) as c:
                barrier.wait()
                c.send(b"".join(enc_frame(NOTIFY, SIMPLE, i, k) for k in range(10)))
                read_acks(c, {(i, k) for k in range(10)})
        except Exception as e:
            errors.append(f"conn {i}: {type(e).__name__}: {e}")
            barrier.abort()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    for t in threads:
        t.join(max(0.01, deadline - time.monotonic()))
    check(not any(t.is_alive() for t in threads), "workers still running after 20 s")
    real = [e for e in errors if "BrokenBarrierError" not in e] or errors
    check(not errors, f"{len(real)} connections failed, e.g. {real[:3]}")

@test("non-reading peer pipelining ~4 MB: another connection gets its ACK < 1 s; all ACKs arrive")
def _():
    msgs = enc_msg(REQ) * 50                            # 50 actions per ACK: more out than in
    nframes = (4 << 20) // len(enc_frame(NOTIFY, msgs, 1, 1))
    blob = b"".join(enc_frame(NOTIFY, msgs, i + 1, 1) for i in range(nframes))
    with ready_conn() as a:
        a.sock.settimeout(10)
        send_err = []

        def sender():
            try:
                a.sock.sendall(blob)
            except OSError as e:
                send_err.append(e)
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        time.sleep(0.5)
        with ready_conn() as b:
            dt = timed_roundtrip(b, 1)
            check(dt < 1.0, f"other connection waited {dt:.2f}s")
        rd, count = FrameReader(), 0
        while count < nframes:
            data = a.sock.recv(1 << 20)
            check(data, f"connection closed after {count}/{nframes} ACKs")
            rd.feed(data)
            while (f := rd.next()) is not None:
                check(f.type == ACK and ack_matches(f.payload, ALLOW * 50), f"bad frame {describe(f)}")
                count += 1
        th.join(5)
        check(not send_err, f"sender failed: {send_err}")


# ============================================================== timeouts & limits
@test("hello timeout (hello_ms 300): silent connection -> AGENT-DISCONNECT 2 then close")
def _():
    with agent("timeouts").connect() as c:
        t0 = time.monotonic()
        c.expect_disconnect(2, timeout=4)
        dt = time.monotonic() - t0
        check(0.2 <= dt <= 2.5, f"disconnect after {dt:.2f}s (hello_ms=300)")

@test("hello timeout: half a HELLO frame -> AGENT-DISCONNECT 2")
def _():
    with agent("timeouts").connect() as c:
        c.send(hello_frame()[:20])
        c.expect_disconnect(2, timeout=4)

@test("idle timeout (idle_ms 500) after HELLO -> AGENT-DISCONNECT 2 then close")
def _():
    with ready_conn("timeouts") as c:
        t0 = time.monotonic()
        c.expect_disconnect(2, timeout=4)
        dt = time.monotonic() - t0
        check(0.35 <= dt <= 3.0, f"disconnect after {dt:.2f}s (idle_ms=500)")

@test("idle timeout is reset by traffic: a NOTIFY every 200 ms for 1.4 s keeps the connection")
def _():
    with ready_conn("timeouts") as c:
        for i in range(7):
            time.sleep(0.2)
            c.notify(i, 1, [SIMPLE])
            c.expect_ack(i, 1)

@test("max_connections 5: the 6th connection is closed at once, the first 5 still work")
def _():
    ag, conns = agent("limits"), []
    time.sleep(0.3)                      # let the agent see the readiness probe go away
    try:
        conns += [ready_conn(ag) for _ in range(5)]
        with ag.connect() as extra:
            drain_outcome(extra, time.monotonic() + 2, {AGENT_DISCON})
        for i, c in enumerate(conns):
            c.notify(i, i, [SIMPLE])
            c.expect_ack(i, i)
        conns.pop().close()
        deadline, last = time.monotonic() + 2, None
        while time.monotonic() < deadline:              # the freed slot is usable again
            try:
                with ready_conn(ag) as c:
                    c.notify(9, 9, [SIMPLE])
                    c.expect_ack(9, 9)
                    return
            except (Fail, OSError) as e:
                last = e
                time.sleep(0.1)
        raise Fail(f"no connection accepted after one of the 5 closed: {last}")
    finally:
        for c in conns:
            c.close()


# ============================================================== listeners & lifecycle
@test("agent logs event=ready on stderr")
def _():
    ag = agent("main")
    with open(ag.errpath, "rb") as fh:
        check(b"event=ready" in fh.read(), f"no event=ready; stderr: {ag.stderr_tail()}")

def t_listener(name):
    with ready_conn(name) as c:
        c.notify(3, 3, [realistic_req()])
        c.expect_ack(3, 3)
        c.send(DISCON_FRAME)
        c.expect_disconnect(0)

add("--listen [::1]:PORT serves SPOP over IPv6", t_listener, "ipv6")
add("--listen unix:PATH serves SPOP over a Unix socket", t_listener, "unix")

@test("port already in use -> the agent exits non-zero quickly with one line on stderr")
def _():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        p = subprocess.Popen([AGENT_BIN, "--listen", f"127.0.0.1:{s.getsockname()[1]}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Fail("agent still running 3 s after it should have failed to bind") from None
        check(p.returncode != 0, "exit status 0")
        lines = [l for l in err.decode("utf-8", "replace").splitlines() if l.strip()]
        eq(len(lines), 1, f"stderr line count (stderr={err[:300]!r})")

def t_sigterm(pre_hello):
    ag, conns = Agent("sigterm-pre" if pre_hello else "sigterm"), []
    try:
        ag.start()
        if pre_hello:
            conns.append(ag.connect())
            time.sleep(0.2)
        else:
            conns += [ready_conn(ag), ready_conn(ag)]
            conns[1].notify(1, 1, [SIMPLE])
            conns[1].expect_ack(1, 1)
        ag.proc.send_signal(signal.SIGTERM)
        for c in conns:
            c.expect_disconnect(0)
        try:
            eq(ag.proc.wait(3), 0, f"exit status (stderr: {ag.stderr_tail()})")
        except subprocess.TimeoutExpired:
            raise Fail("agent did not exit within 3 s of SIGTERM") from None
    finally:
        for c in conns:
            c.close()
        ag.kill()

add("SIGTERM with idle HELLOed peers: each gets AGENT-DISCONNECT 0, the agent exits 0",
    t_sigterm, False)
add("SIGTERM with a connected pre-HELLO peer: it gets AGENT-DISCONNECT 0, the agent exits 0",
    t_sigterm, True)

STOP = {}

def t_stop(name):
    if not STOP:                         # the first stop test signals every shared agent at once
        STOP["t"] = time.monotonic()
        for n, a in AGENTS.items():
            STOP[n] = a.proc.poll() if a.proc else "never started"
            if STOP[n] is None:
                a.proc.send_signal(signal.SIGTERM)
    a = AGENTS.get(name)
    check(a is not None and a.proc, f"agent never started: {AGENT_ERRORS.get(name, 'not used')}")
    check(STOP[name] is None, f"agent had already exited with {STOP[name]}; "
                              f"stderr: {a.stderr_tail()}")
    try:
        rc = a.proc.wait(max(0.1, STOP["t"] + 3 - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise Fail("still running 3 s after SIGTERM") from None
    eq(rc, 0, f"exit status (stderr: {a.stderr_tail()})")

STOP_TESTS = set()
for _name in AGENT_SPECS:
    STOP_TESTS.add(len(TESTS))
    add(f"agent '{_name}' survived all tests and exits 0 on SIGTERM", t_stop, _name)


# ============================================================== runner
def main():
    global AGENT_BIN, TMP
    if len(sys.argv) != 2:
        print("usage: spop_conformance.py path/to/archestra-spoa", file=sys.stderr)
        return 2
    AGENT_BIN = os.path.abspath(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)   # agents inherit it too
    if soft != resource.RLIM_INFINITY and soft < 4096:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    tmpdir = tempfile.TemporaryDirectory(prefix="spopconf-")
    TMP = tmpdir.name
    print(f"1..{len(TESTS)}", flush=True)
    start, failed, reported_dead = time.monotonic(), 0, set()
    try:
        for k, (desc, fn) in enumerate(TESTS, 1):
            diag = []
            try:
                if k - 1 not in STOP_TESTS and time.monotonic() - start > SUITE_BUDGET:
                    raise Fail(f"not run: suite time budget of {SUITE_BUDGET:.0f}s exhausted")
                fn()
            except Fail as e:
                diag = str(e).splitlines()
            except Exception:
                diag = traceback.format_exc().splitlines()
            ok = not diag
            failed += not ok
            for name, a in AGENTS.items():                    # report an agent's exit once
                if not STOP and name not in reported_dead and a.proc and a.proc.poll() is not None:
                    reported_dead.add(name)
                    diag.append(f"note: agent '{name}' has exited ({a.proc.returncode}); "
                                f"stderr: {a.stderr_tail()}")
            result(k, ok, desc, diag)
            sys.stdout.flush()
        print(f"# {len(TESTS) - failed}/{len(TESTS)} passed in {time.monotonic() - start:.1f}s")
    finally:
        for a in AGENTS.values():
            a.kill()
        tmpdir.cleanup()
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
