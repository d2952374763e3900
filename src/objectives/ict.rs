//! Improved consistency training, iCT (Song & Dhariwal 2023, METHODS.md §2). EDM time.
//!
//! No EMA teacher (θ⁻ = sg θ), pseudo-Huber distance on the whole sample, doubling curriculum
//! N(k), lognormal proposal over the grid intervals, weighting λ(σ_i) = 1/(σ_{i+1} − σ_i).
//! Dropout masks (model.dropout; 0.3 in the paper) are shared by both passes.
//!
//! **Defaults follow the paper's CIFAR-10 setting** (Song & Dhariwal 2023, §3–§4 and App.; no
//! official code was released: s0 = 10, s1 = 1280, P_mean −1.1, P_std 2.0, c = 0.00054·√D, the
//! 1/Δσ weighting). The paper's training settings (RAdam, lr 1e-4, batch 1024, 400k steps,
//! dropout 0.3, NCSN++ with Fourier scale 0.02, EMA 0.99993) live in `[train]` / `[model]`.
//!
//! Options (paper symbols): `s0`, `s1`, `p_mean`, `p_std` (P_mean, P_std), `distance` and
//! `huber_c` (c), `weighting` (λ(σ_i) = 1/(σ_{i+1} − σ_i) or 1), `time` (ε, T, ρ, two-step σ).

//!
//! Ablation switches (each default is iCT's choice; the other value is what CT did before it,
//! so that `cm repro ict-ablation` can remove one improvement at a time, Song & Dhariwal 2023
//! §3.1–§3.5): `target_mu` (0 = no EMA teacher, θ⁻ = sg θ; > 0 = an EMA teacher with that
//! decay), `curriculum` (`doubling`, eq. (9), or CT's square-root `ct` curriculum over the same
//! s0, s1) and `noise` (`lognormal` over the grid intervals, eq. (10), or CT's `uniform` index).

use super::*;
use crate::schedule::{ct_n, ict_n, ict_probs, karras};

/// How N(k) grows over training (iCT's `curriculum` switch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IctCurriculum {
    /// iCT's exponential curriculum: N doubles from s0 to s1 at fixed intervals (eq. (9)).
    #[default]
    Doubling,
    /// CT's curriculum N(k) = ceil(sqrt(k/K·((s1+1)² − s0²) + s0²) − 1) + 1 (Song et al. 2023)
    /// over the same s0, s1.
    Ct,
}

/// Which grid interval a training pair is drawn from (iCT's `noise` switch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IctNoise {
    /// iCT's lognormal proposal over the intervals (P_mean, P_std; eq. (10)).
    #[default]
    Lognormal,
    /// CT's uniform choice of the interval index.
    Uniform,
}

/// The `[method]` table of `ict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IctConfig {
    /// Initial discretisation s0 (grid points N(0) = s0 + 1). Default 10.
    pub s0: u64,
    /// Final discretisation s1 (N = s1 + 1 in the last stage). Default 1280.
    pub s1: u64,
    /// P_mean of the lognormal proposal over the grid intervals. Default −1.1.
    pub p_mean: f64,
    /// P_std of the lognormal proposal. Default 2.0.
    pub p_std: f64,
    /// Distance d (default `pseudo-huber` on the whole sample).
    pub distance: Distance,
    /// Pseudo-Huber c (0 = 0.00054·√D, the paper's choice: 0.03 on CIFAR-10).
    pub huber_c: f64,
    /// Weighting λ(σ_i) = 1/(σ_{i+1} − σ_i) (true, default) or 1.
    pub weighting: bool,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ).
    pub time: EdmTime,
    /// EMA decay of the teacher θ⁻ ← μθ⁻ + (1 − μ)θ: 0 (default) is iCT's θ⁻ = sg θ; > 0
    /// restores an EMA teacher (CT used μ(k) ≥ 0.9), for ablations.
    pub target_mu: f64,
    /// `doubling` (default, iCT) or `ct` (CT's square-root curriculum), for ablations.
    pub curriculum: IctCurriculum,
    /// `lognormal` (default, iCT) or `uniform` (CT's interval choice), for ablations.
    pub noise: IctNoise,
}

impl Default for IctConfig {
    fn default() -> Self {
        Self {
            s0: 10,
            s1: 1280,
            p_mean: -1.1,
            p_std: 2.0,
            distance: Distance::PseudoHuber,
            huber_c: 0.0,
            weighting: true,
            time: EdmTime::default(),
            target_mu: 0.0,
            curriculum: IctCurriculum::Doubling,
            noise: IctNoise::Lognormal,
        }
    }
}

