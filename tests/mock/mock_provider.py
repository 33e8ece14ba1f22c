#!/usr/bin/env python3
"""mock_provider.py: a fake OpenAI / Anthropic / Gemini upstream for end-to-end gateway tests.

    python3 mock_provider.py --port N [--host 127.0.0.1] [--cert server.pem|server.crt
                             [--key server.key]] [--chunk-delay-ms 30] [--verbose]

Python 3.11 standard library only. --port 0 picks a free port; the ready line names it:
    mock-provider ready port=N tls=1|0

Upstream paths (the gateway strips its own prefixes before forwarding):
    POST /v1/chat/completions                          OpenAI chat completions (+ "stream")
    GET  /v1/models, /v1/models/{id}                   OpenAI model list (Anthropic shape when
                                                       the request has an anthropic-version header)
    POST /v1/messages                                  Anthropic messages (+ "stream")
    POST /v1/messages/count_tokens                     Anthropic token counting
    POST /v1beta/models/{model}:generateContent        Gemini (also /v1/... and /v1alpha/...)
    POST /v1beta/models/{model}:streamGenerateContent  ?alt=sse -> SSE, otherwise a JSON array
    POST /v1beta/models/{model}:countTokens            Gemini token counting
    GET  /v1beta/models                                Gemini model list
    GET  /__mock/requests   POST /__mock/reset   GET /__mock/health   (test harness only)

TOKEN COUNTS (deterministic, so tests can predict them):
    prompt/input tokens = len(json.dumps(X)) // 4 + 1
        X = body["messages"]  for OpenAI and Anthropic,
            body["contents"]  for Gemini,
        [] when the field is absent. json.dumps with Python's defaults: ensure_ascii=True,
        separators (", ", ": "), keys in the order they appear in the request.
    completion/output tokens = COMPLETION_TOKENS = 12, text or tool call, streamed or not.
    total = prompt + completion. cached_tokens, reasoning_tokens, cache_creation_input_tokens
    and cache_read_input_tokens are always 0.

MODEL NAMES THAT CHANGE BEHAVIOUR:
    mock-error-NNN     (NNN in 400..599) answers status NNN in the provider's error shape
                       (so "mock-error-500" answers 500; 429 adds retry-after: 1)
    mock-slow          sleeps 2 s before answering (streams too, before the headers)
    mock-stream-abort  streamed: two events, then the connection is closed without the final
                       0-chunk; not streamed: the connection is closed with no response at all

TOOLS: when the request declares tools (OpenAI "tools"/"functions", Anthropic "tools", Gemini
"tools[].functionDeclarations"), the answer calls the FIRST declared tool, with arguments built
from its JSON schema (an email-ish {to, body} gives {"to":"alice@example.com","body":"hi"}; an
empty or missing schema gives {}). Exceptions, as the real APIs behave: a tool choice that names
another declared tool calls that one; tool choice "none" (OpenAI "none", Anthropic {"type":"none"},
Gemini mode NONE) answers text; and when the last message is a tool result (OpenAI role "tool",
Anthropic tool_result block, Gemini functionResponse part) the answer is text, so agent loops end.
Legacy OpenAI "functions" are answered with tool_calls too (not function_call).

ECHO: every response carries x-mock-echo: base64(compact JSON
    {"method","path","query","headers":{lowercased name: value},"body_sha256","body_len"})
where path is the request target's path as received (no query), query the raw query string ("" if
none), repeated headers joined with ", ". GET /__mock/requests returns the last 1000 requests
(oldest first) as those objects plus "ts" (epoch seconds), "tls" (bool), "sni" (TLS server name
or null), "remote" ("ip:port"), "status" (the status answered, null when none was) and "body"
(the first 64 KiB of the body, UTF-8 with replacement). POST /__mock/reset clears it. /__mock/
requests are not recorded themselves.

A per-request header x-mock-chunk-delay-ms overrides --chunk-delay-ms for that request.

RESPONSE SHAPING (request headers, for tests of response inspection; whole bodies only, not
streams): x-mock-response: base64(bytes) answers 200 with exactly those bytes as the JSON body
(the request is still recorded); x-mock-pad: N inserts "x_mock_pad":"xxx..." (N bytes) as the
first member of a JSON object body; x-mock-gzip: 1 gzips the body and sets Content-Encoding: gzip
whatever Accept-Encoding says; x-mock-chunked: 1 sends it with Transfer-Encoding: chunked instead
of Content-Length. They combine, in that order. x-mock-sse: base64(bytes) answers 200
text/event-stream with exactly those bytes, each event (up to its blank line) a chunk of its
own with the chunk delay between; with x-mock-sse-cut: 1 the connection ends after the last
event without the end of the chunked body (a provider that died mid-stream). x-mock-sse-big: N
streams one text event of N bytes of content, then [DONE].
"""

import argparse
import base64
import collections
import gzip
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import ssl
import string
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 64 * 1024 * 1024
COMPLETION_TOKENS = 12
LOG_MAX = 1000
LOG_BODY_MAX = 64 * 1024
SLOW_SECONDS = 2.0

TEXT_PIECES = ["Hello", " from", " the", " mock", " provider", "."]
TEXT = "".join(TEXT_PIECES)

OPENAI_MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini",
                 "mock-slow", "mock-error-500", "mock-stream-abort"]
