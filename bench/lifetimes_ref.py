"""Fits the `lifetimes` models on a customer summary CSV and prints their parameters as JSON.

  lifetimes_ref.py SUMMARY.csv [--months 12] [--discount 0.01]

The CSV has columns x (or frequency), t_x (or recency), T and optionally zbar (or
monetary_value), one row per customer. Prints `TIMING_MS` (fit + 12-month CLV for every
customer) and `ANSWER` (the CLV total) for bench/measure.py.
"""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter

path = sys.argv[1]
months = int(sys.argv[sys.argv.index("--months") + 1]) if "--months" in sys.argv else 12
discount = float(sys.argv[sys.argv.index("--discount") + 1]) if "--discount" in sys.argv else 0.01
pareto = "--pareto" in sys.argv
df = pd.read_csv(path).rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})
t0 = time.perf_counter()
bg = BetaGeoFitter().fit(df.frequency, df.recency, df["T"])
out = {"bgnbd": {k: float(v) for k, v in bg.params_.items()}}
if "monetary_value" in df:
    rep = df[df.frequency > 0]
    gg = GammaGammaFitter().fit(rep.frequency, rep.monetary_value)
    out["gamma_gamma"] = {k: float(v) for k, v in gg.params_.items()}
    clv = gg.customer_lifetime_value(bg, df.frequency, df.recency, df["T"], df.monetary_value.where(df.frequency > 0, 0), time=months, discount_rate=discount, freq="D")
    out["clv_total"] = float(clv.sum())
t_fit = time.perf_counter() - t0
if pareto:
    pn = ParetoNBDFitter().fit(df.frequency, df.recency, df["T"])
    out["pareto_nbd"] = {k: float(v) for k, v in pn.params_.items()}
print(json.dumps(out))
print(f"TIMING_MS {t_fit * 1000:.0f}")
print(f"ANSWER {out.get('clv_total', 0):.6g}")
