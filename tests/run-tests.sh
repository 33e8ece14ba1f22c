#!/usr/bin/env bash
# Runs every test suite and ends with one line: "N passed, M failed".
# Each suite speaks TAP ("1..N", "ok K - name", "not ok K - name"). A suite that
# crashes, hangs, or reports fewer results than its plan counts the missing ones
# as failures, so nothing can skip itself into green.
set -u
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
AGENT=spoa/archestra-spoa
LOGDIR=build/test-logs
mkdir -p "$LOGDIR"
passed=0
failed=0
failures=()

run_suite() { # name timeout_s command...
	local name=$1 tmo=$2
	shift 2
	local log="$LOGDIR/${name//\//_}.log"
	CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 5 "$tmo" "$@" >"$log" 2>&1
	local rc=$?
	local plan ok notok
	plan=$(grep -m1 -E '^1\.\.[0-9]+' "$log" | cut -d. -f3)
	ok=$(grep -cE '^ok [0-9]+' "$log")
	notok=$(grep -cE '^not ok [0-9]+' "$log")
	local missing=0
	if [ -n "$plan" ] && [ $((ok + notok)) -lt "$plan" ]; then
		missing=$((plan - ok - notok))
	fi
	if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ] && [ "$missing" -eq 0 ]; then
		missing=1 # crashed or timed out without saying which test
	fi
	passed=$((passed + ok))
	failed=$((failed + notok + missing))
	if [ $((notok + missing)) -gt 0 ]; then
		failures+=("$name")
		printf '%-28s %3d passed, %d failed (rc=%d, log: %s)\n' "$name" "$ok" $((notok + missing)) "$rc" "$log"
		grep -E '^not ok|^# ' "$log" | head -40 | sed 's/^/    /'
		[ "$rc" -eq 124 ] && echo "    (timed out after ${tmo}s)"
	else
		printf '%-28s %3d passed\n' "$name" "$ok"
	fi
}

# One binary per tests/unit/test_*.c, normal and under ASan+UBSan: a source without
# its binary fails, and a stale binary of a renamed test is not run.
for src in tests/unit/test_*.c; do
	t=$(basename "$src" .c)
	run_suite "unit/$t" 60 "build/tests/$t"
done
for src in tests/unit/test_*.c; do
	t=$(basename "$src" .c)
	run_suite "asan/$t" 120 "build/asan/$t"
done
# The Python SigV4 signer and verifier the mock provider uses, on AWS's published vectors.
run_suite unit/sigv4_py 60 "$PY" tests/mock/test_sigv4_py.py
run_suite fuzz/session 60 tests/fuzz/smoke.sh build/fuzz/fuzz_session 10
run_suite fuzz/auth 60 tests/fuzz/smoke.sh build/fuzz/fuzz_auth 10 --auth
run_suite fuzz/json 60 tests/fuzz/smoke.sh build/fuzz/fuzz_json 10 --json
run_suite fuzz/meter 60 tests/fuzz/smoke.sh build/fuzz/fuzz_meter 5 --meter
run_suite conformance 180 "$PY" tests/conformance/spop_conformance.py "$AGENT"
run_suite conformance/asan 300 "$PY" tests/conformance/spop_conformance.py build/asan/archestra-spoa
run_suite e2e/bypass_spop 60 "$PY" tests/e2e/test_bypass_spop.py "$AGENT"
run_suite e2e/bypass_spop-asan 120 "$PY" tests/e2e/test_bypass_spop.py build/asan/archestra-spoa
# The reload, JWKS fetcher and snapshot paths once more with the agent under ASan+UBSan.
run_suite e2e/auth-asan 300 "$PY" tests/e2e/test_auth.py build/asan/archestra-spoa
# The /metrics listener and the registries' cross-thread reads under ASan+UBSan too.
run_suite e2e/prometheus-asan 180 "$PY" tests/e2e/test_prometheus.py build/asan/archestra-spoa
# The spend store's thread, its Redis link and the workers' shared views under ASan+UBSan.
run_suite e2e/budgets-asan 300 "$PY" tests/e2e/test_budgets.py build/asan/archestra-spoa
run_suite e2e/systemd 120 tests/e2e/test_systemd.sh

# Every suite that runs HAProxy, on each HAProxy of the matrix: Debian's (2.6) and
# 3.4 LTS built from source (3.1 rebuilt SPOE), or only the one given with
# `make test HAPROXY=/path/to/haproxy`.
e2e_haproxy() { # label
	local p=$1
	run_suite "$p/haproxy_verdict" 120 "$PY" tests/e2e/test_haproxy_verdict.py "$AGENT"
	run_suite "$p/edge" 180 "$PY" tests/e2e/test_edge.py "$AGENT"
	run_suite "$p/snippet" 120 "$PY" tests/e2e/test_snippet.py "$AGENT"
	run_suite "$p/bypass" 180 "$PY" tests/e2e/test_bypass.py "$AGENT"
	run_suite "$p/providers" 180 "$PY" tests/e2e/test_providers.py "$AGENT"
	run_suite "$p/metrics" 400 "$PY" tests/e2e/test_metrics.py "$AGENT"
	run_suite "$p/logjson" 120 "$PY" tests/e2e/test_logjson.py "$AGENT"
	run_suite "$p/prometheus" 180 "$PY" tests/e2e/test_prometheus.py "$AGENT"
	run_suite "$p/streams" 180 "$PY" tests/e2e/test_streams.py "$AGENT"
	run_suite "$p/sdk_streams" 700 "$PY" tests/e2e/test_sdk_streams.py "$AGENT"
	run_suite "$p/auth" 200 "$PY" tests/e2e/test_auth.py "$AGENT"
	run_suite "$p/throttle" 120 "$PY" tests/e2e/test_throttle.py "$AGENT"
	run_suite "$p/policy" 200 "$PY" tests/e2e/test_policy.py "$AGENT"
	run_suite "$p/budgets" 240 "$PY" tests/e2e/test_budgets.py "$AGENT"
	run_suite "$p/make_run" 120 "$PY" tests/e2e/test_make_run.py
	# Faults under load (short form; `make faults` runs the long one).
	run_suite "$p/faults" 300 "$PY" tests/faults/faults.py "$AGENT"
}
skipped=0
if [ -n "${HAPROXY:-}" ]; then
	echo "e2e on $("$HAPROXY" -v | head -1)"
	e2e_haproxy e2e
else
	export HAPROXY=haproxy
	echo "e2e on $(haproxy -v | head -1)"
	e2e_haproxy e2e
	if [ -n "${HAPROXY34:-}" ] && [ -x "$HAPROXY34" ]; then
		export HAPROXY=$HAPROXY34
		echo "e2e on $("$HAPROXY" -v | head -1)"
		e2e_haproxy e2e-3.4
	else
		echo "e2e on HAProxy 3.4: skipped (no ../shared/haproxy/haproxy-3.4.0.tar.gz to build it from)"
		skipped=1
	fi
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed suites: ${failures[*]}"
fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
