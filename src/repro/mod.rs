//! `cm repro`: the papers' claims (the seed document's §1.3.2–§1.8, and two claims only an
//! exact oracle can test) as experiments with seeds, confidence intervals and verdicts.
//!
//! Each claim ([`claims::all`]) states a hypothesis and a metric and compares arms that differ
//! only in the config fields the claim is about: same data, same budget, same seeds
//! (`train.seed` = 0, 1, …), and, for every seed, the same evaluation draws (reference set and
//! sampler noise), so arms are paired seed by seed. Configs are built by setting fields
//! ([`runs::config`]); training and measuring use the library ([`crate::train::Trainer`],
//! [`crate::generate`], [`crate::eval`], [`crate::eval::oracle`]).
//!
//! **The verdict rule.** Every metric is lower-is-better. A test's effect is computed per seed
//! (a difference between arms, or between measurements of one arm) and signed so that a
//! positive effect is the claimed direction; its 95 % interval is the Student-t interval of the
//! mean over seeds ([`stats::t_interval`], n − 1 degrees of freedom).
//! - A superiority claim ("A beats B") is **reproduced** if the interval excludes 0 on the
//!   claimed side (lo > 0), **not reproduced** if it excludes 0 on the other side (hi < 0) or
//!   lies wholly inside the equivalence margin (−m, m) (no effect of a size that matters:
//!   m = 0.02 SWD, 5 FD-mnistnet, 0.01 consistency error), and **inconclusive** otherwise.
//! - A "matches or beats" claim (non-inferiority, effect = reference − arm) is reproduced if
//!   lo > −m, not reproduced if hi < −m, inconclusive otherwise.
//! - A stability claim compares the share of diverged runs with a technique removed and kept,
//!   over 5 seeds each: reproduced if Fisher's exact one-sided p < 0.05 (so 4/5 against 0/5 is
//!   needed), not reproduced if the runs without the technique diverge no more often than those
//!   with it, inconclusive otherwise. A run **diverged** if its final 1-step SWD exceeds
//!   [`runs::DIVERGED_SWD`] (an untrained network sits at 1.33–1.40), more than
//!   [`runs::DIVERGED_SKIP_SHARE`] of its steps had a non-finite loss or gradient, it was
//!   stopped by `train.max_bad_steps`, or its samples are not finite. The Clopper–Pearson
//!   interval of each rate and the paired SWD difference are reported beside it.
//!
//! With one seed (`--quick`) every interval is unbounded and every superiority verdict is
//! inconclusive: `--quick` exists so the experiment code runs in the test suite, not to
//! decide claims.
//!
//! **Outputs** (`--out DIR`, default `runs/repro`, a marked cm folder of kind "repro"): one
//! `runs/<key>.json` per finished run (the key hashes its config and what is measured; a
//! rerun reuses it, so a killed ledger continues with the next unfinished run and claims whose
//! runs are all there are only re-tabulated), `teachers/…` (trained teachers' run folders),
//! `<claim>.json` and `<claim>.png` per claim (the metric against training steps or NFE, the
//! mean over seeds as a line and the min–max over seeds shaded), `ledger.json` and `table.md`.
//! Files are replaced only when the folder's ledger shows cm wrote them
//! ([`crate::io::runfolder`]).

pub mod claims;
pub mod runs;
pub mod stats;

