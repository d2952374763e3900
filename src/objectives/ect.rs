//! Easy consistency tuning, ECT (Geng et al. 2024, locuslab/ect `training/loss.py` `ECMLoss`,
//! METHODS.md §2). EDM time σ.
//!
//! σ ~ LogNormal(P_mean, P_std) (no clamp); r = max(0, σ·(1 − q^{−(s+1)}·(1 + k·sigmoid(−b·σ))))
//! (`sigmoid` mapping) or max(0, σ·(1 − q^{−(s+1)})) (`const`), with the stage s advancing every
//! `stage_len` steps; target f_{sg θ}(x0 + r·z, r) where r > 0 and **x0 itself where r = 0**;
//! per-sample distance weighted by 1/(σ − r); the same z and dropout mask on both passes
//! (`training/loss.py:52-92`).
//!
//! **Defaults follow the official CIFAR-10 run** (locuslab/ect `run_ecm.sh` with the `ct_train.py`
//! defaults: P_mean −1.1, P_std 2.0, q 2, k 8, b 1, `sigmoid` mapping, c = 0 i.e. the plain L2
//! norm, 8 stages over the run: `--double 250` ticks of 12.8 kimg in 25.6 Mimg), except the
//! scaling: `consistency` (Song et al.'s boundary scalings, f(x, ε) = x exactly, which the
//! consistency sampler and the exact-map oracle rely on) where the official ECMPrecond trains
//! with EDM's (`scaling = "edm"`, AUDIT D4). The official run starts from an EDM teacher
//! (`--transfer`): set `train.init_from` to an EDM run; with `scaling = "edm"` the student then
//! equals the teacher at step 0 (AUDIT M6). `preset = "cifar10"` sets all of it.
//!
//! Options (paper / code symbols): `p_mean`, `p_std` (P_mean, P_std), `q` (the decay factor
//! q), `k`, `b` (the mapping's adj = 1 + k·sigmoid(−b·t)), `mapping` (`--mapping`), `stage_len`
//! (`--double` in steps), `distance` and `huber_c` (c), `scaling`, `time` (ε, T, ρ and the
//! two-step σ = 0.821, `--mid_t`).

use super::*;
use crate::schedule::{ect_r_with, EctMapping};

/// The parameterisation ECT trains (AUDIT D4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EctScaling {
    /// Song et al.'s consistency scalings with the ε offset (f(x, ε) = x exactly; default).
    Consistency,
    /// EDM's denoiser scalings c_skip = σ_d²/(σ² + σ_d²), c_out = σσ_d/√(σ² + σ_d²), as the
    /// official ECMPrecond in training mode (`training/networks.py:706-709`); the boundary is
    /// enforced only by the r = 0 → x0 rule. (ECMPrecond switches to the ε-offset scalings with
    /// σ_min = 0.003 in eval mode; this toolkit samples with the scalings it trained with.)
    Edm,
}

/// The `[method]` table of `ect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EctConfig {
    /// P_mean of ln σ ~ N(P_mean, P_std²) (`--mean`). Default −1.1.
    pub p_mean: f64,
    /// P_std of ln σ (`--std`). Default 2.0.
    pub p_std: f64,
    /// Decay factor q: r → σ as q^{−(s+1)} → 0 (`-q`). Default 2.
    pub q: f64,
    /// k of the sigmoid mapping's adj = 1 + k·sigmoid(−b·σ) (`-k`). Default 8.
    pub k: f64,
    /// b of the sigmoid mapping (`-b`). Default 1.
    pub b: f64,
    /// The mapping t → r: `sigmoid` (default) or `const` (`--mapping`).
    pub mapping: EctMapping,
    /// Steps per stage s (`--double`, converted to steps; 0 = total / 8, the official 8 stages).
    pub stage_len: u64,
    /// Distance: `l2-norm` (default: ‖·‖₂, the official c = 0), `pseudo-huber` (c > 0, the
    /// ImageNet setting), `l2`, `l1`, `lpips`.
    pub distance: Distance,
    /// Pseudo-Huber c (`-c`; 0 = 0.00054·√D, which is 0.06 at 64 × 64 × 3). Used only by
    /// `pseudo-huber`.
    pub huber_c: f64,
    /// `consistency` (default) or `edm` scalings.
    pub scaling: EctScaling,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
}

impl Default for EctConfig {
    fn default() -> Self {
        Self {
            p_mean: -1.1,
            p_std: 2.0,
            q: 2.0,
            k: 8.0,
            b: 1.0,
            mapping: EctMapping::Sigmoid,
            stage_len: 0,
            distance: Distance::L2Norm,
            huber_c: 0.0,
            scaling: EctScaling::Consistency,
            time: EdmTime::default(),
        }
    }
}

impl EctConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.q > 1.0, "method.q must exceed 1, got {}", self.q);
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            self.k >= 0.0 && self.k.is_finite(),
            "method.k must be non-negative, got {}",
            self.k
        );
        anyhow::ensure!(self.b.is_finite(), "method.b must be finite, got {}", self.b);
        self.time.validate()?;
        Ok(())
    }
}

/// The ECT objective.
pub struct Ect {
    cfg: EctConfig,
    c: f64,
}

impl Ect {
    /// The objective for `dim`-dimensional samples.
    pub fn new(cfg: EctConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let c = if cfg.huber_c > 0.0 { cfg.huber_c } else { huber_c(dim) };
        Ok(Self { cfg, c })
    }

    /// The stage s at step k of `total`.
    pub fn stage(&self, step: u64, total: u64) -> u32 {
        let len = if self.cfg.stage_len > 0 {
            self.cfg.stage_len
        } else {
            (total / 8).max(1)
        };
        (step / len).min(30) as u32
    }

