//! Machine-learned segments on scaled per-customer features: k-means (k-means++ seeding,
//! Lloyd iterations, k chosen by silhouette on a sample) and DBSCAN, each cluster explained in
//! words by the features that set it apart. Deterministic under a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Row-major feature matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Matrix {
        assert_eq!(data.len(), rows * cols);
        Matrix { rows, cols, data }
    }
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Column means and standard deviations, and the standardised matrix.
pub fn standardize(m: &Matrix) -> (Matrix, Vec<f64>, Vec<f64>) {
    let n = m.rows as f64;
    let mut mean = vec![0.0; m.cols];
    for i in 0..m.rows {
        for (j, v) in m.row(i).iter().enumerate() {
            mean[j] += v / n;
        }
    }
    let mut sd = vec![0.0; m.cols];
    for i in 0..m.rows {
        for (j, v) in m.row(i).iter().enumerate() {
            sd[j] += (v - mean[j]).powi(2) / n;
        }
    }
    let sd: Vec<f64> = sd
        .iter()
        .map(|v| if *v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    let data = m
        .data
        .chunks(m.cols)
        .flat_map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, v)| (v - mean[j]) / sd[j])
                .collect::<Vec<_>>()
        })
        .collect();
    (Matrix::new(m.rows, m.cols, data), mean, sd)
}

fn d2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[derive(Debug, Clone, Serialize)]
pub struct KMeans {
    pub k: usize,
    pub centroids: Vec<Vec<f64>>,
    pub labels: Vec<usize>,
    /// Sum of squared distances to the assigned centroid.
    pub inertia: f64,
    pub iterations: usize,
}

fn nearest(c: &[Vec<f64>], x: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, cj) in c.iter().enumerate() {
        let d = d2(cj, x);
        if d < best.1 {
            best = (j, d);
        }
    }
    best
}

/// k-means with k-means++ seeding; the best of `n_init` seeded restarts by inertia.
pub fn kmeans(x: &Matrix, k: usize, n_init: usize, max_iter: usize, seed: u64) -> KMeans {
    assert!(k >= 1 && x.rows >= k, "need at least k rows");
    let mut best: Option<KMeans> = None;
    for init in 0..n_init.max(1) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(init as u64 * 7919));
        // k-means++: each next centre drawn proportionally to squared distance to the nearest.
        let mut c: Vec<Vec<f64>> = vec![x.row(rng.random_range(0..x.rows)).to_vec()];
        let mut dist: Vec<f64> = (0..x.rows)
            .into_par_iter()
            .map(|i| d2(x.row(i), &c[0]))
            .collect();
        // Greedy k-means++ (as scikit-learn): draw 2 + ln k candidates per step, keep the one
        // that lowers the total squared distance most.
        let tries = 2 + (k as f64).ln() as usize;
        while c.len() < k {
            let total: f64 = dist.iter().sum();
            let mut best: Option<(f64, usize, Vec<f64>)> = None;
            for _ in 0..tries {
                let mut r = rng.random::<f64>() * total;
                let mut pick = x.rows - 1;
                for (i, d) in dist.iter().enumerate() {
                    if r < *d {
                        pick = i;
                        break;
                    }
                    r -= d;
                }
                let cand = x.row(pick);
                let nd: Vec<f64> = (0..x.rows)
                    .into_par_iter()
                    .map(|i| dist[i].min(d2(x.row(i), cand)))
                    .collect();
                let pot: f64 = nd.iter().sum();
                if best.as_ref().is_none_or(|b| pot < b.0) {
                    best = Some((pot, pick, nd));
                }
            }
            let (_, pick, nd) = best.expect("k-means++ draws at least one candidate");
            c.push(x.row(pick).to_vec());
            dist = nd;
        }
        let mut labels = vec![0usize; x.rows];
        let mut inertia = f64::INFINITY;
        let mut it = 0;
        while it < max_iter {
            it += 1;
            let assigned: Vec<(usize, f64)> = (0..x.rows)
                .into_par_iter()
                .map(|i| nearest(&c, x.row(i)))
                .collect();
            let new_inertia: f64 = assigned.iter().map(|a| a.1).sum();
            labels = assigned.iter().map(|a| a.0).collect();
            let mut sums = vec![vec![0.0; x.cols]; k];
            let mut counts = vec![0usize; k];
            for (i, l) in labels.iter().enumerate() {
                counts[*l] += 1;
                for (s, v) in sums[*l].iter_mut().zip(x.row(i)) {
                    *s += v;
                }
            }
            for j in 0..k {
                if counts[j] > 0 {
                    c[j] = sums[j].iter().map(|s| s / counts[j] as f64).collect();
                } else {
                    // An empty cluster takes the point farthest from its centre.
                    let far = (0..x.rows)
                        .max_by(|a, b| assigned[*a].1.total_cmp(&assigned[*b].1))
                        .expect("k-means runs on at least one row");
                    c[j] = x.row(far).to_vec();
                }
            }
            let done = (inertia - new_inertia).abs() <= 1e-6 * new_inertia.max(1e-12);
            inertia = new_inertia;
            if done {
                break;
            }
        }
        let run = KMeans {
            k,
            centroids: c,
            labels,
            inertia,
            iterations: it,
        };
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    best.expect("at least one k-means start")
}

