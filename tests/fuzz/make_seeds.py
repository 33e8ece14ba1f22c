#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_session: realistic HAProxy conversations, encoded
with the tests' SPOP codec (tests/pylib/spop.py). Each seed starts with the
harness's two settings bytes. --auth and --json write the corpora of fuzz_auth and
fuzz_json instead."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pylib.spop import (ABORT, BIN, BOOL, DISCON, FIN, HELLO, I32, IP4, IP6, NOTIFY, NULL, STR,  # noqa: E402
                        UI64, UNSET, disconnect_kv, enc_frame, enc_hdrs, enc_kv, enc_msg, hello_items)


def hello(caps="pipelining,async", hc=False):
    extra = [("healthcheck", BOOL(True))] if hc else []
    return enc_frame(HELLO, enc_kv(hello_items(caps=caps, extra=extra + [("engine-id", STR("0A1B2C3D"))])))


def req_msg(path="/v1/openai/chat/completions", body=None, cred=(b"authorization", b"Bearer sk-fuzz")):
    hdrs = enc_hdrs([(b"host", b"api.openai.com"), (b"content-type", b"application/json"),
                     (b"x-archestra-agent-id", b"agent-7"), (b"x-archestra-meta", b"a/exec-1/sess-2"), cred])
    body = body or (b'{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hello"}],'
                    b'"tools":[{"type":"function","function":{"name":"send_email"}}]}')
    return enc_msg("archestra-req", [
        ("id", STR("7F000001:C9B2")), ("method", STR("POST")), ("path", STR(path)),
        ("query", NULL()), ("hdrs", BIN(hdrs)), ("body", BIN(body)), ("body_len", I32(len(body))),
        ("src", IP4("127.0.0.1")), ("tls", BOOL(True)), ("v6", IP6("::")), ("u64", UI64(2**40))])


def res_msg():
    hdrs = enc_hdrs([(b"content-type", b"application/json")])
    body = (b'{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,'
            b'"prompt_tokens_details":{"cached_tokens":2}}}')
    ctx = "1|openai|gpt-4o-mini|agent-7|alice|sess-9|exec-42||1732550000123456|0"
    return enc_msg("archestra-res", [
        ("id", STR("x")), ("status", I32(200)), ("hdrs", BIN(hdrs)), ("body", BIN(body)),
        ("body_len", I32(len(body))), ("body_size", I32(len(body))), ("ctx", STR(ctx))])


