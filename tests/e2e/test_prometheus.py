#!/usr/bin/env python3
"""End to end: the agents' Prometheus endpoints. Through HAProxy to the mock provider: two
allowed calls with usage, a refused one (no credential), one refused by DLP, one with an
invalid identity header, and one whose response is refused for a tool call (its tokens
are counted all the same). The default configuration: no inspect_responses; tokens, cost,
status and durations come from HAProxy's end-of-call records (the meter). Then each agent's /metrics is scraped and checked against
what the mock reported (tokens in its JSON responses, cost at the configured price), and a
real Prometheus (Debian's package, which `make test` installs) scrapes both agents every
second and answers the same sums through its HTTP API. TAP output.
usage: test_prometheus.py path/to/archestra-spoa"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import TOP, Edge  # noqa: E402
from pylib.ports import free_port, wait_port  # noqa: E402
from pylib.tap import check, eq, record, report, run  # noqa: E402
from pylib.wait import poll  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
KEY = "sk-prom-e2e-7c1d"
PRICE_IN, PRICE_OUT = 0.15, 0.60  # USD per million tokens, as configured below
CALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How many tokens is this?"}]}
SCHEMA = {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}}
TOOL_CALL = dict(CALL, messages=[{"role": "user", "content": "tell the customer"}],
                 tools=[{"type": "function", "function": {"name": "notify_customer", "parameters": SCHEMA}}])
POLICY = {"rules": [{"id": "notify-inside-only",
                     "tool_calls": [{"name": "notify_*", "args": [{"path": "to", "not_in": ["*@corp.example"]}]}]}],
          "dlp": {"detectors": {"aws_access_key": "deny"}}}
METRICS = ("llm_requests_total", "spoa_decision_time_seconds", "agent_runs_total", "spoa_header_rejections_total",
           "spoa_truncated_bodies_total", "llm_upstream_status_total", "llm_tokens_total", "llm_cost_total",
           "llm_request_duration_seconds", "spoa_protocol_errors_total", "spoa_connections",
           "policy_shadow_denials_total", "dlp_detections_total", "llm_blocked_tools_total",
           "spoa_metrics_dropped_total", "spoa_meter_records_total", "llm_time_to_first_token_seconds")


class PromEdge(Edge):
    """The edge with a Prometheus endpoint on each agent: one shared config, and a second
    --config per agent holding only its own endpoint (later files override earlier ones)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, agent_metrics=True, **kw)
        self.haproxy_metrics_port = free_port()

    def haproxy_env(self):
        env = super().haproxy_env()
        env["ARCHESTRA_HAPROXY_METRICS"] = f"127.0.0.1:{self.haproxy_metrics_port}"
        return env


def http_get(port, path, timeout=5):
    """(status, headers lower-cased, body text) of one GET on 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse(text):
    """Text format 0.0.4 -> ([(name, {label: value}, float)], {name: type}, {name: help})."""
    samples, types, helps = [], {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, t = line[7:].split(" ", 1)
            types[name] = t
        elif line.startswith("# HELP "):
            name, h = line[7:].split(" ", 1)
            helps[name] = h
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            check(m, f"not a sample line: {line!r}")
            labels = {}
            if m.group(2):
                pos = 0
                for lm in LABEL.finditer(m.group(2)):
                    check(lm.start() == pos, f"bad labels in {line!r}")
                    labels[lm.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                                 lm.group(2))
                    pos = lm.end()
                check(pos == len(m.group(2)), f"bad labels in {line!r}")
            samples.append((m.group(1), labels, float(m.group(3))))
    return samples, types, helps


def total(samples, name, **labels):
    return sum(v for n, lb, v in samples if n == name and all(lb.get(k) == str(x) for k, x in labels.items()))


def series(samples, name, **labels):
    return [(lb, v) for n, lb, v in samples if n == name and all(lb.get(k) == str(x) for k, x in labels.items())]


def mock_usage(edge, body):
    """The usage the mock reports for body, asked of the mock directly (the gateway refuses
    that response, so the client never sees it)."""
    c = http.client.HTTPSConnection("127.0.0.1", edge.mock_port, timeout=5, context=edge._mock_ctx())
    try:
        c.request("POST", "/v1/chat/completions", body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
        return json.loads(c.getresponse().read())["usage"]
    finally:
        c.close()


def cost(usage):
    return (usage["prompt_tokens"] * PRICE_IN + usage["completion_tokens"] * PRICE_OUT) / 1e6


def prom_query(port, q):
    """The instant vector of a PromQL query, as [(labels, float)]."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        j = json.loads(r.read())
    check(j.get("status") == "success", f"{q}: {j}")
    return [(s["metric"], float(s["value"][1])) for s in j["data"]["result"]]


