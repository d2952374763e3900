//! Samplers: stateless functions of (model, weights, times, noise).
//!
//! - [`ode_step`] / [`edm_ode`]: Euler and Heun on the EDM probability-flow ODE
//!   dx/dσ = (x − D(x, σ))/σ (Karras et al. 2022, Alg. 1). CD's teacher step and the exact
//!   consistency map reuse them.
//! - [`consistency_multistep`]: Song et al. (2023) Algorithm 1; one step when `taus` is empty.
//! - [`ctm_gamma`]: CTM's γ-sampling (Kim et al. 2023, METHODS.md §4) on any decreasing list of
//!   times; γ = 0 deterministic jumps, γ = 1 consistency multistep with f(x, t) = G_θ(x, t, ε).
//! - [`Sampler`] names the family a trained method samples with; [`generate`] dispatches.
//!
//! Time convention: EDM σ (data end ε, noise end T) unless a sampler says otherwise.

use crate::model::{ctm_jump, Model, NetDenoiser};
use crate::process::Denoiser;
use crate::rng::Rng;
use crate::schedule::karras;
use crate::tensor::col;
use burn::prelude::*;

/// Where a sampler's Gaussian noise comes from.
pub enum Noise<'a> {
    /// One stream for the whole batch, in row order (training-time evaluation, tests).
    Stream(&'a mut Rng),
    /// One stream per sample ([`Rng::for_sample`]): row i's noise, and so its image, does not
    /// depend on which or how many other samples share its batch.
    PerSample(Vec<Rng>),
}

impl Noise<'_> {
    /// Per-sample streams for samples `first .. first + n` under `seed`.
    pub fn per_sample(seed: u64, first: u64, n: usize) -> Noise<'static> {
        Noise::PerSample((0..n as u64).map(|i| Rng::for_sample(seed, first + i)).collect())
    }

    /// A [b, d] standard normal draw.
    pub fn normal(&mut self, b: usize, d: usize, device: &Device) -> Tensor<2> {
        match self {
            Noise::Stream(rng) => rng.normal_tensor([b, d], device),
            Noise::PerSample(streams) => {
                assert_eq!(
                    streams.len(),
                    b,
                    "per-sample noise for {} samples, asked for {b}",
                    streams.len()
                );
                let v: Vec<f32> = streams.iter_mut().flat_map(|r| r.normal_vec(d)).collect();
                Tensor::from_data(TensorData::new(v, [b, d]), device)
            }
        }
    }
}

/// One Euler or Heun step of the PF-ODE from σ_from to σ_to (per-sample times).
pub fn ode_step(den: &dyn Denoiser, x: Tensor<2>, s_from: &[f64], s_to: &[f64], heun: bool) -> Tensor<2> {
    let h: Vec<f64> = s_from.iter().zip(s_to).map(|(a, b)| b - a).collect();
    let inv: Vec<f64> = s_from.iter().map(|s| 1.0 / s).collect();
    let d = (x.clone() - den.denoise(x.clone(), s_from)) * col(&inv, &x);
    let x_euler = x.clone() + d.clone() * col(&h, &x);
    if !heun || s_to.iter().any(|&s| s <= 0.0) {
        return x_euler;
    }
    let inv2: Vec<f64> = s_to.iter().map(|s| 1.0 / s).collect();
    let d2 = (x_euler.clone() - den.denoise(x_euler, s_to)) * col(&inv2, &x);
    let half: Vec<f64> = h.iter().map(|h| 0.5 * h).collect();
    x.clone() + (d + d2) * col(&half, &x)
}

/// Integrates the PF-ODE through the decreasing noise levels `sigmas` (all samples share them).
pub fn edm_ode(den: &dyn Denoiser, mut x: Tensor<2>, sigmas: &[f64], heun: bool) -> Tensor<2> {
    let b = x.dims()[0];
    for w in sigmas.windows(2) {
        x = ode_step(den, x, &vec![w[0]; b], &vec![w[1]; b], heun);
    }
    x
}

