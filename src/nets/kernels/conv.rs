//! Stride-1, same-padding 2-D convolution (square kernels of odd size) as a burn backend
//! extension for the flex CPU backend, with its own backward pass.
//!
//! Why: burn-flex 0.22's conv2d ran the MNIST U-Net's 3×3 convolutions 4–5× slower than
//! PyTorch's (7.5 vs 1.6 ms for 64×16×28×28 → 16 channels, forward), and its backward goes
//! through a transposed convolution for ∂x and a convolution with the *batch* as channels for
//! ∂w (`examples/convbench.rs`). Here each sample is one im2col + one sgemm (the `gemm` crate
//! burn-flex itself uses), the backward is two sgemms and a col2im per sample, and samples run
//! in parallel on rayon's pool:
//!
//!   y_b = W · cols(x_b) + b,   ∂W = Σ_b ∂y_b · cols(x_b)ᵀ,   ∂x_b = col2im(Wᵀ · ∂y_b),
//!   ∂b = Σ_{b, pixels} ∂y
//!
//! with W viewed as [C_out, C_in·k·k] and cols(x_b) as [C_in·k·k, H·W] (row (c, ky, kx) holds
//! x_b\[c\] shifted by (ky − p, kx − p), zero outside). [`conv2d_same`] takes this path for f32
//! tensors on flex (plain or autodiff) and burn's own `conv2d` otherwise (f64 tests, GPU
//! backends). Since session 15, 3×3 kernels at batches that run samples in parallel take the
//! direct kernels of `direct.rs` instead (on CPUs with AVX-512; [`set_direct`] switches them
//! off for measurements). Tests compare every path, forward and backward, on odd shapes.

use super::{alloc_init, assume_init_mut, direct, f32s, flex_tensor as tensor, fusable};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn_flex::FlexTensor;
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The backend extension behind [`conv2d_same`]: the im2col + sgemm convolution on flex, with
/// its own backward on flex's autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// y = conv(x, w) + b with stride 1 and padding k/2; x `[B, Ci, H, W]`,
    /// w `[Co, Ci, k, k]`, b `[Co]`.
    fn cm_conv2d_same(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ConvBackend for Flex {
    fn cm_conv2d_same(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        forward(&x, &w, &b)
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, nw, nb] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let (dx, dw, db) = backward(&x, &w, &g, nx.is_some(), nw.is_some());
        if let (Some(node), Some(dx)) = (nx, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (nw, dw) {
            grads.register::<Flex>(node.id, dw);
        }
        if let Some(node) = nb {
            grads.register::<Flex>(node.id, db);
        }
    }
}

impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn cm_conv2d_same(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, wp) = (x.primitive().clone(), w.primitive().clone());
                let out = forward(&xp, &wp, b.primitive());
                prep.finish((xp, wp), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), w.primitive(), b.primitive())),
        }
    }
}

