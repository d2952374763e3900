//! The main job: train a method briefly on a built-in data set, then measure and plot what it
//! makes next to fresh data and the untrained model. Used by `cm demo` and by the tests.

use crate::config::Config;
use crate::eval::{self, Report};
use crate::nets::{init_params, to_vec};
use crate::objectives::MethodConfig;
use crate::rng::Rng;
use crate::train::{self, RunOptions, Setup, Trainer};
use anyhow::Result;
use burn::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The demo's default config for a method (sized for minutes on 2 cores).
pub fn demo_config(method: &str, data: &str) -> Result<Config> {
    let mut cfg = Config::default();
    cfg.data.name = data.into();
    cfg.method = MethodConfig::by_name(method)?;
    if let crate::config::ModelConfig::Mlp(m) = &mut cfg.model {
        cfg.method.recommend_model(m);
    }
    cfg.train.steps = 3000;
    cfg.train.lr = 1e-3;
    cfg.train.ckpt_every = 1000;
    cfg.train.log_every = 25;
    if is_image_data(data) {
        // Images: the MNIST configs' small U-Net (base 16, levels [1, 2], no attention), batch
        // 32, at most 1500 steps within IMAGE_DEMO_SECONDS (see `image_time_budget`).
        cfg.model = crate::config::ModelConfig::Unet(crate::nets::unet::UnetConfig {
            base: 16,
            attention: false,
            ..Default::default()
        });
        cfg.data.batch = 32;
        cfg.train.lr = 2e-4;
        cfg.train.steps = 1500;
        // A short run: a 0.999 EMA would still hold 0.999^1500 = 22 % of the initial weights.
        cfg.train.eval_ema = 0.995;
        cfg.train.ckpt_every = 250;
    }
    Ok(cfg)
}

/// Whether a data name is an image data set.
fn is_image_data(data: &str) -> bool {
    crate::data::IMAGE_PREFIXES.iter().any(|p| data.starts_with(p))
}

/// Training time of the image demo (teacher included), which keeps `cm demo --data mnist:…`
/// within 15 minutes on 2 cores whatever the method costs per step (CTM's teacher solves make
/// its steps ~8× iCT's); evaluation takes well under a minute more. 2-D demos run their
/// steps in full.
pub const IMAGE_DEMO_SECONDS: f64 = 720.0;

