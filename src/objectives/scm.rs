//! Continuous-time consistency models on TrigFlow: sCT and sCD (Lu & Song 2024,
//! METHODS.md §3), and the TrigFlow diffusion teacher (`trigflow`). TrigFlow time t ∈ [0, π/2],
//! t = 0 data; x_t = cos t·x0 + sin t·z', z' ~ N(0, σ_d² I); c_noise(t) = t.
//!
//! sCM step (the paper's Algorithm 1):
//! 1. τ ~ N(P_mean, P_std²), t = arctan(e^τ/σ_d), clamped inside (0, π/2 − 1e-4).
//! 2. x_t; dx_t/dt = cos t·z' − sin t·x0 (sCT) or the teacher's PF-ODE velocity (sCD).
//! 3. (F⁻, J) = JVP of F_{sg θ} at (x_t/σ_d, t) along (cos t sin t·dx_t/dt/σ_d, cos t sin t).
//! 4. g = −cos² t·(σ_d F⁻ − dx_t/dt) − r·(cos t sin t·x_t + σ_d J), r = min(1, step/H).
//! 5. g ← g/(‖g‖ + c) per sample (full L2 norm by default; `rms` divides by the RMS).
//! 6. L = λ(t)·e^{w(t)}/D·‖F_θ − F⁻ − g‖² − w(t), w a learned linear head on
//!    [sin(ω t), cos(ω t)], λ = 1 or the prior weighting 1/(σ_d tan t) (`prior_weight`).
//!
//! **Defaults follow the paper's CIFAR-10 setting** (METHODS.md §3: P_mean −1.0, P_std 1.4,
//! c = 0.1, the full-norm tangent normalisation and no prior weighting, as the paper writes
//! them), except `tangent_warmup` H: the paper uses 10k steps of ~400k; the default here is 1000
//! because the 2-D demos run a few thousand steps. All three public codes read normalise by the
//! RMS instead of the full norm (NVlabs/FastGen `sCM.py:272-276` with
//! `g_norm_spatial_invariance = True`; ali-vilab/FACM `losses.py:263-266`; xandergos/sCM-mnist
//! `train_consistency.py:114-116`: a factor √D larger tangent, AUDIT D7) and FastGen applies
//! the prior weighting by default (`config_scm.py:54-55`, AUDIT M1): `preset = "cifar10"`
//! (FastGen's CIFAR-10 sCT/sCD) sets both.
//!
//! Options (paper symbols): `p_mean`, `p_std` (P_mean, P_std), `tangent_warmup` (H),
//! `tangent_norm` and `tangent_c` (c), `prior_weight`, `adaptive_weight` (w_φ),
//! `weight_freqs`, `jvp`, `teacher` (sCD), `sigma_max` (T = atan(σ_max/σ_d)), `sigma_min`,
//! `rho` (the 3+-step grid), `t_mid` (the two-step time, 1.1).

use super::*;
use crate::nets::jvp::JvpMode;
use crate::nets::Init;
use crate::process::{clamp_trig, edm_to_trig_t, edm_to_trig_x, trig_velocity};
use crate::schedule::karras_desc;

/// sCM's tangent normalisation g ← g/(n(g) + c) (AUDIT D7).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TangentNorm {
    /// n(g) = ‖g‖₂ over the whole sample, as the paper writes it (default).
    Full,
    /// n(g) = RMS(g) = ‖g‖₂/√D, as FastGen (`g_norm_spatial_invariance`), ali-vilab/FACM and
    /// xandergos/sCM-mnist compute it.
    Rms,
    /// No normalisation.
    None,
}

/// How an sCM network is conditioned and what it outputs ([`ScmConfig::net`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetConvention {
    /// TrigFlow's own: c_noise = t, output F (Lu & Song 2024).
    Trigflow,
    /// EDM's: c_noise = ¼ ln(σ_d tan t), output −F, so an EDM network is the same model
    /// ([`Precond::TrigFlow`]'s `edm_net`).
    Edm,
}

