//! Direct 3×3 convolution (stride 1, padding 1) for AVX-512: the forward, ∂x and ∂W of
//! [`super::conv`] without im2col, gemm packing or col2im.
//!
//! Why: after the im2col + sgemm convolution (conv.rs) the U-Net step's profile (`perf` on
//! `examples/unetprof.rs`, Intel Xeon 2 cores, session 15) was gemm micro-kernels 34 %, gemm
//! packing 11.5 %, memmove 8.5 %, memset 6.9 %, im2col 6.6 %, col2im 2.4 %: a quarter of the
//! step moved data so that the sgemm could run, and with 16–64 output channels the sgemm's
//! tiles are mostly edge tiles. Here the input is copied once into a zero-padded plane whose
//! rows are W + 2 wide; on that layout every tap (dy, dx) of every output pixel q = y·(W+2) + x
//! reads the input at q + dy·(W+2) + dx, one contiguous vector load per tap for 16 outputs
//! (the two outputs per row that fall into the padding columns are computed and dropped):
//!
//!   y[o, q]  = b[o] + Σ_i Σ_t w[o, i, t] · xp[i, q + off_t]                    (forward)
//!   ∂x[i, q] =        Σ_o Σ_t w[o, i, 8 − t] · ∂yp[o, q + off_t]               (the same kernel)
//!   ∂w[o, i, t] = Σ_b Σ_q ∂yq[o, q] · xp[i, q + off_t]                         (dot products)
//!
//! with off_t = dy·(W+2) + dx, ∂yp the padded output gradient and ∂yq = ∂yp shifted by one row
//! and column (zero in the padding columns, so they add nothing). The forward / ∂x register tile
//! is 8 output channels × 48 pixels (24 accumulators; 3 vector loads and 8 broadcasts per 24
//! FMAs), the ∂w tile 3 output channels × 9 taps of one input channel.
//!
//! Measured (`examples/convbench.rs`, idle 2-core Intel Xeon, batch 64, 16→16 channels at
//! 28 px): forward 1.2–1.5 ms against 1.7–2.6 for im2col + sgemm, forward + backward 7.1–7.2
//! against 8.2–12.8 (PyTorch: 4.2–4.9 / 10.5–15.2); the bench U-Net's iCT step 4.80 against
//! 3.13 steps/s (`bench/compare.sh`, bench/RESULTS.md session 15). The im2col path stays for
//! 1×1 and 5×5 kernels, small batches (each sgemm parallel) and CPUs without AVX-512; tests
//! compare this path with burn's conv2d forward and backward on odd shapes.

use super::conv::{per_task, sum_parts};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Output channels per forward / ∂x register tile.
const RO: usize = 8;
/// Output channels per ∂w register tile: 3 × 9 accumulators + 3 gradient vectors + 1 input
/// (31 of the 32 vector registers). Each tap's input vector is an unaligned load that mostly
/// splits a cache line (two load slots), so 2 channels per tile were load-bound.
const RW: usize = 3;

/// Whether this CPU runs the direct kernels.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The padded-plane geometry of an h×w image.
#[derive(Clone, Copy, Debug)]
struct Geom {
    h: usize,
    w: usize,
    /// Padded row length, w + 2.
    wp: usize,
    /// Outputs computed per channel, h·wp rounded up to whole 16-lane vectors.
    qr: usize,
    /// Stride between padded planes: covers the farthest tap load of the last vector.
    ps: usize,
}

impl Geom {
    fn new(h: usize, w: usize) -> Self {
        let wp = w + 2;
        let qr = (h * wp).div_ceil(16) * 16;
        Geom {
            h,
            w,
            wp,
            qr,
            ps: (qr + 2 * wp + 2).div_ceil(16) * 16,
        }
    }

    fn offs(&self) -> [usize; 9] {
        std::array::from_fn(|t| (t / 3) * self.wp + t % 3)
    }
}

