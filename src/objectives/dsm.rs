//! EDM diffusion teacher by denoising score matching (Karras et al. 2022; METHODS.md §1).
//! EDM time: ln σ ~ N(P_mean, P_std²), loss λ(σ)·mean((D_θ(x0 + σz, σ) − x0)²) with
//! λ(σ) = (σ² + σ_d²)/(σ σ_d)². Samples with the Heun ODE sampler.

use super::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DsmConfig {
    pub p_mean: f64,
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

pub struct Dsm {
    cfg: DsmConfig,
}

impl Dsm {
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
        let [b, d] = x0.dims();
        let sd = ctx.model.precond.sigma_d();
        let sigma: Vec<f64> = (0..b)
            .map(|_| (self.cfg.p_mean + self.cfg.p_std * ctx.rng.normal()).exp())
            .collect();
        let w: Vec<f64> = sigma.iter().map(|s| (s * s + sd * sd) / (s * sd).powi(2)).collect();
        let z = ctx.rng.normal_tensor([b, d], ctx.device);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
        let x = x0.clone() + z * col(&sigma, &x0);
        let den = ctx.model.f(ctx.online.net, x, &sigma, masks.as_ref());
        let loss = weighted_mean((den - x0).square().mean_dim(1), &w);
        LossOut { loss, terms: vec![] }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        let t = self.cfg.time.clone();
        Sampler::new(
            "edm-heun",
            (t.t_max, t.eps),
            move |n| crate::schedule::karras_desc(n, t.eps, t.t_max, t.rho),
            crate::samplers::ode::edm_sampler(crate::samplers::ode::Solver::Heun),
        )
    }
}
