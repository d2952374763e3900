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
pub mod dsm;
pub mod ect;
pub mod facm;
pub mod ict;
pub mod meanflow;
pub mod scm;
#[cfg(test)]
mod tests;

use crate::model::{Denoiser, Model};
use crate::nets::{col, ParamSpec};
use crate::param::Param;
use crate::rng::Rng;
use crate::samplers::Sampler;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

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
    fn param(&self, sigma_d: f64) -> Param;
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

/// Distance between model outputs, per sample (METHODS.md §1, §2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// Mean of squares over the sample's dimensions.
    L2,
    /// Mean of absolute values.
    L1,
    /// sqrt(‖a − b‖² + c²) − c on the whole sample (iCT), c = 0.00054·√D unless given.
    PseudoHuber,
    /// LPIPS with the VGG16 trunk (METHODS.md §1) on square grey or RGB images in [-1, 1]
    /// (the shape is read from D: s² grey or 3·s² RGB). [`crate::lpips::Lpips`] maps the
    /// inputs as LPIPS expects (the shift/scale on [-1, 1] equals ImageNet normalisation of
    /// (x + 1)/2 in [0, 1]); images smaller than 256 px are upsampled bilinearly to 224 px.
    Lpips,
    /// LPIPS at the images' own size (no upsampling; much faster, needs at least 16 px).
    LpipsNative,
}

/// The (C, H, W) of a square image with `dim` values: grey s×s, else RGB 3×s×s.
pub fn image_shape_of(dim: usize) -> Option<(usize, usize, usize)> {
    let sq = |n: usize| {
        let s = (n as f64).sqrt().round() as usize;
        (s * s == n && s > 0).then_some(s)
    };
    if let Some(s) = sq(dim) {
        return Some((1, s, s));
    }
    if dim % 3 == 0 {
        if let Some(s) = sq(dim / 3) {
            return Some((3, s, s));
        }
    }
    None
}

static LPIPS: std::sync::OnceLock<Result<crate::lpips::Lpips, String>> = std::sync::OnceLock::new();

/// The process-wide LPIPS (VGG16) network, loaded once from the first weights directory of
/// [`crate::lpips::weight_dirs`].
pub fn lpips_vgg() -> Result<&'static crate::lpips::Lpips, String> {
    LPIPS
        .get_or_init(|| {
            let net = crate::lpips::LpipsNet::Vgg16;
            let path = crate::lpips::find_weights(net).ok_or_else(|| {
                format!(
                    "distance = \"lpips\" needs {} in $CM_LPIPS_DIR, ../shared/weights/lpips or data/weights/lpips (get it with `cm data fetch lpips --dir data`)",
                    net.file_name()
                )
            })?;
            crate::lpips::Lpips::load(&path, &Device::flex()).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| e.clone())
}

