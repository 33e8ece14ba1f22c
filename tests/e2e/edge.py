"""Starts the real edge for end-to-end tests: mock provider (HTTPS, test CA), agents,
HAProxy with haproxy-cfg/haproxy.cfg, all on free loopback ports. Stdlib only."""
import base64
import http.client
import json
import os
import re
import select
import signal
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests"))
from pylib.ports import free_port, free_udp_port, wait_port  # noqa: E402
# The HAProxy under test: Debian's by default, another build with HAPROXY=/path (the
# 3.4 leg of make test).
HAPROXY = os.environ.get("HAPROXY") or "haproxy"


class Edge:
    """The whole stack. Use as a context manager; everything is stopped on exit."""
    extra_cfgs = ()  # more HAProxy configuration files, loaded after providers.cfg

    def __init__(self, agent_bin, agents=2, fail_open=False, agent_args=(), agent_config=None, haproxy_cfg=None,
                 master_worker=False, agent_metrics=False):
        """haproxy_cfg: a function (edge) -> config text, written to the temporary directory and
        run instead of haproxy-cfg/haproxy.cfg (ports, certificate paths and agent ports are
        known when it is called). master_worker: HAProxy runs as master and worker (-W), as
        its systemd unit runs it, so reload_haproxy() works as in production. agent_metrics:
        each agent serves Prometheus' /metrics on its own port, metrics_ports[i]."""
        self.agent_bin = agent_bin
        self.haproxy_cfg = haproxy_cfg
        self.tmp = tempfile.mkdtemp(prefix="arch-edge-")
        self.certs = os.path.join(self.tmp, "certs")
        self.procs = {}
        self.logs = {}
        self.agent_ports = [free_port() for _ in range(agents)]
        self.metrics_ports = [free_port() for _ in range(agents)] if agent_metrics else []
        # Where HAProxy reaches each agent: the agent itself, or a proxy in between.
        self.agent_fronts = list(self.agent_ports)
        self.master_worker = master_worker
        self.agent_args = list(agent_args)
        if agent_config is not None:
            path = os.path.join(self.tmp, "agent.json")
            with open(path, "w") as f:
                json.dump(agent_config, f)
            self.agent_args += ["--config", path]
        self.http_port, self.https_port, self.mock_port = free_port(), free_port(), free_port()
        self.plain_mock_port = free_port()  # the "local" provider speaks plain HTTP
        self.meter_port = free_udp_port()   # UDP: HAProxy's end-of-call records to the agents
        self.fail_open = fail_open

    # -- processes
    def _start(self, name, argv, env=None, port=None):
        log = open(os.path.join(self.tmp, name + ".log"), "a+")
        self.logs[name] = log
        p = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=TOP)
        self.procs[name] = p
        if port and not wait_port(port, p):
            raise RuntimeError(f"{name} did not start: {self.log(name)[-2000:]}")
        return p

    def log(self, name):
        f = self.logs.get(name)
        if not f:
            return ""
        f.flush()
        with open(f.name, errors="replace") as r:
            return r.read()

    def agent_args_for(self, i):
        """Arguments for agent i alone, after the shared ones: with agent_metrics, a second
        --config holding only its Prometheus endpoint (later files override earlier ones)."""
        if not self.metrics_ports:
            return []
        path = os.path.join(self.tmp, f"agent{i}-prometheus.json")
        with open(path, "w") as f:
            json.dump({"prometheus": {"listen": f"127.0.0.1:{self.metrics_ports[i]}"}}, f)
        return ["--config", path]

    def start_agent(self, i, binary=None):
        port = self.agent_ports[i]
        self._start(f"agent{i}", [binary or self.agent_bin, "--listen", f"127.0.0.1:{port}", "--threads", "2",
                                  "--meter", f"127.0.0.1:{self.meter_port}",
                                  *self.agent_args, *self.agent_args_for(i)], port=port)

    def stop_agent(self, i, sig="kill"):
        p = self.procs.pop(f"agent{i}", None)
        if p and p.poll() is None:
            p.kill() if sig == "kill" else p.terminate()
            p.wait(10)

    def haproxy_env(self):
        env = dict(os.environ)
        env.update({
            "ARCHESTRA_HTTP_BIND": f"127.0.0.1:{self.http_port}",
            "ARCHESTRA_HTTPS_BIND": f"127.0.0.1:{self.https_port}",
            "ARCHESTRA_TLS_CERT": os.path.join(self.certs, "gateway.pem"),
            "ARCHESTRA_SPOE_CONF": os.path.join(TOP, "haproxy-cfg", "spoe-archestra.conf"),
            "ARCHESTRA_LUA": os.path.join(TOP, "haproxy-cfg", "archestra.lua"),
            "ARCHESTRA_CA_FILE": os.path.join(self.certs, "ca.pem"),
            "ARCHESTRA_NO_DNS": "1",
            "ARCHESTRA_AGENT1": f"127.0.0.1:{self.agent_fronts[0]}",
            "ARCHESTRA_AGENT2": f"127.0.0.1:{self.agent_fronts[-1]}",
            "ARCHESTRA_STATS_SOCKET": self.stats_socket(),
            "ARCHESTRA_RELAY_SOCK": os.path.join(self.tmp, "relay.sock"),
            "ARCHESTRA_METER": f"127.0.0.1:{self.meter_port}",
        })
        # Every provider's backend (providers.cfg) to the mock: TLS ones to the HTTPS mock,
        # local servers to the plain one.
        for var, tls in self.provider_addr_vars():
            env[var] = f"127.0.0.1:{self.mock_port if tls else self.plain_mock_port}"
        # Every suite calls from 127.0.0.1, many with bad keys on purpose: the auth-failure
        # throttle (test_throttle.py tests it) would answer them 429. Out of reach here.
        for var in ("ARCHESTRA_AUTH_FAIL_PER_IP", "ARCHESTRA_AUTH_FAIL_PER_CRED"):
            env.setdefault(var, "1000000")
        env.pop("ARCHESTRA_FAIL_OPEN", None)
        if self.fail_open:
            env["ARCHESTRA_FAIL_OPEN"] = "1"
        return env

    def __enter__(self):
        try:
            return self._up()
        except BaseException:
            self.__exit__(None, None, None)  # a failed start leaves no process behind
            raise

    def _up(self):
        r = subprocess.run(["bash", os.path.join(TOP, "tests/mock/gen-certs.sh"), self.certs],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("gen-certs failed: " + r.stdout + r.stderr)
        self._start("mock", ["python3", os.path.join(TOP, "tests/mock/mock_provider.py"),
                             "--port", str(self.mock_port), "--cert", os.path.join(self.certs, "server.crt"),
                             "--key", os.path.join(self.certs, "server.key"), "--chunk-delay-ms", "30"],
                    port=self.mock_port)
        self._start("mock-plain", ["python3", os.path.join(TOP, "tests/mock/mock_provider.py"),
                                   "--port", str(self.plain_mock_port)], port=self.plain_mock_port)
        for i in range(len(self.agent_ports)):
            self.start_agent(i)
        cfg = os.path.join(TOP, "haproxy-cfg", "haproxy.cfg")
        if self.haproxy_cfg is not None:
            cfg = os.path.join(self.tmp, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write(self.haproxy_cfg(self))
        self._start("haproxy", [HAPROXY, *(["-W"] if self.master_worker else []), "-db", "-f", cfg,
                                "-f", self.providers_cfg(), *[a for f in self.extra_cfgs for a in ("-f", f)]],
                    env=self.haproxy_env(), port=self.http_port)
        if not wait_port(self.https_port, self.procs["haproxy"]):
            raise RuntimeError("haproxy TLS listener: " + self.log("haproxy")[-2000:])
        self.wait_agents_up()
        return self

    def __exit__(self, *exc):
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        # An agent built with sanitizers reports at exit (leaks) or when it trips.
        reports = [f"{n}: {self.log(n)[-3000:]}" for n in self.logs if n.startswith("agent")
                   and any(k in self.log(n) for k in ("AddressSanitizer", "LeakSanitizer", "runtime error:"))]
        for f in self.logs.values():
            f.close()
        if os.environ.get("EDGE_KEEP"):  # debugging: keep the logs and configs
            print(f"# edge: kept {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if reports and not exc[0]:
            raise RuntimeError("sanitizer report from an agent:\n" + "\n".join(reports))

    def providers_cfg(self):
        """providers.cfg as an operator makes it: generated by the agent from its config."""
        path = os.path.join(self.tmp, "providers.cfg")
        if not os.path.exists(path):
            args = []
            if "--config" in self.agent_args:
                i = self.agent_args.index("--config")
                args = self.agent_args[i:i + 2]
            r = subprocess.run([self.agent_bin, "haproxy-backends", *args], capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError("haproxy-backends: " + r.stderr)
            with open(path, "w") as f:
                f.write(r.stdout)
        return path

    def provider_addr_vars(self):
        """(ARCHESTRA_<NAME>_ADDR, tls) for each backend of providers.cfg."""
        text = open(self.providers_cfg()).read()
        return [(m.group(1), "ssl verify" in m.group(0))
                for m in re.finditer(r'server \S+ "\$\{(ARCHESTRA_[A-Z0-9_]+_ADDR)-[^"]*"[^\n]*', text)]

    def stats_socket(self):
        return os.path.join(self.tmp, "haproxy.sock")

    def haproxy_cmd(self, cmd, timeout=2.0):
        """One command on HAProxy's stats socket (the worker's); its answer, or "" when the
        socket is not there (a reload in progress)."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        try:
            s.connect(self.stats_socket())
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return out.decode(errors="replace")
                out += d
        except OSError:
            return ""
        finally:
            s.close()

    def agent_states(self):
        """{server name: status} of the archestra-agents backend, from "show stat"."""
        out = {}
        lines = self.haproxy_cmd("show stat").splitlines()
        if not lines:
            return out
        head = lines[0].lstrip("# ").split(",")
        for ln in lines[1:]:
            f = dict(zip(head, ln.split(",")))
            if f.get("pxname") == "archestra-agents" and f.get("svname") not in ("BACKEND", "FRONTEND", None):
                out[f["svname"]] = f.get("status", "")
        return out

    def reload_haproxy(self):
        """What `systemctl reload haproxy` does: SIGUSR2 to the master (master_worker only)."""
        self.procs["haproxy"].send_signal(signal.SIGUSR2)

    def wait_agents_up(self, timeout=15.0):
        """Until a call gets an agent verdict (HAProxy's health checks need a moment)."""
        end = time.time() + timeout
        while time.time() < end:
            st, _, _ = self.call("GET", "/v1/openai/models", headers={"Authorization": "Bearer warmup"},
                                 tls=False)
            if st == 200:
                return True
            time.sleep(0.2)
        return False

    # -- clients
    def client_ctx(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.pem"))
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def conn(self, tls=True, timeout=10):
        if tls:
            return http.client.HTTPSConnection("localhost", self.https_port, timeout=timeout,
                                               context=self.client_ctx())
        return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)

    def call(self, method, path, body=None, headers=None, tls=True):
        """Returns (status, headers dict lower-cased, body bytes); status 0 on connection failure."""
        c = self.conn(tls)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except (OSError, http.client.HTTPException):
            return 0, {}, b""
        finally:
            c.close()

    def call_early(self, method, path, body, headers=None, tls=True, timeout=15.0):
        """HTTP/1.1 as curl does it: reads while it sends, so an answer HAProxy gives before the
        body is all sent (a 413, a refusal) is read even when HAProxy then resets the
        connection. Returns (status, headers dict lower-cased, body bytes); status 0 when no
        answer came."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        raw = socket.create_connection(("127.0.0.1", self.https_port if tls else self.http_port), timeout)
        s = self.client_ctx().wrap_socket(raw, server_hostname="localhost") if tls else raw
        head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
        out, got = head.encode() + body, b""
        s.setblocking(False)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                r, w, _ = select.select([s], [s] if out else [], [], 0.2)
                if w and out:
                    try:
                        out = out[s.send(out[:65536]):]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
                    except OSError:
                        out = b""  # the server stopped reading: keep what it answered
                if r or (tls and s.pending()):
                    try:
                        chunk = s.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    except OSError:
                        break
                    if not chunk:
                        break
                    got += chunk
        finally:
            s.close()
        head, _, data = got.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        if not lines[0].startswith("HTTP/1."):
            return 0, {}, b""
        hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:]))
        return int(lines[0].split()[1]), hdrs, data

    def h2_call(self, method, path, body=b"", headers=None, content_length=True, timeout=15.0):
        """One HTTP/2 request over TLS (ALPN h2), stdlib only: the body goes in DATA frames as
        flow control allows, with a content-length header only if content_length. Reads until
        the response ends or the stream is reset, and keeps what came before a reset (HAProxy
        answers a refusal, then resets the upload with CANCEL, which curl reports as a failure
        and drops). Returns (status, body bytes, RST_STREAM error code or None)."""
        def frame(ftype, flags, sid, payload=b""):
            return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload

        def lit(name, value):  # literal header field without indexing, new name, no Huffman
            n, v = name.encode(), value.encode()
            if len(n) > 126 or len(v) > 126:
                raise ValueError("header too long for this encoder")
            return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v

        ctx = self.client_ctx()
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        if s.selected_alpn_protocol() != "h2":
            s.close()
            raise RuntimeError("the server did not select h2")
        s.setblocking(False)
        hdrs = lit(":method", method) + lit(":scheme", "https") + lit(":path", path) + lit(":authority", "localhost")
        for k, v in (headers or {}).items():
            hdrs += lit(k.lower(), v)
        if content_length:
            hdrs += lit("content-length", str(len(body)))
        out = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(1, 4 | (0 if body else 1), 1, hdrs))
        sent, win, conn_win, max_frame = 0, 65535, 65535, 16384
        inbuf, status, data, rst, done = b"", None, b"", None, False
        end = time.monotonic() + timeout
        try:
            while not done and time.monotonic() < end:
                while body and sent < len(body) and rst is None and win > 0 and conn_win > 0 and len(out) < 65536:
                    n = min(max_frame, win, conn_win, len(body) - sent)
                    out += frame(0, 1 if sent + n == len(body) else 0, 1, body[sent:sent + n])
                    sent, win, conn_win = sent + n, win - n, conn_win - n
                r, w, _ = select.select([s], [s] if out else [], [], max(0.0, end - time.monotonic()))
                if w:
                    try:
                        out = out[s.send(out):]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
                    except OSError:
                        out, sent = bytearray(), len(body)  # the server stopped reading: keep reading
                if not r and s.pending() == 0:
                    continue
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                if not chunk:
                    break
                inbuf += chunk
                while len(inbuf) >= 9:
                    ln = int.from_bytes(inbuf[:3], "big")
                    if len(inbuf) < 9 + ln:
                        break
                    ftype, flags = inbuf[3], inbuf[4]
                    sid = int.from_bytes(inbuf[5:9], "big") & 0x7FFFFFFF
                    p, inbuf = inbuf[9:9 + ln], inbuf[9 + ln:]
                    if ftype == 4 and not flags & 1:  # SETTINGS: ack; initial window, max frame size
                        for i in range(0, len(p) - 5, 6):
                            ident, val = struct.unpack(">HI", p[i:i + 6])
                            if ident == 4:
                                win += val - 65535
                            elif ident == 5:
                                max_frame = val
                        out += frame(4, 1, 0)
                    elif ftype == 8:
                        inc = int.from_bytes(p[:4], "big") & 0x7FFFFFFF
                        if sid == 0:
                            conn_win += inc
                        else:
                            win += inc
                    elif ftype == 6 and not flags & 1:
                        out += frame(6, 1, 0, p)
                    elif ftype == 1 and sid == 1 and status is None:
                        if p[:1] and 0x88 <= p[0] <= 0x8E:  # :status from HPACK's static table
                            status = (200, 204, 206, 304, 400, 404, 500)[p[0] - 0x88]
                        elif p[:2] == b"\x48\x03":  # HAProxy's literal :status
                            status = int(p[2:5])
                        done = bool(flags & 1)
                    elif ftype == 0 and sid == 1:
                        data += p
                        done = bool(flags & 1)
                        if p:
                            out += frame(8, 0, 0, struct.pack(">I", len(p))) + frame(8, 0, 1, struct.pack(">I", len(p)))
                    elif ftype == 3 and sid == 1:
                        rst = int.from_bytes(p[:4], "big")
                        done = True
                    elif ftype == 7:
                        done = True
        finally:
            s.close()
        return status, data, rst

    # -- the mock's view
    def mock_requests(self):
        c = http.client.HTTPSConnection("127.0.0.1", self.mock_port, timeout=5,
                                        context=self._mock_ctx())
        c.request("GET", "/__mock/requests")
        data = json.loads(c.getresponse().read())
        c.close()
        return data

    def mock_reset(self):
        c = http.client.HTTPSConnection("127.0.0.1", self.mock_port, timeout=5, context=self._mock_ctx())
        c.request("POST", "/__mock/reset")
        c.getresponse().read()
        c.close()

    def _mock_ctx(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.pem"))
        ctx.check_hostname = False
        return ctx


def statsd_listener():
    """A UDP socket for an agent's statsd output; read it with drain()."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def drain(sock):
    """Every datagram waiting on sock, as text."""
    out = []
    try:
        while True:
            out.append(sock.recv(65535).decode())
    except socket.timeout:
        return out


def echo(headers):
    """Decodes the mock's x-mock-echo header."""
    return json.loads(base64.b64decode(headers["x-mock-echo"]))
