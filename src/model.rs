//! Model = backbone + parameterisation: the functions objectives and samplers call.
//!
//! `Model::eval(p, x, t, extra, masks)` is `c_skip(t)·x + c_out(t)·F_θ(c_in(t)·x, c_noise(t),
//! c_noise(extra)…)` with the coefficients of [`Precond`]; what it *means* (consistency function,
//! denoiser, TrigFlow consistency function, raw velocity) is decided by the parameterisation.
//! Times are per sample (`&[f64]` of length B).

use crate::nets::jvp::{jvp_with, JvpMode};
use crate::nets::{Backbone, Masks};
use crate::precond::Precond;
use crate::process::Denoiser;
use crate::tensor::col;
use burn::prelude::*;
use std::sync::Arc;

/// A backbone F_θ with its parameterisation: the function `c_skip·x + c_out·F_θ(…)` the
/// objectives train and the samplers call. Holds no weights: every call takes them.
#[derive(Clone)]
pub struct Model {
    /// The backbone (architecture only), shared between clones.
    pub net: Arc<dyn Backbone>,
    /// The parameterisation: the coefficients and the meaning of the time input.
    pub precond: Precond,
    /// Class labels of the batch for a class-conditional backbone (`net.n_classes()` K > 0):
    /// one-hot `[B, K]`, an all-zero row meaning "no class". None = unconditional (all-zero
    /// labels). Ignored by unconditional backbones. The training loop sets them per step
    /// ([`Model::with_labels`]), so objectives never see them.
    pub labels: Option<Tensor<2>>,
    /// Classifier-free guidance scale w (Ho & Salimans 2022, in EDM2's convention): with labels
    /// on a class-conditional backbone, [`Model::eval`] returns the unconditional output plus w
    /// times (conditional − unconditional). 1 (the default) is the plain conditional model,
    /// 0 the unconditional one; rows with no class are unaffected. Set for sampling and for
    /// distillation teachers, never on a model being trained.
    pub guidance: f64,
}

impl Model {
    /// An unconditional model (no labels) from a backbone and a parameterisation.
    pub fn new(net: Arc<dyn Backbone>, precond: Precond) -> Self {
        Self {
            net,
            precond,
            labels: None,
            guidance: 1.0,
        }
    }

    /// The same model (the backbone is shared, not copied) with other class labels.
    pub fn with_labels(&self, labels: Option<Tensor<2>>) -> Model {
        Model {
            net: self.net.clone(),
            precond: self.precond.clone(),
            labels,
            guidance: self.guidance,
        }
    }

    /// The same model with classifier-free guidance scale `w` ([`Model::guidance`]).
    pub fn with_guidance(&self, w: f64) -> Model {
        Model {
            guidance: w,
            ..self.clone()
        }
    }

    /// Whether [`Model::eval`] guides: a scale other than 1 and labels on a class-conditional
    /// backbone.
    fn guides(&self) -> bool {
        self.guidance != 1.0 && self.labels.is_some() && self.net.n_classes() > 0
    }

    /// Conditioning inputs for the network: c_noise(t), then c_noise of each extra time, then,
    /// for a class-conditional backbone, the `[B, K]` labels ([`Model::labels`], or all zeros).
    pub fn cond(&self, t: &[f64], extra: &[&[f64]], like: &Tensor<2>) -> Vec<Tensor<2>> {
        let mut v = vec![col(
            &t.iter().map(|&s| self.precond.c_noise(s)).collect::<Vec<_>>(),
            like,
        )];
        for e in extra {
            v.push(col(
                &e.iter().map(|&s| self.precond.c_noise(s)).collect::<Vec<_>>(),
                like,
            ));
        }
        let k = self.net.n_classes();
        if k > 0 {
            let b = like.dims()[0];
            v.push(match &self.labels {
                Some(l) => {
                    let [lb, lk] = l.dims();
                    assert_eq!(
                        lb, b,
                        "class labels have {lb} rows but the batch x has {b} rows (one label row per sample)"
                    );
                    assert_eq!(lk, k, "class labels have {lk} columns but the network has {k} classes");
                    if l.dtype() == like.dtype() {
                        l.clone()
                    } else {
                        l.clone().cast(like.dtype())
                    }
                }
                None => Tensor::zeros([b, k], (&like.device(), like.dtype())),
            });
        }
        v
    }

    /// The same model carrying the one-hot labels of `labels` (None = no class) for a
    /// class-conditional backbone; an unconditional model is returned unchanged.
    pub fn with_class_labels(&self, labels: &[Option<usize>], device: &Device) -> Model {
        let k = self.net.n_classes();
        if k == 0 {
            return self.clone();
        }
        self.with_labels(Some(onehot(labels, k, device)))
    }

