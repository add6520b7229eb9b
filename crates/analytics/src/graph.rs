//! The customer network: influence ranking (PageRank), communities (Louvain), propagation paths
//! of a share campaign, and campaign seeds by influence maximisation (CELF greedy on the
//! independent-cascade model).
//!
//! Nodes are dense indices `0..n`; callers map customer ids to them. Edges are weighted and
//! directed (`from` influences `to`: a share from → to, a group-order initiator → member, a
//! payer → the friend paid for). Communities use the undirected sum of both directions, as
//! networkx's `louvain_communities` does. Semantics follow networkx, so the two agree on the same
//! graph (checked in tests and `bench/network_check.py`). No I/O here.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A weighted directed graph on nodes `0..n`, parallel edges merged by summing weights.
#[derive(Debug, Clone)]
pub struct Graph {
    pub n: usize,
    /// out[u] = (v, w), sorted by v, no duplicates.
    pub out: Vec<Vec<(usize, f64)>>,
}

impl Graph {
    pub fn new(n: usize, edges: &[(usize, usize, f64)]) -> Graph {
        for &(u, v, _) in edges {
            assert!(u < n && v < n, "edge ({u}, {v}) outside 0..{n}");
        }
        Graph {
            n,
            out: adjacency(n, edges.to_vec()),
        }
    }

    pub fn edge_count(&self) -> usize {
        self.out.iter().map(|o| o.len()).sum()
    }

    /// The same graph with every edge turned round.
    pub fn reversed(&self) -> Graph {
        let e: Vec<(usize, usize, f64)> = self
            .out
            .iter()
            .enumerate()
            .flat_map(|(u, o)| o.iter().map(move |&(v, w)| (v, u, w)))
            .collect();
        Graph::new(self.n, &e)
    }

    /// Undirected adjacency (weights of u→v and v→u summed), self-loops kept once.
    pub fn undirected(&self) -> Vec<Vec<(usize, f64)>> {
        let mut e = Vec::with_capacity(2 * self.edge_count());
        for (u, o) in self.out.iter().enumerate() {
            for &(v, w) in o {
                e.push((u, v, w));
                if u != v {
                    e.push((v, u, w));
                }
            }
        }
        adjacency(self.n, e)
    }
}

/// PageRank as networkx computes it (`nx.pagerank(G, alpha, weight="weight")`): out-weights
/// normalised per node, dangling nodes' rank spread uniformly, uniform teleport; iterates until
/// the L1 change is below `n · tol`.
pub fn pagerank(g: &Graph, alpha: f64, tol: f64, max_iter: usize) -> Vec<f64> {
    let n = g.n;
    if n == 0 {
        return Vec::new();
    }
    let out_w: Vec<f64> = g.out.iter().map(|o| o.iter().map(|e| e.1).sum()).collect();
    let mut x = vec![1.0 / n as f64; n];
    for _ in 0..max_iter {
        let dangling: f64 = (0..n).filter(|&u| out_w[u] == 0.0).map(|u| x[u]).sum();
        let base = (1.0 - alpha) / n as f64 + alpha * dangling / n as f64;
        let mut nx = vec![base; n];
        for u in 0..n {
            if out_w[u] == 0.0 {
                continue;
            }
            let share = alpha * x[u] / out_w[u];
            for &(v, w) in &g.out[u] {
                nx[v] += share * w;
            }
        }
        let err: f64 = nx.iter().zip(&x).map(|(a, b)| (a - b).abs()).sum();
        x = nx;
        if err < n as f64 * tol {
            break;
        }
    }
    x
}

/// One node's neighbours as `(node, weight)`, sorted by node.
/// Each node's out-edges sorted by target, parallel edges summed in the order given (as a map
/// per node summed them, without a map per node: a stable sort of the edge list).
fn adjacency(n: usize, mut edges: Vec<(usize, usize, f64)>) -> Vec<Vec<(usize, f64)>> {
    edges.sort_by_key(|e| (e.0, e.1));
    let mut degree = vec![0usize; n];
    for w in edges.windows(2) {
        if (w[0].0, w[0].1) != (w[1].0, w[1].1) {
            degree[w[0].0] += 1;
        }
    }
    if let Some(last) = edges.last() {
        degree[last.0] += 1;
    }
    let mut out: Vec<Vec<(usize, f64)>> = degree.into_iter().map(Vec::with_capacity).collect();
    for (u, v, w) in edges {
        match out[u].last_mut() {
            Some((last, sum)) if *last == v => *sum += w,
            _ => out[u].push((v, 0.0 + w)),
        }
    }
    out
}