use crate::io::plot::{band_plot, write_png_atomic, Band};
use crate::io::runfolder::{claim_outputs, record_outputs, RunFolder};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use claims::{Budget, Claim, Needs, TestKind};
use runs::RunResult;
use serde::Serialize;
use stats::{Interval, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the run records: bump when what a run measures changes, so cached runs are
/// remade.
pub const FORMAT: u32 = 1;

/// What `cm repro` was asked to do.
pub struct ReproOptions {
    /// Claim ids, or empty / `all` for every claim.
    pub claims: Vec<String>,
    /// Seeds per claim (None: each claim's own, 3 or 5; 1 with `quick`).
    pub seeds: Option<usize>,
    /// One seed, tiny runs, 2-D claims only.
    pub quick: bool,
    /// The ledger folder.
    pub out: PathBuf,
    /// Use a non-empty folder that is not cm's anyway (nothing in it is touched).
    pub force: bool,
    /// The MNIST IDX folder of the image claim (None: `data/mnist` or `../shared/data/mnist`
    /// when present).
    pub mnist: Option<PathBuf>,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// A test's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct TestResult {
    /// What it checks.
    pub name: String,
    /// Its kind.
    pub kind: TestKind,
    /// Per-seed effects (positive = the claimed direction; None: not finite).
    pub effects: Vec<Option<f64>>,
    /// The 95 % t interval of the mean effect over the finite ones.
    pub interval: Interval,
    /// The margin.
    pub margin: f64,
    /// Rate tests: runs diverged without / with the technique, out of how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged: Option<[usize; 4]>,
    /// Rate tests: Clopper–Pearson 95 % intervals of the two rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_intervals: Option<[(f64, f64); 2]>,
    /// Rate tests: Fisher's exact one-sided p.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A claim's outcome (`<claim>.json`, and one entry of `ledger.json`).
#[derive(Clone, Debug, Serialize)]
pub struct ClaimResult {
    /// Claim id.
    pub id: String,
    /// The seed document's section.
    pub section: String,
    /// The claim as the seed states it.
    pub statement: String,
    /// The hypothesis tested, with its setting.
    pub hypothesis: String,
    /// The metric.
    pub metric: String,
    /// Where the setting differs from the paper's.
    pub scale: String,
    /// "done", or "not run: needs …".
    pub status: String,
    /// Seeds used.
    pub seeds: usize,
    /// Arm → per-seed run records (key, diverged, final metrics).
    pub runs: BTreeMap<String, Vec<RunResult>>,
    /// The tests.
    pub tests: Vec<TestResult>,
    /// Seconds of training and measuring of the claim's runs (runs shared with another claim
    /// count in both; teachers not included).
    pub wall_s: f64,
    /// The PNG, relative to the ledger folder.
    pub figure: Option<String>,
}

/// The whole ledger (`ledger.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Ledger {
    /// The budget.
    pub budget: Budget,
    /// Wall time of this `cm repro` invocation, seconds (runs reused from an earlier one not
    /// counted; [`Ledger::runs_wall_s`] counts every run once).
    pub wall_s: f64,
    /// Seconds of training and measuring summed over distinct runs (teachers not included).
    pub runs_wall_s: f64,
    /// The claims.
    pub claims: Vec<ClaimResult>,
    /// The verdict rule, in words.
    pub rule: String,
}

/// The verdict rule, as `table.md` and `ledger.json` state it.
pub const RULE: &str = "Effects are paired over seeds and signed so that positive is the claimed direction; 95 % Student-t interval of the mean. Superiority: reproduced if lo > 0; not reproduced if hi < 0 or the interval lies inside (-m, m) (m = 0.02 SWD, 5 FD, 0.01 consistency error); otherwise inconclusive. Matches-or-beats: reproduced if lo > -m, not reproduced if hi < -m. Stability (5 seeds per arm): reproduced if Fisher's exact one-sided p < 0.05 for more divergence without the technique; not reproduced if it diverges no more often without it; otherwise inconclusive.";

fn default_mnist() -> Option<PathBuf> {
    ["data/mnist", "../shared/data/mnist"]
        .iter()
        .map(PathBuf::from)
        .find(|d| {
            ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]
                .iter()
                .any(|f| d.join(f).exists())
        })
}

/// Writes `bytes` to `path` if cm may (absent, or cm wrote what is there), and records it.
fn write_owned(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    claim_outputs(&[path], force)?;
    crate::io::write_atomic(path, bytes)?;
    record_outputs(&[path])
}

/// The claims selected by `ids` (empty or `all`: every claim), in the ledger's order.
pub fn select(ids: &[String], budget: &Budget) -> Result<Vec<Claim>> {
    let all = claims::all(budget);
    if ids.is_empty() || ids.iter().any(|i| i == "all") {
        return Ok(all);
    }
    let known: Vec<&str> = all.iter().map(|c| c.id).collect();
    for id in ids {
        if !known.contains(&id.as_str()) {
            bail!("unknown claim '{id}': expected all or one of {}", known.join(", "));
        }
    }
    Ok(all.into_iter().filter(|c| ids.iter().any(|i| i == c.id)).collect())
}

