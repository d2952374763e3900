//! `cm demo --compare`: every method at equal wall-clock training time, so that "which method
//! gives the best one-step samples for a given budget" has a measured answer.
//!
//! Protocol (stated once; README "Which method"). For each data set, method and seed:
//! 1. The config is the demo's own ([`crate::demo::demo_config`]) with the seed set.
//! 2. A distilling method on data without an exact denoiser distils a Gaussian mixture fitted
//!    to the data (`teacher = "gmm"`, as `cm demo` does), charged the fit's wall time; with
//!    `teacher = "train"` (a variant file) it first trains an EDM teacher for a third of the
//!    budget (shared by the methods of that data set and seed, its time charged to each of
//!    them), as `cm demo --teacher train` does.
//! 3. The method's steps/s is measured in this process (a few warm-up steps, then a timed
//!    stretch), and the run gets `steps = rate × remaining budget`, so its curricula end at
//!    the budget as they would in a demo of that length. A machine shared with other work
//!    gives fewer steps for everyone: a figure from a loaded machine is conservative.
//! 4. At geometrically spaced points (budget/2^k) training pauses (the pause is not charged)
//!    and the evaluation-EMA weights draw `n_eval` samples in 1 and 2 steps; SWD, MMD², energy
//!    distance and the exact mean log-likelihood (mixtures) are measured against a fixed
//!    reference draw, and the same metrics of a second fresh draw are the data floor (its SWD
//!    averaged over 8 fresh draws for the built-ins, [`crate::eval::swd_floor`]).
//!
//! Every finished run is one line of `compare.jsonl` in the output folder, so an interrupted
//! comparison continues where it stopped; `compare.md` (tables), `compare.json` and one
//! `compare-DATA.png` per data set (1-step SWD against training seconds, median over seeds
//! with the min–max band, the floor dashed) are rewritten from it at the end.

use crate::config::Config;
use crate::demo::demo_config;
use crate::eval::{self, Report};
use crate::generate::sample_steps;
use crate::io::plot::{band_plot, write_png_atomic, Band};
use crate::io::runfolder::RunFolder;
use crate::io::write_atomic;
use crate::objectives::{MethodConfig, Teacher};
use crate::rng::Rng;
use crate::run::Setup;
use crate::train::{self, RunOptions, Trainer};
use anyhow::{Context, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The one-step methods compared by default (the diffusion teachers are not one-step models).
pub const DEFAULT_METHODS: &[&str] = &[
    "ict", "ect", "ct", "cd", "sct", "scd", "ctm", "facm", "facm-aux", "meanflow",
];

/// Seed of the reference draw and of the floor's second draw.
const REFERENCE_SEED: u64 = 0xC0_4E;
/// Seed of the evaluation noise (k-step sampling uses seed + k).
const NOISE_SEED: u64 = 0xC0_5A;

/// One contender: a method with its demo config, or a variant file over it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The name in tables, plots, `--rates` and `compare.jsonl`: the method's registry name, or
    /// the variant file's stem.
    pub label: String,
    /// The method's registry name.
    pub method: String,
    /// A variant's partial config, put over the method's demo config
    /// ([`Config::with_overrides`]).
    pub overrides: Option<toml::Table>,
}

impl Entry {
    /// A registry name (`ict`), or a `.toml` file holding a partial config whose
    /// `[method] name` says which method it varies (e.g. `[train] lr_cooldown = 0.3`):
    /// tuning a method is comparing its variants at equal training time.
    pub fn parse(spec: &str) -> Result<Self> {
        if !spec.ends_with(".toml") {
            MethodConfig::by_name(spec)?;
            return Ok(Entry {
                label: spec.into(),
                method: spec.into(),
                overrides: None,
            });
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read variant file {spec}"))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("variant file {spec} is not valid TOML"))?;
        let method = table
            .get("method")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .with_context(|| format!("variant file {spec} must say which method it varies: [method] name = \"ict\""))?
            .to_string();
        // Checked now, on a demo config, so a misspelt field fails before any training.
        demo_config(&method, "ring8")?
            .with_overrides(&table)
            .with_context(|| format!("variant file {spec}"))?;
        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.into());
        Ok(Entry {
            label,
            method,
            overrides: Some(table),
        })
    }

