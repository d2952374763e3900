//! Training objectives: one file per method, each implementing [`Objective`].
//!
//! The contract (DESIGN.md "objective contract"): a method declares its parameterisation, its
//! target policy (an EMA copy with a step-dependent decay, or the stop-gradient of the online
//! weights), whether it needs a teacher, any parameters of its own, how many alternating
//! update phases it has (GAN-style methods), its sampler family, and a loss. The training loop
//! calls only this trait; [`MethodConfig`] below is the registry and the only place that
//! matches on method names.

pub mod cd;
pub mod ct;
pub mod ctm;
pub mod distance;
pub mod dsm;
pub mod ect;
pub mod facm;
pub mod ict;
pub mod meanflow;
pub mod presets;
pub mod registry;
pub mod scm;

use crate::model::{Model, Params};
use crate::nets::ParamSpec;
use crate::precond::Precond;
use crate::process::Denoiser;
use crate::rng::Rng;
use crate::samplers::{Sampler, SamplerOptions};
use crate::tensor::col;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use distance::{check_distance, distance, huber_c, image_shape_of, lpips_vgg, weighted_mean, Distance};
pub use registry::{MethodConfig, METHODS};

/// What a loss call gets.
pub struct Ctx<'a> {
    /// Optimizer steps taken so far (0 on the first call).
    pub step: u64,
    /// Planned number of steps (curricula are functions of step / total).
    pub total: u64,
    /// The model, carrying the batch's class labels for a class-conditional backbone.
    pub model: &'a Model,
    /// Online weights θ as autodiff leaves.
    pub online: Params<'a>,
    /// The same values as plain tensors: sg(θ).
    pub online_sg: Params<'a>,
    /// Target weights θ⁻: the EMA copy, or sg(θ) when the method has no EMA target.
    pub target: Params<'a>,
    /// The teacher denoiser of a distilling method (EDM coordinates).
    pub teacher: Option<&'a dyn Denoiser>,
    /// The run's random stream (time draws, noise, dropout masks).
    pub rng: &'a mut Rng,
    /// The device tensors are made on.
    pub device: &'a Device,
    /// The rows of the optimizer batch this call sees (`0..batch` unless the step is split into
    /// micro-batches, `train.micro_batch`): `x0` holds exactly these rows.
    pub rows: std::ops::Range<usize>,
    /// Rows of the whole optimizer batch B.
    pub batch: usize,
}

/// Per-sample draws for micro-batches. Every call of a step's loss starts from the same random
/// state and draws for all B rows of the optimizer batch, keeping its own rows, so a sample
/// gets the same noise, time and dropout mask whichever micro-batch it is in and the summed
/// micro-batch gradients equal the whole batch's (EDM's `--batch-gpu`; issue 16). Objectives
/// draw through these instead of `ctx.rng` wherever a draw has one value per sample.
impl Ctx<'_> {
    /// Whether this call sees the whole batch (no slicing needed).
    fn whole(&self) -> bool {
        self.rows.start == 0 && self.rows.end == self.batch
    }

    /// `f` drawn once per row of the optimizer batch, this call's rows kept.
    pub fn per_row<T>(&mut self, mut f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
        let v: Vec<T> = (0..self.batch).map(|_| f(self.rng)).collect();
        self.keep(v)
    }

    /// This call's rows of a per-sample vector of the whole optimizer batch.
    pub fn keep<T>(&self, mut v: Vec<T>) -> Vec<T> {
        if !self.whole() {
            v.truncate(self.rows.end);
            v.drain(..self.rows.start);
        }
        v
    }

    /// Standard normal `[rows, d]`: the optimizer batch's `[B, d]` draw, this call's rows kept.
    pub fn normal_rows(&mut self, d: usize) -> Tensor<2> {
        let z = self.rng.normal_tensor([self.batch, d], self.device);
        self.keep_rows(z)
    }

    /// The network's dropout masks for the optimizer batch, this call's rows kept.
    pub fn masks_rows(&mut self) -> Option<crate::nets::Masks> {
        let m = self.model.net.draw_masks(self.rng, self.batch, self.device)?;
        Some(crate::nets::Masks(m.0.into_iter().map(|t| self.keep_rows(t)).collect()))
    }

    /// This call's rows of a `[B, …]` tensor of the whole optimizer batch.
    pub fn keep_rows(&self, t: Tensor<2>) -> Tensor<2> {
        rows_of(t, &self.rows, self.batch)
    }
}

