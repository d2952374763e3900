//! Time-convention conversions between the families of METHODS.md §0, and velocities of a
//! [`Denoiser`] (which works in EDM coordinates) in the other conventions.
//!
//! - EDM: x = x0 + σ·z, σ ∈ [ε, T].
//! - TrigFlow: x_t = cos t·x0 + sin t·z', z' ~ N(0, σ_d² I), t ∈ [0, π/2];
//!   σ = σ_d·tan t, x_EDM = x_t / cos t, t = atan2(σ, σ_d).
//! - FACM (reversed flow matching): x_t = t·x0 + (1 − t)·z, t = 1 data; σ = (1 − t)/t,
//!   x_EDM = x_t / t.
//!
//! All coefficients in f64.

use crate::tensor::col;
use burn::prelude::*;

/// Largest TrigFlow time used anywhere (METHODS.md §7: clamp t inside (0, π/2 − 1e-4)).
pub const TRIG_T_MAX: f64 = std::f64::consts::FRAC_PI_2 - 1e-4;
/// Smallest positive TrigFlow time the objectives draw.
pub const TRIG_T_MIN: f64 = 1e-5;

/// Clamps a TrigFlow time into [TRIG_T_MIN, TRIG_T_MAX].
pub fn clamp_trig(t: f64) -> f64 {
    t.clamp(TRIG_T_MIN, TRIG_T_MAX)
}

/// TrigFlow time of an EDM noise level: t = atan2(σ, σ_d).
pub fn edm_to_trig_t(sigma: f64, sigma_d: f64) -> f64 {
    sigma.atan2(sigma_d)
}

/// EDM noise level of a TrigFlow time: σ = σ_d·tan t.
pub fn trig_to_edm_sigma(t: f64, sigma_d: f64) -> f64 {
    sigma_d * t.tan()
}

/// x_trig = cos t·x_EDM (per-sample t).
pub fn edm_to_trig_x(x: Tensor<2>, t: &[f64]) -> Tensor<2> {
    let c: Vec<f64> = t.iter().map(|t| t.cos()).collect();
    x.clone() * col(&c, &x)
}

/// x_EDM = x_trig / cos t (per-sample t).
pub fn trig_to_edm_x(x: Tensor<2>, t: &[f64]) -> Tensor<2> {
    let c: Vec<f64> = t.iter().map(|t| 1.0 / t.cos()).collect();
    x.clone() * col(&c, &x)
}

/// The TrigFlow PF-ODE velocity dx_t/dt of a denoiser at (x_t, t), t in (0, π/2):
/// from x_t = cos t·x0 + sin t·z' and v = cos t·z' − sin t·x0, eliminating z' gives
/// v = (cos t·x_t − x0)/sin t; the ODE uses x0 → D(x_t/cos t, σ_d tan t) = E[x0 | x_t].
pub fn trig_velocity(den: &dyn Denoiser, x_t: Tensor<2>, t: &[f64], sigma_d: f64) -> Tensor<2> {
    let sigma: Vec<f64> = t.iter().map(|&t| trig_to_edm_sigma(t, sigma_d)).collect();
    let d = den.denoise(trig_to_edm_x(x_t.clone(), t), &sigma);
    let cos: Vec<f64> = t.iter().map(|t| t.cos()).collect();
    let inv_sin: Vec<f64> = t.iter().map(|t| 1.0 / t.sin()).collect();
    (x_t.clone() * col(&cos, &x_t) - d) * col(&inv_sin, &x_t)
}

/// FACM's flow velocity v = dx_t/dt of a denoiser at (x_t, t), t in (0, 1): from
/// x_t = t·x0 + (1 − t)·z, v = x0 − z = (x0 − x_t)/(1 − t) with x0 → D(x_t/t, (1 − t)/t).
pub fn facm_velocity(den: &dyn Denoiser, x_t: Tensor<2>, t: &[f64]) -> Tensor<2> {
    let sigma: Vec<f64> = t.iter().map(|&t| (1.0 - t) / t).collect();
    let inv_t: Vec<f64> = t.iter().map(|t| 1.0 / t).collect();
    let d = den.denoise(x_t.clone() * col(&inv_t, &x_t), &sigma);
    let inv: Vec<f64> = t.iter().map(|t| 1.0 / (1.0 - t)).collect();
    (d - x_t.clone()) * col(&inv, &x_t)
}

/// Something that denoises in EDM coordinates: D(x, σ) ≈ E[x0 | x0 + σ z]. Exact for Gaussian
/// mixtures ([`crate::data::gmm::Gmm`]), learned for trained teachers. Velocity teachers for
/// TrigFlow and flow matching are converted through [`crate::process`].
pub trait Denoiser: Send + Sync {
    /// D(x, σ) per sample: x `[B, D]` in EDM coordinates, σ of length B.
    fn denoise(&self, x: Tensor<2>, sigma: &[f64]) -> Tensor<2>;
    /// The same denoiser bound to a batch's one-hot class labels `[B, K]` (an all-zero row =
    /// no class), for class-conditional teachers: the training loop binds the student's batch
    /// labels each step so a distilled student follows the conditional (and guided)
    /// trajectories of its class. None (the default): the denoiser takes no labels and is
    /// used as it is.
    fn with_labels(&self, _labels: Tensor<2>) -> Option<std::sync::Arc<dyn Denoiser>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edm_trigflow_round_trip() {
        let sd = 0.5;
        for s in [0.002, 0.1, 1.0, 80.0] {
            let t = edm_to_trig_t(s, sd);
            assert!((trig_to_edm_sigma(t, sd) - s).abs() < 1e-12 * s.max(1.0));
        }
        assert!((edm_to_trig_t(80.0, 0.5) - 1.5645).abs() < 1e-4);
    }

    /// For a point-mass data set at a the denoiser is exactly a, and the TrigFlow velocity
    /// is (cos t·x_t − a)/sin t.
    #[test]
    fn trig_velocity_of_a_point_mass() {
        struct Point;
        impl Denoiser for Point {
            fn denoise(&self, x: Tensor<2>, _s: &[f64]) -> Tensor<2> {
                x.zeros_like().add_scalar(0.25)
            }
        }
        let dev = Device::flex();
        let x = crate::tensor::tensor2(vec![1.0, -2.0], 2, 1, &dev);
        let t = [0.3, 1.2];
        let v = crate::tensor::to_vec64(trig_velocity(&Point, x, &t, 0.5));
        for (i, (xv, tv)) in [(1.0f64, 0.3f64), (-2.0, 1.2)].iter().enumerate() {
            let want = (tv.cos() * xv - 0.25) / tv.sin();
            assert!((v[i] - want).abs() < 1e-5, "{} vs {want}", v[i]);
        }
    }
}
