#!/usr/bin/env bash
# Model benchmarks, same data for both sides, same run:
#   BG/NBD + Gamma-Gamma fit and 12-month CLV for N customers: c360 vs lifetimes
#   k-means (k-means++, Lloyd) on M x 8 points: c360 vs scikit-learn
#   bench/run_models.sh [N_CUSTOMERS] [M_POINTS]     (default 1000000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
N="${1:-1000000}"
M="${2:-1000000}"
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check pandas numpy lifetimes scikit-learn
PY=bench/.venv/bin/python
cargo build --release -p c360-cli
BIN="$CARGO_TARGET_DIR/release/c360"
mkdir -p bench/data bench/results
OUT=bench/results/models.jsonl
: > "$OUT"
[ -f "bench/data/btyd_$N.csv" ] || $PY bench/models.py gen-btyd "$N" "bench/data/btyd_$N.csv"
[ -f "bench/data/blobs_$M.csv" ] || $PY bench/models.py gen-blobs "$M" 8 8 "bench/data/blobs_$M.csv"
$PY bench/measure.py "clv c360" "$BIN" --quiet analyze clv --summary-csv "bench/data/btyd_$N.csv" | tee -a "$OUT"
$PY bench/measure.py "clv lifetimes" $PY bench/lifetimes_ref.py "bench/data/btyd_$N.csv" | tee -a "$OUT"
$PY bench/measure.py "kmeans c360" "$BIN" --quiet analyze kmeans --csv "bench/data/blobs_$M.csv" --k 8 | tee -a "$OUT"
$PY bench/measure.py "kmeans sklearn" $PY bench/models.py kmeans "bench/data/blobs_$M.csv" 8 | tee -a "$OUT"
$PY bench/report.py "$OUT"
