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
//! 6. L = e^{w(t)}/D·‖F_θ − F⁻ − g‖² − w(t), w a learned linear head on [sin(ω t), cos(ω t)].
//!
//! `tangent_warmup` H: the paper uses 10k steps of ~400k; the default here is 1000 because
//! the 2-D demos run a few thousand steps.

use super::*;
use crate::nets::jvp::JvpMode;
use crate::nets::Init;
use crate::process::{clamp_trig, edm_to_trig_t, edm_to_trig_x, trig_velocity};
use crate::schedule::karras_desc;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TangentNorm {
    /// g/(‖g‖₂ + c) (the paper).
    Full,
    /// g/(RMS(g) + c).
    Rms,
    /// No normalisation.
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScmConfig {
    pub p_mean: f64,
    pub p_std: f64,
    /// Tangent warm-up steps H (r = min(1, step/H); 0 = no warm-up).
    pub tangent_warmup: u64,
    pub tangent_norm: TangentNorm,
    /// Tangent normalisation constant c.
    pub tangent_c: f64,
    /// `exact` (the MLP's tangent pass) or `finite-difference` (f64 central difference).
    pub jvp: JvpMode,
    /// Learned adaptive weighting w_φ(t).
    pub adaptive_weight: bool,
    /// Number of frequencies of the weighting head's embedding of t.
    pub weight_freqs: usize,
    /// sCD only: `exact` (Gaussian-mixture data) or a trained teacher's run folder (EDM or
    /// TrigFlow). Ignored by sCT.
    pub teacher: Teacher,
    /// σ_max of the sampler: T = atan(σ_max/σ_d).
    pub sigma_max: f64,
    /// σ_min of the Karras grid whose TrigFlow times the 3+-step sampler visits (EDM ε, 0.002).
    pub sigma_min: f64,
    /// ρ of that grid (7, Karras et al. 2022).
    pub rho: f64,
    /// Intermediate time of two-step sampling.
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
            jvp: JvpMode::Exact,
            adaptive_weight: true,
            weight_freqs: 8,
            teacher: Teacher::Exact,
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
        let [b, d] = x0.dims();
        let sd = ctx.model.precond.sigma_d();
        let t: Vec<f64> = (0..b).map(|_| self.cfg.draw_t(ctx.rng, sd)).collect();
        let z = ctx.rng.normal_tensor([b, d], ctx.device).mul_scalar(sd);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
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
        let err = (f - target).square().sum_dim(1).div_scalar(d as f64);
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
/// t drawn like sCM's; samples with Heun on the TrigFlow PF-ODE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrigFlowConfig {
    pub p_mean: f64,
    pub p_std: f64,
    pub sigma_max: f64,
    pub sigma_min: f64,
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
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let [b, d] = x0.dims();
        let sd = ctx.model.precond.sigma_d();
        let t: Vec<f64> = (0..b)
            .map(|_| draw_trig_t(self.cfg.p_mean, self.cfg.p_std, ctx.rng, sd))
            .collect();
        let z = ctx.rng.normal_tensor([b, d], ctx.device).mul_scalar(sd);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
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
    }
}
