//! Noise grids and curricula: plain `f64` functions of the step, no tensors, no state.
//!
//! Time convention: EDM "VE" noise level σ ∈ [ε, T] (data end σ = ε, noise end σ = T), as in
//! METHODS.md §0–2. Grids are returned **ascending**, σ_1 = ε < … < σ_N = T, matching the
//! index convention of the Karras formula (METHODS.md §1).

/// EDM's σ_min = ε (Karras et al. 2022, Table 1; Song et al. 2023's data end).
pub const EDM_EPS: f64 = 0.002;
/// EDM's σ_max = T.
pub const EDM_T_MAX: f64 = 80.0;
/// EDM's ρ of the sampling grid.
pub const EDM_RHO: f64 = 7.0;

/// Karras et al. (2022) eq. 5 grid with ρ: σ_i = (ε^{1/ρ} + (i−1)/(N−1)(T^{1/ρ} − ε^{1/ρ}))^ρ,
/// i = 1..N, ascending. METHODS.md §1.
pub fn karras(n: usize, eps: f64, t_max: f64, rho: f64) -> Vec<f64> {
    assert!(n >= 2, "a Karras grid needs at least 2 points, got {n}");
    let a = eps.powf(1.0 / rho);
    let b = t_max.powf(1.0 / rho);
    (0..n)
        .map(|i| {
            if i == 0 {
                eps
            } else if i == n - 1 {
                t_max
            } else {
                (a + i as f64 / (n - 1) as f64 * (b - a)).powf(rho)
            }
        })
        .collect()
}

/// One point of the Karras ramp at u ∈ [0, 1] (u = 0 → ε, u = 1 → T); CTM's DSM draws use it.
pub fn karras_ramp(u: f64, eps: f64, t_max: f64, rho: f64) -> f64 {
    let a = eps.powf(1.0 / rho);
    let b = t_max.powf(1.0 / rho);
    (a + u * (b - a)).powf(rho)
}

/// The `steps + 1` times T = t_0 > … > t_steps = ε of a Karras grid (ODE samplers, CTM's jumps).
pub fn karras_desc(steps: usize, eps: f64, t_max: f64, rho: f64) -> Vec<f64> {
    let mut g = karras(steps.max(1) + 1, eps, t_max, rho);
    g.reverse();
    g
}

/// The time list of `steps`-step consistency sampling, [T, τ_1, …, τ_{steps−1}, ε]: no
/// intermediate σ for one step, `mid` for two (0.821, ECT's CIFAR-10 choice, by default), and the
/// interior of the (steps+1)-point Karras grid otherwise (Song et al. 2023, Alg. 1).
pub fn consistency_times(steps: usize, mid: f64, eps: f64, t_max: f64, rho: f64) -> Vec<f64> {
    match steps {
        0 | 1 => vec![t_max, eps],
        2 => vec![t_max, mid, eps],
        _ => karras_desc(steps, eps, t_max, rho),
    }
}

/// `steps + 1` evenly spaced times between 0 and 1 (flow samplers): t_k = k/steps upwards
/// (FACM, t = 1 data) or 1 − k/steps downwards (MeanFlow, t = 0 data).
pub fn uniform_times(steps: usize, upwards: bool) -> Vec<f64> {
    let n = steps.max(1);
    (0..=n)
        .map(|k| {
            let f = k as f64 / n as f64;
            if upwards {
                f
            } else {
                1.0 - f
            }
        })
        .collect()
}

/// Consistency-training discretisation curriculum of Song et al. (2023)
/// (`cm/script_util.py create_ema_and_scales_fn`, METHODS.md §1):
/// N'(k) = max(ceil(sqrt(k/K·((s1+1)² − s0²) + s0²) − 1), 1), N(k) = N'(k) + 1.
pub fn ct_n(k: u64, total: u64, s0: f64, s1: f64) -> usize {
    let frac = k as f64 / total.max(1) as f64;
    let np = ((frac * ((s1 + 1.0).powi(2) - s0 * s0) + s0 * s0).sqrt() - 1.0)
        .ceil()
        .max(1.0);
    np as usize + 1
}

/// EMA decay of the CT target network, μ(k) = exp(s0·ln μ0 / N'(k)) with N'(k) = N(k) − 1,
/// as the official code computes it (openai/consistency_models `cm/script_util.py`
/// `create_ema_and_scales_fn`, 'adaptive'; jcm `losses.py`): μ(0) = μ0^{s0} (0.81 for
/// s0 = 2, μ0 = 0.9).
pub fn ct_mu(k: u64, total: u64, s0: f64, s1: f64, mu0: f64) -> f64 {
    let np = (ct_n(k, total, s0, s1) - 1) as f64;
    (s0 * mu0.ln() / np).exp()
}

