//! Special functions in log space: ln Γ, and the Gauss hypergeometric function ₂F₁ for the
//! arguments the BTYD models need (|z| < 1), summed by its power series in log space.

pub use statrs::function::gamma::ln_gamma;

/// log(exp(a) + exp(b)) without overflow.
pub fn logaddexp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// log(exp(a) - exp(b)) for a > b.
pub fn logsubexp(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    a + (-(b - a).exp()).ln_1p()
}

/// ₂F₁(a, b; c; z) for 0 ≤ z < 1 and a, b, c > 0 by its power series (all terms positive).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    debug_assert!((0.0..1.0).contains(&z), "z = {z}");
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..200_000 {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

/// ₂F₁(a, b; c; z) at several z at once (0 ≤ z < 1): one pass of the series, the ratio of
/// successive coefficients computed once for every z. Each sum stops where [`hyp2f1`]'s would.
pub fn hyp2f1_many(a: f64, b: f64, c: f64, zs: &[f64], out: &mut [f64]) {
    debug_assert_eq!(zs.len(), out.len());
    let k = zs.len();
    let mut term = vec![1.0; k];
    let mut live = vec![true; k];
    out.fill(1.0);
    let mut left = k;
    for n in 0..200_000 {
        if left == 0 {
            break;
        }
        let n = n as f64;
        let ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0));
        for i in 0..k {
            if live[i] {
                term[i] *= ratio * zs[i];
                out[i] += term[i];
                if term[i].abs() < 1e-15 * out[i].abs() {
                    live[i] = false;
                    left -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z
        for z in [0.1, 0.5, 0.9, 0.99] {
            let want = -(1.0f64 - z).ln() / z;
            assert!(
                (hyp2f1(1.0, 1.0, 2.0, z) - want).abs() < 1e-9 * want,
                "z={z}"
            );
        }
        // 2F1(a, b; b; z) = (1 - z)^-a
        let want = (1.0f64 - 0.3).powf(-2.5);
        assert!((hyp2f1(2.5, 1.7, 1.7, 0.3) - want).abs() < 1e-12 * want);
    }

    #[test]
    fn hyp2f1_many_is_hyp2f1_at_each_z() {
        let zs = [0.05, 0.3, 0.7, 0.93, 0.99];
        let mut out = [0.0; 5];
        for (a, b, c) in [(1.3, 4.2, 5.9), (0.2, 2.5, 3.1), (40.0, 44.0, 45.5)] {
            hyp2f1_many(a, b, c, &zs, &mut out);
            for (z, got) in zs.iter().zip(out) {
                let want = hyp2f1(a, b, c, *z);
                assert!(
                    (got - want).abs() <= 1e-13 * want.abs(),
                    "{a} {b} {c} {z}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn log_sums() {
        assert!((logaddexp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert!((logsubexp(2f64.ln(), 0.0) - 0.0).abs() < 1e-12);
    }
}