fn sorted_adjacency(h: HashMap<usize, f64>) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = h.into_iter().collect();
    v.sort_by_key(|e| e.0);
    v
}

/// Weighted degree of each node of an undirected adjacency (a self-loop counts twice).
fn degrees(adj: &[Vec<(usize, f64)>]) -> Vec<f64> {
    adj.iter()
        .enumerate()
        .map(|(u, a)| {
            a.iter()
                .map(|&(v, w)| if v == u { 2.0 * w } else { w })
                .sum()
        })
        .collect()
}

/// Modularity of a partition (community label per node) of the undirected graph, resolution γ.
pub fn modularity(adj: &[Vec<(usize, f64)>], label: &[usize], resolution: f64) -> f64 {
    let deg = degrees(adj);
    let m2: f64 = deg.iter().sum();
    if m2 == 0.0 {
        return 0.0;
    }
    let k = label.iter().max().map_or(0, |m| m + 1);
    let mut inner = vec![0.0; k];
    let mut tot = vec![0.0; k];
    for (u, a) in adj.iter().enumerate() {
        tot[label[u]] += deg[u];
        for &(v, w) in a {
            if label[u] == label[v] {
                inner[label[u]] += if u == v { 2.0 * w } else { w };
            }
        }
    }
    (0..k)
        .map(|c| inner[c] / m2 - resolution * (tot[c] / m2).powi(2))
        .sum()
}

/// Louvain communities (Blondel et al. 2008): local moves by modularity gain, then the
/// communities are merged into nodes, until no level improves modularity by more than
/// `threshold`. Nodes are visited in a seeded random order (as networkx's `seed`). Returns a
/// dense community label per node, largest community first.
pub fn louvain(g: &Graph, resolution: f64, threshold: f64, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut adj = g.undirected();
    // node_of[original] = current super-node
    let mut node_of: Vec<usize> = (0..g.n).collect();
    let mut best_q = modularity(&adj, &(0..g.n).collect::<Vec<_>>(), resolution);
    loop {
        let n = adj.len();
        let deg = degrees(&adj);
        let m2: f64 = deg.iter().sum();
        if m2 == 0.0 {
            break;
        }
        let mut comm: Vec<usize> = (0..n).collect();
        let mut tot: Vec<f64> = deg.clone();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut improved = true;
        let mut moved_any = false;
        while improved {
            improved = false;
            for &u in &order {
                let cu = comm[u];
                let mut links: HashMap<usize, f64> = HashMap::new();
                for &(v, w) in &adj[u] {
                    if v != u {
                        *links.entry(comm[v]).or_insert(0.0) += w;
                    }
                }
                tot[cu] -= deg[u];
                let gain = |c: usize, k_in: f64| k_in - resolution * tot[c] * deg[u] / m2;
                let mut best_c = cu;
                let mut best_gain = gain(cu, *links.get(&cu).unwrap_or(&0.0));
                let mut cands: Vec<(&usize, &f64)> = links.iter().collect();
                cands.sort_by_key(|c| *c.0);
                for (&c, &k_in) in cands {
                    let gn = gain(c, k_in);
                    if gn > best_gain + 1e-12 {
                        best_gain = gn;
                        best_c = c;
                    }
                }
                tot[best_c] += deg[u];
                if best_c != cu {
                    comm[u] = best_c;
                    improved = true;
                    moved_any = true;
                }
            }
        }
        // Relabel densely and aggregate.
        let mut dense: HashMap<usize, usize> = HashMap::new();
        for c in &comm {
            let k = dense.len();
            dense.entry(*c).or_insert(k);
        }
        let lab: Vec<usize> = comm.iter().map(|c| dense[c]).collect();
        let q = modularity(&adj, &lab, resolution);
        if !moved_any || q - best_q <= threshold {
            if q > best_q {
                for x in node_of.iter_mut() {
                    *x = lab[*x];
                }
            }
            break;
        }
        best_q = q;
        for x in node_of.iter_mut() {
            *x = lab[*x];
        }
        let k = dense.len();
        let mut agg: Vec<HashMap<usize, f64>> = vec![HashMap::new(); k];
        for (u, a) in adj.iter().enumerate() {
            for &(v, w) in a {
                // Each undirected edge appears from both ends; self-loops once.
                if u <= v {
                    let (cu, cv) = (lab[u], lab[v]);
                    if cu == cv {
                        *agg[cu].entry(cu).or_insert(0.0) += w;
                    } else {
                        *agg[cu].entry(cv).or_insert(0.0) += w;
                        *agg[cv].entry(cu).or_insert(0.0) += w;
                    }
                }
            }
        }
        adj = agg.into_iter().map(sorted_adjacency).collect();
    }
    // Largest community first.
    let k = node_of.iter().max().map_or(0, |m| m + 1);
    let mut size = vec![0usize; k];
    for c in &node_of {
        size[*c] += 1;
    }
    let mut rank: Vec<usize> = (0..k).collect();
    rank.sort_by(|a, b| size[*b].cmp(&size[*a]).then(a.cmp(b)));
    let mut new_of = vec![0; k];
    for (i, c) in rank.into_iter().enumerate() {
        new_of[c] = i;
    }
    node_of.into_iter().map(|c| new_of[c]).collect()
}

