#!/usr/bin/env python3
"""Faults under a steady load through the real edge (HAProxy, two agents, the mock
provider): each scenario breaks something while calls flow, and reports calls sent,
calls failed and the worst latency. TAP output; the table goes to stdout as "# " lines
and to build/faults-<haproxy>.md.

usage: faults.py path/to/archestra-spoa [--long]
The short form (make test) runs each fault once or a few times; --long (make faults)
runs them longer and more often. HAPROXY=/path picks the HAProxy binary."""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "e2e"), os.path.join(HERE, "..")]  # edge.py, tests/pylib
from edge import HAPROXY, TOP, Edge  # noqa: E402
from pylib.ports import free_port, wait_port  # noqa: E402
from pylib.tap import check, record, report, run as tap_run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else
                        "spoa/archestra-spoa")
LONG = "--long" in sys.argv
PROCESSING_S = 0.5  # spoe-archestra.conf "timeout processing"
REAL_KEY = "sk-real-faults-3e1d"


def tools(n):
    return [{"type": "function", "function": {
        "name": f"tool_{i}", "description": "Looks something up in the company's records. " * 4,
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50}}, "required": ["query"]}}}
        for i in range(n)]


def turns(n):
    return [{"role": "user" if i % 2 == 0 else "assistant",
             "content": f"Turn {i}: please summarise the ticket history for account {i * 37} and "
                        "list the open actions with their owners. " * 2} for i in range(n)]


# Agent-shaped calls of about 5 KB, one per provider dialect: (path, headers, body, error shape).
def calls(vkey):
    system = "You are a support agent. Answer briefly and cite the ticket numbers. " * 6
    return [
        ("/v1/openai/chat/completions", {"Authorization": "Bearer " + vkey},
         {"model": "gpt-4o-mini", "max_tokens": 400, "tools": tools(4),
          "messages": [{"role": "system", "content": system}] + turns(10)}, "openai"),
        ("/v1/anthropic/v1/messages", {"x-api-key": "sk-ant-direct-faults", "anthropic-version": "2023-06-01"},
         {"model": "claude-sonnet-4-5", "max_tokens": 400, "system": system, "messages": turns(10),
          "tools": [{"name": f"tool_{i}", "description": "Looks things up. " * 4,
                     "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
                    for i in range(4)]}, "anthropic"),
        ("/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent", {"x-goog-api-key": "AIza-direct-faults"},
         {"contents": [{"role": "user", "parts": [{"text": t["content"]}]} for t in turns(10)],
          "systemInstruction": {"parts": [{"text": system}]},
          "generationConfig": {"maxOutputTokens": 400}}, "gemini"),
    ]


def shaped_503(shape, data):
    """The fail-closed answer, in the shape of the provider the path names."""
    try:
        j = json.loads(data)
    except ValueError:
        return False
    if shape == "anthropic":
        return j.get("type") == "error" and j["error"]["type"] == "overloaded_error"
    if shape == "gemini":
        return j["error"]["status"] == "UNAVAILABLE" and j["error"]["code"] == 503
    return j["error"]["code"] == "agent_unavailable"


class Load:
    """Steady calls through HAProxy's plain listener from keep-alive connections, as an
    SDK makes them. A call on a reused connection that the server closed before any
    answer (HAProxy closes idle connections when it reloads) is sent again on a new
    connection, as HTTP clients do for a stale keep-alive connection; such resends are
    counted apart, never hidden: a call that got an answer is never repeated."""

    def __init__(self, edge, vkey, conns=6, rate=150.0):
        self.edge, self.calls, self.conns, self.rate = edge, calls(vkey), conns, rate
        self.bodies = [json.dumps(b).encode() for _, _, b, _ in self.calls]
        self.results = []  # (t0, seconds, status, shape, body head)
        self.resends = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        self.t0 = time.monotonic()
        for i in range(self.conns):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        return Stats(self.results, self.resends)

    def _connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.edge.http_port, timeout=10)

    def _run(self, i):
        path, hdrs, _, shape = self.calls[i % len(self.calls)]
        body = self.bodies[i % len(self.calls)]
        hdrs = dict(hdrs, **{"Content-Type": "application/json", "X-Archestra-Agent-Id": f"faults-{i}"})
        period = self.conns / self.rate
        nxt = time.monotonic() + random.random() * period
        c, used = self._connect(), False
        while not self.stopping.is_set():
            wait = nxt - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            nxt = max(nxt + period, time.monotonic() - period)
            t0 = time.monotonic()
            status, data = 0, b""
            for attempt in (0, 1):
                try:
                    c.request("POST", path, body=body, headers=hdrs)
                    r = c.getresponse()
                    data = r.read()
                    status = r.status
                    if r.getheader("connection", "").lower() == "close":
                        c.close()
                        c, used = self._connect(), False
                    else:
                        used = True
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    c.close()
                    stale = used and attempt == 0
                    c, used = self._connect(), False
                    if stale:
                        with self.lock:
                            self.resends += 1
                        continue
                    break
                except (OSError, http.client.HTTPException):
                    c.close()
                    c, used = self._connect(), False
                    break
            with self.lock:
                self.results.append((t0 - self.t0, time.monotonic() - t0, status, shape, data[:400]))
        c.close()


