#!/usr/bin/env python3
"""End to end: HAProxy throttles failed authentication (the agent's 401s) per client address
and per (address, credential) with its own stick tables, answering 429 in the provider's
shape before the agent is asked; successful calls never count; the tables hold no
credential; two HAProxy nodes joined by haproxy-cfg/peers.cfg share the counts. Small
limits through the environment knobs. TAP output.
usage: test_throttle.py path/to/archestra-spoa"""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import HAPROXY, TOP, Edge  # noqa: E402
from pylib.ports import free_port  # noqa: E402
from pylib.tap import check, eq, record, report, run  # noqa: E402
from pylib.wait import poll  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
PER_CRED, PER_IP = 3, 5
REAL_OPENAI = "sk-real-openai-throttle-51c2"
DIRECT = "sk-direct-throttle-7e0b"  # a direct provider key: the agent allows it
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
OPENAI = "/v1/openai/chat/completions"
ANTHROPIC = "/v1/anthropic/v1/messages"
GEMINI = "/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent"


def bad_key(tag):
    """A well-formed virtual key nobody issued: the agent answers 401 virtual_key_unknown."""
    return f"arch_vk_{tag:0<12}_" + (tag * 32)[:32]


class ThrottleEdge(Edge):
    """The edge with small limits, a Prometheus endpoint on each agent (to count the
    decisions it makes), and optionally haproxy-cfg/peers.cfg as node `name`."""

    def __init__(self, *a, peers_cfg=None, name=None, **kw):
        super().__init__(*a, agent_metrics=True, **kw)
        self.name = name
        if peers_cfg:
            self.extra_cfgs = (peers_cfg,)

    def haproxy_env(self):
        env = super().haproxy_env()
        env.update(ARCHESTRA_AUTH_FAIL_PER_IP=str(PER_IP), ARCHESTRA_AUTH_FAIL_PER_CRED=str(PER_CRED))
        if self.extra_cfgs:
            env.update(ARCHESTRA_PEERS="archestra", ARCHESTRA_PEER_NAME=self.name)
        return env

    def decisions(self):
        """Requests the agents decided, from their /metrics."""
        n = 0
        for port in self.metrics_ports:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                c.request("GET", "/metrics")
                text = c.getresponse().read().decode()
            finally:
                c.close()
            m = re.search(r'^spoa_decision_time_seconds_count\{message="req"\} (\d+)', text, re.M)
            n += int(m.group(1)) if m else 0
        return n


def table(cmd, name):
    """{key: gpc0_rate} of one stick table, through a stats socket command function."""
    out = cmd(f"show table {name}")
    check(f"table: {name}" in out, f"show table {name}: {out[:300]!r}")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"key=(\S+) .*?gpc0_rate\(60000\)=(\d+)", out)}


def ip_count(cmd):
    return table(cmd, "archestra-auth-ip").get("::ffff:127.0.0.1", 0)


def call(edge, path, headers, tls=False, body=BODY):
    st, rh, data = edge.call("POST", path, body, headers, tls=tls)
    try:
        j = json.loads(data)
    except ValueError:
        j = None
    return st, rh, j


def throttled(st, rh, j, shape):
    check(st == 429, f"status {st}, want 429: {j}")
    eq(rh.get("retry-after"), "60", "Retry-After")
    check(rh.get("content-type", "").startswith("application/json"), f"content-type {rh.get('content-type')}")
    if shape == "anthropic":
        check(j["type"] == "error" and j["error"]["type"] == "rate_limit_error"
              and "failed authentications" in j["error"]["message"], f"anthropic shape: {j}")
    elif shape == "gemini":
        check(j["error"]["code"] == 429 and j["error"]["status"] == "RESOURCE_EXHAUSTED", f"gemini shape: {j}")
    else:
        check(j["error"]["type"] == "rate_limit_error" and j["error"]["code"] == "auth_rate_limited"
              and j["error"]["param"] is None, f"openai shape: {j}")


def refused_401(st, j, what):
    check(st == 401, f"{what}: status {st}, want the agent's 401: {j}")


