#!/usr/bin/env bash
# Side-by-side benchmark: c360 vs pandas and DuckDB on the same data, in the same run.
#   bench/run.sh                 # 1M and 10M orders
#   bench/run.sh 200000          # any sizes
# Writes bench/results/<size>.jsonl and prints the markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
SIZES="${*:-1000000 10000000}"

if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
fi
bench/.venv/bin/pip install -q --disable-pip-version-check pandas pyarrow duckdb numpy
PY=bench/.venv/bin/python

cargo build --release -p c360-cli
BIN="$CARGO_TARGET_DIR/release/c360"
mkdir -p bench/results

RFM="WITH base AS (
  SELECT k.customer_id, MAX(o.order_time) AS last_t, COUNT(*) AS frequency, SUM(o.total_fen) AS monetary_fen
  FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key
  WHERE o.status = 'paid' GROUP BY k.customer_id),
obs_end AS (SELECT MAX(order_time) AS t FROM fact_orders),
scored AS (
  SELECT b.customer_id, CAST(FLOOR((to_unixtime(a.t) - to_unixtime(b.last_t)) / 86400) AS BIGINT) AS recency_days,
         b.frequency, b.monetary_fen FROM base b CROSS JOIN obs_end a),
q AS (
  SELECT *, NTILE(5) OVER (ORDER BY recency_days DESC, customer_id) AS r_score,
            NTILE(5) OVER (ORDER BY frequency, customer_id) AS f_score,
            NTILE(5) OVER (ORDER BY monetary_fen, customer_id) AS m_score FROM scored)
SELECT COUNT(*) AS n, SUM(r_score * 100 + f_score * 10 + m_score) AS checksum FROM q"

for N in $SIZES; do
  D="bench/data/$N"
  OUT="bench/results/$N.jsonl"
  : > "$OUT"
  if [ ! -f "$D/.done" ]; then
    rm -rf "$D"; mkdir -p "$D"
    $PY bench/measure.py "sim" "$BIN" --quiet sim --orders "$N" --stores 400 \
      --pos "$D/cyrg2025.db" --wx "$D/cyrgweixin.db" --truth "$D/truth.db" | tee -a "$OUT"
    touch "$D/.done"
  fi
  rm -rf "$D/hotdog2030" "$D/peer_pandas" "$D/peer_duckdb"
  $PY bench/measure.py "etl c360" "$BIN" --quiet etl --pos "$D/cyrg2025.db" --wx "$D/cyrgweixin.db" --warehouse "$D/hotdog2030" | tee -a "$OUT"
  $PY bench/measure.py "etl pandas" $PY bench/peers.py etl-pandas "$D" "$D/peer_pandas" | tee -a "$OUT"
  $PY bench/measure.py "etl duckdb" $PY bench/peers.py etl-duckdb "$D" "$D/peer_duckdb" | tee -a "$OUT"
  for i in 1 2; do  # second round warm (files in page cache for all three)
    $PY bench/measure.py "rfm c360" "$BIN" --quiet sql --timing --json --warehouse "$D/hotdog2030" "$RFM" | tee -a "$OUT"
    $PY bench/measure.py "rfm pandas" $PY bench/peers.py rfm-pandas "$D/hotdog2030" | tee -a "$OUT"
    $PY bench/measure.py "rfm duckdb" $PY bench/peers.py rfm-duckdb "$D/hotdog2030" | tee -a "$OUT"
  done
done
$PY bench/report.py $(for N in $SIZES; do echo "bench/results/$N.jsonl"; done)
