//! `Dual<D>`: an activation with an optional tangent, so that a backbone's forward pass is its
//! tangent (JVP) pass without a tangent (burn has no forward-mode AD; METHODS.md §3).

use super::{pixel_norm, pixel_norm_jvp, Linear};
use burn::prelude::*;

/// An activation with an optional tangent.
#[derive(Clone, Debug)]
pub struct Dual<const D: usize> {
    /// The value (primal).
    pub v: Tensor<D>,
    /// Its tangent along the JVP direction; None when the value is constant along it (or in
    /// a plain forward pass), which stands for a zero tangent without computing one.
    pub d: Option<Tensor<D>>,
}

impl<const D: usize> Dual<D> {
    /// A value with the given tangent (None = zero / no tangent).
    pub fn new(v: Tensor<D>, d: Option<Tensor<D>>) -> Self {
        Self { v, d }
    }
    /// Applies a *linear* map `f` to the value and the tangent alike (correct only because f
    /// is linear: its tangent is f(d)).
    pub fn map_lin(self, f: impl Fn(Tensor<D>) -> Tensor<D>) -> Self {
        Self {
            v: f(self.v),
            d: self.d.map(f),
        }
    }
    /// Sum of two duals; a missing tangent counts as zero.
    pub fn add(self, o: Self) -> Self {
        let d = match (self.d, o.d) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Self { v: self.v + o.v, d }
    }
    /// Multiplication by the constant `s` (value and tangent).
    pub fn scale(self, s: f64) -> Self {
        self.map_lin(|t| t.mul_scalar(s))
    }
    /// Element-wise product with a constant mask `m` (dropout), value and tangent.
    pub fn mask(self, m: Tensor<D>) -> Self {
        self.map_lin(|t| t * m.clone())
    }
    /// Reshapes value and tangent to `shape`.
    pub fn reshape<const E: usize>(self, shape: [usize; E]) -> Dual<E> {
        Dual {
            v: self.v.reshape(shape),
            d: self.d.map(|t| t.reshape(shape)),
        }
    }
    /// SiLU through [`crate::nets::silu`] / [`crate::nets::silu_jvp`] (vectorised f32 path).
    pub fn silu(self) -> Self {
        match self.d {
            None => Self::new(crate::nets::silu(self.v), None),
            Some(d) => {
                let (v, d) = crate::nets::silu_jvp(self.v, d);
                Self::new(v, Some(d))
            }
        }
    }
}

/// Concatenation of `a` and `b` along `dim`; when only one side has a tangent, the other's is
/// taken as zeros of its shape.
pub fn cat<const D: usize>(a: Dual<D>, b: Dual<D>, dim: usize) -> Dual<D> {
    let d = match (a.d, b.d) {
        (Some(x), Some(y)) => Some(Tensor::cat(vec![x, y], dim)),
        (None, None) => None,
        (x, y) => {
            // One side constant: its tangent is zero.
            let (av, bv) = (a.v.clone(), b.v.clone());
            Some(Tensor::cat(
                vec![x.unwrap_or(av.zeros_like()), y.unwrap_or(bv.zeros_like())],
                dim,
            ))
        }
    };
    Dual {
        v: Tensor::cat(vec![a.v, b.v], dim),
        d,
    }
}

/// Pixel norm over the feature axis ([`pixel_norm`]) with its tangent ([`pixel_norm_jvp`]).
pub fn pixel_norm_dual(x: Dual<2>) -> Dual<2> {
    match x.d {
        None => Dual::new(pixel_norm(x.v), None),
        Some(d) => {
            let (v, d) = pixel_norm_jvp(x.v, d);
            Dual::new(v, Some(d))
        }
    }
}

/// The dense layer `l` on a dual: value x·W + b, tangent dx·W.
pub fn linear(l: &Linear, p: &[Tensor<1>], x: Dual<2>) -> Dual<2> {
    Dual {
        v: l.forward(p, x.v),
        d: x.d.map(|d| l.tangent(p, d)),
    }
}
