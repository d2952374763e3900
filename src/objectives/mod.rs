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
pub mod registry;
pub mod scm;

use crate::model::Model;
use crate::nets::ParamSpec;
use crate::precond::Precond;
use crate::process::Denoiser;
use crate::rng::Rng;
use crate::samplers::Sampler;
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
    pub model: &'a Model,
    /// Online weights as autodiff leaves (backbone parameters first, then the objective's own).
    pub online: &'a [Tensor<1>],
    /// The same values as plain tensors: sg(θ).
    pub online_sg: &'a [Tensor<1>],
    /// Target weights θ⁻: the EMA copy, or sg(θ) when the method has no EMA target.
    pub target: &'a [Tensor<1>],
    pub teacher: Option<&'a dyn Denoiser>,
    pub rng: &'a mut Rng,
    pub device: &'a Device,
}

/// A scalar loss plus named terms for the log.
pub struct LossOut {
    pub loss: Tensor<1>,
    pub terms: Vec<(String, f64)>,
}

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
    fn needs_teacher(&self) -> bool {
        false
    }
    /// Parameters owned by the method (appended after the backbone's).
    fn extra_specs(&self) -> Vec<ParamSpec> {
        vec![]
    }
    /// Alternating update phases per step (each its own backward and optimizer update).
    fn phases(&self) -> usize {
        1
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, phase: usize) -> LossOut;
    fn sampler(&self) -> Sampler;
}

/// EDM-time settings shared by the discrete-time methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdmTime {
    pub eps: f64,
    pub t_max: f64,
    pub rho: f64,
    /// Intermediate σ of two-step sampling.
    pub two_step_sigma: f64,
}

impl Default for EdmTime {
    fn default() -> Self {
        Self {
            eps: 0.002,
            t_max: 80.0,
            rho: 7.0,
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

    pub fn consistency_sampler(&self) -> Sampler {
        Sampler::Consistency {
            eps: self.eps,
            t_max: self.t_max,
            mid: self.two_step_sigma,
        }
    }
}

/// Target-network policy for CD/CT-style methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum TargetPolicy {
    /// θ⁻ = sg(θ) (μ = 0).
    StopGrad,
    /// θ⁻ ← μθ⁻ + (1 − μ)θ with fixed μ.
    Ema { mu: f64 },
    /// CT's μ(k) = exp(s0 ln μ0 / N'(k)) (METHODS.md §1).
    Scheduled { mu0: f64 },
}

/// Batch-constant helper: the same value for every sample.
pub fn fill(v: f64, b: usize) -> Vec<f64> {
    vec![v; b]
}
