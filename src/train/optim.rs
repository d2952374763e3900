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
    /// Adam or RAdam.
    pub kind: Optimizer,
    /// First-moment decay β1.
    pub beta1: f64,
    /// Second-moment decay β2.
    pub beta2: f64,
    /// ε added to the denominator.
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

/// Decay of the evaluation EMA for the update after `k` steps (k ≥ 1): `eval_ema` when the
/// ramp-up is off, else ½^(1/h) with half-life h = min(r·k, ln ½ / ln `eval_ema`) steps, EDM's
/// `ema_beta = 0.5 ** (batch / min(halflife_nimg, cur_nimg · rampup_ratio))` counted in steps
/// (Karras et al. 2022, training/training_loop.py).
pub fn eval_ema_decay(t: &crate::config::TrainConfig, k: u64) -> f64 {
    if t.ema_rampup <= 0.0 || t.eval_ema <= 0.0 {
        return t.eval_ema;
    }
    let cap = 0.5f64.ln() / t.eval_ema.ln();
    let h = (t.ema_rampup * k as f64).min(cap);
    if h <= 0.0 {
        0.0
    } else {
        0.5f64.powf(1.0 / h)
    }
}

/// θ⁻ ← μ θ⁻ + (1 − μ) θ, without gradients.
pub fn ema(avg: &[Tensor<1>], cur: &[Tensor<1>], mu: f64) -> Vec<Tensor<1>> {
    avg.iter()
        .zip(cur)
        .map(|(a, c)| a.clone().mul_scalar(mu) + c.clone().mul_scalar(1.0 - mu))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ramped decay: off gives `eval_ema`; on, the half-life grows as r·k until the cap,
    /// where the decay is `eval_ema` again; applying it k times to a unit initial weight leaves
    /// ½ after one half-life (checked in the capped regime).
    #[test]
    fn eval_ema_decay_ramps_to_the_cap() {
        let mut t = crate::config::TrainConfig::default();
        assert_eq!(eval_ema_decay(&t, 10), 0.999);
        t.ema_rampup = 0.05;
        // k = 100: half-life 5 steps.
        assert!((eval_ema_decay(&t, 100) - 0.5f64.powf(1.0 / 5.0)).abs() < 1e-15);
        // Past the cap (693.1 steps = 0.05 · 13 863) the decay is eval_ema itself.
        assert!((eval_ema_decay(&t, 20_000) - 0.999).abs() < 1e-12);
        assert!(eval_ema_decay(&t, 100) < eval_ema_decay(&t, 1000));
        let h = 0.5f64.ln() / 0.999f64.ln();
        let left = 0.999f64.powf(h);
        assert!((left - 0.5).abs() < 1e-12, "{left}");
    }

    /// Warm-up then EDM2's inverse-square-root decay (eq. 16): η·(k+1)/W during the warm-up,
    /// η until t_ref, η/√(k/t_ref) after (a quarter of η at 16·t_ref); constant without it.
    #[test]
    fn lr_warms_up_then_decays_as_inverse_square_root() {
        use crate::train::lr_at;
        let mut t = crate::config::TrainConfig {
            lr: 1e-3,
            warmup: 10,
            ..Default::default()
        };
        assert!((lr_at(&t, 0) - 1e-4).abs() < 1e-18);
        assert!((lr_at(&t, 9) - 1e-3).abs() < 1e-18);
        assert_eq!(lr_at(&t, 100_000), 1e-3);
        t.lr_decay = 1000;
        assert_eq!(lr_at(&t, 500), 1e-3);
        assert_eq!(lr_at(&t, 1000), 1e-3);
        assert!((lr_at(&t, 16_000) - 2.5e-4).abs() < 1e-18);
        assert!((lr_at(&t, 4000) - 5e-4).abs() < 1e-18);
        assert!(lr_at(&t, 5000) < lr_at(&t, 4999));
    }

    /// The cool-down: full rate until the last share c of the K steps, then a straight line
    /// to zero that every step of the run stays above (step K − 1 gets η / (c·K)).
    #[test]
    fn lr_cools_down_linearly_to_zero_at_the_end() {
        use crate::train::lr_at;
        let t = crate::config::TrainConfig {
            lr: 1e-3,
            steps: 1000,
            lr_cooldown: 0.2,
            ..Default::default()
        };
        assert_eq!(lr_at(&t, 0), 1e-3);
        assert_eq!(lr_at(&t, 800), 1e-3);
        assert!((lr_at(&t, 900) - 5e-4).abs() < 1e-15);
        assert!((lr_at(&t, 999) - 1e-3 / 200.0).abs() < 1e-15);
        for k in 801..1000 {
            assert!(lr_at(&t, k) < lr_at(&t, k - 1) && lr_at(&t, k) > 0.0);
        }
        // Composes with the warm-up and EDM2's decay: the factor multiplies the decayed rate.
        let d = crate::config::TrainConfig {
            warmup: 10,
            lr_decay: 100,
            ..t.clone()
        };
        assert!((lr_at(&d, 900) - 1e-3 / 3.0 * 0.5).abs() < 1e-15);
    }

    /// A time-budgeted run's length: unchanged while the rate is not yet measured (20 steps,
    /// 5 % of the budget up to 10 s), then the steps the rest of the budget allows at the mean
    /// rate so far less 3 %, never past the configured steps nor before the next step.
    #[test]
    fn budget_length_is_the_steps_the_budget_allows() {
        use crate::train::budget_length;
        assert_eq!(budget_length(6000, 10, 30.0, 720.0), 6000, "too few steps to rate");
        assert_eq!(budget_length(6000, 100, 5.0, 720.0), 6000, "too early to rate");
        // 2 steps/s after 60 s of 720: 120 + 2·660·0.97 = 120 + 1280.4.
        assert_eq!(budget_length(6000, 120, 60.0, 720.0), 1400);
        // 4 s of a 40-s budget (past its 5 %) at 10 steps/s: 40 + 36·10·0.97 = 389.2.
        assert_eq!(budget_length(6000, 40, 4.0, 40.0), 389);
        assert_eq!(budget_length(1000, 500, 60.0, 720.0), 1000, "capped by the config");
        assert_eq!(
            budget_length(6000, 700, 800.0, 720.0),
            701,
            "budget spent: the next step ends it"
        );
    }

    /// Golden values from PyTorch 2.15 (`torch.optim.Adam` / `torch.optim.RAdam`, lr 0.01,
    /// betas (0.9, 0.999), eps 1e-8), 8 steps on two tensors with fixed gradients; RAdam
    /// switches from the momentum step to the rectified one at step 6. Generated once with:
    ///
    /// ```python
    /// p = [torch.tensor([0.5, -1.0, 2.0], requires_grad=True), torch.tensor([0.25, 0.0], requires_grad=True)]
    /// opt = torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)   # or RAdam
    /// for k in range(8):
    ///     for t in p:
    ///         t.grad = torch.tensor([math.sin(0.7 * k + i) * (i + 1) for i in range(t.numel())])
    ///     opt.step()
    /// ```
    #[test]
    fn adam_and_radam_match_pytorch() {
        let dev = Device::flex();
        let cases = [
            (
                Optimizer::Adam,
                [
                    0.4589090943336487,
                    -1.0383778810501099,
                    1.9902864694595337,
                    0.2089090645313263,
                    -0.038377806544303894,
                ],
            ),
            (
                Optimizer::Radam,
                [
                    0.47821947932243347,
                    -1.0698050260543823,
                    1.951716423034668,
                    0.2282194197177887,
                    -0.06980502605438232,
                ],
            ),
        ];
        for (kind, want) in cases {
            let cfg = AdamConfig {
                kind,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            };
            let init = [vec![0.5f32, -1.0, 2.0], vec![0.25, 0.0]];
            let t = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev);
            let mut p: Vec<Tensor<1>> = init.iter().map(|v| t(v)).collect();
            let mut m: Vec<Tensor<1>> = p.iter().map(|x| x.zeros_like()).collect();
            let mut v = m.clone();
            let mut steps = vec![0u64; 2];
            for k in 0..8 {
                let g = init
                    .iter()
                    .map(|x| {
                        let g: Vec<f32> = (0..x.len())
                            .map(|i| ((0.7 * k as f64 + i as f64).sin() * (i + 1) as f64) as f32)
                            .collect();
                        Some(t(&g))
                    })
                    .collect();
                adam_step(&cfg, 0.01, 1.0, &mut p, &mut m, &mut v, &mut steps, g);
            }
            assert_eq!(steps, vec![8, 8]);
            let got: Vec<f32> = p.into_iter().flat_map(crate::tensor::to_vec).collect();
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 2e-6 * w.abs().max(0.1),
                    "{kind:?} element {i}: {g} vs PyTorch {w}"
                );
            }
        }
    }

    /// A tensor without a gradient keeps its step count and its values (a phase that sends it
    /// no gradient does not advance its bias correction).
    #[test]
    fn tensors_without_gradients_keep_their_step_count() {
        let dev = Device::flex();
        let cfg = AdamConfig {
            kind: Optimizer::Adam,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let one = || Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &dev);
        let mut p = vec![one(), one()];
        let mut m: Vec<Tensor<1>> = p.iter().map(|x| x.zeros_like()).collect();
        let mut v = m.clone();
        let mut t = vec![0u64, 0];
        adam_step(&cfg, 0.1, 1.0, &mut p, &mut m, &mut v, &mut t, vec![Some(one()), None]);
        assert_eq!(t, vec![1, 0]);
        assert_eq!(crate::tensor::to_vec(p[1].clone()), vec![1.0]);
        // Adam's first step is lr·sign(g) whatever the gradient's size.
        assert!((crate::tensor::to_vec(p[0].clone())[0] - 0.9).abs() < 1e-6);
    }
}
