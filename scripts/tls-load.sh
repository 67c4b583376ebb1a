#!/usr/bin/env bash
# Bounded load run of /api/resolve over TLS against plain HTTP, on loopback, in one run.
#
#   bash scripts/tls-load.sh
#
# Two sidecars on the README's example configuration, one plain and one with [server.tls] (a
# P-256 certificate made here with openssl). wrk, 10 s each, 64 connections, 2 threads, kept
# alive, the same POST body; then new TLS connections per second with full handshakes
# (`openssl s_time -new`, 10 s, one client). Installs wrk when missing. Prints a summary.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cache=${AGENT_IDENTITY_CACHE:-$HOME/.cache/agent-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
if ! command -v wrk >/dev/null; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq wrk >/dev/null
fi
cargo build --locked --release -q -p agent-identity-server --bin agent-identity
binary=$CARGO_TARGET_DIR/release/agent-identity

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$work/server-key.pem" -out "$work/server.pem" -subj "/CN=localhost" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
example=$root/examples/sidecar
for mode in plain tls; do
    {
        echo "rules_file = \"$example/rules.json\""
        echo "[server]"
        echo "listen = \"127.0.0.1:0\""
        echo "max_in_flight = 4096"
        echo "[stores.default]"
        echo "type = \"memory\""
        echo "credentials_file = \"$example/credentials.json\""
        echo "[auth]"
        echo "mode = \"none\""
        if [ "$mode" = tls ]; then
            echo "[server.tls]"
            echo "cert_file = \"$work/server.pem\""
            echo "key_file = \"$work/server-key.pem\""
        fi
    } >"$work/$mode.toml"
done

start() { # start MODE -> sets $address
    RUST_LOG=warn,agent_identity_server::cli=info "$binary" serve --config "$work/$1.toml" 2>"$work/$1.log" &
    pids+=("$!")
    for _ in $(seq 1 100); do
        address=$(grep -o 'listening address=[0-9.:]*' "$work/$1.log" | cut -d= -f2 || true)
        [ -n "$address" ] && return 0
        sleep 0.1
    done
    echo "the $1 sidecar did not start" >&2
    cat "$work/$1.log" >&2
    exit 1
}
start plain
plain=$address plain_pid=${pids[-1]}
start tls
tls=$address tls_pid=${pids[-1]}
# CPU time a process has used, in clock ticks (/proc/PID/stat fields 14 and 15).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

cat >"$work/resolve.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"userId":"user-alice","resourceId":"crm","resourceKind":"personal","provider":"openai","model":"gpt-4o","action":"read","traceId":"t1"}'
LUA
# run MODE PID URL: a wrk run, and the server's CPU ticks over it in MODE.ticks. The client
# shares the two cores (and does its own TLS), so CPU per request is the steadier figure.
run() {
    local before
    before=$(cpu_ticks "$2")
    wrk -t2 -c64 -d10s --latency -s "$work/resolve.lua" "$3" >"$work/$1.txt"
    echo $(($(cpu_ticks "$2") - before)) >"$work/$1.ticks"
}
run plain "$plain_pid" "http://$plain/api/resolve"
run tls "$tls_pid" "https://$tls/api/resolve"
openssl s_time -connect "$tls" -new -time 10 2>/dev/null >"$work/handshakes.txt" || true

rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
quantile() { awk -v q="$2" '$1 == q {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {n = $5} END {print n + 0}' "$1"; }
echo "== /api/resolve, 64 connections kept alive"
for mode in plain tls; do
    f="$work/$mode.txt"
    requests=$(awk '/requests in/ {print $1}' "$f")
    cpu_us=$(python3 -c "import os, sys; print(round(int(sys.argv[1]) / os.sysconf('SC_CLK_TCK') * 1e6 / int(sys.argv[2]), 1))" \
        "$(cat "$work/$mode.ticks")" "$requests")
    printf '%-6s %s req/s, p50 %s, p99 %s, non-2xx %s, server CPU %s µs/request\n' "$mode:" \
        "$(rps "$f")" "$(quantile "$f" 50%)" "$(quantile "$f" 99%)" "$(non2xx "$f")" "$cpu_us"
done
python3 -c "import sys; print(f'tls / plain: {float(sys.argv[2]) / float(sys.argv[1]) * 100:.1f}%')" \
    "$(rps "$work/plain.txt")" "$(rps "$work/tls.txt")"
echo "== new TLS connections, full handshakes (openssl s_time -new, one client)"
grep -E "connections in|connections/user sec" "$work/handshakes.txt" | head -2
