#!/usr/bin/env python3
"""The bypass catalogue (bypass_catalogue.py) through the real edge: HAProxy with
haproxy-cfg/haproxy.cfg, one agent, the mock provider. Every case over HTTP/1.1 (plain
listener), HTTP/1.1 over TLS and HTTP/2 over TLS (curl --http2). A refusal must have the status,
the provider's error shape with the reason (OpenAI: error.code; every shape: reason= in HAProxy's
log line) and must never reach the mock; an allowed call must reach it exactly as the case says.
TAP output. usage: test_bypass.py path/to/archestra-spoa [name-substring]"""
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
import bypass_catalogue as cat  # noqa: E402
from edge import Edge  # noqa: E402
from pylib.tap import check, record, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
ONLY = sys.argv[2] if len(sys.argv) > 2 else None
IO_TIMEOUT = 15.0
TNAME = {"h1": "HTTP/1.1", "h1tls": "HTTP/1.1+TLS", "h2": "HTTP/2+TLS"}


def as_bytes(v):
    return v if isinstance(v, bytes) else v.encode("utf-8")


def wire_headers(case, sec, body):
    """[(name bytes, value bytes)] as the client sends them (without Host and framing)."""
    out = [(as_bytes(n), as_bytes(cat.fill(v, sec))) for n, v in case["headers"]]
    if case.get("response"):
        out += [(n.encode(), v.encode()) for n, v in cat.mock_headers(case["response"])]
    if body is not None and case["ctype"]:
        out.append((b"Content-Type", case["ctype"].encode()))
    return out


