#!/usr/bin/env python3
"""make bench, SPOP part. Every compared setup runs as its own agent (2 worker
threads) at the same time, and the load generator visits them in turn, several
rounds: each figure is the median of its rounds, so a noisy neighbour slows all
setups alike instead of skewing one of them. Loopback only, bounded in time.

Knobs (environment): BENCH_ROUNDS (3), BENCH_SECONDS (2 per round), BENCH_CONNS (4),
BENCH_PIPELINE (16), BENCH_BODY (2048), BENCH_BASELINE (another agent binary, e.g. an
older build, run with its default policy beside this one: "baseline" vs "archestra")."""
import json
import os
import socket
import statistics
import subprocess
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests"))
from pylib.ports import free_port, wait_port  # noqa: E402

AGENT = os.path.join(TOP, "spoa", "archestra-spoa")
BENCH = os.path.join(TOP, "build", "spop-bench")
OUT = os.path.join(TOP, "build", "bench")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
SECS = os.environ.get("BENCH_SECONDS", "2")
CONNS = os.environ.get("BENCH_CONNS", "4")
PIPE = os.environ.get("BENCH_PIPELINE", "16")
BODY = os.environ.get("BENCH_BODY", "2048")


agents = []


def start(name, *args, env=None, binary=AGENT):
    port = free_port()
    log = open(os.path.join(OUT, f"agent-{name}.log"), "w")
    p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--threads", "2", "--log-level", "warn", *args],
                         stdout=log, stderr=log, env=env)
    agents.append(p)
    if not wait_port(port, p):
        raise SystemExit(f"agent on {port} did not start")
    return port, p.pid


