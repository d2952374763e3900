//! Fused element-wise kernels for f32 tensors on the flex CPU backend, as burn backend
//! extensions with their own backward passes: SiLU and GroupNorm.
//!
//! Why: burn-flex evaluates SiLU as sigmoid (a scalar libm `expf` loop) times x, and GroupNorm
//! as ~9 separate tensor ops, each a full pass over memory with its own allocation, plus about
//! twice as many in the autodiff backward. In the MNIST U-Net these passes cost more than the
//! convolutions once those were fast (`examples/unetprof.rs` under `perf`). Each kernel here is
//! one parallel pass forward and one backward. Callers ([`silu`], [`group_norm`]) fall back to
//! burn's own ops for other dtypes and backends (the f64 tests, GPU builds); tests compare the
//! two paths, values and gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::{activation, DType};
use burn_flex::FlexTensor;
use rayon::prelude::*;
use std::borrow::Cow;

/// Elements per parallel task of the element-wise loops.
const CHUNK: usize = 1 << 14;

#[backend_extension(Flex, Autodiff)]
pub trait FusedBackend: Backend {
    /// x·σ(x).
    fn cm_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// GroupNorm of x [B, C, N] over `groups` contiguous channel groups, then γ[c]·x̂ + β[c].
    fn cm_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> FloatTensor<Self>;
}

/// Contiguous f32 view of a flex tensor (copying only when it is strided).
pub(crate) fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32 tensor").to_vec()),
    }
}

pub(crate) fn flex_tensor(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// Whether a tensor is f32 on the flex backend (directly or under autodiff), i.e. whether the
/// fused kernels apply.
pub fn fusable<const D: usize>(t: &Tensor<D>) -> bool {
    use burn::backend::DispatchTensorKind as K;
    fn kind_is_flex(k: &K) -> bool {
        match k {
            K::Flex(_) => true,
            K::Autodiff(inner) => kind_is_flex(inner),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
    t.dtype() == DType::F32 && kind_is_flex(&t.clone().into_dispatch().kind)
}

/// The flex primitive of a fusable tensor (shares its storage; no copy).
pub fn flex_primitive<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if let Ok(p) = t.clone().try_into_primitive::<Flex>() {
        return Some(p);
    }
    t.clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()
        .map(|p| p.primitive().clone())
}

/// Applies `f(x) -> (a, b)` element-wise in parallel, returning both outputs.
fn par_map2(x: &[f32], f: impl Fn(f32) -> (f32, f32) + Sync) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks_mut(CHUNK))
        .zip(x.par_chunks(CHUNK))
        .for_each(|((a, b), x)| {
            for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(x) {
                (*a, *b) = f(x);
            }
        });
    (a, b)
}

/// (SiLU(x), SiLU'(x)) of a flex f32 tensor, in parallel.
pub(crate) fn silu_and_derivative(x: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = x.layout().shape().to_vec();
    let (y, d) = par_map2(&f32s(x), super::silu_one);
    (flex_tensor(y, shape.clone()), flex_tensor(d, shape))
}

fn silu_forward(x: &FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().to_vec();
    let xs = f32s(x);
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = super::silu_one(x).0;
        }
    });
    flex_tensor(y, shape)
}

fn mul(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let shape = a.layout().shape().to_vec();
    let (a, b) = (f32s(a), f32s(b));
    let mut y = vec![0.0f32; a.len()];
    y.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .for_each(|((y, a), b)| {
            for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
                *y = a * b;
            }
        });
    flex_tensor(y, shape)
}

impl FusedBackend for Flex {
    fn cm_silu(x: FlexTensor) -> FlexTensor {
        silu_forward(&x)
    }
    fn cm_group_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, groups: usize, eps: f64) -> FlexTensor {
        gn_forward(&x, &gamma, &beta, groups, eps).0
    }
}

#[derive(Debug)]
struct SiluBackward;

impl Backward<Flex, 1> for SiluBackward {
    /// SiLU'(x), computed in the forward pass.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            grads.register::<Flex>(node.id, mul(&g, &ops.state));
        }
    }
}

#[derive(Debug)]
struct GroupNormBackward;

/// What the GroupNorm backward needs: x, γ, per-(sample, group) mean and 1/s, the group count.
type GnState = (FlexTensor, FlexTensor, Vec<f32>, Vec<f32>, usize);

impl Backward<Flex, 3> for GroupNormBackward {
    type State = GnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, ng, nb] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (x, gamma, mu, rstd, groups) = ops.state;
        let (dx, dgamma, dbeta) = gn_backward(&x, &gamma, &g, &mu, &rstd, groups);
        if let Some(node) = nx {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = ng {
            grads.register::<Flex>(node.id, dgamma);
        }
        if let Some(node) = nb {
            grads.register::<Flex>(node.id, dbeta);
        }
    }
}

