//! MeanFlow (Geng et al. 2025, METHODS.md §6). Time t ∈ [0, 1], **t = 0 data**:
//! z_t = (1 − t)·x0 + t·ε, v = ε − x0. The raw backbone (c_noise = identity) predicts the
//! average velocity u(z, r, t) on [r, t]; u_tgt = sg(v − (t − r)·du/dt) with du/dt the JVP of
//! u_{sg θ} along (dz, dr, dt) = (v, 0, 1); loss Δ/sg((Δ + c)^p), Δ = ‖u_θ − u_tgt‖² summed
//! over dimensions, batch mean (py-meanflow `meanflow/models/meanflow.py:37-66`).
//!
//! **Defaults follow the paper's CIFAR-10 setting** (py-meanflow `meanflow/scripts/cifar10_v0.sh`,
//! "v0": t and r both logit-normal LN(−2.0, 2.0), ordered, r ≠ t for 75 %, p = 0.75,
//! c = 1e-3) with the official network conditioning (t, h = t − r) (py-meanflow
//! `meanflow/models/meanflow.py:47-49`, Gsunshine/meanflow `meanflow.py:163-166`). Presets
//! (`preset = "cifar10-v1"`, `"imagenet256"`) give the repo default v1 sampler and the
//! ImageNet-256 JAX setting ([`super::presets`]).
//!
//! Options (paper symbols): `p_mean`, `p_std` (P_mean, P_std of t), `p_mean_r`, `p_std_r` (those
//! of r; default: the same as t), `time_sampler` (v0 / v1 joint (t, r) sampler), `equal_frac`
//! (the share of r = t, 1 − `ratio`), `p` (the adaptive-loss power, `norm_p`), `c`
//! (`norm_eps`), `time_inputs` ((t, t − r) or (r, t) conditioning), `jvp`.

use super::*;
use crate::nets::jvp::JvpMode;

pub use crate::samplers::flow::MeanFlowInputs;

/// The joint (t, r) sampler (py-meanflow `meanflow/models/time_sampler.py`; AUDIT M2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSampler {
    /// "v0" (the paper): draw t and r, order them (t ← max, r ← min), then set r = t for a share
    /// `equal_frac` of the samples (`sample_two_timesteps_t_r_v0`, lines 22-39).
    V0,
    /// "v1" (py-meanflow's default): draw t and r, set r = t for a share `equal_frac`, then
    /// r ← min(t, r) (`sample_two_timesteps_t_r_v1`, lines 42-59). With separate t and r
    /// distributions this keeps t's distribution intact.
    V1,
}

/// The `[method]` table of `meanflow`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeanFlowConfig {
    /// P_mean of t's logit-normal distribution, t = sigmoid(P_mean + P_std·n) (`--P_mean_t`).
    /// Default −2.0 (CIFAR-10 v0).
    pub p_mean: f64,
    /// P_std of t's logit-normal distribution (`--P_std_t`). Default 2.0.
    pub p_std: f64,
    /// P_mean of r's distribution (`--P_mean_r`); unset = `p_mean` (the paper's v0 uses one
    /// distribution for both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_mean_r: Option<f64>,
    /// P_std of r's distribution (`--P_std_r`); unset = `p_std`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_std_r: Option<f64>,
    /// The joint sampler: `v0` (default, the paper) or `v1` (`--tr_sampler`).
    pub time_sampler: TimeSampler,
    /// Share of samples with r = t, i.e. 1 − `--ratio` (py-meanflow) or `data_proportion`
    /// (Gsunshine/meanflow). Default 0.25.
    pub equal_frac: f64,
    /// Power p of the adaptive loss weight 1/sg((Δ + c)^p) (`--norm_p`). Default 0.75.
    pub p: f64,
    /// Constant c of the adaptive loss weight (`--norm_eps`). Default 1e-3.
    pub c: f64,
    /// Network conditioning: `"t-h"` = (t, t − r) (default, official) or `"r-t"` = (r, t)
    /// (runs trained before this option existed used (r, t): add `time_inputs = "r-t"`).
    pub time_inputs: MeanFlowInputs,
    /// `exact` (the backbone's tangent pass, default) or `finite-difference`.
    pub jvp: JvpMode,
}

impl Default for MeanFlowConfig {
    fn default() -> Self {
        Self {
            p_mean: -2.0,
            p_std: 2.0,
            p_mean_r: None,
            p_std_r: None,
            time_sampler: TimeSampler::V0,
            equal_frac: 0.25,
            p: 0.75,
            c: 1e-3,
            time_inputs: MeanFlowInputs::TH,
            jvp: JvpMode::Exact,
        }
    }
}

