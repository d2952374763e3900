//! The main job: train a method briefly on a built-in data set, then measure and plot what it
//! makes next to fresh data and the untrained model. Used by `cm demo` and by the tests.

use crate::config::Config;
use crate::eval::oracle::{consistency_error, exact_ode_report};
use crate::eval::{self, Report};
use crate::eval::{image_evaluator, with_image_metrics};
use crate::generate::sample_steps;
use crate::io::plot::image_comparison;
use crate::io::runfolder::RunFolder;
use crate::objectives::{MethodConfig, Teacher};
use crate::rng::Rng;
use crate::train::{self, RunOptions, Trainer};
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
    cfg.train.steps = demo_steps(method);
    cfg.train.lr = 1e-3;
    // Measured (README "Which method", ring8, 180 s): with the learning rate falling linearly
    // to zero over the last 30 % of the run, iCT's 1-step SWD after 9900 steps went from 0.089
    // to 0.074 (2-step 0.055 -> 0.043), FACM's from 0.116 to 0.084 (5040 steps); over the
    // last 50 %, iCT's median over 2 seeds was 0.069 (2-step 0.051) against 0.074 (0.057)
    // with 30 %. lr 2e-3 with it diverged (0.94).
    cfg.train.lr_cooldown = 0.5;
    cfg.train.ckpt_every = 1000;
    cfg.train.log_every = 25;
    // Measured (README "Which method"): on ring8 after 3000 steps the 0.999 EMA still holds 5 %
    // of the initial weights and costs iCT a factor 2 in 1-step SWD (0.342 -> 0.151 with 0.99;
    // sCT 0.099, sCD 0.074, FACM 0.099, MeanFlow 0.131 with 0.99).
    cfg.train.eval_ema = 0.99;
    if crate::data::is_image_name(data) {
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
        // Distilling from a shipped teacher (see `run_demo`): the student is the teacher's
        // network and starts from it where it can, so it is fine-tuned like
        // configs/mnist-cd.toml (batch 64, lr 1e-4, EMA ramp) for as many steps as the 12
        // minutes allow. Measured with the defaults above instead (batch 32, lr 2e-4, 1500
        // steps in 3.5 min): CD 1-step FD-mnistnet 10.7 against the teacher's 1.92.
        let distils = matches!(cfg.method.teacher(), Some(Teacher::Exact));
        if let (true, Some(path)) = (distils, shipped_teacher(data)) {
            let bytes = std::fs::read(&path)?;
            let (meta, _) = crate::ckpt::read_meta(&bytes)?;
            let tcfg = Config::from_toml(meta.get("config").map(|s| s.as_str()).unwrap_or(""))?;
            // A class-conditional teacher is distilled along its classifier-free-guided
            // trajectories (w = 1.5, the recipe of models/mnist-cd-guided.safetensors): with CD
            // on MNIST, 2500 such steps gave 1-step FD-mnistnet 2.87 and class agreement 0.990,
            // where 2432 unguided steps (this demo before) gave 6.74 and 4500 gave 3.50 / 0.943.
            // Measured for CD; CTM and sCD get the same teacher.
            if tcfg.model.classes() > 0 {
                cfg.method.set_teacher_guidance(DEMO_GUIDANCE);
            }
            cfg.train.lr = 1e-4;
            // The learning rate falls to zero over the last 30 % of the steps the 12-minute
            // budget allows (`RunOptions::fit_to_budget`; sCD's fine-tune keeps a constant
            // rate, see `fine_tune_from_teacher`). Measured (session 13, idle 2 cores, 10 000
            // samples): CD 1-step FD-mnistnet 3.59 -> 3.09 with it (1550 steps at a constant
            // rate before, 1320 now); configs/fashion-cd-long.toml's cool-down over its last
            // 25 % took Fashion-MNIST's 1-step FD-fashionnet from 1.548 to 1.451 in 500 steps.
            cfg.train.lr_cooldown = 0.3;
            cfg.method.fine_tune_from_teacher(&mut cfg.train);
            cfg.model = tcfg.model;
            cfg.data.batch = tcfg.data.batch;
            cfg.train.steps = 6000;
            cfg.train.eval_ema = 0.9999;
            cfg.train.ema_rampup = 0.05;
            cfg.train.ckpt_every = 500;
        }
    }
    Ok(cfg)
}

