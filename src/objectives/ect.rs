//! Easy consistency tuning, ECT (Geng et al. 2024, locuslab/ect `training/loss.py`,
//! METHODS.md §2). EDM time.
//!
//! σ ~ LogNormal(P_mean, P_std) clipped to [ε, T]; r = max(0, σ(1 − q^{−(s+1)}(1 + 8·sigmoid(−σ))))
//! with the stage s doubling every `stage_len` steps; target f_{sg θ}(x0 + r z, r), or x0 when
//! r ≤ ε (the boundary condition); per-sample distance weighted by 1/(σ − r).

use super::*;
use crate::schedule::ect_r;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EctConfig {
    pub p_mean: f64,
    pub p_std: f64,
    pub q: f64,
    /// Steps per stage (0 = total / 8).
    pub stage_len: u64,
    pub distance: Distance,
    pub huber_c: f64,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
}

impl Default for EctConfig {
    fn default() -> Self {
        Self {
            p_mean: -1.1,
            p_std: 2.0,
            q: 2.0,
            stage_len: 0,
            distance: Distance::PseudoHuber,
            huber_c: 0.0,
            time: EdmTime::default(),
        }
    }
}

impl EctConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.q > 1.0, "method.q must exceed 1, got {}", self.q);
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        self.time.validate()?;
        Ok(())
    }
}

pub struct Ect {
    cfg: EctConfig,
    c: f64,
}

impl Ect {
    pub fn new(cfg: EctConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let c = if cfg.huber_c > 0.0 { cfg.huber_c } else { huber_c(dim) };
        Ok(Self { cfg, c })
    }
    pub fn stage(&self, step: u64, total: u64) -> u32 {
        let len = if self.cfg.stage_len > 0 {
            self.cfg.stage_len
        } else {
            (total / 8).max(1)
        };
        (step / len).min(30) as u32
    }
}

impl Objective for Ect {
    fn name(&self) -> &'static str {
        "ect"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::Consistency {
            sigma_d,
            eps: self.cfg.time.eps,
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let [b, d] = x0.dims();
        let t = &self.cfg.time;
        let stage = self.stage(ctx.step, ctx.total);
        let sigma: Vec<f64> = (0..b)
            .map(|_| {
                (self.cfg.p_mean + self.cfg.p_std * ctx.rng.normal())
                    .exp()
                    .clamp(t.eps * 1.001, t.t_max)
            })
            .collect();
        // r below ε means "the data end": the target is x0 itself (f(x, ε) = x).
        let r: Vec<f64> = sigma.iter().map(|&s| ect_r(s, stage, self.cfg.q).max(t.eps)).collect();
        let w: Vec<f64> = sigma.iter().zip(&r).map(|(s, r)| 1.0 / (s - r)).collect();
        let z = ctx.rng.normal_tensor([b, d], ctx.device);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
        let x_t = x0.clone() + z.clone() * col(&sigma, &x0);
        let x_r = x0.clone() + z * col(&r, &x0);
        let target = ctx.model.f(ctx.target.net, x_r, &r, masks.as_ref());
        let est = ctx.model.f(ctx.online.net, x_t, &sigma, masks.as_ref());
        let loss = weighted_mean(distance(self.cfg.distance, est, target, self.c), &w);
        LossOut {
            loss,
            terms: vec![("stage".into(), stage as f64)],
        }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        self.cfg.time.consistency_sampler()
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        Some(self.cfg.time.consistency_map())
    }
}
