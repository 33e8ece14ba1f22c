"""AWS Signature Version 4 (AWS4-HMAC-SHA256): sign a request, or verify a signed one.

Written from AWS's "Create a signed AWS API request", apart from the agent's C
signer (spoa/sigv4.c), so that each checks the other; the mock provider uses
`verify` to check what the gateway signs for Bedrock. Standard library only.

The rules, the same as spoa/sigv4.h states them:
- path: the non-S3 profile. Empty and "." segments go, ".." removes the segment
  before it (RFC 3986 5.2.4, trailing "/" kept), and each segment is URI-encoded
  once more as it is sent: "v1%3A0" signs as "v1%253A0".
- query: each name and value percent-decoded, then URI-encoded (RFC 3986
  unreserved kept, "+" is a literal plus), sorted by name then value; "a" is "a=".
- headers: names lower-cased, values trimmed with inner runs of spaces and tabs
  made one space, a repeated name's values joined with "," in the order received.
Text (str) is signed as UTF-8; bytes as they are.
"""

import calendar
import hashlib
import hmac
import time

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX = b"0123456789abcdefABCDEF"


def _bytes(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def uri_encode(data):
    """RFC 3986: unreserved bytes as they are, every other byte %XX (upper case)."""
    return "".join(chr(c) if c in _UNRESERVED else "%%%02X" % c for c in _bytes(data))


def percent_decode(data):
    """%XX with two hex digits becomes the byte; anything else, "+" included, stays."""
    data, out, i = _bytes(data), bytearray(), 0
    while i < len(data):
        if data[i] == 0x25 and i + 2 < len(data) and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append(int(data[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def canonical_path(path):
    path = _bytes(path)
    if not path.startswith(b"/"):
        raise ValueError("path must start with /")
    kept = []
    for seg in path.split(b"/")[1:]:
        if seg == b"..":
            if kept:
                kept.pop()
        elif seg not in (b"", b"."):
            kept.append(seg)
    if not kept:
        return "/"
    last = path.split(b"/")[-1]
    return "/" + "/".join(uri_encode(s) for s in kept) + ("/" if last in (b"", b".", b"..") else "")


def canonical_query(query):
    params = []
    for piece in _bytes(query).split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        params.append((uri_encode(percent_decode(name)), uri_encode(percent_decode(value))))
    # Sorted as bytes, name first: the encoded text is ASCII, so str order is byte order.
    return "&".join("%s=%s" % p for p in sorted(params))


def canonical_value(value):
    return " ".join(w for w in value.replace("\t", " ").split(" ") if w)


def canonical_headers(headers, signed):
    """headers: (name, value) pairs as sent; signed: the lower-case names to sign."""
    lines = []
    for name in signed:
        values = [canonical_value(v) for n, v in headers if n.lower() == name]
        if not values:
            raise KeyError(name)
        lines.append("%s:%s\n" % (name, ",".join(values)))
    return "".join(lines)


def canonical_request(method, path, query, headers, signed, payload_sha256):
    return "\n".join([method, canonical_path(path), canonical_query(query),
                      canonical_headers(headers, signed), ";".join(signed), payload_sha256])


def scope(date8, region, service):
    return "%s/%s/%s/aws4_request" % (date8, region, service)


def string_to_sign(amz_date, cred_scope, creq):
    return "\n".join([ALGORITHM, amz_date, cred_scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key, date8, region, service):
    k = _hmac(("AWS4" + secret_key).encode("utf-8"), date8)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def amz_date(epoch):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def sign(method, path, query, headers, body, *, access_key_id, secret_key, region, service,
         amz_date_value, session_token=None, sign_content_sha256=True):
    """The headers to add to a request: host must be among `headers` already.
    Returns {"authorization", "x-amz-date", "x-amz-content-sha256"[, "x-amz-security-token"]},
    and the canonical request and string to sign under "_creq" and "_sts"."""
    payload = hashlib.sha256(_bytes(body)).hexdigest()
    added = {"x-amz-date": amz_date_value, "x-amz-content-sha256": payload}
    if session_token:
        added["x-amz-security-token"] = session_token
    all_headers = list(headers) + list(added.items())
    signed = sorted({n.lower() for n, _ in headers} | {"x-amz-date"}
                    | ({"x-amz-content-sha256"} if sign_content_sha256 else set())
                    | ({"x-amz-security-token"} if session_token else set()))
    creq = canonical_request(method, path, query, all_headers, signed, payload)
    cred_scope = scope(amz_date_value[:8], region, service)
    sts = string_to_sign(amz_date_value, cred_scope, creq)
    sig = hmac.new(signing_key(secret_key, amz_date_value[:8], region, service), sts.encode(), hashlib.sha256)
    added["authorization"] = "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        ALGORITHM, access_key_id, cred_scope, ";".join(signed), sig.hexdigest())
    added["_creq"], added["_sts"] = creq, sts
    return added


def parse_authorization(value):
    """{"credential": [akid, date8, region, service], "signed": [...], "signature": hex}, or ValueError."""
    if not value.startswith(ALGORITHM + " "):
        raise ValueError("not %s" % ALGORITHM)
    fields = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        k, eq, v = part.strip().partition("=")
        if not eq or k in fields:
            raise ValueError("malformed or repeated field %r" % k)
        fields[k] = v
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise ValueError("fields %s" % sorted(fields))
    cred = fields["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request" or not all(cred):
        raise ValueError("credential %r" % fields["Credential"])
    signed = fields["SignedHeaders"].split(";")
    if signed != sorted(set(signed)) or any(n != n.lower() or not n for n in signed):
        raise ValueError("signed headers %r" % fields["SignedHeaders"])
    sig = fields["Signature"]
    if len(sig) != 64 or any(c not in "0123456789abcdef" for c in sig):
        raise ValueError("signature %r" % sig)
    return {"credential": cred[:4], "signed": signed, "signature": sig}


def verify(method, path, query, headers, body, secret_for, *, region=None, service=None,
           now=None, max_skew=900):
    """Checks a received request's signature. headers: (name, value) pairs as received;
    secret_for: the secret key (str) or a function from access key id to it (None:
    unknown). Returns (True, access_key_id) or (False, why)."""
    def one(name):
        vals = [v for n, v in headers if n.lower() == name]
        return vals[0] if len(vals) == 1 else None

    authz = one("authorization")
    if authz is None:
        return False, "no single Authorization header"
    try:
        a = parse_authorization(authz)
    except ValueError as e:
        return False, "Authorization: %s" % e
    akid, date8, reg, svc = a["credential"]
    secret = secret_for(akid) if callable(secret_for) else secret_for
    if secret is None:
        return False, "unknown access key id %s" % akid
    if (region and reg != region) or (service and svc != service):
        return False, "scope %s/%s, expected %s/%s" % (reg, svc, region, service)
    for must in ("host", "x-amz-date"):
        if must not in a["signed"]:
            return False, "%s is not signed" % must
    stamp = one("x-amz-date")
    if stamp is None or len(stamp) != 16 or stamp[:8] != date8:
        return False, "x-amz-date %r does not match the credential's date %s" % (stamp, date8)
    if now is not None:
        try:
            t = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return False, "x-amz-date %r" % stamp
        if abs(now - t) > max_skew:
            return False, "x-amz-date %s is more than %ds from now" % (stamp, max_skew)
    payload = hashlib.sha256(_bytes(body)).hexdigest()
    claimed = one("x-amz-content-sha256")
    if claimed is not None and claimed != payload:
        return False, "x-amz-content-sha256 is not the body's hash"
    if one("x-amz-security-token") is not None and "x-amz-security-token" not in a["signed"]:
        return False, "x-amz-security-token is not signed"
    try:
        creq = canonical_request(method, path, query, headers, a["signed"], payload)
    except KeyError as e:
        return False, "signed header %s is missing" % e
    except ValueError as e:
        return False, str(e)
    sts = string_to_sign(stamp, scope(date8, reg, svc), creq)
    want = hmac.new(signing_key(secret, date8, reg, svc), sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, a["signature"]):
        return False, "signature mismatch"
    return True, akid
