//! The A/B statistics engine: deterministic assignment, frequentist and Bayesian comparisons of
//! two arms, CUPED variance reduction, always-valid sequential p-values (mSPRT), the sample ratio
//! mismatch check, guardrails, multiple-testing correction, and the analyses of store-level
//! (cluster) and switchback designs.
//!
//! Pure functions on per-unit numbers; the caller decides what a unit and a metric are. What it is
//! not: a data loader or a scheduler — campaigns and the warehouse live in the server and ETL.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// A stable 64-bit hash (FNV-1a then the splitmix64 finaliser): the same on every machine and
/// release, so an assignment never changes once made.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.as_bytes().iter().chain(std::iter::once(&0x1f)) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A uniform number in [0, 1) fixed by `salt` and `unit`.
pub fn unit_uniform(salt: &str, unit: &str) -> f64 {
    (stable_hash(&[salt, unit]) >> 11) as f64 / (1u64 << 53) as f64
}

/// The arm of `unit` for weights `w` (need not sum to one). Deterministic: the same salt and unit
/// always land in the same arm, and adding units never moves existing ones.
pub fn assign(salt: &str, unit: &str, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    let u = unit_uniform(salt, unit) * total;
    let mut acc = 0.0;
    for (i, x) in w.iter().enumerate() {
        acc += x;
        if u < acc {
            return i;
        }
    }
    w.len().saturating_sub(1)
}

/// Count, mean and (sample) variance of one arm's metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Moments {
    pub n: f64,
    pub mean: f64,
    pub var: f64,
}

impl Moments {
    pub fn of(x: &[f64]) -> Moments {
        let n = x.len() as f64;
        if n == 0.0 {
            return Moments::default();
        }
        let mean = x.iter().sum::<f64>() / n;
        let var = if n > 1.0 {
            x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Moments { n, mean, var }
    }
    /// Variance of the mean.
    pub fn var_mean(&self) -> f64 {
        if self.n > 0.0 {
            self.var / self.n
        } else {
            f64::INFINITY
        }
    }
}

fn norm() -> Normal {
    Normal::new(0.0, 1.0).expect("standard normal")
}

/// Φ(x).
pub fn phi_cdf(x: f64) -> f64 {
    norm().cdf(x)
}

/// Frequentist comparison of treatment against control (Welch).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Frequentist {
    #[schema(value_type = Option<f64>)]
    pub control_mean: f64,
    #[schema(value_type = Option<f64>)]
    pub treatment_mean: f64,
    /// treatment − control.
    #[schema(value_type = Option<f64>)]
    pub diff: f64,
    #[schema(value_type = Option<f64>)]
    pub se: f64,
    #[schema(value_type = Option<f64>)]
    pub ci_low: f64,
    #[schema(value_type = Option<f64>)]
    pub ci_high: f64,
    #[schema(value_type = Option<f64>)]
    pub p_value: f64,
    /// diff / control mean, with a delta-method interval.
    #[schema(value_type = Option<f64>)]
    pub lift: f64,
    #[schema(value_type = Option<f64>)]
    pub lift_ci_low: f64,
    #[schema(value_type = Option<f64>)]
    pub lift_ci_high: f64,
}

