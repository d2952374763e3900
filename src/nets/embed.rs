//! The time embedding's frequencies, shared by the MLP and the U-Net: positional (geometric
//! from 1 to `max_freq`, Vaswani et al. 2017 / ADM) or random Fourier features (Tancik et al.
//! 2020, NCSN++'s `GaussianFourierProjection`).

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Which frequencies a time embedding uses (`model.embedding`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Embedding {
    /// Geometric frequencies from 1 to `max_freq` (ADM-style sinusoidal embedding).
    Positional,
    /// Random Fourier features with scale `max_freq` (NCSN++'s Gaussian Fourier projection).
    Fourier,
}

/// The `half` frequencies of a time embedding (its sin and cos halves use the same ones).
/// Fourier frequencies are 2π·max_freq·N(0, 1) from a stream derived from the run's seed, so
/// checkpoints carry them (they are a non-trainable parameter) and a run is reproducible.
pub fn frequencies(kind: Embedding, half: usize, max_freq: f64, seed: u64) -> Vec<f32> {
    match kind {
        Embedding::Positional => (0..half)
            .map(|j| {
                let f = if half == 1 { 0.0 } else { j as f64 / (half - 1) as f64 };
                max_freq.powf(f) as f32
            })
            .collect(),
        Embedding::Fourier => {
            let mut r = Rng::new(seed ^ 0xF0F0_1234);
            (0..half)
                .map(|_| (2.0 * std::f64::consts::PI * max_freq * r.normal()) as f32)
                .collect()
        }
    }
}