    /// The raw network F_θ at the model's inputs: c_in(t)·x and the conditioning of
    /// [`Model::cond`] (times through c_noise, then the labels).
    pub fn raw(&self, p: &[Tensor<1>], x: Tensor<2>, t: &[f64], extra: &[&[f64]], masks: Option<&Masks>) -> Tensor<2> {
        let c = self.precond.coeffs(t);
        let cond = self.cond(t, extra, &x);
        let xin = scale_rows(x, &c.c_in);
        let f = self.net.forward(p, xin, &cond, masks);
        let sign = self.precond.raw_sign();
        if sign == 1.0 {
            f
        } else {
            f.mul_scalar(sign)
        }
    }

    /// [`Model::raw`] and its directional derivative along (dx, dt, dextra) by `mode` (the
    /// backbone's exact tangent pass, or central differences; METHODS.md §3):
    /// d/dε F(c_in·(x + ε·dx), c_noise(t + ε·dt), c_noise(extra + ε·dextra)…, labels).
    /// The labels are constant. Needs a time-independent c_in ([`Precond::c_in_is_constant`]:
    /// TrigFlow and raw, the parameterisations of the continuous-time methods), so the input's
    /// tangent is c_in·dx.
    #[allow(clippy::too_many_arguments)]
    pub fn jvp(
        &self,
        mode: JvpMode,
        p: &[Tensor<1>],
        x: Tensor<2>,
        dx: Tensor<2>,
        t: &[f64],
        dt: &[f64],
        extra: &[&[f64]],
        dextra: &[&[f64]],
        masks: Option<&Masks>,
    ) -> (Tensor<2>, Tensor<2>) {
        assert!(
            self.precond.c_in_is_constant(),
            "Model::jvp needs a time-independent c_in (TrigFlow or raw parameterisation), got {:?}",
            self.precond
        );
        assert_eq!(extra.len(), dextra.len(), "one tangent per extra time");
        let c = self.precond.coeffs(t);
        let cond = self.cond(t, extra, &x);
        let dnoise = |t: &[f64], dt: &[f64]| -> Vec<f64> {
            t.iter()
                .zip(dt)
                .map(|(&t, &d)| self.precond.c_noise_deriv(t) * d)
                .collect()
        };
        let mut dcond = vec![col(&dnoise(t, dt), &x)];
        for (e, de) in extra.iter().zip(dextra) {
            dcond.push(col(&dnoise(e, de), &x));
        }
        let xin = scale_rows(x, &c.c_in);
        let dxin = scale_rows(dx, &c.c_in);
        let (f, df) = jvp_with(mode, self.net.as_ref(), p, xin, dxin, &cond, &dcond, masks);
        let sign = self.precond.raw_sign();
        if sign == 1.0 {
            (f, df)
        } else {
            (f.mul_scalar(sign), df.mul_scalar(sign))
        }
    }

    /// The parameterised output at time `t` (and extra times for two-time networks).
    pub fn eval(&self, p: &[Tensor<1>], x: Tensor<2>, t: &[f64], extra: &[&[f64]], masks: Option<&Masks>) -> Tensor<2> {
        let c = self.precond.coeffs(t);
        let cond = self.cond(t, extra, &x);
        let xin = scale_rows(x.clone(), &c.c_in);
        let f = if self.guides() {
            // Classifier-free guidance (Ho & Salimans 2022, eq. 6 in EDM2's convention):
            // F_w = F(∅) + w·(F(c) − F(∅)). The output is affine in F with the same c_skip and
            // c_out, so guiding F guides the denoiser, the velocity and the consistency function
            // alike. One network call on the stacked [2B] batch (conditional rows first).
            let b = xin.dims()[0];
            let k = self.net.n_classes();
            let mut cond2: Vec<Tensor<2>> = cond[..cond.len() - 1]
                .iter()
                .map(|t| Tensor::cat(vec![t.clone(), t.clone()], 0))
                .collect();
            let labels = cond[cond.len() - 1].clone();
            let none = Tensor::zeros([b, k], (&labels.device(), labels.dtype()));
            cond2.push(Tensor::cat(vec![labels, none], 0));
            let xin2 = Tensor::cat(vec![xin.clone(), xin], 0);
            let masks2 = masks.map(|m| Masks(m.0.iter().map(|t| Tensor::cat(vec![t.clone(), t.clone()], 0)).collect()));
            let f2 = self.net.forward(p, xin2, &cond2, masks2.as_ref());
            let d = f2.dims()[1];
            let fc = f2.clone().slice([0..b, 0..d]);
            let fu = f2.slice([b..2 * b, 0..d]);
            fu.clone() + (fc - fu).mul_scalar(self.guidance)
        } else {
            self.net.forward(p, xin, &cond, masks)
        };
        let out = f * col(&c.c_out, &x);
        if c.c_skip.iter().all(|&s| s == 0.0) {
            out
        } else {
            x.clone() * col(&c.c_skip, &x) + out
        }
    }

