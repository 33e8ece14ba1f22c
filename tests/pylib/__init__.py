"""Python helpers shared by the test suites (stdlib only, Python 3.11):

  ports  free loopback ports, waiting until something listens
  spop   one SPOP 2.0 encoder/decoder and a client connection that speaks like HAProxy
  tap    TAP output and the check()/eq() assertions the suites raise
  wait   poll(): call a probe until its value is the one wanted, bounded in time

A script under tests/<dir>/ reaches them with tests/ on sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from pylib.ports import free_port
"""
