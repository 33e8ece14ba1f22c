#!/usr/bin/env python3
"""haproxy-cfg/snippet.cfg as an operator uses it: checked against haproxy.cfg, then pasted
into an operator-style haproxy.cfg (their own global/defaults, a frontend that also answers
/health) in front of the mock provider and the real agents, and exercised end to end.
TAP output. usage: test_snippet.py path/to/archestra-spoa"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import TOP, Edge, echo  # noqa: E402
from pylib.tap import check, record, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
SNIPPET = os.path.join(TOP, "haproxy-cfg", "snippet.cfg")
SPOE = os.path.join(TOP, "haproxy-cfg", "spoe-archestra.conf")
REAL = {"openai": "sk-real-openai-snip-4d1e", "gemini": "AIza-real-gemini-snip-77b0"}
DIRECT = "sk-direct-snip-0a9c"
HEALTH = "operator-health-ok"
REFUSAL_STATUSES = (400, 401, 403, 404, 413, 429, 500, 503)

OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
GEMINI_BODY = {"contents": [{"parts": [{"text": "Hello"}]}]}
POLICY = {"rules": [
    {"id": "restricted-no-gpt-5", "when": {"agent_id": "restricted-*"}, "models": {"deny": ["gpt-5*"]}},
    {"id": "mail-inside-only", "tool_calls": [{"name": "send_*", "args": [{"path": "to", "not_in": ["*@corp.example"]}]}]},
]}


def blocks():
    """snippet.cfg's "# ---- name ----" blocks, as text."""
    out, name = {}, None
    for line in open(SNIPPET).read().splitlines():
        m = re.fullmatch(r"# ---- (\w+) ----", line)
        if m:
            name = m.group(1)
            out[name] = []
        elif name:
            out[name].append(line)
    return {k: "\n".join(v) + "\n" for k, v in out.items()}


def adapt(text, pairs):
    """What an operator edits in the pasted lines; every edit must apply, or the snippet changed."""
    for old, new in pairs:
        check(old in text, f"snippet.cfg no longer has {old!r}: update the operator edits in this test")
        text = text.replace(old, new)
    return text


def operator_cfg(edge):
    b = blocks()
    relay = ("/run/haproxy/archestra-relay.sock", os.path.join(edge.tmp, "relay.sock"))
    front = adapt(b["frontend"], [("config /etc/haproxy/spoe-archestra.conf", "config " + SPOE), relay])
    back = adapt(b["backends"], [
        ("api.openai.com:443", f"127.0.0.1:{edge.mock_port}"),
        ("api.anthropic.com:443", f"127.0.0.1:{edge.mock_port}"),
        ("generativelanguage.googleapis.com:443", f"127.0.0.1:{edge.mock_port}"),
        ("ca-file @system-ca", "ca-file " + os.path.join(edge.certs, "ca.pem")),
        ("server local 127.0.0.1:11434", f"server local 127.0.0.1:{edge.plain_mock_port}"),
        ("127.0.0.1:12345", f"127.0.0.1:{edge.agent_ports[0]}"),
        ("127.0.0.1:12346", f"127.0.0.1:{edge.agent_ports[-1]}"),
        relay,
    ])
    return f"""# An operator's own HAProxy, with archestra's snippet pasted in.
global
    log stderr format raw local0 info
    maxconn 500
    tune.bufsize 262144

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s

frontend www
    bind 127.0.0.1:{edge.http_port}
    bind 127.0.0.1:{edge.https_port} ssl crt {os.path.join(edge.certs, "gateway.pem")} alpn h2,http/1.1
    # the operator's own route, answered before the pasted block
    http-request return status 200 content-type text/plain string "{HEALTH}" if {{ path /health }}
    default_backend llm_missing
    # ---- pasted from snippet.cfg ----
{front}
{back}"""


def err(data):
    return json.loads(data)


def echo_len(edge):
    """The body length the mock last received."""
    return edge.mock_requests()[-1]["body_len"]


