//! Consistency trajectory models, CTM (Kim et al. 2023; METHODS.md §4). EDM time σ ∈ [ε, T].
//!
//! **Defaults follow the official CIFAR-10 CTM + DSM run** (Kim-Dongjun/ctm-cifar10
//! `cm/script_util.py` defaults: N = 18, Heun teacher, μ = 0.999, DSM with the half-lognormal
//! (−1.2, 1.2) / half-Karras-ramp (m = 0.7) σ draw, adaptive λ, no GAN) with the `l2` distance
//! where the official run uses LPIPS (`distance = "lpips"` or `preset = "cifar10"`). The
//! official student starts from the EDM teacher; `cm demo` does that when it trains one
//! (`train.init_from` zero-initialises the s-embedding, so D_θ equals the teacher at step 0).
//! Options (paper / code symbols) are the fields of [`CtmConfig`].
//!
//! The backbone takes two times: g_θ(x_t, t, s) ([`Precond::Ctm`]), the jump is
//! G_θ(x_t, t, s) = (s/t)·x_t + (1 − s/t)·g_θ ([`ctm_jump`]) and the denoiser D_θ(x, σ) = g_θ(x, σ, σ).
//!
//! Loss (phase 0, the generator): L = L_CTM + λ_DSM·L_DSM + λ_GAN·L_GAN.
//! - Soft consistency matching on the N-point Karras grid, indexed from the noise end
//!   (desc[0] = T, desc[N−1] = ε): k ∈ 1..N−1 with P(k) ∝ k (one k per batch, as in
//!   Kim-Dongjun/ctm-cifar10 `get_num_heun_step` with multiplier 1), start index j uniform in
//!   0..N−1−k, t = desc[j], u = desc[j+k], s = desc[m] with m uniform in j+k..N−1 (grid
//!   indices, s ∈ {u, …, ε}), x_t = x0 + t·z.
//!   estimate = G_{θ⁻}(G_θ(x_t, t, s), s, ε); target = G_{θ⁻}(G_{sg θ}(Solver(x_t, t→u), u, s), s, ε)
//!   with k teacher Heun (or Euler) steps on the grid.
//! - DSM on D_θ: half the batch ln σ ~ N(P_mean, P_std²), half σ on the Karras ramp with
//!   u ~ U[0, 0.7]; EDM weighting λ(σ) = (σ² + σ_d²)/(σ σ_d)².
//! - GAN: hinge losses with an MLP discriminator on samples (its weights are this objective's
//!   `extra_specs`); fake = the estimate. In phase 0 the discriminator runs on plain copies of
//!   its weights (no gradient, so no update); phase 1 updates only the discriminator on a fresh
//!   detached fake.
//! - Adaptive weights: λ = ‖∇_{θ_L} L_CTM‖ / (‖∇_{θ_L} L_term‖ + 1e-4), clamped ([0, 1e4] for
//!   DSM, [0.01, 10] for GAN), θ_L = the backbone's `output.weight`. burn has no retain_graph,
//!   so each norm comes from its own forward/backward pass in which θ_L is the *only*
//!   autodiff leaf (all other weights plain): the graph is the last layer plus whatever lies
//!   between it and the loss (for L_CTM and L_GAN the outer target jump G_{θ⁻}(·, s, ε), which
//!   is backpropagated to its input only). Cost: one extra plain forward per term and a cheap
//!   backward; with `adaptive_every` > 1 the weights are recomputed only every that many steps
//!   and reused in between.

use super::*;
use crate::model::{ctm_denoise, ctm_jump};
use crate::nets::{Linear, SpecBuilder};
use crate::samplers::ode::{ode_step, Solver};
use crate::schedule::{karras, karras_ramp};
use burn::tensor::activation;
use std::sync::Mutex;

/// How CTM draws the jump's end s ([`CtmConfig::s_strategy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SStrategy {
    /// A grid index uniform in j+k..N−1 (official default).
    Uniform,
    /// s = ε, the last grid point.
    Smallest,
}

