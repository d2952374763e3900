//! The time embedding's frequencies, shared by the MLP and the U-Net: positional (geometric
//! from 1 to `max_freq`, Vaswani et al. 2017 / ADM) or random Fourier features (Tancik et al.
//! 2020, NCSN++'s `GaussianFourierProjection`).

use super::dual::Dual;
use crate::rng::Rng;
use burn::prelude::*;
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

/// The sinusoidal embedding of the conditioning scalars `cond` (one `[B, 1]` column each) with
/// frequencies `w` `[1, half]`: [sin(c₁w), cos(c₁w), sin(c₂w), cos(c₂w), …], `[B, 2·half·n]`,
/// with its tangent along `dcond` (d sin(cw) = cos(cw)·w·dc, d cos(cw) = −sin(cw)·w·dc) when
/// given. Shared by the MLP and the U-Net.
pub fn sinusoidal(w: Tensor<2>, cond: &[Tensor<2>], dcond: Option<&[Tensor<2>]>) -> Dual<2> {
    let mut y = Vec::new();
    let mut dy = Vec::new();
    for (k, c) in cond.iter().enumerate() {
        let a = c.clone() * w.clone();
        let (s, co) = (a.clone().sin(), a.cos());
        if let Some(dc) = dcond {
            let da = dc[k].clone() * w.clone();
            dy.push(co.clone() * da.clone());
            dy.push(s.clone().neg() * da);
        }
        y.push(s);
        y.push(co);
    }
    Dual::new(Tensor::cat(y, 1), dcond.map(|_| Tensor::cat(dy, 1)))
}
