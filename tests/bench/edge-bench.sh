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
# Also an --ack-only agent behind fail-open routing: the floor of what the SPOE exchange
# itself costs HAProxy.
# Knobs: EDGE_SECONDS (3), EDGE_CONNS (32), EDGE_THREADS (1), EDGE_ROUNDS (3),
# EDGE_CALL (small: a 300-byte chat call with a direct key; realistic: an 11 KB agent call,
# system prompt, 16 turns, 5 tool schemas, with a virtual key and identity headers),
# EDGE_HAPROXY (the HAProxy the edges run; the upstream is always Debian's).
# EDGE_UNIX=1 (the with-agent edge reaches its agents over Unix sockets).
set -u
cd "$(dirname "$0")/../.."
top=$PWD
SECS=${EDGE_SECONDS:-3}
CALL=${EDGE_CALL:-small}
HAP=${EDGE_HAPROXY:-haproxy}
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
A1=$(port) A2=$(port) B1=$(port) B2=$(port) F1=$(port) F2=$(port)
METER=$(python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The agents as deployed: virtual keys, the gateway's own provider key, the default policy.
rm -f "$OUT/keys.json" "$OUT/keys.json.lock"
export REALISTIC_KEY=$(spoa/archestra-spoa keys new --file "$OUT/keys.json" --name bench --owner bench-user 2>/dev/null)
export BENCH_OPENAI_KEY=sk-bench-gateway-0123456789abcdef
printf '{"keys_file": "%s", "provider_keys": {"openai": {"env": "BENCH_OPENAI_KEY"}}}\n' "$top/$OUT/keys.json" \
	>"$OUT/agent.json"
export REALISTIC_BODY=$top/$OUT/realistic.json
python3 - "$REALISTIC_BODY" <<'PY'
import json, sys
tool = lambda name, props: {"type": "function", "function": {"name": name, "description": f"{name.replace('_', ' ')}: "
                            "use it when the customer's question needs it; never guess what it would return. "
                            "It answers within a second; if it fails, say so and offer to escalate. Results are the "
                            "store's records of record, newer than anything in the conversation.",
                            "parameters": {"type": "object", "properties": {p: {"type": "string", "description": d}
                                                                              for p, d in props.items()},
                                           "required": list(props)}}}
tools = [tool("search_orders", {"customer_id": "the customer", "status": "open, shipped or returned"}),
         tool("get_order", {"order_id": "the order's id"}),
         tool("refund_order", {"order_id": "the order's id", "reason": "why, in the customer's words"}),
         tool("search_kb", {"query": "what to look up in the help center"}),
         tool("escalate", {"summary": "what happened so far", "priority": "low, normal or urgent"})]
system = ("You are the support agent of an online store. Be brief and exact. " * 20 +
          "Policies: refunds within 30 days of delivery; never promise dates; escalate legal questions. " * 20)
msgs = [{"role": "system", "content": system}]
for i in range(8):
    msgs.append({"role": "user", "content": f"Question {i}: where is my order 10{i}42? It was due last week and "
                 "the tracking page has not moved since Tuesday. I need it for a birthday on Saturday. I already "
                 "wrote twice through the contact form and nobody answered; if it cannot arrive in time I want my "
                 "money back, and I would like to know why nobody tells me anything."})
    if i % 2:
        msgs.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"call_{i}", "type": "function",
                     "function": {"name": "get_order", "arguments": json.dumps({"order_id": f"10{i}42"})}}]})
        msgs.append({"role": "tool", "tool_call_id": f"call_{i}", "content": json.dumps(
            {"order_id": f"10{i}42", "status": "shipped", "carrier": "DHL", "last_scan": "Leipzig hub"})})
    else:
        msgs.append({"role": "assistant", "content": "I am sorry for the wait. Your order left our warehouse and "
                     "is with the carrier; the last scan was at the regional hub. I will check the details."})
body = {"model": "gpt-4o-mini", "messages": msgs[:33], "tools": tools, "max_tokens": 800, "temperature": 0.2}
open(sys.argv[1], "w").write(json.dumps(body))
PY
agent_pids="" nometer_pids="" floor_pids=""
# EDGE_UNIX=1: the with-agent edge reaches its agents over Unix sockets instead of TCP.
AU1=$A1 AU2=$A2
for p in "$A1" "$A2"; do # the default: the meter on
	la="127.0.0.1:$p"
	[ -n "${EDGE_UNIX:-}" ] && la="unix:$top/$OUT/agent-$p.sock"
	spoa/archestra-spoa --listen "$la" --threads 1 --log-level warn --meter "127.0.0.1:$METER" \
		--config "$OUT/agent.json" 2>>"$OUT/agents.log" &
	pids+=($!) agent_pids="$agent_pids $!"
	if [ -n "${EDGE_UNIX:-}" ]; then
		for _ in $(seq 100); do [ -S "$top/$OUT/agent-$p.sock" ] && break; sleep 0.05; done
	else
		wait_port "$p"
	fi
