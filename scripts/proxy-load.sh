#!/usr/bin/env bash
# Bounded load run of the injection proxy on loopback, against nginx doing the same job.
#
#   bash scripts/proxy-load.sh
#
# One upstream (the `json_upstream` example: hyper, 1 KiB of JSON to every request), reached
# three ways in the same run: directly; through nginx (Debian package) with `proxy_pass` and a
# fixed `Authorization` header; through the sidecar's `/proxy/bench/` with the credential of a
# memory store injected as a bearer token. wrk, 10 s each, 64 connections and 2 threads, then one
# connection (latency). Then a stream of 100 server-sent events each way (nginx with buffering
# off): time to the first event and to the end (scripts/stream-timing.py). Installs wrk and nginx
# when missing. Prints a summary.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cache=${AGENT_IDENTITY_CACHE:-$HOME/.cache/agent-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "$tool" >/dev/null
    fi
done
cargo build --locked --release -q -p agent-identity-server --bin agent-identity --example json_upstream
binary=$CARGO_TARGET_DIR/release/agent-identity
upstream_binary=$CARGO_TARGET_DIR/release/examples/json_upstream

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

start() { # start NAME COMMAND... -> sets $address
    local log="$work/$1.log"
    "${@:2}" 2>"$log" &
    pids+=("$!")
    for _ in $(seq 1 100); do
        address=$(grep -o 'listening address=[0-9.:]*' "$log" | cut -d= -f2 || true)
        [ -n "$address" ] && return 0
        sleep 0.1
    done
    echo "$1 did not start" >&2
    cat "$log" >&2
    exit 1
}

start upstream "$upstream_binary" 127.0.0.1:0
upstream=$address

cat >"$work/agent-identity.toml" <<TOML
[server]
listen = "127.0.0.1:0"
max_in_flight = 4096

[stores.default]
type = "memory"
credentials = [{ id = "cred-bench", kind = "fixed", name = "bench", scope = "read", status = "active", ref = "bench-key" }]
secrets = { bench-key = { env = "BENCH_KEY" } }

[[rules]]
id = "bench"
credentialRef = "bench-key"
priority = 1

[upstreams.bench]
base_url = "http://$upstream"
provider = "bench"
allow_http_loopback = true
TOML
BENCH_KEY=sk-bench-key start sidecar "$binary" serve --config "$work/agent-identity.toml"
sidecar=$address

nginx_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream bench { server $upstream; keepalive 128; }
    server {
        listen 127.0.0.1:$nginx_port;
        location /events {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer sk-bench-key";
            proxy_buffering off;
        }
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer sk-bench-key";
        }
    }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.log" &
pids+=("$!")
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$nginx_port/" >/dev/null 2>&1 && break
    sleep 0.1
done

run() { # run NAME URL CONNECTIONS
    wrk -t"$(( $3 < 2 ? 1 : 2 ))" -c"$3" -d10s --latency -H 'x-agent-identity-user: bench' "$2" >"$work/$1-$3.txt"
}
for connections in 64 1; do
    run direct "http://$upstream/items" "$connections"
    run nginx "http://127.0.0.1:$nginx_port/items" "$connections"
    run sidecar "http://$sidecar/proxy/bench/items" "$connections"
done

echo "== streaming: 100 events 5 ms apart, the first at once (median of 20 runs)"
for target in "direct http://$upstream/events" "nginx http://127.0.0.1:$nginx_port/events" \
    "sidecar http://$sidecar/proxy/bench/events"; do
    set -- $target
    printf '%-8s %s\n' "$1:" "$(python3 scripts/stream-timing.py "$2" 20)"
done

rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
quantile() { awk -v q="$2" '$1 == q {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {n = $5} END {print n + 0}' "$1"; }
echo "== summary (64 connections)"
for name in direct nginx sidecar; do
    f="$work/$name-64.txt"
    printf '%-8s %s req/s, p50 %s, p99 %s, non-2xx %s\n' "$name:" "$(rps "$f")" \
        "$(quantile "$f" 50%)" "$(quantile "$f" 99%)" "$(errors "$f")"
done
echo "== summary (1 connection)"
for name in direct nginx sidecar; do
    f="$work/$name-1.txt"
    printf '%-8s %s req/s, p50 %s, p99 %s\n' "$name:" "$(rps "$f")" "$(quantile "$f" 50%)" "$(quantile "$f" 99%)"
done
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
def read(name, key):
    for line in open(f"{work}/{name}.txt"):
        parts = line.split()
        if key == "rps" and line.startswith("Requests/sec"):
            return float(parts[1])
        if key == "p99" and parts[:1] == ["99%"]:
            value = parts[1]
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
            for unit in ("us", "ms", "s"):
                if value.endswith(unit):
                    return float(value[: -len(unit)]) * scale[unit]
    raise SystemExit(f"{name}: no {key}")
print(f"sidecar / nginx throughput: {read('sidecar-64', 'rps') / read('nginx-64', 'rps') * 100:.1f}%")
print(f"sidecar p99 / nginx p99: {read('sidecar-64', 'p99') / read('nginx-64', 'p99'):.2f}x")
added = 1e6 / read('sidecar-1', 'rps') - 1e6 / read('direct-1', 'rps')
print(f"one connection, time added per request over direct: {added:.0f} µs")
PY