/// `cm demo`'s method when none is given: `scd` on point data — from the exact denoiser of a
/// built-in Gaussian mixture, or from a mixture fitted to the data by EM elsewhere (the toy
/// sets, users' files; see `run_demo`) —, `ict` on the built-ins where it measured better
/// ([`ICT_BETTER`]) and on images (a distilling method there starts from a shipped or
/// trained teacher: `--method scd`).
///
/// Measured (README "Which method", session 17; 10k samples, SWD as a multiple of the mean
/// data floor of 8 fresh draws): sCD from the exact denoiser, 3500 steps (its 170-s budget),
/// reads 0.82× at one step and 0.72× at two on ring8, 0.83× / 1.65× on gmm-unequal, where iCT
/// (9400 steps, the same budget) read 1.74× / 0.94× and 7.1× / 5.4×: without a teacher, iCT
/// squeezes each mode onto a ridge; with the exact one, sCD does not.
pub fn default_method(data: &str) -> Result<&'static str> {
    if crate::data::is_image_name(data) {
        return Ok("ict");
    }
    // Loading reports a bad name or file here, before the run folder is claimed.
    crate::data::Dataset::from_spec(data, &crate::data::ImageOptions::default())?;
    Ok(if ICT_BETTER.contains(&data) { "ict" } else { "scd" })
}

/// Built-in sets on which the iCT demo measured better than sCD from a fitted mixture, so
/// `cm demo` runs iCT there. rings (README "Which method", session 18): iCT 1.78× / 1.73× the
/// floor at 1 / 2 steps with three visible rings; sCD 2.77× / 2.88× and 2.55× / 2.57× (two
/// seeds), CD 3.36× and sCT 3.78×, all a disc without rings — the mixture itself reads 1.09×.
const ICT_BETTER: [&str; 1] = ["rings"];

/// Whether the data set has an exact denoiser (a built-in Gaussian mixture), which the
/// distilling methods' `teacher = "exact"` uses; loading the data reports a bad name or file.
fn has_exact_denoiser(data: &str, opt: &crate::data::ImageOptions) -> Result<bool> {
    Ok(crate::data::Dataset::from_spec(data, opt)?.gmm().is_some())
}

/// Training time of a 2-D demo, in seconds of an idle 2-core machine of the reference kind
/// (AMD EPYC Zen 5, the machine of README "Which method"): with evaluation and plots the demo
/// stays within 3 minutes of training there. A method's steps are this times its reference
/// rate ([`demo_steps`]), so every method gets the same time.
pub const DEMO_SECONDS: f64 = 170.0;

/// Steps/s of each method's 2-D demo config on the reference machine: `docs/compare/rates.json`,
/// made by `cargo run --release --example demo_rates` on the idle machine (data, not code:
/// re-measure it there when a method's step changes).
pub fn reference_rates() -> std::collections::BTreeMap<String, f64> {
    serde_json::from_str(include_str!("../docs/compare/rates.json"))
        .expect("docs/compare/rates.json is a JSON object of steps/s")
}

/// A method's 2-D demo steps: [`DEMO_SECONDS`] × its reference rate, rounded to 100 steps;
/// 3000 for a method without a reference rate.
pub fn demo_steps(method: &str) -> u64 {
    match reference_rates().get(method) {
        Some(r) => (((r * DEMO_SECONDS) / 100.0).round() as u64).max(1) * 100,
        None => 3000,
    }
}

/// Classifier-free guidance scale w of a class-conditional shipped teacher when the image demo
/// distils it (`method.guidance`).
pub const DEMO_GUIDANCE: f64 = 1.5;

/// Training time of the image demo (teacher included), which keeps `cm demo --data mnist:…`
/// within 15 minutes on 2 cores whatever the method costs per step (CTM's teacher solves make
/// its steps ~8× iCT's); evaluation takes well under a minute more. 2-D demos run their
/// steps in full.
pub const IMAGE_DEMO_SECONDS: f64 = 720.0;

/// The teacher shipped for an image data set, `models/mnist-edm.safetensors` for `mnist:` and
/// `models/fashion-mnist-edm.safetensors` for `fashion-mnist:` data (models/README.md), looked
/// up in the current folder, then in the source tree `cm` was built from; None for other data
/// or when the file is absent.
pub fn shipped_teacher(data: &str) -> Option<PathBuf> {
    let stem = ["mnist", "fashion-mnist"]
        .into_iter()
        .find(|p| data.strip_prefix(p).is_some_and(|r| r.starts_with(':')))?;
    let rel = Path::new("models").join(format!("{stem}-edm.safetensors"));
    [rel.clone(), Path::new(env!("CARGO_MANIFEST_DIR")).join(&rel)]
        .into_iter()
        .find(|p| p.is_file())
}

