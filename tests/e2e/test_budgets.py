#!/usr/bin/env python3
"""End to end: budgets and rate limits shared by the fleet through a real redis-server.
Two agents behind one HAProxy, the mock provider, one Redis. Each check has its own
scope (agent id), so they do not share counters:
  - a request budget runs out at exactly the right call, calls alternating between agents;
  - a USD budget, spent from the meter's end-of-call records, runs out at the right call;
    its 402 in the OpenAI, Anthropic and Gemini shapes, naming the budget;
  - 2 x 50 concurrent calls against a budget: never fewer allowed than the limit (no
    false refusal from a stale or doubled view), the overshoot within the documented
    bound, and Redis holding exactly the calls that were allowed;
  - rate limits: requests and tokens per minute, 429 with Retry-After;
  - shadow budgets report and do not refuse;
  - hot reload raises a limit under load;
  - `archestra-spoa spend` lists and `spend reset` forgets;
  - Redis killed mid-load: on_store_error deny refuses (503), allow serves, nothing
    hangs, and both recover when Redis returns; Redis slowed (DEBUG SLEEP): decisions
    are not slowed;
  - windows roll: the agents' clock is moved a day on (ARCHESTRA_CLOCK_FILE) and a
    spent day budget serves again, a rate limit after a minute.
TAP output. usage: test_budgets.py path/to/archestra-spoa"""
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
from edge import Edge, drain, statsd_listener  # noqa: E402
from pylib.redis import Redis  # noqa: E402
from pylib.tap import check, eq, report, run  # noqa: E402
from pylib.wait import poll as _poll  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
PRICE = 1000.0   # USD per million tokens, in and out: a call of 21 tokens costs $0.021
MSGS = [{"role": "user", "content": "hi"}]
CALL = {"model": "gpt-4o-mini", "messages": MSGS}   # 9 prompt tokens + 12 completion (the mock)
TOKENS_PER_CALL = 21
BURST_LIMIT = 60


def policy(reload_limit=5):
    def b(id_, agent, **kw):
        return dict({"id": id_, "scope": "agent_id", "when": {"agent_id": agent}}, **kw)
    return {
        "rules": [],
        "budgets": [
            b("seq-req", "seq-req", requests=6, window="day"),
            dict(b("seq-usd", "seq-usd", usd=0.1, window="month", time_zone="Europe/Berlin"), scope="user_id"),
            b("shapes", "shapes", requests=1, window="week"),
            b("burst", "burst", requests=BURST_LIMIT, window="day"),
            b("reload", "reload", requests=reload_limit, window="day"),
            b("shadow", "shadow", requests=1, window="day", shadow=True),
            b("down-deny", "down-deny", requests=100000, window="day", on_store_error="deny"),
            b("down-allow", "down-allow", requests=100000, window="day", on_store_error="allow"),
            b("roll", "roll", requests=2, window="day"),
            b("reset", "reset", requests=2, window="rolling 24h"),
            b("no-usage", "no-usage", tokens=1000000, window="day"),
        ],
        "rate_limits": [
            {"id": "rpm", "scope": "key_id", "when": {"agent_id": "rpm"}, "requests_per_minute": 3},
            {"id": "tpm", "scope": "agent_id", "when": {"agent_id": "tpm"}, "tokens_per_minute": 50},
            {"id": "roll-rpm", "scope": "agent_id", "when": {"agent_id": "roll-rpm"}, "requests_per_minute": 2},
        ],
    }


def poll(fn, timeout):
    """True once fn() is true, within timeout seconds."""
    return bool(_poll(fn, bool, timeout, 0.1))


class Env:
    pass


E = Env()


def call(agent, key="sk-budget-e2e", user=None, path="/v1/openai/chat/completions", body=None, timeout_check=None):
    h = {"Authorization": "Bearer " + key, "X-Archestra-Agent-Id": agent}
    if user:
        h["X-Archestra-User-Id"] = user
    t0 = time.monotonic()
    st, hd, b = E.edge.call("POST", path, body or CALL, headers=h, tls=False)
    took = time.monotonic() - t0
    if timeout_check is not None:
        check(took < timeout_check, f"a call took {took:.2f} s (bound {timeout_check} s)")
    return st, hd, b


def settle():
    """Lets a call's spend reach every agent: the meter's tick, Redis, the other agent's
    refresh (100 ms)."""
    time.sleep(0.35)


def t_requests_exact():
    got = []
    for _ in range(9):
        st, _, _ = call("seq-req")
        got.append(st)
        settle()
    eq(got, [200] * 6 + [402] * 3, "statuses of 9 calls against a budget of 6 requests, across two agents")
    # both agents decided some of them: the budget was shared, not per agent
    keys = E.redis.cmd("KEYS", "archestra:{seq-req:*")
    eq(len(keys), 1, "one Redis key for the scope")
    eq(E.redis.cmd("HGET", keys[0], "r"), "6", "requests counted in Redis")