/// Runs the selected claims into `opts.out` and returns the ledger.
pub fn run(opts: &ReproOptions, device: &Device) -> Result<Ledger> {
    let start = std::time::Instant::now();
    let budget = if opts.quick { Budget::quick() } else { Budget::full() };
    let selected = select(&opts.claims, &budget)?;
    let folder = RunFolder::open(&opts.out, "repro", opts.force)?;
    let dir = folder.dir.clone();
    let runs_dir = dir.join("runs");
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("cannot create {}", runs_dir.display()))?;
    let needs = Needs {
        mnist: opts.mnist.clone().or_else(default_mnist),
    };
    let mut results = Vec::new();
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    for claim in &selected {
        let seeds = opts.seeds.unwrap_or(if opts.quick { 1 } else { claim.seeds }).max(1);
        if opts.progress {
            eprintln!("[{}] {} ({} seeds)", claim.id, claim.statement, seeds);
        }
        let res = match (claim.missing)(&budget, &needs) {
            Some(why) => {
                if opts.progress {
                    eprintln!("  {why}");
                }
                not_run(claim, seeds, why)
            }
            None => run_claim(claim, seeds, &budget, &dir, &needs, opts, device, &mut seen)?,
        };
        folder.check()?;
        write_owned(
            &dir.join(format!("{}.json", claim.id)),
            (serde_json::to_string_pretty(&res)? + "\n").as_bytes(),
            opts.force,
        )?;
        results.push(res);
        // The ledger so far, after every claim: a killed run leaves a readable partial ledger.
        write_ledger(
            &dir,
            &budget,
            &results,
            start.elapsed().as_secs_f64(),
            &seen,
            opts.force,
        )?;
    }
    let ledger = write_ledger(
        &dir,
        &budget,
        &results,
        start.elapsed().as_secs_f64(),
        &seen,
        opts.force,
    )?;
    Ok(ledger)
}

fn write_ledger(
    dir: &Path,
    budget: &Budget,
    claims: &[ClaimResult],
    wall_s: f64,
    seen: &BTreeMap<String, f64>,
    force: bool,
) -> Result<Ledger> {
    let ledger = Ledger {
        budget: budget.clone(),
        wall_s,
        runs_wall_s: seen.values().sum(),
        claims: claims.to_vec(),
        rule: RULE.into(),
    };
    write_owned(
        &dir.join("ledger.json"),
        (serde_json::to_string_pretty(&ledger)? + "\n").as_bytes(),
        force,
    )?;
    write_owned(&dir.join("table.md"), table(&ledger).as_bytes(), force)?;
    Ok(ledger)
}

