"""Checks c360's network answers against networkx on the same graph.

Reads edges.csv (influence: source influences target), ties.csv (all ties) and ours.csv (node,
PageRank of the reversed influence graph, Louvain community on the ties) written by
`c360 analyze network --export DIR`.
PageRank: networkx on the reversed DiGraph with the same alpha; reports the largest absolute and
relative difference and the rank agreement of the top 50. Louvain: both partitions' modularity on
the undirected tie graph (weights of both directions summed), networkx best of 5 seeds.
"""
import sys, csv, time
import networkx as nx

d = sys.argv[1]
G = nx.DiGraph()
with open(f"{d}/ours.csv") as f:
    ours = list(csv.DictReader(f))
G.add_nodes_from(int(r["node"]) for r in ours)
with open(f"{d}/edges.csv") as f:
    for r in csv.DictReader(f):
        G.add_edge(int(r["target"]), int(r["source"]), weight=float(r["weight"]))  # reversed
t = time.perf_counter()
pr = nx.pagerank(G, alpha=0.85, weight="weight", tol=1e-12, max_iter=1000)
t_pr = time.perf_counter() - t
mine = {int(r["node"]): float(r["pagerank_reversed"]) for r in ours}
diff = max(abs(pr[n] - mine[n]) for n in mine)
rel = max(abs(pr[n] - mine[n]) / pr[n] for n in mine)
top_nx = sorted(pr, key=lambda n: (-pr[n], n))[:50]
top_me = sorted(mine, key=lambda n: (-mine[n], n))[:50]
print(f"pagerank: nodes {len(mine)} edges {G.number_of_edges()} max |diff| {diff:.3e} max rel diff {rel:.3e} "
      f"top-50 overlap {len(set(top_nx) & set(top_me))}/50 (networkx {t_pr:.2f}s)")

U = nx.Graph()
U.add_nodes_from(G.nodes)
with open(f"{d}/ties.csv") as f:
    for r in csv.DictReader(f):
        u, v, w = int(r["source"]), int(r["target"]), float(r["weight"])
        if U.has_edge(u, v):
            U[u][v]["weight"] += w
        else:
            U.add_edge(u, v, weight=w)
comm = {}
for r in ours:
    comm.setdefault(int(r["community"]), set()).add(int(r["node"]))
q_me = nx.community.modularity(U, comm.values(), weight="weight")
best = None
t = time.perf_counter()
for seed in range(5):
    c = nx.community.louvain_communities(U, weight="weight", seed=seed)
    q = nx.community.modularity(U, c, weight="weight")
    if best is None or q > best[0]:
        best = (q, len(c))
t_lv = (time.perf_counter() - t) / 5
print(f"louvain: c360 modularity {q_me:.4f} ({len(comm)} communities) vs networkx best of 5 {best[0]:.4f} "
      f"({best[1]} communities); networkx {t_lv:.2f}s per run")