ANTHROPIC_MODELS = [("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
                    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z")]
GEMINI_MODELS = ["gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro"]

ALNUM = string.ascii_letters + string.digits
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

OPTS = argparse.Namespace(verbose=False, chunk_delay_ms=30.0)


def rand(alphabet, n):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def vlog(msg):
    if OPTS.verbose:
        sys.stderr.write("mock-provider: %s\n" % msg)
        sys.stderr.flush()


def prompt_tokens(value):
    """The documented formula: len(json.dumps(value)) // 4 + 1."""
    try:
        return len(json.dumps(value)) // 4 + 1
    except (ValueError, TypeError, RecursionError):
        return 1


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------

LOG = collections.deque(maxlen=LOG_MAX)
LOG_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Tool arguments from a JSON schema
# --------------------------------------------------------------------------------------------

def _string_example(name, schema):
    n = name.lower()
    fmt = str(schema.get("format", "")).lower()
    words = set(re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()))
    if fmt == "email" or "email" in n or n in ("to", "recipient", "cc", "bcc", "from", "sender"):
        return "alice@example.com"
    if fmt == "date-time" or n in ("timestamp", "datetime", "time"):
        return "2025-01-01T12:00:00Z"
    if fmt == "date" or "date" in words:
        return "2025-01-01"
    if fmt in ("uri", "url") or "url" in words or "uri" in words or "link" in words:
        return "https://example.com/"
    if n in ("body", "message", "text", "content", "msg", "prompt", "comment", "note"):
        return "hi"
    if "subject" in words or "title" in words:
        return "Hello"
    if words & {"city", "location", "place", "address"}:
        return "Paris"
    if n in ("q", "query", "search", "keywords") or "query" in words:
        return "mock query"
    if "unit" in words or "units" in words:
        return "celsius"
    if words & {"lang", "language", "locale"}:
        return "en"
    if words & {"path", "file", "filename"}:
        return "/tmp/mock.txt"
    if "id" in words or n.endswith("id"):
        return "mock-id-1"
    if "name" in words or n == "user" or n == "username":
        return "Alice"
    return "mock"


def example_value(name, schema, depth=0):
    if not isinstance(schema, dict):
        schema = {}
    for key in ("const",):
        if key in schema:
            return schema[key]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        alts = schema.get(key)
        if isinstance(alts, list) and alts and "type" not in schema:
            alts = [a for a in alts if not (isinstance(a, dict) and a.get("type") == "null")] or alts
            return example_value(name, alts[0], depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    t = t.lower() if isinstance(t, str) else None
    if t is None:
        t = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if t == "object":
        return example_args(schema, depth + 1) if depth < 6 else {}
    if t == "array":
        if depth >= 6:
            return []
        item_name = name[:-1] if name.endswith("s") and len(name) > 1 else name
        return [example_value(item_name, schema.get("items"), depth + 1)]
    if t == "integer":
        return 1
    if t == "number":
        return 1.5
    if t == "boolean":
        return True
    if t == "null":
        return None
    return _string_example(name, schema)


def example_args(schema, depth=0):
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    return {str(k): example_value(str(k), v, depth) for k, v in props.items()}


def split_pieces(s, n=3):
    """Split s into up to n non-empty pieces whose concatenation is s."""
    if len(s) <= 1:
        return [s]
    size = max(1, -(-len(s) // n))
    return [s[i:i + size] for i in range(0, len(s), size)]


# --------------------------------------------------------------------------------------------
# Tool selection per provider: returns (name, schema) or None for a text answer
# --------------------------------------------------------------------------------------------

def pick(decls, wanted):
    if not decls:
        return None
    if wanted:
        for d in decls:
            if d[0] == wanted:
                return d
    return decls[0]


def openai_tool(body):
    decls = []
    for key in ("tools", "functions"):
        items = body.get(key)
        if isinstance(items, list):
            for t in items:
                if not isinstance(t, dict):
                    continue
                fn = t.get("function") if isinstance(t.get("function"), dict) else t
                if isinstance(fn.get("name"), str) and fn["name"]:
                    decls.append((fn["name"], fn.get("parameters")))
        if decls:
            break
    if not decls:
        return None
    msgs = body.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict) and \
            msgs[-1].get("role") in ("tool", "function"):
        return None
    choice = body.get("tool_choice", body.get("function_call"))
    if choice == "none":
        return None
    wanted = None
    if isinstance(choice, dict):
        fn = choice.get("function")
        wanted = fn.get("name") if isinstance(fn, dict) else choice.get("name")
    return pick(decls, wanted)


def anthropic_tool(body):
    decls = []
    tools = body.get("tools")
    if isinstance(tools, list):
        for t in tools:
            if isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"]:
                decls.append((t["name"], t.get("input_schema")))
    if not decls:
        return None
    msgs = body.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
        content = msgs[-1].get("content")
        if msgs[-1].get("role") == "user" and isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return None
    choice = body.get("tool_choice")
    wanted = None
    if isinstance(choice, dict):
        if choice.get("type") == "none":
            return None
        if choice.get("type") == "tool":
            wanted = choice.get("name")
    return pick(decls, wanted)


def gemini_tool(body):
    decls = []
    tools = body.get("tools")
    if isinstance(tools, list):
        for t in tools:
            if not isinstance(t, dict):
                continue
            fds = t.get("functionDeclarations", t.get("function_declarations"))
            if isinstance(fds, list):
                for fd in fds:
                    if isinstance(fd, dict) and isinstance(fd.get("name"), str) and fd["name"]:
                        schema = fd.get("parameters", fd.get("parametersJsonSchema",
                                                             fd.get("parameters_json_schema")))
                        decls.append((fd["name"], schema))
    if not decls:
        return None
    contents = body.get("contents")
    if isinstance(contents, list) and contents and isinstance(contents[-1], dict):
        parts = contents[-1].get("parts")
        if isinstance(parts, list) and any(
                isinstance(p, dict) and ("functionResponse" in p or "function_response" in p)
                for p in parts):
            return None
    cfg = body.get("toolConfig", body.get("tool_config"))
    wanted = None
    if isinstance(cfg, dict):
        fcc = cfg.get("functionCallingConfig", cfg.get("function_calling_config"))
        if isinstance(fcc, dict):
            if str(fcc.get("mode", "")).upper() == "NONE":
                return None
            allowed = fcc.get("allowedFunctionNames", fcc.get("allowed_function_names"))
            if isinstance(allowed, list) and allowed:
                wanted = allowed[0]
    return pick(decls, wanted)


# --------------------------------------------------------------------------------------------
# Error shapes
# --------------------------------------------------------------------------------------------

OPENAI_ERR = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
              403: ("invalid_request_error", "unsupported_country_region_territory"),
              404: ("invalid_request_error", None), 405: ("invalid_request_error", None),
              413: ("invalid_request_error", "request_too_large"),
              429: ("requests", "rate_limit_exceeded"), 500: ("server_error", None),
              503: ("server_error", "service_unavailable")}
ANTHROPIC_ERR = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                 403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                 504: "timeout_error", 529: "overloaded_error"}
GEMINI_ERR = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 405: "INVALID_ARGUMENT", 409: "ABORTED", 413: "INVALID_ARGUMENT",
              429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
              503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(kind, status, message, code=None):
    if kind == "anthropic":
        etype = ANTHROPIC_ERR.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": message},
                "request_id": "req_011C" + rand(B58, 20)}
    if kind == "gemini":
        st = GEMINI_ERR.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": st}}
    if kind in ("cohere", "bedrock"):
        return {"id": secrets.token_hex(16), "message": message} if kind == "cohere" else {"message": message}
    etype, ecode = OPENAI_ERR.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                           None))
    return {"error": {"message": message, "type": etype, "param": None,
                      "code": code if code is not None else ecode}}