/// The `[method]` table of `ctm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtmConfig {
    /// Grid size N of the soft-matching grid (`start_scales`: 18 on CIFAR-10, 40 on
    /// ImageNet-64). Default 18.
    pub n: usize,
    /// Largest teacher-step count k of soft matching (official `num_heun_step`, drawn with
    /// P(k) ∝ k on 1..max_k: 17 = N − 1 on CIFAR-10, 39 on ImageNet-64); 0 = N − 1 (default).
    /// A step's teacher work is ~k Heun steps, on average ≈ 2·max_k/3, so a smaller max_k buys
    /// more steps in a fixed time at the cost of shorter teacher jumps (max_k = 1 is local
    /// consistency, as in CD).
    pub max_k: usize,
    /// How the jump's end s is drawn (official `sample_s_strategy`): `uniform` (default,
    /// official: a grid index uniform in j+k..N−1, so s ∈ {u, …, ε}) or `smallest` (s = ε
    /// always: every draw trains the jump to data that one-step sampling uses, as CD does,
    /// and none the intermediate jumps of γ = 0 multistep sampling).
    pub s_strategy: SStrategy,
    /// `exact` (Gaussian-mixture data only; default), `gmm` (a mixture fitted to point data by
    /// EM when the run starts) or the folder / checkpoint of a trained EDM teacher.
    pub teacher: Teacher,
    /// Classifier-free guidance scale w of a class-conditional teacher (EDM2's convention: 1 =
    /// the plain conditional teacher, 0 = unconditional; default 1). The teacher is queried
    /// with the student's batch labels, so the student learns the guided trajectories of each
    /// class (guided distillation, Meng et al. 2023; LCM, Luo et al. 2023); rows whose label
    /// was dropped follow the unconditional teacher. Ignored for unconditional teachers.
    pub guidance: f64,
    /// The teacher's ODE step on the grid: `heun` (default, official) or `euler`.
    pub solver: Solver,
    /// Distance d of L_CTM: `l2` (default), `l1`, `l2-norm`, `pseudo-huber` (c = 0.00054·√D) or
    /// `lpips` (official, `loss_norm = "lpips"`).
    pub distance: Distance,
    /// EMA decay μ of the target network θ⁻ (`start_ema`). Default 0.999.
    pub target_mu: f64,
    /// Add the DSM term on D_θ (`diffusion_training`). Default true.
    pub dsm: bool,
    /// P_mean of the lognormal half of the DSM σ draw. Default −1.2.
    pub p_mean: f64,
    /// P_std of the lognormal half. Default 1.2.
    pub p_std: f64,
    /// `diffusion_mult` m: the uniform half draws σ on the Karras ramp from T downwards,
    /// u ∈ [0, m] (σ ∈ [0.318, 80] for m = 0.7; AUDIT B1). Default 0.7.
    pub dsm_ramp_max: f64,
    /// Add the GAN term (two phases per step once active; `gan_training`). Default false.
    pub gan: bool,
    /// Steps before the GAN term and discriminator updates start (`discriminator_start_itr`).
    /// Default 0.
    pub gan_start: u64,
    /// Hidden width of the MLP discriminator on samples (the official one is a projected
    /// StyleGAN-XL discriminator on frozen features: AUDIT D10). Default 128.
    pub disc_hidden: usize,
    /// Hidden layers of the discriminator. Default 2.
    pub disc_depth: usize,
    /// Adaptive λ_DSM, λ_GAN from gradient norms at the last layer (`apply_adaptive_weight`);
    /// when false the fixed values below are used. Default true.
    pub adaptive: bool,
    /// Recompute the adaptive weights every this many steps (1 = every step, official).
    pub adaptive_every: u64,
    /// Fixed λ_DSM when `adaptive` is false (`denoising_weight`). Default 1.
    pub lambda_dsm: f64,
    /// Fixed λ_GAN when `adaptive` is false (`discriminator_weight`). Default 1.
    pub lambda_gan: f64,
    /// γ of the default sampler (0 = deterministic jumps, default; 1 = consistency multistep).
    pub gamma: f64,
    /// EDM-time settings, the `[method.time]` table (ε, T, ρ, two-step σ; also accepted at the
    /// top level of `[method]`, where CTM configs gave them before).
    pub time: EdmTime,
}

impl Default for CtmConfig {
    fn default() -> Self {
        Self {
            n: 18,
            max_k: 0,
            s_strategy: SStrategy::Uniform,
            teacher: Teacher::Exact,
            guidance: 1.0,
            solver: Solver::Heun,
            distance: Distance::L2,
            target_mu: 0.999,
            dsm: true,
            p_mean: -1.2,
            p_std: 1.2,
            dsm_ramp_max: 0.7,
            gan: false,
            gan_start: 0,
            disc_hidden: 128,
            disc_depth: 2,
            adaptive: true,
            adaptive_every: 1,
            lambda_dsm: 1.0,
            lambda_gan: 1.0,
            gamma: 0.0,
            time: EdmTime::default(),
        }
    }
}

