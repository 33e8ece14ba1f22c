#!/usr/bin/env bash
# End-to-end half of `make bench`: the same wrk load (small chat-completions POSTs)
# through HAProxy with the agent (the default configuration: the meter counts
# every call's tokens), with the agent and the meter off (ARCHESTRA_NO_METER,
# agents --meter off: what default usage counting costs), and through the same
# HAProxy configuration without the SPOE filter (ARCHESTRA_DISABLE_AGENT), to the
# same upstream: a second HAProxy answering by itself over TLS with a tool call
# and usage (about 1 KB, as agents get), also measured alone to show it is not the
# bottleneck. CPU per call is read from /proc (HAProxy and agents apart). All on
# loopback, bounded in time.
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
    http-request return status 200 content-type application/json file $top/$OUT/response.json
CFG
# A chat completion as OpenAI writes it (pretty-printed), with a tool call and usage.
python3 - "$OUT/response.json" <<'PY'
import json, sys
args = json.dumps({"path": "src/analysis/hamlet.md", "content": "Hamlet avenges his father. " * 12})
r = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1764658800, "model": "gpt-4o-mini-2024-07-18",
     "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                  "tool_calls": [{"id": "call_bench", "type": "function",
                                  "function": {"name": "write_file", "arguments": args}}]},
                  "logprobs": None, "finish_reason": "tool_calls"}],
     "usage": {"prompt_tokens": 2731, "completion_tokens": 97, "total_tokens": 2828,
               "prompt_tokens_details": {"cached_tokens": 2048, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                             "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
     "service_tier": "default", "system_fingerprint": "fp_bench"}
open(sys.argv[1], "w").write(json.dumps(r, indent=2))
PY
haproxy -db -f "$OUT/upstream.cfg" >"$OUT/upstream.log" 2>&1 &
pids+=($!)
wait_port "$UP"
A1=$(port) A2=$(port) B1=$(port) B2=$(port)
METER=$(python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
agent_pids="" nometer_pids=""
for p in "$A1" "$A2"; do # the default: the meter on
	spoa/archestra-spoa --listen "127.0.0.1:$p" --threads 1 --log-level warn --meter "127.0.0.1:$METER" 2>>"$OUT/agents.log" &
	pids+=($!) agent_pids="$agent_pids $!"
	wait_port "$p"
done
for p in "$B1" "$B2"; do
	spoa/archestra-spoa --listen "127.0.0.1:$p" --threads 1 --log-level error --meter off 2>>"$OUT/agents.log" &
	pids+=($!) nometer_pids="$nometer_pids $!"
	wait_port "$p"
done
spoa/archestra-spoa haproxy-backends >"$OUT/providers.cfg"
# every provider to the one upstream (only openai is called)
for v in $(sed -nE 's/.*server [^ ]+ "\$\{(ARCHESTRA_[A-Z0-9_]+_ADDR)-.*/\1/p' "$OUT/providers.cfg"); do
	export "$v=127.0.0.1:$UP"
done

edge() { # name http-port agent1 agent2 extra-env...
	local name=$1 hp=$2 a1=$3 a2=$4
	shift 4
	env ARCHESTRA_HTTP_BIND="127.0.0.1:$hp" ARCHESTRA_HTTPS_BIND="127.0.0.1:$(port)" \
		ARCHESTRA_TLS_CERT="$top/$CERTS/gateway.pem" ARCHESTRA_SPOE_CONF="$top/haproxy-cfg/spoe-archestra.conf" \
		ARCHESTRA_LUA="$top/haproxy-cfg/archestra.lua" \
		ARCHESTRA_CA_FILE="$top/$CERTS/ca.pem" ARCHESTRA_NO_DNS=1 ARCHESTRA_LOG=/dev/null \
		ARCHESTRA_AGENT1="127.0.0.1:$a1" ARCHESTRA_AGENT2="127.0.0.1:$a2" ARCHESTRA_METER="127.0.0.1:$METER" "$@" \
		haproxy -db -f haproxy-cfg/haproxy.cfg -f "$OUT/providers.cfg" >"$OUT/$name.log" 2>&1 &
	pids+=($!)
	eval "hap_${name//-/_}=$!"
	wait_port "$hp"
}
HM=$(port)
edge with-agent "$HW" "$A1" "$A2"
edge no-meter "$HM" "$B1" "$B2" ARCHESTRA_NO_METER=1
edge without-agent "$HN" "$A1" "$A2" ARCHESTRA_DISABLE_AGENT=1

# Both edges must really route to the upstream (and the first one really ask the agent).
probe() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v1/openai/chat/completions" \
	-H 'Authorization: Bearer sk-probe' -H 'Content-Type: application/json' -d '{}'; }
for _ in $(seq 50); do [ "$(probe "$HW")" = 200 ] && break; sleep 0.1; done
[ "$(probe "$HW")" = 200 ] && [ "$(probe "$HM")" = 200 ] && [ "$(probe "$HN")" = 200 ] ||
	{ echo "edge probes failed" >&2; exit 1; }
deny=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HW/v1/openai/chat/completions" -d '{}')
[ "$deny" = 401 ] || { echo "the agent is not in the path (got $deny without a key)" >&2; exit 1; }

us() { # wrk latency like 312.00us / 1.20ms -> microseconds
	case "$1" in *us) echo "${1%us}" ;; *ms) awk "BEGIN{print ${1%ms}*1000}" ;; *s) awk "BEGIN{print ${1%s}*1000000}" ;; *) echo 0 ;; esac
}

