//! Churn: a gradient-boosted tree classifier (histogram splits, logistic loss, second-order
//! leaf values) with Platt calibration, and the scores that judge it — AUC, Brier score,
//! a reliability table and lift in the top decile.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::segment::Matrix;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GbtParams {
    pub trees: usize,
    pub depth: usize,
    pub learning_rate: f64,
    pub min_leaf: usize,
    pub l2: f64,
    pub bins: usize,
}

impl Default for GbtParams {
    fn default() -> Self {
        GbtParams {
            trees: 150,
            depth: 4,
            learning_rate: 0.08,
            min_leaf: 30,
            l2: 1.0,
            bins: 32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        threshold: f64,
        left: Box<Node>,
        right: Box<Node>,
    },
}

impl Node {
    fn eval(&self, x: &[f64]) -> f64 {
        match self {
            Node::Leaf(v) => *v,
            Node::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                if x[*feature] <= *threshold {
                    left.eval(x)
                } else {
                    right.eval(x)
                }
            }
        }
    }
}

/// A fitted model: trees plus Platt calibration `p = σ(a·margin + b)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gbt {
    base: f64,
    lr: f64,
    trees: Vec<Node>,
    pub calib_a: f64,
    pub calib_b: f64,
    /// Total split gain per feature (importance).
    pub importance: Vec<f64>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Quantile cut points per feature.
fn cuts(x: &Matrix, bins: usize) -> Vec<Vec<f64>> {
    (0..x.cols)
        .into_par_iter()
        .map(|j| {
            let mut v: Vec<f64> = (0..x.rows).map(|i| x.row(i)[j]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let mut c: Vec<f64> = (1..bins)
                .map(|b| v[(b * v.len() / bins).min(v.len() - 1)])
                .collect();
            c.dedup();
            c
        })
        .collect()
}

fn bin_of(c: &[f64], v: f64) -> u8 {
    c.partition_point(|t| *t < v) as u8
}

struct Ctx<'a> {
    binned: &'a [Vec<u8>], // per feature, per row
    cuts: &'a [Vec<f64>],
    g: &'a [f64],
    h: &'a [f64],
    p: &'a GbtParams,
}

fn build(ctx: &Ctx, rows: &[usize], depth: usize, imp: &mut [f64]) -> Node {
    let (gs, hs): (f64, f64) = rows
        .iter()
        .fold((0.0, 0.0), |a, &i| (a.0 + ctx.g[i], a.1 + ctx.h[i]));
    let leaf = Node::Leaf(-gs / (hs + ctx.p.l2));
    if depth == 0 || rows.len() < 2 * ctx.p.min_leaf {
        return leaf;
    }
    let parent = gs * gs / (hs + ctx.p.l2);
    // Best split per feature from gradient histograms.
    let best = (0..ctx.binned.len())
        .into_par_iter()
        .map(|f| {
            let nb = ctx.cuts[f].len() + 1;
            let mut hg = vec![0.0; nb];
            let mut hh = vec![0.0; nb];
            let mut hc = vec![0usize; nb];
            for &i in rows {
                let b = ctx.binned[f][i] as usize;
                hg[b] += ctx.g[i];
                hh[b] += ctx.h[i];
                hc[b] += 1;
            }
            let (mut gl, mut hl, mut cl) = (0.0, 0.0, 0usize);
            let mut best: Option<(f64, usize, usize)> = None;
            for b in 0..nb - 1 {
                gl += hg[b];
                hl += hh[b];
                cl += hc[b];
                let cr = rows.len() - cl;
                if cl < ctx.p.min_leaf || cr < ctx.p.min_leaf {
                    continue;
                }
                let (gr, hr) = (gs - gl, hs - hl);
                let gain = gl * gl / (hl + ctx.p.l2) + gr * gr / (hr + ctx.p.l2) - parent;
                if best.is_none_or(|x| gain > x.0) {
                    best = Some((gain, f, b));
                }
            }
            best
        })
        .flatten()
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let Some((gain, f, b)) = best.filter(|x| x.0 > 1e-9) else {
        return leaf;
    };
    imp[f] += gain;
    let (l, r): (Vec<usize>, Vec<usize>) = rows
        .iter()
        .partition(|&&i| (ctx.binned[f][i] as usize) <= b);
    Node::Split {
        feature: f,
        threshold: ctx.cuts[f][b],
        left: Box::new(build(ctx, &l, depth - 1, imp)),
        right: Box::new(build(ctx, &r, depth - 1, imp)),
    }
}

