"""TAP output for the end-to-end suites: check() raises with a message, run()
records a test, report() prints the plan and results and gives the exit code."""
import traceback

results = []


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def record(ok, name, diag=""):
    results.append((bool(ok), name, diag or ""))


def run(name, fn):
    try:
        fn()
        record(True, name)
    except Exception:
        record(False, name, traceback.format_exc())


def report(tail=25):
    print(f"1..{len(results)}")
    for i, (ok, name, diag) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {name}")
        if not ok:
            for line in diag.splitlines()[-tail:]:
                print("# " + line)
    return 0 if all(r[0] for r in results) else 1