/// (teacher, student) training-time limits of a demo: None for 2-D data.
fn image_time_budget(data: &str, with_teacher: bool) -> (Option<f64>, Option<f64>) {
    if !crate::data::is_image_name(data) {
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
/// What `cm demo` measured (`summary.json`, `--json`).
pub struct DemoSummary {
    /// The method's registry name.
    pub method: String,
    /// The data set's name.
    pub dataset: String,
    /// Wall time of training (teacher included), seconds.
    pub train_seconds: f64,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped_steps: u64,
    /// Fresh data against the reference: the data floor.
    pub data: Report,
    /// The untrained model, one step.
    pub untrained: Report,
    /// The trained model (evaluation EMA), one step.
    pub one_step: Report,
    /// The trained model, two steps.
    pub two_step: Report,
    /// The SWD data floor over several fresh draws against the same reference (point data):
    /// the unit of the verdicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swd_floor: Option<crate::eval::SwdFloor>,
    /// One line each on how close the 1- and 2-step samples are to the data
    /// ([`crate::eval::verdict`]); point data only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<[String; 2]>,
    /// Four network steps with the method's own sampler (CTM: γ = 0 jumps).
    pub four_step: Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// RMS distance of the learned one-step map to the exact consistency map (Gaussian
    /// mixtures with a one-step map only).
    pub consistency_error: Option<f64>,
    /// The exact PF-ODE sampler (Heun, [`EXACT_ODE_STEPS`] steps with the exact denoiser), where
    /// the data is a Gaussian mixture: the ceiling any distilled sampler can reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_ode: Option<Report>,
    /// The Gaussian mixture fitted to the data as the teacher (`method.teacher = "gmm"`): its
    /// size, fit and its own exact samples against the reference, the ceiling of what its
    /// student can reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fitted_teacher: Option<FittedTeacherReport>,
    /// Images: the trained model under the image protocol (README "Evaluation protocol"):
    /// 1- and 2-step samples, as many as the protocol's reference holds (10 000 for
    /// `mnist:` / `fashion-mnist:`), every figure beside its data floor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<[crate::eval::protocol::ProtocolReport; 2]>,
    /// The demo's run folder.
    pub out: String,
}

/// What the demo measured of a fitted mixture teacher ([`crate::data::em::fit_teacher`]).
#[derive(Clone, Debug, Serialize)]
pub struct FittedTeacherReport {
    /// Components of the mixture chosen.
    pub components: usize,
    /// (components, held-out mean log-likelihood per point, standardised coordinates) of every
    /// size tried.
    pub tried: Vec<(usize, f64)>,
    /// Points it was fitted to.
    pub points: usize,
    /// Wall time of the fit, seconds (part of `train_seconds`).
    pub fit_seconds: f64,
    /// Exact samples of the mixture against the reference.
    pub samples: Report,
}

/// Claims the demo's output folder for a fresh demo: a new or empty folder, or a previous demo
/// run folder, whose files cm wrote are deleted (anything else in it stays). A folder holding
/// anything else is an error (`force`: use it, deleting nothing); `.`, `/`, the home folder and
/// parents of the current folder are never replaced. The folder stays locked while the
/// returned value lives.
pub fn prepare_out(out: &Path, force: bool) -> Result<RunFolder> {
    crate::io::runfolder::replace(out, "demo", force)
}

/// Runs the demo; writes into `out` and returns the summary. `progress`: progress bars, and a
/// graceful stop with a checkpoint on SIGINT / SIGTERM (the `cm demo` command).
pub fn run_demo(cfg: &Config, out: &Path, n_eval: usize, progress: bool, device: &Device) -> Result<DemoSummary> {
    let start = std::time::Instant::now();
    let mut cfg = cfg.clone();
    // A distilling method trains its own EDM teacher first when asked to (`teacher = "train"`)
    // or when the data has no exact denoiser.
    let has_exact = has_exact_denoiser(&cfg.data.name, &cfg.data.image_options())?;
    // Point data without an exact denoiser (the toy sets, users' files): a distilling method
    // follows a Gaussian mixture fitted to the data (seconds of EM) unless `--teacher train`
    // asks for a trained EDM teacher. Measured (README "Which method", session 18): sCD from
    // the fitted mixture against sCD from an EDM teacher trained within the same 3 minutes.
    if matches!(cfg.method.teacher(), Some(Teacher::Exact)) && !has_exact && !crate::data::is_image_name(&cfg.data.name)
    {
        cfg.method.set_teacher(Teacher::Gmm);
    }
    // Images with a shipped teacher (models/): a distilling method distils from it unless
    // `--teacher train` (or a run folder) says otherwise; the student takes the teacher's
    // network (so CD and CTM can start from its weights, and a class-conditional teacher
    // gives a class-conditional student that follows each class's trajectories).
    if let (Some(Teacher::Exact), false, Some(path)) =
        (cfg.method.teacher(), has_exact, shipped_teacher(&cfg.data.name))
    {
        let (tcfg, _, _) = crate::run::load_run(&path, device)?;
        if progress {
            eprintln!("distilling from the shipped teacher {}", path.display());
        }
        // (`demo_config` already gave the student the teacher's network and fine-tuning
        // settings; a config from elsewhere gets the network here.)
        cfg.model = tcfg.model.clone();
        cfg.method.set_teacher(Teacher::Run(path.clone()));
        cfg.method.adopt_edm_teacher();
        if cfg.method.starts_from_teacher() {
            cfg.train.init_from = path.display().to_string();
        }
    }
    let needs_teacher = match cfg.method.teacher() {
        Some(Teacher::Train) => true,
        Some(Teacher::Exact) => !has_exact,
        _ => false,
    };
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
                resume: true,
                graceful: progress,
                progress,
                max_seconds: teacher_budget,
                fit_to_budget: true,
                ..RunOptions::new(tdir.clone())
            },
            device,
        )?;
        cfg.method.set_teacher(Teacher::Run(tdir.clone()));
        // CD (Song et al. 2023), CTM (Kim et al. 2023; its second time embedding starts at
        // zero, AUDIT M6) and sCD (EDM network convention) start from the teacher's weights.
        cfg.method.adopt_edm_teacher();
        if cfg.method.starts_from_teacher() {
            cfg.train.init_from = tdir.display().to_string();
        }
    }
    let (trainer, history) = train::run(
        &cfg,
        &RunOptions {
            graceful: progress,
            progress,
            max_seconds: total_budget.map(|b| (b - start.elapsed().as_secs_f64()).max(1.0)),
            // The cool-down then ends with the budget (the run was cut at ~1500 of its nominal
            // 6000 steps before its cool-down began).
            fit_to_budget: true,
            ..RunOptions::new(out)
        },
        device,
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    summarize(&trainer, &history, out, n_eval, train_seconds)
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
    let (data, untrained, one_step, two_step, sets) = crate::eval::evaluate(setup, trainer.ema_net(), n_eval, 0xE7A1);
    // The reference `evaluate` measured against (same seed), for the 4-step row and the floor.
    let reference = setup.data.reference_pair(&mut Rng::new(0xE7A1), n_eval).0;
    let four_step = {
        let dim = setup.data.dim();
        let xs = sample_steps(setup, trainer.ema_net(), n_eval, 4, &mut Rng::new(0xF0F4));
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
    let fitted_teacher = setup.fitted_teacher.as_ref().map(|f| {
        let dim = setup.data.dim();
        let xs = setup.standardizer.inverse(&f.gmm.sample(&mut Rng::new(0xF17), n_eval));
        let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
        FittedTeacherReport {
            components: f.selection.k,
            tried: f.selection.tried.clone(),
            points: f.points,
            fit_seconds: f.seconds,
            samples: eval::report(&xs, &reference, dim, None, scale),
        }
    });
    let dim = setup.data.dim();
    if dim >= 2 && setup.data.image_shape().is_none() {
        // Higher-dimensional points are shown by their first two coordinates.
        let first2 = |xs: &[f64]| -> Vec<f64> { xs.chunks(dim).flat_map(|p| [p[0], p[1]]).collect() };
        let proj: Vec<Vec<f64>> = [0, 3, 1, 2].iter().map(|&i| first2(&sets[i])).collect();
        let names = if dim == 2 {
            ["data", "untrained 1-step", "1-step", "2-step"].map(String::from)
        } else {
            ["data (x1, x2)", "untrained 1-step", "1-step", "2-step"].map(String::from)
        };
        let panels: Vec<(&str, &[f64])> = names
            .iter()
            .zip(&proj)
            .map(|(n, p)| (n.as_str(), p.as_slice()))
            .collect();
        let c = crate::io::plot::scatter_panels(&panels, None);
        crate::io::plot::write_png_atomic(&out.join("samples.png"), &c)?;
    }
    if let Some(shape) = setup.data.image_shape() {
        let c = image_comparison(&sets, shape, 64);
        crate::io::plot::write_png_atomic(&out.join("samples.png"), &c)?;
    }
    if !history.is_empty() {
        let c = crate::io::plot::line_plot("training loss", &[("loss", history)]);
        crate::io::plot::write_png_atomic(&out.join("loss.png"), &c)?;
    }
    let npy = crate::data::files::npy_bytes(&sets[1].iter().map(|&v| v as f32).collect::<Vec<_>>(), &[n_eval, dim]);
    crate::io::write_atomic(&out.join("samples_1step.npy"), &npy)?;
    let protocol = match setup.data.image_shape() {
        Some(_) => Some(image_protocol(setup, trainer.ema_net())?),
        None => None,
    };
    let swd_floor = setup
        .data
        .image_shape()
        .is_none()
        .then(|| crate::eval::swd_floor(&setup.data, &reference, &sets[0], &mut Rng::new(0xF1005)));
    let verdicts = swd_floor
        .as_ref()
        .map(|f| [&one_step, &two_step].map(|r| crate::eval::verdict_with_mmd(r.swd, f.mean, r.mmd, n_eval)));
    let s = DemoSummary {
        method: setup.objective.name().into(),
        dataset: setup.data.name().into(),
        train_seconds,
        steps: trainer.state.step,
        skipped_steps: trainer.bad_total,
        swd_floor,
        data,
        untrained,
        verdicts,
        one_step,
        two_step,
        four_step,
        consistency_error,
        exact_ode,
        fitted_teacher,
        protocol,
        out: out.display().to_string(),
    };
    crate::io::write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&s)?.as_bytes())?;
    Ok(s)
}

