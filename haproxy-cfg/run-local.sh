#!/usr/bin/env bash
# `make run`: the whole edge on this machine, in the foreground.
#   mock provider (HTTPS, test CA)  <-  HAProxy (:8080 HTTP, :8443 HTTPS)  ->  2 agents
#   Prometheus (:9090) scraping both agents (:9464, :9466) and HAProxy's exporter (:8405)
#   Redis (:6390) holding the fleet's budget and rate-limit counters
# With UPSTREAM=real, HAProxy goes to the real providers instead of the mock.
# Ctrl-C stops everything. Ports and paths can be moved with the variables below.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

HTTP_PORT=${HTTP_PORT:-8080}
HTTPS_PORT=${HTTPS_PORT:-8443}
AGENT1_PORT=${AGENT1_PORT:-12345}
AGENT2_PORT=${AGENT2_PORT:-12346}
MOCK_PORT=${MOCK_PORT:-9443}
PLAIN_MOCK_PORT=${PLAIN_MOCK_PORT:-9080}
UPSTREAM=${UPSTREAM:-mock}
RUN_DIR=${RUN_DIR:-$top/build/run}
CERTS=${CERTS:-$top/build/certs}
PYTHON=${PYTHON:-python3}
PROM_PORT=${PROM_PORT:-9090}
AGENT1_METRICS=${AGENT1_METRICS:-9464}
AGENT2_METRICS=${AGENT2_METRICS:-9466}
HAPROXY_METRICS=${HAPROXY_METRICS:-8405}
METER_PORT=${METER_PORT:-9465}   # UDP: HAProxy's end-of-call records to the agents
REDIS_PORT=${REDIS_PORT:-6390}   # the fleet's spend counters (not 6379: a Redis of yours may be there)

mkdir -p "$RUN_DIR"
bash tests/mock/gen-certs.sh "$CERTS" >/dev/null

pids=()
cleanup() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped."
}
trap cleanup INT TERM EXIT

wait_port() { # port name pid
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$3" 2>/dev/null || { echo "$2 exited; see $RUN_DIR/$2.log" >&2; exit 1; }
		sleep 0.05
	done
	echo "$2 did not listen on port $1; see $RUN_DIR/$2.log" >&2
	exit 1
}

export ARCHESTRA_HTTP_BIND="127.0.0.1:$HTTP_PORT"
export ARCHESTRA_HTTPS_BIND="127.0.0.1:$HTTPS_PORT"
export ARCHESTRA_TLS_CERT="$CERTS/gateway.pem"
export ARCHESTRA_SPOE_CONF="$top/haproxy-cfg/spoe-archestra.conf"
export ARCHESTRA_LUA="$top/haproxy-cfg/archestra.lua"
export ARCHESTRA_AGENT1="127.0.0.1:$AGENT1_PORT"
export ARCHESTRA_AGENT2="127.0.0.1:$AGENT2_PORT"
export ARCHESTRA_RELAY_SOCK="$RUN_DIR/relay.sock"
export ARCHESTRA_HAPROXY_METRICS="127.0.0.1:$HAPROXY_METRICS"
export ARCHESTRA_METER="127.0.0.1:$METER_PORT"

if [ "$UPSTREAM" = real ]; then
	echo "upstream: the real providers (their own keys needed in the curl lines below)"
else
	"$PYTHON" tests/mock/mock_provider.py --port "$MOCK_PORT" --cert "$CERTS/server.crt" --key "$CERTS/server.key" \
		>"$RUN_DIR/mock.log" 2>&1 &
	pids+=($!)
	wait_port "$MOCK_PORT" mock $!
	# The local servers' providers (ollama, vllm...) speak plain HTTP: a second mock.
	"$PYTHON" tests/mock/mock_provider.py --port "$PLAIN_MOCK_PORT" >"$RUN_DIR/mock-plain.log" 2>&1 &
	pids+=($!)
	wait_port "$PLAIN_MOCK_PORT" mock-plain $!
	export ARCHESTRA_CA_FILE="$CERTS/ca.pem"
	export ARCHESTRA_NO_DNS=1
	echo "upstream: mock provider on https://127.0.0.1:$MOCK_PORT (certificate from the local test CA)"
fi

# The three ways to authenticate: a direct provider key, a virtual key issued
# here, and a JWT from a local demo identity provider whose JWKS the agent loads.
rm -f "$RUN_DIR/keys.json" "$RUN_DIR/keys.json.lock"
vkey=$(spoa/archestra-spoa keys new --file "$RUN_DIR/keys.json" --name demo --owner demo-user 2>/dev/null)
"$PYTHON" tests/mock/demo-issuer.py init "$RUN_DIR/issuer"
jwt=$("$PYTHON" tests/mock/demo-issuer.py token "$RUN_DIR/issuer" --sub jwt-demo-user --ttl 86400)
if [ "$UPSTREAM" != real ]; then
	# The mock accepts any key; the "real" keys the gateway holds are stand-ins.
	export OPENAI_API_KEY=sk-mock-openai ANTHROPIC_API_KEY=sk-mock-anthropic GEMINI_API_KEY=mock-gemini