/// The ODE sampler: x_T = T·z, then `steps` Heun (or Euler) steps on the Karras grid to ε.
pub fn ode_sample(den: &dyn Denoiser, z: Tensor<2>, steps: usize, eps: f64, t_max: f64, heun: bool) -> Tensor<2> {
    let mut grid = karras(steps + 1, eps, t_max, 7.0);
    grid.reverse();
    edm_ode(den, z.mul_scalar(t_max), &grid, heun)
}

/// Consistency multistep sampling (Song et al. 2023, Alg. 1): x = f(T·z, T); for τ in `taus`
/// (decreasing): x = f(x + sqrt(τ² − ε²)·z', τ). Fresh noise z' comes from `noise`.
pub fn consistency_multistep(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    taus: &[f64],
    eps: f64,
    t_max: f64,
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    let [b, d] = z.dims();
    let dev = z.device();
    let mut x = model.f(p, z.mul_scalar(t_max), &vec![t_max; b], None);
    for &tau in taus {
        let n = noise.normal(b, d, &dev);
        let xn = x + n.mul_scalar((tau * tau - eps * eps).max(0.0).sqrt());
        x = model.f(p, xn, &vec![tau; b], None);
    }
    x
}

/// Intermediate noise levels for `steps`-step consistency sampling: none for one step, the
/// configured `mid` (default 0.821, ECT's CIFAR-10 choice) for two, and the interior of an
/// (steps+1)-point Karras grid otherwise.
pub fn default_taus(steps: usize, mid: f64, eps: f64, t_max: f64) -> Vec<f64> {
    match steps {
        0 | 1 => vec![],
        2 => vec![mid],
        n => {
            let mut g = karras(n + 1, eps, t_max, 7.0);
            g.reverse();
            g[1..n].to_vec()
        }
    }
}

/// CTM γ-sampling (METHODS.md §4). `times` = t_0 > t_1 > … > t_N (t_0 = T, t_N = ε, the data
/// end). x = t_0·z; for n = 0..N−1: s_n = sqrt(1 − γ²)·(t_{n+1} − ε) + ε, x = G_θ(x, t_n, s_n),
/// and, unless n = N−1, x += sqrt(t_{n+1}² − s_n²)·z' with fresh z' from `noise` (none is drawn
/// when γ = 0, so γ = 0 is deterministic given z). ε is the last time of the list.
pub fn ctm_gamma(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    times: &[f64],
    gamma: f64,
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    assert!(
        times.len() >= 2,
        "γ-sampling needs at least two times (T and ε), got {}",
        times.len()
    );
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "γ-sampling needs strictly decreasing times: {times:?}"
    );
    assert!((0.0..=1.0).contains(&gamma), "γ must lie in [0, 1], got {gamma}");
    let [b, d] = z.dims();
    let dev = z.device();
    let eps = *times.last().unwrap();
    let c = (1.0 - gamma * gamma).max(0.0).sqrt();
    let mut x = z.mul_scalar(times[0]);
    let n = times.len() - 1;
    for i in 0..n {
        let (t, t_next) = (times[i], times[i + 1]);
        let s = if i + 1 == n { eps } else { c * (t_next - eps) + eps };
        x = ctm_jump(model, p, x, &vec![t; b], &vec![s; b], None);
        if i + 1 < n {
            let sd = (t_next * t_next - s * s).max(0.0).sqrt();
            if sd > 0.0 {
                x = x + noise.normal(b, d, &dev).mul_scalar(sd);
            }
        }
    }
    x
}

/// The `steps + 1` times T = t_0 > … > t_steps = ε of a Karras grid (ρ = 7).
pub fn karras_desc(steps: usize, eps: f64, t_max: f64) -> Vec<f64> {
    let mut g = karras(steps.max(1) + 1, eps, t_max, 7.0);
    g.reverse();
    g
}

/// How CTM generates: γ-sampling (jumps of G_θ) or the PF-ODE through D_θ(x, σ) = g_θ(x, σ, σ).
#[derive(Clone, Debug, PartialEq)]
pub enum CtmMode {
    Gamma(f64),
    Ode { heun: bool },
}

