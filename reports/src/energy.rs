//! Energy over a window from sampled readings: a GPU's from its energy counter or integrated
//! power, a CPU's estimate from a declared TDP when no counter is readable, and the share of
//! samples a GPU sat idle. Pure functions of the samples; every energy carries its method.

use charter_record::EnergyMethod;
use serde::{Deserialize, Serialize};

/// Energy over a window, with its method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    pub joules: f64,
    pub method: EnergyMethod,
}

/// Utilisation below this share (%) counts as idle in [`idle_fraction`].
pub const DEFAULT_IDLE_THRESHOLD_PCT: f64 = 5.0;

/// One power/energy observation for [`window_energy`] (`t_s` on the run's clock, seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerSample {
    pub t_s: f64,
    pub power_mw: Option<u32>,
    pub energy_mj: Option<u64>,
}

/// Energy of one device over the window spanned by `samples` (in time order).
///
/// `counter`: when the first and last samples both carry the energy counter and it did not go
/// backwards (a driver reload resets it), energy = (last − first) mJ.
/// `integrated`: otherwise, the trapezoidal integral of power over the samples that have it
/// (linear between them across samples that lack it); it covers the span from the first to
/// the last sample with power.
/// Errors (with the reason) when neither is possible: fewer than two power samples, or time
/// going backwards.
pub fn window_energy(samples: &[PowerSample]) -> Result<Energy, String> {
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        if let (Some(a), Some(b)) = (first.energy_mj, last.energy_mj) {
            if samples.len() >= 2 && b >= a {
                return Ok(Energy {
                    joules: (b - a) as f64 / 1000.0,
                    method: EnergyMethod::Counter,
                });
            }
        }
    }
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.power_mw.map(|p| (s.t_s, p as f64)))
        .collect();
    if points.len() < 2 {
        return Err(format!(
            "no energy counter across the window and {} power sample(s): at least 2 are needed",
            points.len()
        ));
    }
    let mut mj = 0.0;
    for w in points.windows(2) {
        let (t0, p0) = w[0];
        let (t1, p1) = w[1];
        if !t0.is_finite() || !t1.is_finite() || t1 < t0 {
            return Err(format!(
                "sample times must be finite and in order ({t0} s then {t1} s)"
            ));
        }
        mj += (p0 + p1) / 2.0 * (t1 - t0);
    }
    Ok(Energy {
        joules: mj / 1000.0,
        method: EnergyMethod::Integrated,
    })
}

/// Share of samples whose GPU utilisation is below `threshold_pct`, over the samples where
/// utilisation was measured; `None` when none was.
pub fn idle_fraction(util_pct: &[Option<u32>], threshold_pct: f64) -> Option<f64> {
    let measured: Vec<u32> = util_pct.iter().flatten().copied().collect();
    if measured.is_empty() {
        return None;
    }
    let idle = measured
        .iter()
        .filter(|&&u| (u as f64) < threshold_pct)
        .count();
    Some(idle as f64 / measured.len() as f64)
}

