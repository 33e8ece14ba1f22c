#!/usr/bin/env bash
# A short fuzzing run inside `make test` (TAP): the harness builds, replays its
# seeds and finds nothing in a few seconds. `make fuzz` runs the long campaign.
set -u
bin=$(realpath "$1") secs=${2:-10} seeds=${3:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 "$(dirname "$0")/make_seeds.py" $seeds "$dir/corpus"
echo "1..1"
if out=$(cd "$dir" && "$bin" -max_total_time="$secs" -max_len=8192 -timeout=5 corpus 2>&1); then
	runs=$(printf '%s\n' "$out" | sed -n 's/^Done \([0-9]*\) runs.*/\1/p')
	echo "ok 1 - $(basename "$bin"): ${runs:-?} runs in ${secs}s, no crash, no leak, no divergence"
else
	echo "not ok 1 - $(basename "$bin") found a failure"
	printf '%s\n' "$out" | grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ ' | head -20 | sed 's/^/# /'
fi