/// Welch's t-test of `t` against `c` at confidence 1 − `alpha`.
pub fn welch(c: Moments, t: Moments, alpha: f64) -> Frequentist {
    let vc = c.var_mean();
    let vt = t.var_mean();
    let se = (vc + vt).sqrt();
    let diff = t.mean - c.mean;
    // Welch–Satterthwaite degrees of freedom.
    let df = if vc + vt > 0.0 {
        (vc + vt).powi(2)
            / (vc.powi(2) / (c.n - 1.0).max(1.0) + vt.powi(2) / (t.n - 1.0).max(1.0)).max(1e-300)
    } else {
        1.0
    };
    let dist = StudentsT::new(0.0, 1.0, df.max(1.0)).expect("t");
    let (p, q) = if se > 0.0 {
        (
            2.0 * (1.0 - dist.cdf((diff / se).abs())),
            dist.inverse_cdf(1.0 - alpha / 2.0),
        )
    } else {
        (if diff == 0.0 { 1.0 } else { 0.0 }, 0.0)
    };
    // Relative lift by the delta method on t/c − 1.
    let (lift, lse) = if c.mean != 0.0 {
        let r = t.mean / c.mean;
        (
            r - 1.0,
            (vt / c.mean.powi(2) + t.mean.powi(2) * vc / c.mean.powi(4)).sqrt(),
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    Frequentist {
        control_mean: c.mean,
        treatment_mean: t.mean,
        diff,
        se,
        ci_low: diff - q * se,
        ci_high: diff + q * se,
        p_value: p.clamp(0.0, 1.0),
        lift,
        lift_ci_low: lift - q * lse,
        lift_ci_high: lift + q * lse,
    }
}

/// Bayesian comparison with flat priors and a normal likelihood for each arm's mean (the
/// approach of GrowthBook's engine): the posterior of the difference is N(diff, se²).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Bayesian {
    /// P(treatment > control).
    #[schema(value_type = Option<f64>)]
    pub chance_to_win: f64,
    /// E[max(0, control − treatment)]: what shipping treatment costs per unit if it is worse.
    #[schema(value_type = Option<f64>)]
    pub expected_loss_treatment: f64,
    /// E[max(0, treatment − control)]: what keeping control costs per unit.
    #[schema(value_type = Option<f64>)]
    pub expected_loss_control: f64,
    /// 95% credible interval of the difference.
    #[schema(value_type = Option<f64>)]
    pub cred_low: f64,
    #[schema(value_type = Option<f64>)]
    pub cred_high: f64,
}

pub fn bayes(c: Moments, t: Moments) -> Bayesian {
    let mu = t.mean - c.mean;
    let s = (c.var_mean() + t.var_mean()).sqrt();
    if s == 0.0 || !s.is_finite() {
        return Bayesian {
            chance_to_win: if mu > 0.0 {
                1.0
            } else if mu < 0.0 {
                0.0
            } else {
                0.5
            },
            expected_loss_treatment: (-mu).max(0.0),
            expected_loss_control: mu.max(0.0),
            cred_low: mu,
            cred_high: mu,
        };
    }
    let n = norm();
    let z = mu / s;
    // E[max(0, −D)] for D ~ N(mu, s²) is s·φ(z) − mu·Φ(−z); the mirror for max(0, D).
    let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    Bayesian {
        chance_to_win: n.cdf(z),
        expected_loss_treatment: s * pdf - mu * n.cdf(-z),
        expected_loss_control: s * pdf + mu * n.cdf(z),
        cred_low: mu - 1.959_964 * s,
        cred_high: mu + 1.959_964 * s,
    }
}

/// CUPED: subtracts θ·(x − x̄) from each y, with θ = cov(x, y) / var(x) pooled over both arms
/// (so it cannot bias the difference). `x` is the pre-period covariate (e.g. spend before the
/// experiment). Returns the adjusted metric and θ.
pub fn cuped(y: &[f64], x: &[f64]) -> (Vec<f64>, f64) {
    assert_eq!(y.len(), x.len(), "cuped needs one covariate per unit");
    let n = y.len() as f64;
    if n < 2.0 {
        return (y.to_vec(), 0.0);
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
    }
    let theta = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (
        y.iter().zip(x).map(|(b, a)| b - theta * (a - mx)).collect(),
        theta,
    )
}

/// The mixture sequential probability ratio test with a normal mixing distribution N(0, τ²)
/// (Johari, Pekelis & Walsh, "Always valid inference", 2017). For a difference estimate `diff`
/// with variance `v`, returns the always-valid p-value at this look, min(1, 1/Λ). The running
/// minimum over looks is still valid at any stopping time.
pub fn msprt_p(diff: f64, v: f64, tau2: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let ln_lambda = 0.5 * (v / (v + tau2)).ln() + tau2 * diff * diff / (2.0 * v * (v + tau2));
    (-ln_lambda).exp().min(1.0)
}

/// Half-width of the always-valid (1 − α) confidence sequence matching [`msprt_p`].
pub fn msprt_radius(v: f64, tau2: f64, alpha: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return f64::INFINITY;
    }
    ((v * (v + tau2) / tau2) * (2.0 * (1.0 / alpha).ln() + ((v + tau2) / v).ln())).sqrt()
}

