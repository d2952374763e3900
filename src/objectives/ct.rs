//! Consistency training (Song et al. 2023, METHODS.md §1). EDM time σ ∈ [ε, T].
//!
//! As CD, but the teacher step is replaced by the same noise at the lower level:
//! x̂_n = x0 + σ_n z. The grid size follows N(k) and the target EMA decay μ(k)
//! (`cm/script_util.py create_ema_and_scales_fn`).

use super::*;
use crate::schedule::{ct_mu, ct_n, karras};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtConfig {
    /// Initial discretisation s0 (2 on CIFAR-10).
    pub s0: f64,
    /// Final discretisation s1 (150 on CIFAR-10).
    pub s1: f64,
    pub target: TargetPolicy,
    pub distance: Distance,
    pub huber_c: f64,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
}

impl Default for CtConfig {
    fn default() -> Self {
        Self {
            s0: 2.0,
            s1: 150.0,
            target: TargetPolicy::Scheduled { mu0: 0.9 },
            distance: Distance::L2,
            huber_c: 0.0,
            time: EdmTime::default(),
        }
    }
}

impl CtConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.s0 >= 1.0 && self.s1 >= self.s0,
            "method.s0/s1 need 1 ≤ s0 ≤ s1, got {} and {}",
            self.s0,
            self.s1
        );
        self.time.validate()?;
        Ok(())
    }
}

pub struct Ct {
    cfg: CtConfig,
    c: f64,
}

impl Ct {
    pub fn new(cfg: CtConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let c = if cfg.huber_c > 0.0 { cfg.huber_c } else { huber_c(dim) };
        Ok(Self { cfg, c })
    }
    pub fn grid(&self, step: u64, total: u64) -> Vec<f64> {
        let n = ct_n(step, total, self.cfg.s0, self.cfg.s1);
        karras(n, self.cfg.time.eps, self.cfg.time.t_max, self.cfg.time.rho)
    }
}

impl Objective for Ct {
    fn name(&self) -> &'static str {
        "ct"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::Consistency {
            sigma_d,
            eps: self.cfg.time.eps,
        }
    }
    fn target_decay(&self, step: u64, total: u64) -> Option<f64> {
        match self.cfg.target {
            TargetPolicy::StopGrad => None,
            TargetPolicy::Ema { mu } => Some(mu),
            TargetPolicy::Scheduled { mu0 } => Some(ct_mu(step, total, self.cfg.s0, self.cfg.s1, mu0)),
        }
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let [b, d] = x0.dims();
        let grid = self.grid(ctx.step, ctx.total);
        let idx: Vec<usize> = (0..b).map(|_| ctx.rng.below(grid.len() - 1)).collect();
        let s_lo: Vec<f64> = idx.iter().map(|&i| grid[i]).collect();
        let s_hi: Vec<f64> = idx.iter().map(|&i| grid[i + 1]).collect();
        let z = ctx.rng.normal_tensor([b, d], ctx.device);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
        let x_hi = x0.clone() + z.clone() * col(&s_hi, &x0);
        let x_lo = x0.clone() + z * col(&s_lo, &x0);
        let target = ctx.model.f(ctx.target.net, x_lo, &s_lo, masks.as_ref());
        let est = ctx.model.f(ctx.online.net, x_hi, &s_hi, masks.as_ref());
        let loss = distance(self.cfg.distance, est, target, self.c).mean();
        LossOut {
            loss,
            terms: vec![("N".into(), grid.len() as f64)],
        }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        self.cfg.time.consistency_sampler()
    }
    fn curriculum(&self, step: u64, total: u64) -> Option<(usize, f64)> {
        let mu = self.target_decay(step, total).unwrap_or(0.0);
        Some((ct_n(step, total, self.cfg.s0, self.cfg.s1), mu))
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        Some(self.cfg.time.consistency_map())
    }
}