/// (teacher, student) training-time limits of a demo: None for 2-D data.
fn image_time_budget(data: &str, with_teacher: bool) -> (Option<f64>, Option<f64>) {
    if !is_image_data(data) {
        return (None, None);
    }
    if with_teacher {
        // The teacher gets a third; the student what is left of the total (see run_demo).
        (Some(IMAGE_DEMO_SECONDS / 3.0), Some(IMAGE_DEMO_SECONDS))
    } else {
        (None, Some(IMAGE_DEMO_SECONDS))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DemoSummary {
    pub method: String,
    pub dataset: String,
    pub train_seconds: f64,
    pub steps: u64,
    pub skipped_steps: u64,
    pub data: Report,
    pub untrained: Report,
    pub one_step: Report,
    pub two_step: Report,
    /// Four network steps with the method's own sampler (CTM: γ = 0 jumps).
    pub four_step: Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_error: Option<f64>,
    /// The exact PF-ODE sampler (Heun, [`EXACT_ODE_STEPS`] steps with the exact denoiser), where
    /// the data is a Gaussian mixture: the ceiling any distilled sampler can reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_ode: Option<Report>,
    pub out: String,
}

/// Samples from a trained run in raw data coordinates: `n` samples with `steps` steps.
pub fn sample_raw(setup: &Setup, params: &[Tensor<1>], n: usize, steps: usize, rng: &mut Rng) -> Vec<f64> {
    sample_raw_with(setup, &setup.objective.sampler(), params, n, steps, rng)
}

/// [`sample_raw`] with an explicit sampler (e.g. CTM with another γ or time list). A
/// class-conditional network samples balanced classes ([`Classes::Balanced`]).
pub fn sample_raw_with(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    sample_raw_classes(setup, sampler, params, n, steps, rng, Classes::Balanced)
}

/// Which class labels a class-conditional network samples with (unconditional networks
/// ignore them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classes {
    /// Sample i gets class i mod K.
    Balanced,
    /// Every sample gets this class.
    Fixed(usize),
    /// The all-zero "no class" label: unconditional samples.
    Unconditional,
}

impl Classes {
    /// `cm sample --class`: a class number below the network's K, or `none` (unconditional).
    /// A class number for an unconditional network (K = 0) is an error.
    pub fn parse(arg: &str, n_classes: usize) -> Result<Self> {
        if arg.eq_ignore_ascii_case("none") {
            return Ok(Classes::Unconditional);
        }
        let c: usize = arg
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--class must be a class number or `none`, got '{arg}'"))?;
        if n_classes == 0 {
            anyhow::bail!("--class {c}: the run's network is unconditional (model.classes = 0)");
        }
        if c >= n_classes {
            anyhow::bail!(
                "--class {c}: the network has {n_classes} classes (0..={})",
                n_classes - 1
            );
        }
        Ok(Classes::Fixed(c))
    }

    /// Label of sample `i` (None = no class).
    fn of(self, i: usize, k: usize) -> Option<usize> {
        match self {
            Classes::Balanced => Some(i % k),
            Classes::Fixed(c) => Some(c),
            Classes::Unconditional => None,
        }
    }
}

/// The run's model carrying the labels of samples `range` (unchanged for an unconditional net).
fn labeled_model(setup: &Setup, classes: Classes, range: std::ops::Range<usize>) -> crate::model::Model {
    let k = setup.model.net.n_classes();
    if k == 0 {
        return setup.model.clone();
    }
    let labels: Vec<Option<usize>> = range.map(|i| classes.of(i, k)).collect();
    setup.model.with_labels(Some(setup.onehot(&labels)))
}

/// [`sample_raw_with`] with the class labels chosen by `classes` (for a class-conditional
/// network; an unconditional one ignores them).
pub fn sample_raw_classes(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    rng: &mut Rng,
    classes: Classes,
) -> Vec<f64> {
    // Chunks keep memory flat for large n; the rng stream is the same for any chunking only
    // per chunk, so the chunk size is fixed.
    sample_in_chunks(
        setup,
        sampler,
        params,
        n,
        steps,
        2048,
        classes,
        NoiseSource::Stream(rng),
    )
}

/// Where [`sample_in_chunks`] draws each chunk's noise.
enum NoiseSource<'a> {
    /// One stream across all chunks.
    Stream(&'a mut Rng),
    /// Per-sample streams under this seed, indexed by the global sample number.
    PerSample(u64),
}

/// The sampling loop shared by [`sample_raw_classes`] and [`sample_seeded`]: `n` samples in
/// chunks of `chunk`, each chunk with the labels of its global sample indices, returned in data
/// coordinates.
#[allow(clippy::too_many_arguments)]
fn sample_in_chunks(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    chunk: usize,
    classes: Classes,
    mut source: NoiseSource<'_>,
) -> Vec<f64> {
    let k = setup.model.net.n_classes();
    if let Classes::Fixed(c) = classes {
        assert!(c < k, "class {c} for a network with {k} classes");
    }
    let mut out = Vec::with_capacity(n * setup.data.dim());
    let chunk = chunk.max(1);
    let mut first = 0;
    while first < n {
        let m = (n - first).min(chunk);
        // Labels by global sample index, like per-sample noise, so neither depends on the chunking.
        let model = labeled_model(setup, classes, first..first + m);
        let mut noise = match &mut source {
            NoiseSource::Stream(rng) => crate::samplers::Noise::Stream(rng),
            NoiseSource::PerSample(seed) => crate::samplers::Noise::per_sample(*seed, first as u64, m),
        };
        let x = crate::samplers::generate_with(sampler, &model, params, m, steps, &mut noise, &setup.device);
        out.extend(to_vec(x).into_iter().map(|v| v as f64));
        first += m;
    }
    setup.standardizer.inverse(&out)
}

/// `n` samples (data coordinates) with per-sample noise streams under `seed`
/// ([`crate::samplers::Noise::per_sample`]), generated `batch` at a time: sample i is the same
/// for any `n > i` and any `batch` (what `cm sample` uses, so a grid can be reproduced from
/// its seed alone). Class-conditional networks get the labels chosen by `classes`.
pub fn sample_seeded(
    setup: &Setup,
    sampler: &crate::samplers::Sampler,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    seed: u64,
    batch: usize,
    classes: Classes,
) -> Vec<f64> {
    sample_in_chunks(
        setup,
        sampler,
        params,
        n,
        steps,
        batch,
        classes,
        NoiseSource::PerSample(seed),
    )
}

/// The default number of evaluation samples: 1000 for images (classifier features, 784-d
/// MMD), 10 000 otherwise.
pub fn default_n_eval(data: &str) -> usize {
    if crate::data::IMAGE_PREFIXES.iter().any(|p| data.starts_with(p)) {
        1000
    } else {
        10_000
    }
}

/// The FD/confidence evaluator of an image data set (mnistnet, or fashionnet for
/// Fashion-MNIST) against `reference`; None for non-image data.
pub fn image_evaluator(setup: &Setup, reference: &[f64]) -> Option<crate::imgmetrics::ImageEvaluator> {
    let shape = setup.data.image_shape()?;
    let net = crate::imgmetrics::Net::for_data(setup.data.name());
    match crate::imgmetrics::ImageEvaluator::new(net, reference, shape, &setup.device) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("warning: no image metrics: {e:#}");
            None
        }
    }
}