impl MeanFlowConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        if let Some(s) = self.p_std_r {
            anyhow::ensure!(s > 0.0, "method.p_std_r must be positive, got {s}");
        }
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.equal_frac),
            "method.equal_frac must be in [0, 1], got {}",
            self.equal_frac
        );
        anyhow::ensure!(self.c > 0.0, "method.c must be positive, got {}", self.c);
        Ok(())
    }
}

/// The MeanFlow objective.
pub struct MeanFlow {
    cfg: MeanFlowConfig,
}

impl MeanFlow {
    /// The objective.
    pub fn new(cfg: MeanFlowConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    fn logit_normal(rng: &mut Rng, mean: f64, std: f64) -> f64 {
        1.0 / (1.0 + (-(mean + std * rng.normal())).exp())
    }

    /// Draws (t, r) with t ≥ r by the configured joint sampler.
    pub fn draw(&self, rng: &mut Rng) -> (f64, f64) {
        let c = &self.cfg;
        let t = Self::logit_normal(rng, c.p_mean, c.p_std);
        let r = Self::logit_normal(rng, c.p_mean_r.unwrap_or(c.p_mean), c.p_std_r.unwrap_or(c.p_std));
        let equal = rng.uniform() < c.equal_frac;
        match c.time_sampler {
            TimeSampler::V0 => {
                let (t, r) = (t.max(r), t.min(r));
                if equal {
                    (t, t)
                } else {
                    (t, r)
                }
            }
            TimeSampler::V1 => {
                let r = if equal { t } else { r };
                (t, r.min(t))
            }
        }
    }
}

impl Objective for MeanFlow {
    fn name(&self) -> &'static str {
        "meanflow"
    }
    fn precond(&self, _sigma_d: f64) -> Precond {
        Precond::Raw
    }
    fn n_times(&self) -> usize {
        2
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        None
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let [b, d] = x0.dims();
        let (t, r): (Vec<f64>, Vec<f64>) = ctx.per_row(|g| self.draw(g)).into_iter().unzip();
        let eps = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
        let one_m: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
        let z_t = x0.clone() * col(&one_m, &x0) + eps.clone() * col(&t, &x0);
        let v = eps - x0.clone();
        // du/dt along (dz, dr, dt) = (v, 0, 1), through the configured conditioning.
        let (a, c) = self.cfg.time_inputs.pair(&t, &r);
        let (da, dc) = self.cfg.time_inputs.tangent();
        let (da, dc) = (vec![da; b], vec![dc; b]);
        let (_, dudt) = ctx.model.jvp(
            self.cfg.jvp,
            ctx.online_sg.net,
            z_t.clone(),
            v.clone(),
            &a,
            &da,
            &[&c],
            &[&dc],
            masks.as_ref(),
        );
        let tr: Vec<f64> = t.iter().zip(&r).map(|(t, r)| t - r).collect();
        let target = v - dudt * col(&tr, &x0);
        let u = ctx.model.eval(ctx.online.net, z_t, &a, &[&c], masks.as_ref());
        let delta = (u - target).square().sum_dim(1);
        let dv = crate::tensor::to_vec64(delta.clone());
        let w: Vec<f64> = dv.iter().map(|x| 1.0 / (x + self.cfg.c).powf(self.cfg.p)).collect();
        let mse = dv.iter().sum::<f64>() / b as f64 / d as f64;
        LossOut {
            loss: (delta * col(&w, &x0)).mean(),
            terms: vec![("mse".into(), mse)],
        }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        let inputs = self.cfg.time_inputs;
        Sampler::new(
            "meanflow",
            (1.0, 0.0),
            |n| crate::schedule::uniform_times(n, false),
            move |model, p, z, times, noise| crate::samplers::flow::meanflow_sample(model, p, z, times, inputs, noise),
        )
    }
}

/// A trained MeanFlow run as a teacher denoiser (AUDIT B4): at r = t, u(z, t, t) is the
/// instantaneous velocity v = ε − x0 of z_t = (1 − t)·x0 + t·ε. From EDM (x, σ):
/// t = σ/(1 + σ), z = x/(1 + σ), D = z − t·u(z, r = t, t).
pub struct MeanFlowTeacher {
    /// The run's model (raw parameterisation, two time inputs).
    pub model: Model,
    /// Its (EMA) backbone weights.
    pub params: Vec<Tensor<1>>,
    /// The run's conditioning (`time_inputs`).
    pub inputs: MeanFlowInputs,
}

