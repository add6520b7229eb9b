"""CDNOW master through c360 against `lifetimes` on the same rows: parameters on the 39-week
calibration period, and the 39-week holdout (expected against actual repeat purchases per
customer; churn, i.e. no purchase in the holdout, ranked by c360's churn model and by 1 - P(alive)).

  public.py CDNOW_master.txt C360_PREDICTIONS.csv C360_PARAMS.json COMMIT

C360_PREDICTIONS.csv is `c360 analyze clv --export-predictions … --horizon-days 273` after
`c360 import` of the calibration rows; C360_PARAMS.json is what that command printed. Prints a
markdown section for BENCHMARKS.md.
"""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
from lifetimes.utils import summary_data_from_transaction_data

master, pred_path, params_path, commit = sys.argv[1:5]
CAL_END = pd.Timestamp("1997-09-30")
HOLD_END = pd.Timestamp("1998-06-30")
H = (HOLD_END - CAL_END).days  # 273 days = 39 weeks

tx = pd.read_csv(master, sep=r"\s+", dtype={"customer_id": str})
tx["date"] = pd.to_datetime(tx["date"].astype(str), format="%Y%m%d")
cal = tx[tx.date <= CAL_END]
hold = tx[(tx.date > CAL_END) & (tx.date <= HOLD_END)]

# The same summary c360 computes: purchases per calendar day, T to the day after the last
# calibration day (c360's end of observation is the day after its last order).
t0 = time.perf_counter()
s = summary_data_from_transaction_data(
    cal, "customer_id", "date", monetary_value_col="dollar_value",
    observation_period_end=CAL_END + pd.Timedelta(days=1), freq="D",
)
bg = BetaGeoFitter().fit(s.frequency, s.recency, s["T"])
pn = ParetoNBDFitter().fit(s.frequency, s.recency, s["T"])
rep = s[(s.frequency > 0) & (s.monetary_value > 0)]
gg = GammaGammaFitter().fit(rep.frequency, rep.monetary_value)
lt_secs = time.perf_counter() - t0

# Actual repeat purchases in the holdout: purchase days, as in calibration.
actual = hold.groupby("customer_id").date.nunique().reindex(s.index, fill_value=0)

c = pd.read_csv(pred_path, dtype={"source_key": str})
c["customer_id"] = c.source_key.str.removeprefix("M:")
c = c.set_index("customer_id").reindex(s.index)
assert c.x.notna().all(), "every CDNOW customer has a c360 prediction"
same_rows = bool((c.x.values == s.frequency.values).all() and (c.t_x.values == s.recency.values).all() and (c["T"].values == s["T"].values).all())

lt_bg = bg.conditional_expected_number_of_purchases_up_to_time(H, s.frequency, s.recency, s["T"])
lt_pn = pn.conditional_expected_number_of_purchases_up_to_time(H, s.frequency, s.recency, s["T"])
lt_alive = bg.conditional_probability_alive(s.frequency, s.recency, s["T"])
churned = (actual == 0).astype(int).values


def auc(score, label):
    """P(score of a churned customer > score of a retained one), ties half."""
    r = pd.Series(score).rank().values
    pos = label == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def row(name, pred):
    pred = np.asarray(pred, dtype=float)
    return f"| {name} | {np.corrcoef(pred, actual.values)[0, 1]:.3f} | {pred.sum():,.0f} | {actual.sum():,} | {pred.sum() / actual.sum():.3f} |"


cp = json.load(open(params_path))
p = lambda d, k: f"{d[k]:.4f}"
out = []
out.append(f"## Public data: CDNOW master through the product (issue 14; {commit})\n")
out.append("`bash bench/public.sh`: the `lifetimes` 0.11.3 wheel from PyPI, its `CDNOW_master.txt` "
           f"({tx.customer_id.nunique():,} customers, {len(tx):,} purchase rows, 1997-01-01..1998-06-30); "
           f"the calibration rows (to 1997-09-30, {len(cal):,} rows) loaded with `c360 --contract examples/cdnow.toml import`, "
           "which refreshes; c360's figures are the refresh's stored models and churn scores "
           "(`c360 analyze clv --export-predictions`, Pareto/NBD fitted on the same summaries), "
           "`lifetimes` fitted on the same rows summarised by its own `summary_data_from_transaction_data` "
           "(per day, T to 1997-10-01 as c360 counts it). "
           f"The summaries are identical row for row: {same_rows}.\n")
out.append("| model | parameter | c360 | lifetimes |")
out.append("|---|---|---:|---:|")
for k_c, k_l in [("r", "r"), ("alpha", "alpha"), ("a", "a"), ("b", "b")]:
    out.append(f"| BG/NBD | {k_c} | {p(cp['bgnbd'], k_c)} | {bg.params_[k_l]:.4f} |")
for k_c, k_l in [("r", "r"), ("alpha", "alpha"), ("s", "s"), ("beta", "beta")]:
    out.append(f"| Pareto/NBD | {k_c} | {p(cp['pareto_nbd'], k_c)} | {pn.params_[k_l]:.4f} |")
for k_c, k_l in [("p", "p"), ("q", "q"), ("v", "v")]:
    out.append(f"| Gamma-Gamma | {k_c} | {p(cp['gamma_gamma'], k_c)} | {gg.params_[k_l]:.4f} |")
out.append("")
out.append(f"Holdout, 39 weeks (1997-10-01..1998-06-30), {len(s):,} customers, "
           f"{churned.mean():.1%} of them without a purchase in it:\n")
out.append("| expected repeat purchases | Pearson r with actual | expected total | actual total | expected / actual |")
out.append("|---|---:|---:|---:|---:|")
out.append(row("c360 BG/NBD", c.expected_purchases))
out.append(row("c360 Pareto/NBD", c.expected_purchases_pareto))
out.append(row("lifetimes BG/NBD", lt_bg))
out.append(row("lifetimes Pareto/NBD", lt_pn))
out.append("")
out.append("| churn (no purchase in the holdout) | AUC |")
out.append("|---|---:|")
out.append(f"| c360 churn model (P(churn within 90 days), gradient-boosted trees) | {auc(c.p_churn_90d.values, churned):.3f} |")
out.append(f"| c360 1 - P(alive) (BG/NBD) | {auc(1 - c.p_alive.values, churned):.3f} |")
out.append(f"| c360 1 - P(alive) (Pareto/NBD) | {auc(1 - c.p_alive_pareto.values, churned):.3f} |")
out.append(f"| lifetimes 1 - P(alive) (BG/NBD) | {auc(1 - np.asarray(lt_alive), churned):.3f} |")
out.append("")
one_time = (s.frequency == 0).values
out.append(f"BG/NBD's P(alive) is 1 for every customer without a repeat purchase ({one_time.mean():.0%} of them here, "
           f"{churned[one_time].mean():.0%} of whom bought nothing in the holdout): its 1 - P(alive) ranks the likeliest "
           "churners as the safest, hence an AUC below 0.5, in c360 and `lifetimes` alike. Pareto/NBD has no such "
           "corner, and c360's churn model learns it from the customer's own history.")
out.append("")
print("\n".join(out))
