//! Sampling a trained run in data coordinates: the one path `cm sample`, `cm eval`, the demo,
//! the evaluation and the tests use. It chooses class labels for class-conditional networks
//! ([`Classes`]), draws the noise (one stream, or per-sample streams so that sample i does not
//! depend on the batch), runs a sampler along its times in chunks, and undoes the data
//! standardisation.

use crate::rng::Rng;
use crate::run::Setup;
use crate::samplers::{Noise, Sampler, SamplerOptions};
use crate::tensor::to_vec;
use anyhow::Result;
use burn::prelude::*;

/// Which class labels a class-conditional network samples with (unconditional networks
/// ignore them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classes {
    /// Sample i gets class i mod K.
    Balanced,
    /// Every sample gets this class.
    Fixed(usize),
    /// The all-zero "no class" label: unconditional samples.
    Unconditional,
}

impl Classes {
    /// `cm sample --class`: a class number below the network's K, or `none` (unconditional).
    /// A class number for an unconditional network (K = 0) is an error.
    pub fn parse(arg: &str, n_classes: usize) -> Result<Self> {
        if arg.eq_ignore_ascii_case("none") {
            return Ok(Classes::Unconditional);
        }
        let c: usize = arg
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--class must be a class number or `none`, got '{arg}'"))?;
        if n_classes == 0 {
            anyhow::bail!("--class {c}: the run's network is unconditional (model.classes = 0)");
        }
        if c >= n_classes {
            anyhow::bail!(
                "--class {c}: the network has {n_classes} classes (0..={})",
                n_classes - 1
            );
        }
        Ok(Classes::Fixed(c))
    }

    /// Label of sample `i` (None = no class).
    fn of(self, i: usize, k: usize) -> Option<usize> {
        match self {
            Classes::Balanced => Some(i % k),
            Classes::Fixed(c) => Some(c),
            Classes::Unconditional => None,
        }
    }
}

/// Where [`sample`] draws each chunk's noise.
pub enum NoiseSource<'a> {
    /// One stream across all chunks (evaluation, tests).
    Stream(&'a mut Rng),
    /// Per-sample streams under this seed, indexed by the global sample number
    /// ([`Noise::per_sample`]): sample i is the same for any `n > i` and any chunk size (what
    /// `cm sample` uses, so a grid can be reproduced from its seed alone).
    PerSample(u64),
}

/// How to sample: the sampler, the times it walks, the labels, the noise and the chunk size.
pub struct SampleOptions<'a> {
    /// The sampler (default: the run's own, [`Setup::sampler`]).
    pub sampler: Sampler,
    /// The walk, noise end first ([`Sampler::times`] or a completed user list).
    pub times: Vec<f64>,
    /// The class labels of class-conditional networks (default [`Classes::Balanced`]).
    pub classes: Classes,
    /// Where the initial noise (and any sampler noise) comes from.
    pub noise: NoiseSource<'a>,
    /// Samples per network batch (memory stays flat for large n); default 2048.
    pub chunk: usize,
    /// Classifier-free guidance scale w of a class-conditional network ([`Model::guidance`]:
    /// 1 = none, the default).
    ///
    /// [`Model::guidance`]: crate::model::Model::guidance
    pub guidance: f64,
}

impl<'a> SampleOptions<'a> {
    /// The run's own sampler with `steps` network steps, balanced classes, chunks of 2048.
    pub fn new(setup: &Setup, steps: usize, noise: NoiseSource<'a>) -> Self {
        let sampler = setup.sampler();
        Self {
            times: sampler.times(steps),
            sampler,
            classes: Classes::Balanced,
            noise,
            chunk: 2048,
            guidance: 1.0,
        }
    }

    /// The same options with another sampler and its times for `steps` steps.
    pub fn with_sampler(mut self, sampler: Sampler, steps: usize) -> Self {
        self.times = sampler.times(steps);
        self.sampler = sampler;
        self
    }
}

