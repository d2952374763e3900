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

use super::{alloc_init, assume_init_mut, f32s, flex_tensor, fusable, simd};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::activation;
use burn_flex::FlexTensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Defines `fn $name(args) -> ret` that runs `$body(args)` (an `#[inline(always)]` function)
/// compiled for AVX-512 or AVX2+FMA when the CPU has them. Unlike [`simd`], whose closure the
/// optimiser may decline to inline (it then runs at the baseline ISA), `#[inline(always)]`
/// guarantees the body is compiled inside each target-feature copy.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
                    // SAFETY: the CPU supports the features v4 is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3.
                    return unsafe { v3($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// Elements per parallel task of the element-wise loops.
const CHUNK: usize = 1 << 14;

/// The backend extension behind [`silu`], [`group_norm`], [`up2`] and [`down2`]: one
/// parallel pass forward and one backward per op on flex and its autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBackend: Backend {
    /// x·σ(x).
    fn cm_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// GroupNorm of x [B, C, N] over `groups` contiguous channel groups, then γ\[c\]·x̂ + β\[c\],
    /// then SiLU when `act`.
    fn cm_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        act: bool,
    ) -> FloatTensor<Self>;
    /// Nearest-neighbour ×2 up-sampling of x [B, C, H, W] (`up`) or 2×2 average pooling
    /// (`!up`); each is (up to the factor 4) the adjoint of the other.
    fn cm_resample2(x: FloatTensor<Self>, up: bool) -> FloatTensor<Self>;
    /// As [`FusedBackend::cm_group_norm`] with a per-sample modulation m = [scale | shift]
    /// [B, 2C] between the normalisation and the activation: n·(1 + scale) + shift.
    fn cm_group_norm_mod(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        m: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        act: bool,
    ) -> FloatTensor<Self>;
}

/// One element of SiLU and its derivative: (x·σ(x), σ(x)(1 + x(1 − σ(x)))), σ(x) = 1/(1 + e^{−x})
/// with e^t by Cody–Waite reduction t = n ln 2 + r, |r| ≤ ln2/2, a degree-7 Taylor polynomial
/// and 2^n by exponent bits (relative error ≈ 1e-7, tested against burn's sigmoid). t is
/// clamped to [−87, 88], where σ is 0 or 1 to f32 precision anyway. Branch-free, so the loops of
/// [`fused`] that call it vectorise.
#[inline(always)]
pub(crate) fn silu_one(x: f32) -> (f32, f32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    {
        let t = (-x).clamp(-87.0, 88.0);
        let k = t * LOG2E + MAGIC;
        let n = k - MAGIC;
        // n as an integer straight from k's bits (k = 1.5·2^23 + n exactly): no float→int cast,
        // whose saturation checks keep the loop from vectorising.
        let ni = k.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
        let r = (t - n * LN2_HI) - n * LN2_LO;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
        let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
        let s = 1.0 / (1.0 + p * scale);
        (x * s, s * (1.0 + x * (1.0 - s)))
    }
}

/// Applies `f(x) -> (a, b)` element-wise in parallel, returning both outputs.
fn par_map2(x: &[f32], f: impl Fn(f32) -> (f32, f32) + Sync) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let mut b = Vec::with_capacity(n);
    let bu = &mut b.spare_capacity_mut()[..n];
    // SAFETY: the zipped loop writes every element of `a` and of `b` (same length as x).
    let a = unsafe {
        alloc_init(n, |a| {
            a.par_chunks_mut(CHUNK)
                .zip(bu.par_chunks_mut(CHUNK))
                .zip(x.par_chunks(CHUNK))
                .for_each(|((a, b), x)| {
                    simd(|| {
                        for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(x) {
                            let (u, v) = f(x);
                            a.write(u);
                            b.write(v);
                        }
                    })
                })
        })
    };
    // SAFETY: as above.
    unsafe { b.set_len(n) };
    (a, b)
}

/// (SiLU(x), SiLU'(x)) of a flex f32 tensor, in parallel.
pub(crate) fn silu_and_derivative(x: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = x.layout().shape().to_vec();
    let (y, d) = par_map2(&f32s(x), silu_one);
    (flex_tensor(y, shape.clone()), flex_tensor(d, shape))
}

fn silu_forward(x: &FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().to_vec();
    let xs = f32s(x);
    // SAFETY: every output element is written.
    let y = unsafe {
        alloc_init(xs.len(), |y| {
            y.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(y, x)| {
                simd(|| {
                    for (y, &x) in y.iter_mut().zip(x) {
                        y.write(silu_one(x).0);
                    }
                })
            })
        })
    };
    flex_tensor(y, shape)
}

fn mul(a: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let shape = a.layout().shape().to_vec();
    let (a, b) = (f32s(a), f32s(b));
    // SAFETY: every output element is written.
    let y = unsafe {
        alloc_init(a.len(), |y| {
            y.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK))
                .zip(b.par_chunks(CHUNK))
                .for_each(|((y, a), b)| {
                    simd(|| {
                        for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
                            y.write(a * b);
                        }
                    })
                })
        })
    };
    flex_tensor(y, shape)
}

