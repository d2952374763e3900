//! Consistency multistep sampling (Song et al. 2023, Alg. 1), in EDM and in TrigFlow time.

use super::Noise;
use crate::model::Model;
use burn::prelude::*;

/// EDM time, `times` = [T, τ_1, …, τ_{n−1}, ε]: x = f(T·z, T); for each intermediate τ,
/// x = f(x + sqrt(τ² − ε²)·z', τ) with fresh z' from `noise`. One step when `times` = [T, ε].
pub fn consistency_multistep(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    times: &[f64],
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    let [b, d] = z.dims();
    let dev = z.device();
    let (t_max, eps) = (times[0], times[times.len() - 1]);
    let mut x = model.f(p, z.mul_scalar(t_max), &vec![t_max; b], None);
    for &tau in &times[1..times.len() - 1] {
        let n = noise.normal(b, d, &dev);
        let xn = x + n.mul_scalar((tau * tau - eps * eps).max(0.0).sqrt());
        x = model.f(p, xn, &vec![tau; b], None);
    }
    x
}

/// sCM multistep sampling in TrigFlow time (METHODS.md §3), `times` = [T, t_1, …, 0]:
/// x = f(σ_d·z, T); for each intermediate t, x = f(cos t·x + sin t·σ_d·z', t).
pub fn trigflow_multistep(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    times: &[f64],
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    let [b, d] = z.dims();
    let dev = z.device();
    let sd = model.precond.sigma_d();
    let mut x = model.f(p, z.mul_scalar(sd), &vec![times[0]; b], None);
    for &t in &times[1..times.len() - 1] {
        let n = noise.normal(b, d, &dev);
        let xm = x.mul_scalar(t.cos()) + n.mul_scalar(t.sin() * sd);
        x = model.f(p, xm, &vec![t; b], None);
    }
    x
}
