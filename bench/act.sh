#!/usr/bin/env bash
# Issue 6 on one simulated chain (100k orders by default), end to end through the CLI:
#   - a win-back campaign suggested from the 重要挽留客户 segment, created, launched; the simulated
#     customers live through its window with it (coupons redeemed at the POS and in the mini-program); the ETL
#     loads them; the campaign's results are compared with the causal truth;
#   - the A/B engine validated on 1000 A/A and 1000 A/B experiments (false positives, power), and
#     one experiment recomputed with scipy and statsmodels;
#   - customer-service diagnosis on open tickets against their true causes.
#   bench/act.sh [ORDERS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
N="${1:-100000}"
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check numpy scipy pandas statsmodels
PY=bench/.venv/bin/python
PROFILE="${C360_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p c360-cli; else cargo build --workspace; fi
BIN="$CARGO_TARGET_DIR/$PROFILE/c360"
D="bench/data/act-$N"
rm -rf "$D"; mkdir -p "$D"
W=(--warehouse "$D/wh")
S=(--pos "$D/pos.db" --wx "$D/wx.db" --truth "$D/truth.db")
"$BIN" --quiet sim --orders "$N" "${S[@]}" >/dev/null
"$BIN" --quiet etl --pos "$D/pos.db" --wx "$D/wx.db" "${W[@]}" >/dev/null
mkdir -p bench/results
"$BIN" campaign suggest "${W[@]}" > "$D/suggest.json"
"$PY" - "$D" <<'PY'
import json, sys
d = sys.argv[1]
s = next(x for x in json.load(open(f"{d}/suggest.json")) if x["rfm_class"] == "重要挽留客户")
spec = s["spec"]
spec["holdout_pct"] = 30
json.dump(spec, open(f"{d}/spec.json", "w"), ensure_ascii=False)
# Live through the evaluation window (send days + attribution days), no further.
from datetime import date
days = (date.fromisoformat(spec["end"]) - date.fromisoformat(spec["start"])).days + 1 + spec["attribution_days"]
open(f"{d}/days", "w").write(str(days))
PY
"$BIN" campaign create "$D/spec.json" "${W[@]}"
"$BIN" campaign launch 1 "${W[@]}" | tee bench/results/act-launch.json
"$BIN" --quiet advance "${S[@]}"  --campaign 1 --days "$(cat "$D/days")" "${W[@]}" | tee bench/results/act-advance.json
"$BIN" --quiet etl --pos "$D/pos.db" --wx "$D/wx.db" "${W[@]}" >/dev/null
"$BIN" campaign results 1 "${W[@]}" > bench/results/act-results.json
"$PY" - "$D" <<'PY' | tee bench/results/act-campaign.txt
import json, sqlite3, sys
d = sys.argv[1]
r = json.load(open("bench/results/act-results.json"))
a = r["arms"][0]
t = sqlite3.connect(f"{d}/truth.db").execute(
    "SELECT COUNT(*), SUM(realized_uplift_fen), SUM(redeemed), SUM(extra_order), SUM(lost_orders) FROM campaign_truth WHERE campaign_id = 1 AND treated = 1").fetchone()
n, up, red, extra, lost = t
est = a["revenue_per_member_cuped"]
print(f"members {r['members']} (holdout {r['holdout']}, global holdout {r['global_holdout']}), SRM p {r['srm']['p_value']:.3f}")
print(f"true incremental revenue per treated member   {up / n / 100:8.2f} yuan")
print(f"estimated (CUPED) per member                  {est['diff'] / 100:8.2f} yuan  95% CI [{est['ci'][0] / 100:.2f}, {est['ci'][1] / 100:.2f}]")
raw = a["revenue_per_member"]
print(f"estimated (raw) per member                    {raw['diff'] / 100:8.2f} yuan  95% CI [{raw['ci'][0] / 100:.2f}, {raw['ci'][1] / 100:.2f}]")
print(f"redemptions attributed {a['redemptions']} (POS {a['redeemed_at_pos']}, mini-program {a['redeemed_in_mini_program']}); truth {red}")
print(f"truth: {extra} extra orders, {lost} orders lost to annoyed customers")
print(f"retention lift {a['retention']['diff'] * 100:.1f} pt, p {a['retention']['p_value']:.3g}; chance to win {est['chance_to_win']:.3f}")
print(f"uplift Qini coefficient (cross-fitted) {r['uplift']['qini_coefficient']:.3f}; top 30% hold {r['uplift']['gain_top_30pct_share_of_total']}")
PY
"$BIN" experiment validate --truth "$D/truth.db" --n 1000 --effect 0.1 --export "$D/ab" | tee bench/results/act-ab-validation.json
"$PY" bench/ab_check.py "$D/ab" | tee bench/results/act-ab-check.txt
"$BIN" service evaluate "${W[@]}" --truth "$D/truth.db" | tee bench/results/act-service.json
