//! The training loop, optimizers, target/EMA updates, logging and checkpoints.
//!
//! The loop is method-agnostic: it asks the [`Objective`] for its loss, its number of
//! alternating phases and its target decay, and never looks at the method's name. Per step:
//! draw a batch → for each phase: loss → backward → skip the update if the loss or any
//! gradient is non-finite (counted) → clip → Adam/RAdam; then update the target network and
//! the evaluation EMA. All randomness comes from the run's single [`Rng`], which is saved in
//! every checkpoint, so `--resume` continues the same run exactly.

use crate::ckpt::{self, State};
use crate::config::Config;
use crate::io::runfolder::RunFolder;
use crate::model::Params;
use crate::nets::init_params;
use crate::objectives::Ctx;
use crate::rng::Rng;
use crate::run::{load_run, Setup};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
pub mod log;
pub mod optim;
pub mod stop;

use log::{progress_line, read_history};
use optim::ema;

/// Outcome of one optimizer step.
#[derive(Clone, Debug)]
pub struct StepLog {
    /// The step this log belongs to (before it was taken).
    pub step: u64,
    /// The last phase's loss.
    pub loss: f64,
    /// The objective's named terms for the log.
    pub terms: Vec<(String, f64)>,
    /// Whether the update was skipped (non-finite loss or gradient).
    pub skipped: bool,
    /// Global L2 norm of the last phase's gradient, before clipping.
    pub grad_norm: f64,
}

/// What [`Trainer::phase_grads`] returns.
pub struct PhaseGrads {
    /// The batch's loss (micro-batch losses weighted by their share of the batch).
    pub loss: f64,
    /// The loss terms, weighted the same way.
    pub terms: Vec<(String, f64)>,
    /// The gradient of each online tensor (None: no gradient reaches it); None when a loss was
    /// not finite.
    pub grads: Option<Vec<Option<Tensor<1>>>>,
}

/// A training run in memory: the setup, the state and the generator; [`Trainer::step`]
/// takes one optimizer step.
pub struct Trainer {
    /// The run's object graph.
    pub setup: Setup,
    /// Weights, optimizer state and counters (what a checkpoint holds).
    pub state: State,
    /// The run's one random generator.
    pub rng: Rng,
    /// Steps skipped so far for a non-finite loss or gradient.
    pub bad_total: u64,
    /// Consecutive skipped steps (stops the run at `train.max_bad_steps`).
    pub bad_run: u64,
}

fn zeros_like_all(v: &[Tensor<1>]) -> Vec<Tensor<1>> {
    v.iter().map(|t| t.zeros_like()).collect()
}

impl Trainer {
    /// A fresh run: weights from the seed (or `train.init_from`).
    pub fn new(setup: Setup) -> Result<Self> {
        tune_allocator();
        let mut rng = Rng::new(setup.cfg.train.seed);
        let mut online = init_params(&setup.specs, &mut rng, &setup.device);
        if !setup.cfg.train.init_from.is_empty() {
            let (_, src, st) = load_run(Path::new(&setup.cfg.train.init_from), &setup.device)
                .with_context(|| format!("train.init_from = {}", setup.cfg.train.init_from))?;
            // Matching tensors are copied; a source with fewer time inputs (CTM from its EDM
            // teacher) gets the extra time-embedding rows zeroed (AUDIT M6).
            let what = format!("train.init_from: {}", setup.cfg.train.init_from);
            let w = crate::nets::transfer::transfer(
                &src.specs[..src.n_net],
                &st.ema[..src.n_net],
                &setup.specs[..setup.n_net],
                &what,
            )?;
            for (i, t) in w.into_iter().enumerate() {
                online[i] = t;
            }
        }
        let state = State {
            step: 0,
            rng: rng.state(),
            target: online.clone(),
            ema: online.clone(),
            adam_m: zeros_like_all(&online),
            adam_v: zeros_like_all(&online),
            adam_t: vec![0; online.len()],
            bad_steps: 0,
            bad_run: 0,
            method_state: None,
            online,
            meta: BTreeMap::new(),
        };
        Ok(Self {
            setup,
            state,
            rng,
            bad_total: 0,
            bad_run: 0,
        })
    }

