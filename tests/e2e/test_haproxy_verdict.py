#!/usr/bin/env python3
"""End to end: the real HAProxy talks SPOP to the real agent and gets txn.arch.verdict.

HAProxy answers every request itself (http-request return) with the variables the
agent set, so the test sees exactly what HAProxy received over SPOP. TAP output.
usage: test_haproxy_verdict.py path/to/archestra-spoa
"""
import http.client
import os
import shutil
import subprocess
import sys
import tempfile

HAPROXY = os.environ.get("HAPROXY") or "haproxy"

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # tests/pylib
from pylib.ports import free_port, wait_port  # noqa: E402
from pylib.tap import record as tap, report  # noqa: E402


SPOE_CONF = """
[archestra]
spoe-agent archestra-agent
    messages archestra-req
    option var-prefix arch
    option set-on-error error
    timeout hello 2s
    timeout idle 30s
    timeout processing 1s
    use-backend archestra-agents

spoe-message archestra-req
    args id=unique-id method=method path=path query=query hdrs=req.hdrs_bin body=req.body body_len=req.body_len body_size=req.body_size src=src tls=ssl_fc
    event on-frontend-http-request
"""

HAPROXY_CFG = """
global
    tune.bufsize 65536
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{http_port}
    unique-id-format %{{+X}}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    option http-buffer-request
    filter spoe engine archestra config {spoe}
    http-request return status 200 content-type text/plain lf-string "verdict=%[var(txn.arch.verdict)] error=%[var(txn.arch.error)]"
backend archestra-agents
    mode tcp
    option spop-check
    timeout connect 1s
    timeout server 60s
    server agent1 127.0.0.1:{agent_port} check inter 500ms
"""


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read().decode()
    c.close()
    return r.status, data


def main():
    if not shutil.which(HAPROXY):
        tap(False, "haproxy is installed (make deps-test installs it)")
        return report()
    tmp = tempfile.mkdtemp(prefix="arch-e2e-")
    agent_port, http_port = free_port(), free_port()
    spoe = os.path.join(tmp, "spoe.conf")
    with open(spoe, "w") as f:
        f.write(SPOE_CONF)
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG.format(http_port=http_port, agent_port=agent_port, spoe=spoe))
    agent_log = open(os.path.join(tmp, "agent.log"), "w+")
    hap_log = open(os.path.join(tmp, "haproxy.log"), "w+")
    agent = subprocess.Popen([AGENT, "--listen", f"127.0.0.1:{agent_port}", "--threads", "2"],
                             stdout=agent_log, stderr=agent_log)
    hap = None
    try:
        tap(wait_port(agent_port, agent), "agent starts and listens")
        check = subprocess.run([HAPROXY, "-c", "-f", cfg], capture_output=True, text=True)
        tap(check.returncode == 0, "haproxy -c accepts the SPOE configuration",
            check.stdout + check.stderr)
        hap = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=hap_log, stderr=hap_log)
        tap(wait_port(http_port, hap), "haproxy starts")

        # Every request, whatever its shape, gets the agent's verdict.
        bad = []
        shapes = [
            ("GET", "/v1/openai/models", None, {"Authorization": "Bearer sk-test"}),
            ("POST", "/v1/openai/chat/completions",
             b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
             {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}),
            ("POST", "/v1/anthropic/v1/messages?beta=true",
             b'{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"' + b"x" * 40000 + b'"}]}',
             {"Content-Type": "application/json", "x-api-key": "k"}),
            ("POST", "/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent", b"{}",
             {"x-goog-api-key": "AIza-test"}),
        ]
        n = 0
        for i in range(60):
            m, p, b, h = shapes[i % len(shapes)]
            st, body = request(http_port, m, p, b, h)
            n += 1
            if st != 200 or not body.startswith("verdict=allow "):
                bad.append((m, p, st, body))
        tap(not bad, f"txn.arch.verdict=allow set on every one of {n} requests",
            "\n".join(map(repr, bad[:5])))

        # Keep-alive: several requests on one client connection.
        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        got = []
        for _ in range(10):
            c.request("POST", "/v1/openai/chat/completions", body=b"{}",
                      headers={"Authorization": "Bearer sk-test"})
            r = c.getresponse()
            got.append(r.read().decode())
        c.close()
        tap(all(g.startswith("verdict=allow ") for g in got),
            "verdict set on every request of a keep-alive connection", repr(got[:3]))

        # The agent's side saw no protocol error.
        agent_log.flush()
        agent_log.seek(0)
        text = agent_log.read()
        tap("level=warn" not in text and "level=error" not in text,
            "agent logged no warning or error", text[-2000:])

        # Agent down: HAProxy's set-on-error variable reports it and no verdict is set.
        agent.terminate()
        rc = agent.wait(10)
        tap(rc == 0, "agent exits 0 on SIGTERM with HAProxy connected", f"rc={rc}")
        st, body = request(http_port, "GET", "/v1/openai/models", headers={"Authorization": "Bearer k"})
        tap(st == 200 and body.startswith("verdict= ") and "error=" in body and body != "verdict= error=",
            "with the agent down, no verdict and the SPOE error variable is set", body)
    finally:
        for p in (hap, agent):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        hap_log.seek(0)
        hlog = hap_log.read()
        shutil.rmtree(tmp, ignore_errors=True)

    rc = report(20)
    if rc:
        for line in hlog.splitlines()[-20:]:
            print(f"# haproxy: {line}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
