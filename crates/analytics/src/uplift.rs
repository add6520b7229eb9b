//! Uplift modelling: which customers a campaign actually changes. A T-learner (one ridge
//! regression per arm on standardised features, their squares and pairwise products) estimates
//! each customer's incremental outcome; the Qini curve measures how well a ranking finds the
//! customers with real uplift, on a randomised campaign's results.
//!
//! Pure computation on plain vectors. What it is not: a propensity model — the campaign's
//! holdout is randomised, so the arms are comparable without one.

/// Expands raw features into [1, x, x², xᵢxⱼ] after standardising with the training moments.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Expander {
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl Expander {
    pub fn fit(x: &[Vec<f64>]) -> Expander {
        let k = x.first().map_or(0, Vec::len);
        let n = x.len().max(1) as f64;
        let mut mean = vec![0.0; k];
        for r in x {
            for j in 0..k {
                mean[j] += r[j] / n;
            }
        }
        let mut sd = vec![0.0; k];
        for r in x {
            for j in 0..k {
                sd[j] += (r[j] - mean[j]).powi(2) / n;
            }
        }
        let sd = sd.into_iter().map(|v| v.sqrt().max(1e-9)).collect();
        Expander { mean, sd }
    }
    pub fn row(&self, r: &[f64]) -> Vec<f64> {
        let z: Vec<f64> = r
            .iter()
            .enumerate()
            .map(|(j, v)| (v - self.mean[j]) / self.sd[j])
            .collect();
        let mut out = Vec::with_capacity(1 + 2 * z.len() + z.len() * z.len() / 2);
        out.push(1.0);
        out.extend(&z);
        for i in 0..z.len() {
            for j in i..z.len() {
                out.push(z[i] * z[j]);
            }
        }
        out
    }
}

/// Ridge regression by the normal equations (Cholesky); the intercept is not penalised.
#[allow(clippy::needless_range_loop)] // index loops read like the algebra
pub fn ridge(x: &[Vec<f64>], y: &[f64], l2: f64) -> Vec<f64> {
    let k = x.first().map_or(0, Vec::len);
    let mut a = vec![vec![0.0; k]; k];
    let mut b = vec![0.0; k];
    for (r, yy) in x.iter().zip(y) {
        for i in 0..k {
            b[i] += r[i] * yy;
            for j in 0..=i {
                a[i][j] += r[i] * r[j];
            }
        }
    }
    for i in 1..k {
        a[i][i] += l2;
    }
    a[0][0] += 1e-9;
    for i in 0..k {
        for j in 0..i {
            a[j][i] = a[i][j];
        }
    }
    solve_spd(a, b)
}

/// Solves A w = b for symmetric positive definite A (Cholesky).
#[allow(clippy::needless_range_loop)]
fn solve_spd(mut a: Vec<Vec<f64>>, b: Vec<f64>) -> Vec<f64> {
    let k = b.len();
    for j in 0..k {
        let mut d = a[j][j];
        for p in 0..j {
            d -= a[j][p] * a[j][p];
        }
        let d = d.max(1e-12).sqrt();
        a[j][j] = d;
        for i in j + 1..k {
            let mut s = a[i][j];
            for p in 0..j {
                s -= a[i][p] * a[j][p];
            }
            a[i][j] = s / d;
        }
    }
    let mut z = vec![0.0; k];
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= a[i][p] * z[p];
        }
        z[i] = s / a[i][i];
    }
    let mut w = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = z[i];
        for p in i + 1..k {
            s -= a[p][i] * w[p];
        }
        w[i] = s / a[i][i];
    }
    w
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The T-learner: E[y | x, treated] − E[y | x, control].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TLearner {
    pub expander: Expander,
    pub w_treated: Vec<f64>,
    pub w_control: Vec<f64>,
    pub n_treated: usize,
    pub n_control: usize,
}

impl TLearner {
    /// Fits on a randomised campaign's rows: features, whether treated, outcome.
    pub fn fit(x: &[Vec<f64>], treated: &[bool], y: &[f64], l2: f64) -> TLearner {
        let expander = Expander::fit(x);
        let rows: Vec<Vec<f64>> = x.iter().map(|r| expander.row(r)).collect();
        let pick = |t: bool| {
            let (xs, ys): (Vec<Vec<f64>>, Vec<f64>) = rows
                .iter()
                .zip(treated)
                .zip(y)
                .filter(|((_, tr), _)| **tr == t)
                .map(|((r, _), yy)| (r.clone(), *yy))
                .unzip();
            (ridge(&xs, &ys, l2), xs.len())
        };
        let (w_treated, n_treated) = pick(true);
        let (w_control, n_control) = pick(false);
        TLearner {
            expander,
            w_treated,
            w_control,
            n_treated,
            n_control,
        }
    }
    pub fn uplift(&self, x: &[f64]) -> f64 {
        let r = self.expander.row(x);
        dot(&r, &self.w_treated) - dot(&r, &self.w_control)
    }
}

