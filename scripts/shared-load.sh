#!/usr/bin/env bash
# Bounded load runs of shared state and reload, on loopback only.
#
#   bash scripts/shared-load.sh
#
# 1. /api/resolve through a budget (a per-user allowance large enough never to refuse), counted
#    in the sidecar's memory, then in Redis (`budgets_redis`), in the same run: wrk, 2 threads,
#    64 connections, 10 s each. Every resolution then takes one request from the allowance:
#    nothing, or one Lua script on Redis.
# 2. Three replicas sharing that Redis, each loaded by its own wrk (1 thread, 32 connections)
#    at once, against one replica loaded by one such wrk: the total over the three.
# 3. The time from a configuration change to its effect: the rule's credential changed in the
#    file, then resolutions polled until they grant the new one; 20 times after SIGHUP, 20 times
#    by the file watch (reload_watch_ms = 1000).
# Needs redis-server and wrk (installed when missing, Debian packages). Changes nothing else.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cache=${AGENT_IDENTITY_CACHE:-$HOME/.cache/agent-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}

for package in wrk redis-server; do
    if ! command -v "$package" >/dev/null; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "$package" >/dev/null
    fi
done
cargo build --locked --release -q -p agent-identity-server --bin agent-identity
binary="$CARGO_TARGET_DIR/release/agent-identity"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
sleep 0.5

config() { # config FILE REDIS(yes|no) CREDENTIAL WATCH_MS
    local shared=""
    [ "$2" = yes ] && shared='budgets_redis = "shared"'
    cat >"$1" <<EOF
$shared

[server]
listen = "127.0.0.1:0"
max_in_flight = 4096
reload_watch_ms = $4

[redis.shared]
url = "redis://127.0.0.1:$redis_port"

[stores.default]
type = "memory"
credentials = [
    { id = "cred-1", kind = "fixed", name = "One", scope = "read", status = "active", ref = "slot-1" },
    { id = "cred-2", kind = "fixed", name = "Two", scope = "read", status = "active", ref = "slot-2" },
]

[[rules]]
id = "the-rule"
credentialRef = "$3"
priority = 1

[[budgets]]
id = "per-user"
per = "user"
requests = 1000000000
window_secs = 3600
EOF
}

start() { # start CONFIG -> sets $pid and $address
    local log="$work/server-${#pids[@]}.log"
    "$binary" serve --config "$1" 2>"$log" &
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

cat >"$work/resolve.lua" <<'LUA'
-- 64 users in rotation, each with an allowance of their own.
local requests, i = {}, 0
init = function(args)
  for k = 1, 64 do
    requests[k] = wrk.format("POST", "/api/resolve", {["Content-Type"] = "application/json"},
      string.format('{"userId":"user-%d","resourceId":"r","resourceKind":"shared","provider":"p","model":"m","action":"read","traceId":"t"}', k))
  end
end
request = function() i = (i % #requests) + 1; return requests[i] end
LUA

rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
errors() { grep -E 'Non-2xx|Socket errors' "$1" || true; }

# ---- 1. Memory against Redis ------------------------------------------------------------------
config "$work/memory.toml" no slot-1 0
config "$work/redis.toml" yes slot-1 0
for kind in memory redis; do
    start "$work/$kind.toml"
    wrk -t2 -c64 -d10s --latency -s "$work/resolve.lua" "http://$address" >"$work/$kind.txt"
    errors "$work/$kind.txt"
    kill "$pid"
done

# ---- 2. Three replicas against one ------------------------------------------------------------
start "$work/redis.toml"
wrk -t1 -c32 -d10s --latency -s "$work/resolve.lua" "http://$address" >"$work/one.txt"
kill "$pid"
addresses=()
for _ in 1 2 3; do
    start "$work/redis.toml"
    addresses+=("$address")
done
loads=()
for n in 0 1 2; do
    wrk -t1 -c32 -d10s --latency -s "$work/resolve.lua" "http://${addresses[$n]}" >"$work/three-$n.txt" &
    loads+=($!)
done
wait "${loads[@]}"
total=0
for n in 0 1 2; do
    errors "$work/three-$n.txt"
    total=$(python3 -c "print(round($total + $(rate "$work/three-$n.txt")))")
done

# ---- 3. Configuration change to effect --------------------------------------------------------
config "$work/reload.toml" no slot-1 1000
start "$work/reload.toml"
python3 - "$work/reload.toml" "$address" "$pid" >"$work/reload.txt" <<'PY'
import json, os, signal, statistics, sys, time, urllib.request

path, address, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = json.dumps({"userId": "u", "resourceId": "r", "resourceKind": "shared", "provider": "p",
                   "model": "m", "action": "read", "traceId": "t"}).encode()

def granted():
    request = urllib.request.Request(f"http://{address}/api/resolve", data=body,
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["credentialId"]

def change(to):
    text = open(path).read()
    new = text.replace('credentialRef = "slot-1"', f'credentialRef = "{to}"').replace(
        'credentialRef = "slot-2"', f'credentialRef = "{to}"')
    open(path, "w").write(new)

def measure(signal_it):
    times, current = [], "slot-1"
    for _ in range(20):
        current = "slot-2" if current == "slot-1" else "slot-1"
        wanted = "cred-" + current[-1]
        started = time.monotonic()
        change(current)
        if signal_it:
            os.kill(pid, signal.SIGHUP)
        while granted() != wanted:
            time.sleep(0.001)
        times.append((time.monotonic() - started) * 1000)
        time.sleep(0.05)
    times.sort()
    return statistics.median(times), times[-2], times[-1]

for name, signal_it in (("SIGHUP", True), ("file watch (1 s)", False)):
    median, p95, worst = measure(signal_it)
    print(f"{name}: median {median:.1f} ms, 95th {p95:.1f} ms, worst {worst:.1f} ms")
PY

echo
echo "== budget counted in memory: $(rate "$work/memory.txt") req/s, p99 $(p99 "$work/memory.txt")"
echo "== budget counted in Redis:  $(rate "$work/redis.txt") req/s, p99 $(p99 "$work/redis.txt")"
echo "== one replica (1 wrk thread, 32 connections): $(rate "$work/one.txt") req/s"
echo "== three replicas, a wrk each: $total req/s in all ($(rate "$work/three-0.txt"), $(rate "$work/three-1.txt"), $(rate "$work/three-2.txt"))"
echo "== configuration change to effect:"
cat "$work/reload.txt"