    /// The entry's config on a data set.
    pub fn config(&self, data: &str) -> Result<Config> {
        let cfg = demo_config(&self.method, data)?;
        match &self.overrides {
            Some(o) => cfg.with_overrides(o),
            None => Ok(cfg),
        }
    }
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Methods and variants.
    pub methods: Vec<Entry>,
    /// Data sets (built-in names or point files).
    pub data: Vec<String>,
    /// Training seeds of every (data, method) pair.
    pub seeds: Vec<u64>,
    /// Training time of each run in seconds, teacher included.
    pub budget: f64,
    /// Samples per evaluation (and in the reference and floor draws).
    pub n_eval: usize,
    /// Evaluation points per run: budget/2^(points−1), …, budget/2, budget.
    pub points: usize,
    /// Output folder.
    pub out: PathBuf,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Steps/s per method (and `edm` for teachers) measured beforehand on an idle machine
    /// (`--rates FILE`): when a method has one, its runs get `rate × budget` steps whatever the
    /// machine's load now, and their times are those idle-machine seconds (steps / rate).
    /// Without it, rates are measured in the process (step 3 of the protocol).
    pub rates: BTreeMap<String, f64>,
}

/// The metrics at one point of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    /// Training seconds so far (teacher included, evaluation pauses excluded).
    pub seconds: f64,
    /// Optimizer steps so far.
    pub steps: u64,
    /// One-step samples.
    pub one: Metrics,
    /// Two-step samples.
    pub two: Metrics,
}

/// The sample metrics the comparison keeps (see [`Report`]); before a run's last point only
/// the SWD is measured (the others are None there).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    /// Sliced Wasserstein-2 distance, data units.
    pub swd: f64,
    /// Squared MMD (the last point only).
    pub mmd: Option<f64>,
    /// Energy distance (the last point only).
    pub energy: Option<f64>,
    /// Mean exact log-likelihood (mixtures only).
    pub loglik: Option<f64>,
}

impl From<&Report> for Metrics {
    fn from(r: &Report) -> Self {
        Metrics {
            swd: r.swd,
            mmd: Some(r.mmd),
            energy: Some(r.energy),
            loglik: r.loglik,
        }
    }
}

/// One finished run of the comparison.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Arm {
    /// Data set.
    pub data: String,
    /// Method.
    pub method: String,
    /// Training seed.
    pub seed: u64,
    /// Steps/s of the method: measured in the process (step 3 of the protocol), or given
    /// (`CompareOptions::rates`).
    pub rate: f64,
    /// Whether `rate` was given rather than measured (then times are steps / rate).
    #[serde(default)]
    pub given_rate: bool,
    /// Steps the run was given.
    pub steps: u64,
    /// Seconds charged for this run's teacher: an EDM teacher's training or a fitted
    /// mixture's fit (0 without one).
    pub teacher_seconds: f64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped: u64,
    /// Two fresh draws of the data against each other.
    pub floor: Metrics,
    /// The evaluation points, in order.
    pub points: Vec<Point>,
}

impl Arm {
    fn key(&self) -> (String, String, u64) {
        (self.data.clone(), self.method.clone(), self.seed)
    }
}

/// Runs (or continues) a comparison and writes its tables and plots; returns every arm.
pub fn run_compare(opts: &CompareOptions, device: &Device) -> Result<Vec<Arm>> {
    let folder = RunFolder::open(&opts.out, "compare", false)?;
    let log = opts.out.join("compare.jsonl");
    let mut arms: Vec<Arm> = match std::fs::read_to_string(&log) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("cannot read {}", log.display()))?,
        Err(_) => Vec::new(),
    };
    let total = opts.data.len() * opts.methods.len() * opts.seeds.len();
    let mut done = 0;
    for data in &opts.data {
        for &seed in &opts.seeds {
            for entry in &opts.methods {
                let method = &entry.label;
                done += 1;
                let key = (data.clone(), method.clone(), seed);
                if arms.iter().any(|a| a.key() == key) {
                    continue;
                }
                if opts.progress {
                    eprintln!("[{done}/{total}] {method} on {data}, seed {seed}, {:.0} s", opts.budget);
                }
                let arm = run_arm(opts, data, entry, seed, device)?;
                if opts.progress {
                    let last = arm.points.last().expect("at least one point");
                    eprintln!(
                        "    {} steps ({:.1}/s): 1-step SWD {:.4}, 2-step {:.4} (floor {:.4})",
                        arm.steps, arm.rate, last.one.swd, last.two.swd, arm.floor.swd
                    );
                }
                arms.push(arm);
                let text: String = arms
                    .iter()
                    .map(|a| serde_json::to_string(a).expect("json") + "\n")
                    .collect();
                write_atomic(&log, text.as_bytes())?;
            }
        }
    }
    write_outputs(opts, &arms)?;
    drop(folder);
    Ok(arms)
}

