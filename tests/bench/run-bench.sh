#!/usr/bin/env bash
# make bench: side-by-side runs in one go, so the ratios mean something on a noisy
# machine. Each phase starts a fresh agent with 2 worker threads on loopback and
# drives it with spop-bench for a bounded time.
#   1. archestra handler (verdict=allow)    vs   2. ack-only handler (no actions)
#   3. agent RSS with 1,000 open connections (idle, after HELLO) plus a light load
# Knobs: BENCH_SECONDS (5), BENCH_CONNS (4), BENCH_PIPELINE (16), BENCH_BODY (2048).
set -u
cd "$(dirname "$0")/../.."

AGENT=spoa/archestra-spoa
BENCH=build/spop-bench
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-4}
PIPE=${BENCH_PIPELINE:-16}
BODY=${BENCH_BODY:-2048}
OUT=build/bench
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

agent_pid=""
stop_agent() {
	if [ -n "$agent_pid" ]; then
		kill -TERM "$agent_pid" 2>/dev/null
		wait "$agent_pid" 2>/dev/null
		agent_pid=""
	fi
}
trap stop_agent EXIT

start_agent() { # extra agent flags...
	port=$(free_port)
	"$AGENT" --listen "127.0.0.1:$port" --threads 2 --log-level warn "$@" 2>>"$OUT/agent.log" &
	agent_pid=$!
	for _ in $(seq 50); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "agent did not start" >&2
	exit 1
}

field() { # line key
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

phase() { # name bench-args... ; agent already started
	local name=$1
	shift
	local line
	line=$("$BENCH" "$@" "127.0.0.1:$port" 2>>"$OUT/bench.err") || echo "spop-bench reported errors (see $OUT/bench.err)" >&2
	echo "$name: $line" | tee -a "$OUT/results.txt"
	eval "${name//-/_}=\"\$line\""
}

: >"$OUT/results.txt"
echo "== SPOP decisions: 2 agent threads, $CONNS connections x $PIPE in flight, ${BODY}-byte body, ${SECS}s each"

start_agent
phase archestra -c "$CONNS" -p "$PIPE" -b "$BODY" -d "$SECS" -w 1 -P "$agent_pid"
stop_agent

start_agent --ack-only
phase ack-only -c "$CONNS" -p "$PIPE" -b "$BODY" -d "$SECS" -w 1 -P "$agent_pid"
stop_agent

# The same handler with statsd on, sending to a collector that reads and drops.
sink_port=$(free_port)
python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', $sink_port)); s.settimeout(1)
end = time.time() + $SECS + 15
n = 0
while time.time() < end:
    try: n += len(s.recv(65535))
    except socket.timeout: pass
" &
sink_pid=$!
printf '{"statsd": {"address": "127.0.0.1:%s"}}' "$sink_port" >"$OUT/statsd.json"
start_agent --config "$OUT/statsd.json"
phase statsd -c "$CONNS" -p "$PIPE" -b "$BODY" -d "$SECS" -w 1 -P "$agent_pid"
stop_agent
kill "$sink_pid" 2>/dev/null

echo "== agent memory with 1,000 open connections"
start_agent
phase memory -c 8 -p 4 -b "$BODY" -d 2 -w 1 -i 1000 -P "$agent_pid"
stop_agent

a=$(field "$archestra" decisions_per_sec)
z=$(field "$ack_only" decisions_per_sec)
echo
printf 'summary: archestra %s decisions/s (p50 %s us, p99 %s us, p999 %s us); ack-only %s decisions/s (p99 %s us); handler/ack-only throughput ratio %s\n' \
	"$a" "$(field "$archestra" p50_us)" "$(field "$archestra" p99_us)" "$(field "$archestra" p999_us)" \
	"$z" "$(field "$ack_only" p99_us)" "$(python3 -c "print(round($a/$z,3))" 2>/dev/null || echo '?')"
s=$(field "$statsd" decisions_per_sec)
printf 'summary: statsd on %s decisions/s vs off %s: statsd costs %s%% of throughput\n' "$s" "$a" \
	"$(python3 -c "print(round(100*(1-$s/$a),1))" 2>/dev/null || echo '?')"
printf 'summary: agent RSS with %s+%s open connections: %s kB (peak %s kB)\n' \
	"$(field "$memory" idle_conns)" "$(field "$memory" conns)" "$(field "$memory" agent_rss_kb)" "$(field "$memory" agent_hwm_kb)"
tests/bench/edge-bench.sh
