//! Flow-anchored consistency model, FACM (Peng et al. 2025, ali-vilab/FACM `losses.py`,
//! METHODS.md §5). Reversed time t ∈ [0, 1], **t = 1 data**: x_t = t·x0 + (1 − t)·z,
//! v = x0 − z (or the teacher's velocity when distilling). The backbone is raw (Precond::Raw,
//! c_noise = t).
//!
//! - `facm` (expanded interval): the flow-matching anchor lives on time inputs 2 − t ∈ [1, 2],
//!   the consistency accelerator on t ∈ [0, 1]; they meet at t = 1.
//! - `facm-aux` (auxiliary condition): two time inputs (t, r); FM uses (t, t), CM uses (t, 1).
//!
//! L_FM = mean((F_fm − v)²) + mean(1 − cos_sim(F_fm, v)) (the cosine per pixel over channels on
//! image backbones, as `F.cosine_similarity(pred, target, dim=1)` in `losses.py:61-65`);
//! accelerator: (F, dF/dt) = JVP of F_{sg θ} at (x_t, t) along (v, 1), v̄ = v + (1 − t)·dF/dt,
//! g = F − v̄, α = 1 − t^p, target = F − α·clamp(g, −1, 1), β = cos(π t/2),
//! e = mean((F_θ − target)²), L_CM = β·e/sg((e + c)^0.5). L = mean(L_CM) + mean(L_FM).
//!
//! **Defaults follow the official ImageNet-256 run** (ali-vilab/FACM `scripts/train.sh`:
//! `--t-type default --p 0.5 --mean 0.8 --std 1.6`, i.e. P_mean = −0.8, P_std = 1.6; c = 1e-3
//! from `norm_l2_loss`), except that it trains from data unless `teacher` is set (the official
//! run distils its stage-1 flow model with CFG 1.75, which this toolkit cannot express: no
//! guidance). Options (paper symbols): `p_mean`, `p_std` (P_mean, P_std of the t proposal),
//! `alpha_p` (p in α = 1 − t^p), `c` (the adaptive-L2 constant), `teacher`, `cos_axis`
//! (the FM cosine's axis), `jvp`, and `fm_weight` (the anchor's weight: 1 as in the paper, 0
//! removes it, leaving the bare continuous-time CM objective the paper calls unstable, §1.8.1;
//! `cm repro facm-anchor` compares the two).

use super::*;
use crate::nets::jvp::JvpMode;

/// The axis of the flow-matching anchor's cosine term (AUDIT D1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CosAxis {
    /// `channels` on an image backbone (the U-Net), `sample` on vector data (default).
    Auto,
    /// One cosine per pixel over the channel axis, averaged over pixels: the official code
    /// (`F.cosine_similarity(pred, target, dim=1)`) and METHODS.md §5. On single-channel images
    /// each cosine is sign(F·v), a term without gradient.
    Channels,
    /// One cosine over the whole flattened sample (this project's original term). Equal to
    /// `channels` for vector data.
    Sample,
}

/// The `[method]` table of `facm` and `facm-aux`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FacmConfig {
    /// P_mean of the t proposal t = 1 − (2/π)·arctan(exp(P_mean + P_std·n)) (`--mean` is its
    /// negative: `sample_t` uses P_mean = −args.mean). Default −0.8.
    pub p_mean: f64,
    /// P_std of the t proposal (`--std`). Default 1.6.
    pub p_std: f64,
    /// p in the relaxation α(t) = 1 − t^p (`--p`). Default 0.5.
    pub alpha_p: f64,
    /// Constant c of the adaptive L2 weight 1/sg((e + c)^0.5) (`norm_l2_loss`). Default 1e-3.
    pub c: f64,
    /// None (`""`, default): train from data (v = x0 − z). `exact`, `gmm` or a trained teacher folder:
    /// distil the teacher's velocity (official: `--distill` from the stage-1 FM model).
    pub teacher: Teacher,
    /// Axis of the FM cosine term: `auto` (default: `channels` on image backbones, `sample`
    /// on vector data), `channels` or `sample`.
    pub cos_axis: CosAxis,
    /// `exact` (the backbone's tangent pass, default) or `finite-difference`.
    pub jvp: JvpMode,
    /// Weight of the flow-matching anchor L_FM in L = L_CM + w·L_FM. Default 1 (the paper);
    /// 0 trains the consistency accelerator alone (the ablation of §1.8.1).
    pub fm_weight: f64,
}

