#!/usr/bin/env python3
"""The bypass catalogue (bypass_catalogue.py) straight to the agent over SPOP, no HAProxy: each
case becomes the archestra-req NOTIFY HAProxy would send (spoe-archestra.conf's arguments, plus
eom), and, for cases with a canned response, the archestra-res that follows with the ctx the
agent handed out. The set-var actions must say what the case expects: verdict, status, reason
and a provider-shaped body for refusals; upstream_path (path and query) and the substituted key
for allowed calls; res_verdict, res_status and res_body for responses.
TAP output. usage: test_bypass_spop.py path/to/archestra-spoa [name-substring]"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # bypass_catalogue.py beside, tests/pylib
import bypass_catalogue as cat  # noqa: E402
from pylib import spop as sp  # noqa: E402
from pylib.ports import free_port, wait_port  # noqa: E402
from pylib.tap import check, record, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
ONLY = sys.argv[2] if len(sys.argv) > 2 else None
MFS = 1024 * 1024
# What HAProxy holds of a body larger than its buffer: tune.bufsize less headers and reserve.
BUFFERED = cat.BUFSIZE - 16384


def hdrs_bin(pairs):
    """req.hdrs_bin / res.hdrs_bin of (name, value) pairs: HTX holds names lower-cased."""
    return sp.enc_hdrs((n.lower(), v) for n, v in pairs)


def b(v):
    return v if isinstance(v, bytes) else v.encode("utf-8")


class Agent:
    def __init__(self, cfg, tmp, name):
        self.port = free_port()
        path = os.path.join(tmp, name + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.err = open(os.path.join(tmp, name + ".log"), "w+")
        self.proc = subprocess.Popen([AGENT, "--listen", f"127.0.0.1:{self.port}", "--threads", "1", "--config", path],
                                     stdout=self.err, stderr=self.err)
        if not wait_port(self.port, self.proc):
            self.err.seek(0)
            raise RuntimeError("agent did not start: " + self.err.read()[-2000:])
        self.conn = None
        self.fid = 0

    def connect(self):
        self.conn = sp.Conn(socket.AF_INET, ("127.0.0.1", self.port), timeout=5)
        kv = self.conn.hello(mfs=MFS)
        check(kv.get("max-frame-size", (0, 0))[1] >= 300000, f"agent max-frame-size too small: {kv}")

    def ask(self, msg):
        """One NOTIFY; the set-var actions as {name: value}."""
        if self.conn is None:
            self.connect()
        self.fid += 1
        try:
            self.conn.notify(1, self.fid, [msg])
            f = self.conn.read_frame(5, what="ACK")
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        if f is None or f.type != sp.ACK:
            self.conn = None
            raise AssertionError(f"expected an ACK, got {sp.describe(f)} (agent alive: {self.proc.poll() is None})")
        out = {}
        for t, scope, name, val in sp.dec_actions(f.payload):
            if t == 1:
                out[name.decode()] = val[1]
        return out

    def stop(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.err.flush()


def req_msg(case, sec, n):
    """The archestra-req HAProxy sends for the case."""
    target = cat.fill(case["path"], sec).encode("latin-1")
    path, q, query = target.partition(b"?")
    body = cat.fill(case["body"], sec) if case["body"] is not None else None
    pairs = [("host", "localhost")] + [(n_, cat.fill(v, sec)) for n_, v in case["headers"]]
    if case.get("response"):
        pairs += cat.mock_headers(case["response"])
    if body is not None and case["ctype"]:
        pairs.append(("content-type", case["ctype"]))
    eom = True
    if body is None:
        blen = bsize = 0
        data = b""
    else:
        if case["framing"] == "stream":
            pairs.append(("transfer-encoding", "chunked"))
        else:
            pairs.append(("content-length", str(len(body))))
        data = body
        blen = bsize = len(body)
        if len(body) > BUFFERED:  # HAProxy holds the start only; the end of the message is not in
            data = body[:BUFFERED]
            blen = len(data)
            bsize = len(body) if case["framing"] == "cl" else blen
            eom = False
    args = [("id", sp.STR(f"bypass-{n}")), ("method", sp.STR(case["method"])), ("path", sp.STR(path)),
            ("query", sp.STR(query) if q else sp.NULL()),
            ("hdrs", sp.BIN(hdrs_bin([(b(k), b(v)) for k, v in pairs]))),
            ("body", sp.BIN(data)), ("body_len", sp.I64(blen)), ("body_size", sp.I64(bsize)),
            ("src", sp.IP4("127.0.0.1")), ("tls", sp.BOOL(True)), ("eom", sp.BOOL(eom))]
    return sp.enc_msg("archestra-req", args)


def res_msg(case, ctx, n, held=None):
    resp = case["response"]
    body, hdrs = cat.response_bytes(resp)
    eom = resp.get("spop_eom", True)
    blen = bsize = len(body)
    data = body
    if len(body) > BUFFERED:
        data = body[:BUFFERED]
        blen = len(data)
        bsize = blen if resp.get("chunked") else len(body)
        eom = False
    args = [("id", sp.STR(f"bypass-{n}")), ("status", sp.I32(200)),
            ("hdrs", sp.BIN(hdrs_bin([(b(k), b(v)) for k, v in hdrs]))),
            ("body", sp.BIN(data)), ("body_len", sp.I64(blen)), ("body_size", sp.I64(bsize)), ("eom", sp.BOOL(eom))]
    if held is not None:  # HAProxy sends var(txn.arch.hold): the stream was held whole
        args.append(("held", sp.STR(held)))
    how = case.get("spop_ctx")
    if how == "garbage":
        args.append(("ctx", sp.STR("2|not|a|context")))
    elif how != "missing":
        args.append(("ctx", sp.STR(ctx) if ctx is not None else sp.NULL()))
    return sp.enc_msg("archestra-res", args)


def shape_ok(body, shape, status, reason):
    try:
        j = json.loads(body)
    except ValueError:
        raise AssertionError(f"body is not JSON: {body[:200]!r}") from None
    if shape in ("cohere", "bedrock"):  # {"message", "code"} (Cohere adds "id")
        check(isinstance(j, dict) and j.get("code") == reason and isinstance(j.get("message"), str),
              f"body is not the {shape} error shape with {reason}: {body[:300]!r}")
        return
    e = j.get("error") if isinstance(j, dict) else None
    check(isinstance(e, dict), f"no error object: {body[:200]!r}")
    ok = {"openai": lambda: e.get("code") == reason and isinstance(e.get("type"), str) and "param" in e,
          "anthropic": lambda: j.get("type") == "error" and isinstance(e.get("type"), str),
          "gemini": lambda: e.get("code") == status and isinstance(e.get("status"), str)}
    shapes = [shape] + (["openai"] if reason == "invalid_path" else [])
    check(any(ok[s]() and isinstance(e.get("message"), str) for s in shapes),
          f"body is not the {shape} error shape with {reason}: {body[:300]!r}")


def run_case(agent, case, sec, n):
    exp = case["expect"]
    path = cat.fill(case["path"], sec)
    shape = cat.shape_of(path)
    v = agent.ask(req_msg(case, sec, n))
    if not exp.get("allow"):
        check(v.get("verdict") == "deny", f"verdict {v.get('verdict')!r} ({v.get('reason')!r}), expected deny "
                                          f"{exp['status']} {exp['reason']}")
        check(v.get("status") == exp["status"] and v.get("reason") == exp["reason"],
              f"status {v.get('status')} reason {v.get('reason')!r}, expected {exp['status']} {exp['reason']!r}")
        shape_ok(v.get("body", ""), shape, exp["status"], exp["reason"])
        check("auth_val" not in v and "upstream_path" not in v, "a refused call carries a rewrite")
        return
    check(v.get("verdict") == "allow", f"verdict {v.get('verdict')!r} status {v.get('status')} reason "
                                       f"{v.get('reason')!r}, expected allow")
    up = exp.get("upstream", {})
    upath = v.get("upstream_path", "")
    if "path" in up:
        want = up["path"] + ("?" + cat.fill(up["query"], sec) if up.get("query") else "")
        check(upath == want, f"upstream_path {upath!r}, expected {want!r}")
    if "auth" in up:
        h, val = up["auth"]
        check(v.get("auth_hdr") == h and v.get("auth_val") == cat.fill(val, sec),
              f"substitution {v.get('auth_hdr')!r}, expected {h}")
    for s in up.get("secrets_absent", []):
        check(sec[s] not in upath and sec[s][21:] not in upath, f"{s} is in upstream_path")
    if exp.get("truncated"):
        check(v.get("truncated") == "1", f"txn.arch.truncated {v.get('truncated')!r}, expected '1'")
    if exp.get("hold"):
        check(v.get("hold") == "1", f"txn.arch.hold {v.get('hold')!r}: the stream would not be held for the agent")
    res = exp.get("res")
    if res is None:
        return
    check(v.get("inspect_res") == "1", "inspect_res not set: the response would not be inspected")
    r = agent.ask(res_msg(case, v.get("ctx"), n, v.get("hold")))
    if res == "allow":
        check(r.get("res_verdict") == "allow", f"res_verdict {r.get('res_verdict')!r}: {r.get('res_body', '')[:200]}")
        return
    check(r.get("res_verdict") == "deny" and r.get("res_status") == res["status"],
          f"res_verdict {r.get('res_verdict')!r} res_status {r.get('res_status')}, expected deny {res['status']} "
          f"({res['reason']})")
    shape_ok(r.get("res_body", ""), shape, res["status"], res["reason"])


def main():
    tmp = tempfile.mkdtemp(prefix="arch-bypass-spop-")
    agents = []
    try:
        cfg, env, sec = cat.setup(tmp, AGENT)
        os.environ.update(env)
        main_agent = Agent(cfg, tmp, "main")
        agents.append(main_agent)
        trunc_allow = Agent(dict(cfg, truncated_body="allow"), tmp, "trunc-allow")
        agents.append(trunc_allow)
        cases = cat.CASES
        if ONLY:
            cases = [c for c in cases if ONLY in c["name"] or ONLY == c["cls"]]
        t0 = time.time()
        for n, c in enumerate(cases):
            if c.get("spop") is False:
                continue
            a = trunc_allow if c.get("only_spop") else main_agent
            run(f"[{c['cls']}] {c['name']} (SPOP)", lambda a=a, c=c, n=n: run_case(a, c, sec, n))
        print(f"# {len(cases)} cases in {time.time() - t0:.1f}s", file=sys.stderr)
        for a in agents:
            alive = a.proc.poll() is None
            record(alive, f"the agent ({os.path.basename(a.err.name)}) survived the catalogue",
                   "" if alive else open(a.err.name).read()[-2000:])
            a.stop()
            log = open(a.err.name, errors="replace").read()
            bad = any(k in log for k in ("AddressSanitizer", "LeakSanitizer", "runtime error:"))
            record(not bad, f"no sanitizer report from the agent ({os.path.basename(a.err.name)})",
                   log[-3000:] if bad else "")
    except Exception:
        import traceback
        record(False, "the agents start", traceback.format_exc())
    finally:
        for a in agents:
            a.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return report(tail=6)


if __name__ == "__main__":
    sys.exit(main())