class HTTPFail(Exception):
    def __init__(self, status, message, code=None, close=False):
        super().__init__(message)
        self.status, self.message, self.code, self.close = status, message, code, close


class Disconnected(Exception):
    pass


class Abort(Exception):
    """Drop the connection without (finishing) a response."""


RE_GEMINI = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):([A-Za-z]+)$")
RE_OPENAI_MODEL = re.compile(r"^/v1/models/([^/]+)$")
# AWS Bedrock runtime: the Converse API, the model id (escaped) in the path.
RE_BEDROCK = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
# Azure OpenAI: the deployment names the model; api-version is required.
RE_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")
# OpenAI-compatible providers serve OpenAI's API under a base path of their own:
# Groq /openai/v1, OpenRouter /api/v1, Zhipu AI /api/paas/v4, DeepSeek and Perplexity
# at the root. The mock answers them all as OpenAI does.
OPENAI_COMPATIBLE_BASES = ("/openai/v1", "/api/paas/v4", "/api/v1")
OPENAI_ROOT_PATHS = ("/chat/completions", "/completions", "/embeddings", "/models")


def openai_path(path):
    """The OpenAI path an OpenAI-compatible provider's path stands for."""
    for base in OPENAI_COMPATIBLE_BASES:
        if path.startswith(base + "/"):
            return "/v1" + path[len(base):]
    if path in OPENAI_ROOT_PATHS or path.startswith("/models/"):
        return "/v1" + path
    return path
RE_CHUNK_SIZE = re.compile(rb"^[0-9A-Fa-f]{1,15}$")
RE_MOCK_ERROR = re.compile(r"^mock-error-([45][0-9][0-9])$")