fn not_run(claim: &Claim, seeds: usize, why: String) -> ClaimResult {
    ClaimResult {
        id: claim.id.into(),
        section: claim.section.into(),
        statement: claim.statement.into(),
        hypothesis: claim.hypothesis.clone(),
        metric: claim.metric.clone(),
        scale: claim.scale.into(),
        status: why,
        seeds,
        runs: BTreeMap::new(),
        tests: vec![],
        wall_s: 0.0,
        figure: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_claim(
    claim: &Claim,
    seeds: usize,
    budget: &Budget,
    dir: &Path,
    needs: &Needs,
    opts: &ReproOptions,
    device: &Device,
    seen: &mut BTreeMap<String, f64>,
) -> Result<ClaimResult> {
    let mut runs: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
    let mut wall = 0.0;
    for seed in 0..seeds as u64 {
        for (arm, build) in &claim.arms {
            let spec = build(seed, budget, dir, needs)?;
            let key = spec.key();
            let path = dir.join("runs").join(format!("{}-{key}.json", spec.cfg.method.name()));
            let cached = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<RunResult>(&t).ok())
                .filter(|r| r.key == key);
            let mut r = match cached {
                Some(r) => r,
                None => {
                    runs::ensure_teacher(&spec, device, opts.progress)?;
                    if opts.progress {
                        eprintln!("  {arm} seed {seed}: {} steps", spec.cfg.train.steps);
                    }
                    let r = runs::train_and_measure(&spec, device)
                        .with_context(|| format!("claim {}, arm {arm}, seed {seed}", claim.id))?;
                    write_owned(&path, (serde_json::to_string_pretty(&r)? + "\n").as_bytes(), opts.force)?;
                    r
                }
            };
            if opts.progress {
                let main = r
                    .metrics
                    .iter()
                    .find(|(k, _)| k.ends_with("@1"))
                    .map(|(k, v)| format!("{k} {}", v.map_or("NaN".into(), |v| format!("{v:.4}"))))
                    .unwrap_or_default();
                eprintln!(
                    "  {arm} seed {seed}: {main}{}{} ({:.1}s)",
                    if r.diverged { ", diverged: " } else { "" },
                    r.why,
                    r.wall_s
                );
            }
            r.arm = arm.clone();
            wall += r.wall_s;
            seen.insert(r.key.clone(), r.wall_s);
            runs.entry(arm.clone()).or_default().push(r);
        }
    }
    let tests = claim.tests.iter().map(|t| evaluate_test(t, &runs, seeds)).collect();
    let png = format!("{}.png", claim.id);
    let canvas = figure(claim, &runs, seeds);
    claim_outputs(&[&dir.join(&png)], opts.force)?;
    write_png_atomic(&dir.join(&png), &canvas)?;
    record_outputs(&[&dir.join(&png)])?;
    Ok(ClaimResult {
        id: claim.id.into(),
        section: claim.section.into(),
        statement: claim.statement.into(),
        hypothesis: claim.hypothesis.clone(),
        metric: claim.metric.clone(),
        scale: claim.scale.into(),
        status: "done".into(),
        seeds,
        runs,
        tests,
        wall_s: wall,
        figure: Some(png),
    })
}

/// A test's effects over seeds, interval and verdict.
pub fn evaluate_test(t: &claims::TestDef, runs: &BTreeMap<String, Vec<RunResult>>, seeds: usize) -> TestResult {
    let value = |arm: &str, metric: &str, seed: usize| -> f64 {
        runs.get(arm)
            .and_then(|v| v.get(seed))
            .map_or(f64::NAN, |r| r.get(metric))
    };
    let effects: Vec<Option<f64>> = (0..seeds)
        .map(|s| {
            let e: f64 = t.terms.iter().map(|(c, arm, m)| c * value(arm, m, s)).sum();
            e.is_finite().then_some(e)
        })
        .collect();
    let finite: Vec<f64> = effects.iter().flatten().copied().collect();
    let interval = stats::t_interval(&finite);
    let mut out = TestResult {
        name: t.name.clone(),
        kind: t.kind.clone(),
        effects,
        interval,
        margin: t.margin,
        diverged: None,
        rate_intervals: None,
        p: None,
        verdict: Verdict::Inconclusive,
    };
    match t.kind {
        TestKind::Superiority => out.verdict = stats::superiority(&interval, t.margin),
        TestKind::NonInferiority => out.verdict = stats::non_inferiority(&interval, t.margin),
        TestKind::Rate => {
            let count = |arm: &str| {
                let v = runs.get(arm).map(|v| v.as_slice()).unwrap_or(&[]);
                (v.iter().filter(|r| r.diverged).count(), v.len())
            };
            let (off, on) = (&t.terms[0].1, &t.terms[1].1);
            let ((ko, no), (kn, nn)) = (count(off), count(on));
            let (v, p) = stats::rate_verdict(ko, no, kn, nn);
            out.diverged = Some([ko, no, kn, nn]);
            out.rate_intervals = Some([stats::clopper_pearson(ko, no), stats::clopper_pearson(kn, nn)]);
            out.p = Some(p);
            out.verdict = v;
        }
    }
    out
}

/// Mean and min–max over seeds of finite values.
fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return None;
    }
    let mean = f.iter().sum::<f64>() / f.len() as f64;
    let lo = f.iter().copied().fold(f64::MAX, f64::min);
    let hi = f.iter().copied().fold(f64::MIN, f64::max);
    Some((mean, lo, hi))
}

