//! `Dual<D>`: an activation with an optional tangent, so that a backbone's forward pass is its
//! tangent (JVP) pass without a tangent (burn has no forward-mode AD; METHODS.md §3).

use burn::prelude::*;

/// An activation with an optional tangent.
#[derive(Clone, Debug)]
pub struct Dual<const D: usize> {
    pub v: Tensor<D>,
    pub d: Option<Tensor<D>>,
}

impl<const D: usize> Dual<D> {
    pub fn new(v: Tensor<D>, d: Option<Tensor<D>>) -> Self {
        Self { v, d }
    }
    pub fn map_lin(self, f: impl Fn(Tensor<D>) -> Tensor<D>) -> Self {
        Self {
            v: f(self.v),
            d: self.d.map(f),
        }
    }
    pub fn add(self, o: Self) -> Self {
        let d = match (self.d, o.d) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Self { v: self.v + o.v, d }
    }
    pub fn scale(self, s: f64) -> Self {
        self.map_lin(|t| t.mul_scalar(s))
    }
    pub fn mask(self, m: Tensor<D>) -> Self {
        self.map_lin(|t| t * m.clone())
    }
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
