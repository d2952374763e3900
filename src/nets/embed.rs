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

/// The `half` frequencies of a time embedding (its sin and cos halves use the same ones), each
/// multiplied by `time_scale` (the embedding sees `time_scale`·c: ω·(s·c) = (s·ω)·c).
/// Positional frequencies run geometrically from `min_freq` to `max_freq` (both included);
/// Fourier frequencies are 2π·max_freq·N(0, 1) from a stream derived from the run's seed (so
/// checkpoints carry them: they are a non-trainable parameter, and a run is reproducible;
/// `min_freq` does not apply).
///
/// The official embeddings (AUDIT M5): ADM's `timestep_embedding(1000·c, 2·half)` of the PyTorch
/// CM/CTM codes (c = ¼ ln σ) has the frequencies 10000^{−j/half}, j = 0..half−1, i.e.
/// `time_scale = 1000`, `min_freq = 10000^{−(half−1)/half}`, `max_freq = 1` (the same features
/// in another order, which a dense first layer does not see); NCSN++'s Gaussian Fourier
/// projection of ln σ with scale 16 (the JAX CIFAR-10 code) is `embedding = "fourier"`,
/// `max_freq = 16`, `time_scale = 4`.
pub fn frequencies(kind: Embedding, half: usize, min_freq: f64, max_freq: f64, time_scale: f64, seed: u64) -> Vec<f32> {
    match kind {
        Embedding::Positional => (0..half)
            .map(|j| {
                let f = if half == 1 { 0.0 } else { j as f64 / (half - 1) as f64 };
                (time_scale * min_freq.powf(1.0 - f) * max_freq.powf(f)) as f32
            })
            .collect(),
        Embedding::Fourier => {
            let mut r = Rng::new(seed ^ 0xF0F0_1234);
            (0..half)
                .map(|_| (time_scale * 2.0 * std::f64::consts::PI * max_freq * r.normal()) as f32)
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

/// Serde helper: skip a field at its default 1 (so stored configs stay as before the field).
pub fn is_one(v: &f64) -> bool {
    *v == 1.0
}

/// Serde default 1.
pub fn one() -> f64 {
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUDIT M5: `time_scale = 1000`, `min_freq = 10000^{−(half−1)/half}`, `max_freq = 1`
    /// reproduce ADM's `timestep_embedding(1000·c)` (cat[cos(1000c·f), sin(1000c·f)],
    /// f_j = exp(−ln(10000)·j/half)) feature for feature, up to the order.
    #[test]
    fn audit_m5_adm_embedding() {
        let half = 16;
        let min = 10000f64.powf(-((half - 1) as f64) / half as f64);
        let w = frequencies(Embedding::Positional, half, min, 1.0, 1000.0, 0);
        let adm: Vec<f64> = (0..half)
            .map(|j| 1000.0 * (-(10000f64.ln()) * j as f64 / half as f64).exp())
            .collect();
        for c in [-1.55, -0.2, 0.0, 0.3, 1.1] {
            // Our j-th frequency is ADM's (half − 1 − j)-th.
            for j in 0..half {
                let ours = w[j] as f64 * c;
                let theirs = adm[half - 1 - j] * c;
                assert!(
                    (ours.sin() - theirs.sin()).abs() < 2e-4 * (1.0 + theirs.abs()),
                    "sin {j} at {c}"
                );
                assert!(
                    (ours.cos() - theirs.cos()).abs() < 2e-4 * (1.0 + theirs.abs()),
                    "cos {j} at {c}"
                );
            }
        }
        // The defaults (scale 1, min 1) are the original geometric 1..max_freq.
        let d = frequencies(Embedding::Positional, 4, 1.0, 8.0, 1.0, 0);
        assert_eq!(d, vec![1.0, 2.0, 4.0, 8.0]);
        // Fourier: the scale multiplies the random frequencies.
        let a = frequencies(Embedding::Fourier, 4, 1.0, 16.0, 1.0, 3);
        let b = frequencies(Embedding::Fourier, 4, 1.0, 16.0, 4.0, 3);
        for (x, y) in a.iter().zip(&b) {
            assert!((4.0 * x - y).abs() < 1e-3 * y.abs().max(1.0));
        }
    }
}