/// How a trained method generates. Each objective names its family; [`generate`] runs it.
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// Consistency function in EDM time: one step or multistep (Alg. 1).
    Consistency { eps: f64, t_max: f64, mid: f64 },
    /// EDM denoiser: Heun ODE on the Karras grid (steps = number of Heun steps).
    EdmOde { eps: f64, t_max: f64 },
    /// Consistency multistep on explicit decreasing intermediate noise levels `taus`
    /// (the first step is always from T).
    ConsistencyTaus { eps: f64, t_max: f64, taus: Vec<f64> },
    /// CTM (METHODS.md §4): `steps` γ-jumps on a Karras grid (or on `times` when not empty,
    /// which then fixes the number of steps), or `steps` Euler/Heun ODE steps through D_θ.
    Ctm {
        eps: f64,
        t_max: f64,
        mode: CtmMode,
        times: Vec<f64>,
    },
    /// sCM consistency function in TrigFlow time (METHODS.md §3): x_T = σ_d·z,
    /// T = atan(σ_max/σ_d), x̂ = f(x_T, T); further steps re-noise to t_mid (2 steps) or to the
    /// TrigFlow times of an (n+1)-point Karras grid (n > 2).
    TrigFlow { sigma_max: f64, t_mid: f64 },
    /// TrigFlow diffusion model (velocity σ_d·F): Heun on dx/dt = σ_d·F(x/σ_d, t) from T to 0
    /// through the TrigFlow times of a Karras grid.
    TrigFlowOde { sigma_max: f64 },
    /// FACM (t = 1 data, METHODS.md §5): on t_k = k/n, x_end = x + (1 − t)·F(x, t) with the
    /// consistency time input(s) (t, or (t, r = 1) when `aux`), x ← t_next·x_end + (1 − t_next)·z'.
    Facm { aux: bool },
    /// MeanFlow (t = 0 data, METHODS.md §6): z_r = z_t − (t − r)·u(z_t, r, t) on t_k = 1 − k/n.
    MeanFlow,
}

/// TrigFlow times of an `steps`-step sCM sampler below T (decreasing).
pub fn trig_mids(steps: usize, t_mid: f64, sigma_max: f64, sigma_d: f64) -> Vec<f64> {
    match steps {
        0 | 1 => vec![],
        2 => vec![t_mid],
        n => {
            let mut g = karras(n + 1, 0.002, sigma_max, 7.0);
            g.reverse();
            g[1..n]
                .iter()
                .map(|&s| crate::process::edm_to_trig_t(s, sigma_d))
                .collect()
        }
    }
}

/// sCM multistep sampling (METHODS.md §3).
pub fn trigflow_multistep(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    mids: &[f64],
    t_max: f64,
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    let [b, d] = z.dims();
    let dev = z.device();
    let sd = model.precond.sigma_d();
    let mut x = model.f(p, z.mul_scalar(sd), &vec![t_max; b], None);
    for &t in mids {
        let n = noise.normal(b, d, &dev);
        let xm = x.mul_scalar(t.cos()) + n.mul_scalar(t.sin() * sd);
        x = model.f(p, xm, &vec![t; b], None);
    }
    x
}

/// Heun on the TrigFlow PF-ODE of a velocity model (`model.f` = σ_d·F) through `ts` (decreasing).
pub fn trigflow_ode(model: &Model, p: &[Tensor<1>], mut x: Tensor<2>, ts: &[f64]) -> Tensor<2> {
    let b = x.dims()[0];
    for w in ts.windows(2) {
        let h = w[1] - w[0];
        let v1 = model.f(p, x.clone(), &vec![w[0]; b], None);
        let xe = x.clone() + v1.clone().mul_scalar(h);
        let v2 = model.f(p, xe, &vec![w[1]; b], None);
        x = x + (v1 + v2).mul_scalar(0.5 * h);
    }
    x
}