done
if [ -n "${EDGE_UNIX:-}" ]; then AU1="unix@$top/$OUT/agent-$A1.sock" AU2="unix@$top/$OUT/agent-$A2.sock"; fi
for p in "$B1" "$B2"; do
	spoa/archestra-spoa --listen "127.0.0.1:$p" --threads 1 --log-level error --meter off \
		--config "$OUT/agent.json" 2>>"$OUT/agents.log" &
	pids+=($!) nometer_pids="$nometer_pids $!"
	wait_port "$p"
done
for p in "$F1" "$F2"; do # the floor: answers every message with no action
	spoa/archestra-spoa --listen "127.0.0.1:$p" --threads 1 --log-level error --meter off --ack-only \
		2>>"$OUT/agents.log" &
	pids+=($!) floor_pids="$floor_pids $!"
	wait_port "$p"
done
spoa/archestra-spoa haproxy-backends >"$OUT/providers.cfg"
# every provider to the one upstream (only openai is called)
for v in $(sed -nE 's/.*server [^ ]+ "\$\{(ARCHESTRA_[A-Z0-9_]+_ADDR)-.*/\1/p' "$OUT/providers.cfg"); do
	export "$v=127.0.0.1:$UP"
done

addr() { case "$1" in unix@*) echo "$1" ;; *) echo "127.0.0.1:$1" ;; esac; }
edge() { # name http-port agent1 agent2 extra-env...
	local name=$1 hp=$2 a1=$3 a2=$4
	shift 4
	env ARCHESTRA_HTTP_BIND="127.0.0.1:$hp" ARCHESTRA_HTTPS_BIND="127.0.0.1:$(port)" \
		ARCHESTRA_TLS_CERT="$top/$CERTS/gateway.pem" ARCHESTRA_SPOE_CONF="$top/haproxy-cfg/spoe-archestra.conf" \
		ARCHESTRA_LUA="$top/haproxy-cfg/archestra.lua" \
		ARCHESTRA_CA_FILE="$top/$CERTS/ca.pem" ARCHESTRA_NO_DNS=1 ARCHESTRA_LOG=/dev/null \
		ARCHESTRA_AGENT1="$(addr "$a1")" ARCHESTRA_AGENT2="$(addr "$a2")" ARCHESTRA_METER="127.0.0.1:$METER" "$@" \
		"$HAP" -db -f haproxy-cfg/haproxy.cfg -f "$OUT/providers.cfg" >"$OUT/$name.log" 2>&1 &
	pids+=($!)
	eval "hap_${name//-/_}=$!"
	wait_port "$hp"
}
HM=$(port) HF=$(port)
edge with-agent "$HW" "$AU1" "$AU2"
edge no-meter "$HM" "$B1" "$B2" ARCHESTRA_NO_METER=1
edge floor "$HF" "$F1" "$F2" ARCHESTRA_NO_METER=1 ARCHESTRA_FAIL_OPEN=1
edge without-agent "$HN" "$A1" "$A2" ARCHESTRA_DISABLE_AGENT=1

# Both edges must really route to the upstream (and the first one really ask the agent).
probe() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v1/openai/chat/completions" \
	-H 'Authorization: Bearer sk-probe' -H 'Content-Type: application/json' -d '{}'; }
for _ in $(seq 50); do [ "$(probe "$HW")" = 200 ] && break; sleep 0.1; done
[ "$(probe "$HW")" = 200 ] && [ "$(probe "$HM")" = 200 ] && [ "$(probe "$HF")" = 200 ] && [ "$(probe "$HN")" = 200 ] ||
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
	wrk -t"$WT" -c"${3:-$CONNS}" -d"${SECS}s" --latency -s "tests/bench/$LUA" "$2" >"$OUT/$1.wrk" 2>&1
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
	eval "rps_${1//-/_}=$rps p50_${1//-/_}=$p50 p99_${1//-/_}=$p99"
}

LUA=chat.lua
[ "$CALL" = realistic ] && LUA=realistic.lua
# the realistic call must be allowed, with its virtual key, by the real agent
st=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HW/v1/openai/chat/completions" \
	-H "Authorization: Bearer $REALISTIC_KEY" -H 'Content-Type: application/json' --data-binary "@$REALISTIC_BODY")
