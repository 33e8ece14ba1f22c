#!/usr/bin/env python3
"""End to end, per provider of the agent's table, through HAProxy with the backends the
agent generated (providers.cfg) to the mock: a direct key passes as sent to the provider's
host and path, a virtual key becomes the provider's real key, refusals come in the
provider's error shape, usage is counted, and a blocked tool call is refused. A provider
added in the config file alone works the same way. TAP output.
usage: test_providers.py path/to/archestra-spoa"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # edge.py beside, tests/pylib
from edge import Edge, drain, echo, statsd_listener  # noqa: E402
from pylib.tap import check, report, run  # noqa: E402

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa")

# What the table must say, from each provider's own documentation: (name, host, base path
# of its OpenAI-compatible API, TLS). Local servers need no key.
OPENAI_COMPATIBLE = [
    ("openai", "api.openai.com", "/v1", True),
    ("local", "localhost", "/v1", False),
    ("cerebras", "api.cerebras.ai", "/v1", True),
    ("deepseek", "api.deepseek.com", "", True),
    ("groq", "api.groq.com", "/openai/v1", True),
    ("mistral", "api.mistral.ai", "/v1", True),
    ("openrouter", "openrouter.ai", "/api/v1", True),
    ("perplexity", "api.perplexity.ai", "", True),
    ("xai", "api.x.ai", "/v1", True),
    ("zhipuai", "open.bigmodel.cn", "/api/paas/v4", True),
    ("kimi", "api.moonshot.ai", "/v1", True),
    ("minimax", "api.minimax.io", "/v1", True),
    ("ollama", "localhost", "/v1", False),
    ("vllm", "localhost", "/v1", False),
    # added by the config file alone (below): no code knows it
    ("acme", "acme.provider.test", "/v1", True),
]
SCHEMA = {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "notify_customer", "parameters": SCHEMA}}]
AZURE_HOST = "myres.openai.azure.com"  # the operator's resource: the config turns Azure on


def real_key(name):
    return f"sk-real-{name}-5e4d"


def main():
    tmp = tempfile.mkdtemp(prefix="arch-prov-")
    keyfile = os.path.join(tmp, "keys.json")
    r = subprocess.run([AGENT, "keys", "new", "--file", keyfile, "--owner", "prov-test"], capture_output=True,
                       text=True, timeout=10)
    vkey = r.stdout.strip()
    policy = os.path.join(tmp, "policy.json")
    with open(policy, "w") as f:
        json.dump({"rules": [
            {"id": "no-big-models", "when": {"agent_id": "restricted-*"}, "models": {"deny": ["big-*"]}},
            {"id": "capped", "when": {"agent_id": "capped-*"}, "max_output_tokens": 4096},
            {"id": "no-shell", "when": {"agent_id": "restricted-*"}, "tools": {"deny": ["shell_*"]}},
            {"id": "notify-inside-only",
             "tool_calls": [{"name": "notify_*", "args": [{"path": "to", "not_in": ["*@corp.example"]}]}]}]}, f)
    for name, *_ in OPENAI_COMPATIBLE + [("azure",), ("cohere",), ("bedrock",), ("anthropic",), ("gemini",)]:
        os.environ[f"ARCH_PROV_{name.upper()}"] = real_key(name)
    udp = statsd_listener()
    cfg = {"keys_file": keyfile, "policy_file": policy, "inspect_responses": True,
           "provider_keys": {n: {"env": f"ARCH_PROV_{n.upper()}"} for n, *_ in OPENAI_COMPATIBLE + [("azure",), ("cohere",), ("bedrock",), ("anthropic",), ("gemini",)]},
           "providers": [{"name": "acme", "prefix": "/v1/acme", "host": "acme.provider.test", "upstream_base": "/v1"},
                         {"name": "azure", "host": AZURE_HOST}],
           "statsd": {"address": f"127.0.0.1:{udp.getsockname()[1]}", "flush_ms": 50}}

    with Edge(AGENT, agent_config=cfg) as edge:
        def tokens_of(provider):
            """(input, output) tokens statsd counted for provider since the last look."""
            end, tin, tout = time.time() + 3, 0, 0
            while time.time() < end and not tin:
                for line in (ln for d in drain(udp) for ln in d.split("\n")):
                    m = re.match(r"^archestra\.llm_tokens_total:([0-9.]+)\|c\|#(.*)$", line)
                    tags = dict(t.split(":", 1) for t in m.group(2).split(",")) if m else {}
                    if tags.get("provider") == provider:
                        if tags.get("type") == "input":
                            tin += int(float(m.group(1)))
                        elif tags.get("type") == "output":
                            tout += int(float(m.group(1)))
            return tin, tout

        def generated():
            text = open(edge.providers_cfg()).read()
            for name, host, _, tls in OPENAI_COMPATIBLE:
                check(f"backend llm_{name}\n" in text, f"no backend llm_{name} in providers.cfg")
                if tls:
                    check(f"sni str({host}) check check-sni {host}" in text, f"{name}: SNI/check name not {host}")
            r = subprocess.run([edge.agent_bin, "haproxy-backends", "--config", "/nonexistent.json"],
                               capture_output=True, text=True)
            check(r.returncode == 2 and "nonexistent" in r.stderr, f"a missing config: rc {r.returncode} {r.stderr}")
        run("providers.cfg, generated by the agent, has a backend per provider, the config's own included", generated)

        for name, host, base, tls in OPENAI_COMPATIBLE:
            def one(name=name, host=host, base=base, tls=tls):
                path = f"/v1/{name}/chat/completions"
                body = {"model": "small-1", "messages": [{"role": "user", "content": "Hello there"}]}
                # a direct key passes as sent, to the provider's host and path
                direct = f"sk-direct-{name}-77"
                st, rh, data = edge.call("POST", path, body, {"Authorization": "Bearer " + direct}, tls=False)
                check(st == 200, f"direct key: {st} {data[:300]!r}")
                e = echo(rh)
                check(e["path"] == base + "/chat/completions", f"upstream path {e['path']}, want {base}/chat/completions")
                check(e["headers"].get("host") == host, f"upstream host {e['headers'].get('host')}, want {host}")
                check(e["headers"].get("authorization") == "Bearer " + direct, "the direct key was not passed as sent")
                usage = json.loads(data)["usage"]
                # a virtual key becomes the provider's real key; the virtual one never leaves
                st, rh, data = edge.call("POST", path, body, {"Authorization": "Bearer " + vkey}, tls=True)
                check(st == 200, f"virtual key: {st} {data[:300]!r}")
                e = echo(rh)
                check(e["headers"].get("authorization") == "Bearer " + real_key(name),
                      f"upstream credential {e['headers'].get('authorization')!r}")
                check(vkey not in json.dumps(e), "the virtual key reached the provider")
                # refusals in the provider's shape (OpenAI's)
                st, _, data = edge.call("POST", path, dict(body, model="big-9"),
                                        {"Authorization": "Bearer " + direct, "X-Archestra-Agent-Id": "restricted-1"})
                j = json.loads(data)
                check(st == 403 and j["error"]["code"] == "no-big-models" and j["error"]["type"],
                      f"a denied model: {st} {j}")
                if tls:
                    st, _, data = edge.call("POST", path, body, {})
                    j = json.loads(data)
                    check(st == 401 and j["error"]["code"] == "missing_credential", f"no key: {st} {j}")
                else:
                    st, _, data = edge.call("POST", path, body, {})
                    check(st == 200, f"a local server needs no key: {st} {data[:200]!r}")
                # a tool call the policy blocks never reaches the client
                st, _, data = edge.call("POST", path, dict(body, tools=TOOLS), {"Authorization": "Bearer " + direct})
                j = json.loads(data)
                check(st == 403 and j["error"]["code"] == "notify-inside-only" and "notify_customer" in j["error"]["message"],
                      f"a blocked tool call: {st} {j}")
                # usage counted under the provider's name, as the mock counted it
                end, tin = time.time() + 3, 0
                while time.time() < end and not tin:
                    for line in (ln for d in drain(udp) for ln in d.split("\n")):
                        m = re.match(r"^archestra\.llm_tokens_total:([0-9.]+)\|c\|#(.*)$", line)
                        tags = dict(t.split(":", 1) for t in m.group(2).split(",")) if m else {}
                        if tags.get("provider") == name and tags.get("type") == "input":
                            tin += int(float(m.group(1)))
                check(tin >= usage["prompt_tokens"], f"input tokens counted {tin}, the mock said {usage['prompt_tokens']}")
            run(f"{name}: direct key to {host}{base}, virtual key substituted, refusals in its shape, "
                "tokens counted, a blocked tool call refused", one)
        def azure():
            q = "?api-version=2024-10-21"
            path = "/v1/azure/openai/deployments/prod-4o/chat/completions" + q
            body = {"messages": [{"role": "user", "content": "Hello there"}]}
            direct = "azure-direct-key-31"
            st, rh, data = edge.call("POST", path, body, {"api-key": direct}, tls=False)
            check(st == 200, f"direct key: {st} {data[:300]!r}")
            e = echo(rh)
            check(e["path"] == "/openai/deployments/prod-4o/chat/completions" and "api-version=2024-10-21" in e["query"],
                  f"upstream {e['path']}?{e['query']}")
            check(e["headers"].get("host") == AZURE_HOST and e["headers"].get("api-key") == direct,
                  f"host {e['headers'].get('host')}, api-key {e['headers'].get('api-key')!r}")
            check(json.loads(data)["model"] == "prod-4o", "the mock did not answer for the deployment")
            usage = json.loads(data)["usage"]
            # a virtual key in api-key (where Azure's SDKs put it) becomes the real key, there
            st, rh, data = edge.call("POST", path, body, {"api-key": vkey})
            e = echo(rh)
            check(st == 200 and e["headers"].get("api-key") == real_key("azure") and "authorization" not in e["headers"],
                  f"virtual key: {st} api-key {e['headers'].get('api-key')!r} {data[:200]!r}")
            # the deployment in the path is the model policy judges, whatever the body says
            st, _, data = edge.call("POST", "/v1/azure/openai/deployments/big-prod/chat/completions" + q,
                                    dict(body, model="small-1"), {"api-key": direct, "X-Archestra-Agent-Id": "restricted-1"})
            j = json.loads(data)
            check(st == 403 and j["error"]["code"] == "no-big-models", f"a denied deployment: {st} {j}")
            st, _, data = edge.call("POST", path, body, {})
            j = json.loads(data)
            check(st == 401 and j["error"]["code"] == "missing_credential" and "api-key" in j["error"]["message"],
                  f"no key: {st} {j}")
            # the v1 API names the model in the body
            st, rh, data = edge.call("POST", "/v1/azure/openai/v1/chat/completions", dict(body, model="big-1"),
                                     {"api-key": direct, "X-Archestra-Agent-Id": "restricted-1"})
            check(st == 403, f"v1 API, a denied model in the body: {st} {data[:200]!r}")
            st, rh, data = edge.call("POST", "/v1/azure/openai/v1/chat/completions", dict(body, model="small-1"),
                                     {"api-key": vkey})
            check(st == 200 and echo(rh)["path"] == "/openai/v1/chat/completions", f"v1 API: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", path, dict(body, tools=TOOLS), {"api-key": direct})
            j = json.loads(data)
            check(st == 403 and j["error"]["code"] == "notify-inside-only", f"a blocked tool call: {st} {j}")
            # a lent key reaches inference only
            st, _, data = edge.call("POST", "/v1/azure/openai/deployments/prod-4o/fine_tuning/jobs" + q, body,
                                    {"api-key": vkey})
            check(st == 403 and json.loads(data)["error"]["code"] == "endpoint_not_granted", f"fine-tuning: {st}")
            tin, tout = tokens_of("azure")
            check(tin >= usage["prompt_tokens"] and tout >= usage["completion_tokens"], f"tokens {tin}/{tout} vs {usage}")
        run(f"azure (configured with its resource host): deployment paths with api-version to {AZURE_HOST}, "
            "api-key direct and substituted, the deployment is the model, the v1 API, a blocked tool call", azure)

        def anthropic():
            path = "/v1/anthropic/v1/messages"
            body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
            direct = "sk-ant-direct-anth-1"
            hv = {"anthropic-version": "2023-06-01"}
            st, rh, data = edge.call("POST", path, body, dict(hv, **{"x-api-key": direct}), tls=False)
            check(st == 200, f"direct key: {st} {data[:300]!r}")
            e = echo(rh)
            check(e["path"] == "/v1/messages" and e["headers"].get("host") == "api.anthropic.com"
                  and e["headers"].get("x-api-key") == direct, f"upstream {e['path']} {e['headers']}")
            usage = json.loads(data)["usage"]
            st, rh, data = edge.call("POST", path, body, dict(hv, **{"x-api-key": vkey}))
            e = echo(rh)
            check(st == 200 and e["headers"].get("x-api-key") == real_key("anthropic")
                  and "authorization" not in e["headers"], f"virtual key: {st} {e['headers']}")
            st, _, data = edge.call("POST", path, dict(body, model="big-1"),
                                    dict(hv, **{"x-api-key": direct, "X-Archestra-Agent-Id": "restricted-1"}))
            j = json.loads(data)
            check(st == 403 and j["type"] == "error" and j["error"]["type"] == "permission_error",
                  f"a denied model, in Anthropic's shape: {st} {j}")
            tools = [{"name": "notify_customer", "input_schema": SCHEMA}]
            st, _, data = edge.call("POST", path, dict(body, tools=tools), dict(hv, **{"x-api-key": direct}))
            j = json.loads(data)
            check(st == 403 and "notify_customer" in j["error"]["message"], f"a blocked tool_use: {st} {j}")
            tin, tout = tokens_of("anthropic")
            check(tin >= usage["input_tokens"] and tout >= usage["output_tokens"], f"tokens {tin}/{tout} vs {usage}")
        run("anthropic: direct and virtual keys in x-api-key, refusals in its shape, tokens counted, a blocked "
            "tool_use refused", anthropic)

        def gemini():
            path = "/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent"
            body = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
            direct = "AIza-direct-gem-1"
            st, rh, data = edge.call("POST", path, body, {"x-goog-api-key": direct}, tls=False)
            check(st == 200, f"direct key: {st} {data[:300]!r}")
            e = echo(rh)
            check(e["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
                  and e["headers"].get("host") == "generativelanguage.googleapis.com"
                  and e["headers"].get("x-goog-api-key") == direct, f"upstream {e['path']} {e['headers']}")
            usage = json.loads(data)["usageMetadata"]
            st, rh, data = edge.call("POST", path, body, {"x-goog-api-key": vkey})
            check(st == 200 and echo(rh)["headers"].get("x-goog-api-key") == real_key("gemini"),
                  f"virtual key: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", "/v1/gemini/v1beta/models/big-1:generateContent", body,
                                    {"x-goog-api-key": direct, "X-Archestra-Agent-Id": "restricted-1"})
            j = json.loads(data)
            check(st == 403 and j["error"]["status"] == "PERMISSION_DENIED", f"a denied model, Gemini's shape: {st} {j}")
            tools = [{"functionDeclarations": [{"name": "notify_customer", "parameters": SCHEMA}]}]
            st, _, data = edge.call("POST", path, dict(body, tools=tools), {"x-goog-api-key": direct})
            j = json.loads(data)
            check(st == 403 and "notify_customer" in j["error"]["message"], f"a blocked functionCall: {st} {j}")
            tin, tout = tokens_of("gemini")
            check(tin >= usage["promptTokenCount"], f"tokens {tin}/{tout} vs {usage}")
        run("gemini: direct and virtual keys in x-goog-api-key, refusals in its shape, tokens counted, a blocked "
            "functionCall refused", gemini)

        def cohere():
            path = "/v1/cohere/v2/chat"
            body = {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Hello there"}]}
            direct = "co-direct-key-8"
            st, rh, data = edge.call("POST", path, body, {"Authorization": "Bearer " + direct}, tls=False)
            check(st == 200, f"direct key: {st} {data[:300]!r}")
            e = echo(rh)
            check(e["path"] == "/v2/chat" and e["headers"].get("host") == "api.cohere.com"
                  and e["headers"].get("authorization") == "Bearer " + direct, f"upstream {e['path']} {e['headers']}")
            usage = json.loads(data)["usage"]["tokens"]
            st, rh, data = edge.call("POST", path, body, {"Authorization": "Bearer " + vkey})
            check(st == 200 and echo(rh)["headers"].get("authorization") == "Bearer " + real_key("cohere"),
                  f"virtual key: {st} {data[:200]!r}")
            # refusals in Cohere's shape: a message (and the reason as a code)
            st, _, data = edge.call("POST", path, dict(body, model="big-1"),
                                    {"Authorization": "Bearer " + direct, "X-Archestra-Agent-Id": "restricted-1"})
            j = json.loads(data)
            check(st == 403 and j["code"] == "no-big-models" and j["message"].startswith("archestra:") and "error" not in j,
                  f"a denied model: {st} {j}")
            st, _, data = edge.call("POST", path, body, {})
            j = json.loads(data)
            check(st == 401 and j["code"] == "missing_credential", f"no key: {st} {j}")
            # a tool call in message.tool_calls is checked like any other
            st, _, data = edge.call("POST", path, dict(body, tools=TOOLS), {"Authorization": "Bearer " + direct})
            j = json.loads(data)
            check(st == 403 and j["code"] == "notify-inside-only" and "notify_customer" in j["message"],
                  f"a blocked tool call: {st} {j}")
            end, tin, tout = time.time() + 3, 0, 0
            while time.time() < end and not tin:
                for line in (ln for d in drain(udp) for ln in d.split("\n")):
                    m = re.match(r"^archestra\.llm_tokens_total:([0-9.]+)\|c\|#(.*)$", line)
                    tags = dict(t.split(":", 1) for t in m.group(2).split(",")) if m else {}
                    if tags.get("provider") == "cohere":
                        if tags.get("type") == "input":
                            tin += int(float(m.group(1)))
                        elif tags.get("type") == "output":
                            tout += int(float(m.group(1)))
            check(tin >= usage["input_tokens"] and tout >= usage["output_tokens"],
                  f"tokens counted {tin}/{tout}, the mock said {usage}")
        run("cohere: v2 chat to api.cohere.com, direct and virtual keys, refusals in its shape, tokens from "
            "usage.tokens, a tool call in message.tool_calls refused", cohere)

        def bedrock():
            model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
            path = "/v1/bedrock/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
            body = {"messages": [{"role": "user", "content": [{"text": "Hello there"}]}],
                    "inferenceConfig": {"maxTokens": 200}}
            direct = "ABSKbedrock-api-key-direct"  # a Bedrock API key, sent as a Bearer token
            st, rh, data = edge.call("POST", path, body, {"Authorization": "Bearer " + direct}, tls=False)
            check(st == 200, f"direct key: {st} {data[:300]!r}")
            e = echo(rh)
            check(e["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"  # normalized: %3A is ":"
                  and e["headers"].get("host") == "bedrock-runtime.us-east-1.amazonaws.com"
                  and e["headers"].get("authorization") == "Bearer " + direct, f"upstream {e['path']} {e['headers']}")
            usage = json.loads(data)["usage"]
            st, rh, data = edge.call("POST", path, body, {"Authorization": "Bearer " + vkey})
            check(st == 200 and echo(rh)["headers"].get("authorization") == "Bearer " + real_key("bedrock"),
                  f"virtual key: {st} {data[:200]!r}")
            # the model policy judges is the decoded id from the path
            st, _, data = edge.call("POST", path, body, {"Authorization": "Bearer " + direct,
                                                         "X-Archestra-Agent-Id": "restricted-1"})
            check(st == 200, f"an allowed model for restricted agents: {st}")
            deny = "/v1/bedrock/model/big-model-v1%3A0/converse"
            st, _, data = edge.call("POST", deny, body, {"Authorization": "Bearer " + direct,
                                                         "X-Archestra-Agent-Id": "restricted-1"})
            j = json.loads(data)
            check(st == 403 and j["code"] == "no-big-models" and j["message"].startswith("archestra:"),
                  f"a denied model (escaped in the path): {st} {j}")
            # inferenceConfig.maxTokens is the output cap policy reads
            st, _, data = edge.call("POST", path, dict(body, inferenceConfig={"maxTokens": 100000}),
                                    {"Authorization": "Bearer " + direct, "X-Archestra-Agent-Id": "capped-1"})
            check(st == 403 and json.loads(data)["code"] == "capped" and "100000" in json.loads(data)["message"],
                  f"over the output cap: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", path, dict(body, inferenceConfig=[1]), {"Authorization": "Bearer " + direct})
            check(st == 400, f"inferenceConfig not an object: {st}")
            # a tool offered in toolConfig is a tool; its call in output.message.content is checked
            tools = {"tools": [{"toolSpec": {"name": "notify_customer", "inputSchema": {"json": SCHEMA}}}]}
            st, _, data = edge.call("POST", path, dict(body, toolConfig=tools), {"Authorization": "Bearer " + direct})
            j = json.loads(data)
            check(st == 403 and j["code"] == "notify-inside-only" and "notify_customer" in j["message"],
                  f"a blocked tool call: {st} {j}")
            st, _, data = edge.call("POST", path, dict(body, toolConfig={"tools": [{"toolSpec": {"name": "shell_exec"}}]}),
                                    {"Authorization": "Bearer " + direct, "X-Archestra-Agent-Id": "restricted-1"})
            check(st == 403 and json.loads(data)["code"] == "no-shell", f"a denied tool offered: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", path, body, {})
            check(st == 401 and json.loads(data)["code"] == "missing_credential", f"no key: {st}")
            # a lent key reaches the Converse API only
            st, _, data = edge.call("POST", "/v1/bedrock/model/x/invoke", body, {"Authorization": "Bearer " + vkey})
            check(st == 403 and json.loads(data)["code"] == "endpoint_not_granted", f"invoke with a lent key: {st}")
            end, tin = time.time() + 3, 0
            while time.time() < end and not tin:
                for line in (ln for d in drain(udp) for ln in d.split("\n")):
                    m = re.match(r"^archestra\.llm_tokens_total:([0-9.]+)\|c\|#(.*)$", line)
                    tags = dict(t.split(":", 1) for t in m.group(2).split(",")) if m else {}
                    if tags.get("provider") == "bedrock" and tags.get("type") == "input":
                        tin += int(float(m.group(1)))
                        check(tags.get("model") == model.replace(":", "_"),  # statsd tags cannot hold ":"
                              f"tokens counted for model {tags.get('model')}")
            check(tin >= usage["inputTokens"], f"tokens counted {tin}, the mock said {usage}")
        run("bedrock (Converse, Bedrock API keys): the model id escaped in the path, direct and virtual keys, "
            "maxTokens and toolConfig read, a toolUse refused, refusals in its shape, tokens counted", bedrock)

        def azure_off():
            r = subprocess.run([edge.agent_bin, "haproxy-backends"], capture_output=True, text=True)
            check("backend llm_azure" not in r.stdout and "llm_azure: give its host" in r.stdout, r.stdout[-400:])
        run("azure without a configured resource host has no backend and routes nothing", azure_off)
    # Bedrock with IAM credentials: the gateway signs each call (AWS Signature V4) and
    # the mock checks the signature as AWS does, with the same credentials.
    akid, secret, token = "AKIDARCHTEST01", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYARCHTEST", "IQoJb3JpZ2luX2VjEXAMPLETOKEN=="
    os.environ["MOCK_AWS_CREDENTIALS"] = f"{akid}:{secret}"
    os.environ["ARCH_PROV_BEDROCK_IAM"] = f"{akid}:{secret}:{token}"
    cfg2 = {"keys_file": keyfile, "truncated_body": "allow",
            "provider_keys": {"bedrock": {"env": "ARCH_PROV_BEDROCK_IAM"}}}
    with Edge(AGENT, agents=1, agent_config=cfg2) as edge:
        def sigv4():
            path = "/v1/bedrock/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
            body = {"messages": [{"role": "user", "content": [{"text": "Hello there"}]}]}
            raw = json.dumps(body).encode()
            st, rh, data = edge.call("POST", path, raw, {"Authorization": "Bearer " + vkey,
                                                         "Content-Type": "application/json",
                                                         "x-amz-date": "20000101T000000Z",
                                                         "x-amz-security-token": "smuggled"})
            check(st == 200, f"signed call: {st} {data[:300]!r}")
            e = echo(rh)
            h = e["headers"]
            check(e.get("sigv4") == "ok", f"the mock did not accept the signature: {e.get('sigv4')}")
            check(h["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={akid}/") and
                  "/us-east-1/bedrock/aws4_request" in h["authorization"], f"authorization {h['authorization']!r}")
            check(h.get("x-amz-content-sha256") == hashlib.sha256(raw).hexdigest(), "x-amz-content-sha256")
            check(h.get("x-amz-security-token") == token and h.get("x-amz-date", "").startswith("20"),
                  f"token {h.get('x-amz-security-token')!r}, date {h.get('x-amz-date')!r}")
            check(h["x-amz-date"] != "20000101T000000Z", "the caller's x-amz-date went upstream")
            check(vkey not in json.dumps(e) and secret not in json.dumps(e), "a key went upstream")
            check(secret not in edge.log("agent0") and secret not in edge.log("haproxy"), "the secret is in a log")
            # the path, query and content-type are signed as they go: change one, no signature
            st, rh, data = edge.call("POST", path + "?trace=1", raw, {"Authorization": "Bearer " + vkey,
                                                                      "Content-Type": "application/json; charset=utf-8"})
            check(st == 200 and echo(rh).get("sigv4") == "ok", f"with a query and a charset: {st} {data[:200]!r}")
            st, _, data = edge.call("POST", path, raw, {"Authorization": "Bearer " + vkey,
                                                        "Content-Type": "application/json"}, tls=False)
            check(st == 200, f"over plain HTTP: {st}")
            # a body HAProxy did not hold whole cannot be signed
            big = json.dumps({"messages": [{"role": "user", "content": [{"text": "x" * 300000}]}]}).encode()
            st, _, data = edge.call_early("POST", path, big, {"Authorization": "Bearer " + vkey,
                                                              "Content-Type": "application/json"})
            j = json.loads(data)
            check(st == 413 and j["code"] == "body_truncated" and "signed" in j["message"], f"truncated: {st} {j}")
        run("bedrock with IAM credentials: the gateway signs each call (SigV4 over path, query, host, content-type "
            "and the inspected body), the mock verifies it as AWS does; the caller's x-amz-* never go; a truncated "
            "body is refused", sigv4)
    return report()


if __name__ == "__main__":
    sys.exit(main())