/// The `[method]` table of `sct` and `scd`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScmConfig {
    /// P_mean of τ ~ N(P_mean, P_std²), t = arctan(e^τ/σ_d). Default −1.0 (CIFAR-10).
    pub p_mean: f64,
    /// P_std of τ. Default 1.4 (CIFAR-10; 1.6 on ImageNet-64).
    pub p_std: f64,
    /// Tangent warm-up steps H (r = min(1, step/H); 0 = no warm-up). Default 1000 (paper 10k).
    pub tangent_warmup: u64,
    /// `full` (default, the paper), `rms` (the public codes) or `none`.
    pub tangent_norm: TangentNorm,
    /// Tangent normalisation constant c. Default 0.1.
    pub tangent_c: f64,
    /// Multiply each sample's weighted squared error by the prior weighting 1/σ with
    /// σ = σ_d·tan t, the EDM noise level (FastGen `sCM.py:278-285`,
    /// `prior_weighting_enabled`). Default false.
    pub prior_weight: bool,
    /// `exact` (the backbone's tangent pass) or `finite-difference` (f64 central difference).
    pub jvp: JvpMode,
    /// Learned adaptive weighting w_φ(t). Default true.
    pub adaptive_weight: bool,
    /// Number of frequencies of the weighting head's embedding of t (geometric 1..16). Default 8.
    pub weight_freqs: usize,
    /// sCD only: `exact` (Gaussian-mixture data; default), `gmm` (a mixture fitted to point
    /// data by EM when the run starts) or a trained teacher's run folder (EDM or TrigFlow).
    /// Ignored by sCT.
    pub teacher: Teacher,
    /// Classifier-free guidance scale w of a class-conditional teacher (EDM2's convention: 1 =
    /// the plain conditional teacher, 0 = unconditional; default 1). The teacher is queried
    /// with the student's batch labels, so the student learns the guided trajectories of each
    /// class (guided distillation, Meng et al. 2023; LCM, Luo et al. 2023); rows whose label
    /// was dropped follow the unconditional teacher. Ignored for unconditional teachers.
    pub guidance: f64,
    /// The network convention: `trigflow` (default: conditioned on t, output F) or `edm`
    /// (conditioned on EDM's ¼ ln(σ_d tan t), output −F), under which an EDM denoiser's network
    /// is exactly the TrigFlow model, so sCD can start from its EDM teacher's weights
    /// (`train.init_from`; `cm demo` does this with an EDM teacher).
    pub net: NetConvention,
    /// σ_max of the sampler: T = atan(σ_max/σ_d). Default 80.
    pub sigma_max: f64,
    /// σ_min of the Karras grid whose TrigFlow times the 3+-step sampler visits (EDM ε, 0.002).
    pub sigma_min: f64,
    /// ρ of that grid (7, Karras et al. 2022).
    pub rho: f64,
    /// Intermediate time of two-step sampling (1.1, the paper).
    pub t_mid: f64,
}

impl Default for ScmConfig {
    fn default() -> Self {
        Self {
            p_mean: -1.0,
            p_std: 1.4,
            tangent_warmup: 1000,
            tangent_norm: TangentNorm::Full,
            tangent_c: 0.1,
            prior_weight: false,
            jvp: JvpMode::Exact,
            adaptive_weight: true,
            weight_freqs: 8,
            teacher: Teacher::Exact,
            guidance: 1.0,
            net: NetConvention::Trigflow,
            sigma_max: crate::schedule::EDM_T_MAX,
            sigma_min: crate::schedule::EDM_EPS,
            rho: crate::schedule::EDM_RHO,
            t_mid: 1.1,
        }
    }
}

impl ScmConfig {
    /// Checks the ranges, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.guidance.is_finite() && self.guidance >= 0.0,
            "method.guidance must be a finite scale >= 0 (1 = no guidance), got {}",
            self.guidance
        );
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            self.tangent_c > 0.0,
            "method.tangent_c must be positive, got {}",
            self.tangent_c
        );
        anyhow::ensure!(self.weight_freqs >= 1, "method.weight_freqs must be at least 1");
        anyhow::ensure!(
            self.sigma_max > self.sigma_min && self.sigma_min > 0.0,
            "method.sigma_min and sigma_max need 0 < sigma_min < sigma_max, got {} and {}",
            self.sigma_min,
            self.sigma_max
        );
        anyhow::ensure!(self.rho > 0.0, "method.rho must be positive, got {}", self.rho);
        anyhow::ensure!(
            self.t_mid > 0.0 && self.t_mid < std::f64::consts::FRAC_PI_2,
            "method.t_mid must lie in (0, π/2), got {}",
            self.t_mid
        );
        Ok(())
    }

    /// t = arctan(e^τ/σ_d), τ ~ N(P_mean, P_std²), clamped.
    pub fn draw_t(&self, rng: &mut Rng, sigma_d: f64) -> f64 {
        draw_trig_t(self.p_mean, self.p_std, rng, sigma_d)
    }
}

