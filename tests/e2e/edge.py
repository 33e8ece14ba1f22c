"""Starts the real edge for end-to-end tests: mock provider (HTTPS, test CA), agents,
HAProxy with haproxy-cfg/haproxy.cfg, all on free loopback ports. Stdlib only."""
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc=None, timeout=8.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Edge:
    """The whole stack. Use as a context manager; everything is stopped on exit."""

    def __init__(self, agent_bin, agents=2, fail_open=False, agent_args=(), agent_config=None):
        self.agent_bin = agent_bin
        self.tmp = tempfile.mkdtemp(prefix="arch-edge-")
        self.certs = os.path.join(self.tmp, "certs")
        self.procs = {}
        self.logs = {}
        self.agent_ports = [free_port() for _ in range(agents)]
        self.agent_args = list(agent_args)
        if agent_config is not None:
            path = os.path.join(self.tmp, "agent.json")
            with open(path, "w") as f:
                json.dump(agent_config, f)
            self.agent_args += ["--config", path]
        self.http_port, self.https_port, self.mock_port = free_port(), free_port(), free_port()
        self.plain_mock_port = free_port()  # the "local" provider speaks plain HTTP
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

    def start_agent(self, i):
        port = self.agent_ports[i]
        self._start(f"agent{i}", [self.agent_bin, "--listen", f"127.0.0.1:{port}", "--threads", "2",
                                  *self.agent_args], port=port)

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
            "ARCHESTRA_CA_FILE": os.path.join(self.certs, "ca.pem"),
            "ARCHESTRA_OPENAI_ADDR": f"127.0.0.1:{self.mock_port}",
            "ARCHESTRA_ANTHROPIC_ADDR": f"127.0.0.1:{self.mock_port}",
            "ARCHESTRA_GEMINI_ADDR": f"127.0.0.1:{self.mock_port}",
            "ARCHESTRA_LOCAL_ADDR": f"127.0.0.1:{self.plain_mock_port}",
            "ARCHESTRA_NO_DNS": "1",
            "ARCHESTRA_AGENT1": f"127.0.0.1:{self.agent_ports[0]}",
            "ARCHESTRA_AGENT2": f"127.0.0.1:{self.agent_ports[-1]}",
        })
        env.pop("ARCHESTRA_FAIL_OPEN", None)
        if self.fail_open:
            env["ARCHESTRA_FAIL_OPEN"] = "1"
        return env

    def __enter__(self):
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
        self._start("haproxy", ["haproxy", "-db", "-f", os.path.join(TOP, "haproxy-cfg", "haproxy.cfg")],
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
        shutil.rmtree(self.tmp, ignore_errors=True)
        if reports and not exc[0]:
            raise RuntimeError("sanitizer report from an agent:\n" + "\n".join(reports))

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
