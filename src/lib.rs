//! # consistency-models
//!
//! Train, sample and evaluate consistency models in Rust on burn's CPU backend.
//!
//! Concept map (dependencies run downwards):
//! - [`rng`]: the single seeded source of randomness.
//! - [`schedule`]: noise grids and curricula, plain f64 functions of the step.
//! - [`param`]: parameterisations (c_skip, c_out, c_in, c_noise), the only place they live.
//! - [`nets`]: backbones with forward and exact tangent (JVP) passes.
//! - [`model`]: backbone + parameterisation; denoisers (exact or trained).
//! - [`objectives`]: one file per method behind one trait; [`samplers`]: stateless samplers.
//! - [`train`]: the method-agnostic loop; [`ckpt`]: atomic safetensors checkpoints.
//! - [`data`], [`eval`]: data sets with exact oracles, sample-set metrics.
//!
//! Time conventions (METHODS.md §0): EDM σ ∈ [ε, T] for CM/iCT/ECT/CTM, TrigFlow t ∈ [0, π/2]
//! for sCM, FACM's reversed t ∈ [0, 1] (t = 1 data) and MeanFlow's t ∈ [0, 1] (t = 0 data).
//! Each module states which one it uses.

pub mod bench;
pub mod ckpt;
pub mod config;
pub mod data;
pub mod demo;
pub mod eval;
pub mod fetch;
pub mod imgmetrics;
pub mod lpips;
pub mod model;
pub mod nets;
pub mod objectives;
pub mod param;
pub mod plot;
pub mod process;
pub mod rng;
pub mod samplers;
pub mod schedule;
pub mod train;

/// Keeps freed tensor buffers in the process heap instead of returning them to the OS.
///
/// A training step allocates and frees the same few-megabyte activation buffers every step;
/// glibc serves blocks over its (adaptive, ≤ 32 MiB) mmap threshold with fresh `mmap`s, whose
/// pages fault in (and are zeroed by the kernel) on first touch, and trims the heap top on
/// free. Raising both thresholds made the MNIST U-Net step 15 % faster (`examples/unetprof.rs`;
/// page faults were 9 % of its profile). Called by the `cm` binary and [`train::Trainer::new`];
/// a no-op on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only adjusts glibc's allocator parameters; both values are in range
            // (the mmap threshold's maximum is 32 MiB on 64-bit glibc).
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}
