#!/usr/bin/env python3
"""End to end: identity headers, HAProxy's log line, and the statsd metrics a UDP
listener receives for an allowed, a denied and a streamed call; then the same with
no collector listening; then a real statsd daemon (npm `statsd`) aggregating them.
TAP output. usage: test_metrics.py path/to/archestra-spoa"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import TOP, Edge, echo  # noqa: E402
from pylib.ports import free_port  # noqa: E402
from pylib.tap import check, record, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
KEY = "sk-metrics-e2e-5d2f"


class Udp:
    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.datagrams = []

    def drain(self, seconds=0.6):
        end = time.time() + seconds
        while time.time() < end:
            try:
                self.datagrams.append(self.s.recv(65535).decode())
            except socket.timeout:
                pass

    def lines(self):
        return [l for d in self.datagrams for l in d.split("\n") if l]


def parse(line):
    """'p.name:v|t|#k:v,k:v' -> (name, value, type, {tags})"""
    m = re.match(r"^([^:|]+):([^|]*)\|([a-z]+)(?:\|#(.*))?$", line)
    check(m, f"not a DogStatsD line: {line!r}")
    tags = dict(t.split(":", 1) for t in m.group(4).split(",")) if m.group(4) else {}
    return m.group(1), m.group(2), m.group(3), tags


def total(found):
    return sum(float(v) for v, _, _ in found)


def find(lines, name, **tags):
    res = []
    for l in lines:
        n, v, t, tg = parse(l)
        if n == "archestra." + name and all(tg.get(k) == str(x) for k, x in tags.items()):
            res.append((v, t, tg))
    return res


BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How many tokens is this?"}]}
PROMPT_TOKENS = len(json.dumps(BODY["messages"])) // 4 + 1   # the mock's formula
HDRS = {"Authorization": "Bearer " + KEY, "X-Archestra-Agent-Id": "agent-7", "X-Archestra-User-Id": "alice",
        "X-Archestra-Meta": "meta-agent/exec-42/sess-9"}


def main_run():
    udp = Udp()
    # The default configuration: tokens, cost and durations come from the meter
    # (HAProxy's end-of-call records), without inspect_responses.
    cfg = {"statsd": {"address": f"127.0.0.1:{udp.port}", "flush_ms": 50, "timer_sample": 1}}
    with Edge(AGENT, agent_config=cfg) as edge:
        udp.drain(0.3)
        udp.datagrams.clear()
        results = {}

        def calls():
            time.sleep(0.2)
            results["log_mark"] = len(edge.log("haproxy"))
            st, rh, data = edge.call("POST", "/v1/openai/chat/completions", BODY, HDRS)
            check(st == 200, f"allowed: {st} {data[:200]!r}")
            results["echo"] = echo(rh)
            st, _, data = edge.call("POST", "/v1/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "messages": []},
                                    {"X-Archestra-Agent-Id": "agent-8"})
            check(st == 401, f"denied: {st}")
            c = edge.conn(tls=True)
            c.request("POST", "/v1/openai/chat/completions",
                      body=json.dumps(dict(BODY, stream=True)),
                      headers=dict(HDRS, **{"Content-Type": "application/json", "X-Archestra-Execution-Id": "exec-43"}))
            r = c.getresponse()
            check(r.status == 200 and b"[DONE]" in r.read(), "streamed call failed")
            c.close()
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                    {"Authorization": "Bearer " + KEY, "X-Archestra-Agent-Id": "bad/agent"})
            check(st == 400, f"invalid header: {st}")
            j = json.loads(data)
            check("X-Archestra-Agent-Id" in j["error"]["message"] and "'/'" in j["error"]["message"], f"{j}")
            check("bad/agent" not in j["error"]["message"], "the message echoes the header value")
            udp.drain(1.0)
        run("calls: allowed 200, denied 401, streamed 200, invalid identity header 400 naming the header", calls)

        def log_line():
            time.sleep(0.2)
            lines = [l for l in edge.log("haproxy")[results["log_mark"]:].splitlines()
                     if "llm_openai" in l and "verdict=allow" in l]
            check(lines, "no HAProxy log line for the allowed call")
            l = lines[0]
            for kv in ("provider=openai", "model=gpt-4o-mini", "agent_id=agent-7", "user_id=alice",
                       "session_id=sess-9", "execution_id=exec-42", "verdict=allow", "reason=allowed"):
                check(kv in l, f"{kv} missing in: {l}")
            check(KEY not in edge.log("haproxy"), "the key is in HAProxy's log")
        run("HAProxy's log line carries provider, model and the identity (individual header over Meta)", log_line)

        def upstream():
            e = results.get("echo") or {}
            check(not [k for k in e.get("headers", {}) if k.startswith("x-archestra")], "X-Archestra reached upstream")
        run("no X-Archestra-* header reaches the upstream", upstream)

        lines = udp.lines()

        def allowed():
            r = find(lines, "llm_requests", provider="openai", model="gpt-4o-mini", verdict="allow",
                     reason="allowed", external_agent_id="agent-7", stream="false")
            check(total(r) == 1 and all(t == "c" for _, t, _ in r), f"llm_requests allowed: {r}\n" + "\n".join(lines))
            tin = find(lines, "llm_tokens_total", provider="openai", model="gpt-4o-mini", external_agent_id="agent-7",
                       type="input")
            tout = find(lines, "llm_tokens_total", provider="openai", model="gpt-4o-mini", type="output")
            # the allowed call and the streamed one (same prompt)
            check(total(tin) == 2 * PROMPT_TOKENS, f"input tokens {tin}, want 2 x {PROMPT_TOKENS}")
            check(total(tout) == 24, f"output tokens {tout}")
            cost = find(lines, "llm_cost_total", provider="openai", model="gpt-4o-mini")
            want = 2 * (PROMPT_TOKENS * 0.15 + 12 * 0.60) / 1e6
            check(abs(total(cost) - want) < 1e-9, f"cost {cost}, want {want}")
            st = find(lines, "llm_upstream_status", provider="openai", status="200")
            check(total(st) == 2, f"upstream status 200 counted {total(st)} times (allowed + streamed)")
            ex = [parse(l) for l in lines if l.startswith("archestra.agent_executions:")]
            check(sorted(v for _, v, t, _ in ex if t == "s") == ["exec-42", "exec-43"], f"executions set: {ex}")
            dur = find(lines, "llm_request_duration", provider="openai")
            check(dur and all(t == "ms" and float(v) > 0 for v, t, _ in dur), f"durations {dur}")
            dt = find(lines, "spoa_decision_time", message="req")
            check(len(dt) == 4 and all(t == "ms" for _, t, _ in dt), f"decision times {dt}")
        run("statsd: the allowed call's requests, tokens (as the mock counted them), cost, status, execution set, "
            "durations", allowed)

        def denied():
            r = find(lines, "llm_requests", provider="anthropic", verdict="deny", reason="missing_credential",
                     external_agent_id="agent-8")
            check(total(r) == 1, f"denied: {r}")
            r = find(lines, "llm_requests", verdict="deny", reason="invalid_identity_header")
            check(total(r) == 1, f"identity refusal: {r}")
            h = find(lines, "spoa_header_rejections", header="X-Archestra-Agent-Id", action="rejected")
            check(total(h) == 1, f"header rejections: {h}")
            check(not find(lines, "llm_tokens_total", provider="anthropic"), "tokens counted for a denied call")
        run("statsd: the denied calls (missing key, invalid identity header) and the header rejection", denied)

        def streamed():
            r = find(lines, "llm_requests", provider="openai", verdict="allow", stream="true")
            check(total(r) == 1, f"streamed: {r}")
            tin = find(lines, "llm_tokens_total", type="input")
            check(len(tin) == 2 and total(tin) == 2 * PROMPT_TOKENS, f"the streamed call's tokens: {tin}")
            ttft = find(lines, "llm_time_to_first_token", provider="openai", model="gpt-4o-mini")
            check(len(ttft) == 1 and ttft[0][1] == "ms", f"time to first token of the stream: {ttft}")
        run("statsd: the streamed call counts as a request with stream:true, with its tokens and its time to "
            "first token", streamed)

        def no_secret():
            blob = "\n".join(udp.datagrams) + edge.log("agent0") + edge.log("agent1")
            check(KEY not in blob, "the key reached metrics or agent logs")
        run("no key in any datagram or agent log", no_secret)

        def datagram_sizes():
            check(all(len(d) <= 1432 for d in udp.datagrams), "a datagram exceeded 1432 bytes")
            check(any("\n" in d for d in udp.datagrams), "metrics were never batched")
        run("datagrams are batched and at most 1432 bytes", datagram_sizes)


def no_collector():
    port = free_port()  # nothing listens there
    cfg = {"inspect_responses": True, "statsd": {"address": f"127.0.0.1:{port}", "flush_ms": 20}}
    with Edge(AGENT, agents=1, agent_config=cfg) as edge:
        def calls():
            for _ in range(30):
                st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY, HDRS, tls=False)
                check(st == 200, f"status {st} with the collector absent")
            time.sleep(0.2)
            check("level=error" not in edge.log("agent0"), edge.log("agent0")[-500:])
        run("with the collector absent, 30 calls all succeed and the agent logs no error", calls)


def real_statsd():
    npm = shutil.which("npm")
    node = shutil.which("node")
    cache = os.path.join(TOP, "build", "npm-statsd")
    mod = os.path.join(cache, "node_modules", "statsd", "stats.js")
    if not os.path.exists(mod):
        if not npm or not node:
            print("# skipped: real statsd daemon: node/npm not installed")
            return
        os.makedirs(cache, exist_ok=True)
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", cache, "statsd@0.9.0"],
                           capture_output=True, text=True, timeout=240)
        if r.returncode or not os.path.exists(mod):
            net = re.search(r"ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|ECONNRESET", r.stderr)
            if net:
                print(f"# skipped: real statsd daemon: the npm registry is unreachable ({net.group(0)})")
                return
            raise RuntimeError("npm install statsd failed: " + r.stderr[-1000:])
    tmp = tempfile.mkdtemp(prefix="arch-statsd-")
    port, mgmt = free_port(), free_port()
    conf = os.path.join(tmp, "config.js")
    with open(conf, "w") as f:
        f.write("{ port: %d, mgmt_port: %d, address: '127.0.0.1', backends: ['./backends/console'], "
                "flushInterval: 1000, deleteIdleStats: true, console: { prettyprint: false } }" % (port, mgmt))
    log = open(os.path.join(tmp, "statsd.log"), "w+")
    d = subprocess.Popen([node, mod, conf], cwd=os.path.dirname(mod), stdout=log, stderr=log)
    try:
        time.sleep(1.0)
        cfg = {"inspect_responses": True,
               "statsd": {"address": f"127.0.0.1:{port}", "tags": "dotted", "flush_ms": 50}}
        with Edge(AGENT, agents=1, agent_config=cfg) as edge:
            def aggregate():
                for i in range(5):
                    st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                         dict(HDRS, **{"X-Archestra-Execution-Id": f"run-{i % 2}"}), tls=False)
                    check(st == 200, f"status {st}")
                end = time.time() + 6
                text = ""
                while time.time() < end:
                    time.sleep(0.5)
                    log.flush()
                    log.seek(0)
                    text = log.read()
                    if re.search(r"archestra\.llm_requests\.[^']*verdict\.allow[^']*'?\s*[:=]\s*5\b", text) and \
                            "agent_executions" in text:
                        break
                check(re.search(r"archestra\.llm_requests\.provider\.openai\.model\.gpt-4o-mini\.verdict\.allow"
                                r"\.reason\.allowed\.external_agent_id\.agent-7\.stream\.false'?\s*[:=]\s*5\b", text),
                      "statsd did not aggregate 5 requests:\n" + text[-1500:])
                m = re.search(r"archestra\.agent_executions[^:=]*'?\s*[:=]\s*\[([^\]]*)\]", text)
                check(m and sorted(re.findall(r"run-\d", m.group(1))) == ["run-0", "run-1"],
                      "the executions set does not hold exactly run-0 and run-1:\n" + text[-1500:])
            run("a real statsd daemon (npm statsd, console backend) aggregates 5 requests and 2 unique executions",
                aggregate)
    finally:
        d.terminate()
        d.wait(5)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    for part in (main_run, no_collector, real_statsd):
        try:
            part()
        except Exception:
            record(False, f"{part.__name__}: the edge starts", traceback.format_exc())
    return report(30)


if __name__ == "__main__":
    sys.exit(main())