def cpu_s(pid):
    """User + system CPU seconds the process used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(port, *extra):
    r = subprocess.run([BENCH, "-c", CONNS, "-p", PIPE, "-b", BODY, "-d", SECS, "-w", "0.5", *extra,
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    kv = dict(x.split("=", 1) for x in r.stdout.split() if "=" in x)
    if r.returncode or "decisions_per_sec" not in kv:
        raise SystemExit(f"spop-bench failed: {r.stdout} {r.stderr[-500:]}")
    return kv


def main():
    os.makedirs(OUT, exist_ok=True)
    # A collector that is there but never reads: the agent's send cost without a
    # consumer stealing CPU from the measurement.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    statsd_cfg = os.path.join(OUT, "statsd.json")
    with open(statsd_cfg, "w") as f:
        json.dump({"statsd": {"address": f"127.0.0.1:{sink.getsockname()[1]}"}}, f)
    keys = os.path.join(OUT, "keys.json")
    for p in (keys, keys + ".lock"):
        if os.path.exists(p):
            os.unlink(p)
    vkey = subprocess.run([AGENT, "keys", "new", "--file", keys, "--owner", "bench"], capture_output=True,
                          text=True, check=True).stdout.strip()
    issuer = os.path.join(OUT, "issuer")
    mint = os.path.join(TOP, "tests", "mock", "demo-issuer.py")
    subprocess.run([sys.executable, mint, "init", issuer], check=True)
    jwt = subprocess.run([sys.executable, mint, "token", issuer, "--ttl", "3600"], capture_output=True, text=True,
                         check=True).stdout.strip()
    allow_pol = os.path.join(OUT, "allow-all.json")
    with open(allow_pol, "w") as f:
        json.dump({"rules": []}, f)
    allow_cfg = os.path.join(OUT, "allow-all-cfg.json")
    with open(allow_cfg, "w") as f:
        json.dump({"policy_file": allow_pol}, f)
    auth_cfg = os.path.join(OUT, "auth.json")
    with open(auth_cfg, "w") as f:
        json.dump({"keys_file": keys, "provider_keys": {"openai": {"env": "BENCH_OPENAI_KEY"}},
                   "jwt": {"issuer": "https://demo-issuer.local", "audience": "archestra",
                           "jwks_file": os.path.join(issuer, "jwks.json"), "algorithms": ["RS256"]}}, f)

    # Budgets on: the default policy plus a USD budget per agent, a monthly one per user and
    # a rate limit per key, none reached, counted in a real Redis on loopback.
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", OUT], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agents.append(redis)
    if not wait_port(redis_port, redis):
        raise SystemExit("redis-server did not start (apt-get install redis-server)")
    with open(os.path.join(TOP, "policy", "default.json")) as f:
        bpol = json.load(f)
    bpol["budgets"] = [{"id": "agent-daily", "scope": "agent_id", "usd": 1e6, "window": "day"},
                       {"id": "user-monthly", "scope": "user_id", "usd": 1e6, "tokens": 10**12, "window": "month",
                        "time_zone": "Europe/Berlin"}]
    bpol["rate_limits"] = [{"id": "key-rpm", "scope": "key_id", "requests_per_minute": 10**9}]
    budget_pol = os.path.join(OUT, "budgets.json")
    with open(budget_pol, "w") as f:
        json.dump(bpol, f)
    budget_cfg = os.path.join(OUT, "budgets-cfg.json")
    with open(budget_cfg, "w") as f:
        json.dump({"policy_file": budget_pol, "store": {"redis": f"127.0.0.1:{redis_port}"}}, f)

    try:
        setups = {}
        p, pid = start("archestra")
        setups["archestra"] = (p, pid, [])
        p, pid = start("budgets", "--config", budget_cfg)
        setups["budgets"] = (p, pid, [])
        if os.environ.get("BENCH_BASELINE"):
            p, pid = start("baseline", binary=os.environ["BENCH_BASELINE"])
            setups["baseline"] = (p, pid, [])
        p, pid = start("allow-all", "--config", allow_cfg)  # an empty policy: no rule, no DLP
        setups["allow-all"] = (p, pid, [])
        p, pid = start("ack-only", "--ack-only")
        setups["ack-only"] = (p, pid, [])
        p, pid = start("statsd", "--config", statsd_cfg)
        setups["statsd"] = (p, pid, [])
        p, pid = start("auth", "--config", auth_cfg, env=dict(os.environ, BENCH_OPENAI_KEY="sk-bench-real"))
        setups["direct-key"] = (p, pid, [])
        setups["virtual-key"] = (p, pid, ["-a", "Bearer " + vkey])
        setups["cached-jwt"] = (p, pid, ["-a", "Bearer " + jwt])
        results = {k: [] for k in setups}
        print(f"== SPOP decisions: 2 agent threads, {CONNS} connections x {PIPE} in flight, {BODY}-byte body; "
              f"{ROUNDS} rounds of {SECS}s, setups in turn, medians")
        for r in range(ROUNDS):
            for name, (port, pid, extra) in setups.items():
                c0 = cpu_s(pid)
                kv = bench(port, *extra)
                # CPU per decision is steadier than throughput on a shared machine:
                # it does not care how long the agent waited for a core.
                kv["cpu_us_per_decision"] = 1e6 * (cpu_s(pid) - c0) / max(1, int(kv["acks"]))
                results[name].append(kv)
        med, cpu = {}, {}
        for name, runs in results.items():
            dps = statistics.median(float(k["decisions_per_sec"]) for k in runs)
            p99 = statistics.median(float(k["p99_us"]) for k in runs)
            p50 = statistics.median(float(k["p50_us"]) for k in runs)
            p999 = statistics.median(float(k["p999_us"]) for k in runs)
            med[name] = dps
            cpu[name] = statistics.median(k["cpu_us_per_decision"] for k in runs)
            print(f"{name}: decisions_per_sec={dps:.0f} p50_us={p50:.1f} p99_us={p99:.1f} p999_us={p999:.1f} "
                  f"cpu_us_per_decision={cpu[name]:.2f} "
                  f"rounds={','.join(str(int(float(k['decisions_per_sec']))) for k in runs)}")
        print("== agent memory with 1,000 open connections (and 8 busy ones)")
        port, pid, _ = setups["archestra"]
        kv = bench(port, "-c", "8", "-p", "4", "-i", "1000", "-P", str(pid))
        print(f"memory: agent_rss_kb={kv.get('agent_rss_kb')} agent_hwm_kb={kv.get('agent_hwm_kb')} "
              f"idle_conns={kv.get('idle_conns')}")
        jb = subprocess.run([os.path.join(TOP, "build", "jwt-bench")], capture_output=True, text=True)
        print("jwt-uncached: " + jb.stdout.strip())

        def pct(a, b):
            return f"{100 * med[a] / med[b]:.1f}%"
        print()
        print(f"summary: archestra handler {med['archestra']:.0f} decisions/s, ack-only {med['ack-only']:.0f}: "
              f"handler at {pct('archestra', 'ack-only')} of ack-only")
        print(f"summary: default policy (limits + credential DLP) {med['archestra']:.0f} vs allow-everything "
              f"{med['allow-all']:.0f} decisions/s: {pct('archestra', 'allow-all')} (target >= 75%); CPU per decision "
              f"{cpu['archestra']:.2f} vs {cpu['allow-all']:.2f} us")
        print(f"summary: budgets on (3 limits, Redis on loopback) {med['budgets']:.0f} vs off "
              f"{med['archestra']:.0f} decisions/s: {pct('budgets', 'archestra')} (target >= 90%); CPU per decision "
              f"{cpu['budgets']:.2f} vs {cpu['archestra']:.2f} us")
        print(f"summary: statsd on {med['statsd']:.0f} vs off {med['archestra']:.0f} decisions/s: statsd costs "
              f"{100 - 100 * med['statsd'] / med['archestra']:.1f}% of throughput, "
              f"{100 * cpu['statsd'] / cpu['archestra'] - 100:.1f}% more CPU per decision "
              f"({cpu['statsd']:.2f} vs {cpu['archestra']:.2f} us)")
        print(f"summary: direct key {med['direct-key']:.0f}, virtual key {med['virtual-key']:.0f} "
              f"({pct('virtual-key', 'direct-key')} of direct), cached JWT {med['cached-jwt']:.0f} "
              f"({pct('cached-jwt', 'direct-key')} of direct) decisions/s; CPU per decision "
              f"{cpu['direct-key']:.2f} / {cpu['virtual-key']:.2f} / {cpu['cached-jwt']:.2f} us")
        print(f"summary: agent RSS with 1,008 open connections: {kv.get('agent_rss_kb')} kB")
        if "baseline" in med:
            print(f"summary: this agent {med['archestra']:.0f} vs baseline {med['baseline']:.0f} decisions/s "
                  f"(default policy): {pct('archestra', 'baseline')}; CPU per decision {cpu['archestra']:.2f} vs "
                  f"{cpu['baseline']:.2f} us")
    finally:
        for p in agents:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    sys.exit(main())
