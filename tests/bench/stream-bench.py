#!/usr/bin/env python3
"""Streams through the edge vs straight to the provider, side by side in one run: time to
the first event and the gaps between events, for an OpenAI text stream the client asked
usage for (the Lua filter only reads it), one it did not (the gateway asks for usage,
holds each event only until it is whole, and removes the usage-only one), and a tool-call
stream the policy checks (held whole, then sent: its first event comes when the model is
done). The mock streams
20 events 20 ms apart over TLS; both paths are measured in alternating rounds on the same
machine, and the report is medians of the per-stream differences, in milliseconds.
usage: stream-bench.py path/to/archestra-spoa [streams per mode]"""
import http.client
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "e2e"), os.path.join(HERE, "..")]
from edge import Edge  # noqa: E402

AGENT = sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 30
BODY = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "Count to twenty"}]}
HDRS = {"Authorization": "Bearer sk-bench-0123456789abcdef0123", "Content-Type": "application/json",
        "x-mock-chunk-delay-ms": "20"}


def one(conn, path, body):
    """(time to the first data event, [gaps between data events]) in ms, on an open connection."""
    t0 = time.perf_counter()
    conn.request("POST", path, body=json.dumps(body), headers=HDRS)
    r = conn.getresponse()
    ts = []
    while True:
        line = r.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            ts.append((time.perf_counter() - t0) * 1000)
    if r.status != 200 or len(ts) < 5:
        raise RuntimeError(f"stream failed: {r.status} {len(ts)} events")
    return ts[0], [b - a for a, b in zip(ts, ts[1:])]


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": n, "parameters": SCHEMA}} for n in ("lookup_weather", "send_email")]


def main():
    tmp = tempfile.mkdtemp(prefix="arch-stream-bench-")
    pfile = os.path.join(tmp, "policy.json")
    with open(pfile, "w") as f:  # send_email offered: the stream is held; the mock calls lookup_weather
        json.dump({"rules": [{"id": "no-mail", "tool_calls": [{"name": "send_email"}]}]}, f)
    with Edge(AGENT, agent_config={"policy_file": pfile}) as edge:
        def edge_conn():
            return http.client.HTTPSConnection("localhost", edge.https_port, timeout=20, context=edge.client_ctx())

        def direct_conn():
            return http.client.HTTPSConnection("127.0.0.1", edge.mock_port, timeout=20, context=edge._mock_ctx())

        print(f"== streams: {N} per mode, 20 events 20 ms apart, edge (HAProxy + agent + Lua filter) vs "
              "the mock directly, alternating, keep-alive")
        for mode, body in (("client asked usage (read only)", dict(BODY, stream_options={"include_usage": True})),
                           ("gateway asks usage (events whole, usage event removed)", BODY),
                           ("tool-call stream the policy checks (held whole)",
                            dict(BODY, tools=TOOLS, stream_options={"include_usage": True}))):
            ec, dc = edge_conn(), direct_conn()
            one(ec, "/v1/openai/chat/completions", body)  # warm both connections
            one(dc, "/v1/chat/completions", body)
            dttft, dgap, ettft, egap = [], [], [], []
            for _ in range(N):
                t, g = one(ec, "/v1/openai/chat/completions", body)
                ettft.append(t)
                egap.extend(g)
                t, g = one(dc, "/v1/chat/completions", body)
                dttft.append(t)
                dgap.extend(g)
            ec.close()
            dc.close()
            m = statistics.median
            print(f"{mode}: time to first event median {m(ettft):.2f} ms through the edge vs {m(dttft):.2f} ms "
                  f"direct (+{m(ettft) - m(dttft):.2f} ms); gap between events median {m(egap):.2f} vs "
                  f"{m(dgap):.2f} ms (+{m(egap) - m(dgap):.3f} ms), p99 {sorted(egap)[int(len(egap) * .99)]:.2f} vs "
                  f"{sorted(dgap)[int(len(dgap) * .99)]:.2f} ms")


if __name__ == "__main__":
    main()
