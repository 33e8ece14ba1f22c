#!/usr/bin/env python3
"""End to end: virtual keys through HAProxy, the keys CLI, reloads, and no secret
in any log or metric. TAP output. usage: test_auth.py path/to/archestra-spoa"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import Edge, drain, echo, statsd_listener  # noqa: E402
from pylib.tap import check, record, report, run  # noqa: E402
from pylib.wait import poll  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")
REAL = {"openai": "sk-real-openai-9f8e7d", "anthropic": "sk-ant-real-6c5b4a"}


def keys(*args, keyfile):
    r = subprocess.run([AGENT, "keys", *args, "--file", keyfile], capture_output=True, text=True, timeout=10)
    return r


def new_key(keyfile, *args):
    r = keys("new", *args, keyfile=keyfile)
    check(r.returncode == 0, f"keys new failed: {r.stderr}")
    key = r.stdout.strip()
    check(re.fullmatch(r"arch_vk_[a-z0-9]{12}_[A-Za-z0-9_-]{32}", key), f"bad key format: {key!r}")
    return key, key[8:20]


BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def main_run():
    tmp = tempfile.mkdtemp(prefix="arch-auth-")
    keyfile = os.path.join(tmp, "keys.json")
    secrets = []

    def cli():
        ka, ida = new_key(keyfile, "--name", "support bot", "--owner", "alice", "--providers", "openai",
                          "--models", "gpt-4o*")
        kb, idb = new_key(keyfile, "--name", "any", "--owner", "bob")
        kc, idc = new_key(keyfile, "--owner", "carol")
        kd, idd = new_key(keyfile, "--owner", "dave", "--expires", "1000000000")  # 2001: expired
        r = keys("revoke", idc, keyfile=keyfile)
        check(r.returncode == 0, r.stderr)
        lst = keys("list", keyfile=keyfile)
        check(lst.returncode == 0 and ida in lst.stdout and "support bot" in lst.stdout, lst.stdout)
        for k in (ka, kb, kc, kd):
            check(k not in lst.stdout and k[21:] not in lst.stdout, "list shows a secret")
            check(k not in open(keyfile).read(), "the keys file holds a key")
        check(re.search(idc + r".*yes", lst.stdout), "revoked key not shown as revoked")
        secrets.extend([ka, kb, kc, kd])
        state.update(ka=ka, kb=kb, kc=kc, kd=kd, ida=ida, idb=idb)
    state = {}
    run("keys CLI: new prints a key once and stores only its hash; list shows no secret; revoke", cli)

    def concurrent():
        f = os.path.join(tmp, "race.json")
        procs = [subprocess.Popen([AGENT, "keys", "new", "--file", f, "--owner", f"u{i}"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for i in range(20)]
        got = [p.communicate(timeout=20)[0].strip() for p in procs]
        check(all(p.returncode == 0 for p in procs), "a concurrent keys new failed")
        data = json.load(open(f))
        ids = sorted(k["id"] for k in data["keys"])
        check(len(ids) == 20 and len(set(ids)) == 20, f"{len(ids)} keys in the file after 20 writers")
        check(sorted(k[8:20] for k in got) == ids, "printed keys and stored ids differ")
        check(not [n for n in os.listdir(tmp) if ".tmp." in n], "temporary files left behind")
    run("20 concurrent `keys new` leave a valid file with all 20 keys", concurrent)

    issuer = os.path.join(tmp, "issuer")
    mint = os.path.join(os.path.dirname(__file__), "..", "mock", "demo-issuer.py")
    subprocess.run([sys.executable, mint, "init", issuer], check=True)

    def token(*args):
        return subprocess.run([sys.executable, mint, "token", issuer, *args], check=True, capture_output=True,
                              text=True).stdout.strip()
    cfg = {"keys_file": keyfile, "provider_keys": {"openai": {"env": "ARCH_TEST_OPENAI_KEY"},
                                                   "anthropic": {"file": os.path.join(tmp, "anthropic.key")}},
           "jwt": {"issuer": "https://demo-issuer.local", "audience": "archestra",
                   "jwks_file": os.path.join(issuer, "jwks.json"), "algorithms": ["RS256", "ES256"],
                   "providers_claim": "llm_providers", "scope_claim": "groups"},
           "inspect_responses": True, "policy_file": os.path.join(tmp, "policy.json")}
    with open(cfg["policy_file"], "w") as f:
        json.dump({"rules": [{"id": "interns-mini-only", "when": {"jwt_claim": "intern*"},
                              "models": {"allow": "gpt-4o-mini*"}}]}, f)
    udp = statsd_listener()
    cfg["statsd"] = {"address": f"127.0.0.1:{udp.getsockname()[1]}", "flush_ms": 50}
    with open(os.path.join(tmp, "anthropic.key"), "w") as f:
        f.write(REAL["anthropic"] + "\n")
    os.environ["ARCH_TEST_OPENAI_KEY"] = REAL["openai"]
    with Edge(AGENT, agent_config=cfg) as edge:
        def valid():
            st, rh, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                     {"Authorization": "Bearer " + state["ka"]})
            check(st == 200, f"status {st} {data[:200]!r}")
            e = echo(rh)
            check(e["headers"].get("authorization") == "Bearer " + REAL["openai"], "upstream did not get the real key")
            check(state["ka"] not in json.dumps(e), "the virtual key reached the upstream")
            st, rh, _ = edge.call("POST", "/v1/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "messages": []},
                                  {"x-api-key": state["kb"], "anthropic-version": "2023-06-01"})
            check(st == 200, f"anthropic status {st}")
            e = echo(rh)
            check(e["headers"].get("x-api-key") == REAL["anthropic"] and "authorization" not in e["headers"],
                  f"anthropic upstream headers: {e['headers']}")
        run("a valid virtual key: upstream sees the real provider key in its own header, never the virtual one", valid)

        def refusals():
            before = len(edge.mock_requests())
            cases = [
                ("unknown", "Bearer arch_vk_nosuchkey000_" + "A" * 32, BODY, 401, "virtual_key_unknown"),
                ("wrong secret", "Bearer " + state["ka"][:21] + "B" * 32, BODY, 401, "virtual_key_unknown"),
                ("revoked", "Bearer " + state["kc"], BODY, 401, "virtual_key_revoked"),
                ("expired", "Bearer " + state["kd"], BODY, 401, "virtual_key_expired"),
                ("wrong model", "Bearer " + state["ka"], dict(BODY, model="gpt-5"), 403, "virtual_key_model_denied"),
            ]
            for name, auth, body, want, reason in cases:
                st, _, data = edge.call("POST", "/v1/openai/chat/completions", body, {"Authorization": auth})
                check(st == want, f"{name}: {st} {data[:200]!r}")
                j = json.loads(data)
                check(j["error"]["code"] == reason, f"{name}: {j}")
                check(auth[7:] not in data.decode(), f"{name}: the error echoes the key")
            st, _, data = edge.call("POST", "/v1/anthropic/v1/messages", {"model": "claude-sonnet-4-5"},
                                    {"x-api-key": state["ka"]})
            j = json.loads(data)
            check(st == 403 and j["error"]["type"] == "permission_error", f"wrong provider: {st} {j}")
            check(len(edge.mock_requests()) == before, "a refused call reached the upstream")
        run("unknown, wrong secret, revoked, expired (401) and wrong model, wrong provider (403), provider-shaped, "
            "never upstream", refusals)

        def jwt_calls():
            good = token("--sub", "jwt-user-1", "--providers", "openai")
            secrets.append(good)
            for _ in range(3):  # the second and third are served from the agent's cache
                st, rh, data = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + good})
                check(st == 200, f"valid JWT: {st} {data[:200]!r}")
                e = echo(rh)
                check(e["headers"].get("authorization") == "Bearer " + REAL["openai"], "upstream did not get the real key")
                check(good not in json.dumps(e), "the token reached the upstream")
            bad = [
                ("expired", token("--ttl", "-120", "--providers", "openai"), 401, "jwt_expired"),
                ("wrong audience", token("--aud", "someone-else", "--providers", "openai"), 401, "jwt_bad_audience"),
                ("wrong issuer", token("--iss", "https://evil.example", "--providers", "openai"), 401, "jwt_bad_issuer"),
                ("unknown kid", token("--kid", "other", "--providers", "openai"), 401, "jwt_unknown_kid"),
                ("not for this provider", token("--providers", "anthropic"), 403, "jwt_provider_denied"),
                ("tampered", good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"), 401, "jwt_bad_signature"),
                ("alg none", "eyJhbGciOiJub25lIn0." + good.split(".")[1] + ".", 401, "jwt_bad_alg"),
            ]
            for name, tok, want, reason in bad:
                secrets.append(tok) if len(tok) > 40 else None
                st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + tok})
                check(st == want, f"{name}: {st} {data[:200]!r}")
                j = json.loads(data)
                check(j["error"]["code"] == reason, f"{name}: {j}")
                check(tok not in data.decode(), f"{name}: the error echoes the token")
            time.sleep(0.3)
            check("user_id=jwt-user-1" in edge.log("haproxy"), "the token's subject is not the user in the log")
        def jwt_claim_scope():
            intern = token("--sub", "bob", "--providers", "openai", "--groups", "staff,interns")
            staff = token("--sub", "carol", "--providers", "openai", "--groups", "staff")
            secrets.extend([intern, staff])
            big = dict(BODY, model="gpt-4o")
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", big, {"Authorization": "Bearer " + intern})
            check(st == 403 and json.loads(data)["error"]["code"] == "interns-mini-only",
                  f"a rule scoped on the token's groups claim: {st} {data[:200]!r}")
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + intern})
            check(st == 200, f"the allowed model for the same token: {st}")
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", big, {"Authorization": "Bearer " + staff})
            check(st == 200, f"a token outside the scope: {st}")
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", big, {"Authorization": "Bearer " + REAL["openai"]})
            check(st != 403, f"no token, no jwt_claim scope: {st}")
        run("policy scoped on a JWT claim (groups): a token in the group is held to the rule, others are not",
            jwt_claim_scope)

        run("JWT: a valid token is swapped for the real key (cached on repeat); expired, wrong aud/iss, unknown kid, "
            "tampered, alg none (401) and a provider the token does not allow (403)", jwt_calls)

        def log_ids():
            time.sleep(0.3)
            log = edge.log("haproxy")
            check(f"key_id={state['ida']}" in log and "user_id=alice" in log, "key id / owner missing in the log")
            check(re.search(r"key_id=dk_[0-9a-f]{12}", log), "no direct key id in the log")
        edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer sk-direct-123"})
        run("HAProxy's log names the key id and the key's owner as user (and dk_ ids for direct keys)", log_ids)

        def passthrough():
            # X-Archestra-Virtual-Key: the virtual key identifies and authorizes, the caller's own
            # provider key goes upstream as sent (ka: openai only, gpt-4o* only, owner alice)
            own = "sk-callers-own-openai-77"
            mark = len(edge.log("haproxy"))
            st, rh, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                     {"Authorization": "Bearer " + own, "X-Archestra-Virtual-Key": state["ka"],
                                      "X-Archestra-Run-Id": "run-pt-1"})
            check(st == 200, f"passthrough: {st} {data[:200]!r}")
            h = echo(rh)["headers"]
            check(h.get("authorization") == "Bearer " + own, f"upstream credential {h.get('authorization')!r}")
            check(not [k for k in h if k.startswith("x-archestra")], "an X-Archestra header went upstream")
            time.sleep(0.3)
            log = edge.log("haproxy")[mark:]
            check(f"key_id={state['ida']}" in log and "user_id=alice" in log and "execution_id=run-pt-1" in log,
                  f"the log: {log[-400:]}")
            check(state["ka"] not in edge.log("haproxy") and own not in edge.log("haproxy"), "a key is in the log")
            # the virtual key's limits hold; an unknown or revoked one is refused
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", dict(BODY, model="o3"),
                                    {"Authorization": "Bearer " + own, "X-Archestra-Virtual-Key": state["ka"]})
            check(st == 403 and json.loads(data)["error"]["code"] == "virtual_key_model_denied",
                  f"a model the virtual key may not use: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", "/v1/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5,
                                    "messages": []}, {"x-api-key": "own-ant", "X-Archestra-Virtual-Key": state["ka"]})
            check(st == 403 and json.loads(data)["error"]["type"] == "permission_error",
                  f"a provider the virtual key may not use: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                    {"Authorization": "Bearer " + own, "X-Archestra-Virtual-Key": state["ka"][:-3] + "xyz"})
            check(st == 401 and json.loads(data)["error"]["code"] == "virtual_key_unknown",
                  f"a wrong virtual key: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                    {"Authorization": "Bearer " + state["kb"], "X-Archestra-Virtual-Key": state["ka"]})
            check(st == 400 and json.loads(data)["error"]["code"] == "ambiguous_credential",
                  f"a gateway key as the provider key: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY, {"X-Archestra-Virtual-Key": state["ka"]})
            check(st == 401 and json.loads(data)["error"]["code"] == "missing_credential", f"no provider key: {st}")
            # Run-Id and Execution-Id name one run: both may come, and must agree
            st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                    {"Authorization": "Bearer " + own, "X-Archestra-Run-Id": "r1",
                                     "X-Archestra-Execution-Id": "r2"})
            j = json.loads(data)
            check(st == 400 and j["error"]["code"] == "invalid_identity_header" and "Run-Id" in j["error"]["message"]
                  and "differs from" in j["error"]["message"], f"Run-Id and Execution-Id differ: {st} {j}")
        run("X-Archestra-Virtual-Key (passthrough): the key identifies and authorizes, the caller's provider key "
            "goes as sent; its limits hold; X-Archestra-Run-Id names the run", passthrough)

        def revoke_live():
            r = keys("revoke", state["idb"], keyfile=keyfile)
            check(r.returncode == 0, r.stderr)
            st = poll(lambda: edge.call("POST", "/v1/openai/chat/completions", BODY,
                                        {"Authorization": "Bearer " + state["kb"]})[0], lambda st: st == 401, 10)
            check(st == 401, f"revoked key still accepted ({st}) 10 s after the file changed")
        run("revoking with the CLI takes effect in the running agent without a restart", revoke_live)

        def rotate_and_hup():
            r = keys("rotate", state["ida"], "--overlap", "3600", keyfile=keyfile)
            check(r.returncode == 0, r.stderr)
            new = r.stdout.strip()
            secrets.append(new)
            for p in ("agent0", "agent1"):
                edge.procs[p].send_signal(signal.SIGHUP)
            time.sleep(0.5)
            for k in (new, state["ka"]):
                st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + k})
                check(st == 200, f"{'new' if k == new else 'old'} key after rotation: {st}")
            check("result=ok" in edge.log("agent0"), "no reload logged")
        run("rotate: the new key and the old one (overlap) both work after SIGHUP", rotate_and_hup)

        def reload_under_load():
            import threading
            codes = []

            def load():
                for _ in range(150):
                    st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                         {"Authorization": "Bearer " + state["ka"]}, tls=False)
                    codes.append(st)
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            for _ in range(10):
                for p in ("agent0", "agent1"):
                    edge.procs[p].send_signal(signal.SIGHUP)
                time.sleep(0.1)
            for t in threads:
                t.join()
            bad = [c for c in codes if c != 200]
            check(len(codes) == 600 and not bad, f"{len(bad)} of {len(codes)} calls failed during 20 reloads: {bad[:5]}")
        run("600 calls during 20 SIGHUP reloads: every one allowed, none dropped", reload_under_load)

        def broken_file():
            good = open(keyfile).read()
            with open(keyfile, "w") as f:
                f.write("{ broken")
            for p in ("agent0", "agent1"):
                edge.procs[p].send_signal(signal.SIGHUP)
            time.sleep(0.5)
            st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + state["ka"]})
            check(st == 200, f"a broken keys file dropped the old keys ({st})")
            check("result=refused" in edge.log("agent0"), "the refused reload was not logged")
            with open(keyfile, "w") as f:
                f.write(good)
        run("a broken keys file is refused and the previous keys stay in force", broken_file)

        def no_secret_anywhere():
            time.sleep(0.3)
            metrics = drain(udp)
            check(any("llm_requests" in m for m in metrics), "no metrics received: the check would be empty")
            blob = edge.log("haproxy") + edge.log("agent0") + edge.log("agent1") + "\n".join(metrics)
            parts = [k for k in secrets] + [k[21:] for k in secrets] + list(REAL.values())
            check(all(len(p) >= 16 for p in parts), "a needle is too short to mean anything")
            leaked = [p for p in parts if p in blob]
            check(not leaked, f"{len(leaked)} secret(s) found in logs")
        run("no virtual key, token, secret part or real provider key in HAProxy's or the agents' logs or in any "
            "metric datagram", no_secret_anywhere)


def jwks_url_run():
    """A JWKS fetched over HTTPS: used at start, refetched when a new kid shows up."""
    import http.server
    import ssl
    import threading
    tmp = tempfile.mkdtemp(prefix="arch-jwks-")
    mint = os.path.join(os.path.dirname(__file__), "..", "mock", "demo-issuer.py")
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "mock", "gen-certs.sh"), certs], check=True,
                   capture_output=True)
    served = os.path.join(tmp, "www")
    os.makedirs(served)
    for kid in ("one", "two"):
        subprocess.run([sys.executable, mint, "init", os.path.join(tmp, kid), "--kid", kid], check=True)
    shutil_copy = lambda src, dst: open(dst, "w").write(open(src).read())  # noqa: E731
    shutil_copy(os.path.join(tmp, "one", "jwks.json"), os.path.join(served, "jwks.json"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=served, **kw)

        def log_message(self, *a):
            hits.append(a)
    hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def token(kid, *args):
        return subprocess.run([sys.executable, mint, "token", os.path.join(tmp, kid), "--kid", kid, *args], check=True,
                              capture_output=True, text=True).stdout.strip()
    cfg = {"provider_keys": {"openai": {"env": "ARCH_TEST_OPENAI_KEY"}},
           "jwt": {"issuer": "https://demo-issuer.local", "audience": "archestra",
                   "jwks_url": f"https://localhost:{port}/jwks.json", "jwks_ca_file": os.path.join(certs, "ca.pem"),
                   "jwks_min_refetch_s": 1, "algorithms": ["RS256"]}}
    try:
        with Edge(AGENT, agents=1, agent_config=cfg) as edge:
            def fetched():
                st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY,
                                        {"Authorization": "Bearer " + token("one")})
                check(st == 200, f"token signed by the fetched key: {st} {data[:200]!r}")
            run("JWKS from an https:// URL (certificate verified): a token it signs is accepted", fetched)

            def rotated():
                # The issuer publishes a second key; a token with its kid triggers a refetch.
                keys_ = json.load(open(os.path.join(tmp, "one", "jwks.json")))["keys"] + \
                    json.load(open(os.path.join(tmp, "two", "jwks.json")))["keys"]
                with open(os.path.join(served, "jwks.json"), "w") as f:
                    json.dump({"keys": keys_}, f)
                t2 = token("two")
                st, _, data = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + t2})
                check(st == 401 and b"jwt_unknown_kid" in data, f"first call with the new kid: {st} {data[:200]!r}")
                end = time.time() + 10
                while time.time() < end:
                    time.sleep(0.5)
                    st, _, _ = edge.call("POST", "/v1/openai/chat/completions", BODY, {"Authorization": "Bearer " + t2})
                    if st == 200:
                        break
                check(st == 200, f"the new kid is still refused 10 s after the refetch was asked ({st})")
                check("trigger=unknown_kid result=ok" in edge.log("agent0"), "no refetch logged")
            run("an unknown kid triggers a (rate-limited) JWKS refetch and the new key works without a restart",
                rotated)
    finally:
        httpd.shutdown()


def main():
    os.environ["ARCH_TEST_OPENAI_KEY"] = REAL["openai"]
    try:
        jwks_url_run()
    except Exception:
        record(False, "the JWKS URL edge starts", traceback.format_exc())
    try:
        main_run()
    except Exception:
        record(False, "the edge starts", traceback.format_exc())
    return report()


if __name__ == "__main__":
    sys.exit(main())