impl<C: CheckpointStrategy> FusedBackend for Autodiff<Flex, C> {
    fn cm_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SiluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, d) = silu_and_derivative(x.primitive());
                prep.finish(d, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(silu_forward(x.primitive())),
        }
    }
    fn cm_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> FloatTensor<Self> {
        match GroupNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, gp) = (x.primitive().clone(), gamma.primitive().clone());
                let (y, mu, rstd) = gn_forward(&xp, &gp, beta.primitive(), groups, eps);
                prep.finish((xp, gp, mu, rstd, groups), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(gn_forward(x.primitive(), gamma.primitive(), beta.primitive(), groups, eps).0)
            }
        }
    }
}

/// SiLU: the fused kernel for f32 flex tensors (plain or autodiff), burn's otherwise.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !fusable(&x) {
        return activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedBackend>::cm_silu(x.into_dispatch()))
}

/// GroupNorm of x [B, C, H, W] with `groups` groups and affine γ, β [C], ε inside the root:
/// y = γ·(x − μ)/√(var + ε) + β with μ, var per (sample, group).
pub fn group_norm(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, groups: usize, eps: f64) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    if !fusable(&x) || !fusable(&gamma) {
        let xr = x.reshape([b, groups, c / groups * h * w]);
        let xc = xr.clone() - xr.mean_dim(2);
        let s = xc.clone().square().mean_dim(2).add_scalar(eps).sqrt();
        let xh = (xc / s).reshape([b, c, h, w]);
        return xh * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1]);
    }
    let y = <Dispatch as FusedBackend>::cm_group_norm(
        x.reshape([b, c, h * w]).into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        groups,
        eps,
    );
    Tensor::<3>::from_dispatch(y).reshape([b, c, h, w])
}

/// GroupNorm forward on x [B, C, N]: (y, mean, 1/s) with one (mean, 1/s) per (sample, group).
fn gn_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    groups: usize,
    eps: f64,
) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let shape = x.layout().shape().to_vec();
    let (c, n) = (shape[1], shape[2..].iter().product::<usize>());
    assert!(
        groups > 0 && c % groups == 0,
        "group_norm: {c} channels, {groups} groups"
    );
    let (xs, gs, bs) = (f32s(x), f32s(gamma), f32s(beta));
    let cg = c / groups;
    let seg = cg * n;
    let segs = xs.len() / seg;
    let mut y = vec![0.0f32; xs.len()];
    let mut stats = vec![(0.0f32, 0.0f32); segs];
    y.par_chunks_mut(seg)
        .zip(xs.par_chunks(seg))
        .zip(stats.par_iter_mut())
        .enumerate()
        .for_each(|(i, ((y, x), st))| {
            // Two passes in f64: the mean, then the centred second moment.
            let mu = x.iter().map(|&v| v as f64).sum::<f64>() / seg as f64;
            let var = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / seg as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let (mu, rstd) = (mu as f32, rstd as f32);
            *st = (mu, rstd);
            let c0 = (i % groups) * cg;
            for (j, (y, x)) in y.chunks_mut(n).zip(x.chunks(n)).enumerate() {
                let (a, b) = (gs[c0 + j] * rstd, bs[c0 + j]);
                let off = b - a * mu;
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = a * x + off;
                }
            }
        });
    let (mu, rstd) = stats.into_iter().unzip();
    (flex_tensor(y, shape), mu, rstd)
}

