"""Data and peers for the model benchmarks (run by bench/run_models.sh).

  models.py gen-btyd N OUT.csv        N customers drawn from BG/NBD + Gamma-Gamma (seeded)
  models.py gen-blobs N D K OUT.csv   N points in D dims around K centres (sklearn make_blobs, seeded)
  models.py kmeans CSV K              scikit-learn KMeans (k-means++, n_init=1, Lloyd) -> TIMING_MS, ANSWER inertia
"""
import sys
import time

import numpy as np


def gen_btyd(n, out):
    rng = np.random.default_rng(2030)
    r, alpha, a, b = 0.9, 30.0, 1.2, 5.0
    p, q, v = 6.0, 4.0, 15.0
    lam = rng.gamma(r, 1 / alpha, n)
    pdrop = rng.beta(a, b, n)
    T = np.floor(rng.uniform(30, 640, n))
    x = np.zeros(n)
    tx = np.zeros(n)
    t = np.zeros(n)
    alive = np.ones(n, bool)
    # Vectorised purchase process in days.
    for _ in range(400):
        if not alive.any():
            break
        t = t + rng.exponential(1 / np.maximum(lam, 1e-9))
        buy = alive & (t <= T)
        x[buy] += 1
        tx[buy] = np.floor(t[buy])
        drop = buy & (rng.random(n) < pdrop)
        alive &= buy & ~drop
    nu = rng.gamma(q, 1 / v, n)
    zbar = np.where(x > 0, rng.gamma(p * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1), 0.0)
    # Per-period counting like the warehouse: repeat purchases on the first day are not repeats.
    tx = np.minimum(tx, T)
    with open(out, "w") as f:
        f.write("x,t_x,T,zbar\n")
        for row in zip(x, tx, T, zbar):
            f.write("%d,%d,%d,%.4f\n" % row)


def gen_blobs(n, d, k, out):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0, random_state=2030)
    np.savetxt(out, X, delimiter=",", fmt="%.6f")


def kmeans(csv, k):
    from sklearn.cluster import KMeans

    X = np.loadtxt(csv, delimiter=",")
    t0 = time.perf_counter()
    m = KMeans(n_clusters=k, init="k-means++", n_init=1, algorithm="lloyd", tol=1e-6, random_state=0).fit(X)
    print(f"TIMING_MS {(time.perf_counter() - t0) * 1000:.0f}")
    print(f"ANSWER {m.inertia_:.6g}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen-btyd":
        gen_btyd(int(sys.argv[2]), sys.argv[3])
    elif cmd == "gen-blobs":
        gen_blobs(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "kmeans":
        kmeans(sys.argv[2], int(sys.argv[3]))