# ------------------------------------------------------------------ HTTP/1.1, raw
def parse_response(buf, at_eof=False):
    """(status, headers, body) once buf holds a whole response, else None. At EOF, what
    there is (a body delimited by the close)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if at_eof:
            raise AssertionError(f"connection closed mid-headers: {bytes(buf[:120])!r}")
        return None
    lines = buf[:end].split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise AssertionError(f"not an HTTP response: {bytes(buf[:80])!r}")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    rest = bytes(buf[end + 4:])
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        return (int(m.group(1)), hdrs, rest[:n]) if len(rest) >= n or at_eof else None
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body, p = b"", 0
        while True:
            e = rest.find(b"\r\n", p)
            if e < 0:
                return (int(m.group(1)), hdrs, body) if at_eof else None
            size = int(rest[p:e].split(b";")[0], 16)
            if size == 0:
                return int(m.group(1)), hdrs, body
            if len(rest) < e + 2 + size + 2:
                return (int(m.group(1)), hdrs, body) if at_eof else None
            body += rest[e + 2:e + 2 + size]
            p = e + 2 + size + 2
    return (int(m.group(1)), hdrs, rest) if at_eof else None  # delimited by the close


def h1_call(edge, tls, case, sec):
    body = cat.fill(case["body"], sec) if case["body"] is not None else None
    target = cat.fill(case["path"], sec).encode("latin-1")
    head = [case["method"].encode() + b" " + target + b" HTTP/1.1", b"Host: localhost"]
    head += [n + b": " + v for n, v in wire_headers(case, sec, body)]
    payload = b""
    if body is not None:
        if case["framing"] == "stream":
            head.append(b"Transfer-Encoding: chunked")
            payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 16384]), body[i:i + 16384])
                               for i in range(0, len(body), 16384)) + b"0\r\n\r\n"
        else:
            head.append(b"Content-Length: %d" % len(body))
            payload = body
    head.append(b"Connection: close")
    data = b"\r\n".join(head) + b"\r\n\r\n" + payload
    raw = socket.create_connection(("127.0.0.1", edge.https_port if tls else edge.http_port), timeout=IO_TIMEOUT)
    sock = edge.client_ctx().wrap_socket(raw, server_hostname="localhost") if tls else raw
    try:
        sock.setblocking(False)
        out, buf, eof = memoryview(data), bytearray(), False
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            got = parse_response(buf)
            if got:
                return got
            if eof:
                return parse_response(buf, at_eof=True) if buf else (0, {}, b"")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete response within {IO_TIMEOUT}s ({len(buf)} bytes read, "
                                     f"{len(out)} left to send)")
            pending = tls and sock.pending()
            r, w, _ = select.select([sock], [sock] if len(out) else [], [], 0 if pending else min(left, 0.5))
            if r or pending:
                try:
                    chunk = sock.recv(65536)
                    if chunk:
                        buf += chunk
                    else:
                        eof = True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (ConnectionResetError, ssl.SSLError, OSError):
                    eof = True
            if w and len(out):
                try:
                    n = sock.send(out[:65536])
                    out = out[n:]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    out = memoryview(b"")  # the edge stopped reading: it answered early
    finally:
        sock.close()


# ------------------------------------------------------------------ HTTP/2 via curl
def h2_call(edge, case, sec, tmp):
    body = cat.fill(case["body"], sec) if case["body"] is not None else None
    url = f"https://localhost:{edge.https_port}".encode() + cat.fill(case["path"], sec).encode("latin-1")
    hfile, bfile, dfile = (os.path.join(tmp, n) for n in ("h2.hdrs", "h2.body", "h2.data"))
    argv = [b"curl", b"-sS", b"--http2", b"--path-as-is", b"--cacert", os.path.join(edge.certs, "ca.pem").encode(),
            b"--max-time", b"%d" % IO_TIMEOUT, b"-X", case["method"].encode(), b"-o", bfile.encode(),
            b"-D", hfile.encode(), b"-w", b"%{http_code} %{http_version}", b"-H", b"Accept:", b"-H", b"User-Agent:"]
    for n, v in wire_headers(case, sec, body):
        argv += [b"-H", n + b": " + v]
    stdin = None
    if body is not None:
        if case["ctype"] is None:
            argv += [b"-H", b"Content-Type:"]
        if case["framing"] == "stream":
            argv += [b"-T", b"-"]  # from a pipe: no Content-Length, DATA frames as they come
            stdin = body
        else:
            with open(dfile, "wb") as f:
                f.write(body)
            argv += [b"--data-binary", b"@" + dfile.encode()]
    argv.append(url)
    for f in (hfile, bfile):
        if os.path.exists(f):
            os.unlink(f)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=IO_TIMEOUT + 5)
    out = p.stdout.decode(errors="replace").split()
    head = open(hfile, "rb").read() if os.path.exists(hfile) else b""
    m = re.match(rb"HTTP/(\S+) (\d{3})", head)
    # An edge that answers before the whole body is sent resets the stream (CANCEL): curl
    # then exits 92, but the answer it got is in the files.
    if not m and p.returncode == 92:
        return None, {}, None  # reset before curl 7.88 showed the answer: the log has it
    if not m or (p.returncode and p.returncode != 92):
        raise AssertionError(f"curl failed (rc={p.returncode}, -w {out}): {p.stderr.decode(errors='replace')[:300]}")
    check(m.group(1) == b"2", f"curl did not speak HTTP/2 (got HTTP/{m.group(1).decode()}); curl -V must list HTTP2")
    hdrs = {}
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k:
            hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return int(m.group(2)), hdrs, open(bfile, "rb").read() if os.path.exists(bfile) else b""


# ------------------------------------------------------------------ checks
def shape(j):
    """The provider whose error shape j has, or None."""
    if not isinstance(j, dict):
        return None
    if set(j) == {"id", "message", "code"} and isinstance(j["message"], str):
        return "cohere"
    if set(j) == {"message", "code"} and isinstance(j["message"], str):
        return "bedrock"
    e = j.get("error")
    if j.get("type") == "error" and isinstance(e, dict) and isinstance(e.get("type"), str) and \
            isinstance(e.get("message"), str):
        return "anthropic"
    if isinstance(e, dict) and isinstance(e.get("code"), int) and isinstance(e.get("status"), str) and \
            isinstance(e.get("message"), str):
        return "gemini"
    if isinstance(e, dict) and isinstance(e.get("code"), str) and isinstance(e.get("type"), str) and \
            isinstance(e.get("message"), str) and "param" in e:
        return "openai"
    return None


def check_error_body(case, status, body, want_status, reason, path_shape):
    try:
        j = json.loads(body)
    except ValueError:
        raise AssertionError(f"refusal body is not JSON: {body[:200]!r}") from None
    got = shape(j)
    ok_shapes = {path_shape} | ({"openai"} if reason == "invalid_path" else set())
    check(got in ok_shapes, f"error body is not in the {path_shape} shape: {body[:300]!r}")
    if got == "openai":
        check(j["error"]["code"] == reason, f"error.code {j['error']['code']!r}, expected {reason!r}")
    if got in ("cohere", "bedrock"):
        check(j["code"] == reason, f"code {j['code']!r}, expected {reason!r}")
    if got == "gemini":
        check(j["error"]["code"] == want_status, f"gemini error.code {j['error']['code']} != {want_status}")


class Harness:
    def __init__(self, edge, sec, tmp):
        self.edge, self.sec, self.tmp = edge, sec, tmp
        self.log_pos = 0

    def mock_requests(self):
        return self.edge.mock_requests()

    def new_log_lines(self, want=1, timeout=2.0):
        end = time.time() + timeout
        while True:
            text = self.edge.log("haproxy")
            # traffic lines only ("ip:port [date] ..."); a long one may be cut before its fields
            lines = [ln for ln in text[self.log_pos:].splitlines() if re.match(r"\S+:\d+ \[", ln)]
            if len(lines) >= want or time.time() > end:
                self.log_pos = len(text)
                return lines
            time.sleep(0.02)

    def call(self, case, transport):
        self.edge.mock_reset()
        self.log_pos = len(self.edge.log("haproxy"))
        if transport == "h2":
            st, hdrs, body = h2_call(self.edge, case, self.sec, self.tmp)
        else:
            st, hdrs, body = h1_call(self.edge, transport == "h1tls", case, self.sec)
        return st, hdrs, body, self.mock_requests()

    def run_case(self, case, transport):
        exp = case["expect"]
        st, hdrs, body, reqs = self.call(case, transport)
        path_shape = cat.shape_of(cat.fill(case["path"], self.sec))
        if not exp.get("allow"):
            check(not reqs, f"REFUSED CALL REACHED THE PROVIDER: {[r['method'] + ' ' + r['path'] for r in reqs]} "
                            f"(edge answered {st}: {(body or b'')[:160]!r})")
            if st is None:  # HTTP/2 stream reset mid-upload: status and reason from HAProxy's log
                lines = self.new_log_lines()
                check(lines, "curl saw no answer and HAProxy logged no line")
                m = re.search(r"\] \S+ \S+ \S+ (\d{3}) ", lines[-1])
                check(m and int(m.group(1)) == exp["status"] and f" reason={exp['reason']} " in lines[-1],
                      f"stream reset; HAProxy's log: {lines[-1][:300]}")
                return
            if case.get("haproxy_may_refuse") and st == 400 and shape(_json(body)) is None:
                return  # HAProxy's own parser refused it before the agent
            check(st == exp["status"], f"status {st}, expected {exp['status']} ({exp['reason']}): {body[:240]!r}")
            check_error_body(case, st, body, exp["status"], exp["reason"], path_shape)
            self.check_log(f" reason={exp['reason']} ", body)
            return
        check(len(reqs) == 1, f"expected the call upstream once, the mock got {len(reqs)} (edge answered {st}: "
                              f"{body[:240]!r})")
        r = reqs[0]
        up = exp.get("upstream", {})
        if "path" in up:
            check(r["path"] == up["path"], f"upstream path {r['path']!r}, expected {up['path']!r}")
        if "query" in up:
            check(r["query"] == cat.fill(up["query"], self.sec), f"upstream query {r['query']!r}, expected "
                                                                 f"{up['query']!r}")
        for k, v in up.get("headers", {}).items():
            check(r["headers"].get(k) == cat.fill(v, self.sec), f"upstream header {k}: {r['headers'].get(k)!r}")
        for k in up.get("absent", []):
            check(k not in r["headers"], f"upstream received {k}: {r['headers'].get(k)!r}")
        blob = json.dumps(r)
        for s in up.get("secrets_absent", []):
            check(self.sec[s] not in blob and self.sec[s][21:] not in blob, f"{s} reached the provider")
        res = exp.get("res")
        if res is None:
            check(not (st in (400, 401, 403, 413) and shape(_json(body)) and b"archestra" in body),
                  f"the edge refused an allowed call: {st} {body[:240]!r}")
        elif res == "allow":
            check(st == 200, f"response refused: {st} {body[:240]!r}")
        else:
            check(st == res["status"], f"response status {st}, expected {res['status']} ({res['reason']}): "
                                       f"{body[:240]!r}")
            check_error_body(case, st, body, res["status"], res["reason"], path_shape)
            self.check_log(" res_verdict=deny ", body)

    def check_log(self, needle, body):
        """The call's log line holds needle. A line HAProxy cut short (long identity values)
        cannot say; then the body must (OpenAI's error.code, checked already)."""
        lines = self.new_log_lines()
        check(lines, "no log line for the call")
        if " spoe_ms=" not in lines[-1]:
            check(shape(_json(body)) == "openai", f"log line cut short and the body names no reason: {lines[-1][:200]}")
            return
        check(any(needle in ln for ln in lines), f"HAProxy's log line lacks{needle.rstrip()}: {lines[-1:]}")


def _json(b):
    try:
        return json.loads(b)
    except ValueError:
        return None


def main():
    tmp = tempfile.mkdtemp(prefix="arch-bypass-")
    try:
        cfg, env, sec = cat.setup(tmp, AGENT)
        os.environ.update(env)
        cases = [c for c in cat.CASES if not c.get("only_spop") and c["transports"]]
        if ONLY:
            cases = [c for c in cases if ONLY in c["name"] or ONLY == c["cls"]]
        curl_v = subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout

        def curl_h2():
            check("HTTP2" in curl_v, "curl lacks HTTP/2 (curl -V has no HTTP2 feature): the h2 cases cannot run")
        run("curl is installed with HTTP/2 support", curl_h2)
        with Edge(AGENT, agents=1, agent_config=cfg) as edge:
            h = Harness(edge, sec, tmp)
            t0 = time.time()
            for c in cases:
                for t in c["transports"]:
                    run(f"[{c['cls']}] {c['name']} ({TNAME[t]})", lambda c=c, t=t: h.run_case(c, t))
            print(f"# {sum(len(c['transports']) for c in cases)} calls in {time.time() - t0:.1f}s", file=sys.stderr)
    except Exception:
        import traceback
        record(False, "the bypass edge starts", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(tail=6)


if __name__ == "__main__":
    sys.exit(main())