/// One point of a Qini curve: after targeting the top `share` of customers by score, the
/// incremental outcome gained (treated outcome − control outcome scaled to the treated count).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct QiniPoint {
    #[schema(value_type = Option<f64>)]
    pub share: f64,
    #[schema(value_type = Option<f64>)]
    pub gain: f64,
}

/// The Qini curve of a ranking (higher score = target first) on randomised data, in `steps`
/// points, and the Qini coefficient: area between the curve and the random-targeting line,
/// divided by the total gain (so 0 = no better than random).
pub fn qini(score: &[f64], treated: &[bool], y: &[f64], steps: usize) -> (Vec<QiniPoint>, f64) {
    let n = score.len();
    let mut ix: Vec<usize> = (0..n).collect();
    ix.sort_by(|a, b| score[*b].total_cmp(&score[*a]));
    let (mut nt, mut nc, mut yt, mut yc) = (0.0, 0.0, 0.0, 0.0);
    let mut pts = vec![QiniPoint {
        share: 0.0,
        gain: 0.0,
    }];
    let step = (n / steps.max(1)).max(1);
    for (k, &i) in ix.iter().enumerate() {
        if treated[i] {
            nt += 1.0;
            yt += y[i];
        } else {
            nc += 1.0;
            yc += y[i];
        }
        if (k + 1) % step == 0 || k + 1 == n {
            let gain = yt - if nc > 0.0 { yc * nt / nc } else { 0.0 };
            pts.push(QiniPoint {
                share: (k + 1) as f64 / n as f64,
                gain,
            });
        }
    }
    let total = pts.last().map_or(0.0, |p| p.gain);
    let mut area = 0.0;
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let ra = total * a.share;
        let rb = total * b.share;
        area += (b.share - a.share) * ((a.gain - ra) + (b.gain - rb)) / 2.0;
    }
    let coef = if total.abs() > 0.0 {
        area / total.abs()
    } else {
        0.0
    };
    (pts, coef)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_learner_finds_a_heterogeneous_effect() {
        // Effect only where x0 > 0; outcome noise is deterministic but irregular.
        let mut x = Vec::new();
        let mut t = Vec::new();
        let mut y = Vec::new();
        for i in 0..4000 {
            let a = ((i * 7919) % 1000) as f64 / 500.0 - 1.0;
            let b = ((i * 104_729) % 997) as f64 / 498.5 - 1.0;
            let tr = (i * 31) % 2 == 0;
            let noise = (((i * 2_654_435_761u64 as usize) % 1000) as f64 / 1000.0 - 0.5) * 0.5;
            let eff = if a > 0.0 { 2.0 * a } else { 0.0 };
            x.push(vec![a, b]);
            t.push(tr);
            y.push(1.0 + b + noise + if tr { eff } else { 0.0 });
        }
        let m = TLearner::fit(&x, &t, &y, 1.0);
        assert!(m.uplift(&[0.8, 0.0]) > 1.0, "{}", m.uplift(&[0.8, 0.0]));
        assert!(
            m.uplift(&[-0.8, 0.0]).abs() < 0.5,
            "{}",
            m.uplift(&[-0.8, 0.0])
        );
        let s: Vec<f64> = x.iter().map(|r| m.uplift(r)).collect();
        let (_, q_model) = qini(&s, &t, &y, 20);
        let rnd: Vec<f64> = (0..x.len()).map(|i| ((i * 48_271) % 4001) as f64).collect();
        let (_, q_rand) = qini(&rnd, &t, &y, 20);
        assert!(
            q_model > 0.2 && q_model > q_rand + 0.15,
            "{q_model} vs {q_rand}"
        );
    }

    #[test]
    fn ridge_recovers_a_line() {
        let x: Vec<Vec<f64>> = (0..100).map(|i| vec![1.0, i as f64]).collect();
        let y: Vec<f64> = (0..100).map(|i| 3.0 + 0.5 * i as f64).collect();
        let w = ridge(&x, &y, 0.0);
        assert!(
            (w[0] - 3.0).abs() < 1e-6 && (w[1] - 0.5).abs() < 1e-8,
            "{w:?}"
        );
    }
}
