//! Buy-till-you-die models for customer lifetime value, fitted by maximum likelihood:
//! BG/NBD (Fader, Hardie & Lee 2005), Pareto/NBD (Schmittlein, Morrison & Colombo 1987) and
//! Gamma-Gamma spend (Fader, Hardie & Lee 2005b), with the same likelihoods and predictions as
//! the Python `lifetimes` library.
//!
//! Inputs per customer: `x` repeat purchases, `t_x` time of the last purchase and `T` age, both
//! measured from the first purchase (in days here), and for spend the mean value of the repeat
//! purchases. Likelihood terms are summed in log space (logaddexp) so high frequencies do not
//! overflow. Identical (x, t_x, T) rows are compressed with a weight before fitting, and the
//! likelihood is evaluated in parallel. Parameters are optimised on the log scale.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::optim::lbfgs;
use crate::special::{hyp2f1, hyp2f1_many, ln_gamma, logaddexp, logsubexp};

/// One customer's purchase summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Repeat purchases (all purchases minus the first).
    pub x: f64,
    /// Time of the last purchase since the first.
    pub t_x: f64,
    /// Age: time from the first purchase to the end of the observation period.
    pub t: f64,
}

impl Summary {
    /// The summary after one more purchase at time `at` (since the first purchase, same unit;
    /// at ≥ t_x). Purchases are counted per whole period, as in the batch summary: a purchase in
    /// the same period as the last one adds no repeat purchase, and the observation then runs at
    /// least to the end of that period (T ≥ period + 1).
    pub fn add_purchase(&self, at: f64) -> Summary {
        let day = at.max(self.t_x).floor();
        let t = self.t.max(day + 1.0);
        if day == self.t_x.floor() {
            Summary { t, ..*self }
        } else {
            Summary {
                x: self.x + 1.0,
                t_x: day,
                t,
            }
        }
    }
}

/// Mean value of the repeat purchase periods after adding `value` to the purchase at `at`.
pub fn mean_after_purchase(before: &Summary, mean: f64, at: f64, value: f64) -> f64 {
    let after = before.add_purchase(at);
    if after.x == 0.0 {
        0.0
    } else if after.x > before.x {
        (mean * before.x + value) / after.x
    } else {
        // Same period as the last repeat purchase: that period's value grows.
        mean + value / after.x
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("no customers to fit")]
    Empty,
    #[error("invalid summary at row {row}: {reason}")]
    Invalid { row: usize, reason: String },
    #[error("the optimiser did not converge ({0} iterations)")]
    NotConverged(usize),
}

fn validate(d: &[Summary]) -> Result<(), FitError> {
    if d.is_empty() {
        return Err(FitError::Empty);
    }
    for (row, s) in d.iter().enumerate() {
        let bad = if !(s.x >= 0.0 && s.x.is_finite()) {
            Some("x must be a non-negative count")
        } else if !(s.t_x >= 0.0 && s.t_x <= s.t) {
            Some("t_x must lie in [0, T]")
        } else if s.x == 0.0 && s.t_x != 0.0 {
            Some("t_x must be 0 when x is 0")
        } else {
            None
        };
        if let Some(reason) = bad {
            return Err(FitError::Invalid {
                row,
                reason: format!("{reason} (x={}, t_x={}, T={})", s.x, s.t_x, s.t),
            });
        }
    }
    Ok(())
}

/// Identical rows with a count, in (x, t_x, T) order: a parallel sort and one pass over runs
/// (a hash map of a million rows took most of a fit's time).
fn compress(d: &[Summary]) -> Vec<(Summary, f64)> {
    // total_cmp orders bit patterns: rows it calls equal are identical.
    let order = |a: &Summary, b: &Summary| {
        a.x.total_cmp(&b.x)
            .then(a.t_x.total_cmp(&b.t_x))
            .then(a.t.total_cmp(&b.t))
    };
    let mut v = d.to_vec();
    v.par_sort_unstable_by(order);
    let mut out: Vec<(Summary, f64)> = Vec::new();
    for s in v {
        match out.last_mut() {
            Some((p, w)) if order(p, &s).is_eq() => *w += 1.0,
            _ => out.push((s, 1.0)),
        }
    }
    out
}

/// Sum in fixed-size chunks: parallel, yet the same order every call, so the objective has no
/// run-to-run rounding noise for the optimiser to chase.
fn det_sum<T: Sync>(rows: &[T], f: impl Fn(&T) -> f64 + Sync) -> f64 {
    rows.par_chunks(4096)
        .map(|c| c.iter().map(&f).sum::<f64>())
        .collect::<Vec<f64>>()
        .iter()
        .sum()
}

fn mean_neg_ll<F>(rows: &[(Summary, f64)], n: f64, ll: F) -> f64
where
    F: Fn(&Summary) -> f64 + Sync,
{
    let s: f64 = det_sum(rows, |(r, w)| w * ll(r));
    let v = -s / n;
    if v.is_finite() {
        v
    } else {
        f64::INFINITY
    }
}