/// Adds FD and confidence to a report when an evaluator is given.
pub fn with_image_metrics(r: Report, ev: Option<&crate::imgmetrics::ImageEvaluator>, xs: &[f64]) -> Report {
    match ev {
        Some(e) => r.with_image(e.report(xs)),
        None => r,
    }
}

/// Evaluates a trained setup with its EMA weights against fresh data.
pub fn evaluate(
    setup: &Setup,
    params: &[Tensor<1>],
    n: usize,
    seed: u64,
) -> (Report, Report, Report, Report, Vec<Vec<f64>>) {
    let dim = setup.data.dim();
    let mut rng = Rng::new(seed);
    let reference = setup.data.sample(&mut rng, n);
    let fresh = setup.data.sample(&mut rng, n);
    let gmm = setup.data.gmm();
    let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
    let mut init_rng = Rng::new(setup.cfg.train.seed);
    let init = init_params(&setup.specs, &mut init_rng, &setup.device);
    let untrained = sample_raw(setup, &init[..setup.n_net], n, 1, &mut rng);
    let one = sample_raw(setup, params, n, 1, &mut rng);
    let two = sample_raw(setup, params, n, 2, &mut rng);
    let ev = image_evaluator(setup, &reference);
    let r = |x: &[f64]| with_image_metrics(eval::report(x, &reference, dim, gmm, scale), ev.as_ref(), x);
    (
        r(&fresh),
        r(&untrained),
        r(&one),
        r(&two),
        vec![fresh, one, two, untrained],
    )
}

