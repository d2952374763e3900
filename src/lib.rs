#![warn(missing_docs)]
//! # consistency-models
//!
//! Train, sample and evaluate consistency models in Rust on burn's CPU backend.
//!
//! Concept map, top to bottom (a module imports only what stands below it; the README's
//! "Where things go" says where each new piece belongs and what it must never touch):
//! - [`cli`] (command bodies) and [`demo`] (the main job), [`compare`] (methods at equal
//!   training time), [`bench`], [`repro`] (the papers'
//!   claims as seeded experiments with verdicts).
//! - [`eval`]: sample-set metrics, image metrics, the exact-oracle references.
//! - [`generate`]: sampling a run in data coordinates; [`train`]: the method-agnostic loop,
//!   the optimizer and EMA.
//! - [`run`]: config → data, model, objective, teacher; checkpoint → run.
//! - [`config`]: TOML experiments and the backbone registry.
//! - [`objectives`]: one file per method behind one trait; `objectives::registry` is the only
//!   place that matches on a method's name.
//! - [`samplers`]: times in, samples out; [`model`]: backbone + parameterisation (eval, raw,
//!   JVP); [`data`], [`ckpt`], [`fetch`].
//! - [`nets`]: backbones with forward and exact tangent (JVP) passes, and the CPU kernels;
//!   [`process`]: time conversions between conventions, the `Denoiser` trait.
//! - Ground: [`rng`] (the single seeded source of randomness), [`schedule`] (grids,
//!   curricula and the default ε, T, ρ), [`precond`] (c_skip, c_out, c_in, c_noise, the only
//!   place they live), [`lpips`], [`tensor`], [`io`] (the atomic writer, plots).
//!
//! Time conventions (METHODS.md §0): EDM σ ∈ [ε, T] for CM/iCT/ECT/CTM, TrigFlow t ∈ [0, π/2]
//! for sCM, FACM's reversed t ∈ [0, 1] (t = 1 data) and MeanFlow's t ∈ [0, 1] (t = 0 data).
//! Each module states which one it uses.

pub mod bench;
pub mod ckpt;
pub mod cli;
pub mod compare;
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
pub mod peak;
pub mod precond;
pub mod process;
pub mod repro;
pub mod rng;
pub mod run;
pub mod samplers;
pub mod schedule;
pub mod tensor;
pub mod train;