/// Minimises `objective` over positive parameters (searched on their logs). `ridge` > 0 adds
/// `ridge * sum(log(p)^2)`, as `lifetimes`' penalizer does: for data whose likelihood has no
/// finite maximum (customers who all buy at the same steady pace leave no heterogeneity to
/// estimate, and the gamma shapes run off to infinity), it keeps the estimate finite.
fn fit_log_params<F>(x0: &[f64], ridge: f64, objective: F) -> Result<Vec<f64>, FitError>
where
    F: Fn(&[f64]) -> f64,
{
    let m = lbfgs(
        &|th: &[f64]| {
            objective(&th.iter().map(|v| v.exp()).collect::<Vec<_>>())
                + ridge * th.iter().map(|v| v * v).sum::<f64>()
        },
        x0,
        1e-9,
        1000,
    );
    if !m.converged {
        return Err(FitError::NotConverged(m.iterations));
    }
    Ok(m.x.iter().map(|v| v.exp()).collect())
}

/// [`fit_log_params`] with the objective's analytic gradient: `fg(p)` gives the value and its
/// gradient with respect to the parameters `p` (not their logs).
fn fit_log_params_grad<F>(x0: &[f64], ridge: f64, fg: F) -> Result<Vec<f64>, FitError>
where
    F: Fn(&[f64]) -> (f64, Vec<f64>),
{
    let on_logs = |th: &[f64]| -> (f64, Vec<f64>) {
        let p: Vec<f64> = th.iter().map(|v| v.exp()).collect();
        let (f, g) = fg(&p);
        let f = f + ridge * th.iter().map(|v| v * v).sum::<f64>();
        // d/dθ f(exp θ) = p · df/dp.
        let g = g
            .iter()
            .zip(&p)
            .zip(th)
            .map(|((gi, pi), ti)| gi * pi + 2.0 * ridge * ti)
            .collect();
        (f, g)
    };
    // L-BFGS asks for the value and then the gradient at the same accepted point; one pass
    // gives both, so the last point's pair is kept for the second call.
    type Point = (Vec<f64>, f64, Vec<f64>);
    let last: std::cell::RefCell<Option<Point>> = Default::default();
    let both = |th: &[f64]| -> (f64, Vec<f64>) {
        if let Some((x, f, g)) = last.borrow().as_ref() {
            if x.as_slice() == th {
                return (*f, g.clone());
            }
        }
        let (f, g) = on_logs(th);
        *last.borrow_mut() = Some((th.to_vec(), f, g.clone()));
        (f, g)
    };
    let m = crate::optim::lbfgs_grad(
        &|th: &[f64]| both(th).0,
        &|th: &[f64]| both(th).1,
        x0,
        1e-9,
        1000,
    );
    if !m.converged {
        return Err(FitError::NotConverged(m.iterations));
    }
    Ok(m.x.iter().map(|v| v.exp()).collect())
}

/// log(exp(a) + exp(b)) and the weights exp(a - l), exp(b - l) of each term.
fn logaddexp_w(a: f64, b: f64) -> (f64, f64, f64) {
    if b == f64::NEG_INFINITY {
        return (a, 1.0, 0.0);
    }
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    let e = (lo - hi).exp();
    let l = hi + e.ln_1p();
    let (w_hi, w_lo) = (1.0 / (1.0 + e), e / (1.0 + e));
    if a >= b {
        (l, w_hi, w_lo)
    } else {
        (l, w_lo, w_hi)
    }
}

/// The distinct values of x, t_x and T, and each distinct customer row as indices into them
/// with its count: the likelihood's terms in x alone (the log-gamma ones) and in t_x or T
/// alone (the logs) are then computed once per distinct value, not once per customer.
struct Grid {
    xs: Vec<f64>,
    txs: Vec<f64>,
    ts: Vec<f64>,
    rows: Vec<(u32, u32, u32, f64)>,
    n: f64,
}

/// The distinct values, sorted.
fn distinct(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut all: Vec<f64> = v.collect();
    all.sort_unstable_by(f64::total_cmp);
    all.dedup_by(|a, b| a.to_bits() == b.to_bits());
    all
}

/// `v`'s index in the sorted distinct values `all` (it is one of them).
fn index_of(all: &[f64], v: f64) -> u32 {
    all.binary_search_by(|p| p.total_cmp(&v))
        .expect("a value of the rows the distinct values came from") as u32
}

impl Grid {
    fn new(d: &[Summary]) -> Grid {
        let rows = compress(d);
        let xs = distinct(rows.iter().map(|r| r.0.x));
        let txs = distinct(rows.iter().map(|r| r.0.t_x));
        let ts = distinct(rows.iter().map(|r| r.0.t));
        let rows = rows
            .par_iter()
            .map(|(s, w)| {
                (
                    index_of(&xs, s.x),
                    index_of(&txs, s.t_x),
                    index_of(&ts, s.t),
                    *w,
                )
            })
            .collect();
        Grid {
            xs,
            txs,
            ts,
            rows,
            n: d.len() as f64,
        }
    }