impl CtmConfig {
    /// Checks the settings that do not depend on the data (ranges, naming the field); the
    /// data-dependent ones (a distance's image shape) are checked when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.guidance.is_finite() && self.guidance >= 0.0,
            "method.guidance must be a finite scale >= 0 (1 = no guidance), got {}",
            self.guidance
        );
        anyhow::ensure!(self.n >= 2, "method.n must be at least 2, got {}", self.n);
        anyhow::ensure!(
            self.max_k < self.n,
            "method.max_k must be below method.n = {} (0 = n − 1), got {}",
            self.n,
            self.max_k
        );
        self.time.validate()?;
        anyhow::ensure!(
            (0.0..1.0).contains(&self.target_mu),
            "method.target_mu must be in [0, 1), got {}",
            self.target_mu
        );
        anyhow::ensure!(self.p_std > 0.0, "method.p_std must be positive, got {}", self.p_std);
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.dsm_ramp_max),
            "method.dsm_ramp_max must be in [0, 1]"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.gamma),
            "method.gamma must be in [0, 1], got {}",
            self.gamma
        );
        anyhow::ensure!(self.adaptive_every >= 1, "method.adaptive_every must be at least 1");
        anyhow::ensure!(
            self.disc_hidden >= 1 && self.disc_depth >= 1,
            "method.disc_hidden and disc_depth must be at least 1"
        );
        Ok(())
    }
}

/// One draw of the soft-matching times (per-sample t, u, s; k shared by the batch).
#[derive(Clone, Debug)]
pub struct Draw {
    /// Teacher steps k (shared by the batch).
    pub k: usize,
    /// Start index j of each sample on the descending grid.
    pub j: Vec<usize>,
    /// t = desc[j].
    pub t: Vec<f64>,
    /// u = desc[j + k].
    pub u: Vec<f64>,
    /// s ∈ {u, …, ε}.
    pub s: Vec<f64>,
}

/// The CTM objective.
pub struct Ctm {
    cfg: CtmConfig,
    /// Karras grid, descending: desc[0] = T, desc[N−1] = ε.
    desc: Vec<f64>,
    c: f64,
    disc_specs: Vec<ParamSpec>,
    disc: Vec<Linear>,
    /// (step, λ_DSM, λ_GAN) of the last adaptive evaluation, reused for `adaptive_every`
    /// steps; saved in checkpoints ([`Objective::state`]) so a resumed run reuses it too.
    cache: Mutex<Option<(u64, f64, f64)>>,
}

/// ‖∇_{p[idx]} f(p)‖ with p[idx] as the only autodiff leaf (all of `p` plain on entry).
pub fn leaf_grad_norm(p: &[Tensor<1>], idx: usize, f: impl FnOnce(&[Tensor<1>]) -> Tensor<1>) -> f64 {
    let mut q = p.to_vec();
    q[idx] = p[idx].clone().detach().autodiff().require_grad();
    let loss = f(&q);
    let grads = loss.backward();
    match q[idx].grad(&grads) {
        Some(g) => (g.square().sum().into_scalar::<f32>() as f64).sqrt(),
        None => 0.0,
    }
}

/// λ = ‖∇L_ref‖ / (‖∇L_term‖ + 1e-4), clamped to [lo, hi] (METHODS.md §4).
pub fn adaptive_weight(ref_norm: f64, term_norm: f64, lo: f64, hi: f64) -> f64 {
    let w = ref_norm / (term_norm + 1e-4);
    if w.is_finite() {
        w.clamp(lo, hi)
    } else {
        lo
    }
}

impl Ctm {
    /// The objective for `dim`-dimensional samples.
    pub fn new(cfg: CtmConfig, dim: usize) -> anyhow::Result<Self> {
        cfg.validate()?;
        check_distance(cfg.distance, dim)?;
        let mut desc = karras(cfg.n, cfg.time.eps, cfg.time.t_max, cfg.time.rho);
        desc.reverse();
        let c = huber_c(dim);
        let mut b = SpecBuilder::default();
        let mut disc = Vec::new();
        let mut i = dim;
        for l in 0..cfg.disc_depth {
            disc.push(b.linear(&format!("disc.{l}"), i, cfg.disc_hidden, false));
            i = cfg.disc_hidden;
        }
        disc.push(b.linear("disc.out", i, 1, false));
        Ok(Self {
            cfg,
            desc,
            c,
            disc_specs: b.specs,
            disc,
            cache: Mutex::new(None),
        })
    }

    /// The Karras grid, descending (T first, ε last).
    pub fn grid_desc(&self) -> &[f64] {
        &self.desc
    }

    /// Draws k ∝ k in 1..max_k (N − 1 by default), then per sample j, t, u, s (see the module
    /// docs).
    pub fn draw(&self, rng: &mut Rng, b: usize) -> Draw {
        let n = self.desc.len();
        let max_k = if self.cfg.max_k == 0 { n - 1 } else { self.cfg.max_k };
        let w: Vec<f64> = (1..=max_k).map(|k| k as f64).collect();
        let k = rng.categorical(&w) + 1;
        self.draw_with_k(rng, b, k)
    }