/// xp[c, (r + 1)·wp + col + 1] = x[c, r, col], zero elsewhere (every plane `ps` long). The
/// padding is zeroed only when the buffer is (re)sized: a task's buffer keeps one geometry and
/// only the interior is ever written.
fn pad(x: &[f32], c: usize, g: Geom, xp: &mut Vec<f32>) {
    if xp.len() != c * g.ps {
        xp.clear();
        xp.resize(c * g.ps, 0.0);
    }
    for ch in 0..c {
        let d = &mut xp[ch * g.ps + g.wp + 1..];
        copy_rows(
            &x[ch * g.h * g.w..][..g.h * g.w],
            g.w,
            (d.as_mut_ptr(), d.len()),
            g.wp,
            g.h,
            g.w,
            0.0,
        );
    }
}

/// dst[r·ds + j] = src[r·ss + j] + add for r < rows, j < n; `dst` is (pointer, length) of a
/// buffer that may be uninitialised (it is only written).
fn copy_rows(src: &[f32], ss: usize, dst: (*mut f32, usize), ds: usize, rows: usize, n: usize, add: f32) {
    assert!(rows == 0 || (src.len() >= (rows - 1) * ss + n && dst.1 >= (rows - 1) * ds + n));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the direct path runs only where `available()`; the bounds are asserted above.
    unsafe {
        x86::copy_rows(src.as_ptr(), ss, dst.0, ds, rows, n, add)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct convolution without AVX-512 ({src:?}{ss}{dst:?}{ds}{rows}{n}{add})");
}

/// Weights in register-tile order: for each block of up to RO outputs starting at o0 (size
/// rb), element (i, t, r) at o0·cin·9 + (i·9 + t)·rb + r, read from `get(o, i, t)`.
fn pack(cout: usize, cin: usize, get: impl Fn(usize, usize, usize) -> f32) -> Vec<f32> {
    let mut out = vec![0.0; cout * cin * 9];
    for o0 in (0..cout).step_by(RO) {
        let rb = RO.min(cout - o0);
        for i in 0..cin {
            for t in 0..9 {
                for r in 0..rb {
                    out[o0 * cin * 9 + (i * 9 + t) * rb + r] = get(o0 + r, i, t);
                }
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// out[r, q0 + 16v + l] = init[r] + Σ_i Σ_t wk[(i·9 + t)·R + r] · xp[i·ps + q0 + 16v + l + offs[t]]
    /// for r < R, v < V, l < 16.
    ///
    /// # Safety
    /// AVX-512F; every address above is inside its buffer; `out` rows are `qr` apart.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn conv_tile<const R: usize, const V: usize>(
        xp: *const f32,
        ps: usize,
        cin: usize,
        offs: &[usize; 9],
        wk: *const f32,
        init: &[f32],
        out: *mut f32,
        qr: usize,
        q0: usize,
    ) {
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for (r, a) in acc.iter_mut().enumerate() {
                *a = [_mm512_set1_ps(init[r]); V];
            }
            for i in 0..cin {
                let base = xp.add(i * ps + q0);
                let wb = wk.add(i * 9 * R);
                for (t, &off) in offs.iter().enumerate() {
                    let mut xv = [_mm512_setzero_ps(); V];
                    for (v, x) in xv.iter_mut().enumerate() {
                        *x = _mm512_loadu_ps(base.add(off + 16 * v));
                    }
                    for (r, a) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*wb.add(t * R + r));
                        for v in 0..V {
                            a[v] = _mm512_fmadd_ps(wv, xv[v], a[v]);
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                for (v, &x) in a.iter().enumerate() {
                    _mm512_storeu_ps(out.add(r * qr + q0 + 16 * v), x);
                }
            }
        }
    }

    /// dst[r·ds + j] = src[r·ss + j] + add for r < rows, j < n, in 16-lane (masked) vectors.
    ///
    /// # Safety
    /// AVX-512F; every address above is inside its buffer.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_rows(src: *const f32, ss: usize, dst: *mut f32, ds: usize, rows: usize, n: usize, add: f32) {
        unsafe {
            let a = _mm512_set1_ps(add);
            let tail = (n % 16, n - n % 16);
            let mask: __mmask16 = ((1u32 << tail.0) - 1) as __mmask16;
            for r in 0..rows {
                let (s, d) = (src.add(r * ss), dst.add(r * ds));
                let mut j = 0;
                while j < tail.1 {
                    _mm512_storeu_ps(d.add(j), _mm512_add_ps(_mm512_loadu_ps(s.add(j)), a));
                    j += 16;
                }
                if tail.0 > 0 {
                    let v = _mm512_maskz_loadu_ps(mask, s.add(j));
                    _mm512_mask_storeu_ps(d.add(j), mask, _mm512_add_ps(v, a));
                }
            }
        }
    }

    /// dw[r·stride + t] += Σ_{q < qr} gq[r·gs + q] · xp[q + offs[t]] for r < R ≤ 3, t < 9.
    ///
    /// # Safety
    /// AVX-512F and VL; qr is a multiple of 16 and every address above is inside its buffer.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dw_tile<const R: usize>(
        gq: *const f32,
        gs: usize,
        xp: *const f32,
        offs: &[usize; 9],
        qr: usize,
        dw: *mut f32,
        stride: usize,
    ) {
        unsafe {
            // AVX512VL matters here: without it the 128/256-bit instructions of the final
            // reductions cannot address zmm16–31, so LLVM kept the accumulators in zmm0–15 and
            // spilled a third of them to the stack on every iteration.
            let mut acc = [_mm512_setzero_ps(); 27];
            let xs: [*const f32; 9] = std::array::from_fn(|t| xp.add(offs[t]));
            let mut q = 0;
            while q < qr {
                let g0 = _mm512_loadu_ps(gq.add(q));
                let g1 = if R > 1 { _mm512_loadu_ps(gq.add(gs + q)) } else { g0 };
                let g2 = if R > 2 { _mm512_loadu_ps(gq.add(2 * gs + q)) } else { g0 };
                for t in 0..9 {
                    let xv = _mm512_loadu_ps(xs[t].add(q));
                    acc[t] = _mm512_fmadd_ps(g0, xv, acc[t]);
                    if R > 1 {
                        acc[9 + t] = _mm512_fmadd_ps(g1, xv, acc[9 + t]);
                    }
                    if R > 2 {
                        acc[18 + t] = _mm512_fmadd_ps(g2, xv, acc[18 + t]);
                    }
                }
                q += 16;
            }
            for r in 0..R {
                for t in 0..9 {
                    *dw.add(r * stride + t) += _mm512_reduce_add_ps(acc[r * 9 + t]);
                }
            }
        }
    }
}

/// yq[o, q] = init[o] + Σ_i Σ_t w[o, i, t] · xp[i, q + off_t] for every o < cout, q < qr,
/// with `wk` from [`pack`].
fn conv_planes(xp: &[f32], cin: usize, g: Geom, wk: &[f32], cout: usize, init: &[f32], yq: &mut [f32]) {
    assert!(xp.len() >= cin * g.ps && wk.len() >= cout * cin * 9 && init.len() >= cout);
    assert!(yq.len() >= cout * g.qr);
    let offs = g.offs();
    #[cfg(target_arch = "x86_64")]
    for o0 in (0..cout).step_by(RO) {
        let rb = RO.min(cout - o0);
        let wb = wk[o0 * cin * 9..].as_ptr();
        let out = yq[o0 * g.qr..].as_mut_ptr();
        let ib = &init[o0..];
        let mut q0 = 0;
        macro_rules! tile {
            ($v:literal) => {
                // SAFETY: `available()` was checked by the caller; loads reach at most
                // i·ps + qr − 1 + 2·wp + 2 < (i + 1)·ps, stores (o0 + r)·qr + qr − 1, weights
                // o0·cin·9 + cin·9·rb − 1 (asserted lengths above).
                unsafe {
                    match rb {
                        8 => x86::conv_tile::<8, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        7 => x86::conv_tile::<7, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        6 => x86::conv_tile::<6, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        5 => x86::conv_tile::<5, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        4 => x86::conv_tile::<4, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        3 => x86::conv_tile::<3, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        2 => x86::conv_tile::<2, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                        _ => x86::conv_tile::<1, $v>(xp.as_ptr(), g.ps, cin, &offs, wb, ib, out, g.qr, q0),
                    }
                }
            };
        }
        while q0 + 48 <= g.qr {
            tile!(3);
            q0 += 48;
        }
        while q0 < g.qr {
            tile!(1);
            q0 += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct convolution without AVX-512 ({xp:?}{wk:?}{yq:?}{init:?}{cin}{cout}{g:?})");
}

/// dw[o, i, t] += Σ_q gq[o, q] · xp[i, q + off_t], gq rows `gs` apart (zero where q is a
/// padding column or past h·wp).
fn dw_planes(gq: &[f32], gs: usize, cout: usize, xp: &[f32], cin: usize, g: Geom, dw: &mut [f32]) {
    assert!(gq.len() >= (cout - 1) * gs + g.qr && xp.len() >= cin * g.ps && dw.len() >= cout * cin * 9);
    let offs = g.offs();
    #[cfg(target_arch = "x86_64")]
    for o0 in (0..cout).step_by(RW) {
        for i in 0..cin {
            let (gp, xpi) = (gq[o0 * gs..].as_ptr(), xp[i * g.ps..].as_ptr());
            let d = dw[(o0 * cin + i) * 9..].as_mut_ptr();
            let stride = cin * 9;
            // SAFETY: `available()` was checked by the caller; reads reach (o0 + r)·gs + qr − 1
            // and i·ps + qr − 1 + 2·wp + 2, writes (o0 + r)·cin·9 + i·9 + 8 (asserted above).
            unsafe {
                match RW.min(cout - o0) {
                    3 => x86::dw_tile::<3>(gp, gs, xpi, &offs, g.qr, d, stride),
                    2 => x86::dw_tile::<2>(gp, gs, xpi, &offs, g.qr, d, stride),
                    _ => x86::dw_tile::<1>(gp, gs, xpi, &offs, g.qr, d, stride),
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct convolution without AVX-512 ({gq:?}{gs}{cout}{xp:?}{cin}{g:?}{dw:?})");
}

/// dst[c, r, col] = src[c, r·wp + col] (+ add[c]) for the h×w valid outputs of each plane.
fn unpad(src: &[f32], c: usize, g: Geom, add: Option<&[f32]>, dst: &mut [MaybeUninit<f32>]) {
    for ch in 0..c {
        let a = add.map_or(0.0, |a| a[ch]);
        let d = &mut dst[ch * g.h * g.w..];
        copy_rows(
            &src[ch * g.qr..],
            g.wp,
            (d.as_mut_ptr() as *mut f32, d.len()),
            g.w,
            g.h,
            g.w,
            a,
        );
    }
}

/// y = conv3×3(x, w) + b for a batch, samples in parallel; `out` is [bs, co, h, w].
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    xs: &[f32],
    ws: &[f32],
    bias: &[f32],
    (bs, ci, co, h, w): (usize, usize, usize, usize, usize),
    out: &mut [MaybeUninit<f32>],
) {
    let g = Geom::new(h, w);
    let wk = pack(co, ci, |o, i, t| ws[(o * ci + i) * 9 + t]);
    let hw = h * w;
    // The bias is added while unpadding (after the sums, as the im2col path adds it).
    let zeros = vec![0.0f32; co];
    out.par_chunks_mut(co * hw)
        .zip(xs.par_chunks(ci * hw))
        .with_min_len(per_task(bs))
        .for_each_init(
            || (Vec::new(), vec![0.0f32; co * g.qr]),
            |(xp, yq), (yb, xb)| {
                pad(xb, ci, g, xp);
                conv_planes(xp, ci, g, &wk, co, &zeros, yq);
                unpad(yq, co, g, Some(bias), yb);
            },
        );
}

/// (∂W summed over the batch, with ∂x written into `dx` when given) for output gradient `gs`;
/// ∂W is [co, ci, 3, 3].
pub(super) fn backward(
    xs: &[f32],
    ws: &[f32],
    gs: &[f32],
    (bs, ci, co, h, w): (usize, usize, usize, usize, usize),
    dx: Option<&mut [MaybeUninit<f32>]>,
    want_dw: bool,
) -> Vec<f32> {
    let g = Geom::new(h, w);
    let hw = h * w;
    // ∂x is the forward with outputs and inputs swapped and the taps flipped.
    let wt = pack(ci, co, |i, o, t| ws[(o * ci + i) * 9 + 8 - t]);
    let zeros = vec![0.0f32; ci];
    let one = |b: usize, dxb: Option<&mut [MaybeUninit<f32>]>, bufs: &mut Bufs| {
        let gb = &gs[b * co * hw..(b + 1) * co * hw];
        pad(gb, co, g, &mut bufs.gp);
        if want_dw {
            pad(&xs[b * ci * hw..(b + 1) * ci * hw], ci, g, &mut bufs.xp);
            if bufs.dw.is_empty() {
                bufs.dw.resize(co * ci * 9, 0.0);
            }
            // ∂yq[o, q] = ∂yp[o, q + wp + 1]: the padded gradient read one row and one column on.
            dw_planes(&bufs.gp[g.wp + 1..], g.ps, co, &bufs.xp, ci, g, &mut bufs.dw);
        }
        if let Some(dxb) = dxb {
            bufs.dxq.resize(ci * g.qr, 0.0);
            conv_planes(&bufs.gp, co, g, &wt, ci, &zeros, &mut bufs.dxq);
            unpad(&bufs.dxq, ci, g, None, dxb);
        }
    };
    let accs: Vec<Vec<f32>> = match dx {
        Some(dx) => dx
            .par_chunks_mut(ci * hw)
            .enumerate()
            .with_min_len(per_task(bs))
            .fold(Bufs::default, |mut bufs, (b, dxb)| {
                one(b, Some(dxb), &mut bufs);
                bufs
            })
            .map(|bufs| bufs.dw)
            .collect(),
        None => (0..bs)
            .into_par_iter()
            .with_min_len(per_task(bs))
            .fold(Bufs::default, |mut bufs, b| {
                one(b, None, &mut bufs);
                bufs
            })
            .map(|bufs| bufs.dw)
            .collect(),
    };
    sum_parts(&accs, co * ci * 9)
}

/// Per-task scratch of [`backward`].
#[derive(Default)]
struct Bufs {
    xp: Vec<f32>,
    gp: Vec<f32>,
    dxq: Vec<f32>,
    dw: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a CPU without AVX-512 there is nothing to compare: checks that the convolution takes
    /// the im2col path there (tested against burn's conv2d in conv.rs) and says to skip.
    fn without_avx512() -> bool {
        let without = !available();
        if without {
            assert!(
                !super::super::conv::use_direct(3, 64),
                "direct kernels chosen without AVX-512"
            );
        }
        without
    }

    /// Plain loops: y[o, r, c] = b[o] + Σ_i Σ_{dy,dx} w[o, i, dy, dx] · x[i, r + dy − 1, c + dx − 1].
    fn reference(x: &[f32], w: &[f32], b: &[f32], (ci, co, h, wd): (usize, usize, usize, usize)) -> Vec<f64> {
        let mut y = vec![0.0f64; co * h * wd];
        for o in 0..co {
            for r in 0..h {
                for c in 0..wd {
                    let mut s = b[o] as f64;
                    for i in 0..ci {
                        for t in 0..9 {
                            let (yy, xx) = (r as isize + (t / 3) as isize - 1, c as isize + (t % 3) as isize - 1);
                            if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                s += (w[(o * ci + i) * 9 + t] * x[(i * h + yy as usize) * wd + xx as usize]) as f64;
                            }
                        }
                    }
                    y[(o * h + r) * wd + c] = s;
                }
            }
        }
        y
    }

    /// One sample's forward against plain loops, for channel counts that exercise every
    /// register-tile size (1–8 and 9–11 outputs) and images whose padded planes end mid-vector.
    #[test]
    fn forward_matches_plain_loops_on_every_tile_size() {
        if without_avx512() {
            return;
        }
        let mut rng = crate::rng::Rng::new(3);
        for &(ci, co, h, wd) in &[
            (1usize, 1usize, 1usize, 1usize),
            (2, 3, 5, 7),
            (3, 8, 9, 4),
            (5, 11, 6, 13),
            (4, 9, 28, 28),
            (2, 5, 7, 7),
        ] {
            let x = rng.normal_vec(ci * h * wd);
            let w = rng.normal_vec(co * ci * 9);
            let b = rng.normal_vec(co);
            let mut out = vec![MaybeUninit::uninit(); co * h * wd];
            forward(&x, &w, &b, (1, ci, co, h, wd), &mut out);
            // SAFETY: forward writes every output.
            let y: Vec<f32> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
            let r = reference(&x, &w, &b, (ci, co, h, wd));
            for (a, e) in y.iter().zip(&r) {
                assert!(
                    (*a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()),
                    "{ci}->{co} {h}x{wd}: {a} vs {e}"
                );
            }
        }
    }

    /// The batch forward and backward (∂x, ∂W summed over samples) against burn's conv2d under
    /// autodiff, on odd shapes and batches that split unevenly across the threads.
    #[test]
    fn forward_and_backward_match_burn_conv2d() {
        use crate::tensor::to_vec;
        use burn::prelude::*;
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        if without_avx512() {
            return;
        }
        let dev = Device::flex();
        let mut rng = crate::rng::Rng::new(17);
        for &(bs, ci, co, h, wd) in &[
            (1usize, 1usize, 2usize, 3usize, 3usize),
            (5, 3, 7, 9, 6),
            (7, 10, 4, 14, 14),
            (3, 16, 16, 28, 28),
            (9, 2, 11, 5, 12),
        ] {
            let x = rng.normal_tensor([bs, ci, h, wd], &dev);
            let w = rng.normal_tensor([co, ci, 3, 3], &dev);
            let b = rng.normal_tensor([co], &dev);
            let up = rng.normal_tensor([bs, co, h, wd], &dev);
            let (xa, wa) = (x.clone().autodiff().require_grad(), w.clone().autodiff().require_grad());
            let y = conv2d(
                xa.clone(),
                wa.clone(),
                Some(b.clone().autodiff()),
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let yr = to_vec(y.clone().detach());
            let grads = (y * up.clone().autodiff()).sum().backward();
            let (dxr, dwr) = (to_vec(xa.grad(&grads).unwrap()), to_vec(wa.grad(&grads).unwrap()));
            let (xs, ws, bv, gs) = (to_vec(x), to_vec(w), to_vec(b), to_vec(up));
            let dims = (bs, ci, co, h, wd);
            let mut out = vec![MaybeUninit::uninit(); bs * co * h * wd];
            forward(&xs, &ws, &bv, dims, &mut out);
            let mut dx = vec![MaybeUninit::uninit(); bs * ci * h * wd];
            let dw = backward(&xs, &ws, &gs, dims, Some(&mut dx), true);
            let dw_only = backward(&xs, &ws, &gs, dims, None, true);
            // SAFETY: forward and backward write every element.
            let init = |v: &[MaybeUninit<f32>]| -> Vec<f32> { v.iter().map(|e| unsafe { e.assume_init() }).collect() };
            for (name, a, r) in [
                ("y", init(&out), &yr),
                ("dx", init(&dx), &dxr),
                ("dw", dw, &dwr),
                ("dw alone", dw_only, &dwr),
            ] {
                let scale = r.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let e = a
                    .iter()
                    .zip(r.iter())
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    e <= 1e-5 * scale * (ci * 9) as f32,
                    "b{bs} {ci}->{co} {h}x{wd}: {name} differs by {e} (scale {scale})"
                );
            }
        }
    }
}