impl FusedBackend for Flex {
    fn cm_silu(x: FlexTensor) -> FlexTensor {
        silu_forward(&x)
    }
    fn cm_resample2(x: FlexTensor, up: bool) -> FlexTensor {
        resample2(&x, up, 1.0)
    }
    fn cm_group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f64,
        act: bool,
    ) -> FlexTensor {
        gn_forward(&x, &gamma, &beta, None, Gn { groups, eps, act }).0
    }
    fn cm_group_norm_mod(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        m: FlexTensor,
        groups: usize,
        eps: f64,
        act: bool,
    ) -> FlexTensor {
        gn_forward(&x, &gamma, &beta, Some(&m), Gn { groups, eps, act }).0
    }
}

#[derive(Debug)]
struct ResampleBackward;

impl Backward<Flex, 1> for ResampleBackward {
    /// Whether the forward up-sampled.
    type State = bool;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            // The adjoint of copying each pixel to a 2×2 block is summing the block (4 × the
            // average); that of averaging a block is spreading g/4 over it.
            let dx = if ops.state {
                resample2(&g, false, 4.0)
            } else {
                resample2(&g, true, 0.25)
            };
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// ×2 nearest up-sampling (`up`) or 2×2 average pooling of x [B, C, H, W], times `scale`.
fn resample2(x: &FlexTensor, up: bool, scale: f32) -> FlexTensor {
    let shape = x.layout().shape().to_vec();
    let (bc, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let xs = f32s(x);
    let (oh, ow) = if up { (2 * h, 2 * w) } else { (h / 2, w / 2) };
    // SAFETY: up-sampling writes both output rows of every input row, pooling every output.
    let y = unsafe {
        alloc_init(bc * oh * ow, |y| {
            y.par_chunks_mut(oh * ow).zip(xs.par_chunks(h * w)).for_each(|(y, x)| {
                if up {
                    for (i, row) in x.chunks(w).enumerate() {
                        let (top, bottom) = y[2 * i * ow..(2 * i + 2) * ow].split_at_mut(ow);
                        for ((t, b), &v) in top.chunks_exact_mut(2).zip(bottom.chunks_exact_mut(2)).zip(row) {
                            let v = v * scale;
                            for o in t.iter_mut().chain(b.iter_mut()) {
                                o.write(v);
                            }
                        }
                    }
                } else {
                    let s = 0.25 * scale;
                    for (i, out) in y.chunks_mut(ow).enumerate() {
                        let (r0, r1) = (&x[2 * i * w..(2 * i + 1) * w], &x[(2 * i + 1) * w..(2 * i + 2) * w]);
                        for (j, o) in out.iter_mut().enumerate() {
                            o.write(s * (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]));
                        }
                    }
                }
            })
        })
    };
    flex_tensor(y, vec![shape[0], shape[1], oh, ow])
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

/// The fused GroupNorm's settings.
#[derive(Clone, Copy, Debug)]
struct Gn {
    groups: usize,
    eps: f64,
    act: bool,
}

/// What the GroupNorm backward needs: x, γ, β, the modulation, per-(sample, group) mean and
/// 1/s, and the settings.
#[derive(Debug, Clone)]
struct GnState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    m: Option<FlexTensor>,
    mu: Vec<f32>,
    rstd: Vec<f32>,
    gn: Gn,
}

#[derive(Debug)]
struct GroupNormBackward;

impl Backward<Flex, 3> for GroupNormBackward {
    type State = GnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, ng, nb] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let [dx, dgamma, dbeta, _] = gn_backward(&ops.state, &g);
        for (node, grad) in [(nx, dx), (ng, dgamma), (nb, dbeta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct GroupNormModBackward;

impl Backward<Flex, 4> for GroupNormModBackward {
    type State = GnState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, ng, nb, nm] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let [dx, dgamma, dbeta, dm] = gn_backward(&ops.state, &g);
        for (node, grad) in [(nx, dx), (ng, dgamma), (nb, dbeta), (nm, dm)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

impl<C: CheckpointStrategy> FusedBackend for Autodiff<Flex, C> {
    fn cm_resample2(x: FloatTensor<Self>, up: bool) -> FloatTensor<Self> {
        match ResampleBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(up, resample2(x.primitive(), up, 1.0)),
            OpsKind::UnTracked(prep) => prep.finish(resample2(x.primitive(), up, 1.0)),
        }
    }
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
        act: bool,
    ) -> FloatTensor<Self> {
        let gn = Gn { groups, eps, act };
        match GroupNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, gp, bp) = (
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    beta.primitive().clone(),
                );
                let (y, mu, rstd) = gn_forward(&xp, &gp, &bp, None, gn);
                let st = GnState {
                    x: xp,
                    gamma: gp,
                    beta: bp,
                    m: None,
                    mu,
                    rstd,
                    gn,
                };
                prep.finish(st, y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(gn_forward(x.primitive(), gamma.primitive(), beta.primitive(), None, gn).0)
            }
        }
    }
    fn cm_group_norm_mod(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        m: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        act: bool,
    ) -> FloatTensor<Self> {
        let gn = Gn { groups, eps, act };
        match GroupNormModBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node(), m.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, gp, bp) = (
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    beta.primitive().clone(),
                );
                let mp = m.primitive().clone();
                let (y, mu, rstd) = gn_forward(&xp, &gp, &bp, Some(&mp), gn);
                let st = GnState {
                    x: xp,
                    gamma: gp,
                    beta: bp,
                    m: Some(mp),
                    mu,
                    rstd,
                    gn,
                };
                prep.finish(st, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                gn_forward(
                    x.primitive(),
                    gamma.primitive(),
                    beta.primitive(),
                    Some(m.primitive()),
                    gn,
                )
                .0,
            ),
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

/// ×2 nearest-neighbour up-sampling of x [B, C, H, W]: the fused kernel for f32 flex tensors,
/// burn's repeat otherwise.
pub fn up2(x: Tensor<4>) -> Tensor<4> {
    if fusable(&x) {
        return Tensor::from_dispatch(<Dispatch as FusedBackend>::cm_resample2(x.into_dispatch(), true));
    }
    let [b, c, h, w] = x.dims();
    x.reshape([b * c * h, 1, w, 1])
        .repeat_dim(1, 2)
        .repeat_dim(3, 2)
        .reshape([b, c, 2 * h, 2 * w])
}

/// 2×2 average pooling of x [B, C, H, W] (H, W even): fused for f32 flex tensors, burn's
/// reshape-and-mean otherwise.
pub fn down2(x: Tensor<4>) -> Tensor<4> {
    if fusable(&x) {
        return Tensor::from_dispatch(<Dispatch as FusedBackend>::cm_resample2(x.into_dispatch(), false));
    }
    let [b, c, h, w] = x.dims();
    x.reshape([b * c * (h / 2), 2, w / 2, 2])
        .mean_dim(3)
        .mean_dim(1)
        .reshape([b, c, h / 2, w / 2])
}

/// GroupNorm of x [B, C, H, W] with `groups` groups and affine γ, β `[C]`, ε inside the root,
/// optionally modulated by m = [scale | shift] [B, 2C] and followed by SiLU:
/// n = γ·(x − μ)/√(var + ε) + β (μ, var per sample and group); a = n·(1 + scale) + shift;
/// y = SiLU(a) if `act`, else a. One fused pass for f32 flex tensors, burn's ops otherwise.
pub fn group_norm(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    m: Option<Tensor<2>>,
    groups: usize,
    eps: f64,
    act: bool,
) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    if !fusable(&x) || !fusable(&gamma) || m.as_ref().is_some_and(|m| !fusable(m)) {
        let xr = x.reshape([b, groups, c / groups * h * w]);
        let xc = xr.clone() - xr.mean_dim(2);
        let s = xc.clone().square().mean_dim(2).add_scalar(eps).sqrt();
        let mut y = (xc / s).reshape([b, c, h, w]) * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1]);
        if let Some(m) = m {
            let sc = m.clone().narrow(1, 0, c).reshape([b, c, 1, 1]);
            let sh = m.narrow(1, c, c).reshape([b, c, 1, 1]);
            y = y * sc.add_scalar(1.0) + sh;
        }
        return if act { activation::silu(y) } else { y };
    }
    let (x, gamma, beta) = (
        x.reshape([b, c, h * w]).into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
    );
    let y = match m {
        None => <Dispatch as FusedBackend>::cm_group_norm(x, gamma, beta, groups, eps, act),
        Some(m) => <Dispatch as FusedBackend>::cm_group_norm_mod(x, gamma, beta, m.into_dispatch(), groups, eps, act),
    };
    Tensor::<3>::from_dispatch(y).reshape([b, c, h, w])
}