/// A claim's figure: the metric against training steps or NFE, one line per series (mean over
/// seeds), the min–max over seeds shaded; reference lines dashed.
pub fn figure(claim: &Claim, runs: &BTreeMap<String, Vec<RunResult>>, seeds: usize) -> crate::io::plot::Canvas {
    let fig = &claim.figure;
    let empty = Vec::new();
    // x positions shared by every series (the first curve's steps, or the NFE list).
    let xs: Vec<f64> = if fig.x_steps {
        runs.values()
            .flat_map(|v| v.first())
            .next()
            .map(|r| r.curve.iter().map(|p| p.step as f64).collect())
            .unwrap_or_default()
    } else {
        fig.nfe.iter().map(|&n| n as f64).collect()
    };
    let mut data: Vec<(String, Vec<(f64, f64, f64, f64)>, bool)> = Vec::new();
    for s in &fig.series {
        let rs = runs.get(&s.arm).unwrap_or(&empty);
        let mut pts = Vec::new();
        if s.reference {
            let v: Vec<f64> = rs.iter().map(|r| r.get(&s.metric)).collect();
            if let (Some((m, lo, hi)), Some(&a), Some(&b)) = (spread(&v), xs.first(), xs.last()) {
                pts.push((a, m, lo, hi));
                pts.push((b, m, lo, hi));
            }
        } else {
            for &x in &xs {
                let name = if fig.x_steps {
                    format!("{}#{}", s.metric, x as u64)
                } else {
                    format!("{}{}", s.metric, x as usize)
                };
                let v: Vec<f64> = rs.iter().map(|r| r.get(&name)).collect();
                if let Some((m, lo, hi)) = spread(&v) {
                    pts.push((x, m, lo, hi));
                }
            }
        }
        data.push((s.label.clone(), pts, s.reference));
    }
    let bands: Vec<Band<'_>> = data
        .iter()
        .map(|(l, p, r)| Band {
            name: l,
            points: p,
            dashed: *r,
        })
        .collect();
    let title = format!("{} [{}]: {}", claim.id, claim.section, fig.y);
    let note = format!(
        "mean over {seeds} seed{}, band: min-max",
        if seeds == 1 { "" } else { "s" }
    );
    band_plot(&title, if fig.x_steps { "training step" } else { "NFE" }, &note, &bands)
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return if v > 0.0 {
            "inf".into()
        } else if v < 0.0 {
            "-inf".into()
        } else {
            "NaN".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(0.001..1000.0).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A test's effect with its interval, in words for the table.
pub fn effect_text(t: &TestResult) -> String {
    match (t.kind.clone(), t.diverged) {
        (TestKind::Rate, Some([ko, no, kn, nn])) => {
            let i = &t.interval;
            format!(
                "diverged {ko}/{no} without vs {kn}/{nn} with (Fisher p = {:.3}); SWD without - with: {} [{}, {}]",
                t.p.unwrap_or(f64::NAN),
                fmt_num(i.mean),
                fmt_num(i.lo),
                fmt_num(i.hi)
            )
        }
        _ => {
            let i = &t.interval;
            let dropped = t.effects.iter().filter(|e| e.is_none()).count();
            format!(
                "{} [{}, {}]{}",
                fmt_num(i.mean),
                fmt_num(i.lo),
                fmt_num(i.hi),
                if dropped > 0 {
                    format!(" ({dropped} seed(s) non-finite, left out)")
                } else {
                    String::new()
                }
            )
        }
    }
}

/// The ledger's markdown table: one row per test.
pub fn table(ledger: &Ledger) -> String {
    let mut s = String::new();
    s += "| claim | seed § | test | verdict | effect, mean [95 % CI] | seeds | wall time |\n";
    s += "| --- | --- | --- | --- | --- | --- | --- |\n";
    for c in &ledger.claims {
        if c.tests.is_empty() {
            s += &format!(
                "| {} | {} | {} | {} | – | – | – |\n",
                c.id, c.section, c.statement, c.status
            );
            continue;
        }
        for (i, t) in c.tests.iter().enumerate() {
            let wall = if i == 0 {
                format!("{:.1} min", c.wall_s / 60.0)
            } else {
                String::new()
            };
            s += &format!(
                "| {} | {} | {} | **{}** | {} | {} | {} |\n",
                if i == 0 { c.id.as_str() } else { "" },
                if i == 0 { c.section.as_str() } else { "" },
                t.name,
                t.verdict.words(),
                effect_text(t),
                c.seeds,
                wall
            );
        }
    }
    s += &format!(
        "\nTotal: {:.1} min in this invocation; {:.1} min of training and measuring over {} distinct runs (teachers not included).\n\n",
        ledger.wall_s / 60.0,
        ledger.runs_wall_s / 60.0,
        ledger.claims.iter().flat_map(|c| c.runs.values().flatten().map(|r| r.key.clone())).collect::<std::collections::BTreeSet<_>>().len()
    );
    s += &format!("Verdict rule: {}\n", ledger.rule);
    s
}