/// Checks that a distance can be used on `dim`-dimensional samples (LPIPS: image-shaped
/// samples and weights present), loading the LPIPS weights now so a run fails at setup.
pub fn check_distance(kind: Distance, dim: usize) -> anyhow::Result<()> {
    if let Distance::Lpips | Distance::LpipsNative = kind {
        let Some((_, h, _)) = image_shape_of(dim) else {
            anyhow::bail!("distance = \"lpips\" needs square images (D = s² or 3·s²), got D = {dim}");
        };
        if kind == Distance::LpipsNative && h < 16 {
            anyhow::bail!("distance = \"lpips-native\" needs images of at least 16 px, got {h} px (use \"lpips\")");
        }
        lpips_vgg().map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Per-sample distance `[B, 1]`; `c` is the pseudo-Huber constant.
/// LPIPS kinds need [`check_distance`] to have passed (the objectives call it when built).
pub fn distance(kind: Distance, a: Tensor<2>, b: Tensor<2>, c: f64) -> Tensor<2> {
    match kind {
        Distance::L2 => (a - b).square().mean_dim(1),
        Distance::L1 => (a - b).abs().mean_dim(1),
        Distance::PseudoHuber => (a - b).square().sum_dim(1).add_scalar(c * c).sqrt().sub_scalar(c),
        Distance::Lpips | Distance::LpipsNative => {
            let l = lpips_vgg().expect("LPIPS weights (checked when the objective was built)");
            let [n, d] = a.dims();
            let (ch, h, w) = image_shape_of(d).expect("image-shaped samples (checked when the objective was built)");
            let (a, b) = (a.reshape([n, ch, h, w]), b.reshape([n, ch, h, w]));
            let v = if kind == Distance::Lpips {
                l.distance_resized(a, b)
            } else {
                l.distance(a, b)
            };
            v.reshape([n, 1])
        }
    }
}

/// iCT's default pseudo-Huber constant for D dimensions: 0.00054·√D.
pub fn huber_c(dim: usize) -> f64 {
    0.00054 * (dim as f64).sqrt()
}

/// Mean over the batch of w_i·d_i, weights in f64.
pub fn weighted_mean(d: Tensor<2>, w: &[f64]) -> Tensor<1> {
    (d.clone() * col(w, &d)).mean()
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

/// The method section of a config: the registry of methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum MethodConfig {
    /// EDM diffusion teacher by denoising score matching.
    Edm(dsm::DsmConfig),
    Cd(cd::CdConfig),
    Ct(ct::CtConfig),
    Ict(ict::IctConfig),
    Ect(ect::EctConfig),
    /// Consistency trajectory models (METHODS.md §4).
    Ctm(ctm::CtmConfig),
    /// TrigFlow diffusion teacher (velocity loss ‖σ_d F − v‖²).
    Trigflow(scm::TrigFlowConfig),
    /// Continuous-time consistency training on TrigFlow.
    Sct(scm::ScmConfig),
    /// Continuous-time consistency distillation on TrigFlow.
    Scd(scm::ScmConfig),
    /// FACM with the expanded time interval.
    Facm(facm::FacmConfig),
    /// FACM with the auxiliary time condition.
    FacmAux(facm::FacmConfig),
    Meanflow(meanflow::MeanFlowConfig),
}

impl Default for MethodConfig {
    fn default() -> Self {
        MethodConfig::Ict(ict::IctConfig::default())
    }
}

/// Names accepted by `--method`.
pub const METHODS: &[&str] = &[
    "ict", "ct", "cd", "ect", "ctm", "edm", "trigflow", "sct", "scd", "facm", "facm-aux", "meanflow",
];

impl MethodConfig {
    /// The default configuration of a method by name.
    pub fn by_name(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "edm" => MethodConfig::Edm(Default::default()),
            "cd" => MethodConfig::Cd(Default::default()),
            "ct" => MethodConfig::Ct(Default::default()),
            "ict" => MethodConfig::Ict(Default::default()),
            "ect" => MethodConfig::Ect(Default::default()),
            "ctm" => MethodConfig::Ctm(Default::default()),
            "trigflow" => MethodConfig::Trigflow(Default::default()),
            "sct" => MethodConfig::Sct(Default::default()),
            "scd" => MethodConfig::Scd(Default::default()),
            "facm" => MethodConfig::Facm(Default::default()),
            "facm-aux" => MethodConfig::FacmAux(Default::default()),
            "meanflow" => MethodConfig::Meanflow(Default::default()),
            other => anyhow::bail!("unknown method '{other}': expected one of {}", METHODS.join(", ")),
        })
    }

    pub fn build(&self, dim: usize) -> anyhow::Result<Box<dyn Objective>> {
        Ok(match self {
            MethodConfig::Edm(c) => Box::new(dsm::Dsm::new(c.clone())?),
            MethodConfig::Cd(c) => Box::new(cd::Cd::new(c.clone(), dim)?),
            MethodConfig::Ct(c) => Box::new(ct::Ct::new(c.clone(), dim)?),
            MethodConfig::Ict(c) => Box::new(ict::Ict::new(c.clone(), dim)?),
            MethodConfig::Ect(c) => Box::new(ect::Ect::new(c.clone(), dim)?),
            MethodConfig::Ctm(c) => Box::new(ctm::Ctm::new(c.clone(), dim)?),
            MethodConfig::Trigflow(c) => Box::new(scm::TrigFlowDsm::new(c.clone())?),
            MethodConfig::Sct(c) => Box::new(scm::Scm::new(c.clone(), false)?),
            MethodConfig::Scd(c) => Box::new(scm::Scm::new(c.clone(), true)?),
            MethodConfig::Facm(c) => Box::new(facm::Facm::new(c.clone(), false)?),
            MethodConfig::FacmAux(c) => Box::new(facm::Facm::new(c.clone(), true)?),
            MethodConfig::Meanflow(c) => Box::new(meanflow::MeanFlow::new(c.clone())?),
        })
    }

    /// Points a distilling method at a teacher (a run folder or `exact`).
    pub fn set_teacher(&mut self, teacher: &str) {
        match self {
            MethodConfig::Cd(c) => c.teacher = teacher.into(),
            MethodConfig::Ctm(c) => c.teacher = teacher.into(),
            MethodConfig::Scd(c) => c.teacher = teacher.into(),
            MethodConfig::Facm(c) | MethodConfig::FacmAux(c) => c.teacher = teacher.into(),
            _ => {}
        }
    }

    /// The teacher setting, for methods that distil.
    pub fn teacher(&self) -> Option<&str> {
        match self {
            MethodConfig::Cd(c) => Some(&c.teacher),
            MethodConfig::Ctm(c) => Some(&c.teacher),
            MethodConfig::Scd(c) => Some(&c.teacher),
            MethodConfig::Facm(c) | MethodConfig::FacmAux(c) if !c.teacher.is_empty() => Some(&c.teacher),
            _ => None,
        }
    }

    /// Whether the student starts from the teacher's weights (same backbone and time input).
    pub fn starts_from_teacher(&self) -> bool {
        matches!(self, MethodConfig::Cd(_))
    }

    /// Backbone settings the method's paper recommends, applied to a demo MLP config: sCM and
    /// TrigFlow use scale-shift modulation with adaptive double normalisation.
    pub fn recommend_model(&self, m: &mut crate::nets::mlp::MlpConfig) {
        if let MethodConfig::Sct(_) | MethodConfig::Scd(_) | MethodConfig::Trigflow(_) = self {
            m.modulation = crate::nets::mlp::Modulation::ScaleShift;
            m.double_norm = true;
        }
    }
}

/// Batch-constant helper: the same value for every sample.
pub fn fill(v: f64, b: usize) -> Vec<f64> {
    vec![v; b]
}

#[cfg(test)]
mod tests_continuous;