impl Denoiser for MeanFlowTeacher {
    fn denoise(&self, x: Tensor<2>, sigma: &[f64]) -> Tensor<2> {
        let t: Vec<f64> = sigma.iter().map(|s| s / (1.0 + s)).collect();
        let inv: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s)).collect();
        let z = x.clone() * col(&inv, &x);
        let (a, c) = self.inputs.pair(&t, &t);
        let u = self.model.eval(&self.params, z.clone(), &a, &[&c], None);
        z - u * col(&t, &x)
    }

    fn with_labels(&self, labels: Tensor<2>) -> Option<std::sync::Arc<dyn Denoiser>> {
        (self.model.net.n_classes() > 0).then(|| {
            std::sync::Arc::new(MeanFlowTeacher {
                model: self.model.with_labels(Some(labels)),
                params: self.params.clone(),
                inputs: self.inputs,
            }) as std::sync::Arc<dyn Denoiser>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUDIT M2: with t ~ LN(−0.6, 1.6), r ~ LN(−4.0, 1.6) and `equal_frac` 0.25, the v1
    /// sampler gives r = t for 0.25 + 0.75·P(r_raw ≥ t) of the samples and keeps t's
    /// distribution; v0 orders the raw pair first (t = max), so its t is larger.
    #[test]
    fn audit_m2_v1_time_sampler() {
        let cfg = MeanFlowConfig {
            p_mean: -0.6,
            p_std: 1.6,
            p_mean_r: Some(-4.0),
            p_std_r: Some(1.6),
            time_sampler: TimeSampler::V1,
            equal_frac: 0.25,
            ..Default::default()
        };
        let n = 200_000;
        let mf = MeanFlow::new(cfg.clone()).unwrap();
        let mut rng = Rng::new(3);
        let draws: Vec<(f64, f64)> = (0..n).map(|_| mf.draw(&mut rng)).collect();
        assert!(draws.iter().all(|(t, r)| r <= t));
        let eq = draws.iter().filter(|(t, r)| t == r).count() as f64 / n as f64;
        // P(r_raw ≥ t): logit r − logit t ~ N(−3.4, 1.6²·2), so P = Φ(−3.4/(1.6√2)).
        let p_ge = crate::schedule::normal_cdf(-3.4 / (1.6 * 2f64.sqrt()));
        let want = 0.25 + 0.75 * p_ge;
        assert!((want - 0.29985).abs() < 1e-4, "{want}");
        assert!((eq - want).abs() < 0.005, "r = t share {eq} vs {want}");
        // t keeps its distribution: its median is sigmoid(−0.6).
        let mut ts: Vec<f64> = draws.iter().map(|d| d.0).collect();
        ts.sort_by(f64::total_cmp);
        let med = ts[n / 2];
        assert!((med - 1.0 / (1.0 + 0.6f64.exp())).abs() < 0.005, "median t {med}");
        // v0 on the same distributions: exactly `equal_frac` equal pairs (ties have prob. 0).
        let v0 = MeanFlow::new(MeanFlowConfig {
            time_sampler: TimeSampler::V0,
            ..cfg
        })
        .unwrap();
        let mut rng = Rng::new(3);
        let eq0 = (0..n).map(|_| v0.draw(&mut rng)).filter(|(t, r)| t == r).count() as f64 / n as f64;
        assert!((eq0 - 0.25).abs() < 0.005, "v0 r = t share {eq0}");
    }

    /// AUDIT D3: the (t, t − r) conditioning and its tangent (1, 1) along (dr, dt) = (0, 1);
    /// (r, t) with (0, 1) stays available.
    #[test]
    fn audit_d3_meanflow_inputs() {
        let (a, b) = MeanFlowInputs::TH.pair(&[0.9, 0.5], &[0.3, 0.5]);
        assert_eq!(a, vec![0.9, 0.5]);
        assert!((b[0] - 0.6).abs() < 1e-15 && b[1] == 0.0);
        assert_eq!(MeanFlowInputs::TH.tangent(), (1.0, 1.0));
        assert_eq!(MeanFlowInputs::RT.pair(&[0.9], &[0.3]), (vec![0.3], vec![0.9]));
        assert_eq!(MeanFlowInputs::RT.tangent(), (0.0, 1.0));
        assert_eq!(MeanFlowConfig::default().time_inputs, MeanFlowInputs::TH);
    }

    /// AUDIT D2: the defaults are one official configuration, py-meanflow's CIFAR-10 v0 (the
    /// paper's): t, r ~ LN(−2.0, 2.0), v0, r ≠ t for 75 %, p = 0.75, c = 1e-3, (t, t − r).
    #[test]
    fn audit_d2_meanflow_defaults_are_cifar10_v0() {
        let c = MeanFlowConfig::default();
        assert_eq!((c.p_mean, c.p_std), (-2.0, 2.0));
        assert_eq!((c.p_mean_r, c.p_std_r), (None, None)); // = t's distribution
        assert_eq!(c.time_sampler, TimeSampler::V0);
        assert_eq!((c.equal_frac, c.p, c.c), (0.25, 0.75, 1e-3));
        assert_eq!(c.time_inputs, MeanFlowInputs::TH);
    }
}
