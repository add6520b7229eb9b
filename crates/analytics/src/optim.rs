//! A small L-BFGS minimiser with a backtracking (Armijo) line search, used for the likelihood
//! fits. Gradients are analytic where the caller has them, else central differences.

/// Result of a minimisation.
#[derive(Debug, Clone)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Central-difference gradient.
pub fn num_grad(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        let h = 1e-6 * x[i].abs().max(1.0);
        xp[i] = x[i] + h;
        let fp = f(&xp);
        xp[i] = x[i] - h;
        let fm = f(&xp);
        xp[i] = x[i];
        g[i] = (fp - fm) / (2.0 * h);
    }
    g
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` from `x0` with central-difference gradients. Stops when the gradient's
/// max-norm is below `gtol` or the objective stops improving.
pub fn lbfgs(f: &dyn Fn(&[f64]) -> f64, x0: &[f64], gtol: f64, max_iter: usize) -> Minimum {
    lbfgs_grad(f, &|x: &[f64]| num_grad(f, x), x0, gtol, max_iter)
}

/// Minimises `f` from `x0` with the caller's gradient `grad` (analytic: one evaluation where
/// central differences take two per parameter).
pub fn lbfgs_grad(
    f: &dyn Fn(&[f64]) -> f64,
    grad: &dyn Fn(&[f64]) -> Vec<f64>,
    x0: &[f64],
    gtol: f64,
    max_iter: usize,
) -> Minimum {
    let m = 8;
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut fx = f(&x);
    let mut g = grad(&x);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut converged = false;
    let mut it = 0;
    // Finite-difference gradients carry ~1e-10 noise: "flat and small" is as good as it gets.
    let loose = gtol.max(1e-7) * 100.0;
    while it < max_iter {
        it += 1;
        if g.iter().all(|v| v.abs() < gtol) {
            converged = true;
            break;
        }
        // Two-loop recursion.
        let mut q = g.clone();
        let k = s_hist.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            alpha[i] = rho * dot(&s_hist[i], &q);
            for j in 0..n {
                q[j] -= alpha[i] * y_hist[i][j];
            }
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / g.iter().map(|v| v.abs()).fold(1.0, f64::max)
        };
        for v in q.iter_mut() {
            *v *= gamma;
        }
        for i in 0..k {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            let beta = rho * dot(&y_hist[i], &q);
            for j in 0..n {
                q[j] += s_hist[i][j] * (alpha[i] - beta);
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        if dot(&d, &g) >= 0.0 {
            // Not a descent direction: restart with steepest descent.
            d = g.iter().map(|v| -v).collect();
            s_hist.clear();
            y_hist.clear();
        }
        // Backtracking line search.
        let mut step = 1.0;
        let dg = dot(&d, &g);
        let mut accepted = None;
        for _ in 0..60 {
            let xn: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + step * b).collect();
            let fn_ = f(&xn);
            if fn_.is_finite() && fn_ <= fx + 1e-4 * step * dg {
                accepted = Some((xn, fn_));
                break;
            }
            step *= 0.5;
        }
        let Some((xn, fn_)) = accepted else {
            // No step improves on the point: at the optimum up to gradient noise, or stuck.
            converged = g.iter().all(|v| v.abs() < loose);
            break;
        };
        let gn = grad(&xn);
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&s, &y) > 1e-12 {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > m {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        let improvement = fx - fn_;
        x = xn;
        g = gn;
        fx = fn_;
        // A flat objective with a small gradient is the optimum up to finite-difference noise.
        if improvement.abs() < 1e-12 * fx.abs().max(1.0) && g.iter().all(|v| v.abs() < loose) {
            converged = true;
            break;
        }
    }
    if !converged && it >= max_iter {
        converged = g.iter().all(|v| v.abs() < loose);
    }
    Minimum {
        x,
        f: fx,
        iterations: it,
        converged,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn minimises_rosenbrock() {
        let f = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = super::lbfgs(&f, &[-1.2, 1.0], 1e-8, 2000);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4,
            "{m:?}"
        );
    }
}