/// Sequential monitoring state of one metric: call [`Sequential::look`] at every peek.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sequential {
    pub tau2: f64,
    pub alpha: f64,
    /// Running minimum of the always-valid p-value.
    pub p_value: f64,
    pub looks: u32,
    /// The interval at the last look (intersection over looks).
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Sequential {
    /// `tau2` is the mixing variance: the squared size of effect one expects to detect.
    pub fn new(tau2: f64, alpha: f64) -> Self {
        Sequential {
            tau2,
            alpha,
            p_value: 1.0,
            looks: 0,
            ci_low: f64::NEG_INFINITY,
            ci_high: f64::INFINITY,
        }
    }
    pub fn look(&mut self, c: Moments, t: Moments) -> f64 {
        let v = c.var_mean() + t.var_mean();
        let d = t.mean - c.mean;
        self.looks += 1;
        self.p_value = self.p_value.min(msprt_p(d, v, self.tau2));
        let r = msprt_radius(v, self.tau2, self.alpha);
        self.ci_low = self.ci_low.max(d - r);
        self.ci_high = self.ci_high.min(d + r);
        self.p_value
    }
    pub fn significant(&self) -> bool {
        self.p_value < self.alpha
    }
}

/// Sample ratio mismatch: Pearson χ² of observed counts against the planned weights.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Srm {
    #[schema(value_type = Option<f64>)]
    pub chi2: f64,
    #[schema(value_type = Option<f64>)]
    pub p_value: f64,
    /// p < 0.001, the usual threshold (a mismatch this strong means the assignment or the
    /// logging is broken and the results cannot be trusted).
    pub mismatch: bool,
}

pub fn srm(counts: &[u64], weights: &[f64]) -> Srm {
    let n: f64 = counts.iter().map(|c| *c as f64).sum();
    let w: f64 = weights.iter().sum();
    let mut chi2 = 0.0;
    for (c, wi) in counts.iter().zip(weights) {
        let e = n * wi / w;
        if e > 0.0 {
            chi2 += (*c as f64 - e).powi(2) / e;
        }
    }
    let df = (counts.len().max(2) - 1) as f64;
    let p = 1.0 - ChiSquared::new(df).expect("chi2").cdf(chi2);
    Srm {
        chi2,
        p_value: p,
        mismatch: p < 0.001,
    }
}

/// Holm's step-down adjustment (controls the family-wise error rate).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut ix: Vec<usize> = (0..m).collect();
    ix.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut out = vec![1.0; m];
    let mut run: f64 = 0.0;
    for (k, &i) in ix.iter().enumerate() {
        run = run.max(((m - k) as f64 * p[i]).min(1.0));
        out[i] = run;
    }
    out
}

/// Benjamini–Hochberg adjustment (controls the false discovery rate).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut ix: Vec<usize> = (0..m).collect();
    ix.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let mut out = vec![1.0; m];
    let mut run: f64 = 1.0;
    for (k, &i) in ix.iter().enumerate() {
        let rank = (m - k) as f64;
        run = run.min((p[i] * m as f64 / rank).min(1.0));
        out[i] = run;
    }
    out
}

/// A guardrail's verdict: the treatment must not make this metric worse by more than a margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailStatus {
    /// Non-inferiority shown: worse by less than the margin, with 1 − α confidence.
    Ok,
    /// Not enough evidence either way yet.
    Inconclusive,
    /// Significantly worse (two-sided test at α in the harmful direction).
    Violated,
}

