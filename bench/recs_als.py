"""implicit's ALS and a popularity baseline on c360's recommendation split.

Reads tune_train.csv / valid.csv / train.csv / test.csv (customer,item) written by
`c360 analyze recs --export DIR`. ALS's settings are chosen on the validation period (fit on
tune_train, scored on valid), as c360's shrinkage is; the chosen setting is refitted on train
(tune_train + valid) and reported on the untouched test period. Scores
precision@10 and NDCG@10 with the same protocol as c360_analytics::recommend::evaluate: customers
with orders on both sides; relevant = items in their test orders; "repeat" restricts the ranked
list and the relevant set to items bought in training, "new" to the others.
"""
import os, sys, math, time
from itertools import islice

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares

d = sys.argv[1]


def load(train_name, test_name):
    tr = pd.read_csv(f"{d}/{train_name}")
    te = pd.read_csv(f"{d}/{test_name}")
    items = int(max(tr.item.max(), te.item.max())) + 1
    cust = {c: i for i, c in enumerate(sorted(tr.customer.unique()))}
    counts = tr.groupby(["customer", "item"]).size().reset_index(name="n")
    rows = counts.customer.map(cust).values
    m = sp.csr_matrix((counts.n.values.astype(np.float32), (rows, counts.item.values)), shape=(len(cust), items))
    before = tr.groupby("customer").item.apply(set).to_dict()
    after = te[te.customer.isin(before)].groupby("customer").item.apply(set).to_dict()
    return tr, items, cust, m, before, after


def score(rank_of, before, after):
    acc = {k: [0, 0.0, 0.0] for k in ("all", "repeat", "new")}
    for c in sorted(after):
        seen, rel = before[c], after[c]
        ranked = rank_of(c)
        for k, (lst, r) in {
            "all": (list(ranked[:10]), rel),
            "repeat": (list(islice((i for i in ranked if i in seen), 10)), rel & seen),
            "new": (list(islice((i for i in ranked if i not in seen), 10)), rel - seen),
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


def als(m, factors, reg):
    model = AlternatingLeastSquares(factors=factors, regularization=reg, iterations=20, random_state=7)
    t = time.perf_counter()
    model.fit(m * 20, show_progress=False)
    fit_s = time.perf_counter() - t
    uf, itf = model.user_factors, model.item_factors
    uf = uf.to_numpy() if hasattr(uf, "to_numpy") else uf
    itf = itf.to_numpy() if hasattr(itf, "to_numpy") else itf
    return uf, itf, fit_s


# Tuning: fit on tune_train, score on the validation period.
_, _, cust, m, before, after = load("tune_train.csv", "valid.csv")
best = None
for factors in (8, 16, 32):
    for reg in (0.01, 0.1):
        uf, itf, _ = als(m, factors, reg)
        s = score(lambda c: list(np.argsort(-(uf[cust[c]] @ itf.T), kind="stable")), before, after)
        if best is None or s["all"][2] > best[1]:
            best = ((factors, reg), s["all"][2])
(f, reg), valid_ndcg = best
# Report: the chosen setting refitted on train + validation, scored on the test period.
tr, items, cust, m, before, after = load("train.csv", "test.csv")
uf, itf, fit_s = als(m, f, reg)
als_test = score(lambda c: list(np.argsort(-(uf[cust[c]] @ itf.T), kind="stable")), before, after)
pop = list(tr.groupby("item").size().sort_values(ascending=False, kind="stable").index)
seen_pop = set(pop)
pop += [i for i in range(items) if i not in seen_pop]
popularity = score(lambda c: pop, before, after)
label = "implicit ALS (tuned on validation, best of 6: factors %d, reg %g, validation NDCG %.4f, fit %.2fs)" % (f, reg, valid_ndcg, fit_s)
for name, s in ((label, als_test), ("popularity", popularity)):
    print(name)
    for k in ("all", "repeat", "new"):
        n, p, g = s[k]
        print(f"  {k:6} customers {n:6d}  P@10 {p:.4f}  NDCG@10 {g:.4f}")
