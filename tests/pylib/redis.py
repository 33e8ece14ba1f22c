"""A real redis-server for tests (Debian's package), on a free loopback port, and a
minimal RESP client to look at it. Stdlib only."""
import os
import shutil
import socket
import subprocess
import tempfile

from .ports import free_port, wait_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    """redis-server with no persistence. Use as a context manager; kill() and start()
    model a crash and a restart on the same port."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="arch-redis-")
        self.proc = None
        self.log = open(os.path.join(self.dir, "redis.log"), "a+")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--enable-debug-command", "local"],
            stdout=self.log, stderr=self.log)
        if not wait_port(self.port, self.proc):
            # Redis before 7 has no --enable-debug-command: start without it.
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir], stdout=self.log, stderr=self.log)
            if not wait_port(self.port, self.proc):
                raise RuntimeError("redis-server did not start: " + open(self.log.name).read()[-1000:])
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, *args, timeout=5.0):
        """One command; its decoded answer (str, int, list, None), or raises."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _read(f)


def _read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError("redis: " + rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:n]
        return data.decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError(f"redis: unexpected answer {line!r}")