def main():
    def in_sync():
        r = subprocess.run([os.path.join(TOP, "haproxy-cfg", "make-snippet.sh"), "--check"],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "snippet.cfg is stale (run haproxy-cfg/make-snippet.sh):\n" + r.stderr[-3000:])
    run("snippet.cfg is what make-snippet.sh generates from haproxy.cfg", in_sync)

    def textual():
        b = blocks()
        check(set(b) == {"frontend", "backends"}, f"blocks: {sorted(b)}")
        f = b["frontend"]
        for st in REFUSAL_STATUSES:
            check(re.search(rf'^\s*http-request return status {st} content-type application/json lf-string '
                            rf'"%\[var\(txn\.arch\.body\)\]" if arch_deny {{ var\(txn\.arch\.status\) -m int {st} }}$',
                            f, re.M), f"no refusal line for {st}")
        for line in ["filter spoe engine archestra config", "option http-buffer-request", "unique-id-format",
                     "http-request del-header x-archestra- -m beg",
                     "http-request del-header openai-organization if arch_sets_auth",
                     "http-request del-header openai-project if arch_sets_auth",
                     "http-request del-header x-goog-user-project if arch_sets_auth",
                     'http-request set-pathq "%[var(txn.arch.upstream_path)]"',
                     "http-request set-header accept-encoding identity if arch_wants_res",
                     "http-response send-spoe-group archestra archestra-res-group",
                     "http-response return status 403", "http-response return status 502"]:
            check(line in f, f"frontend block lacks {line!r}")
        check(len(re.findall(r"return status 503 .* if !arch_answered", f)) == 3, "not 3 fail-closed 503 lines")
        check("set-query" not in f and "set-path " not in f, "the old query/path rewriting is back")
        check(not re.search(r"^\.(if|else|endif)", f, re.M) and "${" not in open(SNIPPET).read(),
              "unresolved .if or ${VAR} in the snippet")
    run("the snippet's frontend block has every refusal status, the fail-closed 503s, header stripping, "
        "set-pathq, Accept-Encoding and the response refusals; no .if and no ${VAR}", textual)

    tmp = tempfile.mkdtemp(prefix="arch-snippet-")
    keyfile = os.path.join(tmp, "keys.json")
    r = subprocess.run([AGENT, "keys", "new", "--file", keyfile, "--owner", "snippet-user"],
                       capture_output=True, text=True, timeout=10)
    vk = r.stdout.strip()
    policy = os.path.join(tmp, "policy.json")
    with open(policy, "w") as f:
        json.dump(POLICY, f)
    os.environ["ARCH_SNIP_OPENAI_KEY"] = REAL["openai"]
    os.environ["ARCH_SNIP_GEMINI_KEY"] = REAL["gemini"]
    cfg = {"keys_file": keyfile, "policy_file": policy, "inspect_responses": True,
           "provider_keys": {"openai": {"env": "ARCH_SNIP_OPENAI_KEY"}, "gemini": {"env": "ARCH_SNIP_GEMINI_KEY"}}}
    try:
        check(r.returncode == 0 and vk.startswith("arch_vk_"), f"keys new: {r.stderr}")
        with Edge(AGENT, agent_config=cfg, haproxy_cfg=operator_cfg) as edge:
            exercise(edge, vk)
    except Exception:
        record(False, "the operator-style edge starts (mock, agents, HAProxy with the pasted snippet)",
               traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report()


def exercise(edge, vk):
    def upstream_count():
        return len(edge.mock_requests())

    def refused(method, path, body, headers, status, tls=True):
        """A call the snippet must answer itself with the agent's status and body (read while
        sending, as curl does: HAProxy answers a 413 before the body is all in)."""
        before = upstream_count()
        st, rh, data = edge.call_early(method, path, body, headers, tls=tls)
        check(st == status, f"{method} {path}: status {st}, want {status}: {data[:300]!r}")
        check(rh.get("content-type", "").startswith("application/json"), f"content-type {rh.get('content-type')}")
        check(upstream_count() == before, f"{method} {path}: a refused call reached the upstream")
        return err(data)

    def health():
        st, rh, data = edge.call("GET", "/health", tls=False)
        check(st == 200 and data == HEALTH.encode() and rh.get("content-type") == "text/plain",
              f"/health: {st} {rh.get('content-type')} {data[:200]!r}")

    def t_health():
        before = upstream_count()
        health()
        check(upstream_count() == before, "/health reached the provider")
    run("the operator's own /health route answers as before, before the pasted block", t_health)

    def t_allowed():
        st, rh, data = edge.call("POST", "/v1/openai/chat/completions", OPENAI_BODY,
                                 {"Authorization": "Bearer " + DIRECT, "X-Archestra-Agent-Id": "bot-1"})
        check(st == 200, f"status {st} {data[:300]!r}")
        e = echo(rh)
        check(e["path"] == "/v1/chat/completions" and e["headers"].get("host") == "api.openai.com", f"{e}")
        check(e["headers"].get("authorization") == "Bearer " + DIRECT, "the direct key did not pass as sent")
        check(not [k for k in e["headers"] if k.startswith("x-archestra")], "X-Archestra-* reached the upstream")
    run("an allowed call is routed through the pasted block: upstream path, host, direct key, no X-Archestra-*",
        t_allowed)

    def t_400():
        j = refused("POST", "/v1/openai/chat/completions", OPENAI_BODY,
                    {"Authorization": "Bearer " + DIRECT, "X-Archestra-Agent-Id": "a/b"}, 400)
        check(j["error"]["code"] == "invalid_identity_header", f"{j}")
    run("400: an invalid identity header (X-Archestra-Agent-Id: a/b), with the agent's body", t_400)

    def t_401():
        j = refused("POST", "/v1/openai/chat/completions", OPENAI_BODY, {}, 401)
        check(j["error"]["code"] == "missing_credential", f"{j}")
    run("401: no API key, with the agent's body", t_401)

    def t_403():
        j = refused("POST", "/v1/openai/chat/completions", dict(OPENAI_BODY, model="gpt-5"),
                    {"Authorization": "Bearer " + DIRECT, "X-Archestra-Agent-Id": "restricted-bot"}, 403)
        check(j["error"]["code"] == "restricted-no-gpt-5", f"{j}")
    run("403: a policy rule, with the agent's body naming the rule", t_403)

    def t_404():
        j = refused("POST", "/v1/nowhere/chat/completions", OPENAI_BODY, {"Authorization": "Bearer " + DIRECT}, 404)
        check(j["error"]["code"] == "unknown_provider", f"{j}")
    run("404: a path under no provider, with the agent's body", t_404)

    def t_413():
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 400000}]}
        j = refused("POST", "/v1/openai/chat/completions", big, {"Authorization": "Bearer " + DIRECT}, 413)
        check(j["error"]["code"] == "body_truncated" and "tune.bufsize" in j["error"]["message"], f"{j}")
    run("413: a body over tune.bufsize (content-length), with the agent's body", t_413)

    big = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "z" * 400000}]}).encode()
    small = json.dumps(OPENAI_BODY).encode()
    auth = {"authorization": "Bearer " + DIRECT, "content-type": "application/json"}

    def h2_refused_or_passed(cl):
        what = "HTTP/2 " + ("with" if cl else "without") + " content-length"
        st, data, _ = edge.h2_call("POST", "/v1/openai/chat/completions", small, auth, content_length=cl)
        check(st == 200 and echo_len(edge) == len(small), f"{what}, small body: {st} {data[:200]!r}")
        before = upstream_count()
        st, data, _ = edge.h2_call("POST", "/v1/openai/chat/completions", big, auth, content_length=cl)
        check(st == 413, f"{what}, 400 KB: status {st} {data[:300]!r}")
        check(err(data)["error"]["code"] == "body_truncated", f"{what}: {data[:300]!r}")
        check(upstream_count() == before, f"{what}: a truncated body reached the upstream")

    def t_413_h2_cl_h1_chunked():
        h2_refused_or_passed(True)
        before = upstream_count()
        mark = len(edge.log("haproxy"))
        c = edge.conn(tls=False, timeout=20)
        try:
            c.request("POST", "/v1/openai/chat/completions", headers=auth, encode_chunked=True,
                      body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]))
            r = c.getresponse()
            st, data = r.status, r.read()
            check(st == 413 and err(data)["error"]["code"] == "body_truncated",
                  f"HTTP/1.1 chunked: {st} {data[:300]!r}")
        except OSError:
            # HAProxy answered and closed while the rest of the body was still being
            # sent, so the client saw a broken pipe: its log line says what it answered.
            end = time.time() + 5
            while time.time() < end and "reason=body_truncated" not in edge.log("haproxy")[mark:]:
                time.sleep(0.1)
            tail = edge.log("haproxy")[mark:]
            check(" 413 " in tail and "reason=body_truncated" in tail,
                  f"HTTP/1.1 chunked: the client was cut off and HAProxy logged no 413: {tail[-600:]!r}")
        finally:
            c.close()
        check(upstream_count() == before, "HTTP/1.1 chunked: a truncated body reached the upstream")
    run("413 for a body over tune.bufsize over HTTP/2 with content-length and HTTP/1.1 chunked; "
        "a small HTTP/2 body passes", t_413_h2_cl_h1_chunked)

    # HTTP/2 with no content-length: body_size is what has arrived, like body_len; only the
    # eom argument tells the body was cut.
    run("413 for a body over tune.bufsize over HTTP/2 without content-length (the eom argument); "
        "a small one passes [agent change]", lambda: h2_refused_or_passed(False))

    def t_500():
        j = refused("POST", "/v1/anthropic/v1/messages",
                    {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
                    {"x-api-key": vk, "anthropic-version": "2023-06-01"}, 500)
        check(j["type"] == "error" and j["error"]["type"] == "api_error"
              and "no API key for the provider anthropic" in j["error"]["message"], f"{j}")
    run("500: a virtual key for a provider the gateway holds no key for, in Anthropic's shape", t_500)

    def t_vkey_openai():
        hdrs = {"Authorization": "Bearer " + vk, "OpenAI-Organization": "org-caller", "OpenAI-Project": "proj-caller"}
        st, rh, data = edge.call("POST", "/v1/openai/chat/completions", OPENAI_BODY, hdrs)
        check(st == 200, f"status {st} {data[:300]!r}")
        e = echo(rh)
        check(e["headers"].get("authorization") == "Bearer " + REAL["openai"], f"upstream credential: {e['headers']}")
        check("openai-organization" not in e["headers"] and "openai-project" not in e["headers"],
              f"the caller's organization/project reached the upstream: {e['headers']}")
        rec = edge.mock_requests()[-1]
        check(vk not in json.dumps(rec), "the virtual key reached the upstream")
        # the same headers with the caller's own key are the caller's business: they pass
        st, rh, _ = edge.call("POST", "/v1/openai/chat/completions", OPENAI_BODY,
                              dict(hdrs, Authorization="Bearer " + DIRECT))
        e = echo(rh)
        check(st == 200 and e["headers"].get("openai-organization") == "org-caller"
              and e["headers"].get("openai-project") == "proj-caller", f"direct key: {st} {e['headers']}")
    run("virtual key (OpenAI): upstream sees the real key in Authorization, never the virtual one, and no "
        "OpenAI-Organization/OpenAI-Project (kept with a direct key)", t_vkey_openai)

    def t_vkey_gemini_header():
        st, rh, data = edge.call("POST", "/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent", GEMINI_BODY,
                                 {"x-goog-api-key": vk, "X-Goog-User-Project": "caller-project"})
        check(st == 200, f"status {st} {data[:300]!r}")
        e = echo(rh)
        check(e["headers"].get("x-goog-api-key") == REAL["gemini"], f"upstream credential: {e['headers']}")
        check("x-goog-user-project" not in e["headers"], f"X-Goog-User-Project reached the upstream: {e['headers']}")
        check(vk not in json.dumps(edge.mock_requests()[-1]), "the virtual key reached the upstream")
    run("virtual key (Gemini header): real key in x-goog-api-key, no X-Goog-User-Project", t_vkey_gemini_header)

    def t_vkey_gemini_query():
        st, rh, data = edge.call(
            "POST", f"/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent?key={vk}&alt=json&key={vk}",
            GEMINI_BODY, tls=False)
        check(st == 200, f"status {st} {data[:300]!r}")
        e = echo(rh)
        check(e["headers"].get("x-goog-api-key") == REAL["gemini"], f"upstream credential: {e['headers']}")
        check(e["query"] == "alt=json" and e["path"] == "/v1beta/models/gemini-2.0-flash:generateContent",
              f"upstream path {e['path']!r} query {e['query']!r}")
        check(vk not in json.dumps(edge.mock_requests()[-1]), "the virtual key reached the upstream")
    run("virtual key (Gemini ?key=VK&alt=json&key=VK): no key parameter reaches the provider, alt=json does "
        "[agent change]",
        t_vkey_gemini_query)

    def t_query_kept():
        st, rh, data = edge.call(
            "POST", "/v1/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", GEMINI_BODY,
            {"x-goog-api-key": DIRECT})
        check(st == 200 and rh.get("content-type", "").startswith("text/event-stream"),
              f"status {st} {rh.get('content-type')} {data[:200]!r}")
        e = echo(rh)
        check(e["query"] == "alt=sse" and e["path"].endswith(":streamGenerateContent"), f"{e['path']} {e['query']}")
    run("set-pathq keeps the caller's query (?alt=sse streams) [agent change]", t_query_kept)

    def t_identity():
        st, rh, data = edge.call("POST", "/v1/openai/chat/completions", OPENAI_BODY,
                                 {"Authorization": "Bearer " + DIRECT, "Accept-Encoding": "gzip, br"})
        check(st == 200, f"status {st}")
        check(echo(rh)["headers"].get("accept-encoding") == "identity",
              f"upstream Accept-Encoding: {echo(rh)['headers'].get('accept-encoding')}")
    run("responses inspected: the provider is asked for Accept-Encoding: identity", t_identity)

    def t_res_403():
        body = dict(OPENAI_BODY, tools=[{"type": "function", "function": {
            "name": "send_email", "parameters": {"type": "object", "properties": {
                "to": {"type": "string"}, "body": {"type": "string"}}}}}])
        before = upstream_count()
        st, rh, data = edge.call("POST", "/v1/openai/chat/completions", body, {"Authorization": "Bearer " + DIRECT})
        check(st == 403, f"status {st} {data[:300]!r}")
        check(upstream_count() == before + 1, "the call did not reach the provider once")
        j = err(data)
        check(j["error"]["code"] == "mail-inside-only" and "x-mock-echo" not in rh, f"{j} {list(rh)}")
    run("a response refused by a tool-call rule comes back as the agent's 403, not the provider's answer",
        t_res_403)

    def t_503():
        for i in range(len(edge.agent_ports)):
            edge.stop_agent(i)
        for path, shape in [("/v1/openai/chat/completions", lambda j: j["error"]["code"] == "agent_unavailable"),
                            ("/v1/anthropic/v1/messages", lambda j: j["error"]["type"] == "overloaded_error"),
                            ("/v1/gemini/v1beta/models/g:generateContent",
                             lambda j: j["error"]["status"] == "UNAVAILABLE")]:
            j = refused("POST", path, {"model": "m"}, {"Authorization": "Bearer " + DIRECT}, 503)
            check(shape(j), f"{path}: {j}")
        health()
    run("503 with the agents down (fail closed), in each provider's shape; /health still answers", t_503)


if __name__ == "__main__":
    sys.exit(main())
