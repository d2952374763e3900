//! `cm bench`: training steps/s and sampling latency of the standard 2-D config
//! (MLP 2→512→512→512→2, batch 512), the cost of the MLP's tangent (JVP) pass relative to its
//! forward pass, and the iCT step of two U-Nets (the small bench U-Net and the MNIST recipes'
//! U-Net). Each figure also gets its FLOPs per step (analytic, [`Backbone::forward_flops`] ×
//! batch × the method's [`crate::objectives::MethodConfig::step_passes`]), the achieved
//! GFLOP/s and its share of the machine's fp32 peak measured by [`crate::peak`]. Printed,
//! never asserted. Twins: `bench/pytorch/bench_mlp.py`, `bench/pytorch/bench_unet.py`.

use crate::config::Config;
use crate::nets::Backbone;
use crate::rng::Rng;
use crate::run::Setup;
use crate::samplers::Noise;
use crate::tensor::col;
use crate::train::Trainer;
use anyhow::Result;
use burn::prelude::*;
use std::time::Instant;

/// How much work each figure gets.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Timed training steps per method (after `warmup` untimed ones).
    pub steps: u64,
    /// Untimed training steps before the timed ones (10 in the standard plan).
    pub warmup: u64,
    /// Timed one-step samples at batch 1 (2000 in the standard plan).
    pub reps_b1: usize,
    /// Timed one-step samples at batch 256 (200 in the standard plan).
    pub reps_b256: usize,
    /// Timed forward/JVP pairs at batch 512.
    pub reps_jvp: usize,
}

impl Plan {
    /// The standard plan of `cm bench --steps N`.
    pub fn standard(steps: u64) -> Self {
        Self {
            steps,
            warmup: 10,
            reps_b1: 2000,
            reps_b256: 200,
            reps_jvp: 200,
        }
    }
}

/// Methods whose training step is timed: iCT and EDM (the PyTorch twin's), sCT (one JVP pass
/// per step) and CTM (exact-teacher solver step, two-time network).
pub const TRAIN_METHODS: &[&str] = &["ict", "edm", "sct", "ctm"];

/// Runs the benchmarks; returns (name, value) pairs.
pub fn run(steps: u64, device: &Device) -> Result<Vec<(String, f64)>> {
    run_plan(Plan::standard(steps), device)
}

/// Runs the benchmarks with an explicit amount of work (tests use a tiny plan).
pub fn run_plan(plan: Plan, device: &Device) -> Result<Vec<(String, f64)>> {
    let device = device.clone();
    let mut out = Vec::new();
    // The measured peak is the CPU's (src/peak.rs): on a GPU device a peak share against it
    // would mean nothing, so the figures there carry FLOPs and GFLOP/s only.
    let on_cpu = device == Device::flex();
    // Measured first, before anything else warms the caches or the clocks; a short round in
    // the tiny plan of the tests.
    let round = if plan.steps > 1 { 0.2 } else { 0.01 };
    let peak = if on_cpu {
        crate::peak::peak_gflops(false, round)
    } else {
        None
    };
    if let Some(p) = peak {
        out.push(("peak_fp32_gflops".into(), p));
    }
    if let Some(p) = on_cpu.then(|| crate::peak::peak_gflops(true, round)).flatten() {
        out.push(("peak_bf16_gflops".into(), p));
    }
    for &method in TRAIN_METHODS {
        let mut cfg = Config::default();
        cfg.method = crate::objectives::MethodConfig::by_name(method)?;
        let name = format!("train_{method}_mlp512_b512");
        let t = train_figure(&name, cfg, plan.warmup, plan.steps, &device, peak, &mut out)?;
        if method == "ict" {
            for (b, reps) in [(1usize, plan.reps_b1), (256, plan.reps_b256)] {
                let mut rng = Rng::new(1);
                let p = t.ema_net().to_vec();
                let sampler = t.setup.sampler();
                let times = sampler.times(1);
                let once = |rng: &mut Rng| {
                    let x = sampler.generate(&t.setup.model, &p, b, &times, &mut Noise::Stream(rng), &device);
                    let _ = crate::tensor::to_vec(x);
                };
                for _ in 0..10 {
                    once(&mut rng);
                }
                let t0 = Instant::now();
                for _ in 0..reps {
                    once(&mut rng);
                }
                let ms = t0.elapsed().as_secs_f64() * 1e3 / reps.max(1) as f64;
                out.push((format!("sample_1step_batch{b}_latency_ms"), ms));
                let flops = t.setup.model.net.forward_flops().map(|f| f * b as f64);
                work(&mut out, &format!("sample_1step_batch{b}"), flops, 1e3 / ms, peak);
            }
            let (fwd, jvp) = jvp_vs_forward(t.setup.model.net.as_ref(), t.ema_net(), 512, plan.reps_jvp, &device);
            out.push(("mlp512_b512_forward_ms".into(), fwd));
            out.push(("mlp512_b512_jvp_ms".into(), jvp));
            out.push(("mlp512_b512_jvp_over_forward".into(), jvp / fwd));
        }
    }
    for (name, cfg) in [
        ("unet16_mnist28_b64", unet_config()),
        ("unet_recipe_mnist28_b64", recipe_unet_config()),
    ] {
        // iCT, and sCT (the exact JVP through the U-Net: the tangent pass of the
        // continuous-time methods sCT/sCD, MeanFlow and FACM).
        unet_figure(name, "ict", cfg.clone(), plan, &device, peak, &mut out)?;
        unet_figure(name, "sct", cfg, plan, &device, peak, &mut out)?;
    }
    Ok(out)
}

