"""Loopback ports for the suites: a free one to give a process, and waiting until a
process listens on one."""
import socket
import time


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port nothing listens on now (the caller starts something there next)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def connectable(addr, family=socket.AF_INET, timeout=0.2):
    """Whether a TCP (or Unix, with AF_UNIX and a path) connection to addr succeeds now."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(addr)
        return True
    except OSError:
        return False


def port_open(port, host="127.0.0.1"):
    return connectable((host, port))


def wait_listening(addr, family=socket.AF_INET, proc=None, timeout=8.0, connect_timeout=0.2):
    """True once addr accepts connections; False after timeout seconds, or at once when
    proc (a Popen) has exited: it will never listen then."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        if connectable(addr, family, connect_timeout):
            return True
        time.sleep(0.05)
    return False


def wait_port(port, proc=None, timeout=8.0):
    """wait_listening for 127.0.0.1:port."""
    return wait_listening(("127.0.0.1", port), proc=proc, timeout=timeout)


def free_udp_port(host="127.0.0.1"):
    """A UDP port nothing is bound to now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