ticks() { # total user+system clock ticks of these pids
	local t=0 p
	for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$t"
}
HZ=$(getconf CLK_TCK)

run_wrk() { # name url [conns] [pids to measure: haproxy agents...]
	local h0 a0 hpid=${4:-} apids=${5:-}
	[ -n "$hpid" ] && h0=$(ticks $hpid) a0=$(ticks $apids)
	: "${a0:=0}"
	wrk -t"$WT" -c"${3:-$CONNS}" -d"${SECS}s" --latency -s tests/bench/chat.lua "$2" >"$OUT/$1.wrk" 2>&1
	local rps p50 p99 n
	if [ -n "$hpid" ]; then
		n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$OUT/$1.wrk")
		eval "cpu_h_${1//-/_}=$(awk "BEGIN{printf \"%.1f\", ($(ticks $hpid) - $h0) * 1e6 / $HZ / $n}")"
		local da=0
		[ -n "$apids" ] && da=$(($(ticks $apids) - a0))
		eval "cpu_a_${1//-/_}=$(awk "BEGIN{printf \"%.1f\", $da * 1e6 / $HZ / $n}")"
	fi
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
W="" M="" N="" W50="" N50="" LW="" LN="" CW="" CM="" CN="" AW="" AM=""
for r in $(seq "$ROUNDS"); do
	run_wrk with-agent "http://127.0.0.1:$HW" "$CONNS" "$hap_with_agent" "$agent_pids"
	W="$W $rps_with_agent"; W50="$W50 $(us "$p50_with_agent")"
	CW="$CW $(awk "BEGIN{print $cpu_h_with_agent + $cpu_a_with_agent}")" AW="$AW $cpu_a_with_agent"
	run_wrk no-meter "http://127.0.0.1:$HM" "$CONNS" "$hap_no_meter" "$nometer_pids"
	M="$M $rps_no_meter"
	CM="$CM $(awk "BEGIN{print $cpu_h_no_meter + $cpu_a_no_meter}")" AM="$AM $cpu_a_no_meter"
	run_wrk without-agent "http://127.0.0.1:$HN" "$CONNS" "$hap_without_agent" ""
	N="$N $rps_without_agent"; N50="$N50 $(us "$p50_without_agent")"; CN="$CN $cpu_h_without_agent"
done
run_wrk upstream-alone "https://127.0.0.1:$UP"

echo "== latency at light load: one connection, one request at a time"
for r in $(seq "$ROUNDS"); do
	run_wrk light-with-agent "http://127.0.0.1:$HW" 1; LW="$LW $(us "$p50_light_with_agent")"
	run_wrk light-without-agent "http://127.0.0.1:$HN" 1; LN="$LN $(us "$p50_light_without_agent")"
done
rps_with_agent=$(echo "$W" | med) rps_without_agent=$(echo "$N" | med) rps_no_meter=$(echo "$M" | med)
cw=$(echo "$CW" | med) cm=$(echo "$CM" | med) cn=$(echo "$CN" | med) aw=$(echo "$AW" | med) am=$(echo "$AM" | med)

ratio=$(awk "BEGIN{printf \"%.3f\", $rps_with_agent/$rps_without_agent}")
added=$(awk "BEGIN{printf \"%.0f\", $(echo "$W50" | med) - $(echo "$N50" | med)}")
head=$(awk "BEGIN{printf \"%.1f\", $rps_upstream_alone/$rps_without_agent}")
light=$(awk "BEGIN{printf \"%.0f\", $(echo "$LW" | med) - $(echo "$LN" | med)}")
echo "summary: medians of $ROUNDS rounds: with agent $rps_with_agent req/s, without $rps_without_agent: ratio $ratio (saturated, $CONNS connections); added p50 latency ${added} us saturated, ${light} us at light load; upstream alone serves ${head}x the without-agent rate"
echo "summary: CPU per call (HAProxy + agents, from /proc, medians): with agent ${cw} us (agents ${aw}), meter off ${cm} us (agents ${am}), without agent ${cn} us"
echo "summary: default usage counting (the meter) vs off: CPU per call x$(awk "BEGIN{printf \"%.3f\", $cw/$cm}"), throughput x$(awk "BEGIN{printf \"%.3f\", $rps_with_agent/$rps_no_meter}") ($rps_with_agent vs $rps_no_meter req/s)"