    /// [`Ctm::draw`] for the whole optimizer batch, the call's rows kept ([`Ctx::per_row`]).
    fn draw_rows(&self, ctx: &mut Ctx) -> Draw {
        let dr = self.draw(ctx.rng, ctx.batch);
        Draw {
            k: dr.k,
            j: ctx.keep(dr.j),
            t: ctx.keep(dr.t),
            u: ctx.keep(dr.u),
            s: ctx.keep(dr.s),
        }
    }

    /// [`Ctm::draw`] with a given k.
    pub fn draw_with_k(&self, rng: &mut Rng, b: usize, k: usize) -> Draw {
        let n = self.desc.len();
        assert!(k >= 1 && k < n);
        let j: Vec<usize> = (0..b).map(|_| rng.below(n - k)).collect();
        let m: Vec<usize> = match self.cfg.s_strategy {
            SStrategy::Uniform => j.iter().map(|&j| j + k + rng.below(n - j - k)).collect(),
            SStrategy::Smallest => vec![n - 1; b],
        };
        Draw {
            k,
            t: j.iter().map(|&j| self.desc[j]).collect(),
            u: j.iter().map(|&j| self.desc[j + k]).collect(),
            s: m.iter().map(|&m| self.desc[m]).collect(),
            j,
        }
    }

    /// Solver_φ(x_t, t → u): k teacher steps along the grid from desc[j] to desc[j+k].
    pub fn teacher_solve(&self, teacher: &dyn Denoiser, mut x: Tensor<2>, d: &Draw) -> Tensor<2> {
        for i in 0..d.k {
            let from: Vec<f64> = d.j.iter().map(|&j| self.desc[j + i]).collect();
            let to: Vec<f64> = d.j.iter().map(|&j| self.desc[j + i + 1]).collect();
            x = ode_step(teacher, x, &from, &to, self.cfg.solver);
        }
        x
    }

    /// The soft-matching target G_{θ⁻}(G_{sg θ}(Solver(x_t, t→u), u, s), s, ε) (plain tensors).
    pub fn soft_target(
        &self,
        model: &Model,
        sg: &[Tensor<1>],
        target: &[Tensor<1>],
        teacher: &dyn Denoiser,
        x_t: Tensor<2>,
        d: &Draw,
    ) -> Tensor<2> {
        let x_u = self.teacher_solve(teacher, x_t, d);
        let y = ctm_jump(model, sg, x_u, &d.u, &d.s, None);
        self.to_data(model, target, y, &d.s)
    }

    /// G_{θ⁻}(y, s, ε).
    fn to_data(&self, model: &Model, target: &[Tensor<1>], y: Tensor<2>, s: &[f64]) -> Tensor<2> {
        let eps = vec![self.cfg.time.eps; s.len()];
        ctm_jump(model, target, y, s, &eps, None)
    }

    /// The estimate G_{θ⁻}(G_θ(x_t, t, s), s, ε) with weights `p` for the inner jump.
    pub fn estimate(
        &self,
        model: &Model,
        p: &[Tensor<1>],
        target: &[Tensor<1>],
        x_t: Tensor<2>,
        d: &Draw,
    ) -> Tensor<2> {
        let y = ctm_jump(model, p, x_t, &d.t, &d.s, None);
        self.to_data(model, target, y, &d.s)
    }

    /// Discriminator logits [B, 1] with the discriminator's own weights `q`.
    pub fn discriminate(&self, q: &[Tensor<1>], x: Tensor<2>) -> Tensor<2> {
        let mut h = x;
        for (l, lin) in self.disc.iter().enumerate() {
            h = lin.forward(q, h);
            if l + 1 < self.disc.len() {
                h = activation::leaky_relu(h, 0.2);
            }
        }
        h
    }

    fn dsm_loss(&self, model: &Model, p: &[Tensor<1>], x0: Tensor<2>, sigma: &[f64], z: Tensor<2>) -> Tensor<1> {
        let sd = model.precond.sigma_d();
        let w: Vec<f64> = sigma.iter().map(|s| (s * s + sd * sd) / (s * sd).powi(2)).collect();
        let x = x0.clone() + z * col(sigma, &x0);
        let den = ctm_denoise(model, p, x, sigma, None);
        weighted_mean((den - x0).square().mean_dim(1), &w)
    }

    /// σ of the DSM draws: the first half ln σ ~ N(P_mean, P_std²), the second half
    /// [`Ctm::dsm_ramp_sigma`] of u ~ U[0, 1).
    fn dsm_sigmas(&self, rng: &mut Rng, b: usize) -> Vec<f64> {
        (0..b)
            .map(|i| {
                if i < b / 2 {
                    (self.cfg.p_mean + self.cfg.p_std * rng.normal()).exp()
                } else {
                    self.dsm_ramp_sigma(rng.uniform())
                }
            })
            .collect()
    }