/// The per-channel affine map of one (sample, group) segment: n = A·x + B0 with A = γ/s and
/// B0 = β − A·μ, then a = n·S + T with the modulation (S = 1 + scale, T = shift; 1, 0 without).
#[inline(always)]
fn channel_coeffs(st: (&[f32], &[f32], Option<&[f32]>), c: usize, ch: usize, b: usize, mu: f32, rstd: f32) -> [f32; 4] {
    let (gamma, beta, m) = st;
    let a = gamma[ch] * rstd;
    let b0 = beta[ch] - a * mu;
    let (s, t) = match m {
        Some(m) => (1.0 + m[b * 2 * c + ch], m[b * 2 * c + c + ch]),
        None => (1.0, 0.0),
    };
    [a, b0, s, t]
}

/// Lanes of the reductions below: independent f32 partial sums the compiler keeps in one
/// vector register (a single running sum is a serial dependency chain and does not vectorise),
/// added up in f64 at the end.
const LANES: usize = 16;

/// Σ f(x_i), accumulated in [`LANES`] f32 lanes.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + rest.iter().map(|&v| f(v) as f64).sum::<f64>()
}

/// For each i: (out_i, terms_i) = f(x_i, g_i); writes out_i and returns Σ terms_i (4 sums,
/// [`LANES`] f32 lanes each).
#[inline(always)]
fn lane_sums4(out: &mut [MaybeUninit<f32>], x: &[f32], g: &[f32], f: impl Fn(f32, f32) -> (f32, [f32; 4])) -> [f64; 4] {
    let mut acc = [[0.0f32; LANES]; 4];
    let mut tot = [0.0f64; 4];
    let n = x.len() / LANES * LANES;
    for ((o, x), g) in out[..n]
        .chunks_exact_mut(LANES)
        .zip(x[..n].chunks_exact(LANES))
        .zip(g[..n].chunks_exact(LANES))
    {
        for i in 0..LANES {
            let (v, t) = f(x[i], g[i]);
            o[i].write(v);
            for k in 0..4 {
                acc[k][i] += t[k];
            }
        }
    }
    for ((o, &x), &g) in out[n..].iter_mut().zip(&x[n..]).zip(&g[n..]) {
        let (v, t) = f(x, g);
        o.write(v);
        for k in 0..4 {
            tot[k] += t[k] as f64;
        }
    }
    for k in 0..4 {
        tot[k] += acc[k].iter().map(|&v| v as f64).sum::<f64>();
    }
    tot
}

