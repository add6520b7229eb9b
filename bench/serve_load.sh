#!/usr/bin/env bash
# Load benchmark of the server on loopback: profile lookups and order ingestion under wrk,
# beside a Redis GET of a value of the same size and pgbench inserting the same order rows into
# the machine's PostgreSQL (synchronous_commit on), on the same machine, in the same run.
#   [BIN=path/to/c360] [ICONNS=64] bench/serve_load.sh [orders=50000] [seconds=20] [connections=32]
# Lookups and Redis use `connections`; ingestion and pgbench use ICONNS (concurrent tills).
# Prints a markdown table (throughput, p50, p99) for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
ORDERS="${1:-50000}"
SECS="${2:-20}"
CONNS="${3:-32}"
ICONNS="${ICONNS:-64}"
PROFILE="${PROFILE:-release}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null; }
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
# Each run starts from the snapshot alone: the live orders, events and stream log an earlier run
# left would be replayed at start and make every run slower than the last.
python3 - "$WH/_metastore.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for t in ("live_orders", "live_events", "stream_log"):
    db.execute(f"DELETE FROM {t}")
db.commit()
db.execute("VACUUM")
PY
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
# Orders for customers drawn from the whole warehouse (not one customer), two lines each.
"$BIN" --quiet sql --warehouse "$WH" --json "SELECT customer_id FROM v_customer_360 ORDER BY customer_id" > "$T/customers.jsonl"
"$BIN" --quiet sql --warehouse "$WH" --json "SELECT product_id, price_fen FROM products ORDER BY product_id LIMIT 2" > "$T/products.jsonl"
"$BIN" --quiet sql --warehouse "$WH" --json "SELECT store_id FROM stores ORDER BY store_id" > "$T/stores.jsonl"
python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
rd = lambda f, k: [json.loads(l)[k] for l in open(f"{t}/{f}") if l.strip()]
cs, ss = rd("customers.jsonl", "customer_id"), rd("stores.jsonl", "store_id")
open(f"{t}/all_ids.lua", "w").write("all_ids = {%s}\n" % ",".join(map(str, cs)))
ps = [json.loads(l) for l in open(f"{t}/products.jsonl") if l.strip()]
random.seed(7)
cs = random.sample(cs, min(20000, len(cs)))
items = ",".join('{"product_id":%d,"qty":1,"unit_price_fen":%d}' % (p["product_id"], p["price_fen"]) for p in ps)
total = sum(p["price_fen"] for p in ps)
open(f"{t}/ingest_data.lua", "w").write(
    "customers = {%s}\nstores = {%s}\nitems = '%s'\ntotal = %d\n" % (",".join(map(str, cs)), ",".join(map(str, ss)), items, total))