    /// BG/NBD's mean negative log-likelihood and its gradient in (r, alpha, a, b).
    fn bgnbd(&self, p: &[f64]) -> (f64, Vec<f64>) {
        use statrs::function::gamma::digamma;
        let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
        let (lga, lgab, lgb, dgr, dgab, dgb) = (
            ln_gamma(r),
            ln_gamma(a + b),
            ln_gamma(b),
            digamma(r),
            digamma(a + b),
            digamma(b),
        );
        let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
        // Per distinct x: the constant term and its derivatives, and ln a - ln(b + x - 1).
        struct X {
            c: f64,
            cr: f64,
            ca: f64,
            cb: f64,
            d: f64,
            db: f64,
        }
        let per_x: Vec<X> = self
            .xs
            .iter()
            .map(|&x| {
                let c = ln_gamma(r + x) - lga + r * ln_alpha + lgab + ln_gamma(b + x)
                    - lgb
                    - ln_gamma(a + b + x);
                let (dabx, dbx) = (digamma(a + b + x), digamma(b + x));
                let (d, db) = if x > 0.0 {
                    (ln_a - (b + x - 1.0).ln(), -1.0 / (b + x - 1.0))
                } else {
                    (f64::NEG_INFINITY, 0.0)
                };
                X {
                    c,
                    cr: digamma(r + x) - dgr + ln_alpha,
                    ca: dgab - dabx,
                    cb: dgab + dbx - dgb - dabx,
                    d,
                    db,
                }
            })
            .collect();
        let lt: Vec<(f64, f64)> = self
            .ts
            .iter()
            .map(|t| ((alpha + t).ln(), 1.0 / (alpha + t)))
            .collect();
        let ltx: Vec<(f64, f64)> = self
            .txs
            .iter()
            .map(|t| ((alpha + t).ln(), 1.0 / (alpha + t)))
            .collect();
        let sums = self
            .rows
            .par_chunks(4096)
            .map(|c| {
                let mut acc = [0.0f64; 5];
                for &(xi, txi, ti, w) in c {
                    let (x, px) = (self.xs[xi as usize], &per_x[xi as usize]);
                    let (l_t, i_t) = lt[ti as usize];
                    let (l_tx, i_tx) = ltx[txi as usize];
                    let rx = r + x;
                    let a3 = -rx * l_t;
                    let a4 = px.d - rx * l_tx;
                    let (l, w3, w4) = logaddexp_w(a3, a4);
                    acc[0] += w * (px.c + l);
                    acc[1] += w * (px.cr - w3 * l_t - w4 * l_tx);
                    acc[2] += w * (r / alpha - rx * (w3 * i_t + w4 * i_tx));
                    acc[3] += w * (px.ca + w4 / a);
                    acc[4] += w * (px.cb + w4 * px.db);
                }
                acc
            })
            .collect::<Vec<_>>()
            .iter()
            .fold([0.0; 5], |mut t, a| {
                for i in 0..5 {
                    t[i] += a[i];
                }
                t
            });
        let f = -sums[0] / self.n;
        let f = if f.is_finite() { f } else { f64::INFINITY };
        (f, sums[1..].iter().map(|g| -g / self.n).collect())
    }
}

// ---------------------------------------------------------------- BG/NBD

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    /// Mean log-likelihood per customer at the optimum.
    pub ll: f64,
}

#[cfg(test)]
fn bgnbd_ll(p: &[f64], s: &Summary) -> f64 {
    let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
    let x = s.x;
    let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
    let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
    let a3 = -(r + x) * (alpha + s.t).ln();
    let a4 = if x > 0.0 {
        a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + s.t_x).ln()
    } else {
        f64::NEG_INFINITY
    };
    a1 + a2 + logaddexp(a3, a4)
}

impl BgNbd {
    pub fn fit(d: &[Summary]) -> Result<BgNbd, FitError> {
        BgNbd::fit_with(d, 0.0)
    }

    /// The fit with a ridge on the log-parameters (see `fit_log_params`); `ll` is the
    /// unpenalised mean log-likelihood at the estimate.
    pub fn fit_with(d: &[Summary], ridge: f64) -> Result<BgNbd, FitError> {
        validate(d)?;
        let grid = Grid::new(d);
        let p = fit_log_params_grad(&[0.0; 4], ridge, |p| grid.bgnbd(p))?;
        let ll = -grid.bgnbd(&p).0;
        Ok(BgNbd {
            r: p[0],
            alpha: p[1],
            a: p[2],
            b: p[3],
            ll,
        })
    }

    /// Probability the customer is still active at T.
    pub fn p_alive(&self, s: &Summary) -> f64 {
        if s.x == 0.0 {
            return 1.0;
        }
        let log_div = (self.r + s.x) * ((self.alpha + s.t) / (self.alpha + s.t_x)).ln()
            + (self.a / (self.b + s.x - 1.0)).ln();
        1.0 / (1.0 + log_div.exp())
    }

    /// When an alive customer buys next: the median time from the end of observation. Alive at
    /// T, their rate given the history is Gamma(r + x, α + T) and a BG/NBD customer only drops
    /// out right after a purchase, so the wait is Lomax: P(W > w) = ((α+T)/(α+T+w))^(r+x).
    pub fn median_wait(&self, s: &Summary) -> f64 {
        (self.alpha + s.t) * ((std::f64::consts::LN_2 / (self.r + s.x)).exp_m1())
    }

    /// [`Self::median_wait`] among the waits that end within `h`: when an alive customer buys
    /// next if they buy within `h` at all (S(w) = (1 + S(h)) / 2). A rare guest's unconditional
    /// median lies years out; this is the date to plan for, beside the chance of a purchase.
    pub fn median_wait_within(&self, s: &Summary, h: f64) -> f64 {
        let k = self.r + s.x;
        let base = self.alpha + s.t;
        let survive_h = (base / (base + h)).powf(k);
        base * (((1.0 + survive_h) / 2.0).powf(-1.0 / k) - 1.0)
    }