/// Forward on x [B, C, N]: (y, mean, 1/s) with one (mean, 1/s) per (sample, group).
/// What the per-segment GroupNorm kernels share.
struct GnArgs<'a> {
    gamma: &'a [f32],
    beta: &'a [f32],
    m: Option<&'a [f32]>,
    c: usize,
    n: usize,
    gn: Gn,
}

fn gn_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    m: Option<&FlexTensor>,
    gn: Gn,
) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let shape = x.layout().shape().to_vec();
    let (c, n) = (shape[1], shape[2..].iter().product::<usize>());
    let groups = gn.groups;
    assert!(
        groups > 0 && c % groups == 0,
        "group_norm: {c} channels, {groups} groups"
    );
    let (xs, gs, bs) = (f32s(x), f32s(gamma), f32s(beta));
    let ms = m.map(f32s);
    let args = GnArgs {
        gamma: &gs,
        beta: &bs,
        m: ms.as_deref(),
        c,
        n,
        gn,
    };
    let seg = c / groups * n;
    let mut stats = vec![(0.0f32, 0.0f32); xs.len() / seg];
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(seg)
            .zip(xs.par_chunks(seg))
            .zip(stats.par_iter_mut())
            .enumerate()
            .for_each(|(i, ((y, x), st))| *st = gn_forward_segment(&args, i, y, x));
    };
    // SAFETY: each segment's kernel writes every element of its output channels.
    let y = unsafe { alloc_init(xs.len(), fill) };
    let (mu, rstd) = stats.into_iter().unzip();
    (flex_tensor(y, shape), mu, rstd)
}

multiversion! {
    /// One (sample, group) segment `i` of the forward pass; returns (mean, 1/s).
    fn gn_forward_segment(a: &GnArgs<'_>, i: usize, y: &mut [MaybeUninit<f32>], x: &[f32]) -> (f32, f32)
        => gn_forward_segment_body
}

#[inline(always)]
fn gn_forward_segment_body(a: &GnArgs<'_>, i: usize, y: &mut [MaybeUninit<f32>], x: &[f32]) -> (f32, f32) {
    let (c, n, groups) = (a.c, a.n, a.gn.groups);
    let cg = c / groups;
    let seg = x.len();
    // Two passes: the mean, then the centred second moment.
    let mu = lane_sum(x, |v| v) / seg as f64;
    let muf = mu as f32;
    let var = lane_sum(x, |v| (v - muf) * (v - muf)) / seg as f64;
    let (mu, rstd) = (mu as f32, (1.0 / (var + a.gn.eps).sqrt()) as f32);
    let (b, c0) = (i / groups, (i % groups) * cg);
    for (j, (y, x)) in y.chunks_mut(n).zip(x.chunks(n)).enumerate() {
        let [ga, b0, s, t] = channel_coeffs((a.gamma, a.beta, a.m), c, c0 + j, b, mu, rstd);
        // a·S + T folded: y = (A·S)·x + (B0·S + T).
        let (k1, k0) = (ga * s, b0 * s + t);
        if a.gn.act {
            for (y, &x) in y.iter_mut().zip(x) {
                y.write(silu_one(k1 * x + k0).0);
            }
        } else {
            for (y, &x) in y.iter_mut().zip(x) {
                y.write(k1 * x + k0);
            }
        }
    }
    (mu, rstd)
}

/// Backward for an output gradient g: [∂x, ∂γ, ∂β, ∂m]. With a the pre-activation and n the
/// normalised-affine value: g_a = g·SiLU'(a) (or g), ∂shift = Σ g_a, ∂scale = Σ g_a·n,
/// g_n = g_a·S, ∂β = Σ g_n, ∂γ = Σ g_n·x̂, and with h = g_n·γ per group
/// ∂x = (h − mean(h) − x̂·mean(h·x̂))/s.
fn gn_backward(st: &GnState, g: &FlexTensor) -> [FlexTensor; 4] {
    let shape = st.x.layout().shape().to_vec();
    let (c, n) = (shape[1], shape[2..].iter().product::<usize>());
    let (xs, gam, bet, gs) = (f32s(&st.x), f32s(&st.gamma), f32s(&st.beta), f32s(g));
    let ms = st.m.as_ref().map(f32s);
    let args = GnArgs {
        gamma: &gam,
        beta: &bet,
        m: ms.as_deref(),
        c,
        n,
        gn: st.gn,
    };
    let groups = st.gn.groups;
    let cg = c / groups;
    let seg = cg * n;
    // Per (sample, group), per channel: Σ g_n·x̂, Σ g_n, Σ g_a·n, Σ g_a.
    let mut parts = vec![Vec::new(); xs.len() / seg];
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(seg)
            .zip(xs.par_chunks(seg))
            .zip(gs.par_chunks(seg))
            .zip(parts.par_iter_mut())
            .enumerate()
            .for_each(|(i, (((dx, x), g), part))| {
                *part = gn_backward_segment(&args, i, (st.mu[i], st.rstd[i]), dx, x, g);
            })
    };
    // SAFETY: pass 1 of each segment's kernel writes all of its ∂x (lane_sums4 writes `out`).
    let dx = unsafe { alloc_init(xs.len(), fill) };
    let bsz = shape[0];
    let (mut dgamma, mut dbeta, mut dm) = (vec![0.0f32; c], vec![0.0f32; c], vec![0.0f32; bsz * 2 * c]);
    for (i, sums) in parts.iter().enumerate() {
        let (b, c0) = (i / groups, (i % groups) * cg);
        for (j, s) in sums.iter().enumerate() {
            dgamma[c0 + j] += s[0];
            dbeta[c0 + j] += s[1];
            dm[b * 2 * c + c0 + j] = s[2];
            dm[b * 2 * c + c + c0 + j] = s[3];
        }
    }
    [
        flex_tensor(dx, shape),
        flex_tensor(dgamma, vec![c]),
        flex_tensor(dbeta, vec![c]),
        flex_tensor(dm, vec![bsz, 2 * c]),
    ]
}