# --------------------------------------------------------------------------------------------
# The handler
# --------------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-provider/1.0"
    sys_version = ""

    def version_string(self):
        return self.server_version
    timeout = 300  # idle keep-alive timeout, seconds (--idle-timeout)

    # ---- plumbing ------------------------------------------------------------------------

    def log_message(self, fmt, *args):
        if OPTS.verbose:
            sys.stderr.write("mock-provider: %s %s\n" % (self.address_string(), fmt % args))

    def handle_expect_100(self):
        # Refuse to invite a body we will reject anyway: answer 413 straight from do_*.
        try:
            if int(self.headers.get("Content-Length", "0")) > MAX_BODY:
                return True
        except ValueError:
            pass
        return super().handle_expect_100()

    def parse_request(self):
        ok = super().parse_request()
        if ok and self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return ok

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors from http.server (bad request line, huge headers...)."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # always send a status line and headers
        short = self.responses.get(code, ("Error", ""))[0]
        body = json.dumps(error_body("openai", code, message or short)).encode()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def do_GET(self):
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # ---- per-request entry point --------------------------------------------------------

    def _serve(self):
        self._headers_sent = False
        self._recorded = False
        self._echo_b64 = ""
        self._record = None
        self._abort = False
        raw = self.path
        if raw.startswith("/"):
            path, _, query = raw.partition("?")
            path = path.partition("#")[0]
        else:  # absolute-form request target
            parts = urlsplit(raw)
            path, query = parts.path or "/", parts.query
        self._raw_path, self._query = path, query
        self._kind = "openai"
        try:
            try:
                body = self._read_body()
            except HTTPFail as e:  # framing problems: answer, then close
                self._set_echo(b"")
                self._send_error(e.status, e.message, close=True)
                if e.status == 413:
                    self._linger()
                return
            self._set_echo(body)
            try:
                self._route(self.command, unquote(path), body)
            except HTTPFail as e:
                if self._headers_sent:
                    raise
                self._send_error(e.status, e.message, code=e.code, close=e.close)
        except Abort:
            self._log_once(None if not self._headers_sent else 200)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (Disconnected, OSError) as e:
            # Client went away (BrokenPipe, ConnectionReset, SSL EOF, timeout...).
            vlog("connection dropped: %r" % (e,))
            self.close_connection = True
        except Exception:  # a bug in the mock: never take the server down
            self.close_connection = True
            sys.stderr.write("mock-provider: internal error on %s %s\n%s" % (
                self.command, self.path, traceback.format_exc()))
            sys.stderr.flush()
            if not self._headers_sent:
                try:
                    self._send_error(500, "mock-provider internal error", close=True)
                except Exception:
                    pass

    # ---- body ---------------------------------------------------------------------------

    def _read_exact(self, n):
        parts, left = [], n
        while left > 0:
            b = self.rfile.read(min(left, 1 << 20))
            if not b:
                raise Disconnected("EOF in body")
            parts.append(b)
            left -= len(b)
        return b"".join(parts)

    def _read_body(self):
        te = ",".join(self.headers.get_all("Transfer-Encoding") or []).strip().lower()
        if te:
            codings = [c.strip() for c in te.split(",") if c.strip()]
            if not codings or codings[-1] != "chunked":
                raise HTTPFail(400, "Unsupported Transfer-Encoding: %s" % te, close=True)
            if self.headers.get("Content-Length") is not None:
                self.close_connection = True  # RFC 9112 6.1: TE wins, but do not reuse
            return self._read_chunked()
        lens = self.headers.get_all("Content-Length") or []
        if not lens:
            return b""
        vals = {v.strip() for l in lens for v in l.split(",")}
        if len(vals) != 1 or not next(iter(vals)).isdigit():
            raise HTTPFail(400, "Invalid Content-Length header", close=True)
        n = int(next(iter(vals)))
        if n > MAX_BODY:
            raise HTTPFail(413, "Request body too large: %d bytes (max %d)" % (n, MAX_BODY),
                           close=True)
        return self._read_exact(n)

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(4097)
            if not line:
                raise Disconnected("EOF in chunk size")
            if not line.endswith(b"\n"):
                raise HTTPFail(400, "Chunk size line too long", close=True)
            size_s = line.split(b";", 1)[0].strip()
            if not RE_CHUNK_SIZE.match(size_s):
                raise HTTPFail(400, "Invalid chunk size", close=True)
            size = int(size_s, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise HTTPFail(413, "Request body too large (max %d bytes)" % MAX_BODY, close=True)
            parts.append(self._read_exact(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise HTTPFail(400, "Missing CRLF after chunk data", close=True)
        for _ in range(100):  # trailers
            line = self.rfile.readline(65537)
            if not line:
                raise Disconnected("EOF in trailers")
            if line in (b"\r\n", b"\n"):
                break
        return b"".join(parts)

    def _linger(self):
        """After an early error, read and drop what the client is still sending (max 2 s) so
        that closing does not reset the connection before the client reads our answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    # ---- echo and log -------------------------------------------------------------------

    def _set_echo(self, body):
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        echo = {"method": self.command, "path": self._raw_path, "query": self._query,
                "headers": headers, "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_len": len(body)}
        self._sigv4 = None
        if headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            # AWS Signature V4, checked as AWS does, with the credentials the test gave
            # the gateway (MOCK_AWS_CREDENTIALS=ACCESS_KEY_ID:SECRET)
            import sigv4
            akid, _, secret = os.environ.get("MOCK_AWS_CREDENTIALS", "").partition(":")
            host = headers.get("host", "")
            region = host.split(".")[1] if host.startswith("bedrock-runtime.") else None
            ok, why = sigv4.verify(self.command, self._raw_path, self._query, list(self.headers.items()), body,
                                   lambda k: secret.split(":")[0] if k == akid else None,
                                   region=region, service="bedrock")
            self._sigv4 = "ok" if ok else "bad: " + why
            echo["sigv4"] = self._sigv4
        self._echo_b64 = base64.b64encode(compact(echo).encode()).decode("ascii")
        if self._raw_path.startswith("/__mock/"):
            return
        rec = dict(echo)
        rec["ts"] = time.time()
        rec["tls"] = bool(getattr(self.server, "ssl_ctx", None))
        rec["sni"] = getattr(self.connection, "mock_sni", None)
        rec["remote"] = "%s:%s" % self.client_address[:2]
        rec["status"] = None
        rec["body"] = body[:LOG_BODY_MAX].decode("utf-8", "replace")
        self._record = rec

    def _log_once(self, status):
        if self._record is None or self._recorded:
            return
        self._recorded = True
        self._record["status"] = status
        with LOG_LOCK:
            LOG.append(self._record)

    # ---- response writers ---------------------------------------------------------------

    def _send_head(self, status, ctype, length=None, extra=(), close=False):
        self._log_once(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.request_version == "HTTP/1.0":
            close = True  # no chunked encoding for HTTP/1.0: delimit by closing
        else:
            self.send_header("Transfer-Encoding", "chunked")
        if self._echo_b64:
            self.send_header("x-mock-echo", self._echo_b64)
        for k, v in extra:
            self.send_header(k, v)
        if close or self.close_connection:
            self.send_header("Connection", "close")  # also sets self.close_connection
        self._headers_sent = True
        self.end_headers()

    def _send_json(self, status, obj, extra=(), close=False, indent=None):
        body = (json.dumps(obj, indent=indent) + "\n" if indent else compact(obj)).encode()
        self._send_body(status, body, extra, close)

    def _send_body(self, status, body, extra=(), close=False):
        """A whole (not streamed) JSON body, shaped by the request's x-mock-pad, x-mock-gzip and
        x-mock-chunked headers (never for /__mock/ paths)."""
        ctype = "application/json; charset=UTF-8" if self._kind == "gemini" else "application/json"
        extra = list(extra)
        chunked = False
        if not self._raw_path.startswith("/__mock/"):
            pad = self.headers.get("x-mock-pad", "")
            if pad.isdigit() and int(pad) > 0 and body.lstrip().startswith(b"{"):
                rest = body.lstrip()[1:]
                sep = b"" if rest.lstrip().startswith(b"}") else b","
                body = b'{"x_mock_pad":"' + b"x" * min(int(pad), MAX_BODY) + b'"' + sep + rest
            if self.headers.get("x-mock-gzip") == "1":
                body = gzip.compress(body)
                extra.append(("Content-Encoding", "gzip"))
            chunked = self.headers.get("x-mock-chunked") == "1" and self.request_version != "HTTP/1.0"
        self._send_head(status, ctype, None if chunked else len(body),
                        self._provider_headers(status) + extra, close=close)
        if self.command == "HEAD":
            return
        if chunked:
            for i in range(0, len(body), 16384):
                part = body[i:i + 16384]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def _send_error(self, status, message, code=None, close=False):
        extra = [("retry-after", "1")] if status == 429 else []
        self._send_json(status, error_body(self._kind, status, message, code), extra=extra,
                        close=close, indent=2 if self._kind != "anthropic" else None)

    def _provider_headers(self, status=200):
        if self._kind == "anthropic":
            return [("request-id", "req_011C" + rand(B58, 20)),
                    ("anthropic-organization-id", "00000000-0000-4000-8000-000000000000")]
        if self._kind == "gemini":
            return [("Vary", "Origin, X-Origin, Referer"),
                    ("Server-Timing", "gfet4t7; dur=%d" % secrets.randbelow(900))]
        return [("x-request-id", "req_" + secrets.token_hex(16)),
                ("openai-version", "2020-10-01"), ("openai-organization", "mock-org"),
                ("openai-processing-ms", str(100 + secrets.randbelow(400))),
                ("x-ratelimit-limit-requests", "10000"),
                ("x-ratelimit-remaining-requests", "9999"),
                ("x-ratelimit-limit-tokens", "30000000"),
                ("x-ratelimit-remaining-tokens", "29999000")]

    def _start_stream(self, ctype="text/event-stream; charset=utf-8"):
        self._send_head(200, ctype, None, self._provider_headers() + [
            ("Cache-Control", "no-cache")])

    def _chunk(self, data, first=False):
        if not first:
            delay = self._delay
            if delay > 0:
                time.sleep(delay)
        if self.close_connection and self.request_version == "HTTP/1.0":
            self.wfile.write(data)
        else:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self):
        if not (self.close_connection and self.request_version == "HTTP/1.0"):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _stream(self, events, abort=False):
        """events: list of bytes, each written as its own chunk with the delay between."""
        self._start_stream(self._stream_ctype)
        for i, ev in enumerate(events):
            if abort and i == 2:
                raise Abort()
            self._chunk(ev, first=(i == 0))
        self._end_stream()

    # ---- routing ------------------------------------------------------------------------

    def _route(self, method, path, raw_body):
        q = parse_qs(self._query)
        try:
            d = float(self.headers.get("x-mock-chunk-delay-ms", OPTS.chunk_delay_ms))
        except ValueError:
            d = OPTS.chunk_delay_ms
        self._delay = min(max(d, 0.0), 60000.0) / 1000.0
        self._stream_ctype = "text/event-stream; charset=utf-8"
        get = method in ("GET", "HEAD")

        if path.startswith("/__mock/"):
            return self._harness(method, path)
        path = openai_path(path)

        sse = self.headers.get("x-mock-sse")
        big = self.headers.get("x-mock-sse-big", "")
        if big.isdigit():  # one text event of that many bytes of content, then [DONE]
            sse = base64.b64encode(b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * int(big) +
                                   b'"}}]}\n\ndata: [DONE]\n\n').decode()
        if sse is not None:  # the test writes the stream: each event its own chunk, the delay between
            try:
                raw = base64.b64decode(sse, validate=True)
            except ValueError:
                raise HTTPFail(400, "x-mock-sse: not base64")
            events = [e for e in re.split(rb"(?<=\n\n)", raw) if e]
            cut = self.headers.get("x-mock-sse-cut") == "1"  # end the connection without the last chunk
            self._start_stream(self._stream_ctype)
            for i, ev in enumerate(events):
                self._chunk(ev, first=(i == 0))
            if cut:
                raise Abort()
            self._end_stream()
            return

        canned = self.headers.get("x-mock-response")
        if canned is not None:  # the test says exactly what the provider answers
            if path.startswith("/v1/messages"):
                self._kind = "anthropic"
            elif RE_GEMINI.match(path):
                self._kind = "gemini"
            try:
                raw = base64.b64decode(canned, validate=True)
            except ValueError:
                raise HTTPFail(400, "x-mock-response: not base64")
            return self._send_body(200, raw)

        m = RE_GEMINI.match(path)
        if m:
            self._kind = "gemini"
            if method != "POST":
                raise HTTPFail(405, "Method %s not allowed on %s" % (method, path))
            model, action = m.group(2), m.group(3)
            if action not in ("generateContent", "streamGenerateContent", "countTokens"):
                raise HTTPFail(404, "Method not found: %s" % action)
            body = self._json_body(raw_body)
            self._control(model)
            return self._gemini(model, action, body, q.get("alt", [""])[-1] == "sse")

        m = RE_BEDROCK.match(path)
        if m:
            self._kind = "bedrock"
            if method != "POST":
                raise HTTPFail(405, "Method not allowed")
            body = self._json_body(raw_body)
            if not isinstance(body.get("messages"), list):
                raise HTTPFail(400, "1 validation error detected: Value null at 'messages' failed to satisfy "
                                    "constraint: Member must not be null")
            if self._sigv4 not in (None, "ok"):
                raise HTTPFail(403, "The request signature we calculated does not match the signature you "
                                    "provided. (" + self._sigv4 + ")")
            model = unquote(m.group(1))
            self._control(model)
            if m.group(2) == "converse-stream":
                raise HTTPFail(400, "the mock does not stream Bedrock's event-stream framing")
            return self._bedrock(model, body)

        if path == "/v2/chat":  # Cohere v2
            self._kind = "cohere"
            if method != "POST":
                raise HTTPFail(405, "Method not allowed")
            body = self._json_body(raw_body)
            model = self._require_model(body, "messages")
            self._control(model)
            return self._cohere(model, body)

        m = RE_AZURE.match(path)
        if m:
            if method != "POST":
                raise HTTPFail(405, "Method not allowed")
            if not q.get("api-version"):
                raise HTTPFail(404, "Resource not found (api-version is required)")
            body = self._json_body(raw_body)
            if m.group(2) != "chat/completions":
                raise HTTPFail(404, "Resource not found")
            if not isinstance(body.get("messages"), list):
                raise HTTPFail(400, "'messages' is a required property")
            self._control(m.group(1))
            return self._openai_chat(m.group(1), body)

        if path == "/v1/chat/completions":
            if method != "POST":
                raise HTTPFail(405, "Invalid method for URL (%s %s)" % (method, path))
            body = self._json_body(raw_body)
            model = self._require_model(body, "messages")
            self._control(model)
            return self._openai_chat(model, body)

        if path in ("/v1/messages", "/v1/messages/count_tokens"):
            self._kind = "anthropic"
            if method != "POST":
                raise HTTPFail(405, "Method Not Allowed")
            body = self._json_body(raw_body)
            model = self._require_model(body, "messages")
            if path.endswith("count_tokens"):
                return self._send_json(200, {"input_tokens": prompt_tokens(body["messages"])})
            self._control(model)
            return self._anthropic(model, body)

        if path == "/v1/models" or RE_OPENAI_MODEL.match(path):
            if "anthropic-version" in self.headers:
                self._kind = "anthropic"
            if not get:
                raise HTTPFail(405, "Invalid method for URL (%s %s)" % (method, path))
            mid = path[len("/v1/models/"):] if path != "/v1/models" else None
            return self._models(mid)

        if path in ("/v1beta/models", "/v1alpha/models"):
            self._kind = "gemini"
            if not get:
                raise HTTPFail(405, "Method not allowed")
            return self._send_json(200, {"models": [{
                "name": "models/" + m_, "version": "001", "displayName": m_,
                "inputTokenLimit": 1048576, "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "countTokens"]}
                for m_ in GEMINI_MODELS]}, indent=2)

        raise HTTPFail(404, "Invalid URL (%s %s)" % (method, self._raw_path))

    def _json_body(self, raw):
        k = self._kind
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            msg = {"openai": "We could not parse the JSON body of your request. (HINT: This likely "
                             "means you aren't using your HTTP library correctly. The OpenAI API "
                             "expects a JSON payload, but what was sent was not valid JSON.)",
                   "anthropic": "There was an issue with your request body: invalid JSON",
                   "gemini": "Invalid JSON payload received."}[k]
            raise HTTPFail(400, msg)
        if not isinstance(body, dict):
            raise HTTPFail(400, "Invalid request body: expected a JSON object")
        return body

    def _require_model(self, body, list_field):
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HTTPFail(400, "you must provide a model parameter" if self._kind == "openai"
                           else "model: Field required")
        if list_field not in body:
            raise HTTPFail(400, "Missing required parameter: '%s'." % list_field
                           if self._kind == "openai" else "%s: Field required" % list_field)
        if not isinstance(body[list_field], list):
            raise HTTPFail(400, "Invalid type for '%s': expected an array." % list_field)
        return model

    def _control(self, model):
        m = RE_MOCK_ERROR.match(model)
        if m:
            status = int(m.group(1))
            msg = {500: "The server had an error while processing your request. Sorry about that!",
                   429: "Rate limit reached for requests (mock)",
                   401: "Incorrect API key provided (mock)"}.get(
                       status, "Mock error %d requested by model %s" % (status, model))
            raise HTTPFail(status, msg)
        if model == "mock-slow":
            time.sleep(SLOW_SECONDS)
        self._abort = model == "mock-stream-abort"

    # ---- harness ------------------------------------------------------------------------

    def _harness(self, method, path):
        if path == "/__mock/requests" and method in ("GET", "HEAD"):
            with LOG_LOCK:
                items = list(LOG)
            return self._send_json(200, items)
        if path == "/__mock/reset" and method == "POST":
            with LOG_LOCK:
                n = len(LOG)
                LOG.clear()
            return self._send_json(200, {"ok": True, "cleared": n})
        if path == "/__mock/health" and method in ("GET", "HEAD"):
            return self._send_json(200, {"ok": True})
        raise HTTPFail(404, "Invalid URL (%s %s)" % (method, path))

    # ---- OpenAI -------------------------------------------------------------------------

    def _models(self, mid):
        if self._kind == "anthropic":
            data = [{"type": "model", "id": i, "display_name": n, "created_at": c}
                    for i, n, c in ANTHROPIC_MODELS]
            if mid is not None:
                for d in data:
                    if d["id"] == mid:
                        return self._send_json(200, d)
                raise HTTPFail(404, "model: %s" % mid)
            return self._send_json(200, {"data": data, "has_more": False,
                                         "first_id": data[0]["id"], "last_id": data[-1]["id"]})
        data = [{"id": i, "object": "model", "created": 1715367049,
                 "owned_by": "mock" if i.startswith("mock-") else "system"} for i in OPENAI_MODELS]
        if mid is not None:
            for d in data:
                if d["id"] == mid:
                    return self._send_json(200, d, indent=2)
            raise HTTPFail(404, "The model '%s' does not exist or you do not have access to it."
                           % mid, code="model_not_found")
        return self._send_json(200, {"object": "list", "data": data}, indent=2)

    def _bedrock(self, model, body):
        """Bedrock Converse: the answer in output.message.content[], a tool call as a
        {"toolUse": ...} item, usage in camelCase."""
        msgs = body["messages"]
        ptok = prompt_tokens(msgs)
        decls = []
        tools = (body.get("toolConfig") or {}).get("tools") if isinstance(body.get("toolConfig"), dict) else None
        for t in tools if isinstance(tools, list) else []:
            spec = t.get("toolSpec") if isinstance(t, dict) else None
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                schema = spec.get("inputSchema", {}).get("json") if isinstance(spec.get("inputSchema"), dict) else None
                decls.append((spec["name"], schema))
        last = msgs[-1] if msgs and isinstance(msgs[-1], dict) else {}
        answered = any(isinstance(c, dict) and "toolResult" in c for c in last.get("content") or [])
        if decls and not answered:
            name, schema = pick(decls, None)
            content = [{"toolUse": {"toolUseId": "tooluse_" + rand(ALNUM, 22), "name": name,
                                    "input": example_args(schema)}}]
            stop = "tool_use"
        else:
            content = [{"text": "Hello from the mock."}]
            stop = "end_turn"
        return self._send_json(200, {
            "output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": {"inputTokens": ptok, "outputTokens": COMPLETION_TOKENS, "totalTokens": ptok + COMPLETION_TOKENS},
            "metrics": {"latencyMs": 100 + secrets.randbelow(400)}})

    def _cohere(self, model, body):
        """Cohere v2 chat: the answer in message.content[], calls in message.tool_calls[],
        usage as billed units and as tokens."""
        ptok = prompt_tokens(body["messages"])
        tool = openai_tool(body)  # v2 tools are OpenAI's {"type": "function", "function": ...}
        message = {"role": "assistant"}
        if tool:
            message["tool_plan"] = "I will call %s." % tool[0]
            message["tool_calls"] = [{"id": "call_" + rand(ALNUM, 16), "type": "function",
                                      "function": {"name": tool[0], "arguments": compact(example_args(tool[1]))}}]
            reason = "TOOL_CALL"
        else:
            message["content"] = [{"type": "text", "text": "Hello from the mock."}]
            reason = "COMPLETE"
        return self._send_json(200, {
            "id": secrets.token_hex(16), "finish_reason": reason, "message": message,
            "usage": {"billed_units": {"input_tokens": ptok, "output_tokens": COMPLETION_TOKENS},
                      "tokens": {"input_tokens": ptok + 7, "output_tokens": COMPLETION_TOKENS}}})

    def _openai_chat(self, model, body):
        ptok = prompt_tokens(body["messages"])
        usage = {"prompt_tokens": ptok, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": ptok + COMPLETION_TOKENS,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        cid = "chatcmpl-" + rand(ALNUM, 29)
        created = int(time.time())
        fp = "fp_m0ck" + secrets.token_hex(3)[:5]
        tool = openai_tool(body)
        call_id = "call_" + rand(ALNUM, 24)
        args = compact(example_args(tool[1])) if tool else None

        if body.get("stream") is True:
            so = body.get("stream_options")
            include_usage = isinstance(so, dict) and so.get("include_usage") is True

            def chunk(delta, finish=None, choices=True):
                c = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": model, "service_tier": "default", "system_fingerprint": fp,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}] if choices else []}
                if include_usage:
                    c["usage"] = None
                return b"data: " + compact(c).encode() + b"\n\n"

            if tool:
                events = [chunk({"role": "assistant", "content": None, "tool_calls": [{
                    "index": 0, "id": call_id, "type": "function",
                    "function": {"name": tool[0], "arguments": ""}}], "refusal": None})]
                events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                           for p in split_pieces(args)]
                events.append(chunk({}, "tool_calls"))
            else:
                events = [chunk({"role": "assistant", "content": "", "refusal": None})]
                events += [chunk({"content": p}) for p in TEXT_PIECES]
                events.append(chunk({}, "stop"))
            if include_usage:
                last = {"id": cid, "object": "chat.completion.chunk", "created": created,
                        "model": model, "service_tier": "default", "system_fingerprint": fp,
                        "choices": [], "usage": usage}
                events.append(b"data: " + compact(last).encode() + b"\n\n")
            events.append(b"data: [DONE]\n\n")
            return self._stream(events, abort=self._abort)

        if self._abort:
            raise Abort()
        if tool:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": tool[0], "arguments": args}}],
                "refusal": None, "annotations": []}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []}
            finish = "stop"
        self._send_json(200, {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": usage, "service_tier": "default", "system_fingerprint": fp}, indent=2)

    # ---- Anthropic ----------------------------------------------------------------------

    def _anthropic(self, model, body):
        itok = prompt_tokens(body["messages"])
        mid = "msg_01" + rand(B58, 22)
        tool = anthropic_tool(body)
        tid = "toolu_01" + rand(B58, 22)
        args = example_args(tool[1]) if tool else None
        stop = "tool_use" if tool else "end_turn"
        usage = {"input_tokens": itok, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "output_tokens": COMPLETION_TOKENS,
                 "service_tier": "standard"}

        if body.get("stream") is True:
            def ev(name, data):
                return b"event: " + name.encode() + b"\ndata: " + compact(data).encode() + b"\n\n"

            start_usage = dict(usage, output_tokens=1)
            events = [ev("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
            if tool:
                block = {"type": "tool_use", "id": tid, "name": tool[0], "input": {}}
                deltas = [{"type": "input_json_delta", "partial_json": p}
                          for p in split_pieces(compact(args))]
            else:
                block = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in TEXT_PIECES]
            events.append(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                                     "content_block": block}))
            events.append(ev("ping", {"type": "ping"}))
            events += [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": d}) for d in deltas]
            events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
            events.append(ev("message_delta", {"type": "message_delta",
                                               "delta": {"stop_reason": stop, "stop_sequence": None},
                                               "usage": {"output_tokens": COMPLETION_TOKENS}}))
            events.append(ev("message_stop", {"type": "message_stop"}))
            return self._stream(events, abort=self._abort)

        if self._abort:
            raise Abort()
        content = [{"type": "tool_use", "id": tid, "name": tool[0], "input": args}] if tool else \
            [{"type": "text", "text": TEXT}]
        self._send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                              "content": content, "stop_reason": stop, "stop_sequence": None,
                              "usage": usage})

    # ---- Gemini -------------------------------------------------------------------------

    def _gemini(self, model, action, body, sse):
        contents = body.get("contents", [])
        if not isinstance(contents, list):
            raise HTTPFail(400, "Invalid value at 'contents': expected a list")
        ptok = prompt_tokens(contents)
        if action == "countTokens":
            return self._send_json(200, {"totalTokens": ptok, "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": ptok}]}, indent=2)
        rid = rand(ALNUM + "-_", 22)
        tool = gemini_tool(body)
        usage = {"promptTokenCount": ptok, "candidatesTokenCount": COMPLETION_TOKENS,
                 "totalTokenCount": ptok + COMPLETION_TOKENS,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ptok}]}

        def resp(parts, finish=None, with_usage=False):
            cand = {"content": {"parts": parts, "role": "model"}}
            if finish:
                cand["finishReason"] = finish
            cand["index"] = 0
            r = {"candidates": [cand]}
            if with_usage:
                r["usageMetadata"] = usage
            r["modelVersion"] = model
            r["responseId"] = rid
            return r

        if tool:
            parts_list = [[{"functionCall": {"name": tool[0], "args": example_args(tool[1])}}]]
        else:
            parts_list = [[{"text": p}] for p in TEXT_PIECES]

        if action == "generateContent":
            if self._abort:
                raise Abort()
            parts = parts_list[0] if tool else [{"text": TEXT}]
            return self._send_json(200, resp(parts, "STOP", True), indent=2)

        # streamGenerateContent
        n = len(parts_list)
        chunks = [resp(p, "STOP" if i == n - 1 else None, i == n - 1)
                  for i, p in enumerate(parts_list)]
        if sse:
            self._stream_ctype = "text/event-stream"
            events = [b"data: " + compact(c).encode() + b"\n\n" for c in chunks]
        else:
            self._stream_ctype = "application/json; charset=UTF-8"
            events = [(b"[" if i == 0 else b",\r\n") + json.dumps(c).encode()
                      for i, c in enumerate(chunks)]
            events.append(b"]")
        return self._stream(events, abort=self._abort)


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------

class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, ssl_ctx):
        self.ssl_ctx = ssl_ctx
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        conn = request
        try:  # small writes (headers, one SSE event) must not wait for Nagle / delayed ACK
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_ctx is not None:
            request.settimeout(10)
            try:
                conn = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (OSError, ValueError) as e:
                vlog("TLS handshake with %s failed: %r" % (client_address[0], e))
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                try:
                    conn.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)) and not OPTS.verbose:
            return
        sys.stderr.write("mock-provider: error with %s: %s" % (client_address,
                                                              traceback.format_exc()))
        sys.stderr.flush()


def make_ssl_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])

    def on_sni(sslsock, name, _ctx):
        try:
            sslsock.mock_sni = name
        except AttributeError:
            pass
        return None

    ctx.sni_callback = on_sni
    return ctx


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock OpenAI/Anthropic/Gemini upstream for tests.")
    ap.add_argument("--port", type=int, required=True, help="port to listen on (0: any free)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--cert", help="server certificate (PEM; may also hold the key) -> HTTPS")
    ap.add_argument("--key", help="private key, when not inside --cert")
    ap.add_argument("--chunk-delay-ms", type=float, default=30.0,
                    help="pause between streamed events (default 30)")
    ap.add_argument("--idle-timeout", type=float, default=300.0,
                    help="close idle keep-alive connections after this many seconds")
    ap.add_argument("--verbose", action="store_true", help="access log and errors on stderr")
    args = ap.parse_args(argv)
    if args.key and not args.cert:
        ap.error("--key needs --cert")

    OPTS.verbose = args.verbose
    OPTS.chunk_delay_ms = max(0.0, args.chunk_delay_ms)
    Handler.timeout = args.idle_timeout if args.idle_timeout > 0 else None

    ctx = None
    if args.cert:
        try:
            ctx = make_ssl_context(args.cert, args.key)
        except (OSError, ssl.SSLError) as e:
            sys.stderr.write("mock-provider: cannot load certificate: %s\n" % e)
            return 1
    try:
        server = MockServer((args.host, args.port), Handler, ctx)
    except OSError as e:
        sys.stderr.write("mock-provider: cannot listen on %s:%d: %s\n" % (args.host, args.port,
                                                                          e.strerror or e))
        return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    print("mock-provider ready port=%d tls=%d" % (server.server_address[1], 1 if ctx else 0),
          flush=True)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    vlog("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