    /// How overdue a customer is against their own cadence: the chance that, alive and buying
    /// at the rate their history up to their last purchase implies (Gamma(r + x, α + t_x)),
    /// they would have bought again in the time since. 0 right after a purchase; near 1 when the
    /// silence is long for them (a weekly regular after a month; a twice-a-year guest is not).
    pub fn overdue(&self, s: &Summary) -> f64 {
        let gap = (s.t - s.t_x).max(0.0);
        let log_quiet = (self.r + s.x) * ((self.alpha + s.t_x) / (self.alpha + s.t_x + gap)).ln();
        -log_quiet.exp_m1()
    }

    /// Expected purchases in (T, T + t].
    pub fn expected_purchases(&self, s: &Summary, t: f64) -> f64 {
        // The closed form has a removable singularity at a = 1: evaluate either side and average
        // (the error is second order in the step).
        if (self.a - 1.0).abs() < 1e-3 {
            let lo = BgNbd {
                a: 1.0 - 1e-3,
                ..*self
            };
            let hi = BgNbd {
                a: 1.0 + 1e-3,
                ..*self
            };
            return 0.5 * (lo.expected_purchases_raw(s, t) + hi.expected_purchases_raw(s, t));
        }
        self.expected_purchases_raw(s, t)
    }

    /// Expected purchases in (T, T + t] for each t of `ts`, in one pass of the series (what a
    /// CLV needs: one horizon a month).
    pub fn expected_purchases_at(&self, s: &Summary, ts: &[f64], out: &mut [f64]) {
        let variants = self.variants();
        let curves: Vec<Vec<f64>> = variants
            .iter()
            .map(|(_, m)| {
                let mut c = vec![0.0; ts.len()];
                m.if_alive_at(s.x, s.t, ts, &mut c);
                c
            })
            .collect();
        BgNbd::from_alive_curves(&variants, s, curves.iter().map(Vec::as_slice), out);
    }

    /// Expected purchases from each of `variants`' [`BgNbd::if_alive_at`] curves for the
    /// customer `s` (one curve per variant, in order): the sum of weight × p_alive × curve.
    pub fn from_alive_curves<'c>(
        variants: &[(f64, BgNbd)],
        s: &Summary,
        curves: impl IntoIterator<Item = &'c [f64]>,
        out: &mut [f64],
    ) {
        out.fill(0.0);
        for ((w, m), c) in variants.iter().zip(curves) {
            let p = w * m.p_alive(s);
            for (o, v) in out.iter_mut().zip(c) {
                *o += p * v;
            }
        }
    }

    /// The models whose weighted sum of predictions is this one's: itself, or near a = 1 (where
    /// the closed form has a removable singularity) the models either side of it, averaged (the
    /// error is second order in the step).
    pub fn variants(&self) -> Vec<(f64, BgNbd)> {
        if (self.a - 1.0).abs() < 1e-3 {
            vec![
                (
                    0.5,
                    BgNbd {
                        a: 1.0 - 1e-3,
                        ..*self
                    },
                ),
                (
                    0.5,
                    BgNbd {
                        a: 1.0 + 1e-3,
                        ..*self
                    },
                ),
            ]
        } else {
            vec![(1.0, *self)]
        }
    }

    /// Expected purchases in (T, T + t] for each t of `ts` of a customer with x purchases
    /// observed for T who is still active at T: [`BgNbd::expected_purchases_at`] is this times
    /// [`BgNbd::p_alive`] (summed over [`BgNbd::variants`]). It does not depend on t_x, so
    /// customers who differ only in their last purchase share it: the series (the costly part
    /// of a prediction) runs once per distinct (x, T).
    pub fn if_alive_at(&self, x: f64, big_t: f64, ts: &[f64], out: &mut [f64]) {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let (ha, hb, hc) = (r + x, b + x, a + b + x - 1.0);
        let zs: Vec<f64> = ts.iter().map(|t| t / (alpha + big_t + t)).collect();
        hyp2f1_many(ha, hb, hc, &zs, out);
        let first = (a + b + x - 1.0) / (a - 1.0);
        for (i, t) in ts.iter().enumerate() {
            let mut ln_hyp = out[i].ln();
            if !ln_hyp.is_finite() {
                let z = zs[i];
                ln_hyp = hyp2f1(hc - ha, hc - hb, hc, z).ln() + (hc - ha - hb) * (1.0 - z).ln();
            }
            let second =
                1.0 - (ln_hyp + (r + x) * ((alpha + big_t) / (alpha + t + big_t)).ln()).exp();
            out[i] = first * second;
        }
    }

    fn expected_purchases_raw(&self, s: &Summary, t: f64) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let x = s.x;
        let (ha, hb, hc) = (r + x, b + x, a + b + x - 1.0);
        let z = t / (alpha + s.t + t);
        let mut ln_hyp = hyp2f1(ha, hb, hc, z).ln();
        if !ln_hyp.is_finite() {
            ln_hyp = hyp2f1(hc - ha, hc - hb, hc, z).ln() + (hc - ha - hb) * (1.0 - z).ln();
        }
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = 1.0 - (ln_hyp + (r + x) * ((alpha + s.t) / (alpha + t + s.t)).ln()).exp();
        let denom = if x > 0.0 {
            1.0 + (a / (b + x - 1.0)) * ((alpha + s.t) / (alpha + s.t_x)).powf(r + x)
        } else {
            1.0
        };
        first * second / denom
    }

    /// Expected purchases of a new customer in a period of length t.
    pub fn expected_purchases_new(&self, t: f64) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let hyp = hyp2f1(r, b, a + b - 1.0, t / (alpha + t));
        (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * hyp)
    }
}

