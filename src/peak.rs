//! The machine's arithmetic peak, measured: `cm bench` divides every figure's achieved
//! GFLOP/s by it, so "x % of peak" is read off this machine rather than a data sheet.
//!
//! Why a kernel of our own: the peak is what the FMA units can retire when nothing else
//! limits them, and no library op measures that (a GEMM's figure is already a share of it).
//! Each thread runs a loop of independent fused multiply-adds on 12 vector registers (enough
//! to cover the 4-cycle latency of two FMA pipes), with no memory traffic, on every rayon
//! thread at once; the best of three 0.2 s rounds is kept. fp32 uses AVX-512F
//! (`vfmadd` on 16 lanes) or AVX2+FMA (8 lanes); bf16 uses AVX512-BF16's `vdpbf16ps`, which
//! retires 32 bf16 products accumulated in fp32 per instruction (2 FLOPs each, the
//! convention of vendors' bf16 figures). Measured here (AMD EPYC Zen 5, 2 cores, with two
//! single-thread jobs beside it): 135 GFLOP/s fp32 and 290 GFLOP/s bf16 on one thread.
//! Elsewhere (another architecture, no AVX2) the figure is None: "not measured", never a
//! guess.

use std::time::Instant;

/// Independent accumulators per thread.
const ACC: usize = 12;
/// Inner iterations between clock reads.
const CHUNK: usize = 100_000;

/// FLOPs of one inner iteration of each kernel: ACC vector FMAs of `lanes` lanes, 2 FLOPs each.
fn iter_flops(lanes: usize) -> f64 {
    (ACC * lanes * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{ACC, CHUNK};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512() -> f32 {
        let mut a = [_mm512_set1_ps(1.0); ACC];
        let b = _mm512_set1_ps(0.999_999);
        let c = _mm512_set1_ps(1e-7);
        for _ in 0..CHUNK {
            for x in a.iter_mut() {
                *x = _mm512_fmadd_ps(*x, b, c);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in a {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256() -> f32 {
        let mut a = [_mm256_set1_ps(1.0); ACC];
        let b = _mm256_set1_ps(0.999_999);
        let c = _mm256_set1_ps(1e-7);
        for _ in 0..CHUNK {
            for x in a.iter_mut() {
                *x = _mm256_fmadd_ps(*x, b, c);
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in a {
            s = _mm256_add_ps(s, x);
        }
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        out.iter().sum()
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dot_bf16() -> f32 {
        let mut a = [_mm512_setzero_ps(); ACC];
        // 1.0 in bf16 (0x3F80) in all 32 lanes.
        let b: __m512bh = std::mem::transmute(_mm512_set1_epi16(0x3F80));
        for _ in 0..CHUNK {
            for x in a.iter_mut() {
                *x = _mm512_dpbf16_ps(*x, b, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in a {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }
}

/// The kernel for a precision on this CPU: (one chunk, lanes), or None.
fn kernel(bf16: bool) -> Option<(fn() -> f32, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (all three): each kernel is called only after the CPU reported the features
        // it is compiled for.
        if bf16 {
            if std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512f") {
                return Some((|| unsafe { x86::dot_bf16() }, 32));
            }
            return None;
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some((|| unsafe { x86::fma512() }, 16));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Some((|| unsafe { x86::fma256() }, 8));
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = bf16;
        None
    }
}

/// Peak GFLOP/s of all rayon threads together, fp32 FMAs (`bf16` false) or bf16 dot products
/// accumulated in fp32 (`bf16` true); None where this CPU has no such instructions (or the
/// architecture is not x86-64). `seconds` per round, best of three rounds.
pub fn peak_gflops(bf16: bool, seconds: f64) -> Option<f64> {
    let (chunk, lanes) = kernel(bf16)?;
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let iters: Vec<usize> = rayon::broadcast(|_| {
            let start = Instant::now();
            let mut n = 0usize;
            let mut sink = 0.0f32;
            while n == 0 || start.elapsed().as_secs_f64() < seconds {
                sink += chunk();
                n += 1;
            }
            std::hint::black_box(sink);
            n
        });
        let elapsed = t0.elapsed().as_secs_f64();
        let flops = iters.iter().sum::<usize>() as f64 * CHUNK as f64 * iter_flops(lanes);
        best = best.max(flops / elapsed / 1e9);
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels run and give a positive figure where the CPU has them, and the FLOP count
    /// of one iteration is 12 vector FMAs × lanes × 2 (no time is asserted).
    #[test]
    fn peak_kernels_run_and_count_their_flops() {
        assert_eq!(iter_flops(16), 384.0);
        for bf16 in [false, true] {
            match peak_gflops(bf16, 0.01) {
                Some(g) => assert!(g.is_finite() && g > 0.0, "bf16 {bf16}: {g}"),
                None => assert!(kernel(bf16).is_none()),
            }
        }
    }
}