/// FACM multistep sampling from noise `z` (METHODS.md §5).
pub fn facm_sample(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    steps: usize,
    aux: bool,
    noise: &mut Noise<'_>,
) -> Tensor<2> {
    let [b, d] = z.dims();
    let dev = z.device();
    let n = steps.max(1);
    let mut x = z;
    let mut x_end = x.clone();
    for k in 0..n {
        let t = k as f64 / n as f64;
        let tv = vec![t; b];
        let ones = vec![1.0; b];
        let extra: Vec<&[f64]> = if aux { vec![&ones] } else { vec![] };
        let f = model.eval(p, x.clone(), &tv, &extra, None);
        x_end = x.clone() + f.mul_scalar(1.0 - t);
        if k + 1 < n {
            let tn = (k + 1) as f64 / n as f64;
            let zn = noise.normal(b, d, &dev);
            x = x_end.clone().mul_scalar(tn) + zn.mul_scalar(1.0 - tn);
        }
    }
    x_end
}

/// MeanFlow sampling from noise `z`: z_r = z_t − (t − r)·u(z_t, r, t) (METHODS.md §6).
pub fn meanflow_sample(model: &Model, p: &[Tensor<1>], z: Tensor<2>, steps: usize) -> Tensor<2> {
    let b = z.dims()[0];
    let n = steps.max(1);
    let mut x = z;
    for k in 0..n {
        let t = 1.0 - k as f64 / n as f64;
        let r = 1.0 - (k + 1) as f64 / n as f64;
        let u = model.eval(p, x.clone(), &vec![r; b], &[&vec![t; b]], None);
        x = x - u.mul_scalar(t - r);
    }
    x
}

