#!/usr/bin/env python3
"""tests/mock/sigv4.py against AWS's published SigV4 vectors, in TAP.

The vectors are those of AWS's aws-sig-v4-test-suite (credentials AKIDEXAMPLE,
us-east-1, service "service", 20150830T123600Z): for each, the SHA-256 of our
canonical request must be the one in the published string to sign, and the
signature the published one; `verify` must accept the signed request and refuse it
changed. Then the IAM example of AWS's documentation, the signing-key example, and
the Bedrock Converse call that test_sigv4.c signs (with botocore, AWS's own signer,
as a third opinion when it is installed)."""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4  # noqa: E402

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
DATE = "20150830T123600Z"
HOST = ("Host", "example.amazonaws.com")
TOKEN = ("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmx"
         "fpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0"
         "KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64l"
         "IZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")
VANILLA = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
POST_VANILLA = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"

# name, method, path, query, headers besides Host, body, session token,
# SHA-256 of the canonical request (the string to sign's last line), signature.
VECTORS = [
    ("get-header-key-duplicate", "GET", "/", "",
     [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], "", None,
     "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
    ("get-header-value-order", "GET", "/", "",
     [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
     "", None,
     "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
    ("get-header-value-trim", "GET", "/", "",
     [("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')], "", None,
     "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ("get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "",
     [], "", None,
     "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    ("get-utf8", "GET", "/\u1234", "", [], "", None,
     "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-vanilla", "GET", "/", "", [], "", None,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", VANILLA),
    ("get-vanilla-empty-query-key", "GET", "/", "Param1=value1", [], "", None,
     "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
    ("get-vanilla-query-order-key", "GET", "/", "Param1=value2&Param1=Value1", [], "", None,
     "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"),
    ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", [], "", None,
     "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1", [], "", None,
     "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"),
    ("get-vanilla-query-unreserved", "GET", "/",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", [], "", None,
     "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    ("get-vanilla-utf8-query", "GET", "/", "\u1234=bar", [], "", None,
     "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    ("post-header-key-case", "POST", "/", "", [], "", None,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87", POST_VANILLA),
    ("post-header-key-sort", "POST", "/", "", [("My-Header1", "value1")], "", None,
     "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("post-header-value-case", "POST", "/", "", [("My-Header1", "VALUE1")], "", None,
     "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
    ("post-vanilla", "POST", "/", "", [], "", None,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87", POST_VANILLA),
    ("post-vanilla-empty-query-value", "POST", "/", "Param1=value1", [], "", None,
     "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    # The suite's .creq lists content-length too, but its .sts hashes the request
    # without it, and its .authz signs content-type;host;x-amz-date: the .sts rules.
    ("post-x-www-form-urlencoded", "POST", "/", "",
     [("Content-Type", "application/x-www-form-urlencoded")], "Param1=value1", None,
     "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    # Likewise; and the .sts was made with "charset=utf8" (no dash), whatever the .req says.
    ("post-x-www-form-urlencoded-parameters", "POST", "/", "",
     [("Content-Type", "application/x-www-form-urlencoded; charset=utf8")], "Param1=value1", None,
     "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"),
    ("normalize-path/get-relative", "GET", "/example/..", "", [], "", None,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", VANILLA),
    ("normalize-path/get-relative-relative", "GET", "/example1/example2/../..", "", [], "", None,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", VANILLA),
    ("normalize-path/get-slash", "GET", "//", "", [], "", None,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", VANILLA),
    ("normalize-path/get-slash-dot-slash", "GET", "/./", "", [], "", None,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", VANILLA),
    ("normalize-path/get-slash-pointless-dot", "GET", "/./example", "", [], "", None,
     "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"),
    ("normalize-path/get-slashes", "GET", "//example//", "", [], "", None,
     "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
    ("normalize-path/get-space", "GET", "/example space/", "", [], "", None,
     "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
    ("post-sts-token/post-sts-header-before", "POST", "/", "", [], "", TOKEN,
     "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
    # "after": the token header is added once signed, so it is signed without one.
    ("post-sts-token/post-sts-header-after", "POST", "/", "", [], "", None,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87", POST_VANILLA),
]

# The Bedrock Converse call test_sigv4.c signs (same inputs, same expected values).
BEDROCK = dict(
    method="POST", path="/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", query="",
    host="bedrock-runtime.us-east-1.amazonaws.com",
    body='{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}',
    akid="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    token="FwoGZXIvYXdzEXAMPLEsessiontoken/+=", date="20240620T101500Z", epoch=1718878500,
)
BEDROCK_PAYLOAD = "f5b802cc64a01910fd197a46e9e959f3a5795f7728fa5710fb28f1ec3019f545"
# botocore 1.43 (SigV4Auth with its clock patched) gives the same signature.
BEDROCK_SIG = "993a962c5473fb18b15ed7eca471427811bd7a2ca56a6b44f89d80afc87b1c7a"


results = []


def check(ok, name, why=""):
    results.append((bool(ok), name, why))


def bedrock_sign(token=True):
    b = BEDROCK
    return sigv4.sign(b["method"], b["path"], b["query"],
                      [("host", b["host"]), ("content-type", "application/json")], b["body"],
                      access_key_id=b["akid"], secret_key=b["secret"], region="us-east-1",
                      service="bedrock", amz_date_value=b["date"],
                      session_token=b["token"] if token else None)


def main():
    for name, method, path, query, hdrs, body, token, creq_sha, sig in VECTORS:
        headers = [HOST] + hdrs
        out = sigv4.sign(method, path, query, headers, body, access_key_id=AKID, secret_key=SECRET,
                         region="us-east-1", service="service", amz_date_value=DATE,
                         session_token=token, sign_content_sha256=False)
        got = hashlib.sha256(out["_creq"].encode()).hexdigest()
        check(got == creq_sha, name + ": canonical request", got)
        want_sts = "AWS4-HMAC-SHA256\n%s\n20150830/us-east-1/service/aws4_request\n%s" % (DATE, creq_sha)
        check(out["_sts"] == want_sts, name + ": string to sign", out["_sts"])
        check(out["authorization"].endswith("Signature=" + sig), name + ": signature", out["authorization"])
        sent = headers + [(k, v) for k, v in out.items() if not k.startswith("_")]
        ok, why = sigv4.verify(method, path, query, sent, body, SECRET, region="us-east-1", service="service")
        check(ok, name + ": verify accepts it", why)
        ok, why = sigv4.verify(method, path, query, sent, body + "x", SECRET)
        if body:  # an unsigned x-amz-content-sha256 is not sent: a changed body changes the hash
            check(not ok, name + ": verify refuses another body", why)
        ok, why = sigv4.verify(method, path + "x", query, sent, body, SECRET)
        check(not ok, name + ": verify refuses another path", why)

    # IAM ListUsers, from AWS's "Create a signed AWS API request" (2015 edition).
    out = sigv4.sign("GET", "/", "Action=ListUsers&Version=2010-05-08",
                     [("Host", "iam.amazonaws.com"),
                      ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], "",
                     access_key_id=AKID, secret_key=SECRET, region="us-east-1", service="iam",
                     amz_date_value=DATE, sign_content_sha256=False)
    check(hashlib.sha256(out["_creq"].encode()).hexdigest()
          == "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59", "iam: canonical request")
    check(out["authorization"] == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
          "SignedHeaders=content-type;host;x-amz-date, "
          "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7", "iam: authorization",
          out["authorization"])
    # "Examples of how to derive a signing key for Signature Version 4".
    check(sigv4.signing_key(SECRET, "20120215", "us-east-1", "iam").hex()
          == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d", "signing key example")
    check(sigv4.amz_date(1440938160) == DATE, "amz_date")

    # Bedrock: the double-encoded model id, and the value test_sigv4.c expects.
    out = bedrock_sign()
    lines = out["_creq"].split("\n")
    check(lines[1] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse", "bedrock: path", lines[1])
    check(out["x-amz-content-sha256"] == BEDROCK_PAYLOAD == hashlib.sha256(BEDROCK["body"].encode()).hexdigest(),
          "bedrock: payload")
    check("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token," in
          out["authorization"], "bedrock: signed headers", out["authorization"])
    check(out["authorization"].endswith("Signature=" + BEDROCK_SIG), "bedrock: signature", out["authorization"])
    b = BEDROCK
    sent = [("Host", b["host"]), ("Content-Type", "application/json")] + \
        [(k, v) for k, v in out.items() if not k.startswith("_")]
    ok, why = sigv4.verify("POST", b["path"], "", sent, b["body"], {b["akid"]: b["secret"]}.get,
                           region="us-east-1", service="bedrock", now=b["epoch"] + 60)
    check(ok, "bedrock: verify accepts it", why)
    for label, args, kw in [
            ("another body", ("POST", b["path"], "", sent, b["body"] + " "), {}),
            ("another model", ("POST", b["path"].replace("v1%3A0", "v2%3A0"), "", sent, b["body"]), {}),
            ("the path decoded", ("POST", b["path"].replace("%3A", ":"), "", sent, b["body"]), {}),
            ("another secret", ("POST", b["path"], "", sent, b["body"]), {"secret": "x" + b["secret"]}),
            ("an unknown key id", ("POST", b["path"], "", sent, b["body"]), {"secret": {}.get}),
            ("a stale date", ("POST", b["path"], "", sent, b["body"]), {"now": b["epoch"] + 3600}),
            ("another region", ("POST", b["path"], "", sent, b["body"]), {"region": "eu-west-1"}),
            ("a changed token", ("POST", b["path"], "",
                                 [(k, v + "A" if k == "x-amz-security-token" else v) for k, v in sent],
                                 b["body"]), {}),
            ("a changed content-type", ("POST", b["path"], "",
                                        [(k, "text/plain" if k == "Content-Type" else v) for k, v in sent],
                                        b["body"]), {})]:
        secret = kw.pop("secret", b["secret"])
        ok, why = sigv4.verify(*args, secret, **kw)
        check(not ok, "bedrock: verify refuses " + label, why)

    # botocore, AWS's own Python signer, as a third implementation when installed.
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        import botocore.auth
        import datetime
        from unittest import mock
        botocore.auth.get_current_datetime  # the clock it reads (botocore >= 1.33)
    except (ImportError, AttributeError):
        results.append((True, "bedrock: botocore agrees # SKIP no botocore with get_current_datetime", ""))
    else:
        req = AWSRequest(method="POST", url="https://%s%s" % (b["host"], b["path"]), data=b["body"].encode(),
                         headers={"Content-Type": "application/json"})
        req.headers["X-Amz-Content-SHA256"] = out["x-amz-content-sha256"]
        with mock.patch("botocore.auth.get_current_datetime", return_value=datetime.datetime(2024, 6, 20, 10, 15)):
            SigV4Auth(Credentials(b["akid"], b["secret"], b["token"]), "bedrock", "us-east-1").add_auth(req)
        check(req.headers["Authorization"] == out["authorization"], "bedrock: botocore agrees",
              req.headers["Authorization"])

    print("1..%d" % len(results))
    for i, (ok, name, why) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
        if not ok and why:
            print("# " + str(why).replace("\n", "\\n"))
    return 0 if all(ok for ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