/// TrigFlow time of a lognormal EDM σ: t = arctan(e^τ/σ_d), τ ~ N(P_mean, P_std²), clamped
/// inside (0, π/2) (METHODS.md §3, step 1).
pub fn draw_trig_t(p_mean: f64, p_std: f64, rng: &mut Rng, sigma_d: f64) -> f64 {
    clamp_trig(((p_mean + p_std * rng.normal()).exp() / sigma_d).atan())
}

/// sCM's prior weighting 1/σ_EDM = 1/(σ_d·tan t) per sample (AUDIT M1).
pub fn prior_weights(t: &[f64], sigma_d: f64) -> Vec<f64> {
    t.iter().map(|t| 1.0 / (sigma_d * t.tan())).collect()
}

/// The sampler time axis of TrigFlow methods: T = atan(σ_max/σ_d) down to 0, with the TrigFlow
/// times of an EDM Karras grid (σ_min, σ_max, ρ) in between.
#[derive(Clone, Copy, Debug)]
struct TrigGrid {
    sigma_min: f64,
    sigma_max: f64,
    rho: f64,
    sigma_d: f64,
}

impl TrigGrid {
    fn t_max(&self) -> f64 {
        edm_to_trig_t(self.sigma_max, self.sigma_d)
    }
    /// `steps + 1` TrigFlow times of the (steps+1)-point Karras grid, T first, 0 last.
    fn times(&self, steps: usize) -> Vec<f64> {
        let mut ts: Vec<f64> = karras_desc(steps, self.sigma_min, self.sigma_max, self.rho)
            .into_iter()
            .map(|s| edm_to_trig_t(s, self.sigma_d))
            .collect();
        *ts.last_mut().unwrap() = 0.0;
        ts
    }
}

/// Index of the weighting head's weight in the method's own parameters (`ctx.online.own`).
const WEIGHT_W: usize = 0;
/// Index of the weighting head's bias.
const WEIGHT_BIAS: usize = 1;

/// sCT (`distill` = false) or sCD (`distill` = true).
pub struct Scm {
    cfg: ScmConfig,
    distill: bool,
}

impl Scm {
    /// sCT (`distill` false) or sCD.
    pub fn new(cfg: ScmConfig, distill: bool) -> anyhow::Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg, distill })
    }

    fn grid(&self, sigma_d: f64) -> TrigGrid {
        TrigGrid {
            sigma_min: self.cfg.sigma_min,
            sigma_max: self.cfg.sigma_max,
            rho: self.cfg.rho,
            sigma_d,
        }
    }

    fn weight_freqs(&self) -> Vec<f64> {
        let k = self.cfg.weight_freqs;
        (0..k)
            .map(|j| {
                if k == 1 {
                    1.0
                } else {
                    16f64.powf(j as f64 / (k - 1) as f64)
                }
            })
            .collect()
    }

    /// [sin(ω t), cos(ω t)] features of the weighting head, `[B, 2K]`.
    fn weight_features(&self, t: &[f64], like: &Tensor<2>) -> Tensor<2> {
        let w = self.weight_freqs();
        let k = w.len();
        let mut v = Vec::with_capacity(t.len() * 2 * k);
        for &t in t {
            v.extend(w.iter().map(|w| (w * t).sin()));
            v.extend(w.iter().map(|w| (w * t).cos()));
        }
        Tensor::<2>::from_data(TensorData::new(v, [t.len(), 2 * k]), (&like.device(), like.dtype()))
    }

    /// The sCM training target F⁻ + g for given draws (plain tensors; exposed for tests).
    /// `dxdt` is the PF-ODE velocity at (x_t, t); returns (target, F⁻, mean ‖g‖ before norm).
    #[allow(clippy::too_many_arguments)]
    pub fn target(
        &self,
        model: &Model,
        p_sg: &[Tensor<1>],
        x_t: Tensor<2>,
        dxdt: Tensor<2>,
        t: &[f64],
        r: f64,
        masks: Option<&crate::nets::Masks>,
    ) -> (Tensor<2>, Tensor<2>, f64) {
        let sd = model.precond.sigma_d();
        let cs: Vec<f64> = t.iter().map(|t| t.cos() * t.sin()).collect();
        let cos2: Vec<f64> = t.iter().map(|t| -t.cos().powi(2)).collect();
        // JVP of F_{sg θ} at (x_t/σ_d, t) along (cos t sin t·dx_t/dt/σ_d, cos t sin t): the
        // model applies c_in = 1/σ_d to the input and its tangent.
        let (f_sg, jac) = model.jvp(
            self.cfg.jvp,
            p_sg,
            x_t.clone(),
            dxdt.clone() * col(&cs, &x_t),
            t,
            &cs,
            &[],
            &[],
            masks,
        );
        let mut g = (f_sg.clone().mul_scalar(sd) - dxdt) * col(&cos2, &x_t);
        if r > 0.0 {
            g = g - (x_t.clone() * col(&cs, &x_t) + jac.mul_scalar(sd)).mul_scalar(r);
        }
        let norm = g.clone().square().sum_dim(1).sqrt();
        let gn = crate::tensor::to_vec64(norm.clone()).iter().sum::<f64>() / t.len() as f64;
        let d = x_t.dims()[1] as f64;
        let g = match self.cfg.tangent_norm {
            TangentNorm::Full => g / norm.add_scalar(self.cfg.tangent_c),
            TangentNorm::Rms => g / norm.div_scalar(d.sqrt()).add_scalar(self.cfg.tangent_c),
            TangentNorm::None => g,
        };
        (f_sg.clone() + g, f_sg, gn)
    }
}