multiversion! {
    /// One (sample, group) segment `i` of the backward pass: writes its ∂x and returns the
    /// per-channel sums [Σ g_n·x̂, Σ g_n, Σ g_a·n, Σ g_a].
    fn gn_backward_segment(
        a: &GnArgs<'_>,
        i: usize,
        stats: (f32, f32),
        dx: &mut [MaybeUninit<f32>],
        x: &[f32],
        g: &[f32],
    ) -> Vec<[f32; 4]> => gn_backward_segment_body
}

#[inline(always)]
fn gn_backward_segment_body(
    a: &GnArgs<'_>,
    i: usize,
    (mu, rstd): (f32, f32),
    dx: &mut [MaybeUninit<f32>],
    x: &[f32],
    g: &[f32],
) -> Vec<[f32; 4]> {
    let (c, n, groups, act) = (a.c, a.n, a.gn.groups, a.gn.act);
    let cg = c / groups;
    let seg = x.len();
    let (b, c0) = (i / groups, (i % groups) * cg);
    let (mut sh, mut shx) = (0.0f64, 0.0f64);
    let mut sums = vec![[0.0f32; 4]; cg];
    // Pass 1: g_n into dx, and the sums.
    for (j, ((dx, x), g)) in dx.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)).enumerate() {
        let [ga, b0, s, t] = channel_coeffs((a.gamma, a.beta, a.m), c, c0 + j, b, mu, rstd);
        let elem = |x: f32, g: f32| {
            let nv = ga * x + b0;
            let gact = if act { g * silu_one(nv * s + t).1 } else { g };
            let gn = gact * s;
            (gn, [gn * ((x - mu) * rstd), gn, gact * nv, gact])
        };
        let [s_gnx, s_gn, s_gan, s_ga] = lane_sums4(dx, x, g, elem);
        sums[j] = [s_gnx as f32, s_gn as f32, s_gan as f32, s_ga as f32];
        let gamma = a.gamma[c0 + j] as f64;
        sh += gamma * s_gn;
        shx += gamma * s_gnx;
    }
    // Pass 2: dx = (γ·g_n − mean(h) − x̂·mean(h·x̂))/s.
    // SAFETY: pass 1 wrote the whole segment.
    let dx = unsafe { assume_init_mut(dx) };
    let (m1, m2) = ((sh / seg as f64) as f32, (shx / seg as f64) as f32);
    for (j, (dx, x)) in dx.chunks_mut(n).zip(x.chunks(n)).enumerate() {
        let gamma = a.gamma[c0 + j];
        for (dx, &x) in dx.iter_mut().zip(x) {
            let xh = (x - mu) * rstd;
            *dx = (*dx * gamma - m1 - xh * m2) * rstd;
        }
    }
    sums
}

