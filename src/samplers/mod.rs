//! Samplers: stateless functions with one shape, times in and samples out (k-diffusion's
//! `sample_heun(model, x, sigmas, …)`):
//!
//! `fn(model, weights, z, times, noise) -> x`
//!
//! `z` is standard normal noise `[B, D]`; `times` is the walk from the noise end to the data
//! end in the method's own time convention (EDM σ from T to ε, TrigFlow t from T to 0, FACM's t
//! from 0 to 1, MeanFlow's t from 1 to 0), `steps + 1` entries for `steps` network steps;
//! `noise` supplies any fresh noise a multistep sampler injects. Each method builds its time
//! list from its own configured schedule ([`crate::objectives::Objective::sampler`]), so no
//! sampler holds a literal ρ or ε.
//!
//! - [`ode`]: Euler and Heun on the EDM and TrigFlow probability-flow ODEs (Karras et al. 2022,
//!   Alg. 1); CD's and CTM's teacher steps and the exact consistency map reuse [`ode::ode_step`].
//! - [`consistency`]: consistency multistep sampling (Song et al. 2023, Alg. 1) in EDM and
//!   TrigFlow time.
//! - [`ctm`]: CTM's γ-sampling (Kim et al. 2023).
//! - [`flow`]: FACM and MeanFlow multistep sampling.
//!
//! A [`Sampler`] value bundles a sampler function with the method's time list; adding a sampler
//! is a function of the common shape here and the objective(s) that return it.

pub mod consistency;
pub mod ctm;
pub mod flow;
pub mod ode;

use crate::model::Model;
use crate::rng::Rng;
use burn::prelude::*;
use std::sync::Arc;

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

/// times → network evaluations of a walk along them.
type NfeFn = dyn Fn(&[f64]) -> usize + Send + Sync;

/// The common shape of every sampler function: (model, weights, z, times, noise) → samples.
pub type SampleFn = dyn Fn(&Model, &[Tensor<1>], Tensor<2>, &[f64], &mut Noise<'_>) -> Tensor<2> + Send + Sync;

/// How a trained method generates: a sampler function and the method's time list for a given
/// number of steps. Built by each objective from its own configuration.
#[derive(Clone)]
pub struct Sampler {
    /// Short name for messages and reports (`consistency`, `ctm-gamma`, `edm-heun`, …).
    pub name: String,
    /// (noise end, data end) of the time axis: user time lists are completed with them.
    pub ends: (f64, f64),
    /// steps → the method's time list.
    times: Arc<dyn Fn(usize) -> Vec<f64> + Send + Sync>,
    run: Arc<SampleFn>,
    /// times → network evaluations of a walk along them (default: one per step).
    nfe: Arc<NfeFn>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sampler({}, ends {:?})", self.name, self.ends)
    }
}

impl Sampler {
    /// A sampler from its function and the method's time list for `steps` network steps
    /// (`steps + 1` times from `ends.0` to `ends.1`).
    pub fn new(
        name: impl Into<String>,
        ends: (f64, f64),
        times: impl Fn(usize) -> Vec<f64> + Send + Sync + 'static,
        run: impl Fn(&Model, &[Tensor<1>], Tensor<2>, &[f64], &mut Noise<'_>) -> Tensor<2> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            ends,
            times: Arc::new(times),
            run: Arc::new(run),
            nfe: Arc::new(|t: &[f64]| t.len().saturating_sub(1)),
        }
    }

    /// The same sampler with its own count of network evaluations (NFE) per walk (the default
    /// is one per step; Heun ODE samplers take two per step but one on an Euler step to σ = 0,
    /// [`ode::heun_nfe`]).
    pub fn with_nfe(mut self, nfe: impl Fn(&[f64]) -> usize + Send + Sync + 'static) -> Self {
        self.nfe = Arc::new(nfe);
        self
    }

    /// Network evaluations of a walk along `times` (for `steps`: `nfe(&times(steps))`).
    pub fn nfe(&self, times: &[f64]) -> usize {
        (self.nfe)(times)
    }

    /// The method's time list for `steps` network steps (at least one).
    pub fn times(&self, steps: usize) -> Vec<f64> {
        (self.times)(steps.max(1))
    }

    /// A user's time list (`cm sample --times`) made into a full walk: the noise end is
    /// prepended and the data end appended where missing; the list must run strictly from the
    /// noise end towards the data end and stay inside the time axis.
    pub fn complete(&self, user: &[f64]) -> anyhow::Result<Vec<f64>> {
        let (from, to) = self.ends;
        let dir = if to < from { -1.0 } else { 1.0 };
        anyhow::ensure!(!user.is_empty(), "--times needs at least one time");
        anyhow::ensure!(
            user.iter()
                .all(|v| v.is_finite() && (v - from) * dir >= 0.0 && (to - v) * dir >= 0.0),
            "--times must lie between {from} (noise end) and {to} (data end) for the {} sampler, got {user:?}",
            self.name
        );
        anyhow::ensure!(
            user.windows(2).all(|w| (w[1] - w[0]) * dir > 0.0),
            "--times must run strictly from the noise end {from} towards the data end {to}, got {user:?}"
        );
        let mut t = user.to_vec();
        if t[0] != from {
            t.insert(0, from);
        }
        if *t.last().unwrap() != to {
            t.push(to);
        }
        Ok(t)
    }

    /// Runs the sampler from noise `z` along `times`.
    pub fn run(&self, model: &Model, p: &[Tensor<1>], z: Tensor<2>, times: &[f64], noise: &mut Noise<'_>) -> Tensor<2> {
        assert!(times.len() >= 2, "a sampler walks at least two times, got {times:?}");
        (self.run)(model, p, z, times, noise)
    }

    /// Draws `n` samples (standardised coordinates) along `times`: z from `noise`, then the walk.
    pub fn generate(
        &self,
        model: &Model,
        p: &[Tensor<1>],
        n: usize,
        times: &[f64],
        noise: &mut Noise<'_>,
        device: &Device,
    ) -> Tensor<2> {
        let z = noise.normal(n, model.net.dim(), device);
        self.run(model, p, z, times, noise)
    }
}

/// Sampler options a method may accept from the command line (`cm sample --gamma/--ode`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SamplerOptions {
    /// CTM γ-sampling's γ ∈ [0, 1].
    pub gamma: Option<f64>,
    /// ODE sampling through the method's denoiser with this solver.
    pub ode: Option<ode::Solver>,
}

impl SamplerOptions {
    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.gamma.is_none() && self.ode.is_none()
    }
}

#[cfg(test)]
mod tests;