fi
pkeys=""
for p in openai:OPENAI_API_KEY anthropic:ANTHROPIC_API_KEY gemini:GEMINI_API_KEY; do
	var=${p#*:}
	if [ -n "${!var:-}" ]; then pkeys="$pkeys${pkeys:+,}\"${p%%:*}\": {\"env\": \"$var\"}"; fi
done
# The spend store both agents share, fresh each run (nothing saved to disk).
store=""
if command -v redis-server >/dev/null 2>&1; then
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN_DIR" \
		>"$RUN_DIR/redis.log" 2>&1 &
	pids+=($!)
	wait_port "$REDIS_PORT" redis $!
	store="\"store\": { \"redis\": \"127.0.0.1:$REDIS_PORT\" },"
else
	echo "redis-server not installed (apt-get install redis-server): budgets count per agent" >&2
fi
# The built-in policy, plus a small demo budget: 3 calls a day for agent budget-demo.
"$PYTHON" - "$top/policy/default.json" "$RUN_DIR/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p.setdefault("budgets", []).append({"id": "demo-budget", "scope": "agent_id", "when": {"agent_id": "budget-demo"},
                                     "requests": 3, "usd": 5, "window": "day"})
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
cat >"$RUN_DIR/agent.json" <<JSON
{
  $store
  "policy_file": "$RUN_DIR/policy.json",
  "keys_file": "$RUN_DIR/keys.json",
  "provider_keys": { $pkeys },
  "jwt": { "issuer": "https://demo-issuer.local", "audience": "archestra",
           "jwks_file": "$RUN_DIR/issuer/jwks.json", "algorithms": ["RS256"] }
}
JSON