/// Checks a guardrail metric. `margin` is the largest acceptable relative harm (0.02 = 2%);
/// `higher_is_better` says which way harm goes (false for complaints or refunds).
pub fn guardrail(
    c: Moments,
    t: Moments,
    margin: f64,
    higher_is_better: bool,
    alpha: f64,
) -> GuardrailStatus {
    let f = welch(c, t, alpha);
    let sign = if higher_is_better { 1.0 } else { -1.0 };
    // Harm in the metric's own units: positive = worse.
    let harm = -sign * f.diff;
    let z = norm().inverse_cdf(1.0 - alpha);
    if f.p_value < alpha && harm > 0.0 {
        GuardrailStatus::Violated
    } else if harm + z * f.se < margin * c.mean.abs() {
        GuardrailStatus::Ok
    } else {
        GuardrailStatus::Inconclusive
    }
}

/// One unit of a cluster-randomised experiment: its cluster (e.g. the store), arm, metric and
/// pre-period covariate.
#[derive(Debug, Clone, Copy)]
pub struct ClusterUnit {
    pub cluster: i64,
    pub treated: bool,
    pub y: f64,
    pub x: f64,
}

/// Store-level (cluster) analysis: each cluster is one observation (its mean per unit), CUPED on
/// the cluster's pre-period mean, then Welch across clusters. Analysing such an experiment per
/// customer ignores that customers of one store share its shocks, and overstates significance.
pub fn cluster_test(units: &[ClusterUnit], alpha: f64) -> Frequentist {
    let mut by: std::collections::BTreeMap<i64, (bool, f64, f64, f64)> = Default::default();
    for u in units {
        let e = by.entry(u.cluster).or_insert((u.treated, 0.0, 0.0, 0.0));
        e.1 += u.y;
        e.2 += u.x;
        e.3 += 1.0;
    }
    let treated: Vec<bool> = by.values().map(|v| v.0).collect();
    let y: Vec<f64> = by.values().map(|v| v.1 / v.3).collect();
    let x: Vec<f64> = by.values().map(|v| v.2 / v.3).collect();
    let (adj, _) = cuped(&y, &x);
    let pick = |t: bool| {
        let v: Vec<f64> = adj
            .iter()
            .zip(&treated)
            .filter(|(_, tr)| **tr == t)
            .map(|(a, _)| *a)
            .collect();
        Moments::of(&v)
    };
    let mut f = welch(pick(false), pick(true), alpha);
    // Report means on the raw scale.
    let raw = |t: bool| {
        let v: Vec<f64> = y
            .iter()
            .zip(&treated)
            .filter(|(_, tr)| **tr == t)
            .map(|(a, _)| *a)
            .collect();
        Moments::of(&v).mean
    };
    f.control_mean = raw(false);
    f.treatment_mean = raw(true);
    f
}

/// One period of one store in a switchback experiment.
#[derive(Debug, Clone, Copy)]
pub struct SwitchbackCell {
    pub store: i64,
    pub period: i64,
    pub treated: bool,
    pub y: f64,
}

/// The periods of each store in a switchback are assigned by hash of (salt, store, period), so
/// every store runs both arms and the design removes store differences.
pub fn switchback_arm(salt: &str, store: i64, period: i64) -> bool {
    assign(salt, &format!("{store}:{period}"), &[1.0, 1.0]) == 1
}

