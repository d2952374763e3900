//! Sampling a trained run in data coordinates: the one path `cm sample`, `cm eval`, the demo
//! and the tests use. It chooses class labels for class-conditional networks ([`Classes`]),
//! draws the noise (one stream, or per-sample streams so that sample i does not depend on the
//! batch), runs the method's sampler in chunks, and undoes the data standardisation.

use crate::rng::Rng;
use crate::run::Setup;
use crate::tensor::to_vec;
use anyhow::Result;
use burn::prelude::*;

/// Samples from a trained run in raw data coordinates: `n` samples with `steps` steps.
pub fn sample_raw(setup: &Setup, params: &[Tensor<1>], n: usize, steps: usize, rng: &mut Rng) -> Vec<f64> {
    sample_raw_with(setup, &setup.objective.sampler(), params, n, steps, rng)
}

/// [`sample_raw`] with an explicit sampler (e.g. CTM with another γ or time list). A
/// class-conditional network samples balanced classes ([`Classes::Balanced`]).
pub fn sample_raw_with(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    sample_raw_classes(setup, sampler, params, n, steps, rng, Classes::Balanced)
}

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

/// The run's model carrying the labels of samples `range` (unchanged for an unconditional net).
fn labeled_model(setup: &Setup, classes: Classes, range: std::ops::Range<usize>) -> crate::model::Model {
    let k = setup.model.net.n_classes();
    if k == 0 {
        return setup.model.clone();
    }
    let labels: Vec<Option<usize>> = range.map(|i| classes.of(i, k)).collect();
    setup.model.with_labels(Some(setup.onehot(&labels)))
}

/// [`sample_raw_with`] with the class labels chosen by `classes` (for a class-conditional
/// network; an unconditional one ignores them).
pub fn sample_raw_classes(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    rng: &mut Rng,
    classes: Classes,
) -> Vec<f64> {
    // Chunks keep memory flat for large n; the rng stream is the same for any chunking only
    // per chunk, so the chunk size is fixed.
    sample_in_chunks(
        setup,
        sampler,
        params,
        n,
        steps,
        2048,
        classes,
        NoiseSource::Stream(rng),
    )
}

/// Where [`sample_in_chunks`] draws each chunk's noise.
enum NoiseSource<'a> {
    /// One stream across all chunks.
    Stream(&'a mut Rng),
    /// Per-sample streams under this seed, indexed by the global sample number.
    PerSample(u64),
}

/// The sampling loop shared by [`sample_raw_classes`] and [`sample_seeded`]: `n` samples in
/// chunks of `chunk`, each chunk with the labels of its global sample indices, returned in data
/// coordinates.
#[allow(clippy::too_many_arguments)]
fn sample_in_chunks(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    chunk: usize,
    classes: Classes,
    mut source: NoiseSource<'_>,
) -> Vec<f64> {
    let k = setup.model.net.n_classes();
    if let Classes::Fixed(c) = classes {
        assert!(c < k, "class {c} for a network with {k} classes");
    }
    let mut out = Vec::with_capacity(n * setup.data.dim());
    let chunk = chunk.max(1);
    let mut first = 0;
    while first < n {
        let m = (n - first).min(chunk);
        // Labels by global sample index, like per-sample noise, so neither depends on the chunking.
        let model = labeled_model(setup, classes, first..first + m);
        let mut noise = match &mut source {
            NoiseSource::Stream(rng) => crate::samplers::Noise::Stream(rng),
            NoiseSource::PerSample(seed) => crate::samplers::Noise::per_sample(*seed, first as u64, m),
        };
        let x = crate::samplers::generate_with(sampler, &model, params, m, steps, &mut noise, &setup.device);
        out.extend(to_vec(x).into_iter().map(|v| v as f64));
        first += m;
    }
    setup.standardizer.inverse(&out)
}

/// `n` samples (data coordinates) with per-sample noise streams under `seed`
/// ([`crate::samplers::Noise::per_sample`]), generated `batch` at a time: sample i is the same
/// for any `n > i` and any `batch` (what `cm sample` uses, so a grid can be reproduced from
/// its seed alone). Class-conditional networks get the labels chosen by `classes`.
pub fn sample_seeded(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    seed: u64,
    batch: usize,
    classes: Classes,
) -> Vec<f64> {
    sample_in_chunks(
        setup,
        sampler,
        params,
        n,
        steps,
        batch,
        classes,
        NoiseSource::PerSample(seed),
    )
}

/// The default number of evaluation samples: 1000 for images (classifier features, 784-d
/// MMD), 10 000 otherwise.
pub fn default_n_eval(data: &str) -> usize {
    if crate::data::IMAGE_PREFIXES.iter().any(|p| data.starts_with(p)) {
        1000
    } else {
        10_000
    }
}