// ---------------------------------------------------------------- Pareto/NBD

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbd {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
    pub ll: f64,
}

fn pareto_log_a0(p: &[f64], x: f64, t_x: f64, t: f64) -> f64 {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    let (min_ab, max_ab, tt) = if alpha < beta {
        (alpha, beta, r + x)
    } else {
        (beta, alpha, s + 1.0)
    };
    let abs_ab = max_ab - min_ab;
    let rsf = r + s + x;
    let p1 = hyp2f1(rsf, tt, rsf + 1.0, abs_ab / (max_ab + t_x));
    let q1 = max_ab + t_x;
    let p2 = hyp2f1(rsf, tt, rsf + 1.0, abs_ab / (max_ab + t));
    let q2 = max_ab + t;
    logsubexp(p1.ln() + rsf * q2.ln(), p2.ln() + rsf * q1.ln()) - rsf * (q1 * q2).ln()
}

fn pareto_ll(p: &[f64], s: &Summary) -> f64 {
    let (r, alpha, ss, beta) = (p[0], p[1], p[2], p[3]);
    let x = s.x;
    let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ss * beta.ln();
    let log_a0 = pareto_log_a0(p, x, s.t_x, s.t);
    let a2 = logaddexp(
        -(r + x) * (alpha + s.t).ln() - ss * (beta + s.t).ln(),
        ss.ln() + log_a0 - (r + ss + x).ln(),
    );
    a1 + a2
}

impl ParetoNbd {
    pub fn fit(d: &[Summary]) -> Result<ParetoNbd, FitError> {
        ParetoNbd::fit_with(d, 0.0)
    }

    /// The fit with a ridge on the log-parameters (see `fit_log_params`).
    pub fn fit_with(d: &[Summary], ridge: f64) -> Result<ParetoNbd, FitError> {
        validate(d)?;
        let rows = compress(d);
        let n = d.len() as f64;
        let p = fit_log_params(&[0.0; 4], ridge, |p| {
            mean_neg_ll(&rows, n, |s| pareto_ll(p, s))
        })?;
        let ll = -mean_neg_ll(&rows, n, |s| pareto_ll(&p, s));
        Ok(ParetoNbd {
            r: p[0],
            alpha: p[1],
            s: p[2],
            beta: p[3],
            ll,
        })
    }

    fn params(&self) -> [f64; 4] {
        [self.r, self.alpha, self.s, self.beta]
    }

    pub fn p_alive(&self, s: &Summary) -> f64 {
        let a0 = pareto_log_a0(&self.params(), s.x, s.t_x, s.t);
        let (r, alpha, ss, beta) = (self.r, self.alpha, self.s, self.beta);
        1.0 / (1.0
            + (ss.ln() - (r + ss + s.x).ln()
                + (r + s.x) * (alpha + s.t).ln()
                + ss * (beta + s.t).ln()
                + a0)
                .exp())
    }

    pub fn expected_purchases(&self, s: &Summary, t: f64) -> f64 {
        let (r, alpha, ss, beta) = (self.r, self.alpha, self.s, self.beta);
        let p1 = (r + s.x) * (beta + s.t) / ((alpha + s.t) * (ss - 1.0));
        let p2 = 1.0 - ((beta + s.t) / (beta + s.t + t)).powf(ss - 1.0);
        p1 * p2 * self.p_alive(s)
    }
}

// ---------------------------------------------------------------- Gamma-Gamma

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
    pub ll: f64,
}

/// (repeat purchases x > 0, mean value of those purchases)
pub type Spend = (f64, f64);

#[cfg(test)]
fn gg_ll(p: &[f64], x: f64, m: f64) -> f64 {
    let (pp, q, v) = (p[0], p[1], p[2]);
    ln_gamma(pp * x + q) - ln_gamma(pp * x) - ln_gamma(q)
        + q * v.ln()
        + (pp * x - 1.0) * m.ln()
        + (pp * x) * x.ln()
        - (pp * x + q) * (x * m + v).ln()
}

/// Spend rows grouped by their number of repeat purchases x: the log-gamma terms and
/// Σ ln m are per group, leaving one log per customer per evaluation.
struct SpendGroups {
    /// (x, customers, Σ ln m, their means m)
    groups: Vec<(f64, f64, f64, Vec<f64>)>,
    n: f64,
}

impl SpendGroups {
    fn new(d: &[Spend]) -> SpendGroups {
        let mut by: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
        for (x, m) in d {
            by.entry(x.to_bits()).or_default().push(*m);
        }
        let groups = by
            .into_iter()
            .map(|(x, ms)| {
                let lnm = ms.iter().map(|m| m.ln()).sum();
                (f64::from_bits(x), ms.len() as f64, lnm, ms)
            })
            .collect();
        SpendGroups {
            groups,
            n: d.len() as f64,
        }
    }

