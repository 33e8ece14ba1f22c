#!/usr/bin/env python3
"""A local demo identity provider for `make run` and the tests: an RSA key, its JWKS,
and RS256 tokens signed with the openssl command (Python's standard library has no RSA).

    demo-issuer.py init DIR                      -> DIR/issuer.key, DIR/jwks.json (kid demo-1)
    demo-issuer.py token DIR [--sub alice] [--aud archestra] [--iss https://demo-issuer.local]
                             [--ttl 3600] [--providers openai,anthropic] [--kid demo-1]
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import time

ISSUER = "https://demo-issuer.local"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def init(d, kid="demo-1"):
    os.makedirs(d, exist_ok=True)
    key = os.path.join(d, "issuer.key")
    if not os.path.exists(key):
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
    mod = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True, capture_output=True,
                         text=True).stdout.strip().split("=", 1)[1]
    jwks = {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                      "n": b64url(bytes.fromhex(mod)), "e": "AQAB"}]}
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump(jwks, f, indent=1)


def token(d, sub, aud, iss, ttl, providers, kid, groups=""):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    claims = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + ttl}
    if providers:
        claims["llm_providers"] = providers.split(",")
    if groups:
        claims["groups"] = groups.split(",")
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(d, "issuer.key")],
                         input=signing_input.encode(), check=True, capture_output=True).stdout
    return signing_input + "." + b64url(sig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["init", "token"])
    ap.add_argument("dir")
    ap.add_argument("--sub", default="alice")
    ap.add_argument("--aud", default="archestra")
    ap.add_argument("--iss", default=ISSUER)
    ap.add_argument("--ttl", type=int, default=3600)
    ap.add_argument("--providers", default="")
    ap.add_argument("--kid", default="demo-1")
    ap.add_argument("--groups", default="")
    a = ap.parse_args()
    if a.cmd == "init":
        init(a.dir, a.kid)
    else:
        print(token(a.dir, a.sub, a.aud, a.iss, a.ttl, a.providers, a.kid, a.groups))


if __name__ == "__main__":
    sys.exit(main())