    /// The uniform half's σ for u ∈ [0, 1]: the Karras ramp read from the noise end,
    /// σ = (T^{1/ρ} + u·m·(ε^{1/ρ} − T^{1/ρ}))^ρ with m = `dsm_ramp_max` (0.7), so u = 0 gives T
    /// and σ ∈ [0.318, 80] by default (Kim-Dongjun/ctm-cifar10 `cm/resample.py:216-229`
    /// `HalfLogNormalHalfUniformSampler.get_t`, `diffusion_mult`; AUDIT B1).
    pub fn dsm_ramp_sigma(&self, u: f64) -> f64 {
        let t = &self.cfg.time;
        karras_ramp(1.0 - u * self.cfg.dsm_ramp_max, t.eps, t.t_max, t.rho)
    }

    fn gan_active(&self, step: u64) -> bool {
        self.cfg.gan && step >= self.cfg.gan_start
    }

    /// Index of the backbone's last-layer weight θ_L.
    fn last_layer(&self, model: &Model) -> usize {
        let specs = model.net.specs();
        specs.iter().position(|s| s.name == "output.weight").unwrap_or_else(|| {
            specs
                .iter()
                .rposition(|s| s.trainable && s.shape.len() == 2)
                .expect("a weight matrix")
        })
    }
}