/// Runs the demo; writes into `out` and returns the summary.
pub fn run_demo(cfg: &Config, out: &Path, n_eval: usize, progress: bool, device: &Device) -> Result<DemoSummary> {
    let start = std::time::Instant::now();
    let mut cfg = cfg.clone();
    // A distilling method trains its own EDM teacher first when asked to (`teacher = "train"`)
    // or when the data has no exact denoiser.
    let has_exact = crate::data::Dataset::from_spec(&cfg.data.name, &cfg.data.image_options())?
        .gmm()
        .is_some();
    let needs_teacher = cfg.method.teacher() == Some("train") || (cfg.method.teacher() == Some("exact") && !has_exact);
    let (teacher_budget, total_budget) = image_time_budget(&cfg.data.name, needs_teacher);
    if needs_teacher {
        let mut tcfg = cfg.clone();
        tcfg.method = MethodConfig::by_name("edm")?;
        let tdir = out.join("teacher");
        if progress {
            eprintln!("training an EDM teacher in {}", tdir.display());
        }
        train::run(
            &tcfg,
            &RunOptions {
                out: tdir.clone(),
                resume: true,
                progress,
                stop_after: None,
                max_seconds: teacher_budget,
            },
            device,
        )?;
        cfg.method.set_teacher(&tdir.display().to_string());
        // CD starts from the teacher's weights (Song et al. 2023); CTM's two-time backbone
        // differs from the teacher's.
        if cfg.method.starts_from_teacher() {
            cfg.train.init_from = tdir.display().to_string();
        }
    }
    let (trainer, history) = train::run(
        &cfg,
        &RunOptions {
            out: out.to_path_buf(),
            resume: false,
            progress,
            stop_after: None,
            max_seconds: total_budget.map(|b| (b - start.elapsed().as_secs_f64()).max(1.0)),
        },
        device,
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    summarize(&trainer, &history, out, n_eval, train_seconds)
}

/// A grid of the first (up to) `n` images of a flat sample set (values in [-1, 1]).
pub fn image_grid_of(xs: &[f64], (c, h, w): (usize, usize, usize), n: usize) -> crate::plot::Canvas {
    let d = c * h * w;
    let n = n.min(xs.len() / d);
    let v: Vec<f32> = xs[..n * d].iter().map(|&x| x as f32).collect();
    let cols = (n as f64).sqrt().ceil() as usize;
    let zoom = (64 / h.max(w)).clamp(1, 4);
    crate::plot::image_grid(&v, n, c, h, w, cols, zoom)
}

/// Data, 1-step and 2-step image grids side by side (`sets` as returned by [`evaluate`]:
/// fresh data, 1-step, 2-step, untrained).
pub fn image_comparison(sets: &[Vec<f64>], shape: (usize, usize, usize), n: usize) -> crate::plot::Canvas {
    let data = image_grid_of(&sets[0], shape, n);
    let one = image_grid_of(&sets[1], shape, n);
    let two = image_grid_of(&sets[2], shape, n);
    crate::plot::titled_row(&[("data", &data), ("1-step", &one), ("2-step", &two)])
}

/// Metrics and plots of a finished trainer.
pub fn summarize(
    trainer: &Trainer,
    history: &[(f64, f64)],
    out: &Path,
    n_eval: usize,
    train_seconds: f64,
) -> Result<DemoSummary> {
    let setup = &trainer.setup;
    let (data, untrained, one_step, two_step, sets) = evaluate(setup, trainer.ema_net(), n_eval, 0xE7A1);
    let four_step = {
        let dim = setup.data.dim();
        let mut rng = Rng::new(0xE7A1);
        let reference = setup.data.sample(&mut rng, n_eval);
        let xs = sample_raw(setup, trainer.ema_net(), n_eval, 4, &mut Rng::new(0xF0F4));
        let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
        let ev = image_evaluator(setup, &reference);
        with_image_metrics(
            eval::report(&xs, &reference, dim, setup.data.gmm(), scale),
            ev.as_ref(),
            &xs,
        )
    };
    let consistency_error = setup
        .gmm_std
        .as_ref()
        .map(|g| consistency_error(setup, trainer.ema_net(), g, 512, 0xC0));
    let exact_ode = setup.gmm_std.as_ref().map(|g| exact_ode_report(setup, g, n_eval));
    let dim = setup.data.dim();
    if dim == 2 {
        let panels: Vec<(&str, &[f64])> = vec![
            ("data", &sets[0]),
            ("untrained 1-step", &sets[3]),
            ("1-step", &sets[1]),
            ("2-step", &sets[2]),
        ];
        let c = crate::plot::scatter_panels(&panels, None);
        crate::plot::write_png_atomic(&out.join("samples.png"), &c)?;
    }
    if let Some(shape) = setup.data.image_shape() {
        let c = image_comparison(&sets, shape, 64);
        crate::plot::write_png_atomic(&out.join("samples.png"), &c)?;
    }
    if !history.is_empty() {
        let c = crate::plot::line_plot("training loss", &[("loss", history)]);
        crate::plot::write_png_atomic(&out.join("loss.png"), &c)?;
    }
    let npy = crate::data::files::npy_bytes(&sets[1].iter().map(|&v| v as f32).collect::<Vec<_>>(), &[n_eval, dim]);
    crate::ckpt::write_atomic(&out.join("samples_1step.npy"), &npy)?;
    let s = DemoSummary {
        method: setup.objective.name().into(),
        dataset: setup.data.name().into(),
        train_seconds,
        steps: trainer.state.step,
        skipped_steps: trainer.bad_total,
        data,
        untrained,
        one_step,
        two_step,
        four_step,
        consistency_error,
        exact_ode,
        out: out.display().to_string(),
    };
    crate::ckpt::write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&s)?.as_bytes())?;
    Ok(s)
}

/// RMS distance (standardised units) between the learned one-step map f_θ(x, σ) and the exact
/// consistency map f*(x, σ) (Heun PF-ODE with the exact denoiser, 200 steps from σ to ε) on
/// points x = x0 + σ z at σ spread over the Karras grid. Only for consistency-function methods.
pub fn consistency_error(setup: &Setup, params: &[Tensor<1>], gmm: &crate::data::gmm::Gmm, n: usize, seed: u64) -> f64 {
    // The one-step map: f_θ(x, σ) for consistency functions, G_θ(x, σ, ε) for CTM,
    // the TrigFlow consistency function for sCM.
    let (eps, t_max, ctm) = match setup.objective.sampler() {
        crate::samplers::Sampler::Consistency { eps, t_max, .. } => (eps, t_max, false),
        crate::samplers::Sampler::Ctm { eps, t_max, .. } => (eps, t_max, true),
        crate::samplers::Sampler::TrigFlow { sigma_max, .. } => {
            return trigflow_consistency_error(setup, params, gmm, n, seed, sigma_max)
        }
        _ => return f64::NAN,
    };
    let mut rng = Rng::new(seed);
    let x0 = setup.batch(&mut rng, n);
    let sigmas: Vec<f64> = (0..n)
        .map(|i| crate::schedule::karras_ramp((i as f64 + 0.5) / n as f64, eps, t_max, 7.0))
        .collect();
    let z = rng.normal_tensor([n, setup.data.dim()], &setup.device);
    let x = x0.clone() + z * crate::nets::col(&sigmas, &x0);
    let learned = if ctm {
        crate::model::ctm_jump(&setup.model, params, x.clone(), &sigmas, &vec![eps; n], None)
    } else {
        setup.model.f(params, x.clone(), &sigmas, None)
    };
    let exact = exact_consistency_map(gmm, x, &sigmas, eps, 200);
    eval::rms_error(&to_vec64_(learned), &to_vec64_(exact), setup.data.dim())
}