    /// Continues from a checkpoint state (the objective's own state included).
    pub fn from_state(setup: Setup, state: State) -> Result<Self> {
        let rng = Rng::from_state(state.rng);
        if let Some(s) = &state.method_state {
            setup
                .objective
                .set_state(s)
                .context("restoring the method's state from the checkpoint")?;
        }
        // The consecutive-bad counter is saved too, so `max_bad_steps` counts across a resume.
        Ok(Self {
            bad_total: state.bad_steps,
            bad_run: state.bad_run,
            setup,
            state,
            rng,
        })
    }

    fn lr(&self) -> f64 {
        lr_at(&self.setup.cfg.train, self.state.step)
    }

    /// One optimizer step (all phases); returns the log of the last phase. A class-conditional
    /// network gets the labels of the batch, after class dropout (drawn right after the batch).
    pub fn step(&mut self) -> StepLog {
        let b = self.setup.cfg.data.batch;
        if self.setup.model.net.n_classes() == 0 {
            let x0 = self.setup.batch(&mut self.rng, b);
            return self.step_on(x0);
        }
        let (x0, labels) = self.setup.batch_labeled(&mut self.rng, b);
        let labels = labels.expect("class labels (checked when the run was set up)");
        let kept = self.setup.drop_classes(&labels, &mut self.rng);
        let onehot = self.setup.onehot(&kept);
        self.step_labeled(x0, Some(onehot))
    }

    /// One step on a given (standardised) batch; a class-conditional network sees no labels
    /// (all-zero "no class" rows).
    pub fn step_on(&mut self, x0: Tensor<2>) -> StepLog {
        self.step_labeled(x0, None)
    }

    /// One step on a given batch with the one-hot `[B, K]` labels of a class-conditional
    /// network (None = no class). The labels ride on the model the objective gets
    /// (`ctx.model`); a class-conditional network teacher (CD, sCD, CTM, FACM with a trained
    /// teacher) is bound to the same labels, with its guidance scale, so the student follows
    /// the teacher's trajectories of each sample's class.
    pub fn step_labeled(&mut self, x0: Tensor<2>, labels: Option<Tensor<2>>) -> StepLog {
        let total = self.setup.cfg.train.steps;
        let step = self.state.step;
        let phases = self.setup.objective.phases(step);
        let mut last = StepLog {
            step,
            loss: f64::NAN,
            terms: vec![],
            skipped: false,
            grad_norm: 0.0,
        };
        let mut any_bad = false;
        for phase in 0..phases {
            let out = self.phase_grads(&x0, labels.as_ref(), phase);
            last.loss = out.loss;
            last.terms = out.terms;
            let Some(g) = out.grads else {
                any_bad = true;
                continue;
            };
            // One host read for all parameters (the per-parameter sums, added in f64 in order).
            let sq: Vec<Tensor<1>> = g.iter().flatten().map(|t| t.clone().square().sum()).collect();
            let norm2: f64 = if sq.is_empty() {
                0.0
            } else {
                crate::tensor::to_vec(Tensor::cat(sq, 0))
                    .iter()
                    .map(|&v| v as f64)
                    .sum()
            };
            last.grad_norm = norm2.sqrt();
            if !norm2.is_finite() {
                any_bad = true;
                continue;
            }
            self.apply(g, norm2.sqrt());
        }
        if any_bad {
            self.bad_total += 1;
            self.bad_run += 1;
            last.skipped = true;
        } else {
            self.bad_run = 0;
        }
        // Target and evaluation EMA follow every step, so skipping leaves both untouched.
        if !any_bad {
            if let Some(mu) = self.setup.objective.target_decay(step, total) {
                self.state.target = ema(&self.state.target, &self.state.online, mu);
            } else {
                self.state.target = self.state.online.clone();
            }
            let mu = optim::eval_ema_decay(&self.setup.cfg.train, step + 1);
            self.state.ema = ema(&self.state.ema, &self.state.online, mu);
        }
        self.state.step += 1;
        last
    }

