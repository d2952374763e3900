//! The exact-oracle references of Gaussian-mixture data: the exact consistency map f*(x, σ)
//! (the PF-ODE integrated with the exact denoiser), the consistency error of a learned one-step
//! map against it, and the exact-ODE sampler's metrics (the ceiling a distilled sampler can
//! reach).

use super::{report, rms_error, Report};
use crate::rng::Rng;
use crate::run::Setup;
use crate::tensor::to_vec64;
use burn::prelude::*;

/// RMS distance (standardised units) between the learned one-step map f_θ(x, σ) and the exact
/// consistency map f*(x, σ) (Heun PF-ODE with the exact denoiser, 200 steps from σ to ε) on
/// points x = x0 + σ z at σ spread over the Karras grid. Only for consistency-function methods.
pub fn consistency_error(setup: &Setup, params: &[Tensor<1>], gmm: &crate::data::gmm::Gmm, n: usize, seed: u64) -> f64 {
    // The one-step map: f_θ(x, σ) for consistency functions, G_θ(x, σ, ε) for CTM,
    // the TrigFlow consistency function for sCM.
    let (eps, t_max, ctm) = match setup.objective.sampler() {
        crate::samplers::Sampler::Consistency { eps, t_max, .. } => (eps, t_max, false),
        crate::samplers::Sampler::Ctm { eps, t_max, .. } => (eps, t_max, true),
        crate::samplers::Sampler::TrigFlow { sigma_max, .. } => {
            return trigflow_consistency_error(setup, params, gmm, n, seed, sigma_max)
        }
        _ => return f64::NAN,
    };
    let mut rng = Rng::new(seed);
    let x0 = setup.batch(&mut rng, n);
    let sigmas: Vec<f64> = (0..n)
        .map(|i| crate::schedule::karras_ramp((i as f64 + 0.5) / n as f64, eps, t_max, 7.0))
        .collect();
    let z = rng.normal_tensor([n, setup.data.dim()], &setup.device);
    let x = x0.clone() + z * crate::tensor::col(&sigmas, &x0);
    let learned = if ctm {
        crate::model::ctm_jump(&setup.model, params, x.clone(), &sigmas, &vec![eps; n], None)
    } else {
        setup.model.f(params, x.clone(), &sigmas, None)
    };
    let exact = exact_consistency_map(gmm, x, &sigmas, eps, 200);
    rms_error(&to_vec64(learned), &to_vec64(exact), setup.data.dim())
}

/// The TrigFlow analogue of [`consistency_error`]: points x_t = cos t·x0 + sin t·σ_d z at t
/// spread over the TrigFlow times of the Karras grid up to σ_max; the exact map integrates the
/// exact PF-ODE in EDM coordinates (x_t / cos t, σ_d tan t) down to σ = 1e-4.
pub fn trigflow_consistency_error(
    setup: &Setup,
    params: &[Tensor<1>],
    gmm: &crate::data::gmm::Gmm,
    n: usize,
    seed: u64,
    sigma_max: f64,
) -> f64 {
    let sd = setup.model.precond.sigma_d();
    let mut rng = Rng::new(seed);
    let x0 = setup.batch(&mut rng, n);
    let sigmas: Vec<f64> = (0..n)
        .map(|i| crate::schedule::karras_ramp((i as f64 + 0.5) / n as f64, 0.002, sigma_max, 7.0))
        .collect();
    let t: Vec<f64> = sigmas.iter().map(|&s| crate::process::edm_to_trig_t(s, sd)).collect();
    let z = rng.normal_tensor([n, setup.data.dim()], &setup.device);
    let x_edm = x0.clone() + z * crate::tensor::col(&sigmas, &x0);
    let x_t = crate::process::edm_to_trig_x(x_edm.clone(), &t);
    let learned = setup.model.f(params, x_t, &t, None);
    let exact = exact_consistency_map(gmm, x_edm, &sigmas, 1e-4, 200);
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
        .map(|&s| {
            let mut g = crate::schedule::karras(steps + 1, eps, s.max(eps * 1.0001), 7.0);
            g.reverse();
            g
        })
        .collect();
    let mut x = x;
    for k in 0..steps {
        let from: Vec<f64> = (0..b).map(|i| grids[i][k]).collect();
        let to: Vec<f64> = (0..b).map(|i| grids[i][k + 1]).collect();
        x = crate::samplers::ode_step(gmm, x, &from, &to, true);
    }
    x
}

/// Heun steps of the exact-ODE reference sampler.
pub const EXACT_ODE_STEPS: usize = 128;

/// Metrics of samples from the exact PF-ODE (Heun on the Karras grid with the exact denoiser).
pub fn exact_ode_report(setup: &Setup, gmm_std: &crate::data::gmm::Gmm, n: usize) -> Report {
    let dim = setup.data.dim();
    let mut rng = Rng::new(0xE7A1);
    let reference = setup.data.sample(&mut rng, n);
    let mut zr = Rng::new(0x0DE);
    let z = zr.normal_tensor([n, dim], &setup.device);
    let x = crate::samplers::ode_sample(gmm_std, z, EXACT_ODE_STEPS, 0.002, 80.0, true);
    let raw = setup.standardizer.inverse(&crate::tensor::to_vec64(x));
    let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
    report(&raw, &reference, dim, setup.data.gmm(), scale)
}