/// GroupNorm backward: with x̂ = (x − μ)/s and h = g·γ per group,
/// ∂x = (h − mean(h) − x̂·mean(h·x̂))/s, ∂γ[c] = Σ g·x̂, ∂β[c] = Σ g.
fn gn_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    g: &FlexTensor,
    mu: &[f32],
    rstd: &[f32],
    groups: usize,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.layout().shape().to_vec();
    let (c, n) = (shape[1], shape[2..].iter().product::<usize>());
    let (xs, gam, gs) = (f32s(x), f32s(gamma), f32s(g));
    let cg = c / groups;
    let seg = cg * n;
    let mut dx = vec![0.0f32; xs.len()];
    // Per (sample, group): the per-channel partial sums of g·x̂ and g.
    let mut parts = vec![(Vec::new(), Vec::new()); xs.len() / seg];
    dx.par_chunks_mut(seg)
        .zip(xs.par_chunks(seg))
        .zip(gs.par_chunks(seg))
        .zip(parts.par_iter_mut())
        .enumerate()
        .for_each(|(i, (((dx, x), g), part))| {
            let (m, r) = (mu[i], rstd[i]);
            let c0 = (i % groups) * cg;
            let (mut sh, mut shx) = (0.0f64, 0.0f64);
            let (mut dg, mut db) = (vec![0.0f32; cg], vec![0.0f32; cg]);
            for (j, (x, g)) in x.chunks(n).zip(g.chunks(n)).enumerate() {
                let ga = gam[c0 + j];
                let (mut sgx, mut sg) = (0.0f64, 0.0f64);
                for (&x, &g) in x.iter().zip(g) {
                    let xh = (x - m) * r;
                    sgx += (g * xh) as f64;
                    sg += g as f64;
                }
                dg[j] = sgx as f32;
                db[j] = sg as f32;
                sh += ga as f64 * sg;
                shx += ga as f64 * sgx;
            }
            let (m1, m2) = ((sh / seg as f64) as f32, (shx / seg as f64) as f32);
            for (j, ((dx, x), g)) in dx.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)).enumerate() {
                let ga = gam[c0 + j];
                for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
                    let xh = (x - m) * r;
                    *dx = (g * ga - m1 - xh * m2) * r;
                }
            }
            *part = (dg, db);
        });
    let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
    for (i, (dg, db)) in parts.iter().enumerate() {
        let c0 = (i % groups) * cg;
        for j in 0..cg {
            dgamma[c0 + j] += dg[j];
            dbeta[c0 + j] += db[j];
        }
    }
    (
        flex_tensor(dx, shape),
        flex_tensor(dgamma, vec![c]),
        flex_tensor(dbeta, vec![c]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::to_vec;
    use crate::rng::Rng;

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// The fused GroupNorm's value and gradients (x, γ, β) match burn's ops composed the same
    /// way, on odd sizes, a strided input and inputs with a large common offset.
    #[test]
    fn group_norm_matches_burn_ops() {
        let dev = Device::flex();
        let mut rng = Rng::new(3);
        for &(b, c, h, w, groups, offset, strided) in &[
            (2usize, 4usize, 3usize, 5usize, 2usize, 0.0f64, false),
            (3, 6, 4, 4, 3, 5.0, true),
            (1, 8, 7, 1, 8, -3.0, false),
            (5, 12, 2, 3, 1, 0.0, false),
        ] {
            let x = if strided {
                rng.normal_tensor([b, h, c, w], &dev).swap_dims(1, 2)
            } else {
                rng.normal_tensor([b, c, h, w], &dev)
            }
            .add_scalar(offset);
            let gamma = rng.normal_tensor([c], &dev);
            let beta = rng.normal_tensor([c], &dev);
            let up = rng.normal_tensor([b, c, h, w], &dev);
            let run = |fused: bool| {
                let (xa, ga, ba) = (
                    x.clone().autodiff().require_grad(),
                    gamma.clone().autodiff().require_grad(),
                    beta.clone().autodiff().require_grad(),
                );
                let y = if fused {
                    group_norm(xa.clone(), ga.clone(), ba.clone(), groups, 1e-5)
                } else {
                    let xr = xa.clone().reshape([b, groups, c / groups * h * w]);
                    let xc = xr.clone() - xr.mean_dim(2);
                    let s = xc.clone().square().mean_dim(2).add_scalar(1e-5).sqrt();
                    (xc / s).reshape([b, c, h, w]) * ga.clone().reshape([1, c, 1, 1]) + ba.clone().reshape([1, c, 1, 1])
                };
                let yv = to_vec(y.clone().detach());
                let grads = (y * up.clone().autodiff()).sum().backward();
                [
                    yv,
                    to_vec(xa.grad(&grads).unwrap()),
                    to_vec(ga.grad(&grads).unwrap()),
                    to_vec(ba.grad(&grads).unwrap()),
                ]
            };
            let (f, r) = (run(true), run(false));
            for (k, name) in ["y", "dx", "dgamma", "dbeta"].iter().enumerate() {
                let e = max_abs_diff(&f[k], &r[k]);
                assert!(
                    e < 2e-4,
                    "b{b} c{c} {h}x{w} g{groups} offset {offset}: {name} differs by {e}"
                );
            }
            let plain = to_vec(group_norm(x.clone(), gamma.clone(), beta.clone(), groups, 1e-5));
            assert!(max_abs_diff(&plain, &f[0]) < 1e-6);
        }
    }

    /// The fused SiLU's value and gradient match burn's silu (4-D, strided).
    #[test]
    fn silu_matches_burn_silu() {
        let dev = Device::flex();
        let x = Rng::new(8)
            .normal_tensor([3, 5, 4, 7], &dev)
            .mul_scalar(4.0)
            .swap_dims(1, 3);
        let run = |fused: bool| {
            let xa = x.clone().autodiff().require_grad();
            let y = if fused {
                silu(xa.clone())
            } else {
                activation::silu(xa.clone())
            };
            let yv = to_vec(y.clone().detach());
            let g = (y * x.clone().autodiff().cos()).sum().backward();
            (yv, to_vec(xa.grad(&g).unwrap()))
        };
        let (f, r) = (run(true), run(false));
        assert!(max_abs_diff(&f.0, &r.0) < 1e-5, "value");
        assert!(max_abs_diff(&f.1, &r.1) < 1e-5, "gradient");
    }
}
