#!/usr/bin/env bash
# Load benchmark of the server on loopback: profile lookups and order ingestion under wrk,
# beside a Redis GET of a value of the same size on the same machine, in the same run.
#   [BIN=path/to/c360] bench/serve_load.sh [orders=50000] [seconds=20] [connections=32]
# Prints a markdown table (throughput, p50, p99) for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
ORDERS="${1:-50000}"
SECS="${2:-20}"
CONNS="${3:-32}"
PROFILE="${PROFILE:-release}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v redis-benchmark >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null; }
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no

# BIN=path/to/c360 measures that binary (an older commit, side by side) instead of building this one.
if [ -z "${BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then cargo build --release -p c360-cli; else cargo build -p c360-cli; fi
  BIN="$CARGO_TARGET_DIR/$PROFILE/c360"
fi
D=bench/data/serve-$ORDERS
if [ ! -f "$D/.done" ]; then
  rm -rf "$D"
  "$BIN" --quiet demo --orders "$ORDERS" --dir "$D" --no-serve >/dev/null
  touch "$D/.done"
fi
WH="$D/hotdog2030"
KEY=$("$BIN" apikey create --name "bench-$$" --role admin --warehouse "$WH")
PORT=18360
# One key drives the whole load: its rate limit is off (the server measured, not the limiter).
C360_RATE_LIMIT=0 "$BIN" serve --addr 127.0.0.1:$PORT --warehouse "$WH" >/dev/null 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.2; done
IDS=$(curl -fs -H "authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/v1/customers?page_size=200&sort=customer_id" | python3 -c 'import json,sys; print(",".join(str(c["customer_id"]) for c in json.load(sys.stdin)["items"]))')
FIRST=${IDS%%,*}
BYTES=$(curl -fs -H "authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/v1/customers/$FIRST" | wc -c)
STORE=$(curl -fs -H "authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/v1/customers/$FIRST" | python3 -c 'import json,sys; print(json.load(sys.stdin)["profile"]["home_store_id"])')
T=$(mktemp -d)
cat > "$T/lookup.lua" <<LUA
local ids = {$IDS}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/customers/" .. ids[(i % #ids) + 1], {["authorization"] = "Bearer $KEY"})
end
LUA
cat > "$T/ingest.lua" <<LUA
local n = 0
local tid = 0
setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
request = function()
  n = n + 1
  local body = string.format('{"order_no":"BENCH-%d-%d-%d","store_id":$STORE,"customer_id":$FIRST,"total_fen":2500}', $$, tid, n)
  return wrk.format("POST", "/api/v1/orders", {["authorization"] = "Bearer $KEY", ["content-type"] = "application/json"}, body)
end
LUA
run_wrk() { wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$1" "http://127.0.0.1:$PORT" 2>&1; }
parse() { python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(p):
    m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", t)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f} {errs.group(1) if errs else 0}")
PY
}
run_wrk "$T/lookup.lua" > "$T/lookup.txt"; read -r L_RPS L_P50 L_P99 L_ERR < <(parse "$T/lookup.txt")
run_wrk "$T/ingest.lua" > "$T/ingest.txt"; read -r I_RPS I_P50 I_P99 I_ERR < <(parse "$T/ingest.txt")
# SET first, so the GETs read a value of the profile's size (a GET of a missing key is cheaper).
redis-cli -h 127.0.0.1 flushall >/dev/null
R=$(redis-benchmark -h 127.0.0.1 -c "$CONNS" -n 200000 -d "$BYTES" -t set,get --csv -q 2>/dev/null | grep '^"GET"' | tail -n 1)
read -r R_RPS R_P50 R_P99 < <(python3 -c 'import csv,sys; r=next(csv.reader([sys.argv[1]])); print(r[1], r[4], r[6])' "$R")
MEM=$(ps -o rss= -p $SRV | awk '{printf "%.0f", $1/1024}')
echo
echo "Loopback, $CONNS connections, ${SECS}s per run, $ORDERS simulated orders, profile payload $BYTES bytes ($PROFILE build); server RSS after: ${MEM} MB"
echo
echo "| workload | requests/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---:|---:|---:|---:|"
echo "| c360 GET /api/v1/customers/{id} (200 customers, cached) | $L_RPS | $L_P50 | $L_P99 | $L_ERR |"
echo "| c360 POST /api/v1/orders (durable, re-score, push) | $I_RPS | $I_P50 | $I_P99 | $I_ERR |"
echo "| Redis GET, same payload size | ${R_RPS%.*} | $R_P50 | $R_P99 | 0 |"
python3 -c "print(f'\nRedis/c360 lookup throughput: {float(\"$R_RPS\")/float(\"$L_RPS\"):.2f}x')"