impl Objective for Scm {
    fn name(&self) -> &'static str {
        if self.distill {
            "scd"
        } else {
            "sct"
        }
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::TrigFlow {
            sigma_d,
            velocity: false,
            edm_net: self.cfg.net == NetConvention::Edm,
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn needs_teacher(&self) -> bool {
        self.distill
    }
    fn extra_specs(&self) -> Vec<ParamSpec> {
        if !self.cfg.adaptive_weight {
            return vec![];
        }
        let k = 2 * self.cfg.weight_freqs;
        vec![
            ParamSpec {
                name: "scm.weight.weight".into(),
                shape: vec![k, 1],
                init: Init::Zeros,
                trainable: true,
            },
            ParamSpec {
                name: "scm.weight.bias".into(),
                shape: vec![1],
                init: Init::Zeros,
                trainable: true,
            },
        ]
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let sd = ctx.model.precond.sigma_d();
        let t: Vec<f64> = ctx.per_row(|g| self.cfg.draw_t(g, sd));
        let z = ctx.normal_rows(d).mul_scalar(sd);
        let masks = ctx.masks_rows();
        let cos: Vec<f64> = t.iter().map(|t| t.cos()).collect();
        let sin: Vec<f64> = t.iter().map(|t| t.sin()).collect();
        let x_t = x0.clone() * col(&cos, &x0) + z.clone() * col(&sin, &x0);
        let dxdt = if self.distill {
            let teacher = ctx.teacher.expect("sCD needs a teacher (checked when the run starts)");
            trig_velocity(teacher, x_t.clone(), &t, sd)
        } else {
            z * col(&cos, &x0) - x0.clone() * col(&sin, &x0)
        };
        let r = if self.cfg.tangent_warmup == 0 {
            1.0
        } else {
            (ctx.step as f64 / self.cfg.tangent_warmup as f64).min(1.0)
        };
        let (target, _, gnorm) = self.target(ctx.model, ctx.online_sg.net, x_t.clone(), dxdt, &t, r, masks.as_ref());
        let f = ctx.model.raw(ctx.online.net, x_t, &t, &[], masks.as_ref());
        let mut err = (f - target).square().sum_dim(1).div_scalar(d as f64);
        if self.cfg.prior_weight {
            err = err * col(&prior_weights(&t, sd), &x0);
        }
        let (loss, wmean) = if self.cfg.adaptive_weight {
            let k = 2 * self.cfg.weight_freqs;
            let feats = self.weight_features(&t, &x0);
            let w = feats.matmul(ctx.online.own[WEIGHT_W].clone().reshape([k, 1]))
                + ctx.online.own[WEIGHT_BIAS].clone().reshape([1, 1]);
            let wm = crate::tensor::to_vec64(w.clone().mean())[0];
            ((w.clone().exp() * err - w).mean(), wm)
        } else {
            (err.mean(), 0.0)
        };
        LossOut {
            loss,
            terms: vec![("r".into(), r), ("g_norm".into(), gnorm), ("w_mean".into(), wmean)],
        }
    }
    fn sampler(&self, sigma_d: f64) -> Sampler {
        let grid = self.grid(sigma_d);
        let t_mid = self.cfg.t_mid;
        Sampler::new(
            "trigflow-consistency",
            (grid.t_max(), 0.0),
            move |n| match n {
                1 => vec![grid.t_max(), 0.0],
                2 => vec![grid.t_max(), t_mid, 0.0],
                _ => grid.times(n),
            },
            crate::samplers::consistency::trigflow_multistep,
        )
    }
    fn one_step_map(&self, sigma_d: f64) -> Option<OneStepMap> {
        // The TrigFlow consistency function seen from EDM coordinates: (x, σ) →
        // (x_t = cos t·x, t = atan(σ/σ_d)) (METHODS.md §0); the exact map
        // integrates to σ = 1e-4, a stand-in for TrigFlow's data end t = 0.
        Some(OneStepMap {
            sigma_min: self.cfg.sigma_min,
            sigma_max: self.cfg.sigma_max,
            rho: self.cfg.rho,
            sigma_data_end: 1e-4,
            map: std::sync::Arc::new(move |model: &Model, p: &[Tensor<1>], x: Tensor<2>, s: &[f64]| {
                let t: Vec<f64> = s.iter().map(|&s| edm_to_trig_t(s, sigma_d)).collect();
                model.f(p, edm_to_trig_x(x, &t), &t, None)
            }),
        })
    }
}

/// TrigFlow diffusion teacher: loss mean ‖σ_d F_θ(x_t/σ_d, t) − v‖², v = cos t·z' − sin t·x0,
/// t drawn like sCM's; samples with Heun on the TrigFlow PF-ODE (two evaluations per step).
/// The `[method]` table of `trigflow`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrigFlowConfig {
    /// P_mean of τ, t = arctan(e^τ/σ_d). Default −1.0.
    pub p_mean: f64,
    /// P_std of τ. Default 1.4.
    pub p_std: f64,
    /// σ_max of the sampler: T = atan(σ_max/σ_d). Default 80.
    pub sigma_max: f64,
    /// σ_min of the Karras grid the sampler visits (in TrigFlow time). Default 0.002.
    pub sigma_min: f64,
    /// ρ of that grid. Default 7.
    pub rho: f64,
}

