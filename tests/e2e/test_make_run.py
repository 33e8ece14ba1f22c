#!/usr/bin/env python3
"""`make run` as a new user tries it: start haproxy-cfg/run-local.sh (what make run
calls), run every curl line it prints, check each gives the status its comment
says, then Ctrl-C and check everything stopped. TAP output."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import TOP  # noqa: E402
from pylib.ports import free_port, free_udp_port, port_open  # noqa: E402
from pylib.tap import record, report  # noqa: E402
from pylib.wait import poll  # noqa: E402


def prom(port, q):
    """The result list of an instant query, or None when Prometheus does not answer (yet)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]["result"]
    except (OSError, ValueError, KeyError):
        return None


def main():
    tmp = tempfile.mkdtemp(prefix="arch-run-")
    ports = {k: free_port() for k in ("HTTP_PORT", "HTTPS_PORT", "AGENT1_PORT", "AGENT2_PORT", "MOCK_PORT",
                                         "PLAIN_MOCK_PORT", "PROM_PORT", "AGENT1_METRICS", "AGENT2_METRICS",
                                         "HAPROXY_METRICS", "REDIS_PORT")}
    meter = free_udp_port()
    ready = os.path.join(tmp, "ready")
    env = dict(os.environ, RUN_DIR=os.path.join(tmp, "run"), CERTS=os.path.join(tmp, "certs"),
               RUN_LOCAL_READY_FILE=ready, METER_PORT=str(meter), **{k: str(v) for k, v in ports.items()})
    env.pop("ARCHESTRA_FAIL_OPEN", None)
    log = open(os.path.join(tmp, "stdout"), "w+")
    p = subprocess.Popen(["haproxy-cfg/run-local.sh"], cwd=TOP, env=env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        end = time.time() + 60
        while time.time() < end and not os.path.exists(ready) and p.poll() is None:
            time.sleep(0.1)
        log.flush()
        log.seek(0)
        text = log.read()
        record(os.path.exists(ready), "make run starts mock, agents and HAProxy and prints curl lines", text[-1500:])
        pairs = re.findall(r"^# (\d{3}): (.*)\n(curl .*)$", text, re.M)
        record(len(pairs) >= 6, f"it prints at least 6 annotated curl lines ({len(pairs)})", text[-1500:])
        for want, what, line in pairs:
            r = subprocess.run(["bash", "-c", line + " -o /dev/null -w '%{http_code}' --max-time 10"],
                               capture_output=True, text=True)
            got = r.stdout.strip()[-3:]
            record(got == want, f"printed curl line gives {want} ({what})", f"got {got!r}: {line}\n{r.stderr}")
        # The printed Prometheus queries answer with the calls just made (it scrapes every 5 s).
        queries = re.findall(r"^  ([^:\n]+):\s{2,}(\S.*)$", text, re.M)
        record(len(queries) >= 3 and f"http://127.0.0.1:{ports['PROM_PORT']}" in text,
               f"it prints Prometheus' URL and at least 3 queries ({len(queries)})", text[-1500:])
        for what, q in queries:
            got = poll(lambda: prom(ports["PROM_PORT"], q), lambda r: bool(r), timeout=30)
            record(bool(got), f"the printed query for {what} returns series in the started Prometheus: {q}",
                   f"result: {got}")
        def spend():
            return dict((r["metric"].get("agent_id"), float(r["value"][1]))
                        for r in prom(ports["PROM_PORT"], "sum by (agent_id) (llm_cost_total)") or [])
        by_agent = poll(spend, lambda s: s.get("demo-agent", 0) > 0, timeout=20)
        record(by_agent.get("demo-agent", 0) > 0, "spend by agent counts the printed call of demo-agent",
               f"{by_agent}")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    time.sleep(0.3)
    still = [k for k, v in ports.items() if port_open(v)]
    record(not still, "Ctrl-C stops every process (no port left open)", f"still open: {still}")
    return report(15)


if __name__ == "__main__":
    sys.exit(main())
