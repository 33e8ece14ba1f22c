#!/usr/bin/env bash
# gen-certs.sh OUTDIR: test PKI for the mock LLM provider and the gateway under test.
#
# Creates, in OUTDIR:
#   ca.pem, ca.key          test CA (EC P-256, 10 years)
#   server.crt, server.key  mock provider cert, SAN: localhost, every built-in
#                           provider's host, *.provider.test, 127.0.0.1
#   server.pem              server.crt + server.key (what HAProxy's "crt" wants)
#   gateway.crt, gateway.key, gateway.pem
#                           the gateway's own client-facing cert, SAN: localhost, 127.0.0.1
# Every leaf is signed by the same CA and checked with "openssl verify -CAfile ca.pem".
#
# Idempotent: does nothing when ca.pem, server.pem and gateway.pem exist and server.pem
# is newer than this script. Otherwise everything (the CA included) is regenerated in a
# scratch directory and moved into place only once it verifies.
# Test use only: the CA key sits next to the certs.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
outdir=$1
self=${BASH_SOURCE[0]}

if [ -f "$outdir/ca.pem" ] && [ -f "$outdir/server.pem" ] && [ -f "$outdir/gateway.pem" ] &&
	[ "$outdir/server.pem" -nt "$self" ]; then
	exit 0
fi

command -v openssl >/dev/null || { echo "$0: openssl not found" >&2; exit 1; }
mkdir -p "$outdir"
tmp=$(mktemp -d "$outdir/.gen-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
days=3650

newkey() { # newkey FILE: EC P-256 private key, PKCS#8 PEM
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
	chmod 600 "$1"
}

serial() { echo "0x$(openssl rand -hex 16)"; }

# --- CA ---------------------------------------------------------------------------------
newkey "$tmp/ca.key"
cat >"$tmp/ca.ext" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = LLM Gateway Test CA
O = archestra-spoa tests
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
openssl req -new -x509 -config "$tmp/ca.ext" -extensions v3_ca -key "$tmp/ca.key" \
	-sha256 -days "$days" -set_serial "$(serial)" -out "$tmp/ca.pem"

# --- leaves -----------------------------------------------------------------------------
leaf() { # leaf NAME CN SAN
	local name=$1 cn=$2 san=$3
	newkey "$tmp/$name.key"
	openssl req -new -key "$tmp/$name.key" -subj "/O=archestra-spoa tests/CN=$cn" \
		-out "$tmp/$name.csr"
	cat >"$tmp/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
EOF
	openssl x509 -req -in "$tmp/$name.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
		-set_serial "$(serial)" -sha256 -days "$days" -extfile "$tmp/$name.ext" \
		-out "$tmp/$name.crt" 2>/dev/null
	openssl verify -CAfile "$tmp/ca.pem" "$tmp/$name.crt" >/dev/null
	cat "$tmp/$name.crt" "$tmp/$name.key" >"$tmp/$name.pem"
	chmod 600 "$tmp/$name.pem"
	rm -f "$tmp/$name.csr" "$tmp/$name.ext"
}

# Every built-in provider's host, and *.provider.test for providers a test adds.
more="DNS:api.cerebras.ai, DNS:api.deepseek.com, DNS:api.groq.com, DNS:api.mistral.ai, DNS:openrouter.ai"
more="$more, DNS:api.perplexity.ai, DNS:api.x.ai, DNS:open.bigmodel.cn, DNS:api.moonshot.ai, DNS:api.minimax.io"
more="$more, DNS:api.cohere.com, DNS:*.openai.azure.com, DNS:bedrock-runtime.us-east-1.amazonaws.com, DNS:*.provider.test"
leaf server mock.provider.test \
	"DNS:localhost, DNS:api.openai.com, DNS:api.anthropic.com, DNS:generativelanguage.googleapis.com, DNS:mock.provider.test, $more, IP:127.0.0.1"
leaf gateway localhost "DNS:localhost, IP:127.0.0.1"

# server.pem goes last: its mtime is what the idempotency check compares, so a half-written
# OUTDIR never passes that check.
for f in ca.key ca.pem server.crt server.key gateway.crt gateway.key gateway.pem server.pem; do
	mv -f "$tmp/$f" "$outdir/$f"
done
echo "gen-certs: wrote CA, server and gateway certificates to $outdir" >&2
