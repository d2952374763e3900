//! Parameterisations: the only place where c_skip, c_out, c_in and c_noise appear.
//!
//! Every model output has the form `c_skip(t)·x + c_out(t)·F_θ(c_in(t)·x, c_noise(t), …)`;
//! the variants differ only in the coefficients and in what `t` means (METHODS.md §0):
//! - [`Precond::Consistency`]: EDM σ ∈ [ε, T]; Song et al. (2023) with the boundary condition
//!   c_skip(ε) = 1, c_out(ε) = 0 so that f(x, ε) = x exactly (METHODS.md §1).
//! - [`Precond::Edm`]: EDM denoiser D(x, σ) for diffusion teachers (Karras et al. 2022, Table 1).
//! - [`Precond::TrigFlow`]: TrigFlow t ∈ [0, π/2]; f(x, t) = cos t·x − sin t·σ_d·F(x/σ_d, t)
//!   (Lu & Song 2024, METHODS.md §3). With `velocity` = true it returns σ_d·F (the teacher's
//!   velocity) instead.
//! - [`Precond::Ctm`]: EDM σ; CTM's g_θ(x, t, s) = c_skip(t)·x + c_out(t)·F(c_in(t)·x, c_noise(t),
//!   c_noise(s)) with the EDM denoiser's scalings (Kim et al. 2023, METHODS.md §4). The jump
//!   G_θ(x, t, s) = (s/t)·x + (1 − s/t)·g_θ lives in [`crate::model::ctm_jump`].
//! - [`Precond::Raw`]: F itself, c_noise = t (FACM, MeanFlow: the objective owns the algebra).
//!
//! Coefficients are computed in f64 per sample (METHODS.md §7).

use serde::{Deserialize, Serialize};

/// A parameterisation: how the backbone F_θ's output is turned into the model's output, and
/// what the time input means (see the module documentation for each variant's formula).
/// In serde form, a table tagged by `kind` (the kebab-case variant name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Precond {
    /// Consistency function f(x, σ) in EDM time σ ∈ [ε, T] (Song et al. 2023):
    /// c_skip = σ_d²/((σ − ε)² + σ_d²), c_out = σ_d(σ − ε)/√(σ_d² + σ²), c_in = 1/√(σ² + σ_d²),
    /// so that f(x, ε) = x exactly.
    Consistency {
        /// σ_d, the data's standard deviation (EDM, Karras et al. 2022); 0.5 for images.
        sigma_d: f64,
        /// ε, the smallest noise level, where the boundary condition f(x, ε) = x holds
        /// (0.002 by default).
        eps: f64,
    },
    /// EDM denoiser D(x, σ) for diffusion teachers (Karras et al. 2022, Table 1):
    /// c_skip = σ_d²/(σ² + σ_d²), c_out = σσ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²).
    Edm {
        /// σ_d, the data's standard deviation (EDM, Karras et al. 2022); 0.5 for images.
        sigma_d: f64,
    },
    /// TrigFlow, t ∈ [0, π/2] (Lu & Song 2024): f(x, t) = cos t·x − sin t·σ_d·F(x/σ_d, t).
    TrigFlow {
        /// σ_d, the data's standard deviation (EDM, Karras et al. 2022); 0.5 for images.
        sigma_d: f64,
        /// Output σ_d·F(x/σ_d, t), the velocity dx/dt (a TrigFlow diffusion teacher), instead
        /// of the consistency function f (the sCM student).
        velocity: bool,
        /// The EDM network convention: the backbone is conditioned on EDM's
        /// c_noise = ¼ ln σ with σ = σ_d·tan t, and F = −(its output). An EDM denoiser's
        /// network (Karras et al. 2022, σ_d the same) is then exactly this TrigFlow model:
        /// with x = x_t/cos t, c_in·x = x_t/σ_d, c_skip·x = cos t·x_t and c_out = σ_d·sin t, so
        /// D(x_t/cos t, σ_d tan t) = cos t·x_t + σ_d sin t·F_EDM = f(x_t, t) with F = −F_EDM.
        /// sCD can so start from its EDM teacher's weights, as the sCM paper's students start
        /// from their teachers (Lu & Song 2024). Default false (c_noise = t, F as is).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        edm_net: bool,
    },
    /// CTM's g_θ: EDM scalings on the first time, a second time input s (METHODS.md §4).
    Ctm {
        /// σ_d, the data's standard deviation (EDM, Karras et al. 2022); 0.5 for images.
        sigma_d: f64,
    },
    /// The backbone's output F itself (c_skip = 0, c_out = c_in = 1, c_noise = t), for methods
    /// whose objective does the algebra (FACM, MeanFlow).
    Raw,
}

/// Per-sample coefficients.
#[derive(Clone, Debug, PartialEq)]
pub struct Coeffs {
    /// c_skip(t), the weight of the input x in the output.
    pub c_skip: Vec<f64>,
    /// c_out(t), the weight of the backbone's output F_θ.
    pub c_out: Vec<f64>,
    /// c_in(t), the scale applied to x before it enters the backbone.
    pub c_in: Vec<f64>,
    /// c_noise(t), the time value the backbone is conditioned on ([`Precond::c_noise`]).
    pub c_noise: Vec<f64>,
}

