//! Flow-anchored consistency model, FACM (Peng et al. 2025, ali-vilab/FACM `losses.py`,
//! METHODS.md §5). Reversed time t ∈ [0, 1], **t = 1 data**: x_t = t·x0 + (1 − t)·z,
//! v = x0 − z (or the teacher's velocity when distilling). The backbone is raw (Precond::Raw,
//! c_noise = t).
//!
//! - `facm` (expanded interval): the flow-matching anchor lives on time inputs 2 − t ∈ [1, 2],
//!   the consistency accelerator on t ∈ [0, 1]; they meet at t = 1.
//! - `facm-aux` (auxiliary condition): two time inputs (t, r); FM uses (t, t), CM uses (t, 1).
//!
//! L_FM = mean((F_fm − v)²) + mean(1 − cos_sim(F_fm, v)); accelerator: (F, dF/dt) = JVP of
//! F_{sg θ} at (x_t, t) along (v, 1), v̄ = v + (1 − t)·dF/dt, g = F − v̄, α = 1 − t^p,
//! target = F − α·clamp(g, −1, 1), β = cos(π t/2), e = mean((F_θ − target)²),
//! L_CM = β·e/sg((e + c)^0.5). L = mean(L_CM) + mean(L_FM).

use super::*;
use crate::nets::jvp::JvpMode;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FacmConfig {
    pub p_mean: f64,
    pub p_std: f64,
    /// α(t) = 1 − t^p.
    pub alpha_p: f64,
    /// Adaptive L2 constant c.
    pub c: f64,
    /// None (`""`): train from data (v = x0 − z). `exact` or a trained teacher folder: distil
    /// the teacher's velocity.
    pub teacher: Teacher,
    pub jvp: JvpMode,
}

impl Default for FacmConfig {
    fn default() -> Self {
        Self {
            p_mean: -0.8,
            p_std: 1.6,
            alpha_p: 0.5,
            c: 1e-3,
            teacher: Teacher::None,
            jvp: JvpMode::Exact,
        }
    }
}

impl FacmConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            self.alpha_p > 0.0,
            "method.alpha_p must be positive, got {}",
            self.alpha_p
        );
        anyhow::ensure!(self.c > 0.0, "method.c must be positive, got {}", self.c);
        Ok(())
    }
}

pub struct Facm {
    cfg: FacmConfig,
    aux: bool,
}

/// Largest FACM time used when a teacher's velocity (singular at t = 1) is needed.
const T_MAX_DISTILL: f64 = 1.0 - 1e-4;

impl Facm {
    pub fn new(cfg: FacmConfig, aux: bool) -> anyhow::Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg, aux })
    }

    /// Time inputs of the flow-matching task at t: [2 − t] or [t, r = t].
    pub fn fm_times(&self, t: &[f64]) -> Vec<Vec<f64>> {
        if self.aux {
            vec![t.to_vec(), t.to_vec()]
        } else {
            vec![t.iter().map(|t| 2.0 - t).collect()]
        }
    }

    /// Time inputs of the consistency task at t: [t] or [t, r = 1].
    pub fn cm_times(&self, t: &[f64]) -> Vec<Vec<f64>> {
        if self.aux {
            vec![t.to_vec(), vec![1.0; t.len()]]
        } else {
            vec![t.to_vec()]
        }
    }

    fn eval(
        &self,
        model: &Model,
        p: &[Tensor<1>],
        x: Tensor<2>,
        times: &[Vec<f64>],
        masks: Option<&crate::nets::Masks>,
    ) -> Tensor<2> {
        let extra: Vec<&[f64]> = times[1..].iter().map(|v| v.as_slice()).collect();
        model.eval(p, x, &times[0], &extra, masks)
    }

    /// t = 1 − (2/π)·arctan σ, σ = exp(P_mean + P_std·n).
    pub fn draw_t(&self, rng: &mut Rng) -> f64 {
        1.0 - std::f64::consts::FRAC_2_PI * (self.cfg.p_mean + self.cfg.p_std * rng.normal()).exp().atan()
    }
}