[ "$st" = 200 ] || { echo "the realistic call is not allowed ($st)" >&2; exit 1; }
ROUNDS=${EDGE_ROUNDS:-3}
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== end to end on $("$HAP" -v | head -1 | cut -d' ' -f1-3): wrk -t$WT -c$CONNS -d${SECS}s x $ROUNDS rounds in turn, $CALL call ($(wc -c <"$REALISTIC_BODY") bytes when realistic), upstream over TLS"
W="" M="" N="" F="" W50="" N50="" LW="" LN="" LD="" LW99="" LD99="" CW="" CM="" CN="" CF="" AW="" AM="" AF="" HWc="" HNc="" HFc=""
for r in $(seq "$ROUNDS"); do
	run_wrk with-agent "http://127.0.0.1:$HW" "$CONNS" "$hap_with_agent" "$agent_pids"
	W="$W $rps_with_agent"; W50="$W50 $(us "$p50_with_agent")"
	CW="$CW $(awk "BEGIN{print $cpu_h_with_agent + $cpu_a_with_agent}")" AW="$AW $cpu_a_with_agent"
	run_wrk no-meter "http://127.0.0.1:$HM" "$CONNS" "$hap_no_meter" "$nometer_pids"
	M="$M $rps_no_meter"
	CM="$CM $(awk "BEGIN{print $cpu_h_no_meter + $cpu_a_no_meter}")" AM="$AM $cpu_a_no_meter"
	run_wrk floor "http://127.0.0.1:$HF" "$CONNS" "$hap_floor" "$floor_pids"
	F="$F $rps_floor"
	CF="$CF $(awk "BEGIN{print $cpu_h_floor + $cpu_a_floor}")" AF="$AF $cpu_a_floor" HFc="$HFc $cpu_h_floor"
	run_wrk without-agent "http://127.0.0.1:$HN" "$CONNS" "$hap_without_agent" ""
	N="$N $rps_without_agent"; N50="$N50 $(us "$p50_without_agent")"; CN="$CN $cpu_h_without_agent"
	HWc="$HWc $cpu_h_with_agent"
done
run_wrk upstream-alone "https://127.0.0.1:$UP"

echo "== latency at light load: one connection, one request at a time"
for r in $(seq "$ROUNDS"); do
	run_wrk light-with-agent "http://127.0.0.1:$HW" 1; LW="$LW $(us "$p50_light_with_agent")"
	run_wrk light-without-agent "http://127.0.0.1:$HN" 1; LN="$LN $(us "$p50_light_without_agent")"
	run_wrk light-direct "https://127.0.0.1:$UP" 1; LD="$LD $(us "$p50_light_direct")"
	LW99="$LW99 $(us "$p99_light_with_agent")" LD99="$LD99 $(us "$p99_light_direct")"
done
rps_with_agent=$(echo "$W" | med) rps_without_agent=$(echo "$N" | med) rps_no_meter=$(echo "$M" | med)
cw=$(echo "$CW" | med) cm=$(echo "$CM" | med) cn=$(echo "$CN" | med) aw=$(echo "$AW" | med) am=$(echo "$AM" | med)
cf=$(echo "$CF" | med) af=$(echo "$AF" | med) hw=$(echo "$HWc" | med) hf=$(echo "$HFc" | med) rps_floor=$(echo "$F" | med)

ratio=$(awk "BEGIN{printf \"%.3f\", $rps_with_agent/$rps_without_agent}")
added=$(awk "BEGIN{printf \"%.0f\", $(echo "$W50" | med) - $(echo "$N50" | med)}")
head=$(awk "BEGIN{printf \"%.1f\", $rps_upstream_alone/$rps_without_agent}")
light=$(awk "BEGIN{printf \"%.0f\", $(echo "$LW" | med) - $(echo "$LN" | med)}")
echo "summary: medians of $ROUNDS rounds: with agent $rps_with_agent req/s, without $rps_without_agent: ratio $ratio (saturated, $CONNS connections); added p50 latency ${added} us saturated, ${light} us at light load; upstream alone serves ${head}x the without-agent rate"
echo "summary: CPU per call (HAProxy + agents, from /proc, medians): with agent ${cw} us (agents ${aw}), meter off ${cm} us (agents ${am}), without agent ${cn} us"
echo "summary: default usage counting (the meter) vs off: CPU per call x$(awk "BEGIN{printf \"%.3f\", $cw/$cm}"), throughput x$(awk "BEGIN{printf \"%.3f\", $rps_with_agent/$rps_no_meter}") ($rps_with_agent vs $rps_no_meter req/s)"
echo "summary: floor (--ack-only agents, fail-open routing): ${cf} us per call (agents ${af}, HAProxy ${hf}), ${rps_floor} req/s; with agent: HAProxy ${hw} us"
echo "summary: CPU per call with agent / without x$(awk "BEGIN{printf \"%.2f\", $cw/$cn}"), floor / without x$(awk "BEGIN{printf \"%.2f\", $cf/$cn}"), with agent / floor x$(awk "BEGIN{printf \"%.2f\", $cw/$cf}"); throughput with / without x$ratio"
echo "summary: sequential overhead (one call at a time, the whole edge minus calling the upstream directly over TLS): p50 $(awk "BEGIN{printf \"%.0f\", $(echo "$LW" | med) - $(echo "$LD" | med)}") us, p99 $(awk "BEGIN{printf \"%.0f\", $(echo "$LW99" | med) - $(echo "$LD99" | med)}") us"