impl Objective for Ctm {
    fn name(&self) -> &'static str {
        "ctm"
    }
    fn precond(&self, sigma_d: f64) -> Precond {
        Precond::Ctm { sigma_d }
    }
    fn n_times(&self) -> usize {
        2
    }
    fn target_decay(&self, _step: u64, _total: u64) -> Option<f64> {
        Some(self.cfg.target_mu)
    }
    fn needs_teacher(&self) -> bool {
        true
    }
    fn extra_specs(&self) -> Vec<ParamSpec> {
        if self.cfg.gan {
            self.disc_specs.clone()
        } else {
            vec![]
        }
    }
    /// The discriminator's phase runs once the GAN term is on (`gan_start`); before that it
    /// sends no gradient, so its optimizer state stays fresh for its first real step.
    /// The adaptive λ_DSM and λ_GAN are ratios of the batch's gradient norms: not a sum over
    /// samples, so a micro-batched step would differ from the whole batch's.
    fn micro_batches_exact(&self) -> bool {
        !(self.cfg.adaptive && (self.cfg.dsm || self.cfg.gan))
    }
    fn phases(&self, step: u64) -> usize {
        if self.gan_active(step) {
            2
        } else {
            1
        }
    }
    fn loss(&self, ctx: &mut Ctx, x0: Tensor<2>, phase: usize) -> LossOut {
        let d = x0.dims()[1];
        let model = ctx.model;
        if phase == 1 {
            let q = ctx.online.own;
            let dr = self.draw_rows(ctx);
            let z = ctx.normal_rows(d);
            let x_t = x0.clone() + z * col(&dr.t, &x0);
            let fake = self
                .estimate(model, ctx.online_sg.net, ctx.target.net, x_t, &dr)
                .detach();
            let real = self.discriminate(q, x0);
            let fake_l = self.discriminate(q, fake);
            let l_real = activation::relu(real.neg().add_scalar(1.0)).mean();
            let l_fake = activation::relu(fake_l.add_scalar(1.0)).mean();
            let loss = l_real.clone() + l_fake.clone();
            let terms = vec![
                ("d_real".into(), l_real.into_scalar::<f32>() as f64),
                ("d_fake".into(), l_fake.into_scalar::<f32>() as f64),
            ];
            return LossOut { loss, terms };
        }
        let teacher = ctx.teacher.expect("CTM needs a teacher (checked when the run starts)");
        let p = ctx.online.net;
        let sg = ctx.online_sg.net;
        let tgt = ctx.target.net;
        let dr = self.draw_rows(ctx);
        let z = ctx.normal_rows(d);
        let x_t = x0.clone() + z * col(&dr.t, &x0);
        let target = self.soft_target(model, sg, tgt, teacher, x_t.clone(), &dr).detach();
        let est = self.estimate(model, p, tgt, x_t.clone(), &dr);
        let l_ctm = distance(self.cfg.distance, est.clone(), target.clone(), self.c).mean();
        let mut terms = vec![
            ("k".to_string(), dr.k as f64),
            ("ctm".to_string(), l_ctm.clone().into_scalar::<f32>() as f64),
        ];
        let mut loss = l_ctm.clone();
        let dsm_draw = if self.cfg.dsm {
            let sigma = self.dsm_sigmas(ctx.rng, ctx.batch);
            let sigma = ctx.keep(sigma);
            let zd = ctx.normal_rows(d);
            Some((sigma, zd))
        } else {
            None
        };
        let gan = self.gan_active(ctx.step);
        let q_sg: &[Tensor<1>] = ctx.online_sg.own;
        // Adaptive weights from separate passes with θ_L as the only leaf.
        let (mut lam_dsm, mut lam_gan) = (self.cfg.lambda_dsm, self.cfg.lambda_gan);
        if self.cfg.adaptive && (dsm_draw.is_some() || gan) {
            let mut cache = self.cache.lock().unwrap();
            let fresh = match *cache {
                Some((s, _, _)) => ctx.step >= s + self.cfg.adaptive_every || ctx.step < s,
                None => true,
            };
            if fresh {
                let li = self.last_layer(model);
                let g_ctm = leaf_grad_norm(sg, li, |q| {
                    let e = self.estimate(model, q, tgt, x_t.clone(), &dr);
                    distance(self.cfg.distance, e, target.clone(), self.c).mean()
                });
                if let Some((sigma, zd)) = &dsm_draw {
                    let g = leaf_grad_norm(sg, li, |q| self.dsm_loss(model, q, x0.clone(), sigma, zd.clone()));
                    lam_dsm = adaptive_weight(g_ctm, g, 0.0, 1e4);
                }
                if gan {
                    let g = leaf_grad_norm(sg, li, |q| {
                        let e = self.estimate(model, q, tgt, x_t.clone(), &dr);
                        self.discriminate(q_sg, e).mean().neg()
                    });
                    lam_gan = adaptive_weight(g_ctm, g, 0.01, 10.0);
                }
                *cache = Some((ctx.step, lam_dsm, lam_gan));
            } else if let Some((_, a, g)) = *cache {
                (lam_dsm, lam_gan) = (a, g);
            }
        }
        if let Some((sigma, zd)) = &dsm_draw {
            let l = self.dsm_loss(model, p, x0.clone(), sigma, zd.clone());
            terms.push(("dsm".into(), l.clone().into_scalar::<f32>() as f64));
            terms.push(("lambda_dsm".into(), lam_dsm));
            loss = loss + l.mul_scalar(lam_dsm);
        }
        if gan {
            let l = self.discriminate(q_sg, est).mean().neg();
            terms.push(("gan_g".into(), l.clone().into_scalar::<f32>() as f64));
            terms.push(("lambda_gan".into(), lam_gan));
            loss = loss + l.mul_scalar(lam_gan);
        }
        LossOut { loss, terms }
    }
    fn sampler(&self, sigma_d: f64) -> Sampler {
        self.sampler_with(sigma_d, &SamplerOptions::default())
            .expect("the default CTM sampler (γ validated when built)")
    }
    /// γ-sampling with `gamma` (default: the configured γ) on the Karras grid, or, with `ode`,
    /// EDM's ODE sampler through the denoiser D_θ(x, σ) = g_θ(x, σ, σ) (the Karras grid and a
    /// final Euler step to σ = 0, [`super::dsm::edm_heun_sampler`]).
    fn sampler_with(&self, _sigma_d: f64, opts: &SamplerOptions) -> anyhow::Result<Sampler> {
        let t = self.cfg.time.clone();
        let times = move |n| crate::schedule::karras_desc(n, t.eps, t.t_max, t.rho);
        let ends = (self.cfg.time.t_max, self.cfg.time.eps);
        Ok(match (opts.gamma, opts.ode) {
            (Some(_), Some(_)) => anyhow::bail!("give --gamma or --ode, not both"),
            (_, Some(solver)) => super::dsm::edm_heun_sampler(&self.cfg.time, solver, "ctm-ode"),
            (gamma, None) => {
                let gamma = gamma.unwrap_or(self.cfg.gamma);
                anyhow::ensure!((0.0..=1.0).contains(&gamma), "--gamma must be in [0, 1], got {gamma}");
                Sampler::new("ctm-gamma", ends, times, move |model, p, z, ts, noise| {
                    crate::samplers::ctm::ctm_gamma(model, p, z, ts, gamma, noise)
                })
            }
        })
    }
    fn one_step_map(&self, _sigma_d: f64) -> Option<OneStepMap> {
        let t = &self.cfg.time;
        let eps = t.eps;
        Some(OneStepMap {
            sigma_min: t.eps,
            sigma_max: t.t_max,
            rho: t.rho,
            sigma_data_end: t.eps,
            map: std::sync::Arc::new(move |model: &Model, p: &[Tensor<1>], x: Tensor<2>, s: &[f64]| {
                ctm_jump(model, p, x, s, &vec![eps; s.len()], None)
            }),
        })
    }
    fn state(&self) -> Option<String> {
        let cache = *self.cache.lock().unwrap();
        cache.map(|(s, a, g)| serde_json::json!({"adaptive_step": s, "lambda_dsm": a, "lambda_gan": g}).to_string())
    }
    fn set_state(&self, state: &str) -> anyhow::Result<()> {
        let v: serde_json::Value = serde_json::from_str(state)?;
        let (Some(s), Some(a), Some(g)) = (
            v["adaptive_step"].as_u64(),
            v["lambda_dsm"].as_f64(),
            v["lambda_gan"].as_f64(),
        ) else {
            anyhow::bail!("CTM state {state} lacks adaptive_step, lambda_dsm or lambda_gan");
        };
        *self.cache.lock().unwrap() = Some((s, a, g));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::nets::mlp::{Mlp, MlpConfig};
    use crate::nets::{init_params, Backbone};
    use crate::tensor::to_vec;
    use std::sync::Arc;

    fn ring_gmm() -> crate::data::gmm::Gmm {
        let ds = Dataset::from_name("ring8").unwrap();
        let st = ds.standardizer();
        ds.gmm().unwrap().standardized(&st.mean, &st.std)
    }

    #[test]
    fn soft_target_at_k1_is_one_heun_step_mapped_by_target_net() {
        let dev = Device::flex();
        let obj = Ctm::new(CtmConfig::default(), 2).unwrap();
        let net = Arc::new(Mlp::new(
            &MlpConfig {
                hidden: 32,
                depth: 2,
                ..Default::default()
            },
            2,
            2,
            0,
        ));
        let model = Model::new(net.clone(), Precond::Ctm { sigma_d: 1.0 });
        let mut rng = Rng::new(4);
        let sg = init_params(&net.specs(), &mut rng, &dev);
        let tgt = init_params(&net.specs(), &mut rng, &dev);
        let gmm = ring_gmm();
        let b = 256;
        let d = obj.draw_with_k(&mut rng, b, 1);
        for i in 0..b {
            assert_eq!(d.u[i], obj.desc[d.j[i] + 1]);
            assert!(d.s[i] <= d.u[i] && d.s[i] >= obj.desc[obj.desc.len() - 1]);
        }
        let x0 = rng.normal_tensor([b, 2], &dev);
        let x_t = x0.clone() + rng.normal_tensor([b, 2], &dev) * col(&d.t, &x0);
        let got = obj.soft_target(&model, &sg, &tgt, &gmm, x_t.clone(), &d);
        // By hand: one analytic Heun step t → u with the exact mixture denoiser, then
        // G_{sg θ}(·, u, s) and G_{θ⁻}(·, s, ε).
        let x_u = ode_step(&gmm, x_t, &d.t, &d.u, Solver::Heun);
        let y = ctm_jump(&model, &sg, x_u, &d.u, &d.s, None);
        let want = ctm_jump(&model, &tgt, y, &d.s, &vec![0.002; b], None);
        assert_eq!(to_vec(got), to_vec(want));
    }

    #[test]
    fn k_is_drawn_proportional_to_k() {
        let obj = Ctm::new(CtmConfig::default(), 2).unwrap();
        let mut rng = Rng::new(1);
        let n = 40_000;
        let mut counts = vec![0usize; 18];
        for _ in 0..n {
            counts[obj.draw(&mut rng, 1).k] += 1;
        }
        let total: f64 = (1..18).map(|k| k as f64).sum();
        for k in 1..18 {
            let p = k as f64 / total;
            let f = counts[k] as f64 / n as f64;
            assert!(
                (f - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-3,
                "k = {k}: {f} vs {p}"
            );
        }
        assert_eq!(counts[0], 0);
        // With max_k (official `num_heun_step`) the law is the same on 1..max_k, nothing above.
        let obj = Ctm::new(
            CtmConfig {
                max_k: 4,
                ..Default::default()
            },
            2,
        )
        .unwrap();
        let mut counts = vec![0usize; 18];
        for _ in 0..n {
            counts[obj.draw(&mut rng, 1).k] += 1;
        }
        for k in 1..18 {
            let p = if k <= 4 { k as f64 / 10.0 } else { 0.0 };
            let f = counts[k] as f64 / n as f64;
            assert!(
                (f - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-3,
                "max_k 4, k = {k}: {f} vs {p}"
            );
        }
        // `smallest`: every s is ε, the last grid point; j, u, t as before.
        let obj = Ctm::new(
            CtmConfig {
                s_strategy: SStrategy::Smallest,
                ..Default::default()
            },
            2,
        )
        .unwrap();
        let d = obj.draw(&mut rng, 64);
        let eps = *obj.grid_desc().last().unwrap();
        assert!(d.s.iter().all(|&s| s == eps), "{:?}", d.s);
        assert!(d.j.iter().all(|&j| j + d.k < 18) && d.u.iter().zip(&d.t).all(|(u, t)| u < t));
        let bad = CtmConfig {
            max_k: 18,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(bad.contains("method.max_k"), "{bad}");
    }

    #[test]
    fn adaptive_weight_is_gradient_norm_ratio_on_two_parameter_model() {
        // Model y = a·w·x with a scalar a (index 0) and a last layer w ∈ R² (index 1).
        // L1 = mean((y − 1)²), L2 = mean(y²) on two fixed points; gradients w.r.t. w by hand.
        let dev = Device::flex();
        let a = 0.7f32;
        let w = [0.3f32, -1.2];
        let xs = [[1.0f32, 2.0], [-0.5, 0.25]];
        let p = vec![
            Tensor::<1>::from_data(TensorData::new(vec![a], [1]), &dev),
            Tensor::<1>::from_data(TensorData::new(w.to_vec(), [2]), &dev),
        ];
        let x = crate::tensor::tensor2(xs.iter().flatten().copied().collect(), 2, 2, &dev);
        let y = |q: &[Tensor<1>]| x.clone().matmul(q[1].clone().reshape([2, 1])) * q[0].clone().reshape([1, 1]);
        let g1 = leaf_grad_norm(&p, 1, |q| y(q).sub_scalar(1.0).square().mean());
        let g2 = leaf_grad_norm(&p, 1, |q| y(q).square().mean());
        let yv: Vec<f64> = xs.iter().map(|x| (a * (w[0] * x[0] + w[1] * x[1])) as f64).collect();
        let grad = |r: &dyn Fn(f64) -> f64| -> f64 {
            let mut g = [0.0f64; 2];
            for (i, x) in xs.iter().enumerate() {
                for j in 0..2 {
                    g[j] += r(yv[i]) * a as f64 * x[j] as f64 / 2.0;
                }
            }
            (g[0] * g[0] + g[1] * g[1]).sqrt()
        };
        let e1 = grad(&|y| 2.0 * (y - 1.0));
        let e2 = grad(&|y| 2.0 * y);
        assert!((g1 - e1).abs() < 1e-5 * e1.max(1.0), "{g1} vs {e1}");
        assert!((g2 - e2).abs() < 1e-5 * e2.max(1.0), "{g2} vs {e2}");
        let lam = adaptive_weight(g1, g2, 0.0, 1e4);
        assert!((lam - e1 / (e2 + 1e-4)).abs() < 1e-4 * lam, "{lam}");
        // Clamping.
        assert_eq!(adaptive_weight(g1, g2 * 1e6, 0.01, 10.0), 0.01);
        assert_eq!(adaptive_weight(g1 * 1e6, g2, 0.01, 10.0), 10.0);
        // The leaf pass does not touch a: its value is unchanged and no other leaf exists.
        assert_eq!(to_vec(p[0].clone()), vec![a]);
    }

    /// AUDIT B1: the uniform half of the DSM batch is u ~ U[0, 0.7] on the Karras ramp read from
    /// the noise end (Kim-Dongjun/ctm-cifar10 `cm/resample.py` `HalfLogNormalHalfUniformSampler`:
    /// σ = (T^{1/ρ} + u(ε^{1/ρ} − T^{1/ρ}))^ρ), so σ ∈ [0.31828, 80] and P(σ > 10) = 0.4706.
    #[test]
    fn audit_b1_dsm_uniform_half_starts_at_the_noise_end() {
        let obj = Ctm::new(CtmConfig::default(), 2).unwrap();
        let n = 100_000;
        let s = obj.dsm_sigmas(&mut Rng::new(7), 2 * n);
        let uni = &s[n..];
        let lo = (80f64.powf(1.0 / 7.0) + 0.7 * (0.002f64.powf(1.0 / 7.0) - 80f64.powf(1.0 / 7.0))).powi(7);
        assert!((lo - 0.318283).abs() < 1e-6);
        let min = uni.iter().copied().fold(f64::INFINITY, f64::min);
        let max = uni.iter().copied().fold(0.0, f64::max);
        assert!(min >= lo * (1.0 - 1e-12), "uniform-half minimum {min} < {lo}");
        assert!(max <= 80.0 * (1.0 + 1e-12) && max > 79.0, "uniform-half maximum {max}");
        let p10 = uni.iter().filter(|&&s| s > 10.0).count() as f64 / n as f64;
        assert!((p10 - 0.4706).abs() < 0.005, "P(σ > 10) = {p10}");
        // A stub draw u = 0 is the noise end T, u = 1 the ramp's lower end.
        assert!((obj.dsm_ramp_sigma(0.0) - 80.0).abs() < 1e-12);
        assert!((obj.dsm_ramp_sigma(1.0) - lo).abs() < 1e-12);
    }
}
