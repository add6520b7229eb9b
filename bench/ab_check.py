"""Recomputes one exported experiment with scipy and statsmodels and compares with c360's answer.

    python bench/ab_check.py DIR      # DIR from `c360 experiment validate --export DIR`
"""
import json
import sys

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

d = sys.argv[1]
u = pd.read_csv(f"{d}/units.csv")
ours = json.load(open(f"{d}/c360.json"))
t, c = u[u.treated == 1], u[u.treated == 0]
rows = []


def check(name, got, want, tol):
    ok = abs(got - want) <= tol * max(1.0, abs(want))
    rows.append((name, got, want, ok))


w = stats.ttest_ind(t.post, c.post, equal_var=False)
check("welch diff", ours["welch"]["diff"], t.post.mean() - c.post.mean(), 1e-9)
check("welch p", ours["welch"]["p_value"], w.pvalue, 1e-6)
theta = np.cov(u.pre, u.post, ddof=1)[0, 1] / np.var(u.pre, ddof=1)
adj = u.post - theta * (u.pre - u.pre.mean())
check("cuped theta", ours["cuped_theta"], theta, 1e-9)
wa = stats.ttest_ind(adj[u.treated == 1], adj[u.treated == 0], equal_var=False)
check("cuped p", ours["cuped"]["p_value"], wa.pvalue, 1e-6)
ci = wa.confidence_interval(0.95)
check("cuped ci low", ours["cuped"]["ci_low"], ci.low, 1e-6)
check("cuped ci high", ours["cuped"]["ci_high"], ci.high, 1e-6)
se = np.sqrt(adj[u.treated == 1].var(ddof=1) / (u.treated == 1).sum() + adj[u.treated == 0].var(ddof=1) / (u.treated == 0).sum())
diff = adj[u.treated == 1].mean() - adj[u.treated == 0].mean()
check("chance to win", ours["bayes"]["chance_to_win"], stats.norm.cdf(diff / se), 1e-9)
n1 = int((u.treated == 1).sum())
chi = stats.chisquare([len(u) - n1, n1])
check("srm p", ours["srm"]["p_value"], chi.pvalue, 1e-6)
ps = ours["p_values"]
for k, m in [("holm", "holm"), ("bh", "fdr_bh")]:
    ref = multipletests(ps, method=m)[1]
    for i, (a, b) in enumerate(zip(ours[k], ref)):
        check(f"{k}[{i}]", a, b, 1e-12)
width = max(len(r[0]) for r in rows)
for name, got, want, ok in rows:
    print(f"{name:<{width}}  c360 {got:<22.12g} reference {want:<22.12g} {'ok' if ok else 'MISMATCH'}")
bad = [r for r in rows if not r[3]]
print(f"{len(rows) - len(bad)}/{len(rows)} agree (units: {len(u)})")
sys.exit(1 if bad else 0)
