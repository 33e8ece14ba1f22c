#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_session: realistic HAProxy conversations.
Each seed starts with the harness's two settings bytes."""
import os
import struct
import sys


def vi(n):
    if n < 240:
        return bytes([n])
    out = bytearray([(n | 240) & 0xFF])
    n = (n - 240) >> 4
    while n >= 128:
        out.append((n | 128) & 0xFF)
        n = (n - 128) >> 7
    out.append(n)
    return bytes(out)


def name(s):
    return vi(len(s)) + s


def string(s):
    return b"\x08" + name(s)


def frame(t, flags, sid, fid, payload):
    body = bytes([t]) + struct.pack(">I", flags) + vi(sid) + vi(fid) + payload
    return struct.pack(">I", len(body)) + body


def hello(caps=b"pipelining,async", hc=False):
    kv = name(b"supported-versions") + string(b"2.0")
    kv += name(b"max-frame-size") + b"\x03" + vi(16380)
    kv += name(b"capabilities") + string(caps)
    if hc:
        kv += name(b"healthcheck") + b"\x11"
    kv += name(b"engine-id") + string(b"0A1B2C3D")
    return frame(1, 1, 0, 0, kv)


def req_msg():
    hdrs = b""
    for k, v in [(b"host", b"api.openai.com"), (b"content-type", b"application/json"),
                 (b"x-archestra-agent-id", b"agent-7"), (b"x-archestra-meta", b"a/exec-1/sess-2"),
                 (b"authorization", b"Bearer sk-fuzz")]:
        hdrs += name(k) + name(v)
    hdrs += b"\x00\x00"
    body = (b'{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hello"}],'
            b'"tools":[{"type":"function","function":{"name":"send_email"}}]}')
    args = [(b"id", string(b"7F000001:C9B2")), (b"method", string(b"POST")),
            (b"path", string(b"/v1/openai/chat/completions")), (b"query", b"\x00"),
            (b"hdrs", b"\x09" + name(hdrs)), (b"body", b"\x09" + name(body)),
            (b"body_len", b"\x02" + vi(len(body))), (b"src", b"\x06\x7f\x00\x00\x01"),
            (b"tls", b"\x11"), (b"v6", b"\x07" + bytes(16)), (b"u64", b"\x05" + vi(2**40))]
    return name(b"archestra-req") + bytes([len(args)]) + b"".join(name(k) + v for k, v in args)


def res_msg():
    hdrs = name(b"content-type") + name(b"application/json") + b"\x00\x00"
    body = (b'{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,'
            b'"prompt_tokens_details":{"cached_tokens":2}}}')
    ctx = b"1|openai|gpt-4o-mini|agent-7|alice|sess-9|exec-42||1732550000123456|0"
    args = [(b"id", string(b"x")), (b"status", b"\x02" + vi(200)), (b"hdrs", b"\x09" + name(hdrs)),
            (b"body", b"\x09" + name(body)), (b"body_len", b"\x02" + vi(len(body))),
            (b"body_size", b"\x02" + vi(len(body))), (b"ctx", string(ctx))]
    return name(b"archestra-res") + bytes([len(args)]) + b"".join(name(k) + v for k, v in args)


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


def main():
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
        "notify": b"\x3f\x07" + hello() + frame(3, 1, 1, 1, msg) + frame(3, 1, 2, 300, msg),
        "unknown-msg": b"\x3f\x07" + hello() + frame(3, 1, 5, 5, name(b"other") + b"\x00"),
        "fragments": b"\x3f\x07" + hello(b"pipelining,fragmentation") + frame(3, 0, 4, 4, msg[:20])
        + frame(0, 0, 4, 4, msg[20:40]) + frame(0, 1, 4, 4, msg[40:]),
        "abort": b"\x3f\x07" + hello(b"fragmentation") + frame(3, 0, 4, 4, msg[:20]) + frame(0, 3, 4, 4, b""),
        "disconnect": b"\x3f\x07" + hello() + frame(2, 1, 0, 0, name(b"status-code") + b"\x03\x00"
                                                   + name(b"message") + string(b"bye")),
        "small-frames": b"\x00\x01" + hello(b"pipelining") + frame(3, 1, 1, 1, msg),
        "response": b"\x3f\x07" + hello() + frame(3, 1, 7, 7, res_msg()),
    }
    for k, v in seeds.items():
        with open(os.path.join(d, "seed-" + k), "wb") as f:
            f.write(v)


if __name__ == "__main__":
    main()