/// Trains the EDM teacher of a (data, seed) pair once, for a third of the budget.
fn teacher_for(opts: &CompareOptions, cfg: &Config, device: &Device) -> Result<(PathBuf, f64)> {
    let dir = opts.out.join(format!(
        "teacher-{}-s{}",
        crate::demo::file_stem(&cfg.data.name),
        cfg.train.seed
    ));
    let stamp = opts.out.join(format!(
        "compare-teacher-{}-s{}.txt",
        crate::demo::file_stem(&cfg.data.name),
        cfg.train.seed
    ));
    if let Ok(s) = std::fs::read_to_string(&stamp) {
        if let Ok(v) = s.trim().parse::<f64>() {
            return Ok((dir, v));
        }
    }
    let mut tcfg = cfg.clone();
    tcfg.method = MethodConfig::by_name("edm")?;
    let seconds = opts.budget / 3.0;
    let fixed = opts.rates.get("edm").copied();
    tcfg.train.steps = steps_at(
        match fixed {
            Some(r) => r,
            None => rate_of(&tcfg, device)?,
        },
        seconds,
    );
    let start = Instant::now();
    train::run(&tcfg, &RunOptions::new(dir.clone()), device)?;
    let spent = match fixed {
        Some(r) => tcfg.train.steps as f64 / r,
        None => start.elapsed().as_secs_f64(),
    };
    write_atomic(&stamp, format!("{spent}\n").as_bytes())?;
    Ok((dir, spent))
}

/// Steps a run of `rate` steps/s trains in `seconds` (step 3 of the protocol; at least 10).
fn steps_at(rate: f64, seconds: f64) -> u64 {
    (rate * seconds).round().max(10.0) as u64
}