    /// Single-time convenience.
    pub fn f(&self, p: &[Tensor<1>], x: Tensor<2>, t: &[f64], masks: Option<&Masks>) -> Tensor<2> {
        self.eval(p, x, t, &[], masks)
    }
}

/// x with row i multiplied by `s[i]` (unchanged where every factor is exactly 1).
fn scale_rows(x: Tensor<2>, s: &[f64]) -> Tensor<2> {
    if s.iter().all(|&v| v == 1.0) {
        x
    } else {
        x.clone() * col(s, &x)
    }
}

/// One-hot `[B, K]` f32 labels; `None` entries (and K = 0) give all-zero rows.
pub fn onehot(labels: &[Option<usize>], k: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; labels.len() * k];
    for (i, l) in labels.iter().enumerate() {
        if let Some(l) = *l {
            assert!(l < k, "class label {l} for a network with {k} classes");
            v[i * k + l] = 1.0;
        }
    }
    crate::tensor::tensor2(v, labels.len(), k, device)
}

/// A typed view of a run's flat weights: the backbone's, then the method's own (sCM's
/// weighting head, CTM's discriminator). Methods name their own weights by index into `own`
/// (the order of their `extra_specs`).
#[derive(Clone, Copy)]
pub struct Params<'a> {
    /// The backbone's weights, in [`Backbone::specs`] order.
    pub net: &'a [Tensor<1>],
    /// The objective's own weights, in `Objective::extra_specs` order.
    pub own: &'a [Tensor<1>],
}

impl<'a> Params<'a> {
    /// Splits a flat list (backbone weights first) after `n_net` tensors.
    pub fn split(all: &'a [Tensor<1>], n_net: usize) -> Self {
        let (net, own) = all.split_at(n_net);
        Self { net, own }
    }
}

/// CTM's g_θ(x, t, s) = c_skip(t)·x + c_out(t)·NN(c_in(t)·x, c_noise(t), c_noise(s)) (EDM
/// scalings; `model.precond` must be [`Precond::Ctm`] and the backbone must take two times).
pub fn ctm_g(model: &Model, p: &[Tensor<1>], x: Tensor<2>, t: &[f64], s: &[f64], masks: Option<&Masks>) -> Tensor<2> {
    debug_assert!(matches!(model.precond, Precond::Ctm { .. }), "ctm_g needs Precond::Ctm");
    model.eval(p, x, t, &[s], masks)
}

/// CTM's jump G_θ(x, t, s) = (s/t)·x + (1 − s/t)·g_θ(x, t, s), per sample (METHODS.md §4).
/// G_θ(x, t, t) = x exactly: the coefficient of g is exactly 0 and that of x exactly 1.
///
/// So when every row has s = t the network is not evaluated at all and x is returned: the same
/// value, and the same gradients (through x: the identity; to θ: 0·∂g = 0). Why: CTM's outer
/// jump G_{θ⁻}(·, s, ε) with s = ε (`s_strategy = "smallest"`, the image demo's fine-tune) is
/// this case, twice per step (the target's, and the estimate's with its backward): 4 of ~14
/// forward-equivalents of the demo's step.
pub fn ctm_jump(
    model: &Model,
    p: &[Tensor<1>],
    x: Tensor<2>,
    t: &[f64],
    s: &[f64],
    masks: Option<&Masks>,
) -> Tensor<2> {
    if t.iter().zip(s).all(|(t, s)| t == s) {
        return x;
    }
    let r: Vec<f64> = t.iter().zip(s).map(|(t, s)| s / t).collect();
    let one_minus: Vec<f64> = r.iter().map(|r| 1.0 - r).collect();
    let g = ctm_g(model, p, x.clone(), t, s, masks);
    x.clone() * col(&r, &x) + g * col(&one_minus, &x)
}

/// CTM's denoiser D_θ(x, σ) = g_θ(x, σ, σ).
pub fn ctm_denoise(model: &Model, p: &[Tensor<1>], x: Tensor<2>, sigma: &[f64], masks: Option<&Masks>) -> Tensor<2> {
    ctm_g(model, p, x, sigma, sigma, masks)
}