open(f"{t}/pg_data", "w").write(f"{len(cs)} {items} {total}\n")
PY
# Every customer, in a random order per thread: the answer cache (20k entries) holds few of them,
# so nearly every request reads the snapshot's serving index.
cat > "$T/lookup_all.lua" <<LUA
dofile("$T/all_ids.lua")
local x = 0
setup = function(thread) x = x + 1; thread:set("x", x * 7777) end
request = function()
  x = (x * 1103515245 + 12345) % 2147483648
  return wrk.format("GET", "/api/v1/customers/" .. all_ids[(x % #all_ids) + 1], {["authorization"] = "Bearer $KEY"})
end
LUA
# One customer's pages beyond the profile, in turn, for random customers (each route's answer
# cache rarely holds them): timeline, behaviour, emotion, preferences, recommendations.
cat > "$T/detail.lua" <<LUA
dofile("$T/all_ids.lua")
local routes = {"timeline", "behavior", "emotion", "preferences", "recommendations"}
local x = 0
local n = 0
setup = function(thread) x = x + 1; thread:set("x", x * 4242) end
request = function()
  x = (x * 1103515245 + 12345) % 2147483648
  n = n + 1
  return wrk.format("GET", "/api/v1/customers/" .. all_ids[(x % #all_ids) + 1] .. "/" .. routes[(n % #routes) + 1], {["authorization"] = "Bearer $KEY"})
end
LUA
NALL=$(grep -c . "$T/customers.jsonl")
cat > "$T/ingest.lua" <<LUA
dofile("$T/ingest_data.lua")
local n = 0
local tid = 0
setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
request = function()
  n = n + 1
  local c = customers[((n * 7919 + tid * 104729) % #customers) + 1]
  local s = stores[((n * 31 + tid) % #stores) + 1]
  local body = string.format('{"order_no":"BENCH-%d-%d-%d","store_id":%d,"customer_id":%d,"total_fen":%d,"items":[%s]}', $$, tid, n, s, c, total, items)
  return wrk.format("POST", "/api/v1/orders", {["authorization"] = "Bearer $KEY", ["content-type"] = "application/json"}, body)
end
LUA
run_wrk() { wrk -t2 -c"${2:-$CONNS}" -d"${SECS}s" --latency -s "$1" "http://127.0.0.1:$PORT" 2>&1; }
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
run_wrk "$T/lookup_all.lua" > "$T/lookup_all.txt"; read -r A_RPS A_P50 A_P99 A_ERR < <(parse "$T/lookup_all.txt")
# Warm what a route trains on first use (the recommender), then measure.
curl -fs -H "authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/v1/customers/$FIRST/recommendations" >/dev/null || true
run_wrk "$T/detail.lua" > "$T/detail.txt"; read -r D_RPS D_P50 D_P99 D_ERR < <(parse "$T/detail.txt")
# The same one request at a time: each request's own latency, without queueing on 2 cores.
wrk -t1 -c1 -d"${SECS}s" --latency -s "$T/detail.lua" "http://127.0.0.1:$PORT" > "$T/detail1.txt" 2>&1
read -r D1_RPS D1_P50 D1_P99 D1_ERR < <(parse "$T/detail1.txt")
run_wrk "$T/ingest.lua" "$ICONNS" > "$T/ingest.txt"; read -r I_RPS I_P50 I_P99 I_ERR < <(parse "$T/ingest.txt")
# SET first, so the GETs read a value of the profile's size (a GET of a missing key is cheaper).
redis-cli -h 127.0.0.1 flushall >/dev/null
R=$(redis-benchmark -h 127.0.0.1 -c "$CONNS" -n 200000 -d "$BYTES" -t set,get --csv -q 2>/dev/null | grep '^"GET"' | tail -n 1)
read -r R_RPS R_P50 R_P99 < <(python3 -c 'import csv,sys; r=next(csv.reader([sys.argv[1]])); print(r[1], r[4], r[6])' "$R")
MEM=$(ps -o rss= -p $SRV | awk '{printf "%.0f", $1/1024}')
HWM=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$SRV/status)
kill $SRV 2>/dev/null || true; wait $SRV 2>/dev/null || true
# pgbench: the same order row, one durable INSERT per transaction, on the machine's PostgreSQL.
PG="psql -h 127.0.0.1 -U postgres -d test -q -v ON_ERROR_STOP=1"
$PG -c "DROP TABLE IF EXISTS bench_live_orders; CREATE TABLE bench_live_orders (order_no text PRIMARY KEY, customer_id bigint, store_id bigint NOT NULL, order_time text NOT NULL, day bigint NOT NULL, total_fen bigint NOT NULL, items text NOT NULL, received_at text NOT NULL, received_by text NOT NULL)"
read -r NCUST PITEMS PTOTAL < "$T/pg_data"
cat > "$T/insert.sql" <<SQL
\\set c random(1, $NCUST)
INSERT INTO bench_live_orders VALUES ('PGB-' || :client_id || '-' || gen_random_uuid()::text, :c, 1, to_char(now(), 'YYYY-MM-DD HH24:MI:SS'), 20000, $PTOTAL, '[$PITEMS]', now()::text, 'bench') ON CONFLICT (order_no) DO NOTHING;
SQL
PGC=$(( ICONNS < 90 ? ICONNS : 90 ))
SYNC=$($PG -Atc "SHOW synchronous_commit")
(cd "$T" && pgbench -h 127.0.0.1 -U postgres -n -c "$PGC" -j 2 -T "$SECS" -f insert.sql --log --log-prefix=pgb test > pgbench.txt 2>&1)
read -r P_RPS P_P50 P_P99 < <(python3 - "$T" <<'PY'
import glob, re, sys
t = sys.argv[1]
lat = sorted(int(l.split()[2]) for f in glob.glob(f"{t}/pgb.*") for l in open(f) if l.strip())
tps = float(re.search(r"tps = ([\d.]+)", open(f"{t}/pgbench.txt").read()).group(1))
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000
print(f"{tps:.0f} {q(0.5):.3f} {q(0.99):.3f}")
PY
)
$PG -c "DROP TABLE bench_live_orders"
echo
echo "Loopback, $CONNS connections, ${SECS}s per run, $ORDERS simulated orders, profile payload $BYTES bytes ($PROFILE build); server RSS after: ${MEM} MB, peak ${HWM} MB"
echo
echo "| workload | requests/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---:|---:|---:|---:|"
echo "| c360 GET /api/v1/customers/{id} (200 customers, cached) | $L_RPS | $L_P50 | $L_P99 | $L_ERR |"
echo "| c360 GET /api/v1/customers/{id} (random over all $NALL customers) | $A_RPS | $A_P50 | $A_P99 | $A_ERR |"
echo "| c360 GET timeline, behavior, emotion, preferences, recommendations in turn (random customers) | $D_RPS | $D_P50 | $D_P99 | $D_ERR |"
echo "| same, one connection | $D1_RPS | $D1_P50 | $D1_P99 | $D1_ERR |"
echo "| c360 POST /api/v1/orders, $ICONNS connections (durable, re-score, push) | $I_RPS | $I_P50 | $I_P99 | $I_ERR |"
echo "| pgbench INSERT of the same row, $PGC clients (synchronous_commit=$SYNC) | $P_RPS | $P_P50 | $P_P99 | 0 |"
echo "| Redis GET, same payload size | ${R_RPS%.*} | $R_P50 | $R_P99 | 0 |"
python3 -c "print(f'\nc360/Redis lookup throughput: {float(\"$L_RPS\")/float(\"$R_RPS\"):.0%} (200 cached), {float(\"$A_RPS\")/float(\"$R_RPS\"):.0%} (all customers)')"
