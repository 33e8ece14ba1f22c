#!/usr/bin/env python3
"""End to end through the real edge: client --TLS--> HAProxy --SPOP--> agents, and
HAProxy --TLS (verify required, SNI)--> mock provider. TAP output.
usage: test_edge.py path/to/archestra-spoa"""
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import Edge, echo  # noqa: E402
from pylib.tap import check, record, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
SECRETS = ["sk-e2e-openai-7f3a", "sk-ant-e2e-91bc", "AIza-e2e-gem-55d1", "AIza-e2e-query-0c2e"]


def test(name):
    """Runs the decorated function as one TAP test, in definition order."""
    def deco(fn):
        run(name, fn)
        return fn
    return deco


OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
ANTHROPIC_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
GEMINI_BODY = {"contents": [{"parts": [{"text": "Hello"}]}]}

CALLS = [  # provider, path, headers, body, upstream path, upstream host, credential header
    ("openai", "/v1/openai/chat/completions", {"Authorization": "Bearer " + SECRETS[0]}, OPENAI_BODY,
     "/v1/chat/completions", "api.openai.com", ("authorization", "Bearer " + SECRETS[0])),
    ("anthropic", "/v1/anthropic/v1/messages", {"x-api-key": SECRETS[1], "anthropic-version": "2023-06-01"},
     ANTHROPIC_BODY, "/v1/messages", "api.anthropic.com", ("x-api-key", SECRETS[1])),
    ("gemini", "/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent", {"x-goog-api-key": SECRETS[2]},
     GEMINI_BODY, "/v1beta/models/gemini-2.0-flash:generateContent", "generativelanguage.googleapis.com",
     ("x-goog-api-key", SECRETS[2])),
    ("local", "/v1/local/chat/completions", {}, OPENAI_BODY, "/v1/chat/completions", "localhost", None),
]


def run_main(edge):
    @test("an allowed call per provider reaches the right upstream path, host and credential over verified TLS, "
          "with no X-Archestra-* header")
    def _():
        for prov, path, hdrs, body, up_path, up_host, cred in CALLS:
            h = dict(hdrs, **{"X-Archestra-Agent-Id": "agent-7", "x-archestra-meta": "a/b/c"})
            st, rh, data = edge.call("POST", path, body, h, tls=True)
            check(st == 200, f"{prov}: status {st}: {data[:300]!r}")
            e = echo(rh)
            check(e["path"] == up_path, f"{prov}: upstream path {e['path']} != {up_path}")
            check(e["headers"].get("host") == up_host, f"{prov}: upstream host {e['headers'].get('host')}")
            if cred:
                check(e["headers"].get(cred[0]) == cred[1], f"{prov}: credential header {cred[0]} not passed as sent")
            leaked = [k for k in e["headers"] if k.startswith("x-archestra")]
            check(not leaked, f"{prov}: X-Archestra headers reached the upstream: {leaked}")
            json.loads(data)
        reqs = edge.mock_requests()[-3:]
        sni = [r.get("sni") for r in reqs]
        check(all(r.get("tls") for r in reqs), "the upstream leg was not TLS")
        check(sni == ["api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"], f"SNI {sni}")

    @test("plain HTTP listener routes too, and a Gemini ?key= credential passes in the query")
    def _():
        st, rh, data = edge.call("POST", f"/v1/gemini/v1beta/models/g:generateContent?key={SECRETS[3]}",
                                 GEMINI_BODY, tls=False)
        check(st == 200, f"status {st} {data[:200]!r}")
        e = echo(rh)
        check(e["query"] == "key=" + SECRETS[3], f"query upstream: {e['query']}")

    @test("SSE streaming passes through chunk by chunk (first event long before the last)")
    def _():
        c = edge.conn(tls=True, timeout=15)
        body = dict(OPENAI_BODY, stream=True, stream_options={"include_usage": True})
        c.request("POST", "/v1/openai/chat/completions", body=json.dumps(body),
                  headers={"Authorization": "Bearer " + SECRETS[0], "Content-Type": "application/json",
                           "x-mock-chunk-delay-ms": "150"})
        r = c.getresponse()
        check(r.status == 200, f"status {r.status}")
        check(r.getheader("content-type", "").startswith("text/event-stream"), "not an event stream")
        t0 = time.monotonic()
        first = r.read1(65536)
        t_first = time.monotonic() - t0
        rest = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            rest += chunk
        t_all = time.monotonic() - t0
        c.close()
        events = [x for x in (first + rest).split(b"\n\n") if x.strip()]
        check(len(events) >= 4 and events[-1].strip() == b"data: [DONE]", f"events: {events[-2:]}")
        # The mock sleeps 150 ms between events: buffered, the first would come with the last.
        check(t_all - t_first >= 0.3, f"first event at {t_first:.3f}s, stream ended at {t_all:.3f}s")

    @test("a denied call gets the provider-shaped error and never reaches the upstream")
    def _():
        before = len(edge.mock_requests())
        for prov, path, _, body, *_ in CALLS[:3]:
            st, rh, data = edge.call("POST", path, body, {"Content-Type": "application/json"})
            check(st == 401, f"{prov}: status {st}")
            check(rh.get("content-type", "").startswith("application/json"), f"{prov}: content-type")
            j = json.loads(data)
            if prov == "anthropic":
                check(j["type"] == "error" and j["error"]["type"] == "authentication_error", f"{j}")
            elif prov == "gemini":
                check(j["error"]["code"] == 401 and j["error"]["status"] == "UNAUTHENTICATED", f"{j}")
            else:
                check(j["error"]["type"] == "authentication_error" and j["error"]["code"] == "missing_credential",
                      f"{j}")
        after = len(edge.mock_requests())
        check(after == before, f"{after - before} denied call(s) reached the upstream")

    @test("an unknown provider prefix gets 404 in OpenAI's shape")
    def _():
        before = len(edge.mock_requests())
        st, _, data = edge.call("POST", "/v1/nowhere/chat/completions", OPENAI_BODY,
                                {"Authorization": "Bearer x"})
        check(st == 404, f"status {st}")
        j = json.loads(data)
        check(j["error"]["code"] == "unknown_provider" and "/v1/openai" in j["error"]["message"], f"{j}")
        check(len(edge.mock_requests()) == before, "reached the upstream")

    @test("a body larger than tune.bufsize gets the truncation policy: 413 naming tune.bufsize")
    def _():
        before = len(edge.mock_requests())
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 400000}]}
        # read while sending, as curl does: HAProxy answers before the body is all in
        st, _, data = edge.call_early("POST", "/v1/openai/chat/completions", big,
                                      {"Authorization": "Bearer " + SECRETS[0]})
        check(st == 413, f"status {st}: {data[:300]!r}")
        check(b"tune.bufsize" in data, f"{data[:300]!r}")
        check(len(edge.mock_requests()) == before, "reached the upstream")

    @test("a 200 KB prompt (under tune.bufsize) is inspected whole and allowed")
    def _():
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "y" * 200000}]}
        st, rh, data = edge.call("POST", "/v1/openai/chat/completions", big, {"Authorization": "Bearer " + SECRETS[0]})
        check(st == 200, f"status {st}: {data[:300]!r}")
        check(echo(rh)["body_len"] == len(json.dumps(big)), "body changed on the way")

    @test("HAProxy's log line records provider, verdict and reason for allowed and denied calls")
    def _():
        time.sleep(0.3)
        log = edge.log("haproxy")
        check("provider=openai" in log and "verdict=allow reason=allowed" in log, log[-1500:])
        check("verdict=deny reason=missing_credential" in log, log[-1500:])
        check("res_verdict=allow" in log, "with inspect_responses, the response message was not answered")

    @test("killing every agent gives 503 (fail-closed) in each provider's shape")
    def _():
        for i in range(len(edge.agent_ports)):
            edge.stop_agent(i)
        before = len(edge.mock_requests())
        for prov, path, hdrs, body, *_ in CALLS[:3]:
            st, _, data = edge.call("POST", path, body, hdrs)
            check(st == 503, f"{prov}: status {st} {data[:200]!r}")
            j = json.loads(data)
            ok = {"anthropic": lambda: j["error"]["type"] == "overloaded_error",
                  "gemini": lambda: j["error"]["status"] == "UNAVAILABLE",
                  "openai": lambda: j["error"]["code"] == "agent_unavailable"}[prov]()
            check(ok, f"{prov}: {j}")
        check(len(edge.mock_requests()) == before, "a call reached the upstream with no agent")

    @test("restarting the agents recovers without restarting HAProxy")
    def _():
        for i in range(len(edge.agent_ports)):
            edge.start_agent(i)
        check(edge.wait_agents_up(20), "no verdict 20 s after the agents came back")
        st, _, _ = edge.call("POST", CALLS[0][1], CALLS[0][3], CALLS[0][2])
        check(st == 200, f"status {st}")