/// A trained network used as a denoiser: an EDM model directly; a TrigFlow velocity model or
/// a flow-matching model through the process conversions. The model's labels (if any) are
/// passed on; a trained teacher ([`crate::run::load_teacher`]) has none, so a
/// class-conditional teacher is queried unconditionally (all-zero labels).
pub struct NetDenoiser {
    /// The trained model; its parameterisation decides the conversion to a denoiser.
    pub model: Model,
    /// Its backbone weights, in [`Backbone::specs`] order.
    pub params: Vec<Tensor<1>>,
}

impl Denoiser for NetDenoiser {
    fn denoise(&self, x: Tensor<2>, sigma: &[f64]) -> Tensor<2> {
        match self.model.precond {
            Precond::Edm { .. } | Precond::Consistency { .. } => self.model.f(&self.params, x, sigma, None),
            // CTM's denoiser D_θ(x, σ) = g_θ(x, σ, σ) (METHODS.md §4).
            Precond::Ctm { .. } => ctm_denoise(&self.model, &self.params, x, sigma, None),
            Precond::TrigFlow { sigma_d, edm_net, .. } => {
                // EDM (x, σ) → TrigFlow (x_t = cos t·x, t = atan(σ/σ_d)); v = σ_d F;
                // x0 = cos t·x_t − sin t·v (METHODS.md §0, §3).
                let t: Vec<f64> = sigma.iter().map(|s| s.atan2(sigma_d)).collect();
                let cos: Vec<f64> = t.iter().map(|t| t.cos()).collect();
                let sin: Vec<f64> = t.iter().map(|t| t.sin()).collect();
                let xt = x.clone() * col(&cos, &x);
                let vel_model = Model {
                    precond: Precond::TrigFlow {
                        sigma_d,
                        velocity: true,
                        edm_net,
                    },
                    ..self.model.clone()
                };
                let v = vel_model.f(&self.params, xt.clone(), &t, None);
                xt * col(&cos, &x) - v * col(&sin, &x)
            }
            Precond::Raw => {
                // Flow matching in FACM's direction (t = 1 data, x_t = t x0 + (1 − t) z,
                // network predicts v = x0 − z): t = 1/(1 + σ), x_t = t·x_EDM, x0 = x_t + (1 − t)·v.
                let t: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s)).collect();
                let xt = x.clone() * col(&t, &x);
                let v = self.model.f(&self.params, xt.clone(), &t, None);
                let one_minus: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
                xt + v * col(&one_minus, &x)
            }
        }
    }

    fn with_labels(&self, labels: Tensor<2>) -> Option<Arc<dyn Denoiser>> {
        (self.model.net.n_classes() > 0).then(|| {
            Arc::new(NetDenoiser {
                model: self.model.with_labels(Some(labels)),
                params: self.params.clone(),
            }) as Arc<dyn Denoiser>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::init_params;
    use crate::nets::mlp::{Mlp, MlpConfig};
    use crate::rng::Rng;
    use crate::tensor::to_vec;

    #[test]
    fn ctm_jump_to_same_time_is_identity() {
        let dev = Device::flex();
        let cfg = MlpConfig {
            hidden: 16,
            depth: 2,
            ..Default::default()
        };
        let net = Arc::new(Mlp::new(&cfg, 2, 2, 0));
        let model = Model::new(net.clone(), Precond::Ctm { sigma_d: 0.5 });
        let mut rng = Rng::new(3);
        let p = init_params(&net.specs(), &mut rng, &dev);
        let x = rng.normal_tensor([64, 2], &dev).mul_scalar(3.0);
        let t: Vec<f64> = (0..64).map(|i| 0.002 * (1.15f64).powi(i)).collect();
        let y = ctm_jump(&model, &p, x.clone(), &t, &t, None);
        assert_eq!(to_vec(y), to_vec(x.clone()));
        // The shortcut (no network call when s = t in every row) gives what the formula gives.
        let g = ctm_g(&model, &p, x.clone(), &t, &t, None);
        let ones = vec![1.0; t.len()];
        let zeros = vec![0.0; t.len()];
        let formula = x.clone() * crate::tensor::col(&ones, &x) + g * crate::tensor::col(&zeros, &x);
        assert_eq!(to_vec(formula), to_vec(x.clone()));
        // One row with s ≠ t takes the formula for all rows: that row moves, the others do not.
        let mut s1 = t.clone();
        s1[5] *= 0.5;
        let y = to_vec(ctm_jump(&model, &p, x.clone(), &t, &s1, None));
        let xv = to_vec(x.clone());
        assert_ne!(&y[10..12], &xv[10..12]);
        assert_eq!(&y[..10], &xv[..10]);
        assert_eq!(&y[12..], &xv[12..]);
        // And G(x, t, s) really moves for s < t.
        let s: Vec<f64> = t.iter().map(|t| t * 0.5).collect();
        let y = ctm_jump(&model, &p, x.clone(), &t, &s, None);
        assert_ne!(to_vec(y), to_vec(x));
    }

    /// TrigFlow's EDM network convention (`edm_net`): with an EDM denoiser's weights,
    /// f(x_t, t) = D(x_t/cos t, σ_d tan t) exactly; the velocity reading and the EDM teacher's
    /// denoiser agree; and the exact JVP along (dx, dt) matches a central difference of F.
    #[test]
    fn trigflow_edm_convention_is_the_edm_network() {
        let dev = Device::flex();
        let cfg = MlpConfig {
            hidden: 32,
            depth: 2,
            ..Default::default()
        };
        let net = Arc::new(Mlp::new(&cfg, 3, 1, 0));
        let mut rng = Rng::new(11);
        let mut p = init_params(&net.specs(), &mut rng, &dev);
        // Non-zero output layer, so F matters.
        let last = p.len() - 2;
        let n = p[last].dims()[0];
        p[last] = rng.normal_tensor([n, 1], &dev).reshape([n]).mul_scalar(0.2);
        let sd: f64 = 0.5;
        let edm = Model::new(net.clone(), Precond::Edm { sigma_d: sd });
        let trig = Model::new(
            net.clone(),
            Precond::TrigFlow {
                sigma_d: sd,
                velocity: false,
                edm_net: true,
            },
        );
        let b = 5;
        let t: Vec<f64> = vec![0.01, 0.3, 0.8, 1.2, 1.55];
        let xt = rng.normal_tensor([b, 3], &dev);
        let x: Tensor<2> = xt.clone() * col(&t.iter().map(|t| 1.0 / t.cos()).collect::<Vec<_>>(), &xt);
        let sigma: Vec<f64> = t.iter().map(|t| sd * t.tan()).collect();
        let d = crate::tensor::to_vec64(edm.f(&p, x.clone(), &sigma, None));
        let f = crate::tensor::to_vec64(trig.f(&p, xt.clone(), &t, None));
        for (a, b) in d.iter().zip(&f) {
            assert!((a - b).abs() < 2e-4 * (1.0 + a.abs()), "D {a} vs TrigFlow f {b}");
        }
        // ...and the network matters: f is not just its skip term cos t·x_t.
        let skip = crate::tensor::to_vec64(xt.clone() * col(&t.iter().map(|t| t.cos()).collect::<Vec<_>>(), &xt));
        assert!(f.iter().zip(&skip).any(|(a, b)| (a - b).abs() > 1e-2), "F is zero");
        // The TrigFlow denoiser of this model (through its velocity) is the EDM denoiser.
        let den = NetDenoiser {
            model: trig.clone(),
            params: p.clone(),
        }
        .denoise(x.clone(), &sigma);
        for (a, b) in d.iter().zip(crate::tensor::to_vec64(den)) {
            assert!((a - b).abs() < 2e-4 * (1.0 + a.abs()), "D {a} vs TrigFlow denoiser {b}");
        }
        // Exact JVP of F (sign included) against a central difference in f64 steps.
        let dx = rng.normal_tensor([b, 3], &dev);
        let dt = vec![0.3, -0.2, 0.5, 0.1, -0.05];
        let (_, jac) = trig.jvp(
            crate::nets::jvp::JvpMode::Exact,
            &p,
            xt.clone(),
            dx.clone(),
            &t,
            &dt,
            &[],
            &[],
            None,
        );
        let h = 1e-3;
        let shifted = |e: f64| {
            let ts: Vec<f64> = t.iter().zip(&dt).map(|(t, d)| t + e * d).collect();
            crate::tensor::to_vec64(trig.raw(&p, xt.clone() + dx.clone().mul_scalar(e), &ts, &[], None))
        };
        let (up, down) = (shifted(h), shifted(-h));
        for (i, j) in crate::tensor::to_vec64(jac).iter().enumerate() {
            let fd = (up[i] - down[i]) / (2.0 * h);
            assert!(
                (j - fd).abs() < 2e-2 * (1.0 + fd.abs()),
                "JVP {j} vs central difference {fd} at {i}"
            );
        }
    }
}