    /// One phase's loss and gradient on the batch (before clipping and the optimizer), summed
    /// over the micro-batches of `train.micro_batch`; `grads` is None for a non-finite loss.
    /// Advances the run's generator past the phase's draws.
    pub fn phase_grads(&mut self, x0: &Tensor<2>, labels: Option<&Tensor<2>>, phase: usize) -> PhaseGrads {
        let total = self.setup.cfg.train.steps;
        let step = self.state.step;
        let b = x0.dims()[0];
        let micro = match self.setup.cfg.train.micro_batch {
            0 => b,
            m => m.min(b),
        };
        // Micro-batches (`train.micro_batch`, EDM's --batch-gpu): each starts from the same
        // random state and draws for the whole batch, keeping its rows (`Ctx::per_row`), and
        // its mean loss is scaled by its share of the batch, so the summed gradient is the
        // whole batch's up to float summation order. One micro-batch = the plain step.
        let start = self.rng.clone();
        let mut end = start.clone();
        let mut grad_sum: Option<Vec<Option<Tensor<1>>>> = None;
        let (mut loss_sum, mut terms) = (0.0, Vec::<(String, f64)>::new());
        let mut bad = false;
        let has_target = self.setup.objective.target_decay(step, total).is_some();
        let target = if has_target {
            &self.state.target
        } else {
            &self.state.online
        };
        let n_net = self.setup.n_net;
        for a in (0..b).step_by(micro) {
            let rows = a..(a + micro).min(b);
            let share = rows.len() as f64 / b as f64;
            let whole = rows.len() == b;
            let pick = |t: &Tensor<2>| crate::objectives::rows_of(t.clone(), &rows, b);
            let labels = labels.map(pick);
            let teacher = match (&self.setup.teacher, &labels) {
                (Some(t), Some(l)) => t.with_labels(l.clone()).or_else(|| Some(t.clone())),
                (t, _) => t.clone(),
            };
            let model = self.setup.model.with_labels(labels);
            let online_ad = self.online_leaves();
            let mut rng = start.clone();
            let mut ctx = Ctx {
                step,
                total,
                model: &model,
                online: Params::split(&online_ad, n_net),
                online_sg: Params::split(&self.state.online, n_net),
                target: Params::split(target, n_net),
                teacher: teacher.as_deref(),
                rng: &mut rng,
                device: &self.setup.device,
                rows: rows.clone(),
                batch: b,
            };
            let out = self.setup.objective.loss(&mut ctx, pick(x0), phase);
            end = rng;
            let loss = if whole { out.loss } else { out.loss.mul_scalar(share) };
            let loss_val: f64 = loss.clone().into_scalar::<f32>() as f64;
            loss_sum += loss_val;
            for (i, (name, v)) in out.terms.into_iter().enumerate() {
                match terms.get_mut(i) {
                    Some(t) => t.1 += v * share,
                    None => terms.push((name, v * share)),
                }
            }
            if !loss_val.is_finite() {
                bad = true;
                break;
            }
            let grads = loss.backward();
            let g: Vec<Option<Tensor<1>>> = online_ad.iter().map(|t| t.grad(&grads)).collect();
            grad_sum = Some(match grad_sum {
                None => g,
                Some(acc) => acc
                    .into_iter()
                    .zip(g)
                    .map(|(a, g)| match (a, g) {
                        (Some(a), Some(g)) => Some(a + g),
                        (a, g) => a.or(g),
                    })
                    .collect(),
            });
        }
        self.rng = end;
        PhaseGrads {
            loss: loss_sum,
            terms,
            grads: if bad { None } else { grad_sum },
        }
    }

