#!/usr/bin/env python3
"""HAProxy's JSON log line (ARCHESTRA_LOG_JSON): every call's line is one JSON object
with the text line's fields, values escaped, absent ones "-". TAP output.
usage: test_logjson.py path/to/archestra-spoa"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import Edge  # noqa: E402
from pylib.tap import check, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
FIELDS = ("client", "client_port", "time", "frontend", "backend", "server", "TR", "Tw", "Tc", "Tr", "Ta", "status",
          "bytes", "termination", "id", "provider", "model", "agent_id", "user_id", "session_id", "execution_id",
          "key_id", "verdict", "reason", "shadow", "dlp", "truncated", "res_verdict", "spoe_error", "spoe_retry",
          "spoe_ms")


def main():
    os.environ["ARCHESTRA_LOG_JSON"] = "1"
    with Edge(AGENT) as edge:
        def lines():
            time.sleep(0.3)
            out = []
            for ln in edge.log("haproxy").splitlines():
                if ln.startswith("{"):
                    out.append(json.loads(ln))  # each line must parse whole
            return out

        def allowed_and_denied():
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                 {"Authorization": "Bearer sk-json-1", "X-Archestra-Agent-Id": "bot-1",
                                  "X-Archestra-Run-Id": "run-7"}, tls=False)
            check(st == 200, f"allowed: {st}")
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                 {"X-Archestra-Agent-Id": "bot-2"}, tls=False)
            check(st == 401, f"denied: {st}")
            got = lines()
            ok = [j for j in got if j["agent_id"] == "bot-1"]
            no = [j for j in got if j["agent_id"] == "bot-2"]
            check(ok and no, f"no line for the calls: {got[-3:]}")
            for j in (ok[-1], no[-1]):
                check(set(FIELDS) <= set(j), f"fields missing: {set(FIELDS) - set(j)}")
                check(isinstance(j["status"], int) and isinstance(j["Ta"], int), f"numbers: {j}")
            check(ok[-1]["status"] == 200 and ok[-1]["verdict"] == "allow" and ok[-1]["provider"] == "openai"
                  and ok[-1]["model"] == "gpt-4o-mini" and ok[-1]["execution_id"] == "run-7"
                  and ok[-1]["key_id"].startswith("dk_") and ok[-1]["backend"] == "llm_openai", f"allowed: {ok[-1]}")
            check(no[-1]["status"] == 401 and no[-1]["verdict"] == "deny" and no[-1]["reason"] == "missing_credential"
                  and no[-1]["key_id"] == "-", f"denied: {no[-1]}")
            check("sk-json-1" not in edge.log("haproxy"), "the key is in the log")
        run("ARCHESTRA_LOG_JSON: one JSON object per call with the text line's fields, numbers as numbers, absent "
            "values \"-\", no key", allowed_and_denied)

        def escaped():
            # a value with characters JSON must escape can only come from the agent's own text
            # (identity values are restricted); a model name may hold '/', '+', ':' and '@'
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", dict(BODY, model="org/model+v1:0@x"),
                                 {"Authorization": "Bearer sk-json-2", "X-Archestra-Agent-Id": "bot-3"}, tls=False)
            got = [j for j in lines() if j["agent_id"] == "bot-3"]
            check(got and got[-1]["model"] == "org/model+v1:0@x", f"model round-trips: {got[-1:]}")
        run("values round-trip through the JSON line", escaped)
    return report()


if __name__ == "__main__":
    sys.exit(main())