/// CPU energy estimate for a window when RAPL is unavailable (docs/cost-energy.md: declared TDP ×
/// measured CPU load, codecarbon's approach): `tdp_w × clamp(busy_cores_mean / logical_cores,
/// 0, 1) × seconds`, labelled `estimated`. `busy_cores_mean` is the mean number of busy logical
/// cores system-wide over the window (the sampler's per-core busy shares, summed), since a
/// package's power follows all of its load. Errors on inputs that do not describe a window (no
/// cores, negative or non-finite values).
pub fn estimate_cpu_energy_j(
    tdp_w: f64,
    busy_cores_mean: f64,
    logical_cores: usize,
    seconds: f64,
) -> Result<Energy, String> {
    if logical_cores == 0 {
        return Err("cannot estimate CPU energy: 0 logical cores".into());
    }
    for (what, v) in [
        ("TDP (W)", tdp_w),
        ("busy cores", busy_cores_mean),
        ("seconds", seconds),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("cannot estimate CPU energy: {what} is {v}"));
        }
    }
    let load = (busy_cores_mean / logical_cores as f64).clamp(0.0, 1.0);
    Ok(Energy {
        joules: tdp_w * load * seconds,
        method: EnergyMethod::Estimated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_s: f64, power_mw: Option<u32>, energy_mj: Option<u64>) -> PowerSample {
        PowerSample {
            t_s,
            power_mw,
            energy_mj,
        }
    }

    #[test]
    fn counter_delta_is_preferred() {
        let e = window_energy(&[
            s(0.0, Some(100_000), Some(5_000)),
            s(1.0, Some(900_000), None),
            s(2.0, Some(100_000), Some(205_000)),
        ])
        .unwrap();
        assert_eq!(e.method, EnergyMethod::Counter);
        assert_eq!(e.joules, 200.0);
    }

    #[test]
    fn integrates_when_counter_missing_at_an_edge_or_reset() {
        // 100 W then 200 W for 1 s, then 200 W for 1 s: 150 + 200 J.
        let a = [
            s(0.0, Some(100_000), None),
            s(1.0, Some(200_000), Some(10)),
            s(2.0, Some(200_000), Some(20)),
        ];
        let e = window_energy(&a).unwrap();
        assert_eq!(e.method, EnergyMethod::Integrated);
        assert!((e.joules - 350.0).abs() < 1e-9, "{e:?}");
        // Counter went backwards (driver reload): integrate.
        let b = [
            s(0.0, Some(100_000), Some(1_000)),
            s(2.0, Some(100_000), Some(10)),
        ];
        let e = window_energy(&b).unwrap();
        assert_eq!(e.method, EnergyMethod::Integrated);
        assert!((e.joules - 200.0).abs() < 1e-9);
    }

    #[test]
    fn integration_bridges_missing_power_and_rejects_too_few() {
        let e = window_energy(&[
            s(0.0, Some(100_000), None),
            s(1.0, None, None),
            s(4.0, Some(300_000), None),
        ])
        .unwrap();
        assert!((e.joules - 800.0).abs() < 1e-9, "{e:?}");
        let err = window_energy(&[s(0.0, Some(1), None), s(1.0, None, None)]).unwrap_err();
        assert!(err.contains("1 power sample"), "{err}");
        assert!(window_energy(&[]).is_err());
        assert!(window_energy(&[s(0.0, None, Some(3))]).is_err());
        let err = window_energy(&[s(1.0, Some(1), None), s(0.0, Some(1), None)]).unwrap_err();
        assert!(err.contains("in order"), "{err}");
    }

    #[test]
    fn idle_fraction_counts_below_threshold_over_measured() {
        let u = [Some(0), Some(4), Some(5), Some(90), None];
        assert_eq!(idle_fraction(&u, DEFAULT_IDLE_THRESHOLD_PCT), Some(0.5));
        assert_eq!(idle_fraction(&u, 100.0), Some(1.0));
        assert_eq!(idle_fraction(&[None, None], 5.0), None);
        assert_eq!(idle_fraction(&[], 5.0), None);
    }

    #[test]
    fn estimate_follows_tdp_times_load() {
        let e = estimate_cpu_energy_j(100.0, 4.0, 16, 10.0).unwrap();
        assert_eq!(e.method, EnergyMethod::Estimated);
        assert_eq!(e.joules, 250.0);
        // Load is capped at all cores busy.
        assert_eq!(
            estimate_cpu_energy_j(100.0, 20.0, 16, 1.0).unwrap().joules,
            100.0
        );
        assert_eq!(
            estimate_cpu_energy_j(65.0, 0.0, 8, 5.0).unwrap().joules,
            0.0
        );
        assert!(estimate_cpu_energy_j(100.0, 1.0, 0, 1.0).is_err());
        assert!(estimate_cpu_energy_j(f64::NAN, 1.0, 4, 1.0).is_err());
        assert!(estimate_cpu_energy_j(100.0, 1.0, 4, -1.0).is_err());
    }
}