    /// The online weights as fresh autodiff leaves (trainable tensors require a gradient,
    /// buffers stay plain): what a phase's loss is differentiated against.
    pub fn online_leaves(&self) -> Vec<Tensor<1>> {
        self.state
            .online
            .iter()
            .zip(&self.setup.specs)
            .map(|(t, s)| {
                if s.trainable {
                    t.clone().autodiff().require_grad()
                } else {
                    t.clone()
                }
            })
            .collect()
    }

    /// Clips by the global norm and takes one optimizer step on the online weights.
    fn apply(&mut self, grads: Vec<Option<Tensor<1>>>, norm: f64) {
        let t = &self.setup.cfg.train;
        let clip = if t.grad_clip > 0.0 && norm > t.grad_clip {
            t.grad_clip / norm
        } else {
            1.0
        };
        let cfg = optim::AdamConfig {
            kind: t.optimizer,
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.adam_eps,
        };
        let lr = self.lr();
        let s = &mut self.state;
        optim::adam_step(
            &cfg,
            lr,
            clip,
            &mut s.online,
            &mut s.adam_m,
            &mut s.adam_v,
            &mut s.adam_t,
            grads,
        );
    }

    /// The state with the current RNG and counters, ready to save.
    pub fn snapshot(&self) -> State {
        let mut s = self.state.clone();
        s.rng = self.rng.state();
        s.bad_steps = self.bad_total;
        s.bad_run = self.bad_run;
        s.method_state = self.setup.objective.state();
        s.meta.insert("method".into(), self.setup.objective.name().into());
        s.meta.insert("config".into(), self.setup.cfg.to_toml());
        s.meta.insert(
            "standardizer".into(),
            serde_json::to_string(&self.setup.standardizer).unwrap(),
        );
        s
    }

    /// Writes a checkpoint into `dir` atomically and prunes old ones.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let bytes = ckpt::to_bytes(&self.snapshot(), &self.setup.specs)?;
        let path = dir.join(ckpt::file_name(self.state.step));
        crate::io::write_atomic(&path, &bytes)?;
        let all = ckpt::list(dir);
        let keep = self.setup.cfg.train.keep_ckpts;
        if all.len() > keep {
            for (_, p) in &all[..all.len() - keep] {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(path)
    }

    /// Backbone weights of the evaluation EMA.
    pub fn ema_net(&self) -> &[Tensor<1>] {
        &self.state.ema[..self.setup.n_net]
    }
    /// Backbone weights of the online network.
    pub fn online_net(&self) -> &[Tensor<1>] {
        &self.state.online[..self.setup.n_net]
    }
}

/// Options of a training run.
pub struct RunOptions {
    /// The run folder (see [`crate::io::runfolder`] for what may be written where).
    pub out: PathBuf,
    /// `--resume`: continue the run in `out`. Re-running the same config on a run folder
    /// continues it anyway (a different config is refused with the fields that differ); the
    /// flag stays so that scripts passing it keep working.
    pub resume: bool,
    /// `--restart`: move the run already in `out` into `out/restart-N/` (still a loadable run
    /// folder) and start over.
    pub restart: bool,
    /// `--force`: train in a non-empty folder that is not a cm run folder; what is already
    /// there is never deleted, moved or overwritten.
    pub force: bool,
    /// Stop gracefully on SIGINT / SIGTERM: finish the step, write a checkpoint, flush the log
    /// and return [`stop::Interrupted`] (the `cm` commands; off for library callers and tests).
    pub graceful: bool,
    /// A progress line on stderr.
    pub progress: bool,
    /// Stop after this many steps in this invocation (tests of resume); None = to the end.
    pub stop_after: Option<u64>,
    /// Stop (with a checkpoint, so `--resume` continues) once this invocation has trained for
    /// this many seconds; None = no limit. The image demo uses it to keep its promised budget.
    pub max_seconds: Option<f64>,
    /// With `max_seconds` and a learning-rate cool-down (`train.lr_cooldown`) on a run that
    /// starts at step 0: shorten the run to the steps the budget allows at the measured rate
    /// ([`budget_length`]), so the cool-down ends when the budget does instead of never
    /// starting. Off by default; the image demo turns it on.
    pub fit_to_budget: bool,
}

impl RunOptions {
    /// A run into `out` (fresh, or continuing the same config): no restart, no force, no
    /// signal handling, no progress bar, no step or time limit.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            restart: false,
            force: false,
            graceful: false,
            progress: false,
            stop_after: None,
            max_seconds: None,
            fit_to_budget: false,
        }
    }
}