def single_node(edge, valid_vk):
    secrets = []

    def per_cred():
        b1 = bad_key("a")
        secrets.append(b1)
        before = edge.decisions()
        for i in range(PER_CRED):
            st, _, j = call(edge, OPENAI, {"Authorization": "Bearer " + b1})
            refused_401(st, j, f"bad key, attempt {i + 1}")
            check(j["error"]["code"] == "virtual_key_unknown", f"attempt {i + 1}: {j}")
        got = poll(edge.decisions, lambda n: n >= before + PER_CRED, 5)
        eq(got - before, PER_CRED, "agent decisions for the refused attempts")
        # the same credential, in the same place, whatever the provider: throttled, in that
        # provider's shape, over plain HTTP and TLS
        throttled(*call(edge, OPENAI, {"Authorization": "Bearer " + b1}), "openai")
        throttled(*call(edge, ANTHROPIC, {"Authorization": "Bearer " + b1}, tls=True), "anthropic")
        throttled(*call(edge, GEMINI, {"Authorization": "Bearer " + b1}), "gemini")
        state["throttled_at"] = before + PER_CRED
    state = {}
    run(f"{PER_CRED} bad attempts with one credential get the agent's 401s, the next a 429 with Retry-After: 60 "
        "in the shape of the provider the path names (OpenAI, Anthropic, Gemini)", per_cred)

    def no_agent():
        base = state["throttled_at"]
        b1 = secrets[0]
        for path in (OPENAI, ANTHROPIC, GEMINI):
            st, _, _ = call(edge, path, {"Authorization": "Bearer " + b1})
            check(st == 429, f"{path}: {st}")
        # a control call the agent does decide: once it is counted, nothing before it is pending
        st, _, j = call(edge, OPENAI, {"Authorization": "Bearer " + DIRECT})
        check(st == 200, f"control call: {st} {j}")
        got = poll(edge.decisions, lambda n: n >= base + 1, 5)
        eq(got - base, 1, "agent decisions for 6 throttled calls and 1 allowed one")
        log = poll(lambda: edge.log("haproxy"),
                   lambda t: len(re.findall(r" 429 .*reason=auth_rate_limited", t)) >= 6, 5)
        lines = [ln for ln in log.splitlines() if " 429 " in ln and "reason=auth_rate_limited" in ln]
        check(len(lines) >= 6, f"{len(lines)} log lines with reason=auth_rate_limited:\n{log[-1500:]}")
        check(all("spoe_ms=- " in ln or ln.endswith("spoe_ms=-") for ln in lines),
              "a throttled call has an SPOE processing time: " + lines[0])
    run("a throttled call is answered by HAProxy: the agent decides nothing for it (its metrics), and the log "
        "says reason=auth_rate_limited with no SPOE exchange", no_agent)

    def others_served():
        st, _, j = call(edge, OPENAI, {"Authorization": "Bearer " + valid_vk})
        check(st == 200, f"a valid virtual key from the same address: {st} {j}")
        st, _, j = call(edge, ANTHROPIC, {"x-api-key": DIRECT, "anthropic-version": "2023-06-01"},
                        body={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []})
        check(st == 200, f"a valid direct key from the same address: {st} {j}")
        eq(ip_count(edge.haproxy_cmd), PER_CRED, "the address's failures")
    run("after one credential is throttled (address below its limit), valid keys from the same address are "
        "served", others_served)

    def good_never_count():
        before = edge.decisions()
        for i in range(30):
            hdr = {"Authorization": "Bearer " + (valid_vk if i % 2 else DIRECT)}
            st, _, j = call(edge, OPENAI, hdr, tls=bool(i % 3 == 0))
            check(st == 200, f"good call {i}: {st} {j}")
        got = poll(edge.decisions, lambda n: n >= before + 30, 5)
        eq(got - before, 30, "agent decisions for 30 good calls")
        eq(ip_count(edge.haproxy_cmd), PER_CRED, "the address's failures after 30 good calls")
        creds = table(edge.haproxy_cmd, "archestra-auth-cred")
        eq(sorted(creds.values()), [PER_CRED], "the credential table: one entry, the bad key's")
    run("30 successful calls count nothing: the address's count and the credential table are unchanged",
        good_never_count)

    def per_ip():
        left = PER_IP - PER_CRED
        places = [(GEMINI + "?key=" + bad_key("b"), {}, "gemini"),
                  (ANTHROPIC, {"x-api-key": bad_key("c")}, "anthropic"),
                  (GEMINI, {"x-goog-api-key": bad_key("d")}, "gemini"),
                  (OPENAI, {"api-key": bad_key("e")}, "openai")]
        check(left <= len(places), "PER_IP - PER_CRED is more than the credential places here")
        for k in "bcde":
            secrets.append(bad_key(k))
        for path, hdr, _ in places[:left]:
            st, _, j = call(edge, path, hdr)
            refused_401(st, j, f"another credential ({path}, {list(hdr) or 'key='})")
        eq(ip_count(edge.haproxy_cmd), PER_IP, "the address's failures")
        path, hdr, shape = places[left]
        throttled(*call(edge, path, hdr), shape)
        throttled(*call(edge, OPENAI, {"Authorization": "Bearer " + valid_vk}), "openai")
        throttled(*call(edge, GEMINI, {"x-goog-api-key": DIRECT}), "gemini")
    run(f"other credentials from the same address get the agent's 401s up to {PER_IP} failures in all, then every "
        "call from it is a 429 (new bad keys, valid keys too), in the provider's shape", per_ip)

    def no_secret():
        dump = edge.haproxy_cmd("show table archestra-auth-cred") + edge.haproxy_cmd("show table archestra-auth-ip")
        keys = re.findall(r"key=(\S+)", dump)
        check(len(keys) >= 2, f"tables: {dump!r}")
        creds = table(edge.haproxy_cmd, "archestra-auth-cred")
        check(creds and all(re.fullmatch(r"[0-9A-F]{16}", k) for k in creds), f"credential table keys: {list(creds)}")
        dump = re.sub(r"(?m)^0x[0-9a-f]+:", "", dump)  # entries' addresses in HAProxy's memory
        for s in secrets + [valid_vk, DIRECT]:
            forms = [s, s.encode().hex(), s.encode().hex().upper()]
            if s.startswith("arch_vk_"):
                forms += [s[8:20], s[21:]]  # a virtual key's id and secret
            for form in forms:
                check(form not in dump, f"the table dump holds {form!r} (of a credential)")
    run("the tables hold addresses and 64-bit hashes: no credential, id, secret or its hex in `show table`", no_secret)


