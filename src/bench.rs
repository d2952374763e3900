//! `cm bench`: training steps/s and sampling latency of the standard 2-D config
//! (MLP 2→512→512→512→2, batch 512). Printed, never asserted.

use crate::config::Config;
use crate::rng::Rng;
use crate::train::{Setup, Trainer};
use anyhow::Result;
use burn::prelude::*;
use std::time::Instant;

/// Runs the benchmarks; returns (name, value) pairs.
pub fn run(steps: u64) -> Result<Vec<(String, f64)>> {
    let device = Device::flex();
    let mut out = Vec::new();
    for method in ["ict", "edm"] {
        let mut cfg = Config::default();
        cfg.method = crate::objectives::MethodConfig::by_name(method)?;
        cfg.train.steps = steps + 10;
        let mut t = Trainer::new(Setup::new(&cfg, &device)?)?;
        for _ in 0..10 {
            t.step();
        }
        let t0 = Instant::now();
        for _ in 0..steps {
            t.step();
        }
        out.push((
            format!("train_{method}_mlp512_b512_steps_per_s"),
            steps as f64 / t0.elapsed().as_secs_f64(),
        ));
        if method == "ict" {
            for b in [1usize, 256] {
                let mut rng = Rng::new(1);
                let reps = if b == 1 { 2000 } else { 200 };
                let p = t.ema_net().to_vec();
                for _ in 0..10 {
                    let _ = crate::nets::to_vec(crate::samplers::generate(
                        &t.setup.objective.sampler(),
                        &t.setup.model,
                        &p,
                        b,
                        1,
                        &mut rng,
                        &device,
                    ));
                }
                let t0 = Instant::now();
                for _ in 0..reps {
                    let _ = crate::nets::to_vec(crate::samplers::generate(
                        &t.setup.objective.sampler(),
                        &t.setup.model,
                        &p,
                        b,
                        1,
                        &mut rng,
                        &device,
                    ));
                }
                out.push((
                    format!("sample_1step_batch{b}_latency_ms"),
                    t0.elapsed().as_secs_f64() * 1e3 / reps as f64,
                ));
            }
        }
    }
    Ok(out)
}
