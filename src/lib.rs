#![warn(missing_docs)]
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
pub mod cli;
pub mod config;
pub mod data;
pub mod demo;
pub mod eval;
pub mod fetch;
pub mod generate;
pub mod io;
pub mod lpips;
pub mod model;
pub mod nets;
pub mod objectives;
pub mod precond;
pub mod process;
pub mod rng;
pub mod run;
pub mod samplers;
pub mod schedule;
pub mod tensor;
pub mod train;