class Stats:
    def __init__(self, results, resends):
        self.results, self.resends = results, resends
        self.sent = len(results)
        self.failed = [r for r in results if r[2] != 200]
        self.worst = max((r[1] for r in results), default=0.0)

    def sample(self):
        return [(round(r[0], 2), round(r[1], 3), r[2], r[4][:120]) for r in self.failed[:5]]


TABLE = []  # rows for the README
ONLY = os.environ.get("FAULTS_ONLY")  # debugging: run the scenarios whose name matches


def run(name, fn):
    if ONLY and not re.search(ONLY, name):
        return
    tap_run(name, fn)


def row(name, st, extra=""):
    TABLE.append((name, st.sent, len(st.failed), st.worst, st.resends, extra))


class LogSink:
    """HAProxy's log lines over UDP syslog (ARCHESTRA_LOG): every worker's, across
    reloads, which stderr does not give in master-worker mode."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.lines, self.stop = [], False
        threading.Thread(target=self._run, daemon=True).start()

    def addr(self):
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def _run(self):
        while not self.stop:
            try:
                self.lines.append(self.sock.recv(65535).decode(errors="replace"))
            except OSError:
                pass

    def relayed(self):
        return [ln for ln in self.lines if " archestra-relay/next " in ln]

    def failures(self):
        """The access log lines of calls HAProxy did not answer 200, and SPOE's own errors."""
        return [ln for ln in self.lines if (" llm " in ln and " 200 " not in ln) or "SPOE" in ln]