/// Mean silhouette of a labelling, on at most `sample` rows (seeded).
pub fn silhouette(x: &Matrix, labels: &[usize], k: usize, sample: usize, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let idx: Vec<usize> = if x.rows <= sample {
        (0..x.rows).collect()
    } else {
        (0..sample).map(|_| rng.random_range(0..x.rows)).collect()
    };
    let s: Vec<f64> = idx
        .par_iter()
        .map(|&i| {
            let mut sum = vec![0.0; k];
            let mut cnt = vec![0usize; k];
            for &j in &idx {
                if i != j {
                    sum[labels[j]] += d2(x.row(i), x.row(j)).sqrt();
                    cnt[labels[j]] += 1;
                }
            }
            let own = labels[i];
            if cnt[own] == 0 {
                return 0.0;
            }
            let a = sum[own] / cnt[own] as f64;
            let b = (0..k)
                .filter(|c| *c != own && cnt[*c] > 0)
                .map(|c| sum[c] / cnt[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if !b.is_finite() {
                return 0.0;
            }
            (b - a) / a.max(b)
        })
        .collect();
    s.iter().sum::<f64>() / s.len() as f64
}

/// Fits k in `ks` and keeps the one with the best silhouette.
pub fn choose_k(x: &Matrix, ks: &[usize], seed: u64) -> (KMeans, Vec<(usize, f64)>) {
    let mut scores = Vec::new();
    let mut best: Option<(KMeans, f64)> = None;
    for &k in ks {
        let m = kmeans(x, k, 3, 100, seed);
        let s = silhouette(x, &m.labels, k, 3000, seed);
        scores.push((k, s));
        if best.as_ref().is_none_or(|b| s > b.1) {
            best = Some((m, s));
        }
    }
    (best.expect("choose_k is given at least one k").0, scores)
}

/// DBSCAN labels: `Some(cluster)` or `None` for noise. Exact neighbourhoods (O(n²/threads)),
/// meant for up to tens of thousands of rows; larger sets are clustered on a seeded sample and
/// the rest joins the cluster of its nearest core point within `eps`.
pub fn dbscan(
    x: &Matrix,
    eps: f64,
    min_pts: usize,
    max_exact: usize,
    seed: u64,
) -> Vec<Option<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sample: Vec<usize> = if x.rows <= max_exact {
        (0..x.rows).collect()
    } else {
        let mut v: Vec<usize> = (0..x.rows).collect();
        for i in 0..max_exact {
            let j = rng.random_range(i..x.rows);
            v.swap(i, j);
        }
        v.truncate(max_exact);
        v.sort();
        v
    };
    let e2 = eps * eps;
    let neigh: Vec<Vec<usize>> = sample
        .par_iter()
        .map(|&i| {
            (0..sample.len())
                .filter(|&b| d2(x.row(i), x.row(sample[b])) <= e2)
                .collect()
        })
        .collect();
    let core: Vec<bool> = neigh.iter().map(|n| n.len() >= min_pts).collect();
    let mut lab: Vec<Option<usize>> = vec![None; sample.len()];
    let mut next = 0;
    for s in 0..sample.len() {
        if !core[s] || lab[s].is_some() {
            continue;
        }
        lab[s] = Some(next);
        let mut stack = vec![s];
        while let Some(p) = stack.pop() {
            for &q in &neigh[p] {
                if lab[q].is_none() {
                    lab[q] = Some(next);
                    if core[q] {
                        stack.push(q);
                    }
                }
            }
        }
        next += 1;
    }
    let mut out: Vec<Option<usize>> = vec![None; x.rows];
    for (s, &i) in sample.iter().enumerate() {
        out[i] = lab[s];
    }
    if sample.len() < x.rows {
        let cores: Vec<usize> = (0..sample.len()).filter(|s| core[*s]).collect();
        let in_sample: std::collections::HashSet<usize> = sample.iter().copied().collect();
        let rest: Vec<(usize, Option<usize>)> = (0..x.rows)
            .into_par_iter()
            .filter(|i| !in_sample.contains(i))
            .map(|i| {
                let best = cores
                    .iter()
                    .map(|&c| (c, d2(x.row(i), x.row(sample[c]))))
                    .filter(|(_, d)| *d <= e2)
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                (i, best.and_then(|(c, _)| lab[c]))
            })
            .collect();
        for (i, l) in rest {
            out[i] = l;
        }
    }
    out
}

/// What sets one cluster apart: its share of everyone and up to three features whose cluster
/// mean is at least half a standard deviation from the overall mean (standardised scale),
/// strongest first. Structured so each reader words it in its own language.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ClusterTraits {
    /// Share of all customers in the cluster (0..1).
    pub share: f64,
    /// (feature, cluster mean in standard deviations), strongest first.
    pub traits: Vec<Trait>,
}

