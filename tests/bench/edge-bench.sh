#!/usr/bin/env bash
# End-to-end half of `make bench`: the same wrk load (small chat-completions POSTs)
# through HAProxy with the agent, and through the same HAProxy configuration
# without the SPOE filter (ARCHESTRA_DISABLE_AGENT), to the same upstream: a
# second HAProxy answering by itself over TLS, which is also measured alone to
# show it is not the bottleneck. All on loopback, bounded in time.
# Knobs: EDGE_SECONDS (5), EDGE_CONNS (32), EDGE_THREADS (1).
set -u
cd "$(dirname "$0")/../.."
top=$PWD
SECS=${EDGE_SECONDS:-3}
CONNS=${EDGE_CONNS:-32}
WT=${EDGE_THREADS:-1}
OUT=build/bench/edge
mkdir -p "$OUT"
CERTS=build/certs
bash tests/mock/gen-certs.sh "$CERTS" >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

UP=$(port) HW=$(port) HN=$(port)
cat >"$OUT/upstream.cfg" <<CFG
global
    tune.bufsize 262144
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend upstream
    bind 127.0.0.1:$UP ssl crt $top/$CERTS/server.pem
    http-request return status 200 content-type application/json string "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hamlet avenges his father.\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":7,\"total_tokens\":38}}"
CFG
haproxy -db -f "$OUT/upstream.cfg" >"$OUT/upstream.log" 2>&1 &
pids+=($!)
wait_port "$UP"
A1=$(port) A2=$(port)
for p in "$A1" "$A2"; do
	spoa/archestra-spoa --listen "127.0.0.1:$p" --threads 1 --log-level warn 2>>"$OUT/agents.log" &
	pids+=($!)
	wait_port "$p"
done

edge() { # name http-port extra-env...
	local name=$1 hp=$2
	shift 2
	env ARCHESTRA_HTTP_BIND="127.0.0.1:$hp" ARCHESTRA_HTTPS_BIND="127.0.0.1:$(port)" \
		ARCHESTRA_TLS_CERT="$top/$CERTS/gateway.pem" ARCHESTRA_SPOE_CONF="$top/haproxy-cfg/spoe-archestra.conf" \
		ARCHESTRA_CA_FILE="$top/$CERTS/ca.pem" ARCHESTRA_NO_DNS=1 ARCHESTRA_LOG=/dev/null \
		ARCHESTRA_OPENAI_ADDR="127.0.0.1:$UP" ARCHESTRA_ANTHROPIC_ADDR="127.0.0.1:$UP" \
		ARCHESTRA_GEMINI_ADDR="127.0.0.1:$UP" ARCHESTRA_LOCAL_ADDR="127.0.0.1:$UP" \
		ARCHESTRA_AGENT1="127.0.0.1:$A1" ARCHESTRA_AGENT2="127.0.0.1:$A2" "$@" \
		haproxy -db -f haproxy-cfg/haproxy.cfg >"$OUT/$name.log" 2>&1 &
	pids+=($!)
	wait_port "$hp"
}
edge with-agent "$HW"
edge without-agent "$HN" ARCHESTRA_DISABLE_AGENT=1

# Both edges must really route to the upstream (and the first one really ask the agent).
probe() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v1/openai/chat/completions" \
	-H 'Authorization: Bearer sk-probe' -H 'Content-Type: application/json' -d '{}'; }
for _ in $(seq 50); do [ "$(probe "$HW")" = 200 ] && break; sleep 0.1; done
[ "$(probe "$HW")" = 200 ] && [ "$(probe "$HN")" = 200 ] || { echo "edge probes failed" >&2; exit 1; }
deny=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HW/v1/openai/chat/completions" -d '{}')
[ "$deny" = 401 ] || { echo "the agent is not in the path (got $deny without a key)" >&2; exit 1; }

us() { # wrk latency like 312.00us / 1.20ms -> microseconds
	case "$1" in *us) echo "${1%us}" ;; *ms) awk "BEGIN{print ${1%ms}*1000}" ;; *s) awk "BEGIN{print ${1%s}*1000000}" ;; *) echo 0 ;; esac
}

run_wrk() { # name url [conns]
	wrk -t"$WT" -c"${3:-$CONNS}" -d"${SECS}s" --latency -s tests/bench/chat.lua "$2" >"$OUT/$1.wrk" 2>&1
	local rps p50 p99
	rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$OUT/$1.wrk")
	p50=$(awk '$1=="50%"{print $2}' "$OUT/$1.wrk")
	p99=$(awk '$1=="99%"{print $2}' "$OUT/$1.wrk")
	local errs
	errs=$(grep -E 'Non-2xx|Socket errors' "$OUT/$1.wrk" | tr '\n' ' ')
	echo "$1: requests_per_sec=$rps p50=$p50 p99=$p99 ${errs:+errors=\"$errs\"}"
	eval "rps_${1//-/_}=$rps p50_${1//-/_}=$p50"
}

ROUNDS=${EDGE_ROUNDS:-3}
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== end to end: wrk -t$WT -c$CONNS -d${SECS}s x $ROUNDS rounds in turn, small chat-completions POST, upstream over TLS"
W="" N="" W50="" N50="" LW="" LN=""
for r in $(seq "$ROUNDS"); do
	run_wrk with-agent "http://127.0.0.1:$HW"; W="$W $rps_with_agent"; W50="$W50 $(us "$p50_with_agent")"
	run_wrk without-agent "http://127.0.0.1:$HN"; N="$N $rps_without_agent"; N50="$N50 $(us "$p50_without_agent")"
done
run_wrk upstream-alone "https://127.0.0.1:$UP"

echo "== latency at light load: one connection, one request at a time"
for r in $(seq "$ROUNDS"); do
	run_wrk light-with-agent "http://127.0.0.1:$HW" 1; LW="$LW $(us "$p50_light_with_agent")"
	run_wrk light-without-agent "http://127.0.0.1:$HN" 1; LN="$LN $(us "$p50_light_without_agent")"
done
rps_with_agent=$(echo "$W" | med) rps_without_agent=$(echo "$N" | med)

ratio=$(awk "BEGIN{printf \"%.3f\", $rps_with_agent/$rps_without_agent}")
added=$(awk "BEGIN{printf \"%.0f\", $(echo "$W50" | med) - $(echo "$N50" | med)}")
head=$(awk "BEGIN{printf \"%.1f\", $rps_upstream_alone/$rps_without_agent}")
light=$(awk "BEGIN{printf \"%.0f\", $(echo "$LW" | med) - $(echo "$LN" | med)}")
echo "summary: medians of $ROUNDS rounds: with agent $rps_with_agent req/s, without $rps_without_agent: ratio $ratio (saturated, $CONNS connections); added p50 latency ${added} us saturated, ${light} us at light load; upstream alone serves ${head}x the without-agent rate"