impl Default for FacmConfig {
    fn default() -> Self {
        Self {
            p_mean: -0.8,
            p_std: 1.6,
            alpha_p: 0.5,
            c: 1e-3,
            teacher: Teacher::None,
            cos_axis: CosAxis::Auto,
            jvp: JvpMode::Exact,
            fm_weight: 1.0,
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
        anyhow::ensure!(
            self.fm_weight >= 0.0 && self.fm_weight.is_finite(),
            "method.fm_weight must be finite and ≥ 0, got {}",
            self.fm_weight
        );
        Ok(())
    }
}

/// The FACM objective (`aux`: the auxiliary-condition strategy).
pub struct Facm {
    cfg: FacmConfig,
    aux: bool,
}

/// Largest FACM time used when a teacher's velocity (singular at t = 1) is needed.
const T_MAX_DISTILL: f64 = 1.0 - 1e-4;

impl Facm {
    /// The objective: expanded interval (`facm`) or auxiliary condition (`facm-aux`).
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

/// mean(1 − cos(a, b)): one cosine per sample (`shape` None) or, for channel-first images of
/// `shape` (C, H, W), one per pixel over the C channels (`F.cosine_similarity(a, b, dim=1)`),
/// averaged over pixels and the batch.
pub fn cosine_loss(a: Tensor<2>, b: Tensor<2>, shape: Option<(usize, usize, usize)>) -> Tensor<1> {
    let [n, d] = a.dims();
    let (c, hw) = match shape {
        Some((c, h, w)) if c * h * w == d => (c, h * w),
        _ => (d, 1),
    };
    let (a, b) = (a.reshape([n, c, hw]), b.reshape([n, c, hw]));
    let dot = (a.clone() * b.clone()).sum_dim(1);
    // ‖a‖ with a tiny floor inside the root: at a = 0 (a zero-initialised output layer)
    // d‖a‖/da would be 0·∞ = NaN; with the floor it is 0, as torch's norm backward defines it,
    // and the cosine's gradient is b/(‖a‖‖b‖) clamped like its value.
    let na = a.square().sum_dim(1).add_scalar(1e-12).sqrt();
    let nb = b.square().sum_dim(1).sqrt();
    let cos = dot / (na * nb).clamp_min(1e-8);
    cos.neg().add_scalar(1.0).mean()
}

/// A trained `facm` / `facm-aux` run as a teacher denoiser (AUDIT B4): its flow-matching
/// velocity v = F(x_t, 2 − t) (expanded interval) or F(x_t, t, r = t) (auxiliary condition),
/// never the consistency branch. From EDM (x, σ): t = 1/(1 + σ), x_t = t·x,
/// D = x_t + (1 − t)·v (ali-vilab/FACM trains its FM branch on both t and 2 − t).
pub struct FacmTeacher {
    /// The run's model (raw parameterisation).
    pub model: Model,
    /// Its (EMA) backbone weights.
    pub params: Vec<Tensor<1>>,
    /// `facm-aux` (two time inputs) rather than `facm`.
    pub aux: bool,
}

impl Denoiser for FacmTeacher {
    fn denoise(&self, x: Tensor<2>, sigma: &[f64]) -> Tensor<2> {
        let t: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s)).collect();
        let xt = x.clone() * col(&t, &x);
        let v = if self.aux {
            self.model.eval(&self.params, xt.clone(), &t, &[&t], None)
        } else {
            let fm: Vec<f64> = t.iter().map(|t| 2.0 - t).collect();
            self.model.eval(&self.params, xt.clone(), &fm, &[], None)
        };
        let one_m: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
        xt + v * col(&one_m, &x)
    }