/// GroupNorm (modulated, then SiLU when `act`) with its tangent, for the tangent passes of
/// the continuous-time methods (sCT/sCD, MeanFlow, FACM): (y, dy) for x, dx [B, C, H, W],
/// γ, β `[C]` and m = [scale | shift] [B, 2C] with tangent dm, in one fused pass.
///
/// Why: without it the tangent pass builds GroupNorm, its tangent, the modulation and SiLU
/// from ~25 burn ops, each a full pass over the activations with its own allocation; sCT's
/// U-Net step was ~15 % slower than iCT's for it (issue 15). Tangent passes run on
/// stop-gradient parameters and plain inputs, so this takes plain (non-autodiff) f32 flex
/// tensors only and returns None otherwise (the caller then composes burn's ops, which is
/// also the reference the tests compare with).
///
/// Per (sample, group), with N its elements: μ, s = √(var + ε), x̂ = (x − μ)/s;
/// dμ = mean(dx), k = mean(x̂·dx), dx̂ = (dx − dμ − x̂·k)/s (the tangent of x̂);
/// n = γx̂ + β, dn = γ·dx̂; a = n·S + T, da = dn·S + n·dS + dT (S = 1 + scale, T = shift);
/// y = SiLU(a), dy = SiLU'(a)·da (or y = a, dy = da without `act`).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_jvp(
    x: &Tensor<4>,
    dx: Option<&Tensor<4>>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    m: Option<(&Tensor<2>, Option<&Tensor<2>>)>,
    groups: usize,
    eps: f64,
    act: bool,
) -> Option<(Tensor<4>, Tensor<4>)> {
    fn plain<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
        if t.dtype() != burn::tensor::DType::F32 {
            return None;
        }
        t.clone().try_into_primitive::<Flex>().ok()
    }
    let [b, c, h, w] = x.dims();
    let n = h * w;
    if groups == 0 || c % groups != 0 {
        return None;
    }
    let xp = plain(x)?;
    let dxp = match dx {
        Some(d) => Some(plain(d)?),
        None => None,
    };
    let (gp, bp) = (plain(gamma)?, plain(beta)?);
    let (mp, dmp) = match m {
        Some((m, dm)) => (
            Some(plain(m)?),
            match dm {
                Some(d) => Some(plain(d)?),
                None => None,
            },
        ),
        None => (None, None),
    };
    let xs = f32s(&xp);
    let zeros;
    let dxs = match &dxp {
        Some(d) => f32s(d),
        None => {
            zeros = vec![0.0f32; xs.len()];
            std::borrow::Cow::Borrowed(&zeros[..])
        }
    };
    let (gs, bs) = (f32s(&gp), f32s(&bp));
    let ms = mp.as_ref().map(f32s);
    let dms = dmp.as_ref().map(f32s);
    let args = GnJvpArgs {
        gamma: &gs,
        beta: &bs,
        m: ms.as_deref(),
        dm: dms.as_deref(),
        c,
        n,
        groups,
        eps,
        act,
    };
    let seg = c / groups * n;
    let mut dy = Vec::with_capacity(xs.len());
    let dyu = &mut dy.spare_capacity_mut()[..xs.len()];
    // SAFETY: each segment's kernel writes every element of its y and dy.
    let y = unsafe {
        alloc_init(xs.len(), |y| {
            y.par_chunks_mut(seg)
                .zip(dyu.par_chunks_mut(seg))
                .zip(xs.par_chunks(seg).zip(dxs.par_chunks(seg)))
                .enumerate()
                .for_each(|(i, ((y, dy), (x, dx)))| gn_jvp_segment(&args, i, y, dy, x, dx))
        })
    };
    // SAFETY: as above, every element of dy was written.
    unsafe { dy.set_len(xs.len()) };
    let shape = vec![b, c, h, w];
    Some((
        Tensor::from_primitive::<Flex>(flex_tensor(y, shape.clone())),
        Tensor::from_primitive::<Flex>(flex_tensor(dy, shape)),
    ))
}

/// What the per-segment GroupNorm tangent kernels share.
struct GnJvpArgs<'a> {
    gamma: &'a [f32],
    beta: &'a [f32],
    m: Option<&'a [f32]>,
    dm: Option<&'a [f32]>,
    c: usize,
    n: usize,
    groups: usize,
    eps: f64,
    act: bool,
}

multiversion! {
    /// One (sample, group) segment `i` of [`group_norm_jvp`].
    fn gn_jvp_segment(
        a: &GnJvpArgs<'_>,
        i: usize,
        y: &mut [MaybeUninit<f32>],
        dy: &mut [MaybeUninit<f32>],
        x: &[f32],
        dx: &[f32],
    ) => gn_jvp_segment_body
}

#[inline(always)]
fn gn_jvp_segment_body(
    a: &GnJvpArgs<'_>,
    i: usize,
    y: &mut [MaybeUninit<f32>],
    dy: &mut [MaybeUninit<f32>],
    x: &[f32],
    dx: &[f32],
) {
    let (c, n) = (a.c, a.n);
    let cg = c / a.groups;
    let len = x.len() as f64;
    // Pass 1: the mean; pass 2: the centred moments Σ(x − μ)², Σ(x − μ)·dx and Σ dx.
    let mu = lane_sum(x, |v| v) / len;
    let muf = mu as f32;
    let [var, xdx, sdx] = lane_sums3(x, dx, |x, d| {
        let xc = x - muf;
        [xc * xc, xc * d, d]
    });
    let rstd = 1.0 / (var / len + a.eps).sqrt();
    // dμ and k = mean(x̂·dx) (= mean(x̂·(dx − dμ)): x̂ has mean zero).
    let (dmu, k) = ((sdx / len) as f32, (xdx / len * rstd) as f32);
    let rstd = rstd as f32;
    let (b, c0) = (i / a.groups, (i % a.groups) * cg);
    for (j, ((y, dy), (x, dx))) in y
        .chunks_mut(n)
        .zip(dy.chunks_mut(n))
        .zip(x.chunks(n).zip(dx.chunks(n)))
        .enumerate()
    {
        let ch = c0 + j;
        let gamma = a.gamma[ch];
        let (ga, b0) = (gamma * rstd, a.beta[ch] - gamma * rstd * muf);
        let (s, t) = match a.m {
            Some(m) => (1.0 + m[b * 2 * c + ch], m[b * 2 * c + c + ch]),
            None => (1.0, 0.0),
        };
        let (ds, dt) = match a.dm {
            Some(dm) => (dm[b * 2 * c + ch], dm[b * 2 * c + c + ch]),
            None => (0.0, 0.0),
        };
        // a = (ga·x + b0)·S + T; da = γ·rstd·(dx − dμ − x̂·k)·S + n·dS + dT, with
        // x̂ = (x − μ)·rstd folded into per-channel constants: da = p1·dx + p2·x + p0.
        let gs = ga * s;
        let (p1, p2) = (gs, -gs * rstd * k + ga * ds);
        let p0 = -gs * dmu + gs * rstd * k * muf + b0 * ds + dt;
        let (k1, k0) = (ga * s, b0 * s + t);
        for ((y, dy), (&x, &d)) in y.iter_mut().zip(dy.iter_mut()).zip(x.iter().zip(dx)) {
            let av = k1 * x + k0;
            let da = p1 * d + p2 * x + p0;
            if a.act {
                let (v, g) = silu_one(av);
                y.write(v);
                dy.write(g * da);
            } else {
                y.write(av);
                dy.write(da);
            }
        }
    }
}