/// Rows `rows` of a `[batch, …]` tensor (the tensor itself when they are all of it): a
/// micro-batch's share of the optimizer batch.
pub fn rows_of(t: Tensor<2>, rows: &std::ops::Range<usize>, batch: usize) -> Tensor<2> {
    if rows.start == 0 && rows.end == batch {
        t
    } else {
        t.narrow(0, rows.start, rows.len())
    }
}

/// A scalar loss plus named terms for the log.
pub struct LossOut {
    /// The scalar loss (an autodiff graph over the online weights).
    pub loss: Tensor<1>,
    /// Named values for the log.
    pub terms: Vec<(String, f64)>,
}

/// A method's one-step map seen from EDM coordinates, for the exact-oracle checks
/// ([`crate::eval::oracle`]): `map(model, weights, x, σ)` is the method's estimate of the
/// data point on the PF-ODE trajectory through x = x0 + σ·z, for σ in [`OneStepMap::sigma_min`,
/// `sigma_max`] (drawn on the method's Karras ramp with `rho`); the exact map integrates down to
/// `sigma_data_end`.
#[derive(Clone)]
pub struct OneStepMap {
    /// Lowest σ of the check.
    pub sigma_min: f64,
    /// Highest σ of the check.
    pub sigma_max: f64,
    /// ρ of the ramp the σ are drawn on.
    pub rho: f64,
    /// Where the exact map integrates to (the method's data end in σ).
    pub sigma_data_end: f64,
    /// (model, weights, x, σ) → the method's estimate of the trajectory's data end.
    #[allow(clippy::type_complexity)]
    pub map: std::sync::Arc<dyn Fn(&Model, &[Tensor<1>], Tensor<2>, &[f64]) -> Tensor<2> + Send + Sync>,
}

/// A training method (the DESIGN.md objective contract; see the module docs).
pub trait Objective: Send + Sync {
    /// The registry name (`ict`, `cd`, …).
    fn name(&self) -> &'static str;
    /// The function space the backbone is trained in, given the data's σ_d.
    fn precond(&self, sigma_d: f64) -> Precond;
    /// Time inputs of the backbone.
    fn n_times(&self) -> usize {
        1
    }
    /// EMA decay of the target network after step `step`; None = no EMA target (θ⁻ = sg θ).
    fn target_decay(&self, step: u64, total: u64) -> Option<f64>;
    /// Whether the method needs a teacher denoiser (`Ctx::teacher`).
    fn needs_teacher(&self) -> bool {
        false
    }
    /// Parameters owned by the method (appended after the backbone's; `ctx.online.own`).
    fn extra_specs(&self) -> Vec<ParamSpec> {
        vec![]
    }
    /// Alternating update phases at step `step` (each its own backward and optimizer update;
    /// a phase not run sends no gradient, so its optimizer state does not advance).
    fn phases(&self, _step: u64) -> usize {
        1
    }
    /// Whether the loss is a mean of per-sample terms, so that a step split into micro-batches
    /// (`train.micro_batch`, each loss scaled by its share of the batch) has the whole batch's
    /// gradient. False for a loss with batch-level statistics (CTM's adaptive weights).
    fn micro_batches_exact(&self) -> bool {
        true
    }
    /// The loss of `phase` on the standardised batch x0 `[B, D]`.
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, phase: usize) -> LossOut;
    /// How the trained model generates, with the method's own time schedule (σ_d is the data's).
    fn sampler(&self, sigma_d: f64) -> Sampler;
    /// [`Objective::sampler`] with command-line options (`--gamma`, `--ode`); methods that take
    /// none reject any.
    fn sampler_with(&self, sigma_d: f64, opts: &SamplerOptions) -> anyhow::Result<Sampler> {
        anyhow::ensure!(
            opts.is_empty(),
            "method {} takes no sampler options (--gamma, --ode apply to CTM runs)",
            self.name()
        );
        Ok(self.sampler(sigma_d))
    }
    /// The method's one-step map for the exact-oracle consistency error (None: the method has
    /// no consistency map, e.g. diffusion teachers and the flow methods).
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        None
    }
    /// The discretisation curriculum N(k) and target decay μ(k) at step k of `total`, for
    /// `cm inspect schedule` (None: the method has none).
    fn curriculum(&self, _step: u64, _total: u64) -> Option<(usize, f64)> {
        None
    }
    /// State the method keeps between steps (a cache), saved in checkpoints so that a resumed
    /// run is bit-identical to an uninterrupted one (None: stateless).
    fn state(&self) -> Option<String> {
        None
    }
    /// Restores [`Objective::state`].
    fn set_state(&self, _state: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Where a distilling method's teacher comes from. In a config it is a string
/// (`method.teacher`): `"exact"`, `"gmm"`, `"train"`, a run folder or checkpoint path, or `""`
/// for none (a run folder literally named `gmm`, `exact` or `train` is written `./gmm`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Teacher {
    /// No teacher (FACM trains from data): `""`.
    #[default]
    None,
    /// The exact Gaussian-mixture denoiser of the data: `"exact"`.
    Exact,
    /// The exact denoiser of a Gaussian mixture fitted to the training data by EM when the run
    /// starts ([`crate::data::em::fit_teacher`]): `"gmm"`. For point data without an exact
    /// mixture (the toy sets, users' files); not for images.
    Gmm,
    /// An EDM teacher `cm demo` trains first: `"train"` (only `cm demo` resolves it).
    Train,
    /// A trained run folder or checkpoint (EDM, TrigFlow or flow-matching teacher).
    Run(std::path::PathBuf),
}

