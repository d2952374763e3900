//! MeanFlow (Geng et al. 2025, METHODS.md §6). Time t ∈ [0, 1], t = 0 data:
//! z_t = (1 − t)·x0 + t·ε, v = ε − x0. The raw backbone u_θ(z, r, t) (time inputs in the order
//! (r, t), c_noise = identity) predicts the average velocity on [r, t].
//! u_tgt = sg(v − (t − r)·du/dt), du/dt = JVP of u_{sg θ} along (v, 0, 1);
//! loss Δ/sg((Δ + c)^p), Δ = ‖u_θ − u_tgt‖², p = 0.75, c = 1e-3. (t, r): two logit-normal
//! draws ordered t ≥ r; r = t for a fraction `equal_frac` (25%) of the samples.

use super::*;
use crate::nets::jvp::JvpMode;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeanFlowConfig {
    /// Logit-normal location and scale of the time draws.
    pub p_mean: f64,
    pub p_std: f64,
    /// Fraction of samples with r = t.
    pub equal_frac: f64,
    pub p: f64,
    pub c: f64,
    pub jvp: JvpMode,
}

impl Default for MeanFlowConfig {
    fn default() -> Self {
        Self {
            p_mean: -0.4,
            p_std: 1.0,
            equal_frac: 0.25,
            p: 0.75,
            c: 1e-3,
            jvp: JvpMode::Exact,
        }
    }
}

impl MeanFlowConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.equal_frac),
            "method.equal_frac must be in [0, 1], got {}",
            self.equal_frac
        );
        anyhow::ensure!(self.c > 0.0, "method.c must be positive, got {}", self.c);
        Ok(())
    }
}

pub struct MeanFlow {
    cfg: MeanFlowConfig,
}

impl MeanFlow {
    pub fn new(cfg: MeanFlowConfig) -> anyhow::Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    fn logit_normal(&self, rng: &mut Rng) -> f64 {
        1.0 / (1.0 + (-(self.cfg.p_mean + self.cfg.p_std * rng.normal())).exp())
    }

    /// Draws (t, r) with t ≥ r.
    pub fn draw(&self, rng: &mut Rng) -> (f64, f64) {
        let (a, b) = (self.logit_normal(rng), self.logit_normal(rng));
        let (t, r) = (a.max(b), a.min(b));
        if rng.uniform() < self.cfg.equal_frac {
            (t, t)
        } else {
            (t, r)
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
        let (t, r): (Vec<f64>, Vec<f64>) = (0..b).map(|_| self.draw(ctx.rng)).unzip();
        let eps = ctx.rng.normal_tensor([b, d], ctx.device);
        let masks = ctx.model.net.draw_masks(ctx.rng, b, ctx.device);
        let one_m: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
        let z_t = x0.clone() * col(&one_m, &x0) + eps.clone() * col(&t, &x0);
        let v = eps - x0.clone();
        // du/dt along (dz, dr, dt) = (v, 0, 1): time inputs in the order (r, t).
        let zeros = vec![0.0; b];
        let ones = vec![1.0; b];
        let (_, dudt) = ctx.model.jvp(
            self.cfg.jvp,
            ctx.online_sg.net,
            z_t.clone(),
            v.clone(),
            &r,
            &zeros,
            &[&t],
            &[&ones],
            masks.as_ref(),
        );
        let tr: Vec<f64> = t.iter().zip(&r).map(|(t, r)| t - r).collect();
        let target = v - dudt * col(&tr, &x0);
        let u = ctx.model.eval(ctx.online.net, z_t, &r, &[&t], masks.as_ref());
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
        Sampler::new(
            "meanflow",
            (1.0, 0.0),
            |n| crate::schedule::uniform_times(n, false),
            crate::samplers::flow::meanflow_sample,
        )
    }
}