    /// r(σ) at `stage` with the configured mapping.
    pub fn r(&self, sigma: f64, stage: u32) -> f64 {
        ect_r_with(sigma, stage, self.cfg.q, self.cfg.k, self.cfg.b, self.cfg.mapping)
    }

    /// The target and the per-sample weights for given draws (σ, r) and noise z: target
    /// f_{θ⁻}(x0 + r·z, r) where r > 0 and exactly x0 where r = 0; weight 1/(σ − r).
    #[allow(clippy::too_many_arguments)]
    pub fn target(
        &self,
        model: &Model,
        target: &[Tensor<1>],
        x0: Tensor<2>,
        z: Tensor<2>,
        r: &[f64],
        masks: Option<&crate::nets::Masks>,
    ) -> Tensor<2> {
        if r.iter().all(|&r| r <= 0.0) {
            return x0;
        }
        // Rows with r = 0 are evaluated at a harmless positive time and then replaced by x0.
        let r_eval: Vec<f64> = r.iter().map(|&r| if r > 0.0 { r } else { 1.0 }).collect();
        let x_r = x0.clone() + z * col(r, &x0);
        let f = model.f(target, x_r, &r_eval, masks);
        if r.iter().all(|&r| r > 0.0) {
            return f;
        }
        let keep: Vec<f64> = r.iter().map(|&r| if r > 0.0 { 1.0 } else { 0.0 }).collect();
        let data: Vec<f64> = keep.iter().map(|k| 1.0 - k).collect();
        f * col(&keep, &x0) + x0.clone() * col(&data, &x0)
    }

    /// The weights 1/(σ − r).
    pub fn weights(sigma: &[f64], r: &[f64]) -> Vec<f64> {
        sigma.iter().zip(r).map(|(s, r)| 1.0 / (s - r)).collect()
    }
}

impl Objective for Ect {
    fn name(&self) -> &'static str {
        "ect"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        match self.cfg.scaling {
            EctScaling::Consistency => Precond::Consistency {
                sigma_d,
                eps: self.cfg.time.eps,
            },
            EctScaling::Edm => Precond::Edm { sigma_d },
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let stage = self.stage(ctx.step, ctx.total);
        let sigma: Vec<f64> = ctx.per_row(|g| (self.cfg.p_mean + self.cfg.p_std * g.normal()).exp());
        let r: Vec<f64> = sigma.iter().map(|&s| self.r(s, stage)).collect();
        let w = Self::weights(&sigma, &r);
        let z = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
        let x_t = x0.clone() + z.clone() * col(&sigma, &x0);
        let target = self.target(ctx.model, ctx.target.net, x0, z, &r, masks.as_ref());
        let est = ctx.model.f(ctx.online.net, x_t, &sigma, masks.as_ref());
        let loss = weighted_mean(distance(self.cfg.distance, est, target, self.c), &w);
        LossOut {
            loss,
            terms: vec![("stage".into(), stage as f64)],
        }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        self.cfg.time.consistency_sampler()
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        Some(self.cfg.time.consistency_map())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::mlp::{Mlp, MlpConfig};
    use crate::nets::{init_params, Backbone};
    use crate::tensor::to_vec;

    /// AUDIT D4: at stage 0, σ = 1 gives r = 0 (official), so the target is x0 bit for bit and
    /// the weight exactly 1 (also for σ = 0.001 < ε: the draw is no longer clamped to [ε, T]);
    /// rows with r > 0 get f_θ⁻(x0 + r·z, r).
    #[test]
    fn audit_d4_ect_target_is_x0_at_r0() {
        let dev = Device::flex();
        let ect = Ect::new(EctConfig::default(), 2).unwrap();
        assert_eq!(ect.r(1.0, 0), 0.0);
        assert_eq!(Ect::weights(&[1.0], &[0.0]), vec![1.0]);
        let net = std::sync::Arc::new(Mlp::new(
            &MlpConfig {
                hidden: 16,
                depth: 1,
                ..Default::default()
            },
            2,
            1,
            0,
        ));
        let model = Model::new(
            net.clone(),
            Precond::Consistency {
                sigma_d: 1.0,
                eps: 0.002,
            },
        );
        let p = init_params(&net.specs(), &mut Rng::new(1), &dev);
        let mut rng = Rng::new(2);
        let x0 = rng.normal_tensor([4, 2], &dev);
        let z = rng.normal_tensor([4, 2], &dev);
        let sigma = [1.0, 10.0, 1.0, 0.001];
        let r: Vec<f64> = sigma.iter().map(|&s| ect.r(s, 0)).collect();
        assert_eq!(r[0], 0.0);
        assert!(r[1] > 4.99);
        assert_eq!(r[3], 0.0);
        let tgt = to_vec(ect.target(&model, &p, x0.clone(), z.clone(), &r, None));
        let x = to_vec(x0.clone());
        for row in [0usize, 2, 3] {
            assert_eq!(&tgt[2 * row..2 * row + 2], &x[2 * row..2 * row + 2], "row {row}");
        }
        let want = to_vec(model.f(&p, x0.clone() + z * col(&r, &x0), &r, None));
        assert!((tgt[2] - want[2]).abs() < 1e-6 && (tgt[3] - want[3]).abs() < 1e-6);
        assert_eq!(
            ect.precond(0.5),
            Precond::Consistency {
                sigma_d: 0.5,
                eps: 0.002
            }
        );
        let edm = Ect::new(
            EctConfig {
                scaling: EctScaling::Edm,
                ..Default::default()
            },
            2,
        )
        .unwrap();
        assert_eq!(edm.precond(0.5), Precond::Edm { sigma_d: 0.5 });
    }
}