/// Loss history points (step, loss) of a run.
pub type History = Vec<(f64, f64)>;

/// Trains a config into `opts.out` (resolved config, JSONL log, checkpoints, loss curve PNG).
pub fn run(cfg: &Config, opts: &RunOptions, device: &Device) -> Result<(Trainer, History)> {
    run_with(cfg, opts, device, |t| t.step())
}

/// The run already in a folder: the config of its newest intact checkpoint (damaged ones are
/// moved aside as `NAME.damaged`, with a warning), or of its `config.toml` when it was
/// stopped before its first checkpoint.
struct Previous {
    cfg: Config,
    ckpt: Option<PathBuf>,
}

fn previous_run(dir: &Path) -> Result<Option<Previous>> {
    for (_, path) in ckpt::list(dir).into_iter().rev() {
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match ckpt::read_meta(&bytes) {
            Ok((meta, _)) => {
                let text = meta
                    .get("config")
                    .with_context(|| format!("{} holds no config", path.display()))?;
                let cfg = Config::from_toml(text).with_context(|| format!("config stored in {}", path.display()))?;
                return Ok(Some(Previous { cfg, ckpt: Some(path) }));
            }
            Err(e) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let aside = (1..)
                    .map(|n| match n {
                        1 => dir.join(format!("{name}.damaged")),
                        n => dir.join(format!("{name}.damaged-{n}")),
                    })
                    .find(|p| std::fs::symlink_metadata(p).is_err())
                    .expect("a free name");
                std::fs::rename(&path, &aside)
                    .with_context(|| format!("{} is damaged ({e:#}) and cannot be moved aside", path.display()))?;
                eprintln!(
                    "warning: {} is damaged ({e:#}); moved it to {} and using the checkpoint before it",
                    path.display(),
                    aside.display()
                );
            }
        }
    }
    let c = dir.join("config.toml");
    if c.exists() {
        let cfg = Config::load(&c).context("the config of the run already in this folder")?;
        return Ok(Some(Previous { cfg, ckpt: None }));
    }
    Ok(None)
}