/// Resets the process's peak resident set size (Linux: writing 5 to /proc/self/clear_refs sets
/// VmHWM to the current RSS), so that [`peak_rss_mb`] after a figure is that figure's peak,
/// as the PyTorch twins measure theirs. Elsewhere a no-op.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set size since the last [`reset_peak_rss`], in MiB (VmHWM of
/// /proc/self/status): the whole process, code and allocator caches included, as a user's
/// `top` sees it. None where /proc is not there.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// FLOPs of one training step of the trainer's config (None where the method's step is not
/// counted).
fn step_flops(t: &Trainer) -> Option<f64> {
    let cfg = &t.setup.cfg;
    let f = t.setup.model.net.forward_flops()?;
    Some(f * cfg.data.batch as f64 * cfg.method.step_passes()?)
}

/// `{name}_gflop_per_step`, `{name}_gflops` (achieved at `rate` steps/s) and `{name}_peak_share`
/// (of the fp32 peak) when the FLOPs are counted and the peak measured.
fn work(out: &mut Vec<(String, f64)>, name: &str, flops: Option<f64>, rate: f64, peak: Option<f64>) {
    let Some(f) = flops else { return };
    out.push((format!("{name}_gflop_per_step"), f / 1e9));
    let achieved = f * rate / 1e9;
    out.push((format!("{name}_gflops"), achieved));
    if let Some(p) = peak {
        out.push((format!("{name}_peak_share"), achieved / p));
    }
}