/// Switchback analysis with store and period fixed effects: the treatment effect is estimated
/// inside each store (treated-period mean − control-period mean, each corrected by the
/// all-store mean of its period), then tested across stores as paired differences.
pub fn switchback_test(cells: &[SwitchbackCell], alpha: f64) -> Frequentist {
    use std::collections::{BTreeMap, HashMap};
    let mut period_sum: HashMap<i64, (f64, f64)> = HashMap::new();
    for c in cells {
        let e = period_sum.entry(c.period).or_default();
        e.0 += c.y;
        e.1 += 1.0;
    }
    let mut by: BTreeMap<i64, [(f64, f64); 2]> = BTreeMap::new();
    let mut raw = [(0.0f64, 0.0f64); 2];
    for c in cells {
        let (s, n) = period_sum[&c.period];
        let adj = c.y - s / n;
        let e = by.entry(c.store).or_insert([(0.0, 0.0); 2]);
        let k = c.treated as usize;
        e[k].0 += adj;
        e[k].1 += 1.0;
        raw[k].0 += c.y;
        raw[k].1 += 1.0;
    }
    let d: Vec<f64> = by
        .values()
        .filter(|v| v[0].1 > 0.0 && v[1].1 > 0.0)
        .map(|v| v[1].0 / v[1].1 - v[0].0 / v[0].1)
        .collect();
    let m = Moments::of(&d);
    // A one-sample test of the paired differences, through welch against a zero arm.
    let zero = Moments {
        n: m.n,
        mean: 0.0,
        var: 0.0,
    };
    let mut f = welch(zero, m, alpha);
    f.control_mean = raw[0].0 / raw[0].1.max(1.0);
    f.treatment_mean = raw[1].0 / raw[1].1.max(1.0);
    f.lift = if f.control_mean != 0.0 {
        f.diff / f.control_mean
    } else {
        f64::NAN
    };
    f.lift_ci_low = f.ci_low / f.control_mean;
    f.lift_ci_high = f.ci_high / f.control_mean;
    f
}