fn flatten(v: &toml::Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &key, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The fields (dotted TOML paths) in which two configs differ, as "field: RUN in the run, NOW
/// now", ignoring `train.steps` (a run may be extended) and `train.micro_batch` (the run does
/// not depend on it: a resumed run may move to a device with more or less memory).
pub fn config_diff(run: &Config, now: &Config) -> Vec<String> {
    let flat = |c: &Config| {
        let mut m = BTreeMap::new();
        if let Ok(v) = toml::Value::try_from(c) {
            flatten(&v, "", &mut m);
        }
        m
    };
    let (a, b) = (flat(run), flat(now));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !matches!(k.as_str(), "train.steps" | "train.micro_batch") && a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(absent)".into());
            format!("{k}: {} in the run, {} now", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

/// "the previous checkpoint … is intact" (or that there is none yet), for error messages.
fn intact_note(dir: &Path) -> String {
    match ckpt::list(dir).pop() {
        Some((s, p)) => format!(
            "the previous checkpoint {} (step {s}) is intact: fix the cause and run the same command to resume from it",
            p.display()
        ),
        None => "no checkpoint had been written yet".into(),
    }
}

/// Saves a checkpoint into the run folder after checking the folder is still this run's. If it
/// was deleted or replaced, nothing is written into it: the state goes to a new sibling folder
/// `NAME.rescued-RUNID` and the error says where.
fn save_checked(folder: &RunFolder, trainer: &Trainer) -> Result<PathBuf> {
    if let Err(why) = folder.check() {
        return Err(rescue(folder, trainer, why));
    }
    trainer.save(&folder.dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the checkpoint of step {} into {}: {e:#}; {}",
            trainer.state.step,
            folder.dir.display(),
            intact_note(&folder.dir)
        )
    })
}

fn rescue(folder: &RunFolder, trainer: &Trainer, why: anyhow::Error) -> anyhow::Error {
    let step = trainer.state.step;
    let to = std::path::absolute(&folder.dir).ok().and_then(|abs| {
        let name = abs.file_name()?.to_string_lossy().into_owned();
        Some(abs.with_file_name(format!("{name}.rescued-{}", folder.marker.run_id)))
    });
    let Some(to) = to else {
        return anyhow::anyhow!("{why:#}; nothing more was written into it (the state at step {step} is lost)");
    };
    let saved = (|| -> Result<PathBuf> {
        let r = RunFolder::open(&to, "train", false)?;
        crate::io::write_atomic(&to.join("config.toml"), trainer.setup.cfg.to_toml().as_bytes())?;
        trainer.save(&r.dir)
    })();
    match saved {
        Ok(p) => anyhow::anyhow!(
            "{why:#}; nothing more was written into it. The state at step {step} was saved to {} instead: continue the run with `cm train CONFIG --out {}`",
            p.display(),
            to.display()
        ),
        Err(e) => anyhow::anyhow!(
            "{why:#}; nothing more was written into it, and saving the state at step {step} to {} failed too: {e:#}",
            to.display()
        ),
    }
}

/// [`run`] with the per-step call supplied by the caller: `step(trainer)` must take exactly one
/// optimizer step (normally [`Trainer::step`]). Tests use it to inject faults, e.g. batches of
/// NaN through [`Trainer::step_on`], into an otherwise ordinary run.
///
/// The folder rules ([`crate::io::runfolder`]): `opts.out` must be new, empty, or a cm run
/// folder (else `opts.force`); it is locked for the whole run. A run already there is continued
/// when its config matches (`train.steps` may differ) and refused with the differing fields
/// otherwise; `opts.restart` moves it aside first.
pub fn run_with(
    cfg: &Config,
    opts: &RunOptions,
    device: &Device,
    mut step: impl FnMut(&mut Trainer) -> StepLog,
) -> Result<(Trainer, History)> {
    let mut folder = RunFolder::open(&opts.out, "train", opts.force)?;
    let _handlers = opts.graceful.then(stop::Handlers::install);
    ckpt::remove_stale_temps(&opts.out);
    let previous = if opts.restart { None } else { previous_run(&opts.out)? };
    let mut trainer = match previous {
        None => {
            let setup = Setup::new(cfg, device)?;
            if opts.restart {
                if let Some(aside) = folder.move_aside()? {
                    eprintln!("--restart: moved the previous run to {}", aside.display());
                }
            }
            Trainer::new(setup)?
        }
        Some(prev) => {
            let diff = config_diff(&prev.cfg, cfg);
            if !diff.is_empty() {
                let from = match &prev.ckpt {
                    Some(p) => p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    None => "config.toml".into(),
                };
                bail!(
                    "{} already holds a run and the config differs from the run's (read from {from}) in:\n  {}\nrun it with the same config to continue it, pass --restart to start over (the old run is moved to a restart-N sub-folder, not deleted), or choose another --out",
                    opts.out.display(),
                    diff.join("\n  ")
                );
            }
            match prev.ckpt {
                Some(path) => {
                    let (_, mut setup, state) = load_run(&path, device)?;
                    setup.cfg.train.steps = cfg.train.steps;
                    setup.cfg.train.micro_batch = cfg.train.micro_batch;
                    crate::run::check_micro_batch(&setup.cfg, setup.objective.as_ref())?;
                    if opts.progress && !opts.resume {
                        eprintln!(
                            "resuming {} from step {} (same config; --restart starts over)",
                            opts.out.display(),
                            state.step
                        );
                    }
                    Trainer::from_state(setup, state)?
                }
                None => Trainer::new(Setup::new(cfg, device)?)?,
            }
        }
    };
    crate::io::write_atomic(&opts.out.join("config.toml"), trainer.setup.cfg.to_toml().as_bytes())?;
    let log_path = opts.out.join("log.jsonl");
    let mut history = read_history(&log_path, trainer.state.step);
    // A kill mid-write can leave a torn last line: end it, so the next record starts on a
    // line of its own (the torn one stays as it is and is skipped when read).
    let torn = std::fs::read(&log_path).is_ok_and(|b| b.last().is_some_and(|&c| c != b'\n'));
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_err = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot append to {}: {e}; {}",
            log_path.display(),
            intact_note(&opts.out)
        )
    };
    if torn {
        eprintln!(
            "note: the last line of {} was torn (a kill mid-write); it is kept as it is and the log continues on a new line",
            log_path.display()
        );
        log.write_all(b"\n").map_err(log_err)?;
    }
    let mut t = trainer.setup.cfg.train.clone();
    let start = std::time::Instant::now();
    let first = trainer.state.step;
    // The run length is refitted to the time budget until the cool-down begins (then frozen,
    // so the fall to zero is not stretched or cut).
    let fit = match opts.max_seconds {
        Some(m) if opts.fit_to_budget && first == 0 && t.lr_cooldown > 0.0 => Some(m),
        _ => None,
    };
    let mut acc = (0.0, 0u64);
    let mut ran = 0u64;
    while trainer.state.step < t.steps {
        if opts.stop_after.is_some_and(|n| ran >= n) {
            break;
        }
        let r = step(&mut trainer);
        ran += 1;
        if let Some(m) = fit {
            let s = trainer.state.step;
            let cooling = (s as f64) >= t.steps as f64 * (1.0 - t.lr_cooldown);
            if !cooling {
                let k = budget_length(cfg.train.steps, s, start.elapsed().as_secs_f64(), m);
                if k != t.steps {
                    t.steps = k;
                    trainer.setup.cfg.train.steps = k;
                }
            }
        }
        if !r.skipped {
            acc.0 += r.loss;
            acc.1 += 1;
        }
        let s = trainer.state.step;
        if s % t.log_every == 0 || s == t.steps {
            let rate = (s - first) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let mean = if acc.1 > 0 { acc.0 / acc.1 as f64 } else { f64::NAN };
            let mut rec = serde_json::json!({
                "step": s, "loss": mean, "lr": trainer.lr(), "grad_norm": r.grad_norm,
                "steps_per_s": rate, "skipped_total": trainer.bad_total,
            });
            for (k, v) in &r.terms {
                rec[k] = serde_json::json!(v);
            }
            // One write per record, so that a kill tears at most the last line.
            log.write_all(format!("{rec}\n").as_bytes()).map_err(log_err)?;
            if mean.is_finite() {
                history.push((s as f64, mean));
            }
            acc = (0.0, 0);
            if opts.progress {
                progress_line(s, t.steps, mean, rate, trainer.bad_total);
            }
        }
        if trainer.bad_run >= t.max_bad_steps {
            save_checked(&folder, &trainer)?;
            bail!(
                "stopping: {} consecutive steps had a non-finite loss or gradient (train.max_bad_steps); the last good weights are in {}",
                trainer.bad_run,
                opts.out.display()
            );
        }
        let saved = if s % t.ckpt_every == 0 || s == t.steps {
            Some(save_checked(&folder, &trainer)?)
        } else {
            None
        };
        if let Some(sig) = stop::requested() {
            let checkpoint = match saved {
                Some(p) => p,
                None => save_checked(&folder, &trainer)?,
            };
            log.sync_data().map_err(log_err)?;
            if opts.progress {
                eprintln!();
            }
            return Err(stop::Interrupted {
                signal: sig,
                step: s,
                checkpoint,
                next: "run the same command again to continue".into(),
            }
            .into());
        }
        if s < t.steps && opts.max_seconds.is_some_and(|m| start.elapsed().as_secs_f64() >= m) {
            if saved.is_none() {
                save_checked(&folder, &trainer)?;
            }
            if opts.progress {
                eprintln!("\ntime budget reached at step {s} of {}", t.steps);
            }
            break;
        }
    }
    let _ = log.sync_data();
    if fit.is_some() && t.steps != cfg.train.steps {
        // The resolved config states the length the run's schedules used.
        crate::io::write_atomic(&opts.out.join("config.toml"), trainer.setup.cfg.to_toml().as_bytes())?;
    }
    if opts.progress {
        eprintln!();
    }
    Ok((trainer, history))
}

