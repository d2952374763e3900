//! Integration tests: the real `cm` executable and the library through its public API.
//!
//! One test binary (`cargo test --release --test it`); modules by concern. If you are adding
//! something new, find the concern below; a new method needs only its row in `conformance`
//! (and, if it trains briefly to a measurable result, a short run in `methods`).

/// The audit's regression tests (`cargo test --release audit_`): one per finding of ../shared/docs/AUDIT.md.
mod audit;
/// A wrong file, flag or config gives a clear error naming the problem (CLI and library).
mod bad_input;
/// Shared helpers: small configs, scratch folders, bit-exact state comparison, running `cm`.
mod common;
/// `cm demo --compare`: equal-time comparison runs, outputs, continuing.
mod compare;
/// Class-conditional networks: labels in training, sampling and the tangent pass.
mod conditional;
/// The shipped configs parse, stay in step with their tiny copies, and train.
mod configs;
/// The method contract per method (one test each) and the sampler table.
mod conformance;
/// Fault injection: full disk, read-only folder, folder deleted or replaced, damaged
/// checkpoints, torn log, another method's checkpoint, reading a live run.
mod faults;
/// `cm eval --fid-weights`: FID on Inception features for folders of images, and its errors.
mod fid;
/// Bounded mutation loops over every loader (the long ones are `#[ignore]`d).
mod fuzzloop;
/// Numbers our code must reproduce, computed once with a reference implementation.
mod golden;
/// SIGKILL and SIGTERM at random moments, then resume: bit-identical to an uninterrupted run.
mod kill;
/// Method-level checks: boundary conditions, teacher steps, and short training runs that must
/// beat the untrained model by a measured margin.
mod methods;
/// The shipped models in models/: each loads, samples and is described in models/README.md.
mod models;
/// Non-finite losses and gradients skip the update and leave the state untouched.
mod nonfinite;
/// Property tests: loaders never panic, files round-trip.
mod props;
/// One test per fixed bug that is not covered elsewhere. Try not to add more.
mod regressions;
/// `cm repro --quick`: every 2-D claim end to end, its outputs, resumption and statistics.
mod repro;
/// Stop and resume at the library level, seed determinism.
mod resume;
/// Run folders never destroy data: ownership, protected paths, the demo's replace, locking.
mod runfolder;
