#!/usr/bin/env bash
# Issue 5's checks against peers and truth, on one simulated chain:
#   - the customer network against networkx (PageRank on the same graph, Louvain modularity);
#   - recommendations against implicit's ALS and popularity on the same time split;
#   - sentiment (held-out real reviews, aspects and store trends against the simulator's truth),
#     the network against the true circles and sociability.
#   bench/dims.sh            # 100k orders
#   bench/dims.sh 300000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
N="${1:-100000}"
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check numpy scipy pandas networkx implicit
PY=bench/.venv/bin/python
# These checks measure agreement and accuracy, not speed: C360_PROFILE=debug reuses the test build.
PROFILE="${C360_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p c360-cli; else cargo build --workspace; fi
BIN="$CARGO_TARGET_DIR/$PROFILE/c360"
D="bench/data/dims-$N"
if [ ! -f "$D/.done" ]; then
  rm -rf "$D"; mkdir -p "$D"
  "$BIN" --quiet sim --orders "$N" --pos "$D/pos.db" --wx "$D/wx.db" --truth "$D/truth.db"
  "$BIN" --quiet etl --pos "$D/pos.db" --wx "$D/wx.db" --warehouse "$D/wh"
  touch "$D/.done"
fi
mkdir -p bench/results
"$BIN" analyze network --warehouse "$D/wh" --truth "$D/truth.db" --export "$D/net" | tee bench/results/dims-network.txt
"$PY" bench/network_check.py "$D/net" | tee -a bench/results/dims-network.txt
"$BIN" analyze recs --warehouse "$D/wh" --export "$D/recs" | tee bench/results/dims-recs.json
"$PY" bench/recs_als.py "$D/recs" | tee bench/results/dims-recs-als.txt
"$BIN" analyze sentiment --warehouse "$D/wh" --truth "$D/truth.db" | tee bench/results/dims-sentiment.json