/// One distinguishing feature of a cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Trait {
    pub feature: String,
    /// The cluster's mean of the standardised feature (signed).
    pub z: f64,
}

impl ClusterTraits {
    /// The English sentence the API and the LLM facts use.
    pub fn words(&self) -> String {
        let share = 100.0 * self.share;
        if self.traits.is_empty() {
            return format!("{share:.0}% of customers, close to average on every feature");
        }
        let words: Vec<String> = self
            .traits
            .iter()
            .map(|t| {
                format!(
                    "{} {} ({:+.1} sd)",
                    if t.z > 0.0 { "high" } else { "low" },
                    t.feature,
                    t.z
                )
            })
            .collect();
        format!("{share:.0}% of customers: {}", words.join(", "))
    }
}

/// What sets each cluster apart (see [`ClusterTraits`]); None for an empty cluster.
pub fn traits(
    x: &Matrix,
    labels: &[Option<usize>],
    names: &[&str],
    k: usize,
) -> Vec<Option<ClusterTraits>> {
    (0..k)
        .map(|c| {
            let members: Vec<usize> = (0..x.rows).filter(|i| labels[*i] == Some(c)).collect();
            if members.is_empty() {
                return None;
            }
            let mut z: Vec<(f64, usize)> = (0..x.cols)
                .map(|j| {
                    (
                        members.iter().map(|i| x.row(*i)[j]).sum::<f64>() / members.len() as f64,
                        j,
                    )
                })
                .collect();
            z.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
            Some(ClusterTraits {
                share: members.len() as f64 / x.rows as f64,
                traits: z
                    .iter()
                    .filter(|(v, _)| v.abs() >= 0.5)
                    .take(3)
                    .map(|(v, j)| Trait {
                        feature: names[*j].to_string(),
                        z: *v,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Words for what sets each cluster apart ([`ClusterTraits::words`]; "empty" for none).
pub fn explain(x: &Matrix, labels: &[Option<usize>], names: &[&str], k: usize) -> Vec<String> {
    traits(x, labels, names, k)
        .iter()
        .map(|t| {
            t.as_ref()
                .map_or_else(|| "empty".into(), ClusterTraits::words)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn blobs(seed: u64) -> (Matrix, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [
            [0.0, 0.0, 0.0],
            [6.0, 6.0, 0.0],
            [0.0, 6.0, 6.0],
            [6.0, 0.0, 6.0],
        ];
        let nrm = Normal::new(0.0, 0.7).unwrap();
        let mut data = Vec::new();
        let mut truth = Vec::new();
        for i in 0..2000 {
            let c = i % 4;
            truth.push(c);
            for v in centres[c] {
                data.push(v + nrm.sample(&mut rng));
            }
        }
        (Matrix::new(2000, 3, data), truth)
    }

    /// Share of pairs on which two labellings agree (Rand index).
    fn rand_index(a: &[usize], b: &[usize]) -> f64 {
        let (mut agree, mut total) = (0u64, 0u64);
        for i in (0..a.len()).step_by(7) {
            for j in (i + 1..a.len()).step_by(11) {
                total += 1;
                if (a[i] == a[j]) == (b[i] == b[j]) {
                    agree += 1;
                }
            }
        }
        agree as f64 / total as f64
    }

    #[test]
    fn kmeans_finds_the_blobs_and_silhouette_picks_k() {
        let (x, truth) = blobs(1);
        let (m, scores) = choose_k(&x, &[2, 3, 4, 5, 6], 7);
        assert_eq!(m.k, 4, "{scores:?}");
        assert!(rand_index(&m.labels, &truth) > 0.99);
        // Deterministic under the seed.
        let again = kmeans(&x, 4, 3, 100, 7);
        assert_eq!(again.labels, kmeans(&x, 4, 3, 100, 7).labels);
    }

    #[test]
    fn dbscan_separates_blobs_from_noise() {
        let (mut x, truth) = blobs(2);
        // Far-away outliers.
        for i in 0..5 {
            x.data.extend([40.0 + 10.0 * i as f64, -40.0, 40.0]);
            x.rows += 1;
        }
        let lab = dbscan(&x, 1.0, 8, 5000, 3);
        assert!(
            lab[2000..].iter().all(|l| l.is_none()),
            "outliers are noise"
        );
        let found: std::collections::HashSet<usize> = lab.iter().flatten().copied().collect();
        assert_eq!(found.len(), 4);
        let l: Vec<usize> = lab[..2000].iter().map(|l| l.unwrap_or(99)).collect();
        assert!(rand_index(&l, &truth) > 0.97);
        // The sampled path agrees with the exact one.
        let sampled = dbscan(&x, 1.0, 4, 800, 3);
        let found2: std::collections::HashSet<usize> = sampled.iter().flatten().copied().collect();
        assert_eq!(found2.len(), 4);
    }

    #[test]
    fn explanations_name_the_distinguishing_features() {
        let (x, _) = blobs(3);
        let (z, _, _) = standardize(&x);
        let m = kmeans(&z, 4, 3, 100, 1);
        let lab: Vec<Option<usize>> = m.labels.iter().map(|l| Some(*l)).collect();
        let words = explain(&z, &lab, &["recency", "frequency", "spend"], 4);
        assert!(
            words
                .iter()
                .all(|w| w.contains("high") || w.contains("low")),
            "{words:?}"
        );
    }
}