/// Normalised mutual information between two labelings (arithmetic normalisation, as
/// scikit-learn's default): 1 for identical partitions, ~0 for unrelated ones.
pub fn nmi(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len() as f64;
    let mut ca: HashMap<usize, f64> = HashMap::new();
    let mut cb: HashMap<usize, f64> = HashMap::new();
    let mut cab: HashMap<(usize, usize), f64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *ca.entry(*x).or_default() += 1.0;
        *cb.entry(*y).or_default() += 1.0;
        *cab.entry((*x, *y)).or_default() += 1.0;
    }
    let h = |c: &HashMap<usize, f64>| -> f64 { c.values().map(|v| -(v / n) * (v / n).ln()).sum() };
    let mi: f64 = cab
        .iter()
        .map(|((x, y), v)| (v / n) * ((v / n) / ((ca[x] / n) * (cb[y] / n))).ln())
        .sum();
    let (ha, hb) = (h(&ca), h(&cb));
    if ha + hb == 0.0 {
        1.0
    } else {
        2.0 * mi / (ha + hb)
    }
}

/// One share: `from` sent something to `to` at `time` (any increasing unit) in `campaign`.
#[derive(Debug, Clone)]
pub struct Share {
    pub from: usize,
    pub to: Option<usize>,
    pub time: i64,
    pub campaign: String,
}

/// A cascade of one campaign: the share tree rooted at a customer who shared without having
/// received the campaign first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cascade {
    pub campaign: String,
    pub root: usize,
    /// Customers reached (recipients), the root excluded.
    pub reached: usize,
    pub depth: usize,
    /// The longest chain root → … → leaf.
    pub longest_path: Vec<usize>,
    /// (parent, child) hops.
    pub edges: Vec<(usize, usize)>,
}