impl Default for TrigFlowConfig {
    fn default() -> Self {
        Self {
            p_mean: -1.0,
            p_std: 1.4,
            sigma_max: crate::schedule::EDM_T_MAX,
            sigma_min: crate::schedule::EDM_EPS,
            rho: crate::schedule::EDM_RHO,
        }
    }
}

/// The TrigFlow teacher's objective.
pub struct TrigFlowDsm {
    cfg: TrigFlowConfig,
}

impl TrigFlowConfig {
    /// Checks the ranges, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            self.sigma_max > self.sigma_min && self.sigma_min > 0.0,
            "method.sigma_min and sigma_max need 0 < sigma_min < sigma_max, got {} and {}",
            self.sigma_min,
            self.sigma_max
        );
        anyhow::ensure!(self.rho > 0.0, "method.rho must be positive, got {}", self.rho);
        Ok(())
    }
}

impl TrigFlowDsm {
    /// The objective.
    pub fn new(cfg: TrigFlowConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }
}

impl Objective for TrigFlowDsm {
    fn name(&self) -> &'static str {
        "trigflow"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::TrigFlow {
            sigma_d,
            velocity: true,
            edm_net: false,
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let sd = ctx.model.precond.sigma_d();
        let t: Vec<f64> = ctx.per_row(|g| draw_trig_t(self.cfg.p_mean, self.cfg.p_std, g, sd));
        let z = ctx.normal_rows(d).mul_scalar(sd);
        let masks = ctx.masks_rows();
        let cos: Vec<f64> = t.iter().map(|t| t.cos()).collect();
        let sin: Vec<f64> = t.iter().map(|t| t.sin()).collect();
        let x_t = x0.clone() * col(&cos, &x0) + z.clone() * col(&sin, &x0);
        let v = z * col(&cos, &x0) - x0.clone() * col(&sin, &x0);
        let pred = ctx.model.f(ctx.online.net, x_t, &t, masks.as_ref());
        LossOut {
            loss: (pred - v).square().mean(),
            terms: vec![],
        }
    }
    fn sampler(&self, sigma_d: f64) -> Sampler {
        let grid = TrigGrid {
            sigma_min: self.cfg.sigma_min,
            sigma_max: self.cfg.sigma_max,
            rho: self.cfg.rho,
            sigma_d,
        };
        Sampler::new(
            "trigflow-heun",
            (grid.t_max(), 0.0),
            move |n| grid.times(n),
            crate::samplers::ode::trigflow_ode,
        )
        .with_nfe(|t| 2 * t.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::{Backbone, Masks};
    use crate::tensor::{tensor2, to_vec64};

    /// F(x, c) = x·A + b·c on 2-D data (A = p[0] as [2, 2], b = p[1]), with its exact tangent.
    struct Linear2;

    impl Backbone for Linear2 {
        fn specs(&self) -> Vec<ParamSpec> {
            vec![
                ParamSpec {
                    name: "a".into(),
                    shape: vec![2, 2],
                    init: Init::Values(vec![0.7, -0.3, 0.2, 1.1]),
                    trainable: true,
                },
                ParamSpec {
                    name: "b".into(),
                    shape: vec![2],
                    init: Init::Values(vec![0.5, -1.5]),
                    trainable: true,
                },
            ]
        }
        fn dim(&self) -> usize {
            2
        }
        fn n_times(&self) -> usize {
            1
        }
        fn dropout(&self) -> f64 {
            0.0
        }
        fn draw_masks(&self, _: &mut Rng, _: usize, _: &Device) -> Option<Masks> {
            None
        }
        fn forward(&self, p: &[Tensor<1>], x: Tensor<2>, cond: &[Tensor<2>], _: Option<&Masks>) -> Tensor<2> {
            x.matmul(p[0].clone().reshape([2, 2])) + cond[0].clone() * p[1].clone().reshape([1, 2])
        }
        fn jvp(
            &self,
            p: &[Tensor<1>],
            x: Tensor<2>,
            dx: Tensor<2>,
            cond: &[Tensor<2>],
            dcond: &[Tensor<2>],
            m: Option<&Masks>,
        ) -> (Tensor<2>, Tensor<2>) {
            let y = self.forward(p, x, cond, m);
            let dy = dx.matmul(p[0].clone().reshape([2, 2])) + dcond[0].clone() * p[1].clone().reshape([1, 2]);
            (y, dy)
        }
    }

    /// AUDIT §4: for the linear "network" F(x, c) = A·x + b·c the sCM target is known in closed
    /// form: F⁻ = A·x_t/σ_d + b·t, J = cos t sin t·(A·(dx/dt)/σ_d + b),
    /// g = −cos² t·(σ_d F⁻ − dx/dt) − r·(cos t sin t·x_t + σ_d J), then g/(‖g‖ + c).
    #[test]
    fn audit_scm_target_of_a_linear_network() {
        let dev = Device::flex();
        let net = std::sync::Arc::new(Linear2);
        let p = crate::nets::init_params(&net.specs(), &mut Rng::new(0), &dev);
        let sd = 0.5;
        let model = Model::new(
            net,
            Precond::TrigFlow {
                sigma_d: sd,
                velocity: false,
                edm_net: false,
            },
        );
        let xs = [[0.3f64, -1.2], [2.0, 0.4], [-0.7, 0.9]];
        let vs = [[1.0f64, 0.5], [-0.2, 0.3], [0.8, -1.1]];
        let ts = [0.2, 0.9, 1.4];
        let (a, b) = ([[0.7, -0.3], [0.2, 1.1]], [0.5, -1.5]);
        // Row-vector convention: (x·A)_j = Σ_i x_i A_ij.
        let lin = |x: [f64; 2]| [x[0] * a[0][0] + x[1] * a[1][0], x[0] * a[0][1] + x[1] * a[1][1]];
        let x_t = tensor2(xs.iter().flatten().map(|&v| v as f32).collect(), 3, 2, &dev);
        let dxdt = tensor2(vs.iter().flatten().map(|&v| v as f32).collect(), 3, 2, &dev);
        for (norm, r) in [
            (TangentNorm::None, 1.0),
            (TangentNorm::Full, 0.6),
            (TangentNorm::Rms, 1.0),
        ] {
            let scm = Scm::new(
                ScmConfig {
                    tangent_norm: norm,
                    ..Default::default()
                },
                false,
            )
            .unwrap();
            let (target, f_sg, _) = scm.target(&model, &p, x_t.clone(), dxdt.clone(), &ts, r, None);
            let (target, f_sg) = (to_vec64(target), to_vec64(f_sg));
            for i in 0..3 {
                let t = ts[i];
                let cs = t.cos() * t.sin();
                let ax = lin([xs[i][0] / sd, xs[i][1] / sd]);
                let av = lin([vs[i][0] / sd, vs[i][1] / sd]);
                let f: Vec<f64> = (0..2).map(|j| ax[j] + b[j] * t).collect();
                let jac: Vec<f64> = (0..2).map(|j| cs * (av[j] + b[j])).collect();
                let g: Vec<f64> = (0..2)
                    .map(|j| -t.cos().powi(2) * (sd * f[j] - vs[i][j]) - r * (cs * xs[i][j] + sd * jac[j]))
                    .collect();
                let n = (g[0] * g[0] + g[1] * g[1]).sqrt();
                let scale = match norm {
                    TangentNorm::None => 1.0,
                    TangentNorm::Full => 1.0 / (n + 0.1),
                    TangentNorm::Rms => 1.0 / (n / 2f64.sqrt() + 0.1),
                };
                for j in 0..2 {
                    assert!((f_sg[2 * i + j] - f[j]).abs() < 1e-5, "F⁻ {i} {j}");
                    let want = f[j] + g[j] * scale;
                    assert!(
                        (target[2 * i + j] - want).abs() < 1e-5 * (1.0 + want.abs()),
                        "{norm:?} row {i} dim {j}: {} vs {want}",
                        target[2 * i + j]
                    );
                }
            }
        }
    }

    /// AUDIT M1: the prior weighting is 1/σ_EDM = 1/(σ_d tan t): 1 at σ_EDM = 1, 2 at 0.5.
    #[test]
    fn audit_m1_scm_prior_weighting() {
        let sd = 0.5;
        let w = prior_weights(&[(1.0f64 / sd).atan(), (0.5f64 / sd).atan()], sd);
        assert!((w[0] - 1.0).abs() < 1e-12 && (w[1] - 2.0).abs() < 1e-12, "{w:?}");
        assert!(!ScmConfig::default().prior_weight);
    }

    /// AUDIT D7: for g = (3, 4) and c = 0.1 the full norm divides by 5.1 and the RMS by
    /// 5/√2 + 0.1 = 3.6355 (checked through the linear network above with r = 0 and a
    /// tangent chosen to make g = (3, 4)).
    #[test]
    fn audit_d7_tangent_norms() {
        let dev = Device::flex();
        let net = std::sync::Arc::new(Linear2);
        // Zero weights: F⁻ = 0, J = 0, so g = cos² t·dx/dt; pick dx/dt = (3, 4)/cos² t.
        let p = vec![Tensor::<1>::zeros([4], &dev), Tensor::<1>::zeros([2], &dev)];
        let model = Model::new(
            net,
            Precond::TrigFlow {
                sigma_d: 0.5,
                velocity: false,
                edm_net: false,
            },
        );
        let t = 0.7f64;
        let c2 = t.cos().powi(2);
        let x = tensor2(vec![0.0, 0.0], 1, 2, &dev);
        let v = tensor2(vec![(3.0 / c2) as f32, (4.0 / c2) as f32], 1, 2, &dev);
        for (norm, den) in [(TangentNorm::Full, 5.1), (TangentNorm::Rms, 5.0 / 2f64.sqrt() + 0.1)] {
            let scm = Scm::new(
                ScmConfig {
                    tangent_norm: norm,
                    ..Default::default()
                },
                false,
            )
            .unwrap();
            let (target, _, _) = scm.target(&model, &p, x.clone(), v.clone(), &[t], 0.0, None);
            let g = to_vec64(target);
            assert!(
                (g[0] - 3.0 / den).abs() < 1e-5 && (g[1] - 4.0 / den).abs() < 1e-5,
                "{norm:?}: {g:?}"
            );
        }
        assert!((5.0 / 2f64.sqrt() + 0.1 - 3.6355).abs() < 1e-4);
    }
}