def peers_pair(valid_vk, cfg, tmp):
    pa, pb = free_port(), free_port()
    text = open(os.path.join(TOP, "haproxy-cfg", "peers.cfg")).read()
    lines = re.findall(r"^    peer .*$", text, re.M)
    check(len(lines) >= 2, "haproxy-cfg/peers.cfg has no peer lines to adapt")
    text = text.replace(lines[0] + "\n", f"    peer a 127.0.0.1:{pa}\n    peer b 127.0.0.1:{pb}\n")
    for ln in lines[1:]:
        text = text.replace(ln + "\n", "")
    peers_cfg = os.path.join(tmp, "peers.cfg")
    with open(peers_cfg, "w") as f:
        f.write(text)
    # Both nodes fail open (ARCHESTRA_FAIL_OPEN): a call the agent is not asked about must still
    # be answered 429, never routed by prefix uninspected.
    with ThrottleEdge(AGENT, agent_config=cfg, peers_cfg=peers_cfg, name="a", fail_open=True) as a:
        # node b: a second HAProxy with the same files and agents, its own ports
        b_http, b_https = free_port(), free_port()
        env = a.haproxy_env()
        b_sock = os.path.join(a.tmp, "haproxy-b.sock")
        env.update(ARCHESTRA_HTTP_BIND=f"127.0.0.1:{b_http}", ARCHESTRA_HTTPS_BIND=f"127.0.0.1:{b_https}",
                   ARCHESTRA_STATS_SOCKET=b_sock, ARCHESTRA_RELAY_SOCK=os.path.join(a.tmp, "relay-b.sock"),
                   ARCHESTRA_PEER_NAME="b")
        a._start("haproxy-b", [HAPROXY, "-db", "-f", os.path.join(TOP, "haproxy-cfg", "haproxy.cfg"),
                               "-f", a.providers_cfg(), "-f", peers_cfg], env=env, port=b_http)

        class B:  # node b through Edge's client and stats socket helpers
            http_port, https_port, tmp, certs = b_http, b_https, a.tmp, a.certs
            call, conn, client_ctx = Edge.call, Edge.conn, Edge.client_ctx
            haproxy_cmd = Edge.haproxy_cmd

            def stats_socket(self):
                return b_sock
        b = B()

        def up():
            st, _, _ = call(b, OPENAI, {"Authorization": "Bearer " + DIRECT})
            return st
        st = poll(up, lambda s: s == 200, 15)
        check(st == 200, f"node b never served a call: {st}\n{a.log('haproxy-b')[-1500:]}")

        def shared():
            bad = bad_key("p")
            for i in range(PER_CRED):
                st, _, j = call(a, OPENAI, {"Authorization": "Bearer " + bad})
                refused_401(st, j, f"node a, attempt {i + 1}")
            throttled(*call(a, OPENAI, {"Authorization": "Bearer " + bad}), "openai")
            got = poll(lambda: table(b.haproxy_cmd, "archestra-auth-cred"), lambda t: PER_CRED in t.values(), 10)
            check(PER_CRED in got.values(), f"node b never learned the count: {got}\n"
                  + a.log("haproxy-b")[-1500:])
            throttled(*call(b, ANTHROPIC, {"Authorization": "Bearer " + bad}, tls=True), "anthropic")
            st, _, j = call(b, OPENAI, {"Authorization": "Bearer " + valid_vk})
            check(st == 200, f"node b, a valid key: {st} {j}")
            # the address's count travels too: failures on b add to what a sent (once b has it:
            # the last writer's count wins)
            got = poll(lambda: ip_count(b.haproxy_cmd), lambda n: n >= PER_CRED, 10)
            eq(got, PER_CRED, "node b's count of the address, learned from node a")
            for k in "qr"[:PER_IP - PER_CRED]:
                st, _, j = call(b, OPENAI, {"x-api-key": bad_key(k)})
                refused_401(st, j, "node b, another bad key")
            got = poll(lambda: ip_count(a.haproxy_cmd), lambda n: n >= PER_IP, 10)
            eq(got, PER_IP, "node a's count of the address after node b's failures")
            throttled(*call(a, GEMINI, {"x-goog-api-key": DIRECT}), "gemini")
        run("two HAProxy nodes joined by peers.cfg (failing open): failures on node a throttle the credential "
            "on node b, and failures on node b add to node a's count of the address", shared)


def main():
    tmp = tempfile.mkdtemp(prefix="arch-throttle-")
    keyfile = os.path.join(tmp, "keys.json")
    r = subprocess.run([AGENT, "keys", "new", "--file", keyfile, "--owner", "throttle"], capture_output=True,
                       text=True, timeout=10)
    valid_vk = r.stdout.strip()
    os.environ["ARCH_THROTTLE_OPENAI_KEY"] = REAL_OPENAI
    cfg = {"keys_file": keyfile, "provider_keys": {"openai": {"env": "ARCH_THROTTLE_OPENAI_KEY"}}}
    try:
        check(r.returncode == 0 and valid_vk.startswith("arch_vk_"), f"keys new: {r.stderr}")
        with ThrottleEdge(AGENT, agent_config=cfg) as edge:
            single_node(edge, valid_vk)
    except Exception:
        record(False, "one node: the edge starts with small limits", traceback.format_exc())
    try:
        peers_pair(valid_vk, cfg, tmp)
    except Exception:
        record(False, "two nodes with peers.cfg start", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report()


if __name__ == "__main__":
    sys.exit(main())
