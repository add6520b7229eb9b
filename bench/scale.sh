#!/usr/bin/env bash
# Issue 15's scale run: every stage at one size, each beside its peer in the same run, with wall
# time and peak RSS, and a stage that fails (killed for memory, over its time limit) recorded as
# such instead of ending the run.
#   bench/scale.sh 1m     routine check, under 10 minutes on the 2-core machine (see BENCHMARKS.md)
#   bench/scale.sh 10m    10M orders, 2,000 stores
#   bench/scale.sh 100m   100M orders, 5,000 stores (needs ~60 GB of disk for the sources)
# Stages: simulate; the ten-step ETL (c360) beside the orders+items step in pandas and DuckDB;
# RFM over the warehouse's Parquet, c360 vs DuckDB (warm); at 1m also the model benchmark (CLV for
# 1M customers vs lifetimes, k-means vs scikit-learn) and the server under load (bench/run_models.sh,
# bench/serve_load.sh). Results: bench/results/scale-<size>.jsonl and a markdown table on stdout.
# STAGE_TIMEOUT (seconds, default 5400) bounds each stage.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
SIZE="${1:-1m}"
case "$SIZE" in
  1m) N=1000000; STORES=400 ;;
  10m) N=10000000; STORES=2000 ;;
  100m) N=100000000; STORES=5000 ;;
  *) echo "usage: bench/scale.sh 1m|10m|100m" >&2; exit 2 ;;
esac
LIMIT="${STAGE_TIMEOUT:-5400}"

[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check pandas pyarrow duckdb numpy || exit 1
PY=bench/.venv/bin/python
cargo build --release -p c360-cli || exit 1
BIN="$CARGO_TARGET_DIR/release/c360"
D="bench/data/scale-$SIZE"
OUT="bench/results/scale-$SIZE.jsonl"
mkdir -p "$D" bench/results
: > "$OUT"
start=$(date +%s)

# stage LABEL CMD...: one measured process; a failure is written as a row and the run goes on.
stage() {
  local label="$1"; shift
  local line
  if line=$(timeout "$LIMIT" $PY bench/measure.py "$label" "$@" 2>"$D/$label.err"); then
    echo "$line" | tee -a "$OUT"
    return 0
  fi
  local why
  why=$(tail -n 3 "$D/$label.err" | tr '\n' ' ' | cut -c1-200)
  echo "{\"label\": \"$label\", \"failed\": true, \"why\": $(printf '%s' "$why" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}" | tee -a "$OUT"
  return 1
}

rm -f "$D/cyrg2025.db"* "$D/cyrgweixin.db"* "$D/truth.db"*
stage sim "$BIN" --quiet sim --orders "$N" --stores "$STORES" \
  --pos "$D/cyrg2025.db" --wx "$D/cyrgweixin.db" --truth "$D/truth.db" || exit 1
du -sh "$D" | awk '{print "sources on disk: " $1}'

rm -rf "$D/hotdog2030" "$D/peer_pandas" "$D/peer_duckdb"
etl_ok=1
stage "etl c360" "$BIN" --quiet etl --pos "$D/cyrg2025.db" --wx "$D/cyrgweixin.db" --warehouse "$D/hotdog2030" || etl_ok=0
stage "etl pandas" $PY bench/peers.py etl-pandas "$D" "$D/peer_pandas"
stage "etl duckdb" $PY bench/peers.py etl-duckdb "$D" "$D/peer_duckdb"
rm -rf "$D/peer_pandas" "$D/peer_duckdb"

if [ "$etl_ok" = 1 ]; then
  RFM=$(sed -n '/^RFM="/,/"$/p' bench/run.sh | sed '1s/^RFM="//; $s/"$//')
  for _ in 1 2; do  # the second round is warm for both
    stage "rfm c360" "$BIN" --quiet sql --timing --json --warehouse "$D/hotdog2030" "$RFM"
    stage "rfm duckdb" $PY bench/peers.py rfm-duckdb "$D/hotdog2030"
  done
fi

if [ "$SIZE" = 1m ]; then
  bash bench/run_models.sh 1000000 1000000 | tail -n 8
  cat bench/results/models.jsonl >> "$OUT"
  bash bench/serve_load.sh 50000 10 32 | tail -n 8
fi

$PY bench/report.py "$OUT"
echo
echo "bench/scale.sh $SIZE: $(( $(date +%s) - start )) s at $(git rev-parse --short HEAD)"
