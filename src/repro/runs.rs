//! One run of an experiment: build its config by setting fields, train it in memory with the
//! library's [`Trainer`], and measure it along the way and at the end. The result is a small
//! JSON record cached under the ledger folder, so an interrupted ledger continues with the
//! next unfinished run.

use crate::config::Config;
use crate::eval::oracle::{consistency_error, EXACT_ODE_STEPS};
use crate::generate::{sample, NoiseSource, SampleOptions};
use crate::objectives::{MethodConfig, Teacher};
use crate::rng::Rng;
use crate::run::Setup;
use crate::samplers::ode::{edm_ode, Solver};
use crate::samplers::SamplerOptions;
use crate::schedule::{karras_desc, EDM_EPS, EDM_RHO, EDM_T_MAX};
use crate::train::{RunOptions, Trainer};
use anyhow::{Context, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A run is called diverged when its 1-step SWD (raw data units) ends above this bound: an
/// untrained network's samples collapse to a point at SWD 1.33–1.40 on `ring8` and two fresh
/// data draws differ by 0.05 (README, "Results (2-D)").
pub const DIVERGED_SWD: f64 = 1.0;
/// … or when more than this share of its steps were skipped for a non-finite loss or gradient.
pub const DIVERGED_SKIP_SHARE: f64 = 0.05;
/// Heun steps of a trained EDM teacher's ODE sampler when it is measured (18 steps, 35
/// network evaluations: the EDM/CM/CTM papers' CIFAR-10 teacher setting).
pub const TEACHER_HEUN_STEPS: usize = 18;

/// What to measure in a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalPlan {
    /// Training steps at which the curve metrics are taken (0 = before training).
    pub curve_at: Vec<u64>,
    /// Samples per measurement (and size of the reference set).
    pub n_eval: usize,
    /// Network steps k of the method's own sampler measured at the end (`swd@k`, or `fd@k`
    /// for images).
    pub steps: Vec<usize>,
    /// CTM γ values measured at the end at every k of `steps` (`g0swd@k` for γ = 0, …).
    pub gammas: Vec<f64>,
    /// Also measure the consistency error against the exact map (`cerr`, also on the curve).
    pub cerr: bool,
    /// Also measure the exact-ODE sampler on the same reference set (`exact_swd`).
    pub exact_ode: bool,
    /// Also measure the trained teacher's Heun ODE sampler (`teacher_swd` / `teacher_fd`).
    pub teacher: bool,
}

/// A run to make: the arm it belongs to, its full config, its teacher (trained first into its
/// own run folder when it is a trained one) and what to measure.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The arm's name.
    pub arm: String,
    /// The config (seed included).
    pub cfg: Config,
    /// A teacher to train first: its config and run folder.
    pub teacher: Option<(Config, PathBuf)>,
    /// The measurements.
    pub plan: EvalPlan,
}

impl RunSpec {
    /// The cache key: a hash of the config, the teacher's config and the plan.
    pub fn key(&self) -> String {
        let text = format!(
            "{}\n{}\n{}\nrepro-v{}",
            self.cfg.to_toml(),
            self.teacher.as_ref().map(|t| t.0.to_toml()).unwrap_or_default(),
            serde_json::to_string(&self.plan).unwrap(),
            super::FORMAT
        );
        crate::fetch::sha256_hex(text.as_bytes())[..16].to_string()
    }
}

/// One curve point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Training steps taken.
    pub step: u64,
    /// Metric name → value (None: not finite).
    pub metrics: BTreeMap<String, Option<f64>>,
}

/// What a run measured (`runs/<key>.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    /// The cache key ([`RunSpec::key`]).
    pub key: String,
    /// The arm.
    pub arm: String,
    /// The method's registry name.
    pub method: String,
    /// `train.seed`.
    pub seed: u64,
    /// Steps taken.
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped: u64,
    /// Whether the run stopped at `train.max_bad_steps` consecutive skipped steps.
    pub stopped_early: bool,
    /// Mean loss over the last tenth of the run's steps (None: not finite).
    pub final_loss: Option<f64>,
    /// Whether the run diverged ([`DIVERGED_SWD`], [`DIVERGED_SKIP_SHARE`], stopped early, or
    /// non-finite samples).
    pub diverged: bool,
    /// Why, in words ("" when it did not).
    pub why: String,
    /// Seconds of training and measuring (teacher training not included).
    pub wall_s: f64,
    /// The curve.
    pub curve: Vec<CurvePoint>,
    /// Metrics of the final weights.
    pub metrics: BTreeMap<String, Option<f64>>,
}

