#!/usr/bin/env bash
# Bounded load run of the sidecar on loopback, and its idle memory.
#
#   bash scripts/load.sh
#
# 1. /api/resolve with 1,000 rules against the same server's /health, and against a minimal
#    axum server that answers the same POST with its JSON body (the `echo_server` example), in
#    the same run: wrk, 10 s each, 64 connections, 2 threads, on 127.0.0.1 only. Besides
#    throughput, the server's CPU time per request (from /proc): client and server share the
#    machine's cores, so throughput moves with the client's share, CPU per request much less.
# 2. Resident memory of the idle server with 10,000 rules and 10,000 credentials, against an
#    empty configuration.
# Installs wrk (Debian package) when missing. Prints a summary; changes nothing else.
# AGENT_IDENTITY_SIDECAR=path runs another build of the sidecar (an earlier one, to compare).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cache=${AGENT_IDENTITY_CACHE:-$HOME/.cache/agent-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}

if ! command -v wrk >/dev/null; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq wrk >/dev/null
fi
cargo build --locked --release -q -p agent-identity-server --bin agent-identity --example echo_server
binary=${AGENT_IDENTITY_SIDECAR:-$CARGO_TARGET_DIR/release/agent-identity}
echo_binary="$CARGO_TARGET_DIR/release/examples/echo_server"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Rule sets in the shape of the router benchmark: 90% per-user rules, the rest on provider and
# action, action, resource kind and resource-id globs, one catch-all last.
generate() { # generate DIR RULES CREDENTIALS
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
out, n, credentials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
providers = ["openai", "anthropic", "gemini", "mistral"]
actions = ["read", "write", "delete", "admin"]
creds = [{"id": f"id-{c}", "kind": "fixed", "name": f"credential {c}", "scope": "read",
          "status": "active", "ref": f"cred-{c}"} for c in range(credentials)]
rules, per_user = [], n * 9 // 10
for i in range(per_user):
    rule = {"id": f"user-{i}", "credentialRef": f"cred-{i % credentials}", "priority": 100,
            "matchUserId": f"user-{i}"}
    if i % 2 == 0:
        rule["matchProvider"] = providers[i % 4]
    rules.append(rule)
for j in range(n - per_user - 1):
    rule = {"id": f"other-{j}", "credentialRef": f"cred-{j % credentials}"}
    kind = j % 4
    if kind == 0:
        rule.update(priority=60, matchProvider=providers[j % 4], matchAction=[actions[(j // 4) % 4]])
    elif kind == 1:
        rule.update(priority=50, matchAction=[actions[(j // 4) % 4], "list"])
    elif kind == 2:
        rule.update(priority=40, matchResourceKind="personal" if j % 8 == 2 else "shared")
    else:
        rule.update(priority=70, matchResourceId=f"proj-{j}-*")
    rules.append(rule)
rules.append({"id": "catch-all", "credentialRef": "cred-0", "priority": 0})
json.dump(creds, open(f"{out}/credentials.json", "w"))
json.dump(rules, open(f"{out}/rules.json", "w"))
open(f"{out}/agent-identity.toml", "w").write(
    'rules_file = "rules.json"\n[server]\nlisten = "127.0.0.1:0"\nmax_in_flight = 4096\n'
    '[stores.default]\ntype = "memory"\ncredentials_file = "credentials.json"\n')
PY
}

start() { # start CONFIG [COMMAND...] -> sets $pid and $address
    local log="$work/server-${#pids[@]}.log"
    if [ "$#" -gt 1 ]; then
        "${@:2}" 2>"$log" &
    else
        "$binary" serve --config "$1" 2>"$log" &
    fi
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do
        address=$(grep -o 'listening address=[0-9.:]*' "$log" | cut -d= -f2 || true)
        [ -n "$address" ] && return 0
        sleep 0.1
    done
    echo "the sidecar did not start" >&2
    cat "$log" >&2
    exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time the process has used, in clock ticks (user and system, /proc/PID/stat fields 14, 15).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run_wrk NAME LUA URL: a wrk run, and the server's CPU time over it in NAME.ticks.
run_wrk() {
    local before
    before=$(cpu_ticks "$pid")
    wrk -t2 -c64 -d10s --latency -s "$2" "$3" | tee "$work/$1.txt"
    echo $(($(cpu_ticks "$pid") - before)) >"$work/$1.ticks"
}

# ---- 1. Throughput and latency -----------------------------------------------------------------
mkdir -p "$work/r1000"
generate "$work/r1000" 1000 16
start "$work/r1000/agent-identity.toml"
# Both runs use the same client work: requests formatted once per thread (in init, after wrk
# has set the Host header), one picked per call.
cat >"$work/health.lua" <<'LUA'
local requests, i = {}, 0
init = function(args)
  for k = 1, 64 do requests[k] = wrk.format("GET", "/health") end
end
request = function() i = (i % #requests) + 1; return requests[i] end
LUA
cat >"$work/resolve.lua" <<'LUA'
-- 64 contexts in rotation: users with a rule of their own, users without, and catch-all traffic.
local requests, i = {}, 0
init = function(args)
  local providers = {"openai", "anthropic", "gemini", "mistral"}
  local actions = {"read", "write", "delete", "admin", "export"}
  local headers = {["Content-Type"] = "application/json"}
  for k = 0, 63 do
    local user = (k % 3 == 0) and ("user-" .. ((k * 7919) % 900)) or ("visitor-" .. k)
    local body = string.format(
      '{"userId":"%s","resourceId":"proj-%d-data","resourceKind":"shared","provider":"%s",' ..
      '"model":"gpt-4o","action":"%s","traceId":"trace-%d","requestedAt":"2026-11-22T23:02:55.563939+00:00"}',
      user, (k * 4 + 3) % 1000, providers[(k % 4) + 1], actions[(k % 5) + 1], k)
    requests[k + 1] = wrk.format("POST", "/api/resolve", headers, body)
  end
end
request = function() i = (i % #requests) + 1; return requests[i] end
LUA
echo "== wrk: GET /health (1,000 rules loaded)"
run_wrk health "$work/health.lua" "http://$address/health"
echo "== wrk: POST /api/resolve (1,000 rules)"
run_wrk resolve "$work/resolve.lua" "http://$address/api/resolve"
kill "$pid"
start none "$echo_binary" 127.0.0.1:0
echo "== wrk: POST /api/resolve to the echo server (the same requests)"
run_wrk echo "$work/resolve.lua" "http://$address/api/resolve"
kill "$pid"

rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {n = $5} END {print n + 0}' "$1"; }
# Server CPU per request in microseconds: the ticks of NAME.ticks over the requests wrk counted.
cpu_us() {
    python3 -c "import sys; print(f'{int(sys.argv[1]) * 1e6 / int(sys.argv[3]) / int(sys.argv[2]):.1f}')" \
        "$(cat "$work/$1.ticks")" "$(awk '/requests in/ {print $1}' "$work/$1.txt")" "$(getconf CLK_TCK)"
}

# ---- 2. Idle memory --------------------------------------------------------------------------
mkdir -p "$work/empty" "$work/r10000"
printf '[server]\nlisten = "127.0.0.1:0"\n[stores.default]\ntype = "memory"\n' >"$work/empty/agent-identity.toml"
generate "$work/r10000" 10000 10000
start "$work/empty/agent-identity.toml"
sleep 1
empty_rss=$(rss_kib "$pid")
kill "$pid"
start "$work/r10000/agent-identity.toml"
sleep 1
loaded_rss=$(rss_kib "$pid")
curl -fsS "http://$address/health" >/dev/null
kill "$pid"

health_rps=$(rps "$work/health.txt")
resolve_rps=$(rps "$work/resolve.txt")
echo
echo "== summary"
for run in health resolve echo; do
    printf '%-8s %s req/s, p99 %s, non-2xx: %s, server CPU %s µs per request\n' "$run:" \
        "$(rps "$work/$run.txt")" "$(p99 "$work/$run.txt")" "$(errors "$work/$run.txt")" "$(cpu_us "$run")"
done
echo_rps=$(rps "$work/echo.txt")
python3 -c "print(f'resolve / health throughput: {float(\"$resolve_rps\") / float(\"$health_rps\") * 100:.1f}%')"
python3 -c "print(f'resolve / echo throughput: {float(\"$resolve_rps\") / float(\"$echo_rps\") * 100:.1f}%')"
echo "idle RSS, empty configuration: ${empty_rss} KiB"
echo "idle RSS, 10,000 rules and 10,000 credentials: ${loaded_rss} KiB"