/// Units needed per arm to detect an absolute difference `delta` with two-sided level `alpha`
/// and the given power, for a metric with standard deviation `sd`.
pub fn sample_size(sd: f64, delta: f64, alpha: f64, power: f64) -> f64 {
    let n = norm();
    let z = n.inverse_cdf(1.0 - alpha / 2.0) + n.inverse_cdf(power);
    (2.0 * (z * sd / delta).powi(2)).ceil()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_balanced() {
        let a: Vec<usize> = (0..20_000)
            .map(|i| assign("exp1", &i.to_string(), &[1.0, 1.0]))
            .collect();
        let b: Vec<usize> = (0..20_000)
            .map(|i| assign("exp1", &i.to_string(), &[1.0, 1.0]))
            .collect();
        assert_eq!(a, b);
        let ones = a.iter().filter(|x| **x == 1).count() as f64;
        assert!((ones / 20_000.0 - 0.5).abs() < 0.015, "{ones}");
        // A different salt reshuffles: about half the units change arm.
        let moved = (0..20_000)
            .filter(|i| assign("exp2", &i.to_string(), &[1.0, 1.0]) != a[*i as usize])
            .count() as f64;
        assert!((moved / 20_000.0 - 0.5).abs() < 0.02, "{moved}");
        // Known values, computed by an independent implementation (Python, from the algorithm
        // as documented): a release that changes the hash would move every assignment.
        assert_eq!(stable_hash(&["c360"]), 0xea57_aacf_c7e6_c967);
        assert_eq!(stable_hash(&["ab", "c"]), 0x90ce_11c5_a709_d625);
        assert_eq!(stable_hash(&["a", "bc"]), 0x564a_a04d_65a3_4728);
        assert_eq!(stable_hash(&["exp1", "42"]), 0xfd9f_0432_6024_4759);
        assert_eq!(stable_hash(&["coupon", "7", "1001"]), 0x0072_3212_99d7_84ef);
        assert_eq!(stable_hash(&["热狗"]), 0x1c00_70a8_0f02_e1b1);
        // And the arms they give: u = 0.955, 0.252, 0.070 for units 0, 1, 2 of exp1.
        assert_eq!(
            (0..3)
                .map(|i| assign("exp1", &i.to_string(), &[1.0, 1.0]))
                .collect::<Vec<_>>(),
            [1, 0, 0]
        );
        assert_eq!(assign("exp1", "1", &[1.0, 3.0]), 1);
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // Two small samples: t = 2.2129 on 13.19 Welch degrees of freedom, two-sided p ≈ 0.045.
        let c = Moments::of(&[19.0, 22.0, 16.0, 29.0, 24.0, 20.0, 18.0, 21.0]);
        let t = Moments::of(&[20.0, 19.0, 22.0, 32.0, 31.0, 29.0, 27.0, 30.0]);
        let f = welch(c, t, 0.05);
        assert!((f.diff - 5.125).abs() < 1e-9);
        assert!((f.diff / f.se - 2.2129).abs() < 1e-3, "{}", f.diff / f.se);
        assert!(f.p_value > 0.04 && f.p_value < 0.05, "{}", f.p_value);
        assert!(f.ci_low > 0.0);
    }

    #[test]
    fn bayes_is_symmetric_and_loss_is_consistent() {
        let c = Moments {
            n: 1000.0,
            mean: 10.0,
            var: 25.0,
        };
        let t = Moments {
            n: 1000.0,
            mean: 10.5,
            var: 25.0,
        };
        let b = bayes(c, t);
        let r = bayes(t, c);
        assert!((b.chance_to_win + r.chance_to_win - 1.0).abs() < 1e-12);
        assert!(b.chance_to_win > 0.98);
        // Loss of keeping control − loss of shipping treatment = E[D] = 0.5.
        assert!((b.expected_loss_control - b.expected_loss_treatment - 0.5).abs() < 1e-9);
    }

    #[test]
    fn cuped_removes_the_covariate_and_keeps_the_mean() {
        let x: Vec<f64> = (0..1000).map(|i| (i % 37) as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| 2.0 * v + (i % 5) as f64)
            .collect();
        let (adj, theta) = cuped(&y, &x);
        assert!((theta - 2.0).abs() < 0.01, "{theta}");
        let m = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!((m(&adj) - m(&y)).abs() < 1e-9);
        assert!(Moments::of(&adj).var < Moments::of(&y).var / 50.0);
    }

    #[test]
    fn srm_flags_a_skewed_split() {
        assert!(!srm(&[5000, 5050], &[1.0, 1.0]).mismatch);
        assert!(srm(&[5000, 5400], &[1.0, 1.0]).mismatch);
        assert!(!srm(&[9000, 1000], &[0.9, 0.1]).mismatch);
    }

    #[test]
    fn corrections_match_their_definitions() {
        let p = [0.01, 0.04, 0.03, 0.005];
        // Holm: sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1 → 0.02, 0.03, 0.06, 0.06 (monotone).
        let h = holm(&p);
        assert_eq!(h, vec![0.03, 0.06, 0.06, 0.02]);
        // BH: 0.005·4/1 = 0.02, 0.01·4/2 = 0.02, 0.03·4/3 = 0.04, 0.04·4/4 = 0.04.
        let b = benjamini_hochberg(&p);
        let want = [0.02, 0.04, 0.04, 0.02];
        for (x, y) in b.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{b:?}");
        }
    }

    #[test]
    fn msprt_is_conservative_next_to_a_fixed_test() {
        // At the same evidence the always-valid p-value is larger than the fixed-horizon one.
        let v: f64 = 0.01;
        let d = 2.5 * v.sqrt();
        let fixed = 2.0 * (1.0 - phi_cdf(2.5));
        let seq = msprt_p(d, v, v * 4.0);
        assert!(seq > fixed, "{seq} vs {fixed}");
        // And it goes to zero as evidence grows.
        assert!(msprt_p(10.0 * v.sqrt(), v, v) < 1e-6);
        assert!(msprt_radius(v, v, 0.05) > 1.96 * v.sqrt());
    }

    #[test]
    fn guardrail_verdicts() {
        let c = Moments {
            n: 20_000.0,
            mean: 0.05,
            var: 0.0475,
        };
        let same = guardrail(c, c, 0.1, false, 0.05);
        assert_eq!(same, GuardrailStatus::Ok);
        let worse = Moments {
            mean: 0.07,
            var: 0.065,
            ..c
        };
        assert_eq!(
            guardrail(c, worse, 0.1, false, 0.05),
            GuardrailStatus::Violated
        );
        let small = Moments { n: 50.0, ..c };
        assert_eq!(
            guardrail(small, small, 0.1, false, 0.05),
            GuardrailStatus::Inconclusive
        );
    }

    #[test]
    fn sample_size_matches_the_textbook() {
        // sd 1, delta 0.2, α 0.05, power 0.8 → 392.4 per arm.
        assert_eq!(sample_size(1.0, 0.2, 0.05, 0.8), 393.0);
    }
}
