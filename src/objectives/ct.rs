//! Consistency training (Song et al. 2023, METHODS.md §1). EDM time σ ∈ [ε, T].
//!
//! As CD, but the teacher step is replaced by the same noise at the lower level:
//! x̂_n = x0 + σ_n z (`cm/karras_diffusion.py:163-171`, Euler with D := x0). The grid size follows
//! N(k) and the target EMA decay μ(k) (`cm/script_util.py:160-197` `create_ema_and_scales_fn`,
//! `scale_mode = "progressive"`, `target_ema_mode = "adaptive"`), or stays fixed
//! (`scale_mode = "fixed"`: N = s0 grid points, with a fixed `target`).
//!
//! **Defaults follow the CIFAR-10 CT config** (openai/consistency_models_cifar10
//! `configs/cifar10_ve_ct_adaptive.py:20-29`: s0 = 2, s1 = 150, μ0 = 0.9, adaptive μ(k),
//! uniform weighting), with the `l2` distance where the official run uses LPIPS (LPIPS needs
//! image data and downloaded weights: `distance = "lpips"` or `preset = "cifar10"`).
//!
//! Options (paper / code symbols): `s0`, `s1` (start_scales, end_scales), `scale_mode`,
//! `target` (θ⁻: stop-grad, fixed μ, or the adaptive μ(k) with μ0 and its `form`), `weighting`
//! (λ(σ)), `distance`, `huber_c`, `time` (ε, T, ρ, two-step σ).

use super::*;
use crate::schedule::{ct_mu, ct_mu_paper, ct_n, karras};

/// How N(k) evolves (CM's `scale_mode`; AUDIT M4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleMode {
    /// N(k) = N'(k) + 1 with N'(k) = max(ceil(sqrt(k/K·((s1+1)² − s0²) + s0²) − 1), 1)
    /// (`progressive`, default).
    #[default]
    Progressive,
    /// N = s0 grid points at every step (`fixed`; `start_scales`, e.g. 18 or 40).
    Fixed,
}

/// The `[method]` table of `ct`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtConfig {
    /// Initial discretisation s0 (`start_scales`; 2 on CIFAR-10 and ImageNet-64); the fixed N of
    /// `scale_mode = "fixed"`.
    pub s0: f64,
    /// Final discretisation s1 (`end_scales`; 150 on CIFAR-10, 200 on ImageNet-64).
    pub s1: f64,
    /// `progressive` (default) or `fixed`.
    pub scale_mode: ScaleMode,
    /// Target network θ⁻ (default: the adaptive μ(k) with μ0 = 0.9, `code` form).
    pub target: TargetPolicy,
    /// λ(σ_{n+1}) (default `uniform`).
    pub weighting: CmWeighting,
    /// Distance d (default `l2`, the mean of squares).
    pub distance: Distance,
    /// Pseudo-Huber c (0 = 0.00054·√D); only used by `pseudo-huber`.
    pub huber_c: f64,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
}

impl Default for CtConfig {
    fn default() -> Self {
        Self {
            s0: 2.0,
            s1: 150.0,
            scale_mode: ScaleMode::Progressive,
            target: TargetPolicy::Scheduled {
                mu0: 0.9,
                form: MuForm::Code,
            },
            weighting: CmWeighting::Uniform,
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
        match self.scale_mode {
            ScaleMode::Progressive => anyhow::ensure!(
                self.s0 >= 1.0 && self.s1 >= self.s0,
                "method.s0/s1 need 1 ≤ s0 ≤ s1, got {} and {}",
                self.s0,
                self.s1
            ),
            ScaleMode::Fixed => anyhow::ensure!(
                self.s0 >= 2.0 && self.s0.fract() == 0.0,
                "method.s0 is the grid size N with scale_mode = \"fixed\": a whole number ≥ 2, got {}",
                self.s0
            ),
        }
        self.time.validate()?;
        Ok(())
    }
}

/// The CT objective.
pub struct Ct {
    cfg: CtConfig,
    c: f64,
}

impl Ct {
    /// The objective for `dim`-dimensional samples.
    pub fn new(cfg: CtConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let c = if cfg.huber_c > 0.0 { cfg.huber_c } else { huber_c(dim) };
        Ok(Self { cfg, c })
    }

    /// Grid points N at step k of `total`.
    pub fn n(&self, step: u64, total: u64) -> usize {
        match self.cfg.scale_mode {
            ScaleMode::Progressive => ct_n(step, total, self.cfg.s0, self.cfg.s1),
            ScaleMode::Fixed => self.cfg.s0 as usize,
        }
    }

