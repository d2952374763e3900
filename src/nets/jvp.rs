//! JVP dispatch: the backbone's exact tangent pass or the central finite-difference fallback
//! (METHODS.md §3), used by the continuous-time methods through [`crate::model::Model::jvp`].

use super::{Backbone, Masks};
use crate::tensor::{col, to_vec64};
use burn::prelude::*;

/// How an objective computes a JVP: the backbone's exact tangent pass, or the central
/// finite-difference fallback [`fd_jvp`] (METHODS.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JvpMode {
    /// `exact`: the backbone's forward-mode tangent pass, [`Backbone::jvp`].
    Exact,
    /// `finite-difference`: the f64 central difference of [`fd_jvp`], kept as an option next
    /// to the exact pass.
    FiniteDifference,
}

/// JVP by the chosen mode (see [`Backbone::jvp`] and [`fd_jvp`]).
pub fn jvp_with(
    mode: JvpMode,
    net: &dyn Backbone,
    p: &[Tensor<1>],
    x: Tensor<2>,
    dx: Tensor<2>,
    cond: &[Tensor<2>],
    dcond: &[Tensor<2>],
    masks: Option<&Masks>,
) -> (Tensor<2>, Tensor<2>) {
    match mode {
        JvpMode::Exact => net.jvp(p, x, dx, cond, dcond, masks),
        JvpMode::FiniteDifference => fd_jvp(net, p, x, dx, cond, dcond, masks),
    }
}

/// Finite-difference fallback for [`Backbone::jvp`] (METHODS.md §3): central difference in
/// f64 on the no-grad network, per-sample step h = max(1e-3·|t|, 1e-6) with |t| the largest
/// time input of the sample, the same dropout masks on both sides. Returns (F, dF) in the dtype
/// of `x`. Class labels after the time inputs (see [`Backbone`]) are held fixed.
pub fn fd_jvp(
    net: &dyn Backbone,
    p: &[Tensor<1>],
    x: Tensor<2>,
    dx: Tensor<2>,
    cond: &[Tensor<2>],
    dcond: &[Tensor<2>],
    masks: Option<&Masks>,
) -> (Tensor<2>, Tensor<2>) {
    let b = x.dims()[0];
    let mut tmax = vec![0.0f64; b];
    for c in cond.iter().take(net.n_times()) {
        for (m, v) in tmax.iter_mut().zip(to_vec64(c.clone())) {
            *m = m.max(v.abs());
        }
    }
    let h: Vec<f64> = tmax.iter().map(|t| (1e-3 * t).max(1e-6)).collect();
    fd_jvp_steps(net, p, x, dx, cond, dcond, masks, &h)
}

/// [`fd_jvp`] with explicit per-sample steps `h`.
#[allow(clippy::too_many_arguments)]
pub fn fd_jvp_steps(
    net: &dyn Backbone,
    p: &[Tensor<1>],
    x: Tensor<2>,
    dx: Tensor<2>,
    cond: &[Tensor<2>],
    dcond: &[Tensor<2>],
    masks: Option<&Masks>,
    h: &[f64],
) -> (Tensor<2>, Tensor<2>) {
    use burn::tensor::DType;
    let dtype = x.dtype();
    let p64: Vec<Tensor<1>> = p.iter().map(|t| t.clone().cast(DType::F64)).collect();
    let m64 = masks.map(|m| Masks(m.0.iter().map(|t| t.clone().cast(DType::F64)).collect()));
    let x64 = x.cast(DType::F64);
    let dx64 = dx.cast(DType::F64);
    let hc = col(h, &x64);
    let inv2h: Vec<f64> = h.iter().map(|h| 0.5 / h).collect();
    let shifted = |sign: f64| -> (Tensor<2>, Vec<Tensor<2>>) {
        let xs = x64.clone() + dx64.clone() * hc.clone().mul_scalar(sign);
        // Time inputs move along their tangents; class labels (after them) stay fixed.
        let cs = cond
            .iter()
            .enumerate()
            .map(|(k, c)| match dcond.get(k).filter(|_| k < net.n_times()) {
                Some(dc) => c.clone().cast(DType::F64) + dc.clone().cast(DType::F64) * hc.clone().mul_scalar(sign),
                None => c.clone().cast(DType::F64),
            })
            .collect();
        (xs, cs)
    };
    let (xp, cp) = shifted(1.0);
    let (xm, cm) = shifted(-1.0);
    let plus = net.forward(&p64, xp, &cp, m64.as_ref());
    let minus = net.forward(&p64, xm, &cm, m64.as_ref());
    let d = (plus - minus) * col(&inv2h, &x64);
    let c64: Vec<Tensor<2>> = cond.iter().map(|c| c.clone().cast(DType::F64)).collect();
    let y = net.forward(&p64, x64, &c64, m64.as_ref());
    (y.cast(dtype), d.cast(dtype))
}
