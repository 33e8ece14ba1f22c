"""Waiting for something to happen, bounded in time."""
import time


def poll(probe, done, timeout, interval=0.2):
    """Calls probe() until done(its value) holds or timeout seconds have passed, sleeping
    interval seconds between calls; returns the last value (probe runs at least once)."""
    end = time.monotonic() + timeout
    while True:
        v = probe()
        if done(v) or time.monotonic() >= end:
            return v
        time.sleep(interval)
