//! Arrival processes checked statistically (fixed seeds): Kolmogorov–Smirnov tests of the
//! inter-arrival times against the distribution each process promises.

use charter_workloads::{Arrivals, Schedule};

fn gaps(rate: f64, arrivals: Arrivals, burstiness: f64, seed: u64, n: usize) -> Vec<f64> {
    let t: Vec<f64> = Schedule::new(rate, arrivals, burstiness, seed)
        .unwrap()
        .take(n + 1)
        .collect();
    t.windows(2).map(|w| w[1] - w[0]).collect()
}

/// The KS statistic D = sup |F_n(x) − F(x)|.
fn ks_statistic(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// Critical value of D at α = 0.01 for large n (Smirnov's asymptotic 1.628 / √n).
fn ks_critical_1pct(n: usize) -> f64 {
    1.628 / (n as f64).sqrt()
}

#[test]
fn poisson_gaps_are_exponential() {
    let rate = 7.0;
    let g = gaps(rate, Arrivals::Poisson, 1.0, 42, 5000);
    let d = ks_statistic(g.clone(), |x| 1.0 - (-rate * x).exp());
    assert!(d < ks_critical_1pct(g.len()), "D = {d}");
    // The test has power: the same gaps are not exponential with twice the rate.
    let wrong = ks_statistic(g, |x| 1.0 - (-2.0 * rate * x).exp());
    assert!(wrong > 3.0 * ks_critical_1pct(5000), "D = {wrong}");
}

#[test]
fn gamma_gaps_follow_gamma_with_burstiness_as_shape() {
    // Shape 2 (smoother than Poisson): Erlang-2 CDF with rate λ = rate × burstiness.
    let (rate, b) = (5.0, 2.0);
    let lambda = rate * b;
    let g = gaps(rate, Arrivals::Gamma, b, 7, 5000);
    let d = ks_statistic(g.clone(), |x| {
        1.0 - (-lambda * x).exp() * (1.0 + lambda * x)
    });
    assert!(d < ks_critical_1pct(g.len()), "D = {d}");
    // Same mean rate as Poisson, less variance: CV² = 1 / shape.
    let mean = g.iter().sum::<f64>() / g.len() as f64;
    let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (g.len() - 1) as f64;
    assert!((mean - 1.0 / rate).abs() < 0.03 / rate, "mean {mean}");
    assert!(
        (var / (mean * mean) - 0.5).abs() < 0.05,
        "cv² {}",
        var / (mean * mean)
    );
    // Burstiness 1 is Poisson.
    let g1 = gaps(rate, Arrivals::Gamma, 1.0, 9, 5000);
    let d1 = ks_statistic(g1, |x| 1.0 - (-rate * x).exp());
    assert!(d1 < ks_critical_1pct(5000), "D = {d1}");
}

#[test]
fn bursty_gamma_keeps_the_mean_rate_with_more_variance() {
    let (rate, b) = (4.0, 0.25);
    let g = gaps(rate, Arrivals::Gamma, b, 3, 20000);
    let mean = g.iter().sum::<f64>() / g.len() as f64;
    let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (g.len() - 1) as f64;
    assert!((mean * rate - 1.0).abs() < 0.05, "mean rate {}", 1.0 / mean);
    let cv2 = var / (mean * mean);
    assert!((cv2 - 4.0).abs() < 0.4, "cv² {cv2} (expected 1 / 0.25 = 4)");
}

#[test]
fn constant_gaps_are_exactly_one_over_rate() {
    let g = gaps(8.0, Arrivals::Constant, 1.0, 0, 100);
    // Every gap equals 1/rate: the distribution is the point mass a KS test would compare to.
    assert_eq!(g.len(), 100);
    assert!(g.iter().all(|x| (x - 0.125).abs() < 1e-12));
}

#[test]
fn schedules_are_reproducible_per_seed() {
    let a = gaps(3.0, Arrivals::Poisson, 1.0, 5, 100);
    assert_eq!(a, gaps(3.0, Arrivals::Poisson, 1.0, 5, 100));
    assert_ne!(a, gaps(3.0, Arrivals::Poisson, 1.0, 6, 100));
}
