#!/usr/bin/env bash
# Audience set algebra at national scale, side by side: roaring bitmaps (c360) against numpy's
# sorted-array set operations and a DuckDB join on the same two audiences over 10M customers.
#   bench/audiences.sh             # 10M customers
#   bench/audiences.sh 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
N="${1:-10000000}"
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check numpy duckdb
PROFILE="${C360_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p c360-cli; else cargo build --workspace; fi
BIN="$CARGO_TARGET_DIR/$PROFILE/c360"
D="bench/data/audiences-$N"
mkdir -p "$D" bench/results
"$BIN" --quiet analyze bitmaps --customers "$N" --export "$D" | tee bench/results/audiences-c360.json
bench/.venv/bin/python bench/audiences.py "$D" | tee bench/results/audiences-peers.json
echo "commit $(git rev-parse --short HEAD), profile $PROFILE" | tee -a bench/results/audiences-c360.json
