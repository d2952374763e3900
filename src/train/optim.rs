//! The optimizer (Adam or RAdam with global-norm clipping) and weight averages (the target
//! network's and the evaluation EMA's update). Used by training and by the image classifiers.
//!
//! Why our own: burn-optim 0.22 has no RAdam, and its gradient clipping clips each tensor by
//! its own norm, not the global norm consistency-model references use (REVIEW.md §4).

use crate::config::Optimizer;
use burn::prelude::*;

/// Adam / RAdam hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub kind: Optimizer,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// One Adam or RAdam update of `params[i]` for every `grads[i]` that is `Some`, with the
/// gradients scaled by `clip` first (global-norm clipping: the caller passes
/// min(1, max_norm/‖g‖)). Each tensor's step count `t[i]` advances only when it gets a
/// gradient (PyTorch's per-parameter `state["step"]`), so its bias correction is its own.
///
/// Adam (Kingma & Ba 2015): m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g²,
/// θ ← θ − lr·(m/(1 − β1^t)) / (sqrt(v/(1 − β2^t)) + ε).
/// RAdam (Liu et al. 2020, `torch.optim.RAdam`): with ρ∞ = 2/(1 − β2) − 1 and
/// ρ_t = ρ∞ − 2tβ2^t/(1 − β2^t), the adaptive step is multiplied by
/// r_t = sqrt((ρ_t − 4)(ρ_t − 2)ρ∞/((ρ∞ − 4)(ρ∞ − 2)ρ_t)) once ρ_t > 5; before that the update is
/// the bias-corrected momentum lr·m/(1 − β1^t).
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    cfg: &AdamConfig,
    lr: f64,
    clip: f64,
    params: &mut [Tensor<1>],
    m: &mut [Tensor<1>],
    v: &mut [Tensor<1>],
    t: &mut [u64],
    grads: Vec<Option<Tensor<1>>>,
) {
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    for (i, g) in grads.into_iter().enumerate() {
        let Some(g) = g else { continue };
        t[i] += 1;
        let k = t[i];
        let bc1 = 1.0 - b1.powi(k as i32);
        let bc2 = 1.0 - b2.powi(k as i32);
        let rect = match cfg.kind {
            Optimizer::Adam => Some(1.0),
            Optimizer::Radam => {
                let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                let rho = rho_inf - 2.0 * k as f64 * b2.powi(k as i32) / bc2;
                if rho > 5.0 {
                    Some(((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)).sqrt())
                } else {
                    None
                }
            }
        };
        let g = if clip < 1.0 { g.mul_scalar(clip) } else { g };
        let mi = m[i].clone().mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
        let vi = v[i].clone().mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
        let upd = match rect {
            Some(r) => mi
                .clone()
                .div(vi.clone().div_scalar(bc2).sqrt().add_scalar(cfg.eps))
                .mul_scalar(lr * r / bc1),
            None => mi.clone().mul_scalar(lr / bc1),
        };
        params[i] = params[i].clone() - upd;
        m[i] = mi;
        v[i] = vi;
    }
}

/// θ⁻ ← μ θ⁻ + (1 − μ) θ, without gradients.
pub fn ema(avg: &[Tensor<1>], cur: &[Tensor<1>], mu: f64) -> Vec<Tensor<1>> {
    avg.iter()
        .zip(cur)
        .map(|(a, c)| a.clone().mul_scalar(mu) + c.clone().mul_scalar(1.0 - mu))
        .collect()
}