/// `n` samples in data coordinates from the backbone weights `params`: the loop runs in chunks,
/// each chunk with the labels of its global sample indices (like per-sample noise, so neither
/// depends on the chunking).
pub fn sample(setup: &Setup, params: &[Tensor<1>], n: usize, opts: SampleOptions<'_>) -> Vec<f64> {
    let SampleOptions {
        sampler,
        times,
        classes,
        mut noise,
        chunk,
        guidance,
    } = opts;
    let k = setup.model.net.n_classes();
    if let Classes::Fixed(c) = classes {
        assert!(c < k, "class {c} for a network with {k} classes");
    }
    let mut out = Vec::with_capacity(n * setup.data.dim());
    let chunk = chunk.max(1);
    let mut first = 0;
    while first < n {
        let m = (n - first).min(chunk);
        let model = if k == 0 {
            setup.model.clone()
        } else {
            let labels: Vec<Option<usize>> = (first..first + m).map(|i| classes.of(i, k)).collect();
            setup
                .model
                .with_class_labels(&labels, &setup.device)
                .with_guidance(guidance)
        };
        let mut chunk_noise = match &mut noise {
            NoiseSource::Stream(rng) => Noise::Stream(rng),
            NoiseSource::PerSample(seed) => Noise::per_sample(*seed, first as u64, m),
        };
        let x = sampler.generate(&model, params, m, &times, &mut chunk_noise, &setup.device);
        out.extend(to_vec(x).into_iter().map(|v| v as f64));
        first += m;
    }
    setup.standardizer.inverse(&out)
}

/// What `cm sample` (and the Python package's `Model.sample`) asks of a run.
#[derive(Clone, Debug)]
pub struct Request {
    /// Network steps along the method's own schedule (ignored when `times` is given).
    pub steps: usize,
    /// Explicit times, noise end first, in the method's convention; completed with the noise
    /// and data ends by [`Sampler::complete`].
    pub times: Option<Vec<f64>>,
    /// Seed of the per-sample noise streams ([`NoiseSource::PerSample`]).
    pub seed: u64,
    /// Class labels of a class-conditional network.
    pub classes: Classes,
    /// Samples per network batch (the samples do not depend on it).
    pub batch: usize,
    /// Sampler options (CTM's γ and ODE solver); methods without options reject any.
    pub sampler: SamplerOptions,
    /// Classifier-free guidance scale w (1 = none); needs a class-conditional network.
    pub guidance: f64,
}

/// Samples a run as `cm sample` does: the method's sampler with the request's options, the
/// walk of `steps` steps (or the completed `times`), per-sample noise under `seed`, so that
/// sample i depends only on the run, the seed, the walk and i. Returns the samples in data
/// coordinates (N×D row-major) and the number of steps walked.
pub fn sample_request(setup: &Setup, params: &[Tensor<1>], n: usize, req: &Request) -> Result<(Vec<f64>, usize)> {
    let sampler = setup
        .objective
        .sampler_with(setup.model.precond.sigma_d(), &req.sampler)?;
    anyhow::ensure!(req.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(req.steps >= 1, "--steps must be at least 1");
    anyhow::ensure!(
        req.guidance.is_finite() && req.guidance >= 0.0,
        "--guidance must be a finite scale >= 0 (1 = no guidance), got {}",
        req.guidance
    );
    anyhow::ensure!(
        req.guidance == 1.0 || setup.model.net.n_classes() > 0,
        "--guidance {} needs a class-conditional run (model.classes > 0); this run is unconditional",
        req.guidance
    );
    let times = match &req.times {
        Some(t) => sampler.complete(t)?,
        None => sampler.times(req.steps),
    };
    let steps = times.len() - 1;
    let xs = sample(
        setup,
        params,
        n,
        SampleOptions {
            sampler,
            times,
            classes: req.classes,
            noise: NoiseSource::PerSample(req.seed),
            chunk: req.batch,
            guidance: req.guidance,
        },
    );
    Ok((xs, steps))
}

/// `n` samples with the run's own sampler and `steps` steps, all noise from one stream `rng`
/// (balanced classes): the evaluation's draw.
pub fn sample_steps(setup: &Setup, params: &[Tensor<1>], n: usize, steps: usize, rng: &mut Rng) -> Vec<f64> {
    sample(
        setup,
        params,
        n,
        SampleOptions::new(setup, steps, NoiseSource::Stream(rng)),
    )
}

/// The default number of evaluation samples: 1000 for images (classifier features, 784-d
/// MMD), 10 000 otherwise.
pub fn default_n_eval(data: &str) -> usize {
    if crate::data::is_image_name(data) {
        1000
    } else {
        10_000
    }
}