/// The CM paper's μ(k) = exp(s0·ln μ0 / N(k)) (Song et al. 2023, App. C): divides by N(k)
/// itself, so μ(0) = μ0^{s0/N(0)}: 0.9 for s0 = 2, μ0 = 0.9 (N(0) = 2) (AUDIT D6).
pub fn ct_mu_paper(k: u64, total: u64, s0: f64, s1: f64, mu0: f64) -> f64 {
    let n = ct_n(k, total, s0, s1) as f64;
    (s0 * mu0.ln() / n).exp()
}

/// The `steps + 1` times of EDM's Heun sampler (Karras et al. 2022, Alg. 1;
/// openai/consistency_models `get_sigmas_karras` + `sample_heun`): the `steps`-point Karras
/// grid from T down to ε, then 0. Heun on every interval but the last, which is an Euler step
/// to σ = 0, so `steps` steps cost 2·steps − 1 network evaluations (18 steps: 35). One step is
/// a single Euler step T → 0, i.e. D(T·z, T).
pub fn edm_times(steps: usize, eps: f64, t_max: f64, rho: f64) -> Vec<f64> {
    let mut t = if steps <= 1 {
        vec![t_max]
    } else {
        let mut g = karras(steps, eps, t_max, rho);
        g.reverse();
        g
    };
    t.push(0.0);
    t
}

/// iCT doubling curriculum (Song & Dhariwal 2023, METHODS.md §2):
/// K' = floor(K / (log2 floor(s1/s0) + 1)), N(k) = min(s0·2^{floor(k/K')}, s1) + 1.
/// Only the ratio s1/s0 is floored (AUDIT B2), not its logarithm.
pub fn ict_n(k: u64, total: u64, s0: u64, s1: u64) -> usize {
    let stages = ((s1 / s0) as f64).log2() + 1.0;
    let kp = ((total as f64 / stages).floor() as u64).max(1);
    let doublings = (k / kp).min(62) as u32;
    let n = s0.saturating_mul(1u64 << doublings).min(s1);
    n as usize + 1
}

/// iCT lognormal proposal over the intervals of an ascending grid σ_1 < … < σ_N:
/// P(i) ∝ erf((ln σ_{i+1} − P_mean)/(√2 P_std)) − erf((ln σ_i − P_mean)/(√2 P_std)),
/// i = 1..N−1 (METHODS.md §2). Returned normalised, length N − 1.
pub fn ict_probs(grid: &[f64], p_mean: f64, p_std: f64) -> Vec<f64> {
    let c = |s: f64| libm::erf((s.ln() - p_mean) / (std::f64::consts::SQRT_2 * p_std));
    let w: Vec<f64> = grid.windows(2).map(|w| c(w[1]) - c(w[0])).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// ECT's target noise level r(σ) for stage `stage` (Geng et al. 2024, locuslab/ect
/// `training/loss.py`, METHODS.md §2): r = max(0, σ·(1 − q^{−(s+1)}·(1 + 8·sigmoid(−σ)))),
/// the default mapping ([`ect_r_with`] with k = 8, b = 1, `sigmoid`).
pub fn ect_r(sigma: f64, stage: u32, q: f64) -> f64 {
    ect_r_with(sigma, stage, q, 8.0, 1.0, EctMapping::Sigmoid)
}

/// ECT's mapping from t = σ to r (locuslab/ect `training/loss.py` `t_to_r_sigmoid`,
/// `t_to_r_const`; `ct_train.py` options `--mapping`, `-k`, `-b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EctMapping {
    /// r = σ·(1 − q^{−(s+1)}·(1 + k·sigmoid(−b·σ))), clamped at 0 (the official default).
    Sigmoid,
    /// r = σ·(1 − q^{−(s+1)}), clamped at 0 (`--mapping const`).
    Const,
}

/// r(σ) of ECT's mapping at stage s with decay q and, for `sigmoid`, k and b:
/// r = max(0, σ·(1 − q^{−(s+1)}·adj)), adj = 1 + k·sigmoid(−b·σ) or 1 (`const`).
pub fn ect_r_with(sigma: f64, stage: u32, q: f64, k: f64, b: f64, mapping: EctMapping) -> f64 {
    let adj = match mapping {
        EctMapping::Sigmoid => 1.0 + k / (1.0 + (b * sigma).exp()),
        EctMapping::Const => 1.0,
    };
    (sigma * (1.0 - q.powi(-(stage as i32 + 1)) * adj)).max(0.0)
}