/// The length K of a time-budgeted run that has taken `step` steps in `elapsed` of its
/// `budget` seconds: the steps left at the mean rate so far, less 3 % for the evaluations and
/// checkpoints the rate did not see, capped by the configured `steps`. Used by
/// [`RunOptions::fit_to_budget`] so that `train.lr_cooldown` (a share of K) is reached: the
/// image demo stops at its 12-minute budget near step 1500 of a nominal 6000, where a
/// cool-down over the last half would never begin. The first 20 steps and 5 % of the budget
/// (at most 10 s) are too noisy to rate and leave `steps` unchanged.
pub fn budget_length(steps: u64, step: u64, elapsed: f64, budget: f64) -> u64 {
    if elapsed < (0.05 * budget).min(10.0) || step < 20 {
        return steps;
    }
    let rate = step as f64 / elapsed;
    let left = (budget - elapsed).max(0.0) * rate * 0.97;
    (step + left.floor() as u64).clamp(step + 1, steps.max(step + 1))
}

/// Writes the loss curve of a finished (or stopped) run to `out/loss.png`, as `cm train` does;
/// nothing when the history is empty.
pub fn write_loss_plot(out: &Path, history: &History) -> Result<()> {
    if !history.is_empty() {
        let c = crate::io::plot::line_plot("training loss", &[("loss", history)]);
        crate::io::plot::write_png_atomic(&out.join("loss.png"), &c)?;
    }
    Ok(())
}

