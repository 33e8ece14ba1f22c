#!/usr/bin/env python3
"""make capacity: memory and file descriptors of HAProxy and of the agents under many
connections, the figures a deployment is sized from (README, "Memory and file
descriptors").

    python3 tests/bench/capacity.py [HAPROXY_BINARY ...]     (default: haproxy on PATH)

For each HAProxy binary, the real edge (tests/e2e/edge.py: mock provider, two agents,
haproxy-cfg/haproxy.cfg) is started afresh for each load, because HAProxy's pools and
malloc keep what a load freed, which would hide the next load's cost:

  - at start: RSS (VmRSS, HAProxy's processes summed) and open FDs;
  - CAP_CLIENTS (10000) idle keep-alive clients on the plain HTTP listener, each after
    one call the agent answered (a refusal, so that no provider is involved), then on
    the TLS listener (full handshakes, TLS 1.3, ECDSA P-256);
  - CAP_BUSY (1000) calls in flight: chat POSTs of 11 KB, then of CAP_BIG_KB (200) KB,
    whose streamed answer the mock holds (one event, then the next a minute later),
    started RAMP (100) at a time, and the big ones also all at once; then the same after
    SIGQUIT (HAProxy flushes its pools and trims malloc: what is live);
  - the most HAProxy -> agent connections seen meanwhile, and with the agents stopped
    (SIGSTOP) while CAP_BUSY calls arrive;
  - CAP_SPOP (1000) SPOP clients straight to one agent: after HELLO, after one 11 KB
    NOTIFY each, and with half of a second NOTIFY sent (a partial frame the agent keeps).

Stdlib only; every wait is bounded, and a watchdog (CAP_BUDGET seconds per binary, 170)
stops a run that hangs. The table goes to stdout at the end."""
import os
import re
import resource
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path[:0] = [os.path.join(TOP, "tests", "e2e"), os.path.join(TOP, "tests")]
import edge  # noqa: E402
from pylib.spop import (ACK, AGENT_HELLO, BIN, BOOL, HELLO, I64, IP4, NOTIFY, STR,  # noqa: E402
                        enc_frame, enc_hdrs, enc_kv, enc_msg, frame_complete, hello_items)

AGENT = os.path.join(TOP, "spoa", "archestra-spoa")
CLIENTS = int(os.environ.get("CAP_CLIENTS", 10000))
BUSY = int(os.environ.get("CAP_BUSY", 1000))
SPOP = int(os.environ.get("CAP_SPOP", 1000))
TLS = os.environ.get("CAP_TLS", "1") != "0"
BUDGET = int(os.environ.get("CAP_BUDGET", 170))
BODY_SIZE = 11 * 1024
# Near tune.bufsize (256 KiB): what a call costs when prompts fill the buffers.
BIG_SIZE = int(os.environ.get("CAP_BIG_KB", 200)) * 1024
RAMP = 100
# This process holds every client socket, and HAProxy one FD per idle client (plus
# its connections to the agents): both run under this limit.
NOFILE = max(CLIENTS, BUSY, SPOP) + 4096
MAXCONN = max(CLIENTS, BUSY) + 1000
KEY = "Authorization: Bearer sk-capacity-0123456789abcdef"


# ---------------------------------------------------------------- what is measured
def children(pid):
    """pid and every process below it (HAProxy in master-worker mode has several)."""
    tree, found = [pid], True
    while found:
        found = False
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) not in tree:
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid in tree:
                    tree.append(int(d))
                    found = True
    return tree


def usage(proc):
    """(RSS in KiB, open FDs) of a process and its children."""
    rss = fds = 0
    for p in children(proc.pid):
        try:
            with open(f"/proc/{p}/status") as f:
                rss += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except (OSError, AttributeError):
            pass
    return rss, fds


def agents(e):
    return [e.procs["agent0"], e.procs["agent1"]]


def agent_conns(e):
    """HAProxy's established connections to the agents: the sockets whose remote port is
    an agent's (/proc/net/tcp, what ss -tn shows)."""
    ports = {f"{p:04X}" for p in e.agent_ports}
    with open("/proc/net/tcp") as f:
        next(f)
        return sum(1 for line in f if (x := line.split())[3] == "01" and x[2].split(":")[1] in ports)