/// The image protocol of a trained image model at 1 and 2 steps, with as many samples as the
/// protocol's reference holds (at most [`crate::eval::protocol::PROTOCOL_N`]).
fn image_protocol(
    setup: &crate::run::Setup,
    params: &[Tensor<1>],
) -> Result<[crate::eval::protocol::ProtocolReport; 2]> {
    use crate::eval::protocol::{ImageProtocol, PROTOCOL_N, SAMPLE_SEED};
    let proto = ImageProtocol::new(&setup.data, PROTOCOL_N, true, &setup.device)?;
    let n = proto.reference_len();
    let k = setup.model.net.n_classes();
    let labels: Option<Vec<usize>> = (k > 0).then(|| (0..n).map(|i| i % k).collect());
    let sampler = setup.sampler();
    let at = |steps: usize| -> Result<crate::eval::protocol::ProtocolReport> {
        let xs = sample_steps(setup, params, n, steps, &mut Rng::new(SAMPLE_SEED));
        let mut r = proto.measure(&xs, labels.as_deref())?;
        r.nfe = Some(sampler.nfe(&sampler.times(steps)));
        Ok(r)
    };
    Ok([at(1)?, at(2)?])
}

/// Default output folder of a demo.
pub fn default_out(method: &str, data: &str) -> PathBuf {
    PathBuf::from("runs").join(format!("demo-{method}-{}", file_stem(data)))
}