/// Measured steps/s of a config: 3 warm-up steps, then steps until 1.5 s or 40 steps.
fn rate_of(cfg: &Config, device: &Device) -> Result<f64> {
    let mut t = Trainer::new(Setup::new(cfg, device)?)?;
    for _ in 0..3 {
        t.step();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while n < 40 && (n < 3 || start.elapsed().as_secs_f64() < 1.5) {
        t.step();
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn run_arm(opts: &CompareOptions, data: &str, entry: &Entry, seed: u64, device: &Device) -> Result<Arm> {
    let method = entry.label.as_str();
    let mut cfg = entry.config(data)?;
    cfg.train.seed = seed;
    let has_exact = crate::data::Dataset::from_name(data)?.gmm().is_some();
    let mut teacher_seconds = 0.0;
    if matches!(cfg.method.teacher(), Some(Teacher::Exact)) && !has_exact {
        cfg.method.set_teacher(Teacher::Gmm);
        // The run's own setup fits the same mixture again (same seed); this fit is the charge.
        let d = crate::data::Dataset::from_name(data)?;
        teacher_seconds = crate::data::em::fit_teacher(&d, &d.standardizer(), seed)?.seconds;
    }
    if matches!(cfg.method.teacher(), Some(Teacher::Train)) {
        let (dir, spent) = teacher_for(opts, &cfg, device)?;
        teacher_seconds = spent;
        cfg.method.set_teacher(Teacher::Run(dir.clone()));
        if cfg.method.starts_from_teacher() {
            cfg.train.init_from = dir.display().to_string();
        }
    }
    let fixed = opts.rates.get(method).copied();
    let rate = match fixed {
        Some(r) => r,
        None => rate_of(&cfg, device)?,
    };
    cfg.train.steps = steps_at(rate, (opts.budget - teacher_seconds).max(1.0));
    let setup = Setup::new(&cfg, device)?;
    let dim = setup.data.dim();
    let mut rng = Rng::new(REFERENCE_SEED);
    let (reference, fresh) = setup.data.reference_pair(&mut rng, opts.n_eval);
    let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
    let gmm = setup.data.gmm().cloned();
    let measure = |xs: &[f64]| Metrics::from(&eval::report(xs, &reference, dim, gmm.as_ref(), scale));
    // Before the last point only the SWD (O(n log n)); MMD and energy are O(n²) and would cost
    // more than a short run's training.
    let swd_only = |xs: &[f64]| Metrics {
        swd: eval::swd(xs, &reference, dim),
        mmd: None,
        energy: None,
        loglik: None,
    };
    // The SWD floor is the mean over several fresh draws (eval::swd_floor); the other floor
    // figures are the first draw's.
    let mut floor = measure(&fresh);
    floor.swd = eval::swd_floor(&setup.data, &reference, &fresh, &mut Rng::new(REFERENCE_SEED ^ 0xF1005)).mean;
    let total = cfg.train.steps;
    let marks: Vec<u64> = (0..opts.points.max(1))
        .rev()
        .map(|k| ((total as f64) / 2f64.powi(k as i32)).round().max(1.0) as u64)
        .collect();
    let mut trainer = Trainer::new(setup)?;
    let mut points = Vec::new();
    let mut clock = 0.0;
    let mut since = Instant::now();
    while trainer.state.step < total {
        trainer.step();
        if marks.contains(&trainer.state.step) {
            clock = match fixed {
                Some(r) => trainer.state.step as f64 / r,
                None => clock + since.elapsed().as_secs_f64(),
            };
            let last = trainer.state.step == total;
            let draw = |k: usize| {
                let xs = sample_steps(
                    &trainer.setup,
                    trainer.ema_net(),
                    opts.n_eval,
                    k,
                    &mut Rng::new(NOISE_SEED + k as u64),
                );
                if last {
                    measure(&xs)
                } else {
                    swd_only(&xs)
                }
            };
            points.push(Point {
                seconds: clock + teacher_seconds,
                steps: trainer.state.step,
                one: draw(1),
                two: draw(2),
            });
            since = Instant::now();
        }
    }
    Ok(Arm {
        data: data.into(),
        method: method.into(),
        seed,
        rate,
        given_rate: fixed.is_some(),
        steps: total,
        teacher_seconds,
        skipped: trainer.bad_total,
        floor,
        points,
    })
}

/// Median, minimum and maximum.
fn summary(v: &[f64]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        0.5 * (s[s.len() / 2 - 1] + s[s.len() / 2])
    };
    (m, s[0], s[s.len() - 1])
}

/// One row of the comparison table: a method on a data set over its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Data set.
    pub data: String,
    /// Method.
    pub method: String,
    /// Seeds in the row.
    pub seeds: usize,
    /// Median steps per run.
    pub steps: f64,
    /// Median steps/s.
    pub rate: f64,
    /// Median data floor (SWD).
    pub floor: f64,
    /// 1-step SWD at the budget: median, min, max over seeds.
    pub one_swd: (f64, f64, f64),
    /// 2-step SWD at the budget.
    pub two_swd: (f64, f64, f64),
    /// 1-step MMD² median.
    pub one_mmd: f64,
    /// 1-step mean exact log-likelihood median (mixtures).
    pub one_loglik: Option<f64>,
    /// Data floor of the log-likelihood (fresh data).
    pub floor_loglik: Option<f64>,
}

/// The table rows, best 1-step SWD first within each data set.
pub fn rows(arms: &[Arm]) -> Vec<Row> {
    let mut groups: BTreeMap<(String, String), Vec<&Arm>> = BTreeMap::new();
    for a in arms {
        groups.entry((a.data.clone(), a.method.clone())).or_default().push(a);
    }
    let mut out: Vec<Row> = groups
        .into_iter()
        .map(|((data, method), v)| {
            let last = |f: &dyn Fn(&Point) -> f64| -> Vec<f64> {
                v.iter().map(|a| a.points.last().map_or(f64::NAN, f)).collect()
            };
            let col = |f: &dyn Fn(&Arm) -> f64| -> Vec<f64> { v.iter().map(|a| f(a)).collect() };
            let ll = last(&|p| p.one.loglik.unwrap_or(f64::NAN));
            let fl = col(&|a| a.floor.loglik.unwrap_or(f64::NAN));
            Row {
                seeds: v.len(),
                steps: summary(&col(&|a| a.steps as f64)).0,
                rate: summary(&col(&|a| a.rate)).0,
                floor: summary(&col(&|a| a.floor.swd)).0,
                one_swd: summary(&last(&|p| p.one.swd)),
                two_swd: summary(&last(&|p| p.two.swd)),
                one_mmd: summary(&last(&|p| p.one.mmd.unwrap_or(f64::NAN))).0,
                one_loglik: Some(summary(&ll).0).filter(|x| x.is_finite()),
                floor_loglik: Some(summary(&fl).0).filter(|x| x.is_finite()),
                data,
                method,
            }
        })
        .collect();
    out.sort_by(|a, b| a.data.cmp(&b.data).then(a.one_swd.0.total_cmp(&b.one_swd.0)));
    out
}

/// The markdown tables of a comparison (one per data set).
pub fn markdown(opts: &CompareOptions, rows: &[Row]) -> String {
    let mut s = format!(
        "Equal wall-clock comparison: {:.0} s of training per run (teacher included), {} evaluation samples, median [min–max] over seeds, evaluation EMA weights. `x floor` = SWD / the data floor, the mean SWD of fresh draws of the data against the reference (8 draws for built-ins, the one disjoint half of a file).\n",
        opts.budget, opts.n_eval
    );
    let mut current = String::new();
    for r in rows {
        if r.data != current {
            current = r.data.clone();
            s += &format!(
                "\n**{}** (floor SWD {:.4}{})\n\n| method | seeds | steps | steps/s | 1-step SWD | x floor | 2-step SWD | x floor | 1-step MMD² | 1-step loglik |\n|---|---|---|---|---|---|---|---|---|---|\n",
                r.data,
                r.floor,
                r.floor_loglik.map_or(String::new(), |l| format!(", floor loglik {l:.2}"))
            );
        }
        s += &format!(
            "| {} | {} | {:.0} | {:.1} | {:.4} [{:.4}–{:.4}] | {:.2} | {:.4} [{:.4}–{:.4}] | {:.2} | {:.4} | {} |\n",
            r.method,
            r.seeds,
            r.steps,
            r.rate,
            r.one_swd.0,
            r.one_swd.1,
            r.one_swd.2,
            r.one_swd.0 / r.floor,
            r.two_swd.0,
            r.two_swd.1,
            r.two_swd.2,
            r.two_swd.0 / r.floor,
            r.one_mmd,
            r.one_loglik.map_or("–".into(), |l| format!("{l:.2}"))
        );
    }
    s
}

fn write_outputs(opts: &CompareOptions, arms: &[Arm]) -> Result<()> {
    let rows = rows(arms);
    write_atomic(&opts.out.join("compare.md"), markdown(opts, &rows).as_bytes())?;
    write_atomic(
        &opts.out.join("compare.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"budget_seconds": opts.budget, "n_eval": opts.n_eval, "rows": rows}),
        )?
        .as_bytes(),
    )?;
    for data in &opts.data {
        write_png_atomic(
            &opts.out.join(format!("compare-{}.png", crate::demo::file_stem(data))),
            &curve_plot(data, arms),
        )?;
    }
    Ok(())
}

/// 1-step SWD against training seconds for every method on one data set.
pub fn curve_plot(data: &str, arms: &[Arm]) -> crate::io::plot::Canvas {
    let mut by_method: BTreeMap<&str, Vec<&Arm>> = BTreeMap::new();
    for a in arms.iter().filter(|a| a.data == data) {
        by_method.entry(&a.method).or_default().push(a);
    }
    let floor = summary(
        &arms
            .iter()
            .filter(|a| a.data == data)
            .map(|a| a.floor.swd)
            .collect::<Vec<_>>(),
    )
    .0;
    // (x, median, min, max) per method: point i over the seeds (the runs share their step
    // marks only approximately, so x is the median time of point i).
    let series: Vec<(String, Vec<(f64, f64, f64, f64)>)> = by_method
        .iter()
        .map(|(m, v)| {
            let n = v.iter().map(|a| a.points.len()).min().unwrap_or(0);
            let pts = (0..n)
                .map(|i| {
                    let (x, _, _) = summary(&v.iter().map(|a| a.points[i].seconds).collect::<Vec<_>>());
                    let (mid, lo, hi) = summary(&v.iter().map(|a| a.points[i].one.swd).collect::<Vec<_>>());
                    (x, mid, lo, hi)
                })
                .collect();
            (m.to_string(), pts)
        })
        .collect();
    let xmax = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).fold(0.0, f64::max);
    let floor_label = format!("data floor {floor:.3}");
    let floor_pts = [(0.0, floor, floor, floor), (xmax, floor, floor, floor)];
    let mut bands: Vec<Band> = series
        .iter()
        .map(|(name, pts)| Band {
            name,
            points: pts,
            dashed: false,
        })
        .collect();
    if floor.is_finite() {
        bands.push(Band {
            name: &floor_label,
            points: &floor_pts,
            dashed: true,
        });
    }
    let seeds = by_method.values().map(|v| v.len()).max().unwrap_or(0);
    band_plot(
        &format!("1-step SWD on {data}"),
        "training seconds",
        &format!("line: median, band: min-max over {seeds} seed(s)"),
        &bands,
    )
}

/// Reads the arms of a comparison folder (`compare.jsonl`).
pub fn read_arms(dir: &Path) -> Result<Vec<Arm>> {
    let text = std::fs::read_to_string(dir.join("compare.jsonl"))
        .with_context(|| format!("no comparison in {}", dir.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).context("bad line in compare.jsonl"))
        .collect()
}