/// Propagation paths: a share by A in a campaign continues the cascade that reached A in that
/// campaign most recently before it; otherwise A starts a new cascade.
pub fn cascades(shares: &[Share]) -> Vec<Cascade> {
    let mut by_c: HashMap<&str, Vec<&Share>> = HashMap::new();
    for s in shares {
        by_c.entry(&s.campaign).or_default().push(s);
    }
    let mut out = Vec::new();
    let mut camps: Vec<&&str> = by_c.keys().collect();
    camps.sort();
    for c in camps {
        let mut ss = by_c[*c].clone();
        ss.sort_by_key(|s| s.time);
        // reached_by[node] = (cascade index, depth) of the latest arrival.
        let mut reached: HashMap<usize, (usize, usize)> = HashMap::new();
        let mut cas: Vec<(Cascade, HashMap<usize, usize>)> = Vec::new();
        for s in ss {
            let (ci, d) = match reached.get(&s.from) {
                Some(&(ci, d)) => (ci, d),
                None => {
                    let mut parent = HashMap::new();
                    parent.insert(s.from, usize::MAX);
                    cas.push((
                        Cascade {
                            campaign: c.to_string(),
                            root: s.from,
                            reached: 0,
                            depth: 0,
                            longest_path: vec![s.from],
                            edges: Vec::new(),
                        },
                        parent,
                    ));
                    let ci = cas.len() - 1;
                    reached.insert(s.from, (ci, 0));
                    (ci, 0)
                }
            };
            let Some(to) = s.to else { continue };
            let (k, parent) = &mut cas[ci];
            if parent.contains_key(&to) {
                continue;
            }
            parent.insert(to, s.from);
            k.edges.push((s.from, to));
            k.reached += 1;
            if d + 1 > k.depth {
                k.depth = d + 1;
                let mut path = vec![to];
                let mut x = s.from;
                while x != usize::MAX {
                    path.push(x);
                    x = parent[&x];
                }
                path.reverse();
                k.longest_path = path;
            }
            reached.entry(to).or_insert((ci, d + 1));
        }
        out.extend(cas.into_iter().map(|c| c.0));
    }
    out
}

/// Influence maximisation on the independent-cascade model: each edge u→v of weight w passes
/// influence with probability 1 − (1 − p)^w. Spread is estimated on `samples` live-edge graphs
/// drawn once (common random numbers), and seeds are picked greedily with CELF's lazy updates.
/// Returns the seeds in pick order with the expected spread after each.
pub fn influence_max(g: &Graph, k: usize, p: f64, samples: usize, seed: u64) -> Vec<(usize, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Each sample's live edges as one bit per edge of `g` (edge i is u's j-th out-edge, i =
    // first[u] + j), and what the picks so far reach as one bit per node: at 404k nodes and
    // 200 samples a list of live targets per node and sample held 1.9 GB of empty lists.
    let mut first = Vec::with_capacity(g.n + 1);
    first.push(0usize);
    for o in &g.out {
        first.push(first[first.len() - 1] + o.len());
    }
    let mut live = Bits::new(samples, first[g.n]);
    for s in 0..samples {
        for (u, o) in g.out.iter().enumerate() {
            for (j, (_, w)) in o.iter().enumerate() {
                if rng.random::<f64>() < 1.0 - (1.0 - p).powf(*w) {
                    live.set(s, first[u] + j);
                }
            }
        }
    }
    let mut covered = Bits::new(samples, g.n);
    // Visit stamps instead of clearing a mark array per search.
    let mut stamp = vec![0u32; g.n];
    let mut epoch = 0u32;
    let mut queue: Vec<usize> = Vec::new();
    let mut reach = |covered: &Bits, u: usize| -> f64 {
        let mut total = 0usize;
        for s in 0..samples {
            if covered.get(s, u) {
                continue;
            }
            epoch += 1;
            queue.clear();
            queue.push(u);
            stamp[u] = epoch;
            let mut i = 0;
            while i < queue.len() {
                let x = queue[i];
                i += 1;
                for (j, &(y, _)) in g.out[x].iter().enumerate() {
                    if live.get(s, first[x] + j) && stamp[y] != epoch && !covered.get(s, y) {
                        stamp[y] = epoch;
                        queue.push(y);
                    }
                }
            }
            total += queue.len();
        }
        total as f64 / samples as f64
    };
    let mut spread = 0.0;
    let mut picks = Vec::new();
    // Upper bounds of marginal gains (CELF): start with each node's own spread.
    let mut heap: Vec<(f64, usize, usize)> = (0..g.n)
        .filter(|u| !g.out[*u].is_empty())
        .map(|u| (reach(&covered, u), u, 0))
        .collect();
    while picks.len() < k && !heap.is_empty() {
        heap.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let Some((gain, u, round)) = heap.pop() else {
            break;
        };
        if round == picks.len() {
            spread += gain;
            picks.push((u, spread));
            // Mark what u reaches in every sample as covered.
            for s in 0..samples {
                if covered.get(s, u) {
                    continue;
                }
                let mut stack = vec![u];
                covered.set(s, u);
                while let Some(x) = stack.pop() {
                    for (j, &(y, _)) in g.out[x].iter().enumerate() {
                        if live.get(s, first[x] + j) && !covered.get(s, y) {
                            covered.set(s, y);
                            stack.push(y);
                        }
                    }
                }
            }
        } else {
            heap.push((reach(&covered, u), u, picks.len()));
        }
    }
    picks
}