def run_fail_open():
    with Edge(AGENT, fail_open=True) as edge:
        @test("with ARCHESTRA_FAIL_OPEN and no agent, calls pass, routed by prefix, query kept")
        def _():
            for i in range(len(edge.agent_ports)):
                edge.stop_agent(i)
            for prov, path, hdrs, body, up_path, up_host, _ in CALLS[:3]:
                st, rh, data = edge.call("POST", path, body, hdrs)
                check(st == 200, f"{prov}: status {st} {data[:200]!r}")
                e = echo(rh)
                check(e["path"] == up_path and e["headers"]["host"] == up_host, f"{prov}: {e['path']} {e['headers'].get('host')}")
            # set-pathq takes path and query from txn.arch.upstream_path: fail-open keeps the query
            st, rh, _ = edge.call("POST", "/v1/gemini/v1beta/models/g:streamGenerateContent?alt=sse", CALLS[2][3],
                                  CALLS[2][2])
            e = echo(rh) if st == 200 else {}
            check(e.get("path") == "/v1beta/models/g:streamGenerateContent" and e.get("query") == "alt=sse",
                  f"fail-open with a query: {st} {e.get('path')} {e.get('query')}")
            time.sleep(0.3)
            check("reason=agent_unavailable_fail_open" in edge.log("haproxy"), "log does not say fail-open")

        @test("without inspect_responses (the default) responses are not sent to the agent")
        def _():
            for i in range(len(edge.agent_ports)):
                edge.start_agent(i)
            check(edge.wait_agents_up(20), "agents did not come back")
            st, _, _ = edge.call("POST", CALLS[0][1], CALLS[0][3], CALLS[0][2])
            check(st == 200, f"status {st}")
            time.sleep(0.3)
            last = [l for l in edge.log("haproxy").splitlines() if "verdict=allow reason=allowed" in l]
            check(last and "res_verdict=-" in last[-1], f"last allowed call: {last[-1:]}")


leak_logs = []


def main():
    try:
        with Edge(AGENT, agent_config={"inspect_responses": True}) as edge:
            run_main(edge)
            leak_logs.append(edge.log("haproxy") + "".join(edge.log(n) for n in list(edge.logs) if n.startswith("agent")))
        run_fail_open()
        joined = "".join(leak_logs)
        leaked = [s for s in SECRETS if s in joined]
        record(not leaked, "no API key appears in HAProxy's or the agents' logs", f"leaked: {leaked}")
    except Exception:
        record(False, "the edge starts (mock, agents, HAProxy)", traceback.format_exc())
    return report()


if __name__ == "__main__":
    sys.exit(main())