/// Keeps freed tensor buffers in the process heap instead of returning them to the OS.
///
/// A training step allocates and frees the same few-megabyte activation buffers every step;
/// glibc serves blocks over its (adaptive, ≤ 32 MiB) mmap threshold with fresh `mmap`s, whose
/// pages fault in (and are zeroed by the kernel) on first touch, and trims the heap top on
/// free. Raising both thresholds made the MNIST U-Net step 15 % faster (`examples/unetprof.rs`;
/// page faults were 9 % of its profile). Called by the `cm` binary and [`Trainer::new`];
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

/// The learning rate of optimizer step `step` (0-based): a linear warm-up over `warmup` steps,
/// then η, or with `lr_decay` = t_ref > 0 EDM2's η/√max(k/t_ref, 1) (Karras et al. 2024,
/// "Analyzing and Improving the Training Dynamics of Diffusion Models", eq. 16); then, with
/// `lr_cooldown` = c > 0, times min(1, (K − k) / (c·K)) over the last share c of the K steps
/// (a linear fall to zero; the step after the last would get 0, so every step moves).
pub fn lr_at(t: &crate::config::TrainConfig, step: u64) -> f64 {
    if t.warmup > 0 && step < t.warmup {
        return t.lr * (step + 1) as f64 / t.warmup as f64;
    }
    let lr = if t.lr_decay > 0 {
        t.lr / (step as f64 / t.lr_decay as f64).max(1.0).sqrt()
    } else {
        t.lr
    };
    if t.lr_cooldown > 0.0 {
        let span = t.lr_cooldown * t.steps as f64;
        let left = t.steps.saturating_sub(step) as f64;
        lr * (left / span).min(1.0)
    } else {
        lr
    }
}