/// One row of `width` bits per sample.
struct Bits {
    words: usize,
    bits: Vec<u64>,
}

impl Bits {
    fn new(rows: usize, width: usize) -> Bits {
        let words = width.div_ceil(64);
        Bits {
            words,
            bits: vec![0; rows * words],
        }
    }

    fn get(&self, row: usize, i: usize) -> bool {
        self.bits[row * self.words + i / 64] >> (i % 64) & 1 == 1
    }

    fn set(&mut self, row: usize, i: usize) {
        self.bits[row * self.words + i / 64] |= 1 << (i % 64);
    }
}

/// Expected spread of a seed set under the same model, on fresh samples (to compare seed sets
/// fairly, e.g. greedy against top-PageRank).
pub fn spread_of(g: &Graph, seeds: &[usize], p: f64, samples: usize, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut total = 0usize;
    for _ in 0..samples {
        let mut mark = vec![false; g.n];
        let mut stack: Vec<usize> = Vec::new();
        for &s in seeds {
            if !mark[s] {
                mark[s] = true;
                stack.push(s);
            }
        }
        let mut n = stack.len();
        while let Some(x) = stack.pop() {
            for &(y, w) in &g.out[x] {
                if !mark[y] && rng.random::<f64>() < 1.0 - (1.0 - p).powf(w) {
                    mark[y] = true;
                    n += 1;
                    stack.push(y);
                }
            }
        }
        total += n;
    }
    total as f64 / samples as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascades_follow_receipt_before_share() {
        let s = |from, to, time| Share {
            from,
            to: Some(to),
            time,
            campaign: "C".into(),
        };
        // 0 -> 1 -> 2 -> 3, and 4 -> 5 independently; 2 shares to 6 before anyone reached 2
        // is impossible here, so 2's share at t=3 continues 0's cascade.
        let c = cascades(&[s(0, 1, 1), s(1, 2, 2), s(2, 3, 3), s(4, 5, 1), s(1, 7, 4)]);
        assert_eq!(c.len(), 2);
        let big = c.iter().find(|c| c.root == 0).unwrap();
        assert_eq!(big.reached, 4);
        assert_eq!(big.depth, 3);
        assert_eq!(big.longest_path, vec![0, 1, 2, 3]);
        // A share by someone before they were reached starts its own cascade.
        let c = cascades(&[s(1, 2, 1), s(0, 1, 2)]);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn adjacency_from_a_sorted_list_is_the_map_per_node() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for case in 0..40 {
            let n = rng.random_range(1..30);
            let m = rng.random_range(0..5 * n);
            let edges: Vec<(usize, usize, f64)> = (0..m)
                .map(|_| {
                    (
                        rng.random_range(0..n),
                        rng.random_range(0..n),
                        rng.random_range(-2.0..3.0),
                    )
                })
                .collect();
            let mut maps: Vec<HashMap<usize, f64>> = vec![HashMap::new(); n];
            for &(u, v, w) in &edges {
                *maps[u].entry(v).or_insert(0.0) += w;
            }
            let g = Graph::new(n, &edges);
            let want: Vec<_> = maps.into_iter().map(sorted_adjacency).collect();
            assert_eq!(g.out, want, "case {case}");
            let mut und: Vec<HashMap<usize, f64>> = vec![HashMap::new(); n];
            for (u, o) in g.out.iter().enumerate() {
                for &(v, w) in o {
                    *und[u].entry(v).or_insert(0.0) += w;
                    if u != v {
                        *und[v].entry(u).or_insert(0.0) += w;
                    }
                }
            }
            let want: Vec<_> = und.into_iter().map(sorted_adjacency).collect();
            assert_eq!(g.undirected(), want, "case {case}");
        }
    }

    /// The version that held each sample's live targets as a list per node (what
    /// [`influence_max`] computed before its bit sets).
    fn influence_max_nested(
        g: &Graph,
        k: usize,
        p: f64,
        samples: usize,
        seed: u64,
    ) -> Vec<(usize, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // live[s][u] = targets of u's live edges in sample s.
        let live: Vec<Vec<Vec<usize>>> = (0..samples)
            .map(|_| {
                g.out
                    .iter()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, w)| rng.random::<f64>() < 1.0 - (1.0 - p).powf(*w))
                            .map(|e| e.0)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let mut covered: Vec<Vec<bool>> = vec![vec![false; g.n]; samples];
        // Visit stamps instead of clearing a mark array per search.
        let mut stamp = vec![0u32; g.n];
        let mut epoch = 0u32;
        let mut queue: Vec<usize> = Vec::new();
        let mut reach = |covered: &Vec<Vec<bool>>, u: usize| -> f64 {
            let mut total = 0usize;
            for (s, l) in live.iter().enumerate() {
                if covered[s][u] {
                    continue;
                }
                epoch += 1;
                queue.clear();
                queue.push(u);
                stamp[u] = epoch;
                let mut i = 0;
                while i < queue.len() {
                    let x = queue[i];
                    i += 1;
                    for &y in &l[x] {
                        if stamp[y] != epoch && !covered[s][y] {
                            stamp[y] = epoch;
                            queue.push(y);
                        }
                    }
                }
                total += queue.len();
            }
            total as f64 / samples as f64
        };
        let mut spread = 0.0;
        let mut picks = Vec::new();
        // Upper bounds of marginal gains (CELF): start with each node's own spread.
        let mut heap: Vec<(f64, usize, usize)> = (0..g.n)
            .filter(|u| !g.out[*u].is_empty())
            .map(|u| (reach(&covered, u), u, 0))
            .collect();
        while picks.len() < k && !heap.is_empty() {
            heap.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
            let Some((gain, u, round)) = heap.pop() else {
                break;
            };
            if round == picks.len() {
                spread += gain;
                picks.push((u, spread));
                // Mark what u reaches in every sample as covered.
                for (s, l) in live.iter().enumerate() {
                    if covered[s][u] {
                        continue;
                    }
                    let mut stack = vec![u];
                    covered[s][u] = true;
                    while let Some(x) = stack.pop() {
                        for &y in &l[x] {
                            if !covered[s][y] {
                                covered[s][y] = true;
                                stack.push(y);
                            }
                        }
                    }
                }
            } else {
                heap.push((reach(&covered, u), u, picks.len()));
            }
        }
        picks
    }

    #[test]
    fn influence_max_on_bit_sets_picks_what_the_lists_picked() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for case in 0..30 {
            let n = rng.random_range(1..60);
            let m = rng.random_range(0..4 * n);
            let edges: Vec<(usize, usize, f64)> = (0..m)
                .map(|_| {
                    (
                        rng.random_range(0..n),
                        rng.random_range(0..n),
                        rng.random_range(1..4) as f64,
                    )
                })
                .collect();
            let g = Graph::new(n, &edges);
            let p = [0.05, 0.1, 0.3, 1.0][case % 4];
            let k = rng.random_range(1..6);
            assert_eq!(
                influence_max(&g, k, p, 40, case as u64),
                influence_max_nested(&g, k, p, 40, case as u64),
                "case {case}"
            );
        }
    }

    #[test]
    fn influence_max_picks_hubs_of_separate_stars() {
        // Two stars (hubs 0 and 10) and a chain; with p = 1 everything a hub reaches is sure.
        let mut e = Vec::new();
        for v in 1..10 {
            e.push((0, v, 1.0));
        }
        for v in 11..16 {
            e.push((10, v, 1.0));
        }
        e.push((16, 17, 1.0));
        let g = Graph::new(18, &e);
        let picks = influence_max(&g, 2, 1.0, 5, 1);
        assert_eq!(picks[0], (0, 10.0));
        assert_eq!(picks[1], (10, 16.0));
        assert_eq!(spread_of(&g, &[0, 10], 1.0, 3, 2), 16.0);
    }
}
