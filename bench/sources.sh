#!/usr/bin/env bash
# Issue 15, part 2: the ETL reading its sources from real servers, beside ConnectorX.
#   bench/sources.sh [ORDERS]      default 1000000
# Simulates ORDERS orders into MariaDB (both systems) and into PostgreSQL (both systems), then on
# each server runs, one after the other, each measured alone (wall, peak RSS, step times):
#   - the ten-step ETL of every binary in BINS (default: this checkout's release build); its
#     orders + items step (step 6) is the compute figure;
#   - the peer: ConnectorX reading the same orders and items into Arrow (range partitions on the
#     id, CX_PARTITIONS, default 2 = the machine's cores), DuckDB validating and writing the
#     same Parquet (bench/peers.py etl-duckdb cx:…).
# BINS="old:/path/c360 new:/path/c360" measures several builds side by side in the same run.
# Results: bench/results/sources-<ORDERS>.jsonl and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
N="${1:-1000000}"
MY="mysql://root@127.0.0.1:3306"
PG="postgres://postgres@127.0.0.1:5432"

[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check pandas pyarrow duckdb numpy connectorx
PY=bench/.venv/bin/python
if [ -z "${BINS:-}" ]; then
  cargo build --release -p c360-cli
  BINS="c360:$CARGO_TARGET_DIR/release/c360"
fi
first_bin="${BINS%% *}"; first_bin="${first_bin#*:}"
D="bench/data/sources-$N"
OUT="bench/results/sources-$N.jsonl"
mkdir -p "$D" bench/results
: > "$OUT"
start=$(date +%s)

reset() { # server db
  case "$1" in
    my) mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $2" ;;
    pg) psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $2" >/dev/null ;;
  esac
}

for srv in my pg; do
  if [ "$srv" = my ]; then BASE="$MY"; else BASE="$PG"; fi
  POS="$BASE/c360_bench_pos"; WX="$BASE/c360_bench_wx"
  reset "$srv" c360_bench_pos; reset "$srv" c360_bench_wx
  rm -f "$D/truth-$srv.db"*
  t0=$(date +%s)
  "$first_bin" --quiet sim --orders "$N" --stores 400 --pos "$POS" --wx "$WX" --truth "$D/truth-$srv.db"
  echo "simulated $N orders into $srv in $(( $(date +%s) - t0 )) s"
  for b in $BINS; do
    name="${b%%:*}"; bin="${b#*:}"
    rm -rf "$D/wh-$srv-$name"
    $PY bench/measure.py "etl $name ($srv)" "$bin" --quiet etl --pos "$POS" --wx "$WX" \
      --warehouse "$D/wh-$srv-$name" | tee -a "$OUT"
  done
  rm -rf "$D/peer"
  $PY bench/measure.py "etl duckdb+connectorx ($srv)" $PY bench/peers.py etl-duckdb "cx:$POS,$WX" "$D/peer" | tee -a "$OUT"
  rm -rf "$D/peer"
  reset "$srv" c360_bench_pos; reset "$srv" c360_bench_wx
done

$PY - "$OUT" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| server | engine | wall s | orders + items s | peak RSS MB | peer's time / this (orders + items) |")
print("|---|---|---:|---:|---:|---:|")
for srv in ["my", "pg"]:
    mine = [r for r in rows if r["label"].endswith(f"({srv})")]
    peer = next((r for r in mine if "connectorx" in r["label"]), None)
    for r in mine:
        ratio = f"{peer['compute_s'] / r['compute_s']:.2f}x" if peer and r.get("compute_s") else ""
        name = r["label"].rsplit(" (", 1)[0].removeprefix("etl ")
        print(f"| {'MariaDB' if srv == 'my' else 'PostgreSQL'} | {name} | {r['wall_s']:.1f} | {r['compute_s'] or 0:.2f} | {r['peak_rss_mb']:.0f} | {ratio} |")
PYEOF
echo
echo "bench/sources.sh $N: $(( $(date +%s) - start )) s at $(git rev-parse --short HEAD)"
