//! CTM's γ-sampling (Kim et al. 2023, METHODS.md §4).

use super::Noise;
use crate::model::{ctm_jump, Model};
use burn::prelude::*;

/// γ-sampling on `times` = t_0 > t_1 > … > t_N (t_0 = T, t_N = ε, the data end). x = t_0·z;
/// for n = 0..N−1: s_n = sqrt(1 − γ²)·(t_{n+1} − ε) + ε, x = G_θ(x, t_n, s_n), and, unless
/// n = N−1, x += sqrt(t_{n+1}² − s_n²)·z' with fresh z' from `noise` (none is drawn when γ = 0,
/// so γ = 0 is deterministic given z). γ = 1 is consistency multistep with f(x, t) = G_θ(x, t, ε).
pub fn ctm_gamma(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    times: &[f64],
    gamma: f64,
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "γ-sampling needs strictly decreasing times: {times:?}"
    );
    assert!((0.0..=1.0).contains(&gamma), "γ must lie in [0, 1], got {gamma}");
    let [b, d] = z.dims();
    let dev = z.device();
    let eps = *times.last().unwrap();
    let c = (1.0 - gamma * gamma).max(0.0).sqrt();
    let mut x = z.mul_scalar(times[0]);
    let n = times.len() - 1;
    for i in 0..n {
        let (t, t_next) = (times[i], times[i + 1]);
        let s = if i + 1 == n { eps } else { c * (t_next - eps) + eps };
        x = ctm_jump(model, p, x, &vec![t; b], &vec![s; b], None);
        if i + 1 < n {
            let sd = (t_next * t_next - s * s).max(0.0).sqrt();
            if sd > 0.0 {
                x = x + noise.normal(b, d, &dev).mul_scalar(sd);
            }
        }
    }
    x
}
