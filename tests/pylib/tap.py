"""TAP output for the suites ("1..N", "ok K - name", "not ok K - name" and "# " lines,
what tests/run-tests.sh counts), and the assertions they raise.

check()/eq() raise Fail with a message. The e2e suites collect results with run() or
record() and print them all with report(); a suite that prints as it goes (the
conformance suite) prints each result with result()."""
import traceback

results = []


class Fail(AssertionError):
    """An expectation that did not hold; its message says what."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, exp, what):
    if got != exp:
        raise Fail(f"{what}: expected {exp!r}, got {got!r}")


def record(ok, name, diag=""):
    results.append((bool(ok), name, diag or ""))


def run(name, fn):
    try:
        fn()
        record(True, name)
    except Exception:
        record(False, name, traceback.format_exc())


def result(k, ok, name, diag_lines=()):
    """Prints test k's line and its diagnostics, one "# " line each."""
    print(f"{'ok' if ok else 'not ok'} {k} - {name}")
    for line in diag_lines:
        print("# " + line)


def report(tail=25):
    """Prints the plan and every recorded result (the last `tail` lines of each failure's
    diagnostics); returns the exit status: 0 when all passed."""
    print(f"1..{len(results)}")
    for i, (ok, name, diag) in enumerate(results, 1):
        result(i, ok, name, [] if ok else diag.splitlines()[-tail:])
    return 0 if all(r[0] for r in results) else 1