impl Objective for Facm {
    fn name(&self) -> &'static str {
        if self.aux {
            "facm-aux"
        } else {
            "facm"
        }
    }
    fn precond(&self, _sigma_d: f64) -> Precond {
        Precond::Raw
    }
    fn n_times(&self) -> usize {
        if self.aux {
            2
        } else {
            1
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn needs_teacher(&self) -> bool {
        self.cfg.teacher != Teacher::None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let [b, d] = x0.dims();
        let distil = ctx.teacher.is_some() && self.needs_teacher();
        let t: Vec<f64> = (0..b)
            .map(|_| {
                let t = self.draw_t(ctx.rng);
                if distil {
                    t.clamp(1e-4, T_MAX_DISTILL)
                } else {
                    t
                }
            })
            .collect();
        let z = ctx.rng.normal_tensor([b, d], ctx.device);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
        let one_m: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
        let x_t = x0.clone() * col(&t, &x0) + z.clone() * col(&one_m, &x0);
        let v = match ctx.teacher {
            Some(teacher) if distil => crate::process::facm_velocity(teacher, x_t.clone(), &t),
            _ => x0.clone() - z,
        };
        // Flow-matching anchor.
        let fm_t = self.fm_times(&t);
        let f_fm = self.eval(ctx.model, ctx.online.net, x_t.clone(), &fm_t, masks.as_ref());
        let mse_fm = (f_fm.clone() - v.clone()).square().mean();
        let dot = (f_fm.clone() * v.clone()).sum_dim(1);
        // ‖F‖ with a tiny floor inside the root: at F = 0 (a zero-initialised output layer)
        // d‖F‖/dF would be 0·∞ = NaN; with the floor it is 0, as torch's norm backward
        // defines it, and the cosine's gradient is v/(‖F‖‖v‖) clamped like its value.
        let nf = f_fm.square().sum_dim(1).add_scalar(1e-12).sqrt();
        let nv = v.clone().square().sum_dim(1).sqrt();
        let cos = dot / (nf * nv).clamp_min(1e-8);
        let l_fm = mse_fm + cos.neg().add_scalar(1.0).mean();
        // Consistency accelerator: JVP of F_{sg θ} along (v, 1) (and 0 for r = 1).
        let cm_t = self.cm_times(&t);
        let ones = vec![1.0; b];
        let zeros = vec![0.0; b];
        let (extra, dextra): (Vec<&[f64]>, Vec<&[f64]>) = if self.aux {
            (vec![&cm_t[1]], vec![&zeros])
        } else {
            (vec![], vec![])
        };
        let (f_sg, df) = ctx.model.jvp(
            self.cfg.jvp,
            ctx.online_sg.net,
            x_t.clone(),
            v.clone(),
            &cm_t[0],
            &ones,
            &extra,
            &dextra,
            masks.as_ref(),
        );
        let v_bar = v + df * col(&one_m, &x_t);
        let g = f_sg.clone() - v_bar;
        let alpha: Vec<f64> = t.iter().map(|t| 1.0 - t.max(0.0).powf(self.cfg.alpha_p)).collect();
        let target = f_sg - g.clamp(-1.0, 1.0) * col(&alpha, &x_t);
        let f = self.eval(ctx.model, ctx.online.net, x_t.clone(), &cm_t, masks.as_ref());
        let e = (f - target).square().mean_dim(1);
        let e_val = crate::tensor::to_vec64(e.clone());
        let w: Vec<f64> = t
            .iter()
            .zip(&e_val)
            .map(|(t, e)| (std::f64::consts::FRAC_PI_2 * t).cos() / (e + self.cfg.c).sqrt())
            .collect();
        let l_cm = (e * col(&w, &x_t)).mean();
        let lfm = crate::tensor::to_vec64(l_fm.clone())[0];
        let lcm = crate::tensor::to_vec64(l_cm.clone())[0];
        LossOut {
            loss: l_cm + l_fm,
            terms: vec![("l_fm".into(), lfm), ("l_cm".into(), lcm)],
        }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        Sampler::new(
            if self.aux { "facm-aux" } else { "facm" },
            (0.0, 1.0),
            |n| crate::schedule::uniform_times(n, true),
            crate::samplers::flow::facm_sample,
        )
    }
}
