//! The exact-oracle references of Gaussian-mixture data: the exact consistency map f*(x, σ)
//! (the PF-ODE integrated with the exact denoiser), the consistency error of a learned one-step
//! map against it, and the exact-ODE sampler's metrics (the ceiling a distilled sampler can
//! reach).

use super::{report, rms_error, Report};
use crate::rng::Rng;
use crate::run::Setup;
use crate::samplers::ode::{edm_ode, ode_step, Solver};
use crate::schedule::{karras_desc, karras_ramp, EDM_EPS, EDM_RHO, EDM_T_MAX};
use crate::tensor::to_vec64;
use burn::prelude::*;

/// RMS distance (standardised units) between a method's learned one-step map
/// ([`crate::objectives::Objective::one_step_map`]: f_θ(x, σ) for consistency functions,
/// G_θ(x, σ, ε) for CTM, the TrigFlow consistency function for sCM) and the exact consistency
/// map f*(x, σ) (Heun PF-ODE with the exact denoiser, 200 steps from σ to the map's data end)
/// on points x = x0 + σ z at σ spread over the method's Karras ramp. NaN for methods without a
/// one-step map.
pub fn consistency_error(setup: &Setup, params: &[Tensor<1>], gmm: &crate::data::gmm::Gmm, n: usize, seed: u64) -> f64 {
    let Some(m) = setup.objective.one_step_map(setup.model.precond.sigma_d()) else {
        return f64::NAN;
    };
    let mut rng = Rng::new(seed);
    let x0 = setup.batch(&mut rng, n);
    let sigmas: Vec<f64> = (0..n)
        .map(|i| karras_ramp((i as f64 + 0.5) / n as f64, m.sigma_min, m.sigma_max, m.rho))
        .collect();
    let z = rng.normal_tensor([n, setup.data.dim()], &setup.device);
    let x = x0.clone() + z * crate::tensor::col(&sigmas, &x0);
    let learned = (m.map)(&setup.model, params, x.clone(), &sigmas);
    let exact = exact_consistency_map(gmm, x, &sigmas, m.sigma_data_end, 200);
    rms_error(&to_vec64(learned), &to_vec64(exact), setup.data.dim())
}

/// f*(x, σ): integrates the exact PF-ODE from each sample's σ down to ε with `steps` Heun steps
/// on its own Karras grid.
pub fn exact_consistency_map(
    gmm: &crate::data::gmm::Gmm,
    x: Tensor<2>,
    sigmas: &[f64],
    eps: f64,
    steps: usize,
) -> Tensor<2> {
    let b = sigmas.len();
    let grids: Vec<Vec<f64>> = sigmas
        .iter()
        .map(|&s| karras_desc(steps, eps, s.max(eps * 1.0001), EDM_RHO))
        .collect();
    // Every row has its own σ at every step: the diagonalised mixture does not refactor per row.
    let den = crate::data::gmm::EigenGmm::new(gmm);
    let mut x = x;
    for k in 0..steps {
        let from: Vec<f64> = (0..b).map(|i| grids[i][k]).collect();
        let to: Vec<f64> = (0..b).map(|i| grids[i][k + 1]).collect();
        x = ode_step(&den, x, &from, &to, Solver::Heun);
    }
    x
}

/// Heun steps of the exact-ODE reference sampler.
pub const EXACT_ODE_STEPS: usize = 128;

/// Metrics of samples from the exact PF-ODE (Heun on the Karras grid with the exact denoiser).
pub fn exact_ode_report(setup: &Setup, gmm_std: &crate::data::gmm::Gmm, n: usize) -> Report {
    let dim = setup.data.dim();
    let mut rng = Rng::new(super::REFERENCE_SEED);
    let reference = setup.data.sample(&mut rng, n);
    let mut zr = Rng::new(0x0DE);
    let z = zr.normal_tensor([n, dim], &setup.device);
    let sigmas = karras_desc(EXACT_ODE_STEPS, EDM_EPS, EDM_T_MAX, EDM_RHO);
    let x = edm_ode(
        &crate::data::gmm::EigenGmm::new(gmm_std),
        z.mul_scalar(sigmas[0]),
        &sigmas,
        Solver::Heun,
    );
    let raw = setup.standardizer.inverse(&crate::tensor::to_vec64(x));
    let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
    report(&raw, &reference, dim, setup.data.gmm(), scale)
}