    /// Gamma-Gamma's mean negative log-likelihood and its gradient in (p, q, v).
    fn neg_ll(&self, par: &[f64]) -> (f64, Vec<f64>) {
        use statrs::function::gamma::digamma;
        let (pp, q, v) = (par[0], par[1], par[2]);
        let (lgq, dgq, lnv) = (ln_gamma(q), digamma(q), v.ln());
        let mut t = [0.0f64; 4];
        for (x, n, lnm, ms) in &self.groups {
            let (x, n) = (*x, *n);
            let px = pp * x;
            // Σ ln(x m + v) and Σ 1 / (x m + v), in fixed chunks (the same order every call).
            let (sl, si) = ms
                .par_chunks(4096)
                .map(|c| {
                    c.iter().fold((0.0, 0.0), |(a, b), m| {
                        let u = x * m + v;
                        (a + u.ln(), b + 1.0 / u)
                    })
                })
                .collect::<Vec<_>>()
                .iter()
                .fold((0.0, 0.0), |(a, b), (c, d)| (a + c, b + d));
            let (dgpxq, dgpx, lnx) = (digamma(px + q), digamma(px), x.ln());
            t[0] += n * (ln_gamma(px + q) - ln_gamma(px) - lgq + q * lnv + px * lnx)
                + (px - 1.0) * lnm
                - (px + q) * sl;
            t[1] += n * x * (dgpxq - dgpx + lnx) + x * lnm - x * sl;
            t[2] += n * (dgpxq - dgq + lnv) - sl;
            t[3] += n * q / v - (px + q) * si;
        }
        let f = -t[0] / self.n;
        let f = if f.is_finite() { f } else { f64::INFINITY };
        (f, t[1..].iter().map(|g| -g / self.n).collect())
    }
}

impl GammaGamma {
    pub fn fit(d: &[Spend]) -> Result<GammaGamma, FitError> {
        GammaGamma::fit_with(d, 0.0)
    }

    /// The fit with a ridge on the log-parameters (see `fit_log_params`).
    pub fn fit_with(d: &[Spend], ridge: f64) -> Result<GammaGamma, FitError> {
        if d.is_empty() {
            return Err(FitError::Empty);
        }
        for (row, (x, m)) in d.iter().enumerate() {
            if !(*x > 0.0 && *m > 0.0 && m.is_finite()) {
                return Err(FitError::Invalid {
                    row,
                    reason: format!("needs x > 0 and a positive mean spend (x={x}, m={m})"),
                });
            }
        }
        let groups = SpendGroups::new(d);
        let p = fit_log_params_grad(&[0.0; 3], ridge, |p| groups.neg_ll(p))?;
        let ll = -groups.neg_ll(&p).0;
        Ok(GammaGamma {
            p: p[0],
            q: p[1],
            v: p[2],
            ll,
        })
    }

    /// Expected mean spend per purchase given x purchases averaging m.
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        if x <= 0.0 {
            return self.p * self.v / (self.q - 1.0);
        }
        self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)
    }
}

/// Discounted lifetime value over `months` 30-day months at a monthly `discount_rate`, as
/// `lifetimes.customer_lifetime_value(..., freq='D')` computes it.
/// CLV from cumulative expected purchases at the end of each month (`cum[i]` after month i+1).
pub fn clv_of_curve(cum: &[f64], spend: f64, discount_rate: f64) -> f64 {
    let mut total = 0.0;
    let mut prev = 0.0;
    let mut disc = 1.0;
    for c in cum {
        disc /= 1.0 + discount_rate;
        total += spend * (c - prev) * disc;
        prev = *c;
    }
    total
}

pub fn clv(purchases: impl Fn(f64) -> f64, spend: f64, months: u32, discount_rate: f64) -> f64 {
    let mut total = 0.0;
    let mut prev = 0.0;
    for i in 1..=months {
        let cum = purchases(30.0 * i as f64);
        total += spend * (cum - prev) / (1.0 + discount_rate).powi(i as i32);
        prev = cum;
    }
    total
}

#[cfg(test)]
mod grouped {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data() -> (Vec<Summary>, Vec<Spend>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut d = Vec::new();
        let mut spend = Vec::new();
        for _ in 0..3000 {
            let t = rng.random_range(30..400) as f64;
            let x = rng.random_range(0..12) as f64;
            let t_x = if x > 0.0 {
                rng.random_range(0..=t as i64) as f64
            } else {
                0.0
            };
            d.push(Summary { x, t_x, t });
            if x > 0.0 {
                spend.push((x, rng.random_range(5.0..60.0)));
            }
        }
        (d, spend)
    }

