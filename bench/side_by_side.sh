#!/usr/bin/env bash
# The ETL of two builds on the same sources, alternating, so machine drift hits both alike:
#   OLD=/tmp/c360-a94df04 bench/side_by_side.sh 1000000 3
# OLD is another release build of c360 (e.g. `git worktree add /tmp/old <commit>` and
# `CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p c360-cli` there); NEW defaults to this
# checkout's release build. The sources are simulated once (by NEW) into bench/data/<N> and
# reused. Prints one JSON line per run (wall, step 6 = orders and items, peak RSS) and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
N="${1:-1000000}"
ROUNDS="${2:-3}"
: "${OLD:?set OLD to the c360 binary of another build}"
if [ -z "${NEW:-}" ]; then
  cargo build --release -p c360-cli
  NEW="$CARGO_TARGET_DIR/release/c360"
fi
if [ ! -x bench/.venv/bin/python ]; then python3 -m venv bench/.venv; fi
PY=bench/.venv/bin/python
D="bench/data/$N"
if [ ! -f "$D/.done" ]; then
  rm -rf "$D"; mkdir -p "$D"
  $PY bench/measure.py "sim" "$NEW" --quiet sim --orders "$N" --stores 400 \
    --pos "$D/cyrg2025.db" --wx "$D/cyrgweixin.db" --truth "$D/truth.db"
  touch "$D/.done"
fi
OUT="bench/results/side_by_side_$N.jsonl"
mkdir -p bench/results
: > "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for which in old new; do
    if [ "$which" = old ]; then BIN="$OLD"; else BIN="$NEW"; fi
    rm -rf "$D/hotdog2030"
    $PY bench/measure.py "etl $which" "$BIN" --quiet etl --pos "$D/cyrg2025.db" --wx "$D/cyrgweixin.db" \
      --warehouse "$D/hotdog2030" | tee -a "$OUT"
  done
done
$PY - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for which in ("old", "new"):
    r = [x for x in rows if x["label"] == f"etl {which}"]
    print(f"etl {which}: wall {statistics.median(x['wall_s'] for x in r):.1f} s, "
          f"step 6 {statistics.median(x['compute_s'] for x in r):.1f} s, "
          f"peak RSS {statistics.median(x['peak_rss_mb'] for x in r):.0f} MB "
          f"(medians of {len(r)}; walls {[x['wall_s'] for x in r]}, step 6 {[x['compute_s'] for x in r]})")
PYEOF