/// Stride-1 same-padding convolution with bias: the fast flex path for f32, burn's conv2d
/// otherwise (see the module docs).
pub fn conv2d_same(x: Tensor<4>, w: Tensor<4>, b: Tensor<1>) -> Tensor<4> {
    let [_, _, k, k2] = w.dims();
    debug_assert!(k == k2 && k % 2 == 1, "square odd kernels only");
    if fusable(&x) && fusable(&w) {
        return Tensor::from_dispatch(<Dispatch as ConvBackend>::cm_conv2d_same(
            x.into_dispatch(),
            w.into_dispatch(),
            b.into_dispatch(),
        ));
    }
    let p = k / 2;
    conv2d(x, w, Some(b), ConvOptions::new([1, 1], [p, p], [1, 1], 1))
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

/// Whether a convolution takes the direct 3×3 kernels (direct.rs): 3×3, a batch large enough
/// to run samples in parallel, AVX-512, and not switched off by [`set_direct`].
pub(super) fn use_direct(k: usize, bs: usize) -> bool {
    k == 3 && split_batch(bs) && DIRECT.load(std::sync::atomic::Ordering::Relaxed) && direct::available()
}

static DIRECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the direct 3×3 kernels on or off for the whole process (on by default), so that
/// benchmarks (`examples/convbench.rs`, `examples/unetprof.rs` with `CM_CONV=im2col`) and tests
/// can run the im2col path on the same machine. Both paths compute the same convolution.
pub fn set_direct(on: bool) {
    DIRECT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The sum of per-task ∂W accumulators of length n (a task that saw no sample left its empty).
pub(super) fn sum_parts(parts: &[Vec<f32>], n: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; n];
    for a in parts.iter().filter(|a| !a.is_empty()) {
        sum.iter_mut().zip(a).for_each(|(d, s)| *d += s);
    }
    sum
}

/// Samples run in parallel when there are enough of them; otherwise each sgemm is parallel.
fn split_batch(b: usize) -> bool {
    b >= 2 * rayon::current_num_threads()
}

/// Samples per parallel task: one contiguous share per thread, so each task sets up its
/// im2col / ∂W scratch buffers once (rayon would otherwise split further, and every piece of
/// a `fold` or `for_each_init` allocates and zero-fills its own).
pub(super) fn per_task(b: usize) -> usize {
    b.div_ceil(rayon::current_num_threads()).max(1)
}

/// cols[(c·k + ky)·k + kx, oy·W + ox] = x[c, oy + ky − p, ox + kx − p] (0 outside).
///
/// For a fixed (ky, kx) the source index is the destination index plus the constant
/// shift (ky − p)·W + (kx − p), so each row is one contiguous copy over the valid output rows,
/// after which the k − 1 columns that wrapped around from a neighbouring image row are zeroed.
fn im2col(x: &[f32], c: usize, h: usize, w: usize, k: usize, cols: &mut [f32]) {
    let p = k / 2;
    let hw = h * w;
    for ci in 0..c {
        let plane = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..k {
            // Valid output rows: 0 ≤ oy + ky − p < h.
            let (y0, y1) = (p.saturating_sub(ky), (h + p - ky).min(h));
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * hw..][..hw];
                let (x0, x1) = (p.saturating_sub(kx), (w + p - kx).min(w));
                if y0 >= y1 || x0 >= x1 {
                    row.fill(0.0);
                    continue;
                }
                row[..y0 * w].fill(0.0);
                row[y1 * w..].fill(0.0);
                // dst[j] = plane[j + shift] for j in [y0·w, y1·w), shift = (ky−p)·w + kx − p;
                // clamp the range to the plane (the clipped ends are border columns).
                let shift = (ky * w + kx) as isize - (p * w + p) as isize;
                let j0 = ((y0 * w) as isize).max(-shift) as usize;
                let j1 = ((y1 * w) as isize).min(hw as isize - shift) as usize;
                row[y0 * w..j0].fill(0.0);
                row[j1..y1 * w].fill(0.0);
                row[j0..j1].copy_from_slice(&plane[(j0 as isize + shift) as usize..(j1 as isize + shift) as usize]);
                for oy in y0..y1 {
                    row[oy * w..oy * w + x0].fill(0.0);
                    row[oy * w + x1..(oy + 1) * w].fill(0.0);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: dx[c, iy, ix] = Σ dcols[(c, ky, kx), (iy − ky + p, ix − kx + p)].
/// The centre tap covers every pixel and is written first (so `dx` needs no zeroing); the
/// border entries of `dcols` (scratch) are zeroed so each other tap is one contiguous add.
fn col2im(dcols: &mut [f32], c: usize, h: usize, w: usize, k: usize, dx: &mut [MaybeUninit<f32>]) {
    let p = k / 2;
    let hw = h * w;
    for ci in 0..c {
        let plane = &mut dx[ci * hw..(ci + 1) * hw];
        let centre = &dcols[((ci * k + p) * k + p) * hw..][..hw];
        for (d, &s) in plane.iter_mut().zip(centre) {
            d.write(s);
        }
        // SAFETY: the centre tap wrote the whole plane.
        let plane = unsafe { assume_init_mut(plane) };
        for ky in 0..k {
            let (y0, y1) = (p.saturating_sub(ky), (h + p - ky).min(h));
            for kx in 0..k {
                if ky == p && kx == p {
                    continue;
                }
                let row = &mut dcols[((ci * k + ky) * k + kx) * hw..][..hw];
                let (x0, x1) = (p.saturating_sub(kx), (w + p - kx).min(w));
                if y0 >= y1 || x0 >= x1 {
                    continue;
                }
                for oy in y0..y1 {
                    row[oy * w..oy * w + x0].fill(0.0);
                    row[oy * w + x1..(oy + 1) * w].fill(0.0);
                }
                let shift = (ky * w + kx) as isize - (p * w + p) as isize;
                let j0 = ((y0 * w) as isize).max(-shift) as usize;
                let j1 = ((y1 * w) as isize).min(hw as isize - shift) as usize;
                let dst = &mut plane[(j0 as isize + shift) as usize..(j1 as isize + shift) as usize];
                super::simd(|| {
                    for (d, s) in dst.iter_mut().zip(&row[j0..j1]) {
                        *d += s;
                    }
                });
            }
        }
    }
}

/// dst[m×n] (row-major, leading dimension n) = (accumulate ? dst : 0) + lhs · rhs, where lhs
/// and rhs are given by (pointer, row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    n: usize,
    kdim: usize,
    dst: *mut f32,
    dst_len: usize,
    accumulate: bool,
    lhs: (&[f32], isize, isize),
    rhs: (&[f32], isize, isize),
    par: Parallelism,
) {
    assert!(dst_len >= m * n);
    // SAFETY: the slices outlive the call and the strides address within them (callers pass
    // dense row-major or transposed views of buffers of exactly these sizes); `dst` may be
    // uninitialised when `accumulate` is false, as gemm then only writes it.
    unsafe {
        gemm::gemm(
            m,
            n,
            kdim,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2,
            lhs.1,
            rhs.0.as_ptr(),
            rhs.2,
            rhs.1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

fn forward(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let [bs, ci, h, wd] = dims4(x);
    let [co, ci2, k, _] = dims4(w);
    assert_eq!(ci, ci2, "conv2d_same: input has {ci} channels, weight expects {ci2}");
    let (xs, ws, bias) = (f32s(x), f32s(w), f32s(b));
    let (hw, kk) = (h * wd, ci * k * k);
    if use_direct(k, bs) {
        // SAFETY: the direct forward writes every output.
        let out = unsafe {
            alloc_init(bs * co * hw, |out| {
                direct::forward(&xs, &ws, &bias, (bs, ci, co, h, wd), out)
            })
        };
        return tensor(out, vec![bs, co, h, wd]);
    }
    let one = |xb: &[f32], yb: &mut [MaybeUninit<f32>], cols: &mut Vec<f32>, par: Parallelism| {
        let src: &[f32] = if k == 1 {
            xb
        } else {
            cols.resize(kk * hw, 0.0);
            im2col(xb, ci, h, wd, k, cols);
            cols
        };
        let ptr = yb.as_mut_ptr() as *mut f32;
        sgemm(
            co,
            hw,
            kk,
            ptr,
            yb.len(),
            false,
            (&ws, kk as isize, 1),
            (src, hw as isize, 1),
            par,
        );
        // SAFETY: the gemm wrote all co·hw outputs.
        let yb = unsafe { assume_init_mut(yb) };
        for (o, row) in yb.chunks_mut(hw).enumerate() {
            let bo = bias[o];
            row.iter_mut().for_each(|v| *v += bo);
        }
    };
    // SAFETY: `one` initialises each sample's whole output block.
    let out = unsafe {
        alloc_init(bs * co * hw, |out| {
            if split_batch(bs) {
                out.par_chunks_mut(co * hw)
                    .zip(xs.par_chunks(ci * hw))
                    .with_min_len(per_task(bs))
                    .for_each_init(Vec::new, |cols, (yb, xb)| one(xb, yb, cols, Parallelism::None));
            } else {
                let mut cols = Vec::new();
                for (yb, xb) in out.chunks_mut(co * hw).zip(xs.chunks(ci * hw)) {
                    one(xb, yb, &mut cols, Parallelism::Rayon(0));
                }
            }
        })
    };
    tensor(out, vec![bs, co, h, wd])
}

/// (∂x, ∂w, ∂b) of [`forward`] for an output gradient `g`; ∂x / ∂w only when asked for.
fn backward(
    x: &FlexTensor,
    w: &FlexTensor,
    g: &FlexTensor,
    want_dx: bool,
    want_dw: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>, FlexTensor) {
    let [bs, ci, h, wd] = dims4(x);
    let [co, _, k, _] = dims4(w);
    let (xs, ws, gs) = (f32s(x), f32s(w), f32s(g));
    let (hw, kk) = (h * wd, ci * k * k);
    // ∂b in 16 independent lanes (a single running f32 sum is a serial chain of adds).
    let mut db = vec![0.0f32; co];
    super::simd(|| {
        for gb in gs.chunks(co * hw) {
            for (o, row) in gb.chunks(hw).enumerate() {
                let mut lanes = [0.0f32; 16];
                let mut it = row.chunks_exact(16);
                for c in it.by_ref() {
                    lanes.iter_mut().zip(c).for_each(|(l, v)| *l += v);
                }
                db[o] += lanes.iter().sum::<f32>() + it.remainder().iter().sum::<f32>();
            }
        }
    });
    // ∂x is written (not accumulated) sample by sample, so it needs no zero fill.
    let n_dx = if want_dx { bs * ci * hw } else { 0 };
    let mut dx: Vec<f32> = Vec::with_capacity(n_dx);
    let dxu = &mut dx.spare_capacity_mut()[..n_dx];
    // Per sample: ∂W += ∂y_b · cols_bᵀ and ∂x_b = col2im(Wᵀ · ∂y_b). `acc` is a per-task ∂W.
    let one = |b: usize,
               dxb: Option<&mut [MaybeUninit<f32>]>,
               bufs: &mut (Vec<f32>, Vec<f32>, Vec<f32>),
               par: Parallelism| {
        let (cols, dcols, acc) = bufs;
        let xb = &xs[b * ci * hw..(b + 1) * ci * hw];
        let gb = &gs[b * co * hw..(b + 1) * co * hw];
        if want_dw {
            let src: &[f32] = if k == 1 {
                xb
            } else {
                cols.resize(kk * hw, 0.0);
                im2col(xb, ci, h, wd, k, cols);
                cols
            };
            if acc.is_empty() {
                acc.resize(co * kk, 0.0);
            }
            // colsᵀ viewed as [hw, kk]: row stride 1, column stride hw.
            sgemm(
                co,
                kk,
                hw,
                acc.as_mut_ptr(),
                acc.len(),
                true,
                (gb, hw as isize, 1),
                (src, 1, hw as isize),
                par,
            );
        }
        if let Some(dxb) = dxb {
            // Wᵀ viewed as [kk, co]: row stride 1, column stride kk.
            if k == 1 {
                let (ptr, len) = (dxb.as_mut_ptr() as *mut f32, dxb.len());
                sgemm(
                    kk,
                    hw,
                    co,
                    ptr,
                    len,
                    false,
                    (&ws, 1, kk as isize),
                    (gb, hw as isize, 1),
                    par,
                );
            } else {
                dcols.resize(kk * hw, 0.0);
                sgemm(
                    kk,
                    hw,
                    co,
                    dcols.as_mut_ptr(),
                    dcols.len(),
                    false,
                    (&ws, 1, kk as isize),
                    (gb, hw as isize, 1),
                    par,
                );
                col2im(dcols, ci, h, wd, k, dxb);
            }
        }
    };
    let new_bufs = || (Vec::new(), Vec::new(), Vec::new());
    let dw: Vec<f32> = if use_direct(k, bs) {
        direct::backward(&xs, &ws, &gs, (bs, ci, co, h, wd), want_dx.then_some(dxu), want_dw)
    } else if split_batch(bs) {
        let accs: Vec<Vec<f32>> = if want_dx {
            dxu.par_chunks_mut(ci * hw)
                .enumerate()
                .with_min_len(per_task(bs))
                .fold(new_bufs, |mut bufs, (b, dxb)| {
                    one(b, Some(dxb), &mut bufs, Parallelism::None);
                    bufs
                })
                .map(|bufs| bufs.2)
                .collect()
        } else {
            (0..bs)
                .into_par_iter()
                .with_min_len(per_task(bs))
                .fold(new_bufs, |mut bufs, b| {
                    one(b, None, &mut bufs, Parallelism::None);
                    bufs
                })
                .map(|bufs| bufs.2)
                .collect()
        };
        sum_parts(&accs, co * kk)
    } else {
        let mut bufs = new_bufs();
        let mut chunks: Vec<Option<&mut [MaybeUninit<f32>]>> = if want_dx {
            dxu.chunks_mut(ci * hw).map(Some).collect()
        } else {
            (0..bs).map(|_| None).collect()
        };
        for (b, dxb) in chunks.iter_mut().enumerate() {
            one(b, dxb.take(), &mut bufs, Parallelism::Rayon(0));
        }
        if bufs.2.is_empty() {
            vec![0.0; co * kk]
        } else {
            bufs.2
        }
    };
    // SAFETY: with want_dx, every sample's ∂x block was written (by the direct backward, or by
    // `one`: a full gemm output or col2im's centre-tap write); otherwise n_dx = 0.
    unsafe { dx.set_len(n_dx) };
    (
        want_dx.then(|| tensor(dx, vec![bs, ci, h, wd])),
        want_dw.then(|| tensor(dw, vec![co, ci, k, k])),
        tensor(db, vec![co]),
    )
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

    fn max_abs(a: &[f32]) -> f32 {
        a.iter().fold(0.0f32, |m, x| m.max(x.abs()))
    }

    /// Forward and all three gradients against burn's conv2d, on odd sizes, both kernel sizes,
    /// a strided (non-contiguous) input, and batches that take each parallel path.
    #[test]
    fn matches_burn_conv2d_forward_and_backward() {
        let dev = Device::flex();
        let mut rng = Rng::new(11);
        for &(bs, ci, co, h, w, k, strided) in &[
            (1usize, 1usize, 3usize, 5usize, 7usize, 3usize, false),
            (3, 2, 5, 6, 4, 3, true),
            (9, 3, 4, 7, 7, 3, false),
            (2, 5, 2, 3, 3, 1, false),
            (8, 6, 7, 4, 5, 1, true),
            (5, 2, 3, 9, 2, 5, false),
        ] {
            let x = if strided {
                rng.normal_tensor([bs, h, ci, w], &dev).swap_dims(1, 2)
            } else {
                rng.normal_tensor([bs, ci, h, w], &dev)
            };
            let wt = rng.normal_tensor([co, ci, k, k], &dev);
            let b = rng.normal_tensor([co], &dev);
            let up = rng.normal_tensor([bs, co, h, w], &dev);
            let run = |fast: bool| {
                let xa = x.clone().autodiff().require_grad();
                let wa = wt.clone().autodiff().require_grad();
                let ba = b.clone().autodiff().require_grad();
                let y = if fast {
                    conv2d_same(xa.clone(), wa.clone(), ba.clone())
                } else {
                    let p = k / 2;
                    conv2d(
                        xa.clone(),
                        wa.clone(),
                        Some(ba.clone()),
                        ConvOptions::new([1, 1], [p, p], [1, 1], 1),
                    )
                };
                let yv = to_vec(y.clone().detach());
                let g = (y * up.clone().autodiff()).sum().backward();
                (
                    yv,
                    to_vec(xa.grad(&g).unwrap()),
                    to_vec(wa.grad(&g).unwrap()),
                    to_vec(ba.grad(&g).unwrap()),
                )
            };
            let (fast, slow) = (run(true), run(false));
            let tag = format!("b{bs} c{ci}->{co} {h}x{w} k{k} strided={strided}");
            for (name, a, r) in [
                ("y", &fast.0, &slow.0),
                ("dx", &fast.1, &slow.1),
                ("dw", &fast.2, &slow.2),
                ("db", &fast.3, &slow.3),
            ] {
                let e = max_abs_diff(a, r);
                assert!(e <= 1e-4 * (1.0 + max_abs(r)), "{tag}: {name} differs by {e}");
            }
            // Plain (non-autodiff) tensors take the same kernel.
            let plain = to_vec(conv2d_same(x.clone(), wt.clone(), b.clone()));
            assert!(
                max_abs_diff(&plain, &slow.0) <= 1e-4 * (1.0 + max_abs(&slow.0)),
                "{tag}: plain forward"
            );
        }
    }

    /// Gradients flow only to the inputs that require them (here: the weight alone).
    #[test]
    fn gradient_only_for_tracked_inputs() {
        let dev = Device::flex();
        let mut rng = Rng::new(5);
        let x = rng.normal_tensor([4, 2, 5, 5], &dev);
        let w = rng.normal_tensor([3, 2, 3, 3], &dev);
        let b = rng.normal_tensor([3], &dev);
        let wa = w.clone().autodiff().require_grad();
        let y = conv2d_same(x.clone().autodiff(), wa.clone(), b.clone().autodiff());
        let g = y.sum().backward();
        let dw = to_vec(wa.grad(&g).expect("weight gradient"));
        // ∂(Σ y)/∂w[o, c, ky, kx] = Σ over samples and valid pixels of x: compare with burn.
        let wr = w.autodiff().require_grad();
        let yr = conv2d(
            x.autodiff(),
            wr.clone(),
            Some(b.autodiff()),
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        let gr = yr.sum().backward();
        let dwr = to_vec(wr.grad(&gr).unwrap());
        assert!(max_abs_diff(&dw, &dwr) < 1e-4);
    }
}
