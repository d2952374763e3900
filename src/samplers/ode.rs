//! Probability-flow ODE solvers (Karras et al. 2022, Alg. 1).
//!
//! EDM: dx/dσ = (x − D(x, σ))/σ through a decreasing list of σ. TrigFlow: dx/dt = σ_d·F(x/σ_d, t)
//! of a velocity model through a decreasing list of t. [`ode_step`] is also CD's and CTM's
//! teacher step and the exact consistency map's integrator.

use super::Noise;
use crate::model::{Model, NetDenoiser};
use crate::process::Denoiser;
use crate::tensor::col;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// An ODE step rule (`solver` of CD and CTM, `--ode` of `cm sample`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Solver {
    /// Euler: x + (σ_to − σ_from)·(x − D(x, σ_from))/σ_from, one denoiser evaluation per step
    /// (CM's `euler_solver`, the CT target with D := x0).
    Euler,
    /// Heun's second-order correction (Karras et al. 2022, Alg. 1; CM's `heun_solver`): two
    /// evaluations per step, and a plain Euler step (one evaluation) when stepping to σ = 0.
    Heun,
}

/// Network evaluations of [`edm_ode`] along `sigmas` with `solver`: Heun costs two per step
/// and one on a step to σ = 0 (so EDM's N-point grid + 0 costs 2N − 1; AUDIT D8), Euler one.
pub fn heun_nfe(sigmas: &[f64], solver: Solver) -> usize {
    sigmas
        .windows(2)
        .map(|w| if solver == Solver::Euler || w[1] <= 0.0 { 1 } else { 2 })
        .sum()
}

/// One Euler or Heun step of the PF-ODE from σ_from to σ_to (per-sample times).
pub fn ode_step(den: &dyn Denoiser, x: Tensor<2>, s_from: &[f64], s_to: &[f64], solver: Solver) -> Tensor<2> {
    let h: Vec<f64> = s_from.iter().zip(s_to).map(|(a, b)| b - a).collect();
    let inv: Vec<f64> = s_from.iter().map(|s| 1.0 / s).collect();
    let d = (x.clone() - den.denoise(x.clone(), s_from)) * col(&inv, &x);
    let x_euler = x.clone() + d.clone() * col(&h, &x);
    if solver == Solver::Euler || s_to.iter().any(|&s| s <= 0.0) {
        return x_euler;
    }
    let inv2: Vec<f64> = s_to.iter().map(|s| 1.0 / s).collect();
    let d2 = (x_euler.clone() - den.denoise(x_euler, s_to)) * col(&inv2, &x);
    let half: Vec<f64> = h.iter().map(|h| 0.5 * h).collect();
    x.clone() + (d + d2) * col(&half, &x)
}

/// Integrates the PF-ODE of `den` from x through the decreasing noise levels `sigmas` (all
/// samples share them).
pub fn edm_ode(den: &dyn Denoiser, mut x: Tensor<2>, sigmas: &[f64], solver: Solver) -> Tensor<2> {
    let b = x.dims()[0];
    for w in sigmas.windows(2) {
        x = ode_step(den, x, &vec![w[0]; b], &vec![w[1]; b], solver);
    }
    x
}

/// The EDM ODE sampler of a model whose [`NetDenoiser`] is a denoiser (EDM teachers, CTM's
/// D_θ): x_T = T·z, then [`edm_ode`] through `sigmas` (T first; EDM's list ends with 0, the
/// last step Euler: [`crate::schedule::edm_times`]).
pub fn edm_sample(model: &Model, p: &[Tensor<1>], z: Tensor<2>, sigmas: &[f64], solver: Solver) -> Tensor<2> {
    let den = NetDenoiser {
        model: model.clone(),
        params: p.to_vec(),
    };
    edm_ode(&den, z.mul_scalar(sigmas[0]), sigmas, solver)
}

/// [`edm_sample`] in the common sampler shape (no fresh noise).
pub fn edm_sampler(solver: Solver) -> impl Fn(&Model, &[Tensor<1>], Tensor<2>, &[f64], &mut Noise<'_>) -> Tensor<2> {
    move |model, p, z, sigmas, _noise| edm_sample(model, p, z, sigmas, solver)
}

/// Heun on the TrigFlow PF-ODE of a velocity model (`model.f` = σ_d·F) from x_T = σ_d·z through
/// the decreasing times `ts` (T first, 0 last), two evaluations on every step (the TrigFlow
/// velocity is finite at t = 0, so the last step is Heun too).
pub fn trigflow_ode(model: &Model, p: &[Tensor<1>], z: Tensor<2>, ts: &[f64], _noise: &mut Noise<'_>) -> Tensor<2> {
    let b = z.dims()[0];
    let mut x = z.mul_scalar(model.precond.sigma_d());
    for w in ts.windows(2) {
        let h = w[1] - w[0];
        let v1 = model.f(p, x.clone(), &vec![w[0]; b], None);
        let xe = x.clone() + v1.clone().mul_scalar(h);
        let v2 = model.f(p, xe, &vec![w[1]; b], None);
        x = x + (v1 + v2).mul_scalar(0.5 * h);
    }
    x
}