def wait_state(edge, server, want, timeout):
    """Seconds until HAProxy reports server's status starting with want, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if edge.agent_states().get(server, "").startswith(want):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def settle(edge):
    """Both agents UP again before the next scenario."""
    for s in ("agent1", "agent2"):
        check(wait_state(edge, s, "UP", 10) is not None, f"{s} not UP before the scenario: {edge.agent_states()}")


def scenario(edge, vkey, name, fault, warm=1.0, after=1.5):
    settle(edge)
    load = Load(edge, vkey).start()
    time.sleep(warm)
    info = fault() or ""
    time.sleep(after)
    st = load.stop()
    row(name, st, info)
    check(st.sent > 50, f"only {st.sent} calls sent")
    check(not st.failed, f"{len(st.failed)} of {st.sent} calls failed: {st.sample()}\nHAProxy: "
          + "\n".join(SINK.failures()[-12:]))
    return st


# -- the scenarios, on an edge whose agents HAProxy reaches directly

def direct_scenarios(edge, vkey, keyfile):
    reps = 3 if LONG else 1

    def kill9():
        out = []
        for _ in range(reps):
            edge.procs["agent1"].kill()
            edge.procs.pop("agent1").wait()
            time.sleep(3 if LONG else 1.5)
            edge.start_agent(1)
            back = wait_state(edge, "agent2", "UP", 5)
            check(back is not None and back <= 2.0, f"the restarted agent was back after {back} s (limit 2 s)")
            out.append(f"{back:.2f}")
            time.sleep(0.5)
        return "back in " + ", ".join(out) + " s"
    run("kill -9 one agent of two, then restart it: no call fails, back within 2 s",
        lambda: scenario(edge, vkey, "kill -9 one agent (of two), restart it", kill9))

    def stop():
        p = edge.procs["agent1"]
        p.send_signal(signal.SIGSTOP)
        out = wait_state(edge, "agent2", "DOWN", 5)
        time.sleep(5 - (out or 0))
        p.send_signal(signal.SIGCONT)
        back = wait_state(edge, "agent2", "UP", 5)
        check(back is not None and back <= 2.0, f"the resumed agent was back after {back} s")
        return f"out in {out:.2f} s, back in {back:.2f} s"
    run("SIGSTOP one agent of two for 5 s: no call fails",
        lambda: scenario(edge, vkey, "SIGSTOP one agent (of two) for 5 s", stop))

    def restart():
        out = []
        for i, name in ((0, "agent1"), (1, "agent2")):
            p = edge.procs.pop(f"agent{i}")
            t0 = time.monotonic()
            p.terminate()  # what systemctl restart does: SIGTERM, wait, start
            p.wait(20)
            out.append(f"{time.monotonic() - t0:.2f}")
            edge.start_agent(i)
            check(wait_state(edge, name, "UP", 5) is not None, f"{name} not back")
        return "drained in " + ", ".join(out) + " s"
    run("agent restart (SIGTERM, start), one agent after the other: no call fails",
        lambda: scenario(edge, vkey, "agent restart, one after the other", restart))

    def upgrade():
        new = os.path.join(edge.tmp, "archestra-spoa.new")
        shutil.copy2(AGENT, new)
        for i, name in ((0, "agent1"), (1, "agent2")):
            p = edge.procs.pop(f"agent{i}")
            p.terminate()
            p.wait(20)
            edge.start_agent(i, binary=new)
            check(wait_state(edge, name, "UP", 5) is not None, f"{name} not back")
            check(os.readlink(f"/proc/{edge.procs[f'agent{i}'].pid}/exe") == new, "not the new binary")
        return ""
    run("agent upgrade (new binary, same config), one agent after the other: no call fails",
        lambda: scenario(edge, vkey, "agent upgrade (new binary), one after the other", upgrade))

    def hup():
        n = 0
        for _ in range(10 * reps):
            for i in (0, 1):
                edge.procs[f"agent{i}"].send_signal(signal.SIGHUP)
                n += 1
            time.sleep(0.1)
        return f"{n} reloads"
    run(f"agent config reload x{20 * reps} (SIGHUP) under load: no call fails",
        lambda: scenario(edge, vkey, f"agent config reload x{20 * reps}", hup))

    newest = []

    def keys_rewrite():
        n = 0
        for j in range(5 * reps):
            r = subprocess.run([AGENT, "keys", "new", "--file", keyfile, "--owner", f"extra{j}"],
                               capture_output=True, text=True, timeout=10)
            check(r.returncode == 0, r.stderr)
            newest.append(r.stdout.strip())
            text = open(keyfile).read()
            with open(keyfile, "w") as f:  # in place, not atomic: a reader may see it half written
                f.write(text[: len(text) // 2])
                f.flush()
                time.sleep(0.05)
                f.write(text[len(text) // 2:])
            n += 2
            time.sleep(0.2)
        return f"{n} rewrites"
    def keys_run():
        scenario(edge, vkey, f"keys file rewritten x{10 * reps} (CLI, in place)", keys_rewrite, after=2.5)
        # the last version of the file is the one in force: its newest key works
        st, _, data = edge.call("POST", "/v1/openai/chat/completions", {"model": "gpt-4o-mini", "messages": [
            {"role": "user", "content": "hi"}]}, {"Authorization": "Bearer " + newest[-1]}, tls=False)
        check(st == 200, f"the newest key after the rewrites: {st} {data[:200]!r}")
    run("keys file rewritten under load (CLI and in place): the calls' key keeps working, the newest key works",
        keys_run)

    def reload():
        n = 10 * reps
        before = len(SINK.relayed())
        for _ in range(n):
            edge.reload_haproxy()
            time.sleep(0.5)
        time.sleep(0.5)
        return f"{n} reloads; {len(SINK.relayed()) - before} calls relayed by a stopping worker"
    run(f"HAProxy reload x{10 * reps} (master-worker, SIGUSR2) under load: no call fails",
        lambda: scenario(edge, vkey, f"HAProxy reload x{10 * reps}", reload, after=2.0))

    def alldown_run(how):
        """Every agent killed or stopped for 2 s under load, then back."""
        settle(edge)
        load = Load(edge, vkey).start()
        time.sleep(1.0)
        t_kill = time.monotonic() - load.t0
        for i in (0, 1):
            if how == "killed":
                edge.procs[f"agent{i}"].kill()
                edge.procs.pop(f"agent{i}").wait()
            else:
                edge.procs[f"agent{i}"].send_signal(signal.SIGSTOP)
        time.sleep(2)
        t_up = time.monotonic() - load.t0
        for i in (0, 1):
            if how == "killed":
                edge.start_agent(i)
            else:
                edge.procs[f"agent{i}"].send_signal(signal.SIGCONT)
        time.sleep(3.0)
        st = load.stop()
        bad = [r for r in st.failed if r[2] != 503 or not shaped_503(r[3], r[4])]
        check(not bad, f"{len(bad)} failures not a provider-shaped 503: {bad[:3]}")
        slow = max((r[1] for r in st.failed), default=0.0)
        check(slow <= PROCESSING_S + 0.3, f"a refusal took {slow:.2f} s")
        check(st.failed, "no call failed with every agent down: the test did not test")
        ok_after = [r[0] + r[1] for r in st.results if r[2] == 200 and r[0] >= t_up]
        first = min(ok_after, default=None)
        check(first is not None and first - t_up <= 2.0, f"first allowed call {first} s after the restart at {t_up}")
        early = [r for r in st.failed if r[0] + r[1] < t_kill]
        check(not early, f"calls failed before the agents went down: {early[:3]}")
        TABLE.append((f"all agents {how} for 2 s, then back", st.sent, len(st.failed), st.worst, st.resends,
                      f"every failure a provider-shaped 503 within {slow:.2f} s; "
                      f"served again {first - t_up:.2f} s after the restart"))
    run("all agents down: provider-shaped 503 within the processing timeout; back by itself within 2 s",
        lambda: alldown_run("killed"))
    run("all agents stalled: provider-shaped 503 within the processing timeout; back by itself within 2 s",
        lambda: alldown_run("stalled"))


# -- the scenarios with a link (linkproxy.py) between HAProxy and the agents

def start_proxies(edge):
    procs, controls = [], []
    for i, port in enumerate(edge.agent_ports):
        front = free_port()
        ctl = os.path.join(edge.tmp, f"link{i}.json")
        with open(ctl, "w") as f:
            json.dump({"delay_ms": 0, "reset_pct": 0}, f)
        log = open(os.path.join(edge.tmp, f"link{i}.log"), "w")
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "linkproxy.py"), "--listen", str(front),
                              "--to", f"127.0.0.1:{port}", "--control", ctl, "--seed", str(i + 1)],
                             stdout=log, stderr=log)
        if not wait_port(front, p):
            raise RuntimeError("linkproxy did not start")
        edge.agent_fronts[i] = front
        procs.append(p)
        controls.append(ctl)
    return procs, controls


def set_link(proc, ctl, **kv):
    with open(ctl, "w") as f:
        json.dump(kv, f)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.1)


SINK = None


def main():
    global SINK
    SINK = LogSink()
    os.environ["ARCHESTRA_LOG"] = SINK.addr()
    tmp_keys = os.path.join(TOP, "build", "faults")
    os.makedirs(tmp_keys, exist_ok=True)
    keyfile = os.path.join(tmp_keys, f"keys-{os.getpid()}.json")
    r = subprocess.run([AGENT, "keys", "new", "--file", keyfile, "--owner", "faults"], capture_output=True,
                       text=True, timeout=10)
    if r.returncode:
        raise SystemExit("keys new: " + r.stderr)
    vkey = r.stdout.strip()
    os.environ["ARCH_FAULTS_OPENAI_KEY"] = REAL_KEY
    cfg = {"keys_file": keyfile, "provider_keys": {"openai": {"env": "ARCH_FAULTS_OPENAI_KEY"}}}
    label = re.sub(r"[^0-9.]", "", subprocess.run([HAPROXY, "-v"], capture_output=True, text=True)
                   .stdout.split()[2])[:3]
    try:
        with Edge(AGENT, agent_config=cfg, master_worker=True) as edge:
            direct_scenarios(edge, vkey, keyfile)

        edge = Edge(AGENT, agent_config=cfg, master_worker=True)
        proxies = []
        try:
            proxies, controls = start_proxies(edge)
            with edge:
                def slow():
                    set_link(proxies[0], controls[0], delay_ms=1000 * PROCESSING_S + 300, reset_pct=0)
                    out = wait_state(edge, "agent1", "DOWN", 5)
                    time.sleep(5 if LONG else 3)
                    set_link(proxies[0], controls[0], delay_ms=0, reset_pct=0)
                    check(wait_state(edge, "agent1", "UP", 5) is not None, "the slow agent did not come back")
                    return f"out in {out:.2f} s" if out is not None else "never marked down"
                run("one agent of two slower than the processing timeout: no call fails",
                    lambda: scenario(edge, vkey, f"one agent (of two) answering {1000 * PROCESSING_S + 300:.0f} ms "
                                                 "late", slow))

                def lossy():
                    for p, c in zip(proxies, controls):
                        set_link(p, c, delay_ms=20, reset_pct=1)
                    time.sleep(20 if LONG else 8)
                    for p, c in zip(proxies, controls):
                        set_link(p, c, delay_ms=0, reset_pct=0)
                    return ""
                run("slow and lossy link to both agents (20 ms each way, 1% of frames cut by a reset): no call fails",
                    lambda: scenario(edge, vkey, "link +20 ms each way, 1% of frames reset", lossy))
                for p in proxies:
                    p.terminate()
                    p.wait(5)
                resets = sum(int(m) for i in range(len(proxies)) for m in
                             re.findall(r"(\d+) connections reset", open(os.path.join(edge.tmp, f"link{i}.log")).read()))
                if TABLE and TABLE[-1][0].startswith("link"):
                    TABLE[-1] = TABLE[-1][:5] + (f"{resets} connections reset",)
        finally:
            for p in proxies:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    finally:
        os.unlink(keyfile)

    head = f"| fault (HAProxy {label}) | calls sent | failed | worst latency | resent (stale keep-alive) | notes |"
    lines = [head, "|---|---:|---:|---:|---:|---|"]
    for name, sent, failed, worst, resends, extra in TABLE:
        lines.append(f"| {name} | {sent} | {failed} | {worst * 1000:.0f} ms | {resends} | {extra} |")
    for ln in lines:
        print("# " + ln)
    with open(os.path.join(TOP, "build", f"faults-{label}{'-long' if LONG else ''}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a broken harness is a failure, never a silent pass
        record(False, "fault harness", repr(e))
    sys.exit(report())