def t_usd_exact():
    got = []
    for _ in range(7):
        st, _, _ = call("seq-usd", user="alice")
        got.append(st)
        settle()
    # $0.021 a call: after 4 calls $0.084 < $0.10, the 5th is allowed ($0.105), the 6th refused
    eq(got, [200] * 5 + [402] * 2, "statuses against a $0.10 budget at $0.021 a call")
    st, _, body = call("seq-usd", user="bob")
    eq(st, 200, "another user of the same budget is not refused (per-user scope)")
    settle()
    st, hd, body = call("seq-usd", user="alice")
    err = json.loads(body)["error"]
    eq(err["code"], "token_cost_limit_exceeded", "code")
    check("seq-usd" in err["message"] and "$0.10" in err["message"], f"message names the budget: {err}")
    check("bob" not in err["message"] and "0.021" not in err["message"], "no other tenant's figures")
    check(int(hd.get("retry-after", "0")) >= 1, f"Retry-After: {hd}")
    keys = E.redis.cmd("KEYS", "archestra:{seq-usd:*")
    eq(len(keys), 2, "a key per user")
    spent = sorted(int(E.redis.cmd("HGET", k, "u")) for k in keys)
    eq(spent, [21000, 105000], "USD millionths in Redis: bob 1 call, alice 5 calls")
    eq(sorted(int(E.redis.cmd("HGET", k, "t")) for k in keys), [21, 105], "tokens in Redis")
    check(all(":m" in k for k in keys), f"a calendar-month key: {keys}")