    /// The ascending Karras grid at step k of `total`.
    pub fn grid(&self, step: u64, total: u64) -> Vec<f64> {
        karras(
            self.n(step, total),
            self.cfg.time.eps,
            self.cfg.time.t_max,
            self.cfg.time.rho,
        )
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
        let (s0, s1) = (self.cfg.s0, self.cfg.s1);
        match self.cfg.target {
            TargetPolicy::StopGrad => None,
            TargetPolicy::Ema { mu } => Some(mu),
            TargetPolicy::Scheduled { mu0, form } => {
                // With a fixed N the adaptive formula uses that N: N' = N − 1 (code) or N.
                let n = self.n(step, total) as f64;
                Some(match (self.cfg.scale_mode, form) {
                    (ScaleMode::Progressive, MuForm::Code) => ct_mu(step, total, s0, s1, mu0),
                    (ScaleMode::Progressive, MuForm::Paper) => ct_mu_paper(step, total, s0, s1, mu0),
                    (ScaleMode::Fixed, MuForm::Code) => (s0 * mu0.ln() / (n - 1.0)).exp(),
                    (ScaleMode::Fixed, MuForm::Paper) => (s0 * mu0.ln() / n).exp(),
                })
            }
        }
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let grid = self.grid(ctx.step, ctx.total);
        let idx: Vec<usize> = ctx.per_row(|r| r.below(grid.len() - 1));
        let s_lo: Vec<f64> = idx.iter().map(|&i| grid[i]).collect();
        let s_hi: Vec<f64> = idx.iter().map(|&i| grid[i + 1]).collect();
        let z = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
        let x_hi = x0.clone() + z.clone() * col(&s_hi, &x0);
        let x_lo = x0.clone() + z * col(&s_lo, &x0);
        let target = ctx.model.f(ctx.target.net, x_lo, &s_lo, masks.as_ref());
        let est = ctx.model.f(ctx.online.net, x_hi, &s_hi, masks.as_ref());
        let dist = distance(self.cfg.distance, est, target, self.c);
        let loss = if self.cfg.weighting == CmWeighting::Uniform {
            dist.mean()
        } else {
            let sd = ctx.model.precond.sigma_d();
            let w: Vec<f64> = s_hi.iter().map(|&s| self.cfg.weighting.weight(s, sd)).collect();
            weighted_mean(dist, &w)
        };
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
        Some((self.n(step, total), mu))
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        Some(self.cfg.time.consistency_map())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUDIT M4: `scale_mode = "fixed"` keeps N = s0 (official `scale_mode = fixed`,
    /// `start_scales`), and the official weightings at σ = 2, σ_d = 0.5.
    #[test]
    fn audit_m4_ct_fixed_n_and_weightings() {
        let ct = Ct::new(
            CtConfig {
                s0: 18.0,
                scale_mode: ScaleMode::Fixed,
                target: TargetPolicy::Ema { mu: 0.95 },
                ..Default::default()
            },
            2,
        )
        .unwrap();
        for k in [0, 400_000, 800_000] {
            assert_eq!(ct.n(k, 800_000), 18);
            assert_eq!(ct.grid(k, 800_000).len(), 18);
            assert_eq!(ct.target_decay(k, 800_000), Some(0.95));
        }
        // Progressive s0 = s1 = 18 would still grow to 19 points (the reason for the mode).
        assert_eq!(ct_n(800_000, 800_000, 18.0, 18.0), 19);
        let (s, sd) = (2.0, 0.5);
        assert_eq!(CmWeighting::Uniform.weight(s, sd), 1.0);
        assert_eq!(CmWeighting::Snr.weight(s, sd), 0.25);
        assert_eq!(CmWeighting::SnrPlus1.weight(s, sd), 1.25);
        assert_eq!(CmWeighting::Karras.weight(s, sd), 4.25);
        assert_eq!(CmWeighting::TruncatedSnr.weight(s, sd), 1.0);
        assert_eq!(CmWeighting::TruncatedSnr.weight(0.5, sd), 4.0);
        // D6: the paper form of μ(k).
        let paper = Ct::new(
            CtConfig {
                target: TargetPolicy::Scheduled {
                    mu0: 0.9,
                    form: MuForm::Paper,
                },
                ..Default::default()
            },
            2,
        )
        .unwrap();
        assert!((paper.target_decay(0, 800_000).unwrap() - 0.9).abs() < 1e-12);
        let code = Ct::new(CtConfig::default(), 2).unwrap();
        assert!((code.target_decay(0, 800_000).unwrap() - 0.81).abs() < 1e-12);
    }
}
