#!/usr/bin/env bash
# systemd units: `make install` into a scratch prefix, then systemd-analyze verify
# each unit (and a broken copy, to show the check can fail), the hardening score,
# and the installed binary accepting the installed config. TAP output.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; shift; printf '# %s\n' "$@"; }
echo "1..7"

if out=$(make --no-print-directory install PREFIX="$tmp/usr" SYSCONFDIR="$tmp/etc" 2>&1); then
	ok "make install PREFIX=... SYSCONFDIR=... installs binary, config, haproxy files and units"
else
	nok "make install" "$out"
fi
units="$tmp/usr/lib/systemd/system"
cp "$units/archestra-spoa@.service" "$units/archestra-spoa@12345.service"
for u in archestra-spoa.service archestra-spoa@12345.service; do
	out=$(systemd-analyze verify "$units/$u" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify $u: clean"; else nok "systemd-analyze verify $u" "rc=$rc" "$out"; fi
done
sed 's|^ExecStart=.*|ExecStart=/nonexistent/archestra-spoa|' "$units/archestra-spoa.service" >"$units/broken.service"
if systemd-analyze verify "$units/broken.service" >/dev/null 2>&1; then
	nok "verify rejects a unit whose binary does not exist (the check can fail)"
else
	ok "verify rejects a unit whose binary does not exist (the check can fail)"
fi
rm -f "$units/broken.service"
score=$(systemd-analyze security --offline=yes "$units/archestra-spoa.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk "BEGIN{exit !($score <= 2.0)}"; then
	ok "hardened: systemd-analyze security exposure $score (<= 2.0)"
else
	nok "hardened: exposure '${score:-?}' is above 2.0"
fi
if out=$("$tmp/usr/bin/archestra-spoa" --config "$tmp/etc/archestra-spoa/config.json" --check 2>&1); then
	ok "the installed binary accepts the installed config ($out)"
else
	nok "installed binary --check" "$out"
fi
# A second install keeps the operator's edited config.
echo '{"log_level":"warn"}' >"$tmp/etc/archestra-spoa/config.json"
make --no-print-directory install PREFIX="$tmp/usr" SYSCONFDIR="$tmp/etc" >/dev/null 2>&1
if grep -q warn "$tmp/etc/archestra-spoa/config.json"; then ok "reinstalling keeps an existing config"; else nok "reinstall overwrote the config"; fi
[ $fails -eq 0 ]
