//! The BTYD fits against published references on the CDNOW data set: the parameters reported
//! by Fader, Hardie & Lee, and those the Python `lifetimes` 0.11.3 library finds on the same
//! file (recorded by `bench/lifetimes_ref.py tests/data/cdnow_summary.csv --pareto`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use c360_analytics::clv::{clv, BgNbd, GammaGamma, ParetoNbd, Summary};

fn cdnow() -> (Vec<Summary>, Vec<f64>) {
    let text = include_str!("../data/cdnow_summary.csv");
    let mut s = Vec::new();
    let mut m = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<f64> = line.split(',').map(|v| v.trim().parse().unwrap()).collect();
        s.push(Summary {
            x: f[1],
            t_x: f[2],
            t: f[3],
        });
        m.push(f[4]);
    }
    (s, m)
}

/// Same to three significant figures.
fn sig3(got: f64, want: f64) -> bool {
    (got - want).abs() <= 5e-4 * want.abs()
}

#[test]
fn bgnbd_matches_lifetimes_and_the_paper() {
    let (d, _) = cdnow();
    assert_eq!(d.len(), 2357);
    let m = BgNbd::fit(&d).unwrap();
    // lifetimes 0.11.3: r 0.242593, alpha 4.413532, a 0.792886, b 2.425752
    for (got, want) in [
        (m.r, 0.242593),
        (m.alpha, 4.413532),
        (m.a, 0.792886),
        (m.b, 2.425752),
    ] {
        assert!(sig3(got, want), "{m:?}");
    }
    // Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; LL = -9582.4
    assert!(
        (m.ll * 2357.0 - -9582.4).abs() < 0.1,
        "LL {}",
        m.ll * 2357.0
    );
}

#[test]
fn pareto_nbd_matches_lifetimes() {
    let (d, _) = cdnow();
    let m = ParetoNbd::fit(&d).unwrap();
    // lifetimes 0.11.3: r 0.553272, alpha 10.577608, s 0.606252, beta 11.669274
    for (got, want) in [
        (m.r, 0.553272),
        (m.alpha, 10.577608),
        (m.s, 0.606252),
        (m.beta, 11.669274),
    ] {
        assert!(sig3(got, want), "{m:?}");
    }
}

#[test]
fn pareto_nbd_predictions_match_lifetimes() {
    // lifetimes 0.11.3 on this file: ParetoNBDFitter's params_, then
    // conditional_expected_number_of_purchases_up_to_time(39, x, t_x, T) and
    // conditional_probability_alive(x, t_x, T) for these customers.
    let lt = ParetoNbd {
        r: 0.5532719592230237,
        alpha: 10.577622488311336,
        s: 0.6062410789152095,
        beta: 11.668623987568525,
        ll: 0.0,
    };
    let cases = [
        (0.0, 0.0, 38.86, 0.10705737951209705, 0.2950942477919635),
        (1.0, 1.71, 38.86, 0.17097698686850896, 0.16786994660466567),
        (2.0, 30.43, 38.86, 1.4550958807458332, 0.8691151706738378),
        (7.0, 35.0, 38.86, 4.636111411417544, 0.9360553660514483),
        (4.0, 10.0, 38.86, 0.26881653734161065, 0.09003579154875213),
        (10.0, 37.0, 38.86, 6.729073406327156, 0.9724133914708712),
    ];
    let (d, _) = cdnow();
    let fitted = ParetoNbd::fit(&d).unwrap();
    for (x, t_x, t, e, alive) in cases {
        let s = Summary { x, t_x, t };
        // The same formulas: equal at lifetimes' parameters …
        let (ge, ga) = (lt.expected_purchases(&s, 39.0), lt.p_alive(&s));
        assert!((ge - e).abs() <= 1e-6 * e, "E[X(39)] {ge} vs {e} at {s:?}");
        assert!(
            (ga - alive).abs() <= 1e-6,
            "P(alive) {ga} vs {alive} at {s:?}"
        );
        // … and within 0.5 % at c360's own fit.
        let (fe, fa) = (fitted.expected_purchases(&s, 39.0), fitted.p_alive(&s));
        assert!(
            (fe - e).abs() <= 5e-3 * e,
            "fitted E[X(39)] {fe} vs {e} at {s:?}"
        );
        assert!(
            (fa - alive).abs() <= 5e-3,
            "fitted P(alive) {fa} vs {alive} at {s:?}"
        );
    }
}

#[test]
fn gamma_gamma_and_clv_match_lifetimes() {
    let (d, m) = cdnow();
    let spend: Vec<(f64, f64)> = d
        .iter()
        .zip(&m)
        .filter(|(s, _)| s.x > 0.0)
        .map(|(s, m)| (s.x, *m))
        .collect();
    let g = GammaGamma::fit(&spend).unwrap();
    // lifetimes 0.11.3: p 6.248802, q 3.744588, v 15.447748 (paper: 6.25, 3.74, 15.44)
    for (got, want) in [(g.p, 6.248802), (g.q, 3.744588), (g.v, 15.447748)] {
        assert!(sig3(got, want), "{g:?}");
    }
    // 12 periods of 30 time units at 1% per period, summed over all customers.
    let bg = BgNbd::fit(&d).unwrap();
    let total: f64 = d
        .iter()
        .zip(&m)
        .map(|(s, mv)| {
            let spend = g.expected_spend(s.x, if s.x > 0.0 { *mv } else { 0.0 });
            clv(|t| bg.expected_purchases(s, t), spend, 12, 0.01)
        })
        .sum();
    assert!(sig3(total, 266_621.6), "CLV total {total}");
}

mod graph_ref;
