//! EDM diffusion teacher by denoising score matching (Karras et al. 2022; METHODS.md §1).
//! EDM time: ln σ ~ N(P_mean, P_std²), loss λ(σ)·mean((D_θ(x0 + σz, σ) − x0)²) with
//! λ(σ) = (σ² + σ_d²)/(σ σ_d)². Samples with EDM's Heun ODE sampler: the N-point Karras grid
//! and a final Euler step to σ = 0, 2N − 1 network evaluations (N = 18: 35; AUDIT D8).
//!
//! **Defaults follow EDM's CIFAR-10 setting** (NVlabs/edm `training/loss.py` `EDMLoss`:
//! P_mean −1.2, P_std 1.2; σ_min 0.002, σ_max 80, ρ 7). Options: `p_mean`, `p_std`, `time`.

use super::*;
use crate::samplers::ode::Solver;

/// EDM's ODE sampler through a model's denoiser (Karras et al. 2022, Alg. 1): the `steps`-point
/// Karras grid from T to ε, then a final Euler step to σ = 0, so `steps` Heun steps cost
/// 2·steps − 1 evaluations (AUDIT D8; [`crate::schedule::edm_times`]).
pub fn edm_heun_sampler(t: &EdmTime, solver: Solver, name: &str) -> Sampler {
    let t = t.clone();
    Sampler::new(
        name,
        (t.t_max, 0.0),
        move |n| crate::schedule::edm_times(n, t.eps, t.t_max, t.rho),
        crate::samplers::ode::edm_sampler(solver),
    )
    .with_nfe(move |times| crate::samplers::ode::heun_nfe(times, solver))
}

/// The `[method]` table of `edm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DsmConfig {
    /// P_mean of ln σ ~ N(P_mean, P_std²). Default −1.2.
    pub p_mean: f64,
    /// P_std of ln σ. Default 1.2.
    pub p_std: f64,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
}

impl Default for DsmConfig {
    fn default() -> Self {
        Self {
            p_mean: -1.2,
            p_std: 1.2,
            time: EdmTime::default(),
        }
    }
}

impl DsmConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        Ok(())
    }
}

/// The EDM denoising-score-matching objective.
pub struct Dsm {
    cfg: DsmConfig,
}

impl Dsm {
    /// The objective.
    pub fn new(cfg: DsmConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }
}

impl Objective for Dsm {
    fn name(&self) -> &'static str {
        "edm"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::Edm { sigma_d }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let sd = ctx.model.precond.sigma_d();
        let sigma: Vec<f64> = ctx.per_row(|g| (self.cfg.p_mean + self.cfg.p_std * g.normal()).exp());
        let w: Vec<f64> = sigma.iter().map(|s| (s * s + sd * sd) / (s * sd).powi(2)).collect();
        let z = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
        let x = x0.clone() + z * col(&sigma, &x0);
        let den = ctx.model.f(ctx.online.net, x, &sigma, masks.as_ref());
        let loss = weighted_mean((den - x0).square().mean_dim(1), &w);
        LossOut { loss, terms: vec![] }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        edm_heun_sampler(&self.cfg.time, Solver::Heun, "edm-heun")
    }
}