class Sampler(threading.Thread):
    """The most HAProxy -> agent connections, and HAProxy's RSS then, while a load runs."""
    def __init__(self, e):
        super().__init__(daemon=True)
        self.e, self.stop, self.peak, self.rss = e, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            n = agent_conns(self.e)
            if n >= self.peak:
                self.peak, self.rss = n, usage(self.e.procs["haproxy"])[0]
            self.stop.wait(0.05)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(15)


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def show(use, base=None, n=0, note=None):
    """A table cell: RSS and FDs, and the KiB each of n connections added over base."""
    out = f"{mib(use[0])}, {use[1]:,} FDs"
    if base is not None and n:
        out += f"; {(use[0] - base[0]) / n:.1f} KiB per conn"
    return out + (f" ({note})" if note else "")


def show_agents(uses):
    return " + ".join(mib(u[0]) for u in uses) + ", " + " + ".join(f"{u[1]:,}" for u in uses) + " FDs"


# ---------------------------------------------------------------- many clients, one thread
class Peer:
    """One client socket, driven by a generator that yields "r" or "w" (what it waits for)."""
    def __init__(self):
        self.sock, self.inp, self.err = None, bytearray(), None

    def connect(self, port, tls_ctx=None):
        s = socket.socket()
        s.setblocking(False)
        self.sock = s
        s.connect_ex(("127.0.0.1", port))
        yield "w"
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        if tls_ctx:
            self.sock = tls_ctx.wrap_socket(s, server_hostname="localhost", do_handshake_on_connect=False)
            while True:
                try:
                    self.sock.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    yield "r"
                except ssl.SSLWantWriteError:
                    yield "w"

    def send(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except (BlockingIOError, ssl.SSLWantWriteError):
                yield "w"
            except ssl.SSLWantReadError:
                yield "r"

    def recv_until(self, done):
        # A TLS socket may hold decrypted bytes the selector cannot see: read until it
        # would block, never wait with data pending.
        while not done(self.inp):
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                yield "r"
                continue
            except ssl.SSLWantWriteError:
                yield "w"
                continue
            if not data:
                raise ConnectionError("closed by the server")
            self.inp += data

    def close(self):
        if self.sock:
            self.sock.close()


def drive(peers, script, concurrency, timeout):
    """Runs script(peer) (a generator) on every peer, at most `concurrency` at a time.
    Returns (done, first error). Peers that fail are closed; done ones stay open."""
    sel = selectors.DefaultSelector()
    todo, active, ok, first_err = iter(peers), 0, 0, None
    end = time.monotonic() + timeout

    def step(p):
        nonlocal active, ok, first_err
        try:
            want = next(p.gen)
        except StopIteration:
            want = None
            ok += 1
        except (OSError, ssl.SSLError, ValueError) as ex:
            want, p.err = None, ex
            first_err = first_err or f"{type(ex).__name__}: {ex}"
        if want is None:  # finished or failed
            if p.fd >= 0:
                sel.unregister(p.fd)
            p.fd = -1
            active -= 1
            if p.err:
                p.close()
            return
        ev = selectors.EVENT_READ if want == "r" else selectors.EVENT_WRITE
        if p.fd < 0:  # a TLS wrap keeps the descriptor: registering once is enough
            p.fd = p.sock.fileno()
            sel.register(p.fd, ev, p)
        else:
            sel.modify(p.fd, ev, p)

    more = True
    while time.monotonic() < end:
        while more and active < concurrency:
            p = next(todo, None)
            if p is None:
                more = False
                break
            p.gen, p.fd, p.err = script(p), -1, None
            active += 1
            step(p)
        if not active and not more:
            break
        for key, _ in sel.select(0.2):
            step(key.data)
    late = list(sel.get_map().values())  # out of time: what is left counts as failed
    for key in late:
        key.data.err = TimeoutError("timed out")
        key.data.close()
    if late:
        first_err = first_err or f"{len(late)} timed out"
    sel.close()
    return ok, first_err


def still_open(peers):
    """How many of the peers the server has not closed (nothing to read, no EOF)."""
    sel, n = selectors.DefaultSelector(), 0
    for p in peers:
        if p.sock and not p.err:
            sel.register(p.sock.fileno(), selectors.EVENT_READ, p)
            n += 1
    n -= len(sel.select(0.5))
    sel.close()
    return n


def close_all(peers):
    for p in peers:
        p.close()


# ---------------------------------------------------------------- HTTP
def chat_body(size, stream):
    """An OpenAI chat-completions body of about `size` bytes: a system prompt and a long
    user message, as coding assistants send."""
    text = ("Please review the incident summary below and draft a short status update for customers. "
            "On Tuesday the payments API returned intermittent errors for about forty minutes after a "
            "configuration change was rolled out to one region. ")
    user = (text * (size // len(text) + 1))[:max(0, size - 300)]
    return ('{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a careful '
            'assistant for an engineering team. Answer concisely and cite the documents you rely '
            f'on."}},{{"role":"user","content":"{user}"}}],"temperature":0.7,"max_tokens":1024,'
            f'"stream":{"true" if stream else "false"}}}').encode()


def http_request(body, headers=()):
    head = ["POST /v1/openai/chat/completions HTTP/1.1", "Host: localhost", "Content-Type: application/json",
            "User-Agent: OpenAI/Python 1.54.3", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def response_complete(buf):
    """A whole response with a Content-Length (what HAProxy's refusals carry)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", buf[:end], re.I)
    return m is not None and len(buf) >= end + 4 + int(m.group(1))


def first_event(buf):
    """The answer's first streamed event, or a refusal (a late agent: 503)."""
    if not buf.startswith(b"HTTP/1.1 200"):
        return response_complete(buf)
    return b"\r\n\r\n" in buf and b"data:" in buf


def status(peers):
    """Count of each response status among the peers."""
    out = {}
    for p in peers:
        st = bytes(p.inp[9:12]).decode() if p.inp[:5] == b"HTTP/" else "none"
        out[st] = out.get(st, 0) + 1
    return out


# A call with no credential: the agent refuses it (401), HAProxy answers and keeps
# the connection; nothing goes to a provider.
REFUSED = http_request(chat_body(300, False))


def idle_clients(e, tls):
    """CLIENTS keep-alive connections, each after one refused call. Rows."""
    port, ctx = e.http_port, None
    if tls:
        port, ctx = e.https_port, e.client_ctx()
        ctx.set_alpn_protocols(["http/1.1"])
    base = usage(e.procs["haproxy"])
    peers = [Peer() for _ in range(CLIENTS)]

    def call(p):
        yield from p.connect(port, ctx)
        yield from p.send(REFUSED)
        yield from p.recv_until(response_complete)

    t = time.monotonic()
    ok, err = drive(peers, call, 256, 120)
    took = time.monotonic() - t
    time.sleep(1)  # HAProxy finishes logging and releases the calls' buffers
    now, left = usage(e.procs["haproxy"]), still_open(peers)
    what = "TLS" if tls else "plain"
    print(f"  {ok} {what} clients in {took:.1f}s, {left} still open; statuses {status(peers)}", flush=True)
    load = f"{CLIENTS:,} idle clients, " + ("HTTPS (TLS 1.3)" if tls else "HTTP")
    note = err or (f"only {left} still open" if left < CLIENTS else None)
    rows = [(load, "HAProxy", show(now, base, left, note)),
            (load, "agents", show_agents([usage(a) for a in agents(e)]))]
    close_all(peers)
    return rows


def busy_calls(e, size, at_once):
    """BUSY calls in flight: a direct key, so the agent allows them, and the mock streams
    its answer, one event now and the next a minute later. Rows."""
    req = http_request(chat_body(size, True), [KEY, "x-mock-chunk-delay-ms: 60000"])
    haproxy = e.procs["haproxy"]
    base = usage(haproxy)
    peers = [Peer() for _ in range(BUSY)]

    def call(p):
        yield from p.connect(e.http_port)
        yield from p.send(req)
        yield from p.recv_until(first_event)

    t = time.monotonic()
    with Sampler(e) as s:
        _, err = drive(peers, call, at_once, 50)
    time.sleep(0.5)
    now, conns_now, agent_use = usage(haproxy), agent_conns(e), [usage(a) for a in agents(e)]
    st = status(peers)
    print(f"  {BUSY} calls of {size // 1024} KB, {at_once} at a time, in {time.monotonic() - t:.1f}s: "
          f"statuses {st}; agent connections: most {s.peak}, now {conns_now}", flush=True)
    in_flight = st.pop("200", 0)  # the rest were refused (a late agent: 503) or failed
    note = err or (", ".join(f"{n} got {k}" for k, n in st.items()) if st else None)
    # What HAProxy freed but keeps (its pools, malloc's free pages) against what is live:
    # SIGQUIT flushes the pools and trims malloc.
    haproxy.send_signal(signal.SIGQUIT)
    time.sleep(1)
    live = usage(haproxy)
    close_all(peers)
    how = "all at once" if at_once >= BUSY else f"started {at_once} at a time"
    load = f"{BUSY:,} calls in flight, {size // 1024} KB POSTs, {how}"
    # RSS per call made (a refused call's memory was freed, and kept, too); live memory
    # per call in flight.
    return [(load, "HAProxy", show(now, base, BUSY, note)),
            (load, "HAProxy after SIGQUIT", show(live, base, in_flight)),
            (load, "HAProxy -> agent connections", f"{s.peak:,} at most, {conns_now:,} after"),
            (load, "agents", show_agents(agent_use))]


def stalled_agents(e):
    """BUSY calls while the agents are stopped: HAProxy's 500 ms processing timeout fails
    them (503, fail closed), and until then each waits on an agent connection. Rows."""
    peers = [Peer() for _ in range(BUSY)]

    def call(p):
        yield from p.connect(e.http_port)
        yield from p.send(REFUSED)
        yield from p.recv_until(response_complete)

    with Sampler(e) as s:
        try:
            for a in agents(e):
                a.send_signal(signal.SIGSTOP)
            wait_stopped(agents(e))
            drive(peers, call, BUSY, 10)
        finally:
            for a in agents(e):
                a.send_signal(signal.SIGCONT)
    print(f"  agents stopped: statuses {status(peers)}; agent connections: most {s.peak}", flush=True)
    close_all(peers)
    return [(f"{BUSY:,} calls while the agents are stopped", "HAProxy -> agent connections",
             f"{s.peak:,} at most (HAProxy {mib(s.rss)} then)")]


def wait_stopped(procs):
    """Until every process is stopped: a running thread takes a moment to stop."""
    end = time.monotonic() + 2
    while time.monotonic() < end:
        states = []
        for p in procs:
            with open(f"/proc/{p.pid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if all(st == "T" for st in states):
            return
        time.sleep(0.01)


# ---------------------------------------------------------------- SPOP
def notify(sid):
    """One archestra-req as HAProxy sends it, with an 11 KB chat body."""
    body = chat_body(BODY_SIZE, False)
    hdrs = [("host", "localhost"), ("content-type", "application/json"),
            ("authorization", KEY.split(": ")[1]), ("content-length", str(len(body)))]
    msg = enc_msg("archestra-req", [
        ("id", STR(f"7F000001:{sid:04X}_7F000001:1F90_6744B0C0_0001:1")), ("method", STR("POST")),
        ("path", STR("/v1/openai/chat/completions")), ("query", STR("")),
        ("hdrs", BIN(enc_hdrs(hdrs))),
        ("body", BIN(body)), ("body_len", I64(len(body))), ("body_size", I64(len(body))),
        ("eom", BOOL(True)), ("src", IP4("10.1.2.3")), ("tls", BOOL(True))])
    return enc_frame(NOTIFY, msg, sid, 1)


def spop_clients(e):
    """SPOP connections straight to the first agent, in three states. Rows."""
    port, agent = e.agent_ports[0], agents(e)[0]
    base = usage(agent)
    peers = [Peer() for _ in range(SPOP)]
    rows = []

    def measure(state, ok, err):
        rows.append((f"{SPOP:,} SPOP connections to one agent", state, show(usage(agent), base, ok, err)))

    def hello(p):
        yield from p.connect(port)
        yield from p.send(enc_frame(HELLO, enc_kv(hello_items(mfs=262144, caps="pipelining"))))
        yield from p.recv_until(frame_complete)
        if p.inp[4] != AGENT_HELLO:
            raise ValueError(f"frame type {p.inp[4]} instead of AGENT-HELLO")

    measure("agent, after HELLO", *drive(peers, hello, 256, 30))
    peers = [p for p in peers if not p.err]

    def call(p):
        p.inp = bytearray()
        yield from p.send(notify(2))
        yield from p.recv_until(frame_complete)
        if p.inp[4] != ACK:
            raise ValueError(f"frame type {p.inp[4]} instead of ACK")

    measure(f"agent, after one {BODY_SIZE // 1024} KB NOTIFY each", *drive(peers, call, 256, 30))
    peers = [p for p in peers if not p.err]

    def half(p):
        f = notify(3)
        yield from p.send(f[:len(f) // 2])

    ok, err = drive(peers, half, 256, 30)
    time.sleep(0.5)  # the agent reads what was sent
    measure(f"agent, half of a {BODY_SIZE // 1024} KB NOTIFY pending each", ok, err)
    close_all(peers)
    return rows


# ---------------------------------------------------------------- one HAProxy binary
class Budget(Exception):
    pass


def on_alarm(*_):
    raise Budget(f"over the {BUDGET} s budget")


def haproxy_cfg(_edge):
    """The shipped configuration with an explicit maxconn. Without one HAProxy derives it
    from the FD limit as about half of it (it counts two FDs per connection), and only
    root with CAP_SYS_RESOURCE may raise a hard limit: 20000 gives 9,986, too few here.
    Idle and refused calls use one FD each, so the limit is enough; "no strict-limits"
    lets HAProxy start anyway (3.x refuses to by default)."""
    with open(os.path.join(TOP, "haproxy-cfg", "haproxy.cfg")) as f:
        cfg = f.read()
    return cfg.replace("\nglobal\n", f"\nglobal\n    maxconn {MAXCONN}\n    no strict-limits\n", 1)


def fresh_edge():
    # Agents at warn: no line per call to write while they are measured.
    return edge.Edge(AGENT, agent_args=("--log-level", "warn"), haproxy_cfg=haproxy_cfg)


def measure(haproxy):
    """Rows of (load, what, cell) for one HAProxy binary."""
    edge.HAPROXY = haproxy
    with fresh_edge() as e:
        rows = [("at start", "HAProxy", show(usage(e.procs["haproxy"]))),
                ("at start", "agents", show_agents([usage(a) for a in agents(e)]))]
        rows += idle_clients(e, tls=False)
        rows += spop_clients(e)
    if TLS:
        with fresh_edge() as e:
            rows += idle_clients(e, tls=True)
    # Started RAMP at a time, calls reach the steady state of callers that come and go;
    # all at once, they show a burst.
    loads = [(BODY_SIZE, RAMP), (BIG_SIZE, RAMP)] + ([(BIG_SIZE, BUSY)] if BUSY > RAMP else [])
    for size, at_once in loads:
        if size:
            with fresh_edge() as e:
                rows += busy_calls(e, size, at_once)
    with fresh_edge() as e:
        rows += stalled_agents(e)
    return rows


def version(haproxy):
    r = subprocess.run([haproxy, "-v"], capture_output=True, text=True, timeout=10)
    m = re.search(r"version (\S+)", r.stdout)
    return m.group(1) if m else haproxy


def main():
    binaries = sys.argv[1:] or ["haproxy"]
    if not os.access(AGENT, os.X_OK):
        sys.exit(f"{AGENT} missing: run make first")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # above the hard limit only with CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, NOFILE), max(hard, NOFILE)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard < NOFILE:
            print(f"note: the FD limit stays at {hard}, below the {NOFILE} wanted: expect failures", flush=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    signal.signal(signal.SIGALRM, on_alarm)
    results = {}
    for b in binaries:
        v = version(b)
        print(f"HAProxy {v} ({b}): up to {BUDGET} s", flush=True)
        signal.alarm(BUDGET)
        t = time.monotonic()
        try:
            results[v] = measure(b)
        except Budget as ex:
            print(f"  stopped: {ex}", flush=True)
        finally:
            signal.alarm(0)
        print(f"  {time.monotonic() - t:.0f} s", flush=True)
    if not results:
        sys.exit(1)

    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    print(f"\n{os.cpu_count()} CPUs ({cpu}), Linux {os.uname().release}, "
          f"FD limit {nofile}, HAProxy maxconn {MAXCONN}\n")
    cells = {v: {(load, what): c for load, what, c in rows} for v, rows in results.items()}
    print("| load | measured | " + " | ".join(f"HAProxy {v}" for v in results) + " |")
    print("| --- | --- |" + " --- |" * len(results))
    for load, what, _ in next(iter(results.values())):
        print(f"| {load} | {what} | " + " | ".join(cells[v].get((load, what), "-") for v in results) + " |")


if __name__ == "__main__":
    main()