impl std::str::FromStr for Teacher {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" => Teacher::None,
            "exact" => Teacher::Exact,
            "gmm" => Teacher::Gmm,
            "train" => Teacher::Train,
            path => Teacher::Run(path.into()),
        })
    }
}

impl std::fmt::Display for Teacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Teacher::None => Ok(()),
            Teacher::Exact => f.write_str("exact"),
            Teacher::Gmm => f.write_str("gmm"),
            Teacher::Train => f.write_str("train"),
            Teacher::Run(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Serialize for Teacher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Teacher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().expect("infallible"))
    }
}

/// EDM-time settings shared by the discrete-time methods (the `[method.time]` table; CTM also
/// accepts them at the top level of `[method]`, where its configs gave them before).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdmTime {
    /// ε = σ_min, the data end of the consistency function (f(x, ε) = x) and of the Karras
    /// grid, in σ units (standardised data). Default 0.002 (EDM, CM).
    pub eps: f64,
    /// T = σ_max, the noise end. Default 80.
    pub t_max: f64,
    /// ρ of the Karras grid σ_i = (ε^{1/ρ} + (i−1)/(N−1)(T^{1/ρ} − ε^{1/ρ}))^ρ. Default 7.
    pub rho: f64,
    /// Intermediate σ of two-step consistency sampling τ_1. Default 0.821 (ECT's CIFAR-10
    /// `--mid_t`; CM's ImageNet-64 runs use grid indices instead, `--ts 0,22,39`).
    pub two_step_sigma: f64,
}

impl Default for EdmTime {
    fn default() -> Self {
        Self {
            eps: crate::schedule::EDM_EPS,
            t_max: crate::schedule::EDM_T_MAX,
            rho: crate::schedule::EDM_RHO,
            two_step_sigma: 0.821,
        }
    }
}