impl Gbt {
    /// Fits trees on (x, y), then calibrates on (xc, yc) — a later period, not the training rows.
    pub fn fit(x: &Matrix, y: &[bool], xc: &Matrix, yc: &[bool], p: &GbtParams) -> Gbt {
        let cuts = cuts(x, p.bins);
        let binned: Vec<Vec<u8>> = (0..x.cols)
            .into_par_iter()
            .map(|j| (0..x.rows).map(|i| bin_of(&cuts[j], x.row(i)[j])).collect())
            .collect();
        let pos = y.iter().filter(|v| **v).count() as f64;
        let prior = (pos + 1.0) / (y.len() as f64 + 2.0);
        let base = (prior / (1.0 - prior)).ln();
        let mut margin = vec![base; x.rows];
        let mut trees = Vec::with_capacity(p.trees);
        let mut importance = vec![0.0; x.cols];
        let all: Vec<usize> = (0..x.rows).collect();
        for _ in 0..p.trees {
            let (g, h): (Vec<f64>, Vec<f64>) = margin
                .par_iter()
                .zip(y)
                .map(|(m, yi)| {
                    let q = sigmoid(*m);
                    (q - if *yi { 1.0 } else { 0.0 }, (q * (1.0 - q)).max(1e-12))
                })
                .unzip();
            let ctx = Ctx {
                binned: &binned,
                cuts: &cuts,
                g: &g,
                h: &h,
                p,
            };
            let t = build(&ctx, &all, p.depth, &mut importance);
            margin
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, m)| *m += p.lr_eval(&t, x.row(i)));
            trees.push(t);
        }
        let mut m = Gbt {
            base,
            lr: p.learning_rate,
            trees,
            calib_a: 1.0,
            calib_b: 0.0,
            importance,
        };
        let zc: Vec<f64> = (0..xc.rows).map(|i| m.margin(xc.row(i))).collect();
        let (a, b) = platt(&zc, yc);
        m.calib_a = a;
        m.calib_b = b;
        m
    }

    fn margin(&self, x: &[f64]) -> f64 {
        self.base + self.trees.iter().map(|t| self.lr * t.eval(x)).sum::<f64>()
    }

    /// Calibrated probability of the positive class.
    pub fn predict(&self, x: &[f64]) -> f64 {
        sigmoid(self.calib_a * self.margin(x) + self.calib_b)
    }
}

impl GbtParams {
    fn lr_eval(&self, t: &Node, x: &[f64]) -> f64 {
        self.learning_rate * t.eval(x)
    }
}

/// Platt scaling by Newton's method on the log-loss.
pub fn platt(z: &[f64], y: &[bool]) -> (f64, f64) {
    let (mut a, mut b) = (1.0, 0.0);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (zi, yi) in z.iter().zip(y) {
            let p = sigmoid(a * zi + b);
            let r = p - if *yi { 1.0 } else { 0.0 };
            let w = p * (1.0 - p);
            ga += r * zi;
            gb += r;
            haa += w * zi * zi;
            hab += w * zi;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-10 {
            break;
        }
    }
    (a, b)
}

/// How good a probability score is on labelled outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    pub n: usize,
    pub base_rate: f64,
    pub auc: f64,
    pub brier: f64,
    /// Positive rate in the top 10% of scores divided by the base rate.
    pub lift_top10: f64,
    /// (mean predicted, observed rate, count) per decile of the score.
    pub reliability: Vec<(f64, f64, usize)>,
}

/// 0-based ranks with ties given their average rank (the ranks AUC and Spearman use).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let rank_sum: f64 = average_ranks(scores)
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r + 1.0)
        .sum();
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

pub fn scorecard(p: &[f64], y: &[bool]) -> Scorecard {
    let n = p.len();
    let base_rate = y.iter().filter(|v| **v).count() as f64 / n.max(1) as f64;
    let brier = p
        .iter()
        .zip(y)
        .map(|(pi, yi)| (pi - if *yi { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / n.max(1) as f64;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let top = (n / 10).max(1);
    let top_rate = idx[..top.min(n)].iter().filter(|i| y[**i]).count() as f64 / top as f64;
    let mut reliability = Vec::new();
    for d in 0..10 {
        let part = &idx[d * n / 10..(d + 1) * n / 10];
        if part.is_empty() {
            continue;
        }
        let mp = part.iter().map(|i| p[*i]).sum::<f64>() / part.len() as f64;
        let or = part.iter().filter(|i| y[**i]).count() as f64 / part.len() as f64;
        reliability.push((mp, or, part.len()));
    }
    Scorecard {
        n,
        base_rate,
        auc: auc(p, y),
        brier,
        lift_top10: if base_rate > 0.0 {
            top_rate / base_rate
        } else {
            0.0
        },
        reliability,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, seed: u64) -> (Matrix, Vec<bool>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut v = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b, c): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
            // Non-linear truth: an interaction and a threshold.
            let z = 3.0 * (a - 0.5) * (b - 0.5) * 4.0 + if c > 0.7 { 1.5 } else { -0.5 };
            y.push(rng.random::<f64>() < 1.0 / (1.0 + (-z).exp()));
            v.extend([a, b, c]);
        }
        (Matrix::new(n, 3, v), y)
    }

    #[test]
    fn learns_nonlinear_signal_and_is_calibrated() {
        let (x, y) = data(20_000, 1);
        let (xc, yc) = data(5_000, 2);
        let (xt, yt) = data(10_000, 3);
        let m = Gbt::fit(&x, &y, &xc, &yc, &GbtParams::default());
        let p: Vec<f64> = (0..xt.rows).map(|i| m.predict(xt.row(i))).collect();
        let s = scorecard(&p, &yt);
        assert!(s.auc > 0.72, "{s:?}");
        for (mp, or, _) in &s.reliability {
            assert!((mp - or).abs() < 0.08, "calibration {s:?}");
        }
        assert!(s.lift_top10 > 1.5);
        // The irrelevant-looking but real features all matter.
        assert!(m.importance.iter().all(|v| *v > 0.0));
    }
}