/// A data name as a file-name part (`/`, `.` and `:` replaced by `_`).
pub fn file_stem(data: &str) -> String {
    data.replace(['/', '.', ':'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo distils on point data (an exact or a fitted mixture) and trains iCT on images
    /// and on rings.
    #[test]
    fn default_method_is_scd_on_points_and_ict_on_images() {
        for d in ["ring8", "gmm-unequal", "gmm5d"] {
            assert_eq!(default_method(d).unwrap(), "scd", "{d}");
        }
        assert_eq!(default_method("mnist:no/such/folder").unwrap(), "ict");
        let dir = std::env::temp_dir().join(format!("cm-default-method-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("points.csv");
        let rows: String = (0..64)
            .map(|i| format!("{},{}\n", i as f64 * 0.1, (i % 7) as f64))
            .collect();
        std::fs::write(&csv, rows).unwrap();
        assert_eq!(default_method(csv.to_str().unwrap()).unwrap(), "scd");
        // Even a 64-point file gets a mixture teacher (the smallest sizes), and a short demo runs.
        let mut cfg = demo_config("scd", csv.to_str().unwrap()).unwrap();
        cfg.train.steps = 5;
        let s = run_demo(&cfg, &dir.join("demo"), 64, false, &Device::flex()).unwrap();
        let f = s.fitted_teacher.expect("a fitted teacher");
        assert!(
            f.components <= 4 && f.points == 64,
            "{} components, {} points",
            f.components,
            f.points
        );
        assert_eq!(default_method("moons").unwrap(), "scd");
        assert_eq!(default_method("rings").unwrap(), "ict");
        assert!(default_method("no-such-set").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
