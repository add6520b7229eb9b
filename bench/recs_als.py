"""implicit's ALS and a popularity baseline on c360's recommendation split.

Reads train.csv / test.csv (customer,item) written by `c360 analyze recs --export DIR` and scores
precision@10 and NDCG@10 with the same protocol as c360_analytics::recommend::evaluate: customers
with orders on both sides; relevant = items in their test orders; "repeat" restricts the ranked
list and the relevant set to items bought in training, "new" to the others.
"""
import sys, math, time
import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares

d = sys.argv[1]
tr = pd.read_csv(f"{d}/train.csv")
te = pd.read_csv(f"{d}/test.csv")
items = int(max(tr.item.max(), te.item.max())) + 1
cust = {c: i for i, c in enumerate(sorted(tr.customer.unique()))}
counts = tr.groupby(["customer", "item"]).size().reset_index(name="n")
rows = counts.customer.map(cust).values
m = sp.csr_matrix((counts.n.values.astype(np.float32), (rows, counts.item.values)), shape=(len(cust), items))
before = tr.groupby("customer").item.apply(set).to_dict()
after = te[te.customer.isin(before)].groupby("customer").item.apply(set).to_dict()


def score(rank_of):
    acc = {k: [0, 0.0, 0.0] for k in ("all", "repeat", "new")}
    for c in sorted(after):
        seen, rel = before[c], after[c]
        ranked = rank_of(c)
        for k, (lst, r) in {
            "all": (ranked, rel),
            "repeat": ([i for i in ranked if i in seen], rel & seen),
            "new": ([i for i in ranked if i not in seen], rel - seen),
        }.items():
            if not r:
                continue
            hits = [i in r for i in lst[:10]]
            dcg = sum(1 / math.log2(j + 2) for j, h in enumerate(hits) if h)
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(r), 10)))
            a = acc[k]
            a[0] += 1
            a[1] += sum(hits) / 10
            a[2] += dcg / idcg
    return {k: (v[0], v[1] / max(v[0], 1), v[2] / max(v[0], 1)) for k, v in acc.items()}


pop = list(tr.groupby("item").size().sort_values(ascending=False, kind="stable").index)
pop += [i for i in range(items) if i not in pop]
best = None
for factors in (8, 16, 32):
    for reg in (0.01, 0.1):
        model = AlternatingLeastSquares(factors=factors, regularization=reg, iterations=20, random_state=7)
        t = time.perf_counter()
        model.fit(m * 20, show_progress=False)
        fit_s = time.perf_counter() - t
        uf, itf = model.user_factors, model.item_factors
        uf = uf.to_numpy() if hasattr(uf, "to_numpy") else uf
        itf = itf.to_numpy() if hasattr(itf, "to_numpy") else itf
        s = score(lambda c: list(np.argsort(-(uf[cust[c]] @ itf.T), kind="stable")))
        if best is None or s["all"][2] > best[1]["all"][2]:
            best = ((factors, reg, fit_s), s)
(f, reg, fit_s), als = best
popularity = score(lambda c: pop)
for name, s in (("implicit ALS (best of 6 settings: factors %d, reg %g, fit %.2fs)" % (f, reg, fit_s), als), ("popularity", popularity)):
    print(name)
    for k in ("all", "repeat", "new"):
        n, p, g = s[k]
        print(f"  {k:6} customers {n:6d}  P@10 {p:.4f}  NDCG@10 {g:.4f}")
