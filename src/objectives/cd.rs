//! Consistency distillation (Song et al. 2023, METHODS.md §1). EDM time σ ∈ [ε, T].
//!
//! Pick n uniformly on the N-point Karras grid, x_{n+1} = x0 + σ_{n+1} z, take one teacher ODE
//! step (Euler or Heun) to σ_n, and match f_θ(x_{n+1}, σ_{n+1}) to f_{θ⁻}(x̂_n, σ_n) with the
//! same dropout mask on both passes (openai/consistency_models `cm/karras_diffusion.py:174-231`).
//! The teacher is any [`Denoiser`]: the exact Gaussian-mixture denoiser or a trained EDM
//! checkpoint; the student starts from the teacher's weights (`train.init_from`, which
//! `cm demo` sets).
//!
//! **Defaults follow the CIFAR-10 CD config** (openai/consistency_models_cifar10
//! `configs/cifar10_ve_cd.py:20-28`: N = 18, Heun, θ⁻ = sg θ, uniform weighting) with the `l2`
//! distance where the official run uses LPIPS (`distance = "lpips"`, or `preset = "cifar10"`).
//!
//! Options (paper / code symbols): `n` (N, `num_scales`), `teacher`, `solver`, `distance` and
//! `huber_c`, `target` (θ⁻: stop-grad or a fixed μ, `start_ema`), `weighting` (λ), `time`
//! (ε, T, ρ, two-step σ).

use super::*;
use crate::samplers::ode::{ode_step, Solver};
use crate::schedule::karras;

/// The `[method]` table of `cd`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdConfig {
    /// Grid size N (`num_scales`; 18 on CIFAR-10, 40 on ImageNet-64). Default 18.
    pub n: usize,
    /// `exact` (Gaussian-mixture data only; default), `gmm` (a mixture fitted to point data by
    /// EM when the run starts) or the folder / checkpoint of a trained EDM teacher.
    pub teacher: Teacher,
    /// Classifier-free guidance scale w of a class-conditional teacher (EDM2's convention: 1 =
    /// the plain conditional teacher, 0 = unconditional; default 1). The teacher is queried
    /// with the student's batch labels, so the student learns the guided trajectories of each
    /// class (guided distillation, Meng et al. 2023; LCM, Luo et al. 2023); rows whose label
    /// was dropped follow the unconditional teacher. Ignored for unconditional teachers.
    pub guidance: f64,
    /// Teacher ODE step: `heun` (the paper's default) or `euler`.
    pub solver: Solver,
    /// Distance d (default `l2`, the mean of squares; the official runs use `lpips`).
    pub distance: Distance,
    /// Pseudo-Huber c (0 = 0.00054·√D); only used by `pseudo-huber`.
    pub huber_c: f64,
    /// Target network θ⁻: `stop-grad` (default, μ = 0 on CIFAR-10) or a fixed `ema` μ (0.95 on
    /// ImageNet-64).
    pub target: TargetPolicy,
    /// λ(σ_{n+1}) (default `uniform`, as every official launch script).
    pub weighting: CmWeighting,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
}

impl Default for CdConfig {
    fn default() -> Self {
        Self {
            n: 18,
            teacher: Teacher::Exact,
            guidance: 1.0,
            solver: Solver::Heun,
            distance: Distance::L2,
            huber_c: 0.0,
            target: TargetPolicy::StopGrad,
            weighting: CmWeighting::Uniform,
            time: EdmTime::default(),
        }
    }
}

impl CdConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.guidance.is_finite() && self.guidance >= 0.0,
            "method.guidance must be a finite scale >= 0 (1 = no guidance), got {}",
            self.guidance
        );
        anyhow::ensure!(self.n >= 2, "method.n must be at least 2, got {}", self.n);
        self.time.validate()?;
        if let TargetPolicy::Scheduled { .. } = self.target {
            anyhow::bail!("method.target: CD takes stop-grad or a fixed EMA, not the CT schedule");
        }
        Ok(())
    }
}

/// The CD objective.
pub struct Cd {
    cfg: CdConfig,
    grid: Vec<f64>,
    c: f64,
}

impl Cd {
    /// The objective for `dim`-dimensional samples.
    pub fn new(cfg: CdConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let grid = karras(cfg.n, cfg.time.eps, cfg.time.t_max, cfg.time.rho);
        let c = if cfg.huber_c > 0.0 { cfg.huber_c } else { huber_c(dim) };
        Ok(Self { cfg, grid, c })
    }

    /// The CD target f_{θ⁻}(x̂_n, σ_n) and the online estimate for given draws; exposed so tests
    /// can compare with an analytic teacher step.
    pub fn teacher_step(&self, teacher: &dyn Denoiser, x: Tensor<2>, s_hi: &[f64], s_lo: &[f64]) -> Tensor<2> {
        ode_step(teacher, x, s_hi, s_lo, self.cfg.solver)
    }
}

impl Objective for Cd {
    fn name(&self) -> &'static str {
        "cd"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::Consistency {
            sigma_d,
            eps: self.cfg.time.eps,
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        match self.cfg.target {
            TargetPolicy::StopGrad => None,
            TargetPolicy::Ema { mu } => Some(mu),
            TargetPolicy::Scheduled { .. } => unreachable!("rejected in Cd::new"),
        }
    }
    fn needs_teacher(&self) -> bool {
        true
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let teacher = ctx.teacher.expect("CD needs a teacher (checked when the run starts)");
        let idx: Vec<usize> = ctx.per_row(|r| r.below(self.grid.len() - 1));
        let s_lo: Vec<f64> = idx.iter().map(|&i| self.grid[i]).collect();
        let s_hi: Vec<f64> = idx.iter().map(|&i| self.grid[i + 1]).collect();
        let z = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
        let x_hi = x0.clone() + z * col(&s_hi, &x0);
        let x_lo = self.teacher_step(teacher, x_hi.clone(), &s_hi, &s_lo);
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
        LossOut { loss, terms: vec![] }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        self.cfg.time.consistency_sampler()
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        Some(self.cfg.time.consistency_map())
    }
}