impl IctConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.s0 >= 1 && self.s1 >= self.s0,
            "method.s0/s1 need 1 ≤ s0 ≤ s1, got {} and {}",
            self.s0,
            self.s1
        );
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            (0.0..1.0).contains(&self.target_mu),
            "method.target_mu must lie in [0, 1), got {}",
            self.target_mu
        );
        self.time.validate()?;
        Ok(())
    }
}

/// The iCT objective.
pub struct Ict {
    cfg: IctConfig,
    c: f64,
}

impl Ict {
    /// The objective for `dim`-dimensional samples.
    pub fn new(cfg: IctConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let c = if cfg.huber_c > 0.0 { cfg.huber_c } else { huber_c(dim) };
        Ok(Self { cfg, c })
    }

    /// The grid and interval probabilities at step k.
    pub fn grid(&self, step: u64, total: u64) -> (Vec<f64>, Vec<f64>) {
        let n = self.n(step, total);
        let g = karras(n, self.cfg.time.eps, self.cfg.time.t_max, self.cfg.time.rho);
        let p = match self.cfg.noise {
            IctNoise::Lognormal => ict_probs(&g, self.cfg.p_mean, self.cfg.p_std),
            IctNoise::Uniform => vec![1.0 / (n - 1) as f64; n - 1],
        };
        (g, p)
    }

    /// Grid points N at step k of `total` under the configured curriculum.
    pub fn n(&self, step: u64, total: u64) -> usize {
        match self.cfg.curriculum {
            IctCurriculum::Doubling => ict_n(step, total, self.cfg.s0, self.cfg.s1),
            IctCurriculum::Ct => ct_n(step, total, self.cfg.s0 as f64, self.cfg.s1 as f64),
        }
    }
}

impl Objective for Ict {
    fn name(&self) -> &'static str {
        "ict"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::Consistency {
            sigma_d,
            eps: self.cfg.time.eps,
        }
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        (self.cfg.target_mu > 0.0).then_some(self.cfg.target_mu)
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, _phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let (grid, probs) = self.grid(ctx.step, ctx.total);
        let idx: Vec<usize> = ctx.per_row(|r| r.categorical(&probs));
        let s_lo: Vec<f64> = idx.iter().map(|&i| grid[i]).collect();
        let s_hi: Vec<f64> = idx.iter().map(|&i| grid[i + 1]).collect();
        let w: Vec<f64> = s_lo
            .iter()
            .zip(&s_hi)
            .map(|(lo, hi)| if self.cfg.weighting { 1.0 / (hi - lo) } else { 1.0 })
            .collect();
        let z = ctx.normal_rows(d);
        let masks = ctx.masks_rows();
        let x_hi = x0.clone() + z.clone() * col(&s_hi, &x0);
        let x_lo = x0.clone() + z * col(&s_lo, &x0);
        let target = ctx.model.f(ctx.target.net, x_lo, &s_lo, masks.as_ref());
        let est = ctx.model.f(ctx.online.net, x_hi, &s_hi, masks.as_ref());
        let loss = weighted_mean(distance(self.cfg.distance, est, target, self.c), &w);
        LossOut {
            loss,
            terms: vec![("N".into(), grid.len() as f64)],
        }
    }
    fn sampler(&self, _sigma_d: f64) -> Sampler {
        self.cfg.time.consistency_sampler()
    }
    fn curriculum(&self, step: u64, total: u64) -> Option<(usize, f64)> {
        Some((self.n(step, total), self.cfg.target_mu))
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        Some(self.cfg.time.consistency_map())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ablation switches: defaults are iCT's; each alternative is CT's choice (CT's N(k)
    /// over the same s0, s1; a uniform interval; an EMA teacher).
    #[test]
    fn ablation_switches() {
        let ict = Ict::new(IctConfig::default(), 2).unwrap();
        assert_eq!(ict.target_decay(0, 100), None);
        assert_eq!(ict.n(0, 800), 11);
        let ct = Ict::new(
            IctConfig {
                curriculum: IctCurriculum::Ct,
                noise: IctNoise::Uniform,
                target_mu: 0.9,
                ..Default::default()
            },
            2,
        )
        .unwrap();
        for k in [0, 100, 400, 800] {
            assert_eq!(ct.n(k, 800), ct_n(k, 800, 10.0, 1280.0));
        }
        let (g, p) = ct.grid(400, 800);
        assert_eq!(p.len(), g.len() - 1);
        assert!(p.iter().all(|&x| (x - p[0]).abs() < 1e-15));
        assert_eq!(ct.target_decay(5, 800), Some(0.9));
        assert!(IctConfig {
            target_mu: 1.0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
