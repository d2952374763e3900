//! Weight averages: the target network's and the evaluation EMA's update.

use burn::prelude::*;

/// θ⁻ ← μ θ⁻ + (1 − μ) θ, without gradients.
pub fn ema(avg: &[Tensor<1>], cur: &[Tensor<1>], mu: f64) -> Vec<Tensor<1>> {
    avg.iter()
        .zip(cur)
        .map(|(a, c)| a.clone().mul_scalar(mu) + c.clone().mul_scalar(1.0 - mu))
        .collect()
}