def t_shapes():
    st, _, _ = call("shapes")
    eq(st, 200, "first call")
    settle()
    st, hd, b = call("shapes")
    eq(st, 402, "OpenAI path")
    eq(json.loads(b)["error"]["type"], "insufficient_quota", "OpenAI error type")
    st, hd, b = call("shapes", path="/v1/anthropic/v1/messages",
                     body={"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MSGS})
    eq(st, 402, "Anthropic path")
    j = json.loads(b)
    eq((j["type"], j["error"]["type"]), ("error", "billing_error"), "Anthropic shape")
    st, hd, b = call("shapes", path="/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent",
                     body={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    eq(st, 402, "Gemini path")
    eq(json.loads(b)["error"]["status"], "RESOURCE_EXHAUSTED", "Gemini shape")


def t_burst():
    def one(i):
        return call("burst", key=f"sk-burst-{i % 7}")[0]
    with concurrent.futures.ThreadPoolExecutor(100) as ex:
        sts = list(ex.map(one, range(100)))
    ok = sts.count(200)
    eq(sorted(set(sts)), [200, 402] if ok < 100 else [200], "only 200 and 402")
    check(ok >= BURST_LIMIT, f"{ok} allowed of a {BURST_LIMIT}-request budget: a call within budget was refused")
    # README: with N agents, at most the calls the other agents decided in one refresh
    # interval pass over; 2 x 50 concurrent calls bound that by 50.
    check(ok <= BURST_LIMIT + 50, f"{ok} allowed: overshoot beyond the documented bound")
    settle()
    keys = E.redis.cmd("KEYS", "archestra:{burst:*")
    eq(int(E.redis.cmd("HGET", keys[0], "r")), ok, "Redis counts exactly the calls allowed (none twice, none lost)")
    st, _, _ = call("burst")
    eq(st, 402, "spent afterwards")
    print(f"# burst: {ok} of 100 concurrent calls allowed against a budget of {BURST_LIMIT}")


def t_rate_limits():
    got = []
    for _ in range(4):
        got.append(call("rpm", key="sk-rpm-one")[0])
        settle()
    eq(got, [200, 200, 200, 429], "3 requests per minute per key")
    st, hd, b = call("rpm", key="sk-rpm-one")
    ra = int(hd.get("retry-after", "0"))
    check(1 <= ra <= 60, f"Retry-After within the minute: {hd.get('retry-after')}")
    eq(json.loads(b)["error"]["code"], "rate_limit_exceeded", "code")
    eq(call("rpm", key="sk-rpm-two")[0], 200, "another key has its own limit")
    got = []
    for _ in range(4):
        got.append(call("tpm")[0])
        settle()
    eq(got, [200, 200, 200, 429], "50 tokens per minute at 21 tokens a call")


def t_no_usage():
    # A stream told not to report its usage (OpenAI's stream_options.include_usage false):
    # the provider bills it, so the limits are charged what it may have cost: the body as
    # tokens and the output it asked for.
    body = {"model": "gpt-4o-mini", "messages": MSGS, "stream": True, "max_tokens": 100,
            "stream_options": {"include_usage": False}}
    st, hd, b = call("no-usage", body=body)
    eq(st, 200, "the stream is served")
    check(b"usage" not in b.replace(b'"usage":null', b""), "the client got no usage")
    settle()
    keys = E.redis.cmd("KEYS", "archestra:{no-usage:*")
    eq(len(keys), 1, "one key")
    eq(int(E.redis.cmd("HGET", keys[0], "t")), len(json.dumps(body).encode()) + 100,
       "tokens charged: the body's bytes plus max_tokens")
    eq(int(E.redis.cmd("HGET", keys[0], "u")), (len(json.dumps(body).encode()) + 100) * 1000,
       "cost charged at the model's price")


def t_shadow():
    got = [call("shadow")[0] for _ in range(3)]
    eq(got, [200, 200, 200], "a shadow budget does not refuse")
    check(poll(lambda: "shadow" in E.edge.log("haproxy"), 3), "the log names the shadow budget")


def t_reload():
    stop = threading.Event()
    sts = []

    def load():
        while not stop.is_set():
            sts.append(call("reload")[0])
            time.sleep(0.02)
    th = threading.Thread(target=load)
    th.start()
    try:
        check(poll(lambda: 402 in sts, 10), "the budget of 5 ran out under load")
        with open(E.policy_path, "w") as f:
            json.dump(policy(reload_limit=100000), f)
        n = len(sts)
        check(poll(lambda: 200 in sts[n + 5:], 10), "after the reload raised the limit, calls pass again")
    finally:
        stop.set()
        th.join()
    eq(sorted(set(sts)), [200, 402], "only 200 and 402 under load and reload")


def spend_cli(*args):
    return subprocess.run([AGENT, "spend", *args, "--config", E.config_path], capture_output=True, text=True,
                          timeout=20)


def t_spend_cli():
    r = spend_cli()
    eq(r.returncode, 0, f"spend: {r.stderr}")
    check("budget seq-usd" in r.stdout and "alice" in r.stdout and "usd 0.105000/0.10 OVER" in r.stdout,
          f"spend lists alice over the budget:\n{r.stdout}")
    check("budget seq-req" in r.stdout and "requests 6/6 OVER" in r.stdout, f"spend:\n{r.stdout}")
    for _ in range(2):
        eq(call("reset")[0], 200, "reset budget's first calls")
    settle()
    eq(call("reset")[0], 402, "reset budget spent")
    r = spend_cli("reset", "reset", "reset")
    eq(r.returncode, 0, f"spend reset: {r.stderr}")
    check("removed" in r.stdout and "0 keys" not in r.stdout, r.stdout)
    check(poll(lambda: call("reset")[0] == 200, 3), "after spend reset the scope is served again")
    r = spend_cli("reset", "no-such-budget")
    eq(r.returncode, 2, "reset of an unknown budget fails")
    check("no budget" in r.stderr, r.stderr)


def t_store_down():
    eq(call("down-deny")[0], 200, "deny-on-error budget, store up")
    E.redis.kill()
    try:
        # nothing hangs: every call answers promptly, while the store is down
        sts = [call("down-deny", timeout_check=3.0) for _ in range(5)]
        check(poll(lambda: call("down-deny", timeout_check=3.0)[0] == 503, 5), "on_store_error deny: 503")
        st, hd, b = call("down-deny", timeout_check=3.0)
        eq(st, 503, "still down")
        eq(json.loads(b)["error"]["code"], "budget_store_unavailable", "reason")
        check(hd.get("retry-after") == "1", f"Retry-After: {hd}")
        eq([call("down-allow", timeout_check=3.0)[0] for _ in range(5)], [200] * 5, "on_store_error allow: served")
        check(all(s[0] in (200, 503) for s in sts), f"statuses while down: {[s[0] for s in sts]}")
    finally:
        E.redis.start()
    check(poll(lambda: call("down-deny")[0] == 200, 15), "both agents serve again once Redis is back")
    check(poll(lambda: all(call("down-deny")[0] == 200 for _ in range(4)), 15), "every agent recovered")
    log = E.edge.log("agent0") + E.edge.log("agent1")
    check("store_down" in log and "store_up" in log, "the agents logged the outage and the recovery")


def t_store_slow():
    eq(call("down-allow")[0], 200, "before")
    done = threading.Event()

    def sleeper():
        try:
            E.redis.cmd("DEBUG", "SLEEP", "3", timeout=10)
        except Exception as ex:  # noqa: BLE001
            print(f"# DEBUG SLEEP: {ex}")
        done.set()
    th = threading.Thread(target=sleeper)
    th.start()
    time.sleep(0.2)
    sts = []
    try:
        while not done.is_set():
            sts.append(call("down-allow", timeout_check=1.0)[0])
            time.sleep(0.1)
    finally:
        th.join()
    check(len(sts) >= 10, f"{len(sts)} calls made during the 3 s the store slept")
    eq(set(sts), {200}, "served while Redis sleeps, each within 1 s")
    check(poll(lambda: call("down-deny")[0] == 200, 10), "deny-on-error budget serves again after the sleep")


def t_gauges():
    lines = "\n".join(drain(E.statsd)).splitlines()
    used = [ln for ln in lines if ln.startswith("archestra.llm_budget_used") and "budget:seq-usd" in ln]
    limit = [ln for ln in lines if ln.startswith("archestra.llm_budget_limit") and "budget:seq-usd" in ln]
    check(used and limit, f"statsd gauges of spend and limit for seq-usd: {lines[:20]}")
    def value(ln):
        return float(ln.split(":", 1)[1].split("|", 1)[0])
    check(any("scope:alice" in ln and "measure:usd" in ln and abs(value(ln) - 0.105) < 1e-9 for ln in used),
          f"alice's spend ($0.105) as a gauge in dollars: {used}")
    check(all(abs(value(ln) - 0.1) < 1e-9 for ln in limit), f"the limit ($0.10) as a gauge: {limit}")


def t_roll():
    eq([call("roll")[0] for _ in range(2)], [200, 200], "day budget of 2")
    settle()
    eq(call("roll")[0], 402, "spent today")
    got = []
    for _ in range(3):
        got.append(call("roll-rpm")[0])
        settle()
    eq(got, [200, 200, 429], "2 per minute")
    with open(E.clock_file, "w") as f:
        f.write("61\n")
    check(poll(lambda: call("roll-rpm")[0] == 200, 3), "a minute later the rate limit serves again")
    with open(E.clock_file, "w") as f:
        f.write("86461\n")
    check(poll(lambda: call("roll")[0] == 200, 3), "the next day the day budget serves again")


def main():
    with Redis() as r:
        E.redis = r
        tmp = os.environ.get("TMPDIR", "/tmp")
        E.policy_path = os.path.join(tmp, f"arch-budget-policy-{os.getpid()}.json")
        E.clock_file = os.path.join(tmp, f"arch-budget-clock-{os.getpid()}")
        E.config_path = os.path.join(tmp, f"arch-budget-config-{os.getpid()}.json")
        with open(E.clock_file, "w") as f:
            f.write("0\n")
        with open(E.policy_path, "w") as f:
            json.dump(policy(), f)
        E.statsd = statsd_listener()
        cfg = {"policy_file": E.policy_path, "store": {"redis": r.addr},
               "statsd": {"address": f"127.0.0.1:{E.statsd.getsockname()[1]}", "flush_ms": 100},
               "prices": [{"provider": "openai", "model": "gpt-4o-mini*", "input": PRICE, "output": PRICE}]}
        with open(E.config_path, "w") as f:
            json.dump(cfg, f)
        os.environ["ARCHESTRA_CLOCK_FILE"] = E.clock_file
        try:
            with Edge(AGENT, agent_config=cfg) as e:
                E.edge = e
                run("a request budget runs out at the right call across two agents", t_requests_exact)
                run("a USD budget from the meter's records runs out at the right call", t_usd_exact)
                run("402 in each provider's shape", t_shapes)
                run("2 x 50 concurrent calls: no false refusal, bounded overshoot, exact count", t_burst)
                run("rate limits: requests and tokens per minute, 429 with Retry-After", t_rate_limits)
                run("a call whose usage never comes is charged its estimate", t_no_usage)
                run("a shadow budget reports and does not refuse", t_shadow)
                run("hot reload raises a limit under load", t_reload)
                run("spend lists and spend reset forgets", t_spend_cli)
                run("Redis killed mid-load: on_store_error decides, no hang, recovery", t_store_down)
                run("Redis slowed by DEBUG SLEEP: decisions are not slowed", t_store_slow)
                run("statsd gauges of spend against limit", t_gauges)
                run("windows roll with the clock (day budget, per-minute rate limit)", t_roll)
                for n in ("agent0", "agent1"):
                    log = e.log(n)
                    run(f"{n}: no crash or sanitizer report",
                        lambda log=log: check("AddressSanitizer" not in log and "runtime error" not in log, log[-2000:]))
        finally:
            for p in (E.policy_path, E.clock_file, E.config_path):
                try:
                    os.unlink(p)
                except OSError:
                    pass
    return report()


if __name__ == "__main__":
    sys.exit(main())