/// Draws `n` samples (standardised coordinates) with `steps` network steps, all noise from
/// one stream `rng`.
pub fn generate(
    sampler: &Sampler,
    model: &Model,
    p: &[Tensor<1>],
    n: usize,
    steps: usize,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<2> {
    generate_with(sampler, model, p, n, steps, &mut Noise::Stream(rng), device)
}

/// [`generate`] with an explicit noise source (e.g. [`Noise::per_sample`], so that the same
/// seed gives the same images at any batch size).
pub fn generate_with(
    sampler: &Sampler,
    model: &Model,
    p: &[Tensor<1>],
    n: usize,
    steps: usize,
    noise: &mut Noise<'_>,
    device: &Device,
) -> Tensor<2> {
    let z = noise.normal(n, model.net.dim(), device);
    match sampler.clone() {
        Sampler::Consistency { eps, t_max, mid } => {
            let taus = default_taus(steps, mid, eps, t_max);
            consistency_multistep(model, p, z, &taus, eps, t_max, noise)
        }
        Sampler::ConsistencyTaus { eps, t_max, taus } => consistency_multistep(model, p, z, &taus, eps, t_max, noise),
        Sampler::EdmOde { eps, t_max } => {
            let den = NetDenoiser {
                model: model.clone(),
                params: p.to_vec(),
            };
            ode_sample(&den, z, steps.max(1), eps, t_max, true)
        }
        Sampler::Ctm {
            eps,
            t_max,
            mode,
            times,
        } => match mode {
            CtmMode::Gamma(gamma) => {
                let times = if times.is_empty() {
                    karras_desc(steps, eps, t_max)
                } else {
                    times
                };
                ctm_gamma(model, p, z, &times, gamma, noise)
            }
            CtmMode::Ode { heun } => {
                let den = NetDenoiser {
                    model: model.clone(),
                    params: p.to_vec(),
                };
                if times.is_empty() {
                    ode_sample(&den, z, steps.max(1), eps, t_max, heun)
                } else {
                    edm_ode(&den, z.mul_scalar(times[0]), &times, heun)
                }
            }
        },
        Sampler::TrigFlow { sigma_max, t_mid } => {
            let sd = model.precond.sigma_d();
            let t_max = crate::process::edm_to_trig_t(sigma_max, sd);
            let mids = trig_mids(steps, t_mid, sigma_max, sd);
            trigflow_multistep(model, p, z, &mids, t_max, noise)
        }
        Sampler::TrigFlowOde { sigma_max } => {
            let sd = model.precond.sigma_d();
            let mut ts: Vec<f64> = karras(steps.max(1) + 1, 0.002, sigma_max, 7.0)
                .into_iter()
                .rev()
                .map(|s| crate::process::edm_to_trig_t(s, sd))
                .collect();
            *ts.last_mut().unwrap() = 0.0;
            trigflow_ode(model, p, z.mul_scalar(sd), &ts)
        }
        Sampler::Facm { aux } => facm_sample(model, p, z, steps, aux, noise),
        Sampler::MeanFlow => meanflow_sample(model, p, z, steps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::nets::mlp::{Mlp, MlpConfig};
    use crate::nets::{init_params, Backbone, Masks, ParamSpec};
    use crate::precond::Precond;
    use crate::tensor::to_vec;
    use std::sync::Arc;

    /// A one-time "backbone" whose output is CTM's G_θ(x, t, ε): with `Precond::Raw`
    /// (c_skip = 0, c_out = c_in = 1, c_noise = t) the model's f(x, t) is exactly the
    /// consistency function f(x, t) = G_θ(x, t, ε).
    struct CtmAsConsistency {
        ctm: Model,
        eps: f64,
    }

    impl Backbone for CtmAsConsistency {
        fn specs(&self) -> Vec<ParamSpec> {
            self.ctm.net.specs()
        }
        fn dim(&self) -> usize {
            self.ctm.net.dim()
        }
        fn n_times(&self) -> usize {
            1
        }
        fn dropout(&self) -> f64 {
            0.0
        }
        fn draw_masks(&self, _: &mut Rng, _: usize, _: &Device) -> Option<Masks> {
            None
        }
        fn forward(&self, p: &[Tensor<1>], x: Tensor<2>, cond: &[Tensor<2>], _: Option<&Masks>) -> Tensor<2> {
            let t = crate::tensor::to_vec64(cond[0].clone());
            let b = t.len();
            ctm_jump(&self.ctm, p, x, &t, &vec![self.eps; b], None)
        }
        fn jvp(
            &self,
            _: &[Tensor<1>],
            _: Tensor<2>,
            _: Tensor<2>,
            _: &[Tensor<2>],
            _: &[Tensor<2>],
            _: Option<&Masks>,
        ) -> (Tensor<2>, Tensor<2>) {
            unimplemented!()
        }
    }

    fn ctm_model(seed: u64) -> (Model, Vec<Tensor<1>>) {
        let dev = Device::flex();
        let cfg = MlpConfig {
            hidden: 32,
            depth: 2,
            ..Default::default()
        };
        let net = Arc::new(Mlp::new(&cfg, 2, 2, seed));
        let p = init_params(&net.specs(), &mut Rng::new(seed), &dev);
        (Model::new(net, Precond::Ctm { sigma_d: 1.0 }), p)
    }

    /// With per-sample noise, sample i is the same whatever the batch size or split: the
    /// first three of a 5-sample 3-step draw equal a 3-sample draw, and samples 3..5 drawn
    /// alone equal rows 3..5; the single-stream draw differs (so the test has teeth).
    #[test]
    fn per_sample_noise_makes_samples_independent_of_the_batch() {
        let dev = Device::flex();
        let cfg = MlpConfig {
            hidden: 32,
            depth: 2,
            ..Default::default()
        };
        let net = Arc::new(Mlp::new(&cfg, 2, 1, 3));
        let p = init_params(&net.specs(), &mut Rng::new(3), &dev);
        let model = Model::new(
            net,
            Precond::Consistency {
                sigma_d: 1.0,
                eps: 0.002,
            },
        );
        let sampler = Sampler::Consistency {
            eps: 0.002,
            t_max: 80.0,
            mid: 0.821,
        };
        let draw = |first: u64, n: usize| {
            to_vec(generate_with(
                &sampler,
                &model,
                &p,
                n,
                3,
                &mut Noise::per_sample(7, first, n),
                &dev,
            ))
        };
        let all = draw(0, 5);
        assert_eq!(&all[..6], &draw(0, 3)[..], "first three samples");
        assert_eq!(&all[6..], &draw(3, 2)[..], "samples 3 and 4 drawn on their own");
        let stream = to_vec(generate(&sampler, &model, &p, 3, 3, &mut Rng::new(7), &dev));
        let stream5 = to_vec(generate(&sampler, &model, &p, 5, 3, &mut Rng::new(7), &dev));
        assert_ne!(
            &stream5[..6],
            &stream[..],
            "one stream: later steps' noise depends on the batch size"
        );
    }

    #[test]
    fn gamma_one_is_consistency_multistep() {
        let dev = Device::flex();
        let (ctm, p) = ctm_model(5);
        let (eps, t_max) = (0.002, 80.0);
        let cm = Model::new(Arc::new(CtmAsConsistency { ctm: ctm.clone(), eps }), Precond::Raw);
        for steps in [1usize, 2, 4] {
            let times = karras_desc(steps, eps, t_max);
            let z = Rng::new(11).normal_tensor([128, 2], &dev);
            let a = ctm_gamma(&ctm, &p, z.clone(), &times, 1.0, &mut Noise::Stream(&mut Rng::new(99)));
            let b = consistency_multistep(
                &cm,
                &p,
                z,
                &times[1..steps],
                eps,
                t_max,
                &mut Noise::Stream(&mut Rng::new(99)),
            );
            let (a, b) = (to_vec(a), to_vec(b));
            let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "steps {steps}: max |γ=1 − multistep| = {err}");
        }
    }

    #[test]
    fn gamma_zero_is_deterministic_given_noise() {
        let dev = Device::flex();
        let (ctm, p) = ctm_model(6);
        let times = karras_desc(4, 0.002, 80.0);
        let z = Rng::new(1).normal_tensor([64, 2], &dev);
        let mut r1 = Rng::new(2);
        let mut r2 = Rng::new(3);
        let a = ctm_gamma(&ctm, &p, z.clone(), &times, 0.0, &mut Noise::Stream(&mut r1));
        let b = ctm_gamma(&ctm, &p, z.clone(), &times, 0.0, &mut Noise::Stream(&mut r2));
        assert_eq!(to_vec(a.clone()), to_vec(b));
        // γ = 0 consumes no randomness; γ > 0 does and then differs.
        assert_eq!(r1.state(), Rng::new(2).state());
        let c = ctm_gamma(&ctm, &p, z, &times, 0.5, &mut Noise::Stream(&mut r1));
        assert_ne!(to_vec(a), to_vec(c));
    }
}

/// Applies command-line sampler options to a method's sampler: explicit noise levels
/// (`times`, decreasing), CTM's γ, or CTM's ODE mode. Options a sampler does not have are errors.
pub fn with_options(
    base: &Sampler,
    times: Option<Vec<f64>>,
    gamma: Option<f64>,
    ode: Option<bool>,
) -> anyhow::Result<Sampler> {
    if let Some(t) = &times {
        anyhow::ensure!(
            t.windows(2).all(|w| w[0] > w[1]) && t.iter().all(|v| v.is_finite() && *v > 0.0),
            "--times must be positive and strictly decreasing, got {t:?}"
        );
    }
    if let Some(g) = gamma {
        anyhow::ensure!((0.0..=1.0).contains(&g), "--gamma must be in [0, 1], got {g}");
    }
    Ok(match base.clone() {
        Sampler::Consistency { eps, t_max, .. } | Sampler::ConsistencyTaus { eps, t_max, .. } => {
            anyhow::ensure!(
                gamma.is_none() && ode.is_none(),
                "--gamma and --ode apply to CTM runs only"
            );
            match times {
                Some(taus) => {
                    anyhow::ensure!(
                        taus.iter().all(|&v| v > eps && v < t_max),
                        "--times must lie in (eps, T) = ({eps}, {t_max}) for consistency sampling"
                    );
                    Sampler::ConsistencyTaus { eps, t_max, taus }
                }
                None => base.clone(),
            }
        }
        Sampler::Ctm {
            eps,
            t_max,
            mode,
            times: t0,
        } => Sampler::Ctm {
            eps,
            t_max,
            mode: match (gamma, ode) {
                (Some(_), Some(_)) => anyhow::bail!("give --gamma or --ode, not both"),
                (Some(g), None) => CtmMode::Gamma(g),
                (None, Some(heun)) => CtmMode::Ode { heun },
                (None, None) => mode,
            },
            times: times.unwrap_or(t0),
        },
        other => {
            anyhow::ensure!(
                times.is_none() && gamma.is_none() && ode.is_none(),
                "this run's sampler takes no --times, --gamma or --ode"
            );
            other
        }
    })
}