def prom_value(port, q):
    """A query's single value, or None when it has no result yet."""
    res = prom_query(port, q)
    return res[0][1] if len(res) == 1 else None


def main():
    tmp = tempfile.mkdtemp(prefix="arch-prom-")
    pfile = os.path.join(tmp, "policy.json")
    with open(pfile, "w") as f:
        json.dump(POLICY, f)
    cfg = {"policy_file": pfile,
           "prices": [{"provider": "openai", "model": "gpt-4o-mini*", "input": PRICE_IN, "output": PRICE_OUT}]}
    auth = {"Authorization": "Bearer " + KEY}
    want = {}
    try:
        with PromEdge(AGENT, agent_config=cfg) as edge:
            def calls():
                usage = []
                for run_id in ("run-1", "run-2"):
                    st, _, data = edge.call("POST", "/v1/openai/chat/completions", CALL,
                                            dict(auth, **{"X-Archestra-Agent-Id": "agent-7",
                                                          "X-Archestra-Run-Id": run_id}), tls=False)
                    check(st == 200, f"allowed: {st} {data[:200]!r}")
                    usage.append(json.loads(data)["usage"])
                want["allowed"] = usage
                st, _, _ = edge.call("POST", "/v1/anthropic/v1/messages", {"model": "claude-haiku-4-5", "messages": []},
                                     {"X-Archestra-Agent-Id": "agent-8"}, tls=False)
                check(st == 401, f"no credential: {st}")
                secret = dict(CALL, messages=[{"role": "user", "content": "key AKIAIOSFODNN7EXAMPLE"}])
                st, _, _ = edge.call("POST", "/v1/openai/chat/completions", secret, auth, tls=False)
                check(st == 403, f"DLP: {st}")
                st, _, _ = edge.call("POST", "/v1/openai/chat/completions", CALL,
                                     dict(auth, **{"X-Archestra-Agent-Id": "bad/agent"}), tls=False)
                check(st == 400, f"invalid identity header: {st}")
                st, _, data = edge.call("POST", "/v1/openai/chat/completions", TOOL_CALL,
                                        dict(auth, **{"X-Archestra-Agent-Id": "agent-9"}), tls=False)
                j = json.loads(data)
                check(st == 403 and j["error"]["code"] == "notify-inside-only", f"blocked tool call: {st} {j}")
                want["blocked"] = mock_usage(edge, TOOL_CALL)
                st, _, data = edge.call("POST", "/v1/openai/chat/completions",
                                        dict(CALL, stream=True, stream_options={"include_usage": True}),
                                        dict(auth, **{"X-Archestra-Agent-Id": "agent-s"}), tls=False)
                ev = [json.loads(l[6:]) for l in data.decode().splitlines()
                      if l.startswith("data: {")]
                usage = [e["usage"] for e in ev if e.get("usage")]
                check(st == 200 and len(usage) == 1, f"stream: {st} {data[-300:]!r}")
                want["stream"] = usage[0]
            run("calls through HAProxy: 2 allowed with usage, no credential 401, DLP 403, invalid header 400, "
                "a tool call refused 403, a stream", calls)

            def meter():
                # Anyone on the host can send to the meter's port: what is not a record
                # (or tries to say a field twice, or escape a value) is refused, not counted.
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                forged = ('<134>1 - - haproxy 1 - [archestra@32473 p="openai" p="openai" v="allow" '
                          'u_in="999999"] x', "not syslog at all",
                          '<134>1 - - haproxy 1 - [archestra@32473 m="a\\"b" v="allow" u_in="5"]')
                for d in forged:
                    s.sendto(d.encode(), ("127.0.0.1", edge.meter_port))
                s.close()

                def records():
                    s2 = parse(http_get(edge.metrics_ports[0], "/metrics")[2])[0] + \
                        parse(http_get(edge.metrics_ports[1], "/metrics")[2])[0]
                    return (total(s2, "spoa_meter_records_total", outcome="read"),
                            total(s2, "spoa_meter_records_total", outcome="refused"),
                            total(s2, "llm_upstream_status_total", provider="openai", model="gpt-4o-mini",
                                  status="200"))
                # read: the 7 calls, and HAProxy's records of connections that made no call
                # (the harness's TLS probe), which count as no call; and every call that went
                # upstream counted (a record comes when its call ends: wait for all of them
                # before the values below are read).
                got = poll(records, lambda r: r[0] >= 7 and r[1] == 3 and r[2] == 4, timeout=10)
                check(got[0] >= 7 and got[1] == 3 and got[2] == 4,
                      f"records (read, refused, upstream 200s) {got}: want >= 7, 3 and 4")
            run("the meter: HAProxy's end-of-call record of each of the 7 calls is read; forged datagrams "
                "are refused", meter)

            scraped = {}

            def endpoint():
                for i, port in enumerate(edge.metrics_ports):
                    st, hdrs, text = http_get(port, "/metrics")
                    eq(st, 200, f"agent{i} /metrics status")
                    eq(hdrs.get("content-type"), "text/plain; version=0.0.4; charset=utf-8", "content type")
                    eq(int(hdrs.get("content-length", -1)), len(text.encode()), "content length")
                    scraped[i] = text
                    st, _, _ = http_get(port, "/metrics?name[]=llm_tokens_total")
                    eq(st, 200, "/metrics with a query")
                    for path in ("/", "/metrics/", "/api/v1/query"):
                        st, _, _ = http_get(port, path)
                        eq(st, 404, f"GET {path}")
                samples, types, helps = parse(scraped[0])
                for name in METRICS:
                    check(name in types and name in helps, f"no HELP/TYPE for {name}")
                eq(types["llm_request_duration_seconds"], "histogram", "llm_request_duration_seconds type")
                eq(types["spoa_connections"], "gauge", "spoa_connections type")
                eq(types["llm_tokens_total"], "counter", "llm_tokens_total type")
            run("each agent serves GET /metrics (text format 0.0.4, every metric's HELP and TYPE), 404 elsewhere",
                endpoint)

            def values():
                check(len(scraped) == 2 and want.get("allowed") and want.get("blocked"), "no scrape or no calls")
                s = parse(scraped[0])[0] + parse(scraped[1])[0]  # both agents: HAProxy spreads the calls
                a, b = want["allowed"], want["blocked"]
                ok = dict(provider="openai", model="gpt-4o-mini")
                eq(total(s, "llm_requests_total", agent_id="agent-7", verdict="allow", reason="allowed",
                         stream="false", **ok), 2, "allowed requests of agent-7")
                eq(total(s, "llm_requests_total", provider="anthropic", agent_id="agent-8", verdict="deny",
                         reason="missing_credential"), 1, "the refusal without a credential")
                eq(total(s, "llm_requests_total", verdict="deny", reason="dlp_aws_access_key"), 1, "the DLP refusal")
                eq(total(s, "llm_requests_total", verdict="deny", reason="invalid_identity_header"), 1,
                   "the identity refusal")
                eq(total(s, "dlp_detections_total", detector="aws_access_key", action="deny", provider="openai"), 1,
                   "dlp_detections_total")
                eq(total(s, "spoa_header_rejections_total", header="X-Archestra-Agent-Id", action="rejected"), 1,
                   "spoa_header_rejections_total")
                eq(total(s, "llm_tokens_total", agent_id="agent-7", type="input", **ok),
                   sum(u["prompt_tokens"] for u in a), "agent-7 input tokens (the mock's usage)")
                eq(total(s, "llm_tokens_total", agent_id="agent-7", type="output", **ok),
                   sum(u["completion_tokens"] for u in a), "agent-7 output tokens")
                eq(total(s, "llm_tokens_total", agent_id="agent-9", type="input", **ok), b["prompt_tokens"],
                   "the refused tool call's input tokens")
                eq(total(s, "llm_tokens_total", agent_id="agent-9", type="output", **ok), b["completion_tokens"],
                   "the refused tool call's output tokens")
                c7 = total(s, "llm_cost_total", agent_id="agent-7", **ok)
                check(abs(c7 - sum(cost(u) for u in a)) < 1e-12, f"agent-7 cost {c7}, want {sum(cost(u) for u in a)}")
                c9 = total(s, "llm_cost_total", agent_id="agent-9", **ok)
                check(abs(c9 - cost(b)) < 1e-12, f"agent-9 cost {c9}, want {cost(b)}")
                eq(total(s, "llm_blocked_tools_total", agent_id="agent-9", rule="notify-inside-only", **ok), 1,
                   "llm_blocked_tools_total")
                eq(total(s, "agent_runs_total", external_agent_id="agent-7"), 2, "agent-7's runs (one call each)")
                eq(total(s, "llm_upstream_status_total", status="200", **ok), 4, "upstream 200s for gpt-4o-mini")
                st_u = want["stream"]
                eq(total(s, "llm_tokens_total", agent_id="agent-s", type="input", **ok), st_u["prompt_tokens"],
                   "the stream's input tokens")
                eq(total(s, "llm_tokens_total", agent_id="agent-s", type="output", **ok), st_u["completion_tokens"],
                   "the stream's output tokens")
                eq(total(s, "llm_time_to_first_token_seconds_count", **ok), 1, "one stream's time to first token")
                # Histograms: buckets cumulative, +Inf equal to _count, per series.
                dur_count = total(s, "llm_request_duration_seconds_count", **ok)
                eq(dur_count, 4, "llm_request_duration_seconds_count")
                check(total(s, "llm_request_duration_seconds_sum", **ok) > 0, "llm_request_duration_seconds_sum")
                for text in scraped.values():
                    one = parse(text)[0]
                    for lb, cnt in series(one, "spoa_decision_time_seconds_count"):
                        buckets = [(float(bl["le"]), v) for bl, v in series(one, "spoa_decision_time_seconds_bucket",
                                                                            message=lb["message"])]
                        check(buckets == sorted(buckets) and buckets[-1] == (float("inf"), cnt),
                              f"decision time buckets not cumulative up to +Inf = count: {buckets} {cnt}")
                eq(total(s, "spoa_decision_time_seconds_count", message="req"),
                   total(s, "llm_requests_total"), "one request decision timed per llm_requests_total")
                check(total(s, "spoa_connections") >= 1, "no SPOP connection counted")
                eq(total(s, "spoa_metrics_dropped_total"), 0, "dropped metric updates")
                check(KEY not in scraped[0] + scraped[1], "the key is in the metrics")
            run("the series and values: requests by verdict and reason, tokens and cost as the mock reported, "
                "blocked tools, runs, DLP, header rejections, histograms", values)

            real_prometheus(edge, want)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(30)


PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "by", "without", "avg", "max", "min", "count",
                "irate", "topk", "bottomk", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "offset", "bool", "le"}


def promql_metric_names(expr):
    """The metric names a PromQL expression reads: identifiers outside label matchers,
    grouping clauses, ranges and strings, that are not functions or keywords."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", e)
    return {w for w in re.findall(r"(?<![\w$])[a-zA-Z_:][a-zA-Z0-9_:]*", e) if w not in PROMQL_WORDS}


def prom_api(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}")


def real_prometheus(edge, want):
    """Debian's prometheus scrapes both agents every second; its API answers the sums."""
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if not binary:
        record(False, "a real Prometheus scrapes the agents",
               "prometheus is not installed: `make test` installs it (Debian package prometheus)")
        return
    tmp = tempfile.mkdtemp(prefix="arch-prometheus-")
    port = free_port()
    conf = os.path.join(tmp, "prometheus.yml")
    targets = ", ".join(f'"127.0.0.1:{p}"' for p in edge.metrics_ports)
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: archestra-spoa\n"
                f"    static_configs:\n      - targets: [{targets}]\n"
                "  - job_name: haproxy\n"
                f"    static_configs:\n      - targets: [\"127.0.0.1:{edge.haproxy_metrics_port}\"]\n")
    log = open(os.path.join(tmp, "prometheus.log"), "w+")
    p = subprocess.Popen([binary, f"--config.file={conf}", f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                         stdout=log, stderr=log, cwd=tmp)

    def tail():
        log.flush()
        log.seek(0)
        return log.read()[-2000:]

    try:
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:  # refused, or 503 while its storage opens
                return False

        def scrapes():
            check(wait_port(port, p, timeout=30), "prometheus did not start: " + tail())
            check(poll(ready, bool, timeout=30), "prometheus never became ready: " + tail())
            up = poll(lambda: prom_query(port, 'up{job="archestra-spoa"}'),
                      lambda r: len(r) == 2 and all(v == 1 for _, v in r), timeout=30)
            check(len(up) == 2 and all(v == 1 for _, v in up), f"targets not up: {up}\n" + tail())
        run("a real Prometheus (Debian's package) starts and scrapes both agents' endpoints (up == 1)", scrapes)

        def queries():
            a, b = want["allowed"], want["blocked"]

            def settled(q, value, close=None):
                """q's value once it is `value`: a scrape that times out on a busy machine
                marks its target's series stale until the next one, so wait a few scrapes."""
                ok = (lambda v: v is not None and abs(v - value) < close) if close else (lambda v: v == value)
                got = poll(lambda: prom_value(port, q), ok, timeout=20)
                check(ok(got), f"{q} = {got}, want {value}; up: {prom_query(port, 'up')}")

            every = a + [b, want["stream"]]
            settled("sum(llm_tokens_total)", sum(u["prompt_tokens"] + u["completion_tokens"] for u in every))
            settled('sum(llm_tokens_total{agent_id="agent-7",type="input"})', sum(u["prompt_tokens"] for u in a))
            settled('sum(llm_tokens_total{agent_id="agent-7",type="output"})', sum(u["completion_tokens"] for u in a))
            settled("sum(llm_cost_total)", sum(cost(u) for u in every), close=1e-12)
            settled('sum(llm_requests_total{verdict="deny"})', 3)
            settled('sum(llm_blocked_tools_total{rule="notify-inside-only"})', 1)
            settled('sum(agent_runs_total{external_agent_id="agent-7"})', 2)
            settled('sum(llm_request_duration_seconds_count{model="gpt-4o-mini"})', 4)
            by_type = dict((r["type"], v) for r, v in prom_query(port, 'sum by (type) (llm_tokens_total)'))
            check(set(by_type) == {"input", "output"}, f"sum by (type): {by_type}")
            q = prom_value(port, 'histogram_quantile(0.5, sum by (le) (llm_request_duration_seconds_bucket))')
            check(q is not None and 0 < q <= 300, f"median LLM call duration {q}")
        run("its HTTP API (/api/v1/query) returns the expected sums: tokens, tokens by type, cost, denials, "
            "blocked tools, runs, a histogram quantile", queries)

        def dashboard():
            with open(os.path.join(TOP, "observability", "grafana-dashboard.json")) as f:
                d = json.load(f)
            exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
            check(len(d["panels"]) >= 10 and exprs, "the dashboard has no panels")
            up = poll(lambda: prom_query(port, 'up{job="haproxy"}'), lambda r: r and r[0][1] == 1, timeout=20)
            check(up and up[0][1] == 1, f"HAProxy's exporter not scraped: {up}")
            # Error series exist once an error happened: a peer that is not HAProxy.
            with socket.create_connection(("127.0.0.1", edge.agent_ports[0]), timeout=5) as s:
                s.sendall(b"\x00\x00\x00\x05GET /")
                s.settimeout(5)
                try:
                    s.recv(4096)
                except OSError:
                    pass

            def names():
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/label/__name__/values", timeout=5) as r:
                    return set(json.loads(r.read())["data"])
            names = poll(names, lambda n: "spoa_protocol_errors_total" in n, timeout=20)
            used = set()
            for e in exprs:
                for name in promql_metric_names(e):
                    used.add(name)
                    check(name in names, f"the dashboard's query {e!r} names {name!r}, which no target exports")
                q = e.replace("$__rate_interval", "1m").replace("$__range", "5m")
                res = prom_api(port, q)
                check(res.get("status") == "success", f"query {q!r} does not evaluate: {res}")
            for want in ("llm_cost_total", "llm_tokens_total", "llm_requests_total", "llm_blocked_tools_total",
                         "dlp_detections_total", "spoa_decision_time_seconds_bucket",
                         "haproxy_backend_active_servers", "llm_time_to_first_token_seconds_bucket"):
                check(want in used, f"the dashboard shows no {want}")
        run("the Grafana dashboard (observability/grafana-dashboard.json) parses, every query evaluates, and every "
            "series it names exists (agents' and HAProxy's exporters)", dashboard)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        import traceback
        record(False, "the edge starts", traceback.format_exc())
        sys.exit(report(30))