    /// The grouped likelihoods are the per-customer ones, summed another way; their analytic
    /// gradients agree with central differences.
    #[test]
    fn grouped_likelihoods_and_gradients_are_the_per_customer_ones() {
        let (d, spend) = data();
        let grid = Grid::new(&d);
        let groups = SpendGroups::new(&spend);
        for p in [[0.3, 20.0, 0.8, 2.5], [1.7, 4.0, 1.3, 0.6]] {
            let want = -d.iter().map(|s| bgnbd_ll(&p, s)).sum::<f64>() / d.len() as f64;
            let (got, g) = grid.bgnbd(&p);
            assert!((got - want).abs() < 1e-10 * want.abs(), "{got} vs {want}");
            let num = crate::optim::num_grad(&|q: &[f64]| grid.bgnbd(q).0, &p);
            for (a, b) in g.iter().zip(&num) {
                assert!(
                    (a - b).abs() < 1e-5 * b.abs().max(1e-3),
                    "BG/NBD gradient {g:?} vs {num:?}"
                );
            }
        }
        for p in [[6.0, 3.5, 15.0], [1.2, 9.0, 40.0]] {
            let want =
                -spend.iter().map(|(x, m)| gg_ll(&p, *x, *m)).sum::<f64>() / spend.len() as f64;
            let (got, g) = groups.neg_ll(&p);
            assert!((got - want).abs() < 1e-10 * want.abs(), "{got} vs {want}");
            let num = crate::optim::num_grad(&|q: &[f64]| groups.neg_ll(q).0, &p);
            for (a, b) in g.iter().zip(&num) {
                assert!(
                    (a - b).abs() < 1e-5 * b.abs().max(1e-3),
                    "Gamma-Gamma gradient {g:?} vs {num:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod ridge {
    use super::*;

    /// Customers who all buy every 53 days: no heterogeneity to estimate, so the likelihood
    /// climbs forever as the gamma shapes grow (`lifetimes` does not converge either). The
    /// ridge gives a finite fit that still predicts their steady pace.
    #[test]
    fn steady_buyers_need_the_ridge_and_get_a_finite_fit() {
        let d: Vec<Summary> = (0..120)
            .map(|c| {
                let x = (c % 6) as f64;
                let first = 1.0 + ((c * 37) % 540) as f64;
                Summary {
                    x,
                    t_x: 53.0 * x,
                    t: 541.0 - first + 53.0 * x,
                }
            })
            .collect();
        assert!(matches!(BgNbd::fit(&d), Err(FitError::NotConverged(_))));
        let m = BgNbd::fit_with(&d, 0.001).unwrap();
        for v in [m.r, m.alpha, m.a, m.b] {
            assert!(v.is_finite() && v > 0.0, "{m:?}");
        }
        // Its predictions still order customers: one seen 53 days ago expects more than one
        // with the same history who has been silent for a year.
        let recent = m.expected_purchases(
            &Summary {
                x: 3.0,
                t_x: 159.0,
                t: 212.0,
            },
            365.0,
        );
        let lapsed = m.expected_purchases(
            &Summary {
                x: 3.0,
                t_x: 159.0,
                t: 524.0,
            },
            365.0,
        );
        assert!(
            recent > 0.5 && recent > 2.0 * lapsed,
            "{recent} vs {lapsed}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Beta, Distribution, Exp, Gamma};

    /// The median wait is the Lomax median: simulated waits of alive customers drawn from the
    /// posterior rate split half below it; overdue grows with the silence and with the cadence.
    #[test]
    fn next_purchase_wait_and_overdue() {
        let m = BgNbd {
            r: 0.8,
            alpha: 20.0,
            a: 0.5,
            b: 3.0,
            ll: 0.0,
        };
        let s = Summary {
            x: 6.0,
            t_x: 150.0,
            t: 180.0,
        };
        let w = m.median_wait(&s);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let post = Gamma::new(m.r + s.x, 1.0 / (m.alpha + s.t)).unwrap();
        let n = 200_000;
        let below = (0..n)
            .filter(|_| {
                let lam: f64 = post.sample(&mut rng);
                Exp::new(lam).unwrap().sample(&mut rng) < w
            })
            .count();
        let share = below as f64 / n as f64;
        assert!(
            (share - 0.5).abs() < 0.005,
            "{share} of waits below the median {w}"
        );
        // Within a horizon: half of the waits that end before it end before the median.
        let h = 90.0;
        let wh = m.median_wait_within(&s, h);
        let (mut inside, mut early) = (0, 0);
        for _ in 0..n {
            let lam: f64 = post.sample(&mut rng);
            let x = Exp::new(lam).unwrap().sample(&mut rng);
            if x < h {
                inside += 1;
                early += (x < wh) as usize;
            }
        }
        let share = early as f64 / inside as f64;
        assert!(
            wh < h && wh < w && (share - 0.5).abs() < 0.01,
            "{share} below {wh}"
        );
        let fresh = Summary { t_x: 180.0, ..s };
        assert!(m.overdue(&fresh).abs() < 1e-12);
        let long = Summary { t: 400.0, ..s };
        assert!(m.overdue(&long) > m.overdue(&s) && m.overdue(&long) < 1.0);
        let rare = Summary { x: 1.0, ..s };
        assert!(
            m.overdue(&rare) < m.overdue(&s),
            "the same silence is less overdue for a rare guest"
        );
    }

    /// Simulates BG/NBD customers with known parameters.
    fn simulate(n: usize, r: f64, alpha: f64, a: f64, b: f64, seed: u64) -> Vec<Summary> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let lam = Gamma::new(r, 1.0 / alpha).unwrap().sample(&mut rng);
                let p = Beta::new(a, b).unwrap().sample(&mut rng);
                let t_end = rng.random_range(100.0..400.0);
                let (mut t, mut x, mut tx) = (0.0, 0.0, 0.0);
                loop {
                    t += Exp::new(lam).unwrap().sample(&mut rng);
                    if t > t_end {
                        break;
                    }
                    x += 1.0;
                    tx = t;
                    if rng.random::<f64>() < p {
                        break;
                    }
                }
                Summary {
                    x,
                    t_x: tx,
                    t: t_end,
                }
            })
            .collect()
    }

    #[test]
    fn bgnbd_recovers_known_parameters() {
        let d = simulate(40_000, 0.9, 30.0, 1.2, 5.0, 1);
        let m = BgNbd::fit(&d).unwrap();
        assert!((m.r - 0.9).abs() / 0.9 < 0.1, "{m:?}");
        assert!((m.alpha - 30.0).abs() / 30.0 < 0.12, "{m:?}");
        assert!((m.a / (m.a + m.b) - 1.2 / 6.2).abs() < 0.03, "{m:?}");
        // Predictions are sane: P(alive) in [0,1]; more purchases expected from frequent recent buyers.
        let hot = Summary {
            x: 10.0,
            t_x: 290.0,
            t: 300.0,
        };
        let cold = Summary {
            x: 10.0,
            t_x: 50.0,
            t: 300.0,
        };
        assert!(m.p_alive(&hot) > m.p_alive(&cold));
        assert!(m.expected_purchases(&hot, 90.0) > m.expected_purchases(&cold, 90.0));
        assert!((0.0..=1.0).contains(&m.p_alive(&cold)));
    }

    #[test]
    fn high_frequency_does_not_overflow() {
        let mut d = simulate(2_000, 0.9, 30.0, 1.2, 5.0, 2);
        d.push(Summary {
            x: 5_000.0,
            t_x: 399.99,
            t: 400.0,
        });
        let m = BgNbd::fit(&d).unwrap();
        assert!(m.ll.is_finite());
        // 12.5 purchases a day, last one just now: alive, and hundreds more expected in 30 days.
        let s = Summary {
            x: 5_000.0,
            t_x: 399.99,
            t: 400.0,
        };
        assert!(m.p_alive(&s) > 0.99);
        let e = m.expected_purchases(&s, 30.0);
        assert!(e.is_finite() && e > 100.0, "{e}");
    }

    #[test]
    fn a_new_purchase_updates_the_summary_and_the_predictions() {
        let m = BgNbd {
            r: 0.9,
            alpha: 30.0,
            a: 1.0,
            b: 5.0,
            ll: 0.0,
        };
        let s = Summary {
            x: 3.0,
            t_x: 100.0,
            t: 300.0,
        };
        let after = s.add_purchase(300.0);
        assert_eq!(
            after,
            Summary {
                x: 4.0,
                t_x: 300.0,
                t: 301.0
            }
        );
        // Right after a purchase P(alive) is close to 1 / (1 + a / (b + x - 1)) = 8/9.
        assert!(m.p_alive(&after) > 0.85 && m.p_alive(&s) < 0.5);
        assert!(m.expected_purchases(&after, 90.0) > m.expected_purchases(&s, 90.0));
        // Same day as the last purchase: no new repeat period, the period's value grows.
        assert_eq!(after.add_purchase(300.5), after);
        assert_eq!(mean_after_purchase(&after, 40.0, 300.5, 20.0), 45.0);
        assert_eq!(mean_after_purchase(&s, 40.0, 300.0, 20.0), 35.0);
        // First purchase day: still no repeat.
        let first = Summary {
            x: 0.0,
            t_x: 0.0,
            t: 0.0,
        };
        assert_eq!(
            first.add_purchase(0.3),
            Summary {
                x: 0.0,
                t_x: 0.0,
                t: 1.0
            }
        );
        assert_eq!(
            first.add_purchase(2.0),
            Summary {
                x: 1.0,
                t_x: 2.0,
                t: 3.0
            }
        );
    }

    #[test]
    fn rejects_bad_rows_by_row() {
        let e = BgNbd::fit(&[Summary {
            x: 1.0,
            t_x: 5.0,
            t: 1.0,
        }])
        .unwrap_err();
        assert!(e.to_string().contains("row 0"), "{e}");
    }

    #[test]
    fn gamma_gamma_recovers_known_parameters() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (p, q, v) = (6.0, 4.0, 15.0);
        let d: Vec<Spend> = (0..30_000)
            .map(|_| {
                let nu = Gamma::new(q, 1.0 / v).unwrap().sample(&mut rng);
                let x = rng.random_range(1..10) as f64;
                let m = (0..x as usize)
                    .map(|_| Gamma::new(p, 1.0 / nu).unwrap().sample(&mut rng))
                    .sum::<f64>()
                    / x;
                (x, m)
            })
            .collect();
        let g = GammaGamma::fit(&d).unwrap();
        // The mean spend p*v/(q-1) is well identified; the individual parameters less so.
        let want = p * v / (q - 1.0);
        let got = g.p * g.v / (g.q - 1.0);
        assert!((got - want).abs() / want < 0.05, "{g:?}");
        assert!((g.p - p).abs() / p < 0.15, "{g:?}");
    }

    #[test]
    fn pareto_nbd_fits_and_predicts() {
        let d = simulate(5_000, 0.9, 30.0, 1.2, 5.0, 4);
        let m = ParetoNbd::fit(&d).unwrap();
        let bg = BgNbd::fit(&d).unwrap();
        assert!(m.ll.is_finite());
        let s = Summary {
            x: 4.0,
            t_x: 200.0,
            t: 300.0,
        };
        let (e1, e2) = (
            m.expected_purchases(&s, 90.0),
            bg.expected_purchases(&s, 90.0),
        );
        assert!((e1 - e2).abs() / e2 < 0.5, "pareto {e1} vs bg {e2}");
        assert!((0.0..=1.0).contains(&m.p_alive(&s)));
    }
}