fn fin(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl RunResult {
    /// A final metric (`name`), or a curve metric at a step (`name#step`); NaN when absent.
    pub fn get(&self, name: &str) -> f64 {
        if let Some((m, s)) = name.split_once('#') {
            let step: u64 = s.parse().unwrap_or(u64::MAX);
            return self
                .curve
                .iter()
                .find(|p| p.step == step)
                .and_then(|p| p.metrics.get(m).copied().flatten())
                .unwrap_or(f64::NAN);
        }
        self.metrics.get(name).copied().flatten().unwrap_or(f64::NAN)
    }
}

/// The fixed evaluation draws of a seed: the same reference set and sampler noise for every arm
/// of that seed, so arms are compared on identical draws (the pairing of the tests).
struct Evaluator {
    reference: Vec<f64>,
    noise_seed: u64,
    n: usize,
    images: Option<crate::eval::images::ImageEvaluator>,
}

impl Evaluator {
    fn new(setup: &Setup, n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(0xE7A1_0000 + seed);
        let reference = setup.data.sample(&mut rng, n);
        let images = crate::eval::image_evaluator(setup, &reference);
        Self {
            reference,
            noise_seed: 0xF0F4_0000 + seed,
            n,
            images,
        }
    }

    /// The quality metric of raw samples: FD (images) or SWD.
    fn quality(&self, setup: &Setup, xs: &[f64]) -> f64 {
        if xs.iter().any(|v| !v.is_finite()) {
            return f64::NAN;
        }
        match &self.images {
            Some(ev) => ev.report(xs).fd,
            None => crate::eval::swd(xs, &self.reference, setup.data.dim()),
        }
    }

    fn prefix(&self) -> &'static str {
        if self.images.is_some() {
            "fd"
        } else {
            "swd"
        }
    }

    fn own(&self, setup: &Setup, params: &[Tensor<1>], k: usize) -> f64 {
        let mut rng = Rng::new(self.noise_seed);
        let xs = sample(
            setup,
            params,
            self.n,
            SampleOptions::new(setup, k, NoiseSource::Stream(&mut rng)),
        );
        self.quality(setup, &xs)
    }

    fn gamma(&self, setup: &Setup, params: &[Tensor<1>], k: usize, gamma: f64) -> Result<f64> {
        let opts = SamplerOptions {
            gamma: Some(gamma),
            ode: None,
        };
        let sampler = setup.objective.sampler_with(setup.model.precond.sigma_d(), &opts)?;
        let mut rng = Rng::new(self.noise_seed);
        let o = SampleOptions::new(setup, k, NoiseSource::Stream(&mut rng)).with_sampler(sampler, k);
        let xs = sample(setup, params, self.n, o);
        Ok(self.quality(setup, &xs))
    }
}

/// The name of a γ metric: `g0swd@4` for γ = 0 at 4 steps, `g05swd@4` for γ = 0.5.
pub fn gamma_metric(gamma: f64, k: usize) -> String {
    let g = format!("{gamma}").replace('.', "");
    format!("g{g}swd@{k}")
}