impl EdmTime {
    /// Checks the ranges (ε in (0, T), ρ > 0, the two-step σ in (ε, T)), naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let t = self;
        anyhow::ensure!(
            t.eps > 0.0 && t.eps < t.t_max,
            "method.eps must be in (0, t_max), got {}",
            t.eps
        );
        anyhow::ensure!(t.rho > 0.0, "method.rho must be positive, got {}", t.rho);
        anyhow::ensure!(
            t.two_step_sigma > t.eps && t.two_step_sigma < t.t_max,
            "method.two_step_sigma must lie in (eps, t_max), got {}",
            t.two_step_sigma
        );
        Ok(())
    }

    /// Consistency multistep sampling on this schedule ([`crate::schedule::consistency_times`]).
    pub fn consistency_sampler(&self) -> Sampler {
        let t = self.clone();
        Sampler::new(
            "consistency",
            (t.t_max, t.eps),
            move |n| crate::schedule::consistency_times(n, t.two_step_sigma, t.eps, t.t_max, t.rho),
            crate::samplers::consistency::consistency_multistep,
        )
    }

    /// The consistency function f_θ(x, σ) as the one-step map on this schedule's σ range.
    pub fn consistency_map(&self) -> OneStepMap {
        OneStepMap {
            sigma_min: self.eps,
            sigma_max: self.t_max,
            rho: self.rho,
            sigma_data_end: self.eps,
            map: std::sync::Arc::new(|model: &Model, p: &[Tensor<1>], x: Tensor<2>, s: &[f64]| model.f(p, x, s, None)),
        }
    }
}

/// Target-network policy for CD/CT-style methods (the `[method.target]` table, `kind = …`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum TargetPolicy {
    /// θ⁻ = sg(θ), i.e. μ = 0 (`kind = "stop-grad"`; CD on CIFAR-10, iCT).
    StopGrad,
    /// θ⁻ ← μθ⁻ + (1 − μ)θ after every step with a fixed μ (`kind = "ema"`, `mu`; CM's
    /// `target_ema_mode = "fixed"`, `start_ema`: 0.95 for CD on ImageNet-64).
    Ema {
        /// The decay μ ∈ [0, 1).
        mu: f64,
    },
    /// CT's adaptive μ(k) = exp(s0·ln μ0 / N'(k)) (`kind = "scheduled"`; METHODS.md §1; CM's
    /// `target_ema_mode = "adaptive"`).
    Scheduled {
        /// μ0, the decay at the start (`start_ema`: 0.9 CIFAR-10, 0.95 ImageNet-64).
        mu0: f64,
        /// `code` (default): divide by N'(k) = N(k) − 1 as both official codes do; `paper`:
        /// divide by N(k) as the CM paper's App. C writes (AUDIT D6).
        #[serde(default)]
        form: MuForm,
    },
}

/// Which N the CT target decay μ(k) = exp(s0·ln μ0 / N) divides by (AUDIT D6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MuForm {
    /// N'(k) = N(k) − 1 (openai/consistency_models `cm/script_util.py:186-197`, jcm
    /// `losses.py:916-927`): μ(0) = μ0^{s0} = 0.81 on CIFAR-10.
    #[default]
    Code,
    /// N(k) (Song et al. 2023, App. C): μ(0) = 0.9 on CIFAR-10.
    Paper,
}

/// The loss weighting λ(σ) of CD and CT, evaluated at the higher noise level σ_{n+1}
/// (openai/consistency_models `cm/karras_diffusion.py:18-31` `get_weightings`, with
/// snr = σ^{−2}; AUDIT M4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CmWeighting {
    /// λ = 1 (`uniform`, every official CD/CT launch script; default).
    #[default]
    Uniform,
    /// λ = snr = 1/σ².
    Snr,
    /// λ = snr + 1.
    #[serde(rename = "snr+1")]
    SnrPlus1,
    /// λ = snr + 1/σ_d² = (σ² + σ_d²)/(σ·σ_d)², EDM's λ (`karras`).
    Karras,
    /// λ = max(snr, 1).
    TruncatedSnr,
}

impl CmWeighting {
    /// λ(σ) for data std σ_d.
    pub fn weight(&self, sigma: f64, sigma_d: f64) -> f64 {
        let snr = 1.0 / (sigma * sigma);
        match self {
            CmWeighting::Uniform => 1.0,
            CmWeighting::Snr => snr,
            CmWeighting::SnrPlus1 => snr + 1.0,
            CmWeighting::Karras => snr + 1.0 / (sigma_d * sigma_d),
            CmWeighting::TruncatedSnr => snr.max(1.0),
        }
    }
}