/// The TrigFlow analogue of [`consistency_error`]: points x_t = cos t·x0 + sin t·σ_d z at t
/// spread over the TrigFlow times of the Karras grid up to σ_max; the exact map integrates the
/// exact PF-ODE in EDM coordinates (x_t / cos t, σ_d tan t) down to σ = 1e-4.
pub fn trigflow_consistency_error(
    setup: &Setup,
    params: &[Tensor<1>],
    gmm: &crate::data::gmm::Gmm,
    n: usize,
    seed: u64,
    sigma_max: f64,
) -> f64 {
    let sd = setup.model.param.sigma_d();
    let mut rng = Rng::new(seed);
    let x0 = setup.batch(&mut rng, n);
    let sigmas: Vec<f64> = (0..n)
        .map(|i| crate::schedule::karras_ramp((i as f64 + 0.5) / n as f64, 0.002, sigma_max, 7.0))
        .collect();
    let t: Vec<f64> = sigmas.iter().map(|&s| crate::process::edm_to_trig_t(s, sd)).collect();
    let z = rng.normal_tensor([n, setup.data.dim()], &setup.device);
    let x_edm = x0.clone() + z * crate::nets::col(&sigmas, &x0);
    let x_t = crate::process::edm_to_trig_x(x_edm.clone(), &t);
    let learned = setup.model.f(params, x_t, &t, None);
    let exact = exact_consistency_map(gmm, x_edm, &sigmas, 1e-4, 200);
    eval::rms_error(&to_vec64_(learned), &to_vec64_(exact), setup.data.dim())
}

fn to_vec64_(t: Tensor<2>) -> Vec<f64> {
    crate::nets::to_vec64(t)
}

/// f*(x, σ): integrates the exact PF-ODE from each sample's σ down to ε with `steps` Heun steps
/// on its own Karras grid.
pub fn exact_consistency_map(
    gmm: &crate::data::gmm::Gmm,
    x: Tensor<2>,
    sigmas: &[f64],
    eps: f64,
    steps: usize,
) -> Tensor<2> {
    let b = sigmas.len();
    let grids: Vec<Vec<f64>> = sigmas
        .iter()
        .map(|&s| {
            let mut g = crate::schedule::karras(steps + 1, eps, s.max(eps * 1.0001), 7.0);
            g.reverse();
            g
        })
        .collect();
    let mut x = x;
    for k in 0..steps {
        let from: Vec<f64> = (0..b).map(|i| grids[i][k]).collect();
        let to: Vec<f64> = (0..b).map(|i| grids[i][k + 1]).collect();
        x = crate::samplers::ode_step(gmm, x, &from, &to, true);
    }
    x
}

/// Default output folder of a demo.
pub fn default_out(method: &str, data: &str) -> PathBuf {
    PathBuf::from("runs").join(format!("demo-{method}-{}", data.replace(['/', '.', ':'], "_")))
}

/// Heun steps of the exact-ODE reference sampler.
pub const EXACT_ODE_STEPS: usize = 128;

/// Metrics of samples from the exact PF-ODE (Heun on the Karras grid with the exact denoiser).
pub fn exact_ode_report(setup: &Setup, gmm_std: &crate::data::gmm::Gmm, n: usize) -> Report {
    let dim = setup.data.dim();
    let mut rng = Rng::new(0xE7A1);
    let reference = setup.data.sample(&mut rng, n);
    let mut zr = Rng::new(0x0DE);
    let z = zr.normal_tensor([n, dim], &setup.device);
    let x = crate::samplers::ode_sample(gmm_std, z, EXACT_ODE_STEPS, 0.002, 80.0, true);
    let raw = setup.standardizer.inverse(&crate::nets::to_vec64(x));
    let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
    eval::report(&raw, &reference, dim, setup.data.gmm(), scale)
}