    fn with_labels(&self, labels: Tensor<2>) -> Option<std::sync::Arc<dyn Denoiser>> {
        (self.model.net.n_classes() > 0).then(|| {
            std::sync::Arc::new(FacmTeacher {
                model: self.model.with_labels(Some(labels)),
                params: self.params.clone(),
                aux: self.aux,
            }) as std::sync::Arc<dyn Denoiser>
        })
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
        let t: Vec<f64> = ctx.per_row(|g| {
            let t = self.draw_t(g);
            if distil {
                t.clamp(1e-4, T_MAX_DISTILL)
            } else {
                t
            }
        });
        let z = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
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
        let shape = match self.cfg.cos_axis {
            CosAxis::Sample => None,
            CosAxis::Auto => ctx.model.net.image_shape(),
            CosAxis::Channels => ctx.model.net.image_shape().or_else(|| image_shape_of(d)),
        };
        let l_fm = mse_fm + cosine_loss(f_fm, v.clone(), shape);
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
        // fm_weight = 0 keeps the anchor's value in the log but takes it out of the gradient.
        let loss = if self.cfg.fm_weight == 1.0 {
            l_cm + l_fm
        } else {
            l_cm + l_fm.mul_scalar(self.cfg.fm_weight)
        };
        LossOut {
            loss,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// AUDIT D1: on F = [1, 0, 0, 1], v = [1, 0, 0, 2] (C = 2 channels, two pixels, channel
    /// first) the per-pixel channel cosines are both 1, so the term is 0; the whole-sample
    /// cosine gives 1 − 3/√10 = 0.0513167.
    #[test]
    fn audit_d1_facm_cosine_per_pixel_over_channels() {
        let dev = Device::flex();
        let f = crate::tensor::tensor2(vec![1.0, 0.0, 0.0, 1.0], 1, 4, &dev);
        let v = crate::tensor::tensor2(vec![1.0, 0.0, 0.0, 2.0], 1, 4, &dev);
        let ch = crate::tensor::to_vec64(cosine_loss(f.clone(), v.clone(), Some((2, 1, 2))))[0];
        assert!(ch.abs() < 1e-6, "{ch}");
        let whole = crate::tensor::to_vec64(cosine_loss(f, v, None))[0];
        assert!((whole - (1.0 - 3.0 / 10f64.sqrt())).abs() < 1e-6, "{whole}");
        assert!((whole - 0.0513167).abs() < 1e-6);
        assert_eq!(FacmConfig::default().cos_axis, CosAxis::Auto);
    }

    /// A one-time stub flow model: at time inputs in [1, 2] (the FM branch, time 2 − t) it
    /// returns the exact flow velocity of the ring8 mixture, at inputs in [0, 1) garbage.
    struct StubFlow(crate::data::gmm::Gmm);

    impl crate::nets::Backbone for StubFlow {
        fn specs(&self) -> Vec<ParamSpec> {
            vec![]
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
        fn draw_masks(&self, _: &mut Rng, _: usize, _: &Device) -> Option<crate::nets::Masks> {
            None
        }
        fn forward(
            &self,
            _: &[Tensor<1>],
            x: Tensor<2>,
            cond: &[Tensor<2>],
            _: Option<&crate::nets::Masks>,
        ) -> Tensor<2> {
            let c = crate::tensor::to_vec64(cond[0].clone());
            assert!(c.iter().all(|&c| c >= 1.0), "the consistency branch was queried: {c:?}");
            let t: Vec<f64> = c.iter().map(|c| 2.0 - c).collect();
            crate::process::facm_velocity(&self.0, x, &t)
        }
        fn jvp(
            &self,
            _: &[Tensor<1>],
            _: Tensor<2>,
            _: Tensor<2>,
            _: &[Tensor<2>],
            _: &[Tensor<2>],
            _: Option<&crate::nets::Masks>,
        ) -> (Tensor<2>, Tensor<2>) {
            unimplemented!()
        }
    }

    /// AUDIT B4 with an exact oracle: a `facm` teacher whose FM branch is the exact flow velocity
    /// denoises exactly as the mixture's own denoiser (the consistency branch is never queried).
    #[test]
    fn audit_b4_facm_teacher_of_an_exact_flow_is_the_exact_denoiser() {
        let dev = Device::flex();
        let ds = crate::data::Dataset::from_name("ring8").unwrap();
        let st = ds.standardizer();
        let gmm = ds.gmm().unwrap().standardized(&st.mean, &st.std);
        let teacher = FacmTeacher {
            model: Model::new(std::sync::Arc::new(StubFlow(gmm.clone())), Precond::Raw),
            params: vec![],
            aux: false,
        };
        let x = Rng::new(5).normal_tensor([64, 2], &dev).mul_scalar(2.0);
        let sigma: Vec<f64> = (0..64).map(|i| 0.01 * 1.13f64.powi(i)).collect();
        let got = crate::tensor::to_vec64(teacher.denoise(x.clone(), &sigma));
        let want = crate::tensor::to_vec64(gmm.denoise(x, &sigma));
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-5, "max |D_teacher − D_exact| = {err}");
    }
}