def auth_seeds(d):
    import base64
    import json as j
    b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=")  # noqa: E731
    hdr = b(j.dumps({"alg": "RS256", "kid": "r"}).encode())
    claims = b(j.dumps({"iss": "i", "aud": "a", "sub": "u", "exp": 1900000000, "p": ["openai"]}).encode())
    seeds = {
        "jwt-rs": b"\x00" + hdr + b"." + claims + b"." + b(bytes(256)),
        "jwt-es": b"\x00" + b(b'{"alg":"ES256","kid":"e"}') + b"." + claims + b"." + b(bytes(64)),
        "jwt-hs": b"\x00" + b(b'{"alg":"HS256"}') + b"." + claims + b"." + b(bytes(32)),
        "jwt-none": b"\x00" + b(b'{"alg":"none"}') + b"." + claims + b".",
        "jwks": b"\x01" + j.dumps({"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"},
                                            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
                                            {"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}).encode(),
        "policy": b"\x03" + open(os.path.join(os.path.dirname(__file__), "..", "..", "policy", "examples",
                                                 "models.json"), "rb").read(),
        "keys": b"\x02" + j.dumps({"keys": [{"id": "abcdefghij01", "owner": "o", "providers": ["openai"],
                                             "models": ["m*"], "secrets": [{"sha256": "0" * 64, "not_after": 5}]}]}).encode(),
        "dlp": b"\x04" + j.dumps({"messages": [{"role": "user", "content":
                 "AKIAIOSFODNN7EXAMPLE sk-proj-4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0aG5iO a@example.com "
                 "4111 1111 1111 1111 GB82 WEST 1234 5698 7654 32 +1 415 555 2671 (415) 555-2671 "
                 "ghp_16C7e42F292c6912E7710c838347Ae178B4a glpat-xB7kQ2mN9pR4sT8wZ1bC xoxb-1234567890-ab "
                 "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0 AB-12 "
                 "-----BEGIN EC PRIVATE KEY-----\nAIzaSyD4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0a"}]}).encode(),
    }
    for k, v in seeds.items():
        with open(os.path.join(d, "seed-" + k), "wb") as f:
            f.write(v)


def json_seeds(d):
    """fuzz_json: even first byte, a document for the cJSON differential; odd, a
    mask length, a mask and text for the escaping property."""
    docs = [
        b'{"model":"gpt-4o","max_tokens":1e3,"stream":false,"messages":[{"role":"user","content":"hi\\n"}],'
        b'"tools":[{"type":"function","function":{"name":"send\\u005femail","parameters":{"type":"object"}}}]}',
        b'{"a":{"b":[1,-2.5e-3,true,null,"\\ud83d\\ude00 \xc3\xa9"]},"m\\u006fdel":"x"}',
        b'[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]',
        b'{"model":"a","model":"b"}',
        b'"\\u0000\\/\\b\\f\\n\\r\\t\\"\\\\"',
    ]
    texts = [
        b"AKIAIOSFODNN7EXAMPLE and sk-proj-4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0aG5iO and a@example.com",
        b"ghp_16C7e42F292c6912E7710c838347Ae178B4a 4111 1111 1111 1111 -----BEGIN RSA PRIVATE KEY-----",
        b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0 GB82 WEST 1234 5698 7654 32",
    ]
    for i, doc in enumerate(docs):
        with open(os.path.join(d, f"seed-doc-{i}"), "wb") as f:
            f.write(b"\x00" + doc)
    for i, t in enumerate(texts):
        with open(os.path.join(d, f"seed-text-{i}"), "wb") as f:
            f.write(b"\x01" + bytes([3]) + b"\x55\xaa\x0f" + t)
    # mode 2: held streams, the shape in the next byte (0 OpenAI, 1 Anthropic, 2 Gemini)
    streams = [
        (0, b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"send_",'
            b'"arguments":"{\\"to\\":"}}]}}]}\n\ndata: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
            b'"function":{"name":"email","arguments":"1}"}}]}}]}\n\ndata: [DONE]\n\n'),
        (0, b'event: response.completed\ndata: {"type":"response.completed","response":{"output":[{"type":'
            b'"function_call","name":"f","arguments":"{}"}]}}\n\n'),
        (1, b'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","name":"f","input":{}}}'
            b'\r\n\r\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
            b'"partial_json":"{\\"a\\": 1}"}}\r\n\r\n'),
        (2, b'data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"x":[1]}}}]}}]}\n\n'),
    ]
    for i, (shape, s) in enumerate(streams):
        with open(os.path.join(d, f"seed-sse-{i}"), "wb") as f:
            f.write(b"\x02" + bytes([shape]) + s)


def meter_seeds(d):
    """fuzz_meter: end-of-call records as HAProxy writes them, and near misses."""
    sd = ('[archestra@32473 p="openai" m="gpt-4o" a="agent-1" u="-" k="vk_1" v="allow" s="200" ta="812" '
          'st="-" u_in="1200" u_out="300" u_cr="-" u_cw="-" u_rs="-"]')
    recs = [
        "<134>1 2026-12-02T07:00:00.123456+00:00 host haproxy 4242 - " + sd + " 127.0.0.1:5000 [02/Dec] llm",
        "<134>1 - - - - - " + sd,
        "<134>1 2026-12-02T07:00:00Z h haproxy 1 - [other@1 x=\"a\\]b\"]" + sd + " msg",
        "<134>1 2026-12-02T07:00:00Z h haproxy 1 - " + sd.replace('p="openai"', 'p="openai" p="x"'),
        "<134>1 2026-12-02T07:00:00Z h haproxy 1 - -  msg",
    ]
    for i, r in enumerate(recs):
        with open(os.path.join(d, f"meter{i}"), "wb") as f:
            f.write(r.encode())


def main():
    if sys.argv[1] == "--meter":
        os.makedirs(sys.argv[2], exist_ok=True)
        return meter_seeds(sys.argv[2])
    if sys.argv[1] == "--auth":
        os.makedirs(sys.argv[2], exist_ok=True)
        return auth_seeds(sys.argv[2])
    if sys.argv[1] == "--json":
        os.makedirs(sys.argv[2], exist_ok=True)
        return json_seeds(sys.argv[2])
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    msg = req_msg()
    seeds = {
        "hello": b"\x3f\x07" + hello(),
        "healthcheck": b"\x3f\x07" + hello(hc=True),
        "notify": b"\x3f\x07" + hello() + enc_frame(NOTIFY, msg, 1, 1) + enc_frame(NOTIFY, msg, 2, 300),
        "unknown-msg": b"\x3f\x07" + hello() + enc_frame(NOTIFY, enc_msg("other"), 5, 5),
        "fragments": b"\x3f\x07" + hello("pipelining,fragmentation") + enc_frame(NOTIFY, msg[:20], 4, 4, 0)
        + enc_frame(UNSET, msg[20:40], 4, 4, 0) + enc_frame(UNSET, msg[40:], 4, 4, FIN),
        "abort": b"\x3f\x07" + hello("fragmentation") + enc_frame(NOTIFY, msg[:20], 4, 4, 0)
        + enc_frame(UNSET, b"", 4, 4, FIN | ABORT),
        "disconnect": b"\x3f\x07" + hello() + enc_frame(DISCON, disconnect_kv(0, "bye")),
        "small-frames": b"\x00\x01" + hello("pipelining") + enc_frame(NOTIFY, msg, 1, 1),
        "response": b"\x3f\x07" + hello() + enc_frame(NOTIFY, res_msg(), 7, 7),
        # the dialects of their own: the model in the path, inferenceConfig, toolConfig, api-key
        "bedrock": b"\x3f\x07" + hello() + enc_frame(NOTIFY, req_msg(
            "/v1/bedrock/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            b'{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":10},'
            b'"toolConfig":{"tools":[{"toolSpec":{"name":"send_email"}},{"cachePoint":{}}]}}'), 8, 8),
        "azure": b"\x3f\x07" + hello() + enc_frame(NOTIFY, req_msg(
            "/v1/azure/openai/deployments/prod-4o/chat/completions", None, (b"api-key", b"az-fuzz")), 9, 9),
        "cohere": b"\x3f\x07" + hello() + enc_frame(NOTIFY, req_msg("/v1/cohere/v2/chat"), 10, 10),
    }
    for k, v in seeds.items():
        with open(os.path.join(d, "seed-" + k), "wb") as f:
            f.write(v)


if __name__ == "__main__":
    main()
