//! Validation of the A/B engine on simulated experiments with a known true effect. The units are
//! the simulator's own persons (their true purchase rates, spend and home stores, read from the
//! truth), so the metric has the chain's real skew: most customers buy nothing in a month, a few
//! buy a lot. Each experiment redraws the persons' pre-period and weekly post-period orders, the
//! stores' shocks and the day effects, applies the true effect to the treated, and runs every
//! analysis. Over many experiments, the share of A/A runs called significant is the false-positive
//! rate; the share of A/B runs called significant is the power.

use std::collections::HashMap;

use c360_analytics::experiment::{
    assign, bayes, benjamini_hochberg, cluster_test, cuped, guardrail, holm, srm, switchback_arm,
    switchback_test, welch, ClusterUnit, Frequentist, GuardrailStatus, Moments, Sequential,
    SwitchbackCell,
};
use c360_db::{get_f64, get_i64, Db};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson};
use serde::Serialize;

use crate::error::Result;

/// One unit of the population: true daily purchase rate, mean spend (fen), home store.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    pub id: i64,
    pub lambda: f64,
    pub spend: f64,
    pub store: i64,
}

/// The persons alive at the cut-off who had bought at least once (the customers a campaign can
/// reach), from the truth database.
pub async fn population(truth_url: &str) -> Result<Vec<Unit>> {
    let truth = Db::connect(truth_url).await?;
    let rows = truth
        .fetch_all(
            "SELECT person_id, lambda, mean_spend_fen, home_store_id FROM persons \
             WHERE alive_at_cutoff = 1 AND n_orders > 0 ORDER BY person_id",
        )
        .await?;
    truth.close().await;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Unit {
                id: get_i64(r, "person_id")?,
                lambda: get_f64(r, "lambda")?,
                spend: get_f64(r, "mean_spend_fen")?,
                store: get_i64(r, "home_store_id")?,
            })
        })
        .collect())
}

/// Share of experiments called significant, with its binomial standard error.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Rate {
    pub rate: f64,
    pub se: f64,
}

