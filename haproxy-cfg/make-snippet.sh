#!/bin/sh
# Writes haproxy-cfg/snippet.cfg, the part of haproxy.cfg an operator pastes into
# an existing HAProxy, from the blocks of haproxy.cfg between
#     # >>> archestra snippet: <name>      and      # <<< archestra snippet: <name>
# as HAProxy reads them when no ARCHESTRA_* variable is set: ".if" blocks are
# resolved (fail closed, agent enabled) and "${VAR-default}" becomes the default.
# haproxy.cfg is the one source; never edit snippet.cfg by hand.
#   make-snippet.sh            rewrite snippet.cfg
#   make-snippet.sh --check    exit 1, with a diff, when snippet.cfg is not what it would write
#   make-snippet.sh --stdout   print it
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$here/haproxy.cfg
dst=$here/snippet.cfg

generate() { # output file
	exec 3>"$1"
	cat >&3 <<'HEAD'
# GENERATED from haproxy.cfg by make-snippet.sh: do not edit, edit haproxy.cfg.
#
# Pasting archestra-spoa into an existing HAProxy (2.6 to 3.4, unchanged).
# Copy spoe-archestra.conf to /etc/haproxy/, then:
#
# 1. In the frontend that receives the LLM calls, after its bind lines, paste
#    the "frontend" block below. Every request through that frontend is shown to
#    the agent, and the block answers every one the agent does not allow, so
#    routes of your own in the same frontend must be answered by http-request
#    rules placed BEFORE the block (e.g. `http-request return status 200 if
#    { path /health }`), or live in another frontend. Add
#    `default_backend llm_missing` unless the frontend has a default_backend:
#    without one, a call the agent routes to a provider that has no llm_<name>
#    backend would go to your default backend, with the provider key set.
#    The log-format of haproxy.cfg's frontend llm records the agent's verdicts.
#
#    Its bind line is the relay socket (a stopping worker hands the new one
#    the calls it can no longer decide, so reloads lose none): /run/haproxy
#    must exist (Debian's package makes it); if HAProxy chroots, the relay
#    backend's server connects from inside the chroot: adapt its path.
#
#    This block fails CLOSED: with no answer from the agents, calls get a 503.
#    To fail open (calls pass uninspected, routed by prefix), replace the
#    "http-request return status 503 ... if !arch_answered ..." lines with the
#    ".if defined(ARCHESTRA_FAIL_OPEN)" branch of haproxy.cfg.
#
# 2. Paste the "backends" block: a backend per provider named llm_<provider>,
#    llm_missing, and the agents (their addresses are the only lines to adapt).
#    Provider addresses change: give those servers run-time DNS as haproxy.cfg
#    does (its "resolvers sys" section and default-server line).
#
# In global: tune.bufsize 262144 (a prompt must fit in a buffer to be
# inspected; larger ones get the agent's truncated_body policy, 413 by default),
# and max-spread-checks 200ms (else the agents' first health checks after a start
# or reload wait for the spread of the slowest checks: seconds).
HEAD
	awk -v src="$src" '
	function fail(msg) { printf "make-snippet.sh: %s:%d: %s\n", src, NR, msg > "/dev/stderr"; bad = 1; exit 2 }
	# A condition over defined(ARCHESTRA_*) only, with none of them defined.
	function cond(c,   n, i, t, op, v, parts) {
		sub(/^[ \t]*\.(if|elif)[ \t]+/, "", c); sub(/[ \t]+$/, "", c)
		if (c ~ /[|][|]/ && c ~ /&&/) fail("mixed || and && in a condition: " c)
		op = (c ~ /&&/) ? "&&" : "||"
		n = split(c, parts, op == "&&" ? "[ \t]*&&[ \t]*" : "[ \t]*[|][|][ \t]*")
		v = (op == "&&")
		for (i = 1; i <= n; i++) {
			t = parts[i]
			if (t ~ /^!defined\(ARCHESTRA_[A-Z0-9_]+\)$/) t = 1
			else if (t ~ /^defined\(ARCHESTRA_[A-Z0-9_]+\)$/) t = 0
			else fail("condition term not understood: " parts[i])
			v = (op == "&&") ? (v && t) : (v || t)
		}
		return v
	}
	/^[ \t]*# >>> archestra snippet: / {
		if (name != "") fail("a block opens inside block " name)
		name = $0; sub(/.*# >>> archestra snippet: /, "", name)
		printf "\n# ---- %s ----\n", name
		depth = 0; live[0] = 1; next
	}
	/^[ \t]*# <<< archestra snippet: / {
		if (name == "") fail("a block closes that was not open")
		if (depth != 0) fail(".if not closed in block " name)
		name = ""; next
	}
	name == "" { next }
	/^[ \t]*\.if[ \t]/ { depth++; taken[depth] = cond($0); live[depth] = live[depth-1] && taken[depth]; next }
	/^[ \t]*\.elif[ \t]/ { if (!depth) fail(".elif without .if"); v = !taken[depth] && cond($0); taken[depth] = taken[depth] || v; live[depth] = live[depth-1] && v; next }
	/^[ \t]*\.else/ { if (!depth) fail(".else without .if"); live[depth] = live[depth-1] && !taken[depth]; taken[depth] = 1; next }
	/^[ \t]*\.endif/ { if (!depth) fail(".endif without .if"); depth--; next }
	/^[ \t]*\./ { fail("conditional directive not understood: " $0) }
	/make-snippet\.sh copies/ { next }
	live[depth] { print; blocks = 1 }
	END {
		if (bad) exit 2
		if (name != "") { printf "make-snippet.sh: block %s is not closed\n", name > "/dev/stderr"; exit 2 }
		if (!blocks) { print "make-snippet.sh: no snippet block in " src > "/dev/stderr"; exit 2 }
	}' "$src" >"$1.body"
	sed -E 's/"([^"$]*)\$\{[A-Z0-9_]+-([^}"]*)\}([^"]*)"/\1\2\3/g' "$1.body" >&3
	rm -f "$1.body"
	if grep -n '\${' "$1"; then
		echo "make-snippet.sh: a \${VAR} without a default is left in the snippet (above)" >&2
		exit 2
	fi
	cat >&3 <<'TAIL'

# HAProxy 3.1 and later take the agents' "mode tcp" backend as "mode spop" and
# ignore the SPOE file's "timeout hello" and "timeout idle" (the backend's
# timeouts apply); the SPOE options async and send-frag-payload are gone there.
TAIL
	exec 3>&-
}

case "${1:-}" in
"" | --check | --stdout) ;;
*) echo "usage: $0 [--check|--stdout]" >&2; exit 2 ;;
esac
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.body"' EXIT
generate "$tmp"
case "${1:-}" in
--stdout) cat "$tmp" ;;
--check)
	if ! cmp -s "$tmp" "$dst"; then
		echo "snippet.cfg differs from what make-snippet.sh generates from haproxy.cfg:" >&2
		diff -u "$dst" "$tmp" >&2 || true
		exit 1
	fi ;;
*) cat "$tmp" >"$dst" ;;
esac
