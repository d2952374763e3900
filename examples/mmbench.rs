//! Matrix-multiply throughput at the 2-D MLP's shapes (batch 512: the 512-wide hidden layers,
//! the modulation layers' 128 → 1024, the time embedding's 32 → 128, the 2-D input and output
//! layers), burn's matmul (the `gemm` crate on flex). Prints ms and GFLOP/s;
//! `bench/pytorch/mmbench.py` is the PyTorch twin (same shapes, its defaults, 2 threads).
use burn::prelude::*;
use cm::rng::Rng;
use std::time::Instant;
fn main() {
    // As in training: freed buffers stay in the heap (otherwise every 1 MiB result is a fresh
    // mmap whose page faults cost more than the multiply).
    cm::train::tune_allocator();
    let dev = Device::flex();
    let mut rng = Rng::new(1);
    for &(m, k, n) in &[
        (512usize, 512usize, 512usize),
        (512, 128, 1024),
        (512, 32, 128),
        (512, 2, 512),
        (512, 512, 2),
    ] {
        let a = rng.normal_tensor([m, k], &dev);
        let b = rng.normal_tensor([k, n], &dev);
        let reps = 200;
        let _ = a.clone().matmul(b.clone());
        let t0 = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(a.clone().matmul(b.clone()));
        }
        let s = t0.elapsed().as_secs_f64() / reps as f64;
        println!(
            "burn {m}x{k}x{n}: {:.3} ms, {:.1} GFLOP/s",
            s * 1e3,
            2.0 * (m * k * n) as f64 / s / 1e9
        );
    }
}