# Each agent serves its own /metrics: a second --config with just that.
for pair in "$AGENT1_PORT:$AGENT1_METRICS" "$AGENT2_PORT:$AGENT2_METRICS"; do
	port=${pair%%:*} mport=${pair#*:}
	echo "{ \"prometheus\": { \"listen\": \"127.0.0.1:$mport\" } }" >"$RUN_DIR/agent-$port.json"
	spoa/archestra-spoa --listen "127.0.0.1:$port" --meter "$ARCHESTRA_METER" \
		--config "$RUN_DIR/agent.json" --config "$RUN_DIR/agent-$port.json" \
		${AGENT_ARGS:-} >>"$RUN_DIR/agent-$port.log" 2>&1 &
	pids+=($!)
	wait_port "$port" "agent-$port" $!
done

# HAProxy's provider backends, from the same table the agents route by.
spoa/archestra-spoa haproxy-backends --config "$RUN_DIR/agent.json" >"$RUN_DIR/providers.cfg"
if [ "$UPSTREAM" != real ]; then
	# every provider to the mock: HTTPS ones to the TLS mock, local servers to the plain one
	while read -r var tls; do
		if [ "$tls" = 1 ]; then export "$var=127.0.0.1:$MOCK_PORT"; else export "$var=127.0.0.1:$PLAIN_MOCK_PORT"; fi
	done < <(sed -nE 's/.*server [^ ]+ "\$\{(ARCHESTRA_[A-Z0-9_]+_ADDR)-[^"]*"(.*)/\1 \2/p' "$RUN_DIR/providers.cfg" |
		awk '{ print $1, (index($0, "ssl verify") ? 1 : 0) }')
fi
"${HAPROXY:-haproxy}" -db -f haproxy-cfg/haproxy.cfg -f "$RUN_DIR/providers.cfg" >"$RUN_DIR/haproxy.log" 2>&1 &
hap=$!
pids+=($hap)
wait_port "$HTTP_PORT" haproxy $hap
wait_port "$HTTPS_PORT" haproxy $hap

# Prometheus, scraping the agents and HAProxy's own exporter every 5 s.
prom_line="Prometheus: not installed (apt-get install prometheus), metrics still at each /metrics above"
if command -v prometheus >/dev/null 2>&1; then
	cat >"$RUN_DIR/prometheus.yml" <<YML
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: archestra-spoa
    static_configs:
      - targets: ["127.0.0.1:$AGENT1_METRICS", "127.0.0.1:$AGENT2_METRICS"]
  - job_name: haproxy
    static_configs:
      - targets: ["127.0.0.1:$HAPROXY_METRICS"]
YML
	prometheus --config.file="$RUN_DIR/prometheus.yml" --storage.tsdb.path="$RUN_DIR/prometheus" \
		--web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$RUN_DIR/prometheus.log" 2>&1 &
	pids+=($!)
	wait_port "$PROM_PORT" prometheus $!
	prom_line="Prometheus: http://127.0.0.1:$PROM_PORT (scrapes both agents and HAProxy every 5 s)"
fi

base="http://127.0.0.1:$HTTP_PORT"
tls="https://localhost:$HTTPS_PORT"
# Ready when a call gets the agents' verdict (HAProxy checks them first).
for _ in $(seq 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/nowhere" || true)
	[ "$code" = 404 ] && break
	sleep 0.1
done
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'
cat <<EOF

archestra edge is up: HTTP $base, HTTPS $tls (CA: $CERTS/ca.pem)
logs: $RUN_DIR (haproxy.log has one line per call with provider, verdict and reason)

Try (each line says what it should give):
# 200: OpenAI chat completion with your own (direct) key, naming the agent, user and session
curl -s $base/v1/openai/chat/completions -H 'Authorization: Bearer sk-demo-direct' -H 'X-Archestra-Agent-Id: demo-agent' -H 'X-Archestra-User-Id: alice' -H 'X-Archestra-Session-Id: conv-1' -H 'Content-Type: application/json' -d '$body'
# 200: the same over TLS, verified against the local CA
curl -s --cacert $CERTS/ca.pem $tls/v1/openai/chat/completions -H 'Authorization: Bearer sk-demo-direct' -H 'Content-Type: application/json' -d '$body'
# 200: OpenAI streaming (server-sent events, chunk by chunk)
curl -sN $base/v1/openai/chat/completions -H 'Authorization: Bearer sk-demo-direct' -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count to 5"}]}'
# 200: the same with a virtual key issued by the gateway (it sends its own provider key upstream)
curl -s $base/v1/openai/chat/completions -H 'Authorization: Bearer $vkey' -H 'Content-Type: application/json' -d '$body'
# 200: the same with a JWT from the demo identity provider (its subject becomes the user)
curl -s $base/v1/openai/chat/completions -H 'Authorization: Bearer $jwt' -H 'Content-Type: application/json' -d '$body'
# 401: a revoked, unknown or forged virtual key is refused
curl -s $base/v1/openai/chat/completions -H 'Authorization: Bearer arch_vk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' -d '{}'
# 200: Anthropic messages
curl -s $base/v1/anthropic/v1/messages -H 'x-api-key: sk-ant-demo' -H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' -d '{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}'
# 200: Gemini generateContent
curl -s $base/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent -H 'x-goog-api-key: AIza-demo' -H 'Content-Type: application/json' -d '{"contents":[{"parts":[{"text":"Hello"}]}]}'
# 401: denied by the agent (no API key), in OpenAI's error shape; never sent upstream
curl -s $base/v1/openai/chat/completions -H 'Content-Type: application/json' -d '$body'
# 400: an invalid identity header (a '/' in the agent id), named in the error
curl -s $base/v1/openai/chat/completions -H 'Authorization: Bearer sk-demo-direct' -H 'X-Archestra-Agent-Id: a/b' -d '{}'
# 403: a prompt carrying an AWS access key is refused by DLP (reason dlp_aws_access_key); the key is logged nowhere
curl -s $base/v1/openai/chat/completions -H 'Authorization: Bearer sk-demo-direct' -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"deploy with AKIAIOSFODNN7EXAMPLE"}]}'
# 402: a budget used up: agent budget-demo may make 3 calls a day; the 4th is refused (token_cost_limit_exceeded)
curl -s --rate 4/s $base/v1/openai/chat/completions $base/v1/openai/chat/completions $base/v1/openai/chat/completions $base/v1/openai/chat/completions -H 'Authorization: Bearer sk-demo-direct' -H 'X-Archestra-Agent-Id: budget-demo' -H 'Content-Type: application/json' -d '$body' -w '\n'
# 404: no provider at this path
curl -s $base/v1/nowhere/chat/completions -H 'Authorization: Bearer sk-demo-direct' -d '{}'

Metrics: agents http://127.0.0.1:$AGENT1_METRICS/metrics http://127.0.0.1:$AGENT2_METRICS/metrics, HAProxy http://127.0.0.1:$HAPROXY_METRICS/metrics
$prom_line
Queries to try there (Graph tab), after a few calls:
  spend by agent (USD):       sum by (agent_id) (llm_cost_total)
  tokens by model and type:   sum by (model, type) (llm_tokens_total)
  blocked calls, by reason:   sum by (reason) (llm_requests_total{verdict="deny"})
  agents HAProxy counts up:   haproxy_backend_active_servers{proxy="archestra-agents"}
Grafana: import observability/grafana-dashboard.json (it asks for the Prometheus data source).

Virtual keys: spoa/archestra-spoa keys new|list|revoke|rotate --file $RUN_DIR/keys.json (the agents reload it).
Budgets: spoa/archestra-spoa spend --config $RUN_DIR/agent.json (spend reset demo-budget to start again);
  the policy is $RUN_DIR/policy.json (the agents reload it when it changes).
Ctrl-C stops everything.
EOF
if [ "${RUN_LOCAL_READY_FILE:-}" ]; then touch "$RUN_LOCAL_READY_FILE"; fi
tail -n 0 -f "$RUN_DIR/haproxy.log" &
pids+=($!)
wait "$hap"