impl Rate {
    fn of(hits: usize, n: usize) -> Rate {
        let r = hits as f64 / n.max(1) as f64;
        Rate {
            rate: r,
            se: (r * (1.0 - r) / n.max(1) as f64).sqrt(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct AbValidation {
    pub units: usize,
    pub stores: usize,
    pub experiments: usize,
    pub alpha: f64,
    /// True relative effect on the purchase rate in the A/B runs.
    pub effect: f64,
    /// Customer-level design, revenue per customer over 4 weeks.
    pub fpr_welch: Rate,
    pub fpr_cuped: Rate,
    pub fpr_bayes: Rate,
    /// Peeking every week with a fixed-horizon test (the mistake) vs the mSPRT.
    pub fpr_peeking: Rate,
    pub fpr_sequential: Rate,
    pub power_welch: Rate,
    pub power_cuped: Rate,
    pub power_bayes: Rate,
    pub power_sequential: Rate,
    /// Mean CUPED variance reduction (1 − var adjusted / var raw).
    pub cuped_variance_reduction: f64,
    /// Mean estimated lift in the A/B runs (CUPED) and the 95% CI coverage of the true effect.
    pub mean_estimated_lift: f64,
    pub ci_coverage: Rate,
    /// Five metrics per A/A run: family-wise error without correction, with Holm, with BH.
    pub fwer_uncorrected: Rate,
    pub fwer_holm: Rate,
    pub fwer_bh: Rate,
    /// SRM: alarms on clean runs, and detection when 15% of the treated who bought nothing
    /// go missing (a tracking bug that only logs users who opened the app).
    pub srm_false_alarm: Rate,
    pub srm_detected: Rate,
    /// Guardrail on orders per customer (2% margin): violations in A/A runs, and detection when
    /// the treatment cuts orders by 8%.
    pub guardrail_false_violation: Rate,
    pub guardrail_detected: Rate,
    /// Store-randomised experiments: analysed per customer (wrong) vs per store (cluster).
    pub store_fpr_customer_level: Rate,
    pub store_fpr_cluster: Rate,
    pub store_power_cluster: Rate,
    /// Switchback (store × day): store and day fixed effects.
    pub switchback_fpr: Rate,
    pub switchback_power: Rate,
}

/// Compound Poisson draw: orders in `days` at rate `rate`, each Gamma(6) around `spend`.
fn draw(rng: &mut ChaCha8Rng, rate: f64, days: f64, spend: f64) -> (f64, f64) {
    let mu = rate * days;
    let k = if mu > 0.0 {
        Poisson::new(mu).map(|p| p.sample(rng)).unwrap_or(0.0)
    } else {
        0.0
    };
    if k == 0.0 {
        return (0.0, 0.0);
    }
    let s = Gamma::new(6.0 * k, spend / 6.0)
        .map(|g| g.sample(rng))
        .unwrap_or(0.0);
    (k, s)
}

struct Outcome {
    treated: bool,
    pre: f64,
    weeks: [(f64, f64); 4],
}

/// How often each check fired, by name.
#[derive(Default)]
struct Hits(HashMap<&'static str, usize>);

impl Hits {
    fn hit(&mut self, k: &'static str, b: bool) {
        *self.0.entry(k).or_default() += b as usize;
    }
    fn rate(&self, k: &str, n: usize) -> Rate {
        Rate::of(*self.0.get(k).unwrap_or(&0), n)
    }
}

/// One experiment's simulated world: every customer's outcome under customer randomisation, and
/// the same people under store randomisation (per customer, and as cluster units).
struct World {
    cust: Vec<Outcome>,
    by_store: Vec<ClusterUnit>,
    /// Store-randomised outcomes per customer: (control, treated).
    by_store_naive: (Vec<f64>, Vec<f64>),
}

impl World {
    /// Values of `f` for the customers of one arm (customer randomisation).
    fn arm(&self, treated: bool, f: &dyn Fn(&Outcome) -> f64) -> Vec<f64> {
        self.cust
            .iter()
            .filter(|o| o.treated == treated)
            .map(f)
            .collect()
    }
}

fn revenue(o: &Outcome) -> f64 {
    o.weeks.iter().map(|w| w.1).sum::<f64>()
}

fn orders(o: &Outcome) -> f64 {
    o.weeks.iter().map(|w| w.0).sum::<f64>()
}

/// Draws one experiment's world. Store shocks are shared by everyone at a store over the post
/// period (log-normal, σ 0.15: a local event, a road closure, a new competitor).
fn simulate(pop: &[Unit], stores: &[i64], rng: &mut ChaCha8Rng, salt: &str, eff: f64) -> World {
    let shock: HashMap<i64, f64> = stores
        .iter()
        .map(|s| {
            let z: f64 = rand_distr::StandardNormal.sample(rng);
            (*s, (0.15 * z).exp())
        })
        .collect();
    let store_arm: HashMap<i64, bool> = stores
        .iter()
        .map(|s| (*s, assign(salt, &format!("store:{s}"), &[1.0, 1.0]) == 1))
        .collect();
    let mut w = World {
        cust: Vec::with_capacity(pop.len()),
        by_store: Vec::with_capacity(pop.len()),
        by_store_naive: (Vec::new(), Vec::new()),
    };
    for u in pop {
        let treated = assign(salt, &u.id.to_string(), &[1.0, 1.0]) == 1;
        let (_, pre) = draw(rng, u.lambda, 56.0, u.spend);
        let sh = shock[&u.store];
        let mut weeks = [(0.0, 0.0); 4];
        for wk in weeks.iter_mut() {
            let m = if treated { 1.0 + eff } else { 1.0 };
            *wk = draw(rng, u.lambda * m * sh, 7.0, u.spend);
        }
        w.cust.push(Outcome {
            treated,
            pre,
            weeks,
        });
        // The same person in the store-randomised world.
        let st = store_arm[&u.store];
        let m = if st { 1.0 + eff } else { 1.0 };
        let (_, y) = draw(rng, u.lambda * m * sh, 28.0, u.spend);
        w.by_store.push(ClusterUnit {
            cluster: u.store,
            treated: st,
            y,
            x: pre,
        });
        if st {
            w.by_store_naive.1.push(y);
        } else {
            w.by_store_naive.0.push(y);
        }
    }
    w
}

/// The customer-level revenue tests of one run (Welch, CUPED, Bayes, weekly peeking against the
/// mSPRT), counted as false positives in an A/A run and as power in an A/B run. Returns the raw
/// and CUPED-adjusted control moments and the CUPED test.
fn customer_tests(
    w: &World,
    aa: bool,
    alpha: f64,
    hits: &mut Hits,
) -> (Moments, Moments, Frequentist) {
    let (c, t) = (
        Moments::of(&w.arm(false, &revenue)),
        Moments::of(&w.arm(true, &revenue)),
    );
    let f = welch(c, t, alpha);
    let y: Vec<f64> = w.cust.iter().map(revenue).collect();
    let x: Vec<f64> = w.cust.iter().map(|o| o.pre).collect();
    let (adj, _) = cuped(&y, &x);
    let pick = |tr: bool| {
        let v: Vec<f64> = adj
            .iter()
            .zip(&w.cust)
            .filter(|(_, o)| o.treated == tr)
            .map(|(a, _)| *a)
            .collect();
        Moments::of(&v)
    };
    let (cc, ct) = (pick(false), pick(true));
    let fc = welch(cc, ct, alpha);
    let b = bayes(cc, ct);
    // Weekly looks. Mixing variance: a 10% effect on the pre-period's 4-week revenue (known
    // before launch).
    let pre4 = x.iter().sum::<f64>() / x.len().max(1) as f64 / 2.0;
    let mut seq = Sequential::new((0.1 * pre4).powi(2), alpha);
    let mut peek = false;
    for k in 1..=4 {
        let cum = |o: &Outcome| o.weeks[..k].iter().map(|w| w.1).sum::<f64>();
        let (a, bb) = (
            Moments::of(&w.arm(false, &cum)),
            Moments::of(&w.arm(true, &cum)),
        );
        seq.look(a, bb);
        peek |= welch(a, bb, alpha).p_value < alpha;
    }
    let tag = |s: &'static str, s2: &'static str| if aa { s } else { s2 };
    hits.hit(tag("fpr_welch", "power_welch"), f.p_value < alpha);
    hits.hit(tag("fpr_cuped", "power_cuped"), fc.p_value < alpha);
    hits.hit(
        tag("fpr_bayes", "power_bayes"),
        b.chance_to_win > 0.975 || b.chance_to_win < 0.025,
    );
    hits.hit(tag("fpr_seq", "power_seq"), seq.significant());
    if aa {
        hits.hit("fpr_peek", peek);
    }
    (c, cc, fc)
}

/// What only an A/A run can tell: five metrics at once (uncorrected, Holm, BH), SRM clean and
/// with a tracking bug, the orders guardrail without and with harm, and the store-randomised
/// design analysed per customer (wrong) and per store.
fn aa_checks(w: &World, alpha: f64, hits: &mut Hits) {
    let metrics: [&dyn Fn(&Outcome) -> f64; 5] = [
        &revenue,
        &orders,
        &|o: &Outcome| (orders(o) > 0.0) as u8 as f64,
        &|o: &Outcome| o.weeks[0].1,
        &|o: &Outcome| o.weeks[3].1,
    ];
    let ps: Vec<f64> = metrics
        .iter()
        .map(|m| {
            welch(
                Moments::of(&w.arm(false, *m)),
                Moments::of(&w.arm(true, *m)),
                alpha,
            )
            .p_value
        })
        .collect();
    hits.hit("fwer_raw", ps.iter().any(|p| *p < alpha));
    hits.hit("fwer_holm", holm(&ps).iter().any(|p| *p < alpha));
    hits.hit(
        "fwer_bh",
        benjamini_hochberg(&ps).iter().any(|p| *p < alpha),
    );
    // SRM, clean and with a tracking bug that loses 15% of the treated who bought nothing.
    let nt = w.cust.iter().filter(|o| o.treated).count() as u64;
    let nc = w.cust.len() as u64 - nt;
    hits.hit("srm_clean", srm(&[nc, nt], &[1.0, 1.0]).mismatch);
    let zero_t = w
        .cust
        .iter()
        .filter(|o| o.treated && revenue(o) == 0.0)
        .count() as f64;
    let lost = (0.15 * zero_t).round() as u64;
    hits.hit("srm_bug", srm(&[nc, nt - lost], &[1.0, 1.0]).mismatch);
    // Guardrail: orders per customer.
    let (oc, ot) = (
        Moments::of(&w.arm(false, &orders)),
        Moments::of(&w.arm(true, &orders)),
    );
    hits.hit(
        "guard_aa",
        guardrail(oc, ot, 0.02, true, alpha) == GuardrailStatus::Violated,
    );
    let harmed = Moments {
        mean: ot.mean * 0.92,
        ..ot
    };
    hits.hit(
        "guard_harm",
        guardrail(oc, harmed, 0.02, true, alpha) == GuardrailStatus::Violated,
    );
    let naive = welch(
        Moments::of(&w.by_store_naive.0),
        Moments::of(&w.by_store_naive.1),
        alpha,
    );
    hits.hit("store_naive", naive.p_value < alpha);
    hits.hit(
        "store_cluster",
        cluster_test(&w.by_store, alpha).p_value < alpha,
    );
}

/// A switchback run: each store's days assigned by hash; daily revenue with store, day and
/// store-day noise. Whether the test rejects.
fn switchback(pop: &[Unit], rng: &mut ChaCha8Rng, salt: &str, eff: f64, alpha: f64) -> bool {
    let mut cells = Vec::new();
    let day_fx: Vec<f64> = (0..28)
        .map(|d| if d % 7 >= 5 { 1.2 } else { 1.0 } * (0.1 * rng.random::<f64>() - 0.05).exp())
        .collect();
    // In store order: a hash map's order differs between processes, and the draws below follow
    // it, so a seeded validation would not repeat.
    let mut rate_of: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
    for u in pop {
        let r = rate_of.entry(u.store).or_default();
        r.0 += u.lambda;
        r.1 += u.lambda * u.spend;
    }
    for (s, (lam, ls)) in &rate_of {
        for (d, fx) in day_fx.iter().enumerate() {
            let tr = switchback_arm(salt, *s, d as i64);
            let m = if tr { 1.0 + eff } else { 1.0 };
            let (_, yv) = draw(rng, lam * fx * m, 1.0, ls / lam.max(1e-12));
            cells.push(SwitchbackCell {
                store: *s,
                period: d as i64,
                treated: tr,
                y: yv,
            });
        }
    }
    switchback_test(&cells, alpha).p_value < alpha
}

/// Runs `n` A/A and `n` A/B experiments of each design on the population.
pub fn validate(pop: &[Unit], n: usize, effect: f64, seed: u64) -> AbValidation {
    let alpha = 0.05;
    let stores: Vec<i64> = {
        let mut s: Vec<i64> = pop.iter().map(|u| u.store).collect();
        s.sort();
        s.dedup();
        s
    };
    let mut hits = Hits::default();
    let (mut vr_sum, mut lift_sum) = (0.0, 0.0);
    for e in 0..n {
        for aa in [true, false] {
            let eff = if aa { 0.0 } else { effect };
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ ((((e as u64) << 1) | aa as u64) * 0x9E37_79B9));
            let salt = format!("exp-{seed}-{e}-{aa}");
            let w = simulate(pop, &stores, &mut rng, &salt, eff);
            let (c, cc, fc) = customer_tests(&w, aa, alpha, &mut hits);
            if aa {
                vr_sum += 1.0 - cc.var / c.var.max(1e-12);
                aa_checks(&w, alpha, &mut hits);
            } else {
                lift_sum += fc.diff / c.mean;
                let truth = effect * c.mean;
                hits.hit("coverage", fc.ci_low <= truth && truth <= fc.ci_high);
                hits.hit(
                    "store_power",
                    cluster_test(&w.by_store, alpha).p_value < alpha,
                );
            }
            let sb = switchback(pop, &mut rng, &salt, eff, alpha);
            hits.hit(if aa { "sb_fpr" } else { "sb_power" }, sb);
        }
    }
    let r = |k: &str| hits.rate(k, n);
    AbValidation {
        units: pop.len(),
        stores: stores.len(),
        experiments: n,
        alpha,
        effect,
        fpr_welch: r("fpr_welch"),
        fpr_cuped: r("fpr_cuped"),
        fpr_bayes: r("fpr_bayes"),
        fpr_peeking: r("fpr_peek"),
        fpr_sequential: r("fpr_seq"),
        power_welch: r("power_welch"),
        power_cuped: r("power_cuped"),
        power_bayes: r("power_bayes"),
        power_sequential: r("power_seq"),
        cuped_variance_reduction: vr_sum / n.max(1) as f64,
        mean_estimated_lift: lift_sum / n.max(1) as f64,
        ci_coverage: r("coverage"),
        fwer_uncorrected: r("fwer_raw"),
        fwer_holm: r("fwer_holm"),
        fwer_bh: r("fwer_bh"),
        srm_false_alarm: r("srm_clean"),
        srm_detected: r("srm_bug"),
        guardrail_false_violation: r("guard_aa"),
        guardrail_detected: r("guard_harm"),
        store_fpr_customer_level: r("store_naive"),
        store_fpr_cluster: r("store_cluster"),
        store_power_cluster: r("store_power"),
        switchback_fpr: r("sb_fpr"),
        switchback_power: r("sb_power"),
    }
}

/// One simulated A/B experiment's units (`treated,pre,post` in fen) and this engine's analysis of
/// them, for checking against a reference implementation (scipy, statsmodels).
pub fn export_one(
    pop: &[Unit],
    effect: f64,
    seed: u64,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let salt = format!("export-{seed}");
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("units.csv"))?);
    writeln!(w, "treated,pre,post")?;
    let (mut t, mut y, mut x) = (Vec::new(), Vec::new(), Vec::new());
    for u in pop {
        let tr = assign(&salt, &u.id.to_string(), &[1.0, 1.0]) == 1;
        let (_, pre) = draw(&mut rng, u.lambda, 56.0, u.spend);
        let m = if tr { 1.0 + effect } else { 1.0 };
        let (_, post) = draw(&mut rng, u.lambda * m, 28.0, u.spend);
        writeln!(w, "{},{pre:.4},{post:.4}", tr as u8)?;
        t.push(tr);
        y.push(post);
        x.push(pre);
    }
    w.flush()?;
    let pick = |v: &[f64], tr: bool| {
        Moments::of(
            &v.iter()
                .zip(&t)
                .filter(|(_, a)| **a == tr)
                .map(|(b, _)| *b)
                .collect::<Vec<_>>(),
        )
    };
    let (adj, theta) = cuped(&y, &x);
    let raw = welch(pick(&y, false), pick(&y, true), 0.05);
    let cup = welch(pick(&adj, false), pick(&adj, true), 0.05);
    let nt = t.iter().filter(|a| **a).count() as u64;
    let ps = [raw.p_value, cup.p_value, 0.01, 0.04, 0.3];
    let out = serde_json::json!({
        "welch": raw, "cuped": cup, "cuped_theta": theta,
        "bayes": bayes(pick(&adj, false), pick(&adj, true)),
        "srm": srm(&[t.len() as u64 - nt, nt], &[1.0, 1.0]),
        "p_values": ps, "holm": holm(&ps), "bh": benjamini_hochberg(&ps),
    });
    std::fs::write(dir.join("c360.json"), serde_json::to_string_pretty(&out)?)
}