/// Σ f(x_i, d_i) for three terms at once, accumulated in [`LANES`] f32 lanes each, added up
/// in f64.
#[inline(always)]
fn lane_sums3(x: &[f32], d: &[f32], f: impl Fn(f32, f32) -> [f32; 3]) -> [f64; 3] {
    let mut acc = [[0.0f32; LANES]; 3];
    let mut tot = [0.0f64; 3];
    let n = x.len() / LANES * LANES;
    for (x, d) in x[..n].chunks_exact(LANES).zip(d[..n].chunks_exact(LANES)) {
        for i in 0..LANES {
            let t = f(x[i], d[i]);
            for k in 0..3 {
                acc[k][i] += t[k];
            }
        }
    }
    for (&x, &d) in x[n..].iter().zip(&d[n..]) {
        let t = f(x, d);
        for k in 0..3 {
            tot[k] += t[k] as f64;
        }
    }
    for k in 0..3 {
        tot[k] += acc[k].iter().map(|&v| v as f64).sum::<f64>();
    }
    tot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::tensor::to_vec;

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// A GroupNorm test input [B, C, H, W]: standard normal plus `offset`, laid out with C
    /// strided (a transposed [B, H, C, W] tensor) when `strided`.
    fn gn_input(rng: &mut Rng, [b, c, h, w]: [usize; 4], offset: f64, strided: bool) -> Tensor<4> {
        let dev = Device::flex();
        if strided {
            rng.normal_tensor([b, h, c, w], &dev).swap_dims(1, 2)
        } else {
            rng.normal_tensor([b, c, h, w], &dev)
        }
        .add_scalar(offset)
    }

    /// The fused GroupNorm's value and gradients (x, γ, β, modulation) match burn's ops
    /// composed the same way, with and without modulation and SiLU, on odd sizes, a strided
    /// input and inputs with a large common offset.
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
            let x = gn_input(&mut rng, [b, c, h, w], offset, strided);
            let gamma = rng.normal_tensor([c], &dev);
            let beta = rng.normal_tensor([c], &dev);
            let m = rng.normal_tensor([b, 2 * c], &dev).mul_scalar(0.5);
            let up = rng.normal_tensor([b, c, h, w], &dev);
            for (modulated, act) in [(false, false), (false, true), (true, false), (true, true)] {
                let run = |fused: bool| {
                    let (xa, ga, ba, ma) = (
                        x.clone().autodiff().require_grad(),
                        gamma.clone().autodiff().require_grad(),
                        beta.clone().autodiff().require_grad(),
                        m.clone().autodiff().require_grad(),
                    );
                    let y = if fused {
                        let mm = modulated.then(|| ma.clone());
                        group_norm(xa.clone(), ga.clone(), ba.clone(), mm, groups, 1e-5, act)
                    } else {
                        let xr = xa.clone().reshape([b, groups, c / groups * h * w]);
                        let xc = xr.clone() - xr.mean_dim(2);
                        let s = xc.clone().square().mean_dim(2).add_scalar(1e-5).sqrt();
                        let mut y = (xc / s).reshape([b, c, h, w]) * ga.clone().reshape([1, c, 1, 1])
                            + ba.clone().reshape([1, c, 1, 1]);
                        if modulated {
                            let sc = ma.clone().narrow(1, 0, c).reshape([b, c, 1, 1]);
                            let sh = ma.clone().narrow(1, c, c).reshape([b, c, 1, 1]);
                            y = y * sc.add_scalar(1.0) + sh;
                        }
                        if act {
                            activation::silu(y)
                        } else {
                            y
                        }
                    };
                    let yv = to_vec(y.clone().detach());
                    let grads = (y * up.clone().autodiff()).sum().backward();
                    let dm = if modulated {
                        to_vec(ma.grad(&grads).unwrap())
                    } else {
                        vec![]
                    };
                    [
                        yv,
                        to_vec(xa.grad(&grads).unwrap()),
                        to_vec(ga.grad(&grads).unwrap()),
                        to_vec(ba.grad(&grads).unwrap()),
                        dm,
                    ]
                };
                let (f, r) = (run(true), run(false));
                for (k, name) in ["y", "dx", "dgamma", "dbeta", "dm"].iter().enumerate() {
                    let e = max_abs_diff(&f[k], &r[k]);
                    assert!(
                        e < 3e-4,
                        "b{b} c{c} {h}x{w} g{groups} offset {offset} mod {modulated} act {act}: {name} differs by {e}"
                    );
                }
                let mm = modulated.then(|| m.clone());
                let plain = to_vec(group_norm(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    mm,
                    groups,
                    1e-5,
                    act,
                ));
                assert!(max_abs_diff(&plain, &f[0]) < 1e-6);
            }
        }
    }

    /// The fused GroupNorm tangent kernel: its value equals the f64 GroupNorm (burn's ops) and
    /// its tangent the f64 central difference of that GroupNorm along (dx, dm), with and
    /// without modulation (and its tangent), SiLU, and the input's tangent; on odd sizes, a
    /// strided input and a large common offset. Autodiff inputs are refused (None).
    #[test]
    fn group_norm_jvp_matches_the_central_difference() {
        use burn::tensor::DType;
        let dev = Device::flex();
        let mut rng = Rng::new(5);
        let f64s = |t: Tensor<4>| crate::tensor::to_vec64(t.cast(DType::F64));
        for &(b, c, h, w, groups, offset, strided) in &[
            (2usize, 4usize, 3usize, 5usize, 2usize, 0.0f64, false),
            (3, 6, 4, 4, 3, 4.0, true),
            (1, 8, 7, 1, 8, -3.0, false),
            (2, 12, 5, 3, 1, 0.5, false),
        ] {
            let x = gn_input(&mut rng, [b, c, h, w], offset, strided);
            let dx = rng.normal_tensor([b, c, h, w], &dev);
            let gamma = rng.normal_tensor([c], &dev);
            let beta = rng.normal_tensor([c], &dev);
            let m = rng.normal_tensor([b, 2 * c], &dev).mul_scalar(0.5);
            let dm = rng.normal_tensor([b, 2 * c], &dev);
            for (modulated, with_dm, with_dx, act) in [
                (false, false, true, false),
                (false, false, true, true),
                (true, false, true, true),
                (true, true, true, false),
                (true, true, true, true),
                (true, true, false, true),
            ] {
                let (y, dy) = group_norm_jvp(
                    &x,
                    with_dx.then_some(&dx),
                    &gamma,
                    &beta,
                    modulated.then(|| (&m, with_dm.then_some(&dm))),
                    groups,
                    1e-5,
                    act,
                )
                .expect("plain f32 flex tensors take the fused kernel");
                let eval = |e: f64| {
                    let c64 = |t: &Tensor<4>| t.clone().cast(DType::F64);
                    let xe = c64(&x) + c64(&dx).mul_scalar(if with_dx { e } else { 0.0 });
                    let me = modulated.then(|| {
                        let m = m.clone().cast(DType::F64);
                        if with_dm {
                            m + dm.clone().cast(DType::F64).mul_scalar(e)
                        } else {
                            m
                        }
                    });
                    let (g, bt) = (gamma.clone().cast(DType::F64), beta.clone().cast(DType::F64));
                    f64s(group_norm(xe, g, bt, me, groups, 1e-5, act))
                };
                let tag = format!(
                    "b{b} c{c} {h}x{w} g{groups} offset {offset} mod {modulated} dm {with_dm} dx {with_dx} act {act}"
                );
                let (y0, yp, ym) = (eval(0.0), eval(1e-4), eval(-1e-4));
                for (k, (a, r)) in f64s(y).iter().zip(&y0).enumerate() {
                    assert!((a - r).abs() < 1e-4 * (1.0 + r.abs()), "{tag}: y[{k}] {a} vs {r}");
                }
                for (k, (a, (p, q))) in f64s(dy).iter().zip(yp.iter().zip(&ym)).enumerate() {
                    let r = (p - q) / 2e-4;
                    assert!((a - r).abs() < 2e-3 * (1.0 + r.abs()), "{tag}: dy[{k}] {a} vs {r}");
                }
            }
            let auto = x.clone().autodiff();
            assert!(group_norm_jvp(&auto, Some(&dx), &gamma, &beta, None, groups, 1e-5, true).is_none());
        }
    }

    /// The fused ×2 up/down-sampling match burn's repeat / reshape-mean, values and gradients.
    #[test]
    fn resample_matches_burn_ops() {
        let dev = Device::flex();
        let mut rng = Rng::new(4);
        for up in [true, false] {
            let (b, c, h, w) = (3, 2, 6, 4);
            let x = rng.normal_tensor([b, c, h, w], &dev);
            let (oh, ow) = if up { (2 * h, 2 * w) } else { (h / 2, w / 2) };
            let weight = rng.normal_tensor([b, c, oh, ow], &dev);
            let run = |fused: bool| {
                let xa = x.clone().autodiff().require_grad();
                let y = match (fused, up) {
                    (true, true) => up2(xa.clone()),
                    (true, false) => down2(xa.clone()),
                    (false, true) => xa
                        .clone()
                        .reshape([b * c * h, 1, w, 1])
                        .repeat_dim(1, 2)
                        .repeat_dim(3, 2)
                        .reshape([b, c, oh, ow]),
                    (false, false) => xa
                        .clone()
                        .reshape([b * c * (h / 2), 2, w / 2, 2])
                        .mean_dim(3)
                        .mean_dim(1)
                        .reshape([b, c, oh, ow]),
                };
                let yv = to_vec(y.clone().detach());
                let g = (y * weight.clone().autodiff()).sum().backward();
                (yv, to_vec(xa.grad(&g).unwrap()))
            };
            let (f, r) = (run(true), run(false));
            assert!(max_abs_diff(&f.0, &r.0) < 1e-6, "up {up}: value");
            assert!(max_abs_diff(&f.1, &r.1) < 1e-5, "up {up}: gradient");
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