/// Milliseconds per `Backbone::forward` and per `Backbone::jvp` (plain tensors, batch `b`),
/// timed in alternation so that both see the same machine load; each call ends in a host read.
pub fn jvp_vs_forward(net: &dyn Backbone, p: &[Tensor<1>], b: usize, reps: usize, device: &Device) -> (f64, f64) {
    let mut rng = Rng::new(2);
    let x = rng.normal_tensor([b, net.dim()], device);
    let dx = rng.normal_tensor([b, net.dim()], device);
    let c: Vec<f64> = (0..b).map(|_| rng.normal()).collect();
    let cond: Vec<Tensor<2>> = (0..net.n_times()).map(|_| col(&c, &x)).collect();
    let dcond: Vec<Tensor<2>> = (0..net.n_times()).map(|_| col(&vec![1.0; b], &x)).collect();
    let fwd = || {
        let y = net.forward(p, x.clone(), &cond, None);
        let _ = crate::tensor::to_vec(y);
    };
    let jvp = || {
        let (y, dy) = net.jvp(p, x.clone(), dx.clone(), &cond, &dcond, None);
        let _ = crate::tensor::to_vec(Tensor::cat(vec![y, dy], 1));
    };
    for _ in 0..5 {
        fwd();
        jvp();
    }
    let (mut tf, mut tj) = (0.0, 0.0);
    for _ in 0..reps {
        let t0 = Instant::now();
        fwd();
        tf += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        jvp();
        tj += t0.elapsed().as_secs_f64();
    }
    let n = reps.max(1) as f64;
    (tf * 1e3 / n, tj * 1e3 / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench code path with a tiny plan, so that it cannot rot (no timing asserts).
    #[test]
    fn bench_runs_with_a_tiny_plan() {
        let r = run_plan(
            Plan {
                steps: 1,
                warmup: 1,
                reps_b1: 1,
                reps_b256: 1,
                reps_jvp: 1,
            },
            &Device::flex(),
        )
        .unwrap();
        let names: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        for m in TRAIN_METHODS {
            assert!(
                names.contains(&format!("train_{m}_mlp512_b512_steps_per_s").as_str()),
                "{names:?}"
            );
        }
        for k in [
            "sample_1step_batch1_latency_ms",
            "sample_1step_batch256_latency_ms",
            "mlp512_b512_jvp_over_forward",
        ] {
            assert!(names.contains(&k), "{k} missing from {names:?}");
        }
        for (k, v) in &r {
            assert!(v.is_finite() && *v > 0.0, "{k} = {v}");
        }
    }
}

/// The committed MNIST fixture the U-Net figure trains on (run `cm bench` from the repository
/// root; elsewhere the figure is skipped with a message).
pub const UNET_FIXTURE: &str = "tests/fixtures/mnist-t10k-256-images-idx3-ubyte";

/// The U-Net figure's config (and `examples/unetprof.rs`'s, and the PyTorch twin's): the MNIST
/// configs' U-Net (base 16, levels [1, 2], one residual block, no attention) on the fixture's
/// 28-px images, batch 64, default method (iCT).
pub fn unet_config() -> Config {
    let mut cfg = Config::default();
    cfg.data.name = format!("idx:{UNET_FIXTURE}");
    cfg.data.batch = 64;
    cfg.model = crate::config::ModelConfig::Unet(crate::nets::unet::UnetConfig {
        base: 16,
        mults: vec![1, 2],
        res_blocks: 1,
        attention: false,
        ..Default::default()
    });
    cfg
}

/// The image recipes' U-Net (configs/mnist-edm.toml and the students distilled from it: base
/// 16, levels [1, 2, 2], middle attention, 10 classes) on the fixture's labelled 28-px
/// images, batch 64, iCT: the network people train (issue 15), beside the small bench U-Net.
pub fn recipe_unet_config() -> Config {
    let mut cfg = unet_config();
    cfg.model = crate::config::ModelConfig::Unet(crate::nets::unet::UnetConfig {
        base: 16,
        mults: vec![1, 2, 2],
        res_blocks: 1,
        attention: true,
        classes: 10,
        ..Default::default()
    });
    cfg
}

/// `method`'s training steps/s of a U-Net config, as `train_{method}_{name}_steps_per_s`.
#[allow(clippy::too_many_arguments)]
fn unet_figure(
    name: &str,
    method: &str,
    mut cfg: Config,
    plan: Plan,
    device: &Device,
    peak: Option<f64>,
    out: &mut Vec<(String, f64)>,
) -> Result<()> {
    if !std::path::Path::new(UNET_FIXTURE).exists() {
        eprintln!("bench: {UNET_FIXTURE} not found (run from the repository root); skipping the U-Net figures");
        return Ok(());
    }
    // U-Net steps are ~100x an MLP step: time a twentieth as many.
    let steps = (plan.steps / 20).max(1);
    let warmup = plan.warmup.min(2);
    if method != "ict" {
        // (The configs' own method is iCT.)
        cfg.method = crate::objectives::MethodConfig::by_name(method)?;
    }
    train_figure(&format!("train_{method}_{name}"), cfg, warmup, steps, device, peak, out)?;
    Ok(())
}

/// Trains `cfg` for `warmup` untimed then `steps` timed steps and records `{name}_steps_per_s`,
/// `{name}_peak_rss_mb` (the figure's own peak: reset before the trainer is built) and the
/// FLOP columns of [`work`]; returns the trainer for figures that sample from it.
fn train_figure(
    name: &str,
    mut cfg: Config,
    warmup: u64,
    steps: u64,
    device: &Device,
    peak: Option<f64>,
    out: &mut Vec<(String, f64)>,
) -> Result<Trainer> {
    cfg.train.steps = warmup + steps;
    reset_peak_rss();
    let mut t = Trainer::new(Setup::new(&cfg, device)?)?;
    for _ in 0..warmup {
        t.step();
    }
    let t0 = Instant::now();
    for _ in 0..steps {
        t.step();
    }
    // Each step already ends in host reads (loss, grad norm), so the clock sees all work.
    let rate = steps as f64 / t0.elapsed().as_secs_f64();
    out.push((format!("{name}_steps_per_s"), rate));
    if let Some(mb) = peak_rss_mb() {
        out.push((format!("{name}_peak_rss_mb"), mb));
    }
    work(out, name, step_flops(&t), rate, peak);
    Ok(t)
}