/// Trains the teacher of `spec` into its run folder (continuing it if it is there).
pub fn ensure_teacher(spec: &RunSpec, device: &Device, progress: bool) -> Result<()> {
    if let Some((tcfg, dir)) = &spec.teacher {
        let done = crate::ckpt::list(dir)
            .last()
            .is_some_and(|(s, _)| *s >= tcfg.train.steps);
        if !done && progress {
            eprintln!(
                "  teacher: {} for {} steps -> {}",
                tcfg.method.name(),
                tcfg.train.steps,
                dir.display()
            );
        }
        if !done {
            crate::train::run(tcfg, &RunOptions::new(dir), device)
                .with_context(|| format!("training the teacher in {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Trains and measures one run.
pub fn train_and_measure(spec: &RunSpec, device: &Device) -> Result<RunResult> {
    let start = std::time::Instant::now();
    let setup = Setup::new(&spec.cfg, device)?;
    let ev = Evaluator::new(&setup, spec.plan.n_eval, spec.cfg.train.seed);
    let mut tr = Trainer::new(setup)?;
    let total = spec.cfg.train.steps;
    let q = ev.prefix();
    let measure_curve = |tr: &Trainer| -> BTreeMap<String, Option<f64>> {
        let mut m = BTreeMap::new();
        m.insert(format!("{q}@1"), fin(ev.own(&tr.setup, tr.ema_net(), 1)));
        if spec.plan.cerr {
            if let Some(g) = &tr.setup.gmm_std {
                m.insert(
                    "cerr".into(),
                    fin(consistency_error(&tr.setup, tr.ema_net(), g, 512, 0xC0)),
                );
            }
        }
        m
    };
    let mut curve = Vec::new();
    if spec.plan.curve_at.contains(&0) {
        curve.push(CurvePoint {
            step: 0,
            metrics: measure_curve(&tr),
        });
    }
    let tail_from = total - total / 10;
    let (mut tail_sum, mut tail_n) = (0.0, 0u64);
    let mut stopped_early = false;
    while tr.state.step < total {
        let r = tr.step();
        if r.step >= tail_from && !r.skipped {
            tail_sum += r.loss;
            tail_n += 1;
        }
        if tr.bad_run >= spec.cfg.train.max_bad_steps {
            stopped_early = true;
            break;
        }
        let s = tr.state.step;
        if spec.plan.curve_at.contains(&s) {
            curve.push(CurvePoint {
                step: s,
                metrics: measure_curve(&tr),
            });
        }
    }
    let setup = &tr.setup;
    let p = tr.ema_net();
    let mut metrics = BTreeMap::new();
    for &k in &spec.plan.steps {
        metrics.insert(format!("{q}@{k}"), fin(ev.own(setup, p, k)));
    }
    for &g in &spec.plan.gammas {
        for &k in &spec.plan.steps {
            metrics.insert(gamma_metric(g, k), fin(ev.gamma(setup, p, k, g)?));
        }
    }
    if spec.plan.cerr {
        if let Some(g) = &setup.gmm_std {
            metrics.insert("cerr".into(), fin(consistency_error(setup, p, g, 512, 0xC0)));
        }
    }
    if spec.plan.exact_ode {
        if let Some(g) = &setup.gmm_std {
            let dim = setup.data.dim();
            let mut zr = Rng::new(ev.noise_seed);
            let z = zr.normal_tensor([ev.n, dim], &setup.device);
            let sigmas = karras_desc(EXACT_ODE_STEPS, EDM_EPS, EDM_T_MAX, EDM_RHO);
            let x = edm_ode(g, z.mul_scalar(sigmas[0]), &sigmas, Solver::Heun);
            let raw = setup.standardizer.inverse(&crate::tensor::to_vec64(x));
            metrics.insert("exact_swd".into(), fin(ev.quality(setup, &raw)));
        }
    }
    if spec.plan.teacher {
        if let Some((_, dir)) = &spec.teacher {
            let (_, ts, st) = crate::run::load_run(dir, device)?;
            let mut rng = Rng::new(ev.noise_seed);
            let xs = sample(
                &ts,
                &st.ema[..ts.n_net],
                ev.n,
                SampleOptions::new(&ts, TEACHER_HEUN_STEPS, NoiseSource::Stream(&mut rng)),
            );
            metrics.insert(format!("teacher_{q}"), fin(ev.quality(&ts, &xs)));
        }
    }
    let skipped = tr.bad_total;
    let steps = tr.state.step;
    let one = metrics.get(&format!("{q}@1")).copied().flatten().unwrap_or(f64::NAN);
    let why = if stopped_early {
        format!(
            "stopped after {} consecutive non-finite steps",
            spec.cfg.train.max_bad_steps
        )
    } else if skipped as f64 > DIVERGED_SKIP_SHARE * steps.max(1) as f64 {
        format!("{skipped} of {steps} steps non-finite")
    } else if !one.is_finite() {
        "non-finite samples".into()
    } else if q == "swd" && one > DIVERGED_SWD {
        format!("1-step SWD {one:.3} > {DIVERGED_SWD}")
    } else {
        String::new()
    };
    Ok(RunResult {
        key: spec.key(),
        arm: spec.arm.clone(),
        method: setup.objective.name().into(),
        seed: spec.cfg.train.seed,
        steps,
        skipped,
        stopped_early,
        final_loss: fin(if tail_n > 0 { tail_sum / tail_n as f64 } else { f64::NAN }),
        diverged: !why.is_empty(),
        why,
        wall_s: start.elapsed().as_secs_f64(),
        curve,
        metrics,
    })
}

/// A config built by setting fields: `method`'s defaults on `data`, the backbone settings its
/// paper recommends, then each (dotted path, TOML value) of `set` in order, e.g.
/// `("method.solver", "\"euler\"")` or `("method.target", "{ kind = \"ema\", mu = 0.9 }")`.
pub fn config(method: &str, data: &str, set: &[(&str, String)]) -> Result<Config> {
    let mut cfg = Config::default();
    cfg.data.name = data.into();
    cfg.method = MethodConfig::by_name(method)?;
    if let crate::config::ModelConfig::Mlp(m) = &mut cfg.model {
        cfg.method.recommend_model(m);
    }
    let mut v = toml::Value::try_from(&cfg)?;
    for (path, value) in set {
        let parsed: toml::Table =
            toml::from_str(&format!("x = {value}")).with_context(|| format!("repro: bad value for {path}: {value}"))?;
        let value = parsed["x"].clone();
        let mut at = &mut v;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let t = at
                .as_table_mut()
                .with_context(|| format!("repro: {path} is not inside a table"))?;
            at = t
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
        at.as_table_mut()
            .with_context(|| format!("repro: {path} is not inside a table"))?
            .insert(parts[parts.len() - 1].to_string(), value);
    }
    Config::from_toml(&toml::to_string(&v)?).with_context(|| format!("repro: the {method} config"))
}

/// Points a distilling config at a trained teacher's run folder (and starts the student from
/// its weights where the method does so: CD and CTM).
pub fn with_teacher(mut cfg: Config, dir: &Path) -> Config {
    cfg.method.set_teacher(Teacher::Run(dir.to_path_buf()));
    if cfg.method.starts_from_teacher() {
        cfg.train.init_from = dir.display().to_string();
    }
    cfg
}