/// The standard normal CDF, used by tests and by the iCT probabilities.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn karras_18_matches_methods_table() {
        // METHODS.md §1 lists the N = 18 grid (descending); ours is ascending.
        let want = [
            80.0, 57.59, 40.79, 28.37, 19.35, 12.91, 8.40, 5.32, 3.26, 1.92, 1.09, 0.585, 0.296, 0.140, 0.060, 0.023,
            0.0075, 0.002,
        ];
        let g = karras(18, 0.002, 80.0, 7.0);
        for (got, want) in g.iter().rev().zip(want) {
            let rel = (got - want).abs() / want;
            assert!(rel < 0.02, "got {got} want {want}");
        }
        assert_eq!(g[0], 0.002);
        assert_eq!(g[17], 80.0);
        assert!(g.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ct_curriculum_values() {
        // k = 0: N' = max(ceil(sqrt(s0²) − 1), 1) = 1 for s0 = 2 → N = 2.
        assert_eq!(ct_n(0, 800_000, 2.0, 150.0), 2);
        // k = K: N' = ceil(s1 + 1 − 1) = 150 → N = 151.
        assert_eq!(ct_n(800_000, 800_000, 2.0, 150.0), 151);
        // halfway: sqrt(0.5·(151² − 4) + 4) = 106.79.. → ceil(105.79..) = 106 → N = 107.
        assert_eq!(ct_n(400_000, 800_000, 2.0, 150.0), 107);
        // μ(0) = exp(2 ln 0.9 / 1) = 0.81.
        assert!((ct_mu(0, 800_000, 2.0, 150.0, 0.9) - 0.81).abs() < 1e-12);
        let mu_end = ct_mu(800_000, 800_000, 2.0, 150.0, 0.9);
        assert!((mu_end - (2.0 * 0.9f64.ln() / 150.0).exp()).abs() < 1e-12);
    }

    #[test]
    fn ict_curriculum_doubles() {
        // K = 400k, s0 = 10, s1 = 1280: K' = floor(400k / 8) = 50k.
        let k = 400_000;
        let want = [11, 21, 41, 81, 161, 321, 641, 1281];
        for (stage, w) in want.iter().enumerate() {
            assert_eq!(ict_n(stage as u64 * 50_000, k, 10, 1280), *w);
            assert_eq!(ict_n(stage as u64 * 50_000 + 49_999, k, 10, 1280), *w);
        }
        assert_eq!(ict_n(400_000, k, 10, 1280), 1281);
        assert_eq!(ict_n(10_000_000, k, 10, 1280), 1281);
    }

    #[test]
    fn ict_probs_sum_to_one_and_match_cdf() {
        let g = karras(11, 0.002, 80.0, 7.0);
        let p = ict_probs(&g, -1.1, 2.0);
        assert_eq!(p.len(), 10);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Each unnormalised mass is a lognormal CDF difference.
        let cdf = |s: f64| normal_cdf((s.ln() + 1.1) / 2.0);
        let z = cdf(80.0) - cdf(0.002);
        for i in 0..10 {
            let want = (cdf(g[i + 1]) - cdf(g[i])) / z;
            assert!((p[i] - want).abs() < 1e-9, "{i}: {} vs {want}", p[i]);
        }
    }

    #[test]
    fn ect_r_properties() {
        // r < σ always, r ≥ 0, and r → σ as the stage grows.
        for &s in &[0.01, 0.1, 1.0, 10.0, 80.0] {
            let r0 = ect_r(s, 0, 2.0);
            let r8 = ect_r(s, 8, 2.0);
            assert!(r0 >= 0.0 && r0 < s);
            assert!(r8 >= r0 && r8 < s);
            assert!((s - r8) / s < 0.05 * (1.0 + 8.0));
        }
        // σ = 1, stage 0: 1 − 0.5·(1 + 8·sigmoid(−1)) = 1 − 0.5·(1 + 8·0.26894) < 0 → 0.
        assert_eq!(ect_r(1.0, 0, 2.0), 0.0);
        // σ = 10, stage 0: 10·(1 − 0.5·(1 + 8·4.5398e-5)) = 4.99818.
        assert!((ect_r(10.0, 0, 2.0) - 10.0 * (1.0 - 0.5 * (1.0 + 8.0 / (1.0 + 10f64.exp())))).abs() < 1e-12);
    }

    /// AUDIT B2: the paper floors only s1/s0, K' = floor(K / (log2 floor(s1/s0) + 1)); flooring
    /// the log too makes K' too large whenever s1/s0 is not a power of two.
    #[test]
    fn audit_b2_ict_n_floors_only_the_ratio() {
        // s0 = 10, s1 = 1000: K' = floor(400k / (log2 100 + 1)) = 52,329; k = 380k is stage 7.
        assert_eq!(ict_n(380_000, 400_000, 10, 1000), 1001);
        assert_eq!(ict_n(366_303, 400_000, 10, 1000), 1001);
        assert_eq!(ict_n(366_302, 400_000, 10, 1000), 641);
        // s0 = 2, s1 = 150: K' = floor(400k / (log2 75 + 1)) = 55,334; k = 390k is stage 7.
        assert_eq!(ict_n(390_000, 400_000, 2, 150), 151);
        assert_eq!(ict_n(7 * 55_334, 400_000, 2, 150), 151);
        assert_eq!(ict_n(7 * 55_334 - 1, 400_000, 2, 150), 129);
    }

    /// AUDIT §4: the N = 18 Karras grid to 1e-5 relative (values from
    /// (80^{1/7} + i/17·(0.002^{1/7} − 80^{1/7}))^7, descending).
    #[test]
    fn audit_karras_18_tight() {
        let want = [
            80.0, 57.5860, 40.7856, 28.3746, 19.3525, 12.9101, 8.40094, 5.31519, 3.25682, 1.92334, 1.08817, 0.585348,
            0.296442, 0.139516, 0.0599473, 0.0229345, 0.00752802, 0.002,
        ];
        let g = karras(18, 0.002, 80.0, 7.0);
        for (got, want) in g.iter().rev().zip(want) {
            let rel = (got - want).abs() / want;
            assert!(rel < 1e-5, "got {got} want {want}");
        }
    }

    /// AUDIT D6: the paper's μ(k) divides by N(k), the code's by N(k) − 1.
    #[test]
    fn audit_d6_ct_mu_paper_and_code() {
        assert!((ct_mu(0, 800_000, 2.0, 150.0, 0.9) - 0.81).abs() < 1e-12);
        assert!((ct_mu_paper(0, 800_000, 2.0, 150.0, 0.9) - 0.9).abs() < 1e-12);
        let n = ct_n(400_000, 800_000, 2.0, 150.0) as f64;
        assert!((ct_mu_paper(400_000, 800_000, 2.0, 150.0, 0.9) - (2.0 * 0.9f64.ln() / n).exp()).abs() < 1e-15);
    }

    /// AUDIT M3: ECT's `const` mapping and the k, b of `sigmoid`.
    #[test]
    fn audit_m3_ect_mappings() {
        assert_eq!(ect_r_with(10.0, 0, 2.0, 8.0, 1.0, EctMapping::Const), 5.0);
        assert_eq!(ect_r_with(10.0, 1, 2.0, 8.0, 1.0, EctMapping::Const), 7.5);
        // sigmoid with k = 8, b = 1 is the default mapping: r(10) = 4.998184.
        assert!((ect_r(10.0, 0, 2.0) - 4.998184).abs() < 1e-6);
        assert_eq!(
            ect_r(10.0, 0, 2.0),
            ect_r_with(10.0, 0, 2.0, 8.0, 1.0, EctMapping::Sigmoid)
        );
        // b = 2: adj = 1 + 4·sigmoid(−2) at σ = 1; k = 0 is the const mapping.
        let adj = 1.0 + 4.0 / (1.0 + 2f64.exp());
        assert!((ect_r_with(1.0, 2, 2.0, 4.0, 2.0, EctMapping::Sigmoid) - (1.0 - adj / 8.0)).abs() < 1e-15);
        assert_eq!(
            ect_r_with(3.0, 1, 2.0, 0.0, 1.0, EctMapping::Sigmoid),
            ect_r_with(3.0, 1, 2.0, 8.0, 1.0, EctMapping::Const)
        );
    }

    /// AUDIT D8: EDM's Heun sampler times end with 0 after the Karras grid (18 steps: the
    /// 18-point grid and 0).
    #[test]
    fn audit_d8_edm_times_end_at_zero() {
        let t = edm_times(18, 0.002, 80.0, 7.0);
        assert_eq!(t.len(), 19);
        assert_eq!(t[0], 80.0);
        assert_eq!(t[17], 0.002);
        assert_eq!(t[18], 0.0);
        assert_eq!(edm_times(1, 0.002, 80.0, 7.0), vec![80.0, 0.0]);
        assert_eq!(edm_times(2, 0.002, 80.0, 7.0), vec![80.0, 0.002, 0.0]);
    }
}
