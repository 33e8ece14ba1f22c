#!/usr/bin/env python3
"""End to end: the official SDKs' streaming clients (npm openai, @anthropic-ai/sdk,
@google/genai, pinned below) through HAProxy and the agents, with a policy that blocks
send_email: a blocked tool call in a stream surfaces as the SDK's own API error (403, no
hang, no parse error), an allowed one arrives whole, also through the SDKs' stream helpers
that assemble the final message, and a text stream reads whole. The SDKs are installed
once into build/npm-sdk (npm registry); when the registry cannot be reached the suite says
it is skipped and counts nothing. TAP output.
usage: test_sdk_streams.py path/to/archestra-spoa"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
from edge import TOP, Edge  # noqa: E402
from pylib.tap import record, report  # noqa: E402

AGENT = sys.argv[1] if len(sys.argv) > 1 else "spoa/archestra-spoa"
SDKS = ["openai@6.49.0", "@anthropic-ai/sdk@1.15.0", "@google/genai@2.32.0"]
CACHE = os.path.join(TOP, "build", "npm-sdk")
POLICY = {"rules": [{"id": "no-mail", "tool_calls": [{"name": "send_email"}]}]}
CASES = 9


def install():
    """True when the SDKs are there; None (said) when the registry cannot be reached."""
    stamp = os.path.join(CACHE, "installed-" + "-".join(s.replace("/", "_") for s in SDKS))
    if os.path.exists(stamp):
        return True
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise RuntimeError("node/npm not installed: `make test` installs Debian's nodejs")
    os.makedirs(CACHE, exist_ok=True)
    r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", CACHE, *SDKS],
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        net = re.search(r"ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|ECONNRESET", r.stderr)
        if net:
            print(f"# skipped: the SDK suite: the npm registry is unreachable ({net.group(0)})")
            return None
        raise RuntimeError("npm install failed: " + r.stderr[-1500:])
    open(stamp, "w").close()
    return True


def main():
    if install() is None:
        return 0
    tmp = tempfile.mkdtemp(prefix="arch-sdk-")
    pfile = os.path.join(tmp, "policy.json")
    with open(pfile, "w") as f:
        json.dump(POLICY, f)
    # node resolves the SDKs from the script's own folder: run a copy next to them
    script = os.path.join(CACHE, "sdk_streams.mjs")
    shutil.copy(os.path.join(HERE, "sdk_streams.mjs"), script)
    with Edge(AGENT, agent_config={"policy_file": pfile}) as edge:
        r = subprocess.run(["node", script, f"http://127.0.0.1:{edge.http_port}"], capture_output=True, text=True,
                           timeout=180, cwd=CACHE)
        seen = 0
        for line in r.stdout.splitlines():
            try:
                c = json.loads(line)
            except ValueError:
                continue
            seen += 1
            record(c["ok"], c["case"], c["detail"])
        record(seen == CASES and r.returncode == 0, f"the SDK script ran its {CASES} cases to the end",
               f"rc={r.returncode}, {seen} cases\n{r.stderr[-1500:]}")
        bad = [l for l in edge.log("haproxy").splitlines() if "Lua" in l and ("error" in l or "ALERT" in l)]
        record(not bad, "no Lua error in HAProxy's log", "\n".join(bad[:5]))
    return report(20)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        import traceback
        record(False, "the SDK suite starts", traceback.format_exc())
        sys.exit(report(30))