impl Precond {
    /// The network's conditioning scalar for time `t` (¼ ln σ for EDM time, t otherwise).
    pub fn c_noise(&self, t: f64) -> f64 {
        match self {
            Precond::Consistency { .. } | Precond::Edm { .. } | Precond::Ctm { .. } => 0.25 * t.ln(),
            Precond::TrigFlow {
                sigma_d, edm_net: true, ..
            } => 0.25 * (sigma_d * t.tan()).ln(),
            Precond::TrigFlow { .. } | Precond::Raw => t,
        }
    }

    /// The sign the backbone's output takes in F ([`crate::model::Model::raw`]): −1 for the
    /// EDM network convention of TrigFlow ([`Precond::TrigFlow`]'s `edm_net`), else 1.
    pub fn raw_sign(&self) -> f64 {
        match self {
            Precond::TrigFlow { edm_net: true, .. } => -1.0,
            _ => 1.0,
        }
    }

    /// d c_noise / dt: the chain-rule factor a time tangent picks up on its way into the
    /// network ([`crate::model::Model::jvp`]).
    pub fn c_noise_deriv(&self, t: f64) -> f64 {
        match self {
            Precond::Consistency { .. } | Precond::Edm { .. } | Precond::Ctm { .. } => 0.25 / t,
            // d/dt ¼ ln(σ_d tan t) = ¼ sec² t / tan t = ¼ / (sin t cos t).
            Precond::TrigFlow { edm_net: true, .. } => 0.25 / (t.sin() * t.cos()),
            Precond::TrigFlow { .. } | Precond::Raw => 1.0,
        }
    }

    /// Whether c_in does not depend on t (TrigFlow, raw), so that the network input's tangent
    /// is c_in·dx alone.
    pub fn c_in_is_constant(&self) -> bool {
        matches!(self, Precond::TrigFlow { .. } | Precond::Raw)
    }

    /// The coefficients c_skip, c_out, c_in, c_noise for each time in `t`, one entry per sample
    /// (computed in f64).
    pub fn coeffs(&self, t: &[f64]) -> Coeffs {
        let n = t.len();
        let mut c = Coeffs {
            c_skip: Vec::with_capacity(n),
            c_out: Vec::with_capacity(n),
            c_in: Vec::with_capacity(n),
            c_noise: Vec::with_capacity(n),
        };
        for &s in t {
            let (skip, out, inp) = match *self {
                Precond::Consistency { sigma_d, eps } => {
                    let sd2 = sigma_d * sigma_d;
                    (
                        sd2 / ((s - eps).powi(2) + sd2),
                        sigma_d * (s - eps) / (sd2 + s * s).sqrt(),
                        1.0 / (s * s + sd2).sqrt(),
                    )
                }
                Precond::Edm { sigma_d } | Precond::Ctm { sigma_d } => {
                    let sd2 = sigma_d * sigma_d;
                    (
                        sd2 / (s * s + sd2),
                        s * sigma_d / (s * s + sd2).sqrt(),
                        1.0 / (s * s + sd2).sqrt(),
                    )
                }
                Precond::TrigFlow { sigma_d, velocity, .. } => {
                    // c_out multiplies the backbone's output, which is F·raw_sign.
                    let sign = self.raw_sign();
                    if velocity {
                        (0.0, sign * sigma_d, 1.0 / sigma_d)
                    } else {
                        (s.cos(), -sign * s.sin() * sigma_d, 1.0 / sigma_d)
                    }
                }
                Precond::Raw => (0.0, 1.0, 1.0),
            };
            c.c_skip.push(skip);
            c.c_out.push(out);
            c.c_in.push(inp);
            c.c_noise.push(self.c_noise(s));
        }
        c
    }

    /// σ_d, the data's standard deviation the parameterisation was built with; 1 for
    /// [`Precond::Raw`], which has none.
    pub fn sigma_d(&self) -> f64 {
        match *self {
            Precond::Consistency { sigma_d, .. }
            | Precond::Edm { sigma_d }
            | Precond::Ctm { sigma_d }
            | Precond::TrigFlow { sigma_d, .. } => sigma_d,
            Precond::Raw => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_boundary_is_identity() {
        let p = Precond::Consistency {
            sigma_d: 0.5,
            eps: 0.002,
        };
        let c = p.coeffs(&[0.002]);
        assert_eq!(c.c_skip[0], 1.0);
        assert_eq!(c.c_out[0], 0.0);
    }

    #[test]
    fn edm_coefficients_match_karras_table1() {
        let p = Precond::Edm { sigma_d: 0.5 };
        let c = p.coeffs(&[1.0]);
        assert!((c.c_skip[0] - 0.25 / 1.25).abs() < 1e-15);
        assert!((c.c_out[0] - 0.5 / 1.25f64.sqrt()).abs() < 1e-15);
        assert!((c.c_in[0] - 1.0 / 1.25f64.sqrt()).abs() < 1e-15);
        assert_eq!(c.c_noise[0], 0.0);
        // Large σ: the denoiser's skip vanishes, the output scale tends to σ_d.
        let c = p.coeffs(&[1e4]);
        assert!(c.c_skip[0] < 1e-8 && (c.c_out[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn trigflow_boundary_is_identity() {
        let p = Precond::TrigFlow {
            sigma_d: 0.5,
            velocity: false,
            edm_net: false,
        };
        let c = p.coeffs(&[0.0]);
        assert_eq!(c.c_skip[0], 1.0);
        assert_eq!(c.c_out[0], 0.0);
    }
}
