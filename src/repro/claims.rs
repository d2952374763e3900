//! The claims of the seed document (`../shared/seed/consistency-models.txt`) as experiments:
//! each states its hypothesis and metric, the arms it compares (same budget, same data, same
//! seeds, configs that differ only in the fields named), and the tests whose verdicts
//! [`super::stats`] computes.

use super::runs::{config, with_teacher, EvalPlan, RunSpec};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The sizes of the experiments (`cm repro` full ledger, or `--quick`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Budget {
    /// Training steps of a 2-D run.
    pub steps: u64,
    /// Training steps of a 2-D CTM run (a CTM step costs ~4 iCT steps).
    pub ctm_steps: u64,
    /// Training steps of a 2-D EDM teacher.
    pub teacher_steps: u64,
    /// MLP width (depth 3) and batch of the 2-D runs.
    pub hidden: usize,
    /// Batch of the 2-D runs.
    pub batch: usize,
    /// Samples per 2-D measurement.
    pub n_eval: usize,
    /// Curve points per run (evenly spaced, plus step 0).
    pub curve_points: u64,
    /// Training steps of the MNIST EDM teacher.
    pub image_teacher_steps: u64,
    /// Training steps of each MNIST CD run.
    pub image_steps: u64,
    /// Batch of the MNIST CD runs (LPIPS-VGG16 costs ~2 s per 8 images per step here).
    pub image_batch: usize,
    /// Images per MNIST measurement (FD-mnistnet against as many training images).
    pub image_eval: usize,
    /// Whether image claims run at all (`--quick` skips them).
    pub images: bool,
}

impl Budget {
    /// The full ledger: about 45 CPU-minutes on one core of this machine.
    pub fn full() -> Self {
        Self {
            steps: 2000,
            ctm_steps: 1000,
            teacher_steps: 2000,
            hidden: 256,
            batch: 256,
            n_eval: 5000,
            curve_points: 8,
            image_teacher_steps: 1500,
            image_steps: 100,
            image_batch: 8,
            image_eval: 1000,
            images: true,
        }
    }

    /// `--quick`: one seed, tiny runs, no image claims; for the test suite.
    pub fn quick() -> Self {
        Self {
            steps: 40,
            ctm_steps: 20,
            teacher_steps: 40,
            hidden: 64,
            batch: 64,
            n_eval: 400,
            curve_points: 2,
            image_teacher_steps: 0,
            image_steps: 0,
            image_batch: 8,
            image_eval: 0,
            images: false,
        }
    }

    fn curve(&self, steps: u64) -> Vec<u64> {
        let k = self.curve_points.max(1);
        let mut v: Vec<u64> = (0..=k).map(|i| steps * i / k).collect();
        v.dedup();
        v
    }
}

/// How a test turns per-seed metrics into an effect and a verdict.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    /// Effect Σ coef·metric per seed, positive in the claimed direction; verdict by
    /// [`super::stats::superiority`] with the margin.
    Superiority,
    /// Effect Σ coef·metric per seed, the advantage of the arm over its reference; verdict by
    /// [`super::stats::non_inferiority`] with the margin.
    NonInferiority,
    /// Divergence rates: the first term's arm (technique removed) against the second's (kept);
    /// verdict by [`super::stats::rate_verdict`].
    Rate,
}

/// One test of a claim.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestDef {
    /// What it checks, in words.
    pub name: String,
    /// The kind.
    pub kind: TestKind,
    /// (coefficient, arm, metric) terms of the effect; metrics are lower-is-better, and
    /// `name#step` is a curve value.
    pub terms: Vec<(f64, String, String)>,
    /// The equivalence / non-inferiority margin, in the metric's units.
    pub margin: f64,
}

fn term(c: f64, arm: &str, metric: &str) -> (f64, String, String) {
    (c, arm.to_string(), metric.to_string())
}

/// "`worse` has a higher (worse) metric than `better`": effect = worse − better.
fn better(name: &str, better: (&str, &str), worse: (&str, &str), margin: f64) -> TestDef {
    TestDef {
        name: name.into(),
        kind: TestKind::Superiority,
        terms: vec![term(1.0, worse.0, worse.1), term(-1.0, better.0, better.1)],
        margin,
    }
}

/// "`arm` matches or beats `reference`": effect = reference − arm.
fn matches(name: &str, arm: (&str, &str), reference: (&str, &str), margin: f64) -> TestDef {
    TestDef {
        name: name.into(),
        kind: TestKind::NonInferiority,
        terms: vec![term(1.0, reference.0, reference.1), term(-1.0, arm.0, arm.1)],
        margin,
    }
}

/// "removing the technique (`off`) makes runs diverge more often than keeping it (`on`)".
fn rate(name: &str, off: &str, on: &str) -> TestDef {
    TestDef {
        name: name.into(),
        kind: TestKind::Rate,
        terms: vec![term(1.0, off, "swd@1"), term(-1.0, on, "swd@1")],
        margin: 0.0,
    }
}

/// A series of a claim's figure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The arm.
    pub arm: String,
    /// The metric: over training steps (`Figure::x_steps`) the curve metric, else a prefix
    /// completed by the NFE (`swd@` → `swd@1`, `swd@2`, …), or a final metric drawn flat
    /// (`reference`).
    pub metric: String,
    /// A flat reference line (a teacher, the exact ODE).
    pub reference: bool,
}

/// A claim's figure: the metric against training steps or NFE, one line per series.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figure {
    /// Over training steps (true) or NFE (false).
    pub x_steps: bool,
    /// The NFE values of an NFE figure.
    pub nfe: Vec<usize>,
    /// Y axis in words.
    pub y: String,
    /// The lines.
    pub series: Vec<Series>,
}

fn s(label: &str, arm: &str, metric: &str) -> Series {
    Series {
        label: label.into(),
        arm: arm.into(),
        metric: metric.into(),
        reference: false,
    }
}

fn r(label: &str, arm: &str, metric: &str) -> Series {
    Series {
        reference: true,
        ..s(label, arm, metric)
    }
}

/// What a claim needs that may be missing (image data, LPIPS weights).
#[derive(Clone, Debug)]
pub struct Needs {
    /// MNIST IDX folder.
    pub mnist: Option<PathBuf>,
}

/// Arm builder: (seed, budget, ledger folder) → the run.
pub type ArmFn = Box<dyn Fn(u64, &Budget, &Path, &Needs) -> Result<RunSpec>>;

/// One claim.
pub struct Claim {
    /// Short id (`cm repro ID`).
    pub id: &'static str,
    /// The seed document's section.
    pub section: &'static str,
    /// The claim, as the seed document states it.
    pub statement: &'static str,
    /// The hypothesis tested here, with its setting.
    pub hypothesis: String,
    /// The metric.
    pub metric: String,
    /// Seeds of the full ledger (3, or 5 for stability claims).
    pub seeds: usize,
    /// The arms, by name.
    pub arms: Vec<(String, ArmFn)>,
    /// The tests.
    pub tests: Vec<TestDef>,
    /// The figure.
    pub figure: Figure,
    /// Why this claim cannot run here, given what is present (None: it can).
    pub missing: Box<dyn Fn(&Budget, &Needs) -> Option<String>>,
    /// Where the setting differs from the paper's (stated in the ledger).
    pub scale: &'static str,
}

/// SWD margin: differences below 0.02 (raw units; 40 % of the data-vs-data floor 0.05 at 10k
/// samples) are treated as no effect.
pub const SWD_MARGIN: f64 = 0.02;
/// FD-mnistnet margin (MNIST test vs train at 1000 images is 5.3).
pub const FD_MARGIN: f64 = 5.0;
/// Consistency-error margin (RMS, standardised units).
pub const CERR_MARGIN: f64 = 0.01;

fn common(b: &Budget, steps: u64, seed: u64) -> Vec<(&'static str, String)> {
    vec![
        ("data.batch", b.batch.to_string()),
        ("model.hidden", b.hidden.to_string()),
        ("model.depth", "3".into()),
        ("train.steps", steps.to_string()),
        ("train.lr", "1e-3".into()),
        // Short runs: a 0.999 EMA would still hold e^-2 of the initial weights at 2000 steps.
        ("train.eval_ema", "0.99".into()),
        ("train.seed", seed.to_string()),
        ("train.log_every", steps.max(1).to_string()),
        ("train.ckpt_every", steps.max(1).to_string()),
        ("train.keep_ckpts", "1".into()),
    ]
}

fn plan(b: &Budget, steps: u64) -> EvalPlan {
    EvalPlan {
        curve_at: b.curve(steps),
        n_eval: b.n_eval,
        steps: vec![1, 2],
        gammas: vec![],
        cerr: false,
        exact_ode: false,
        teacher: false,
    }
}

/// A 2-D arm: `method` on `data` with the common settings, then `set`; `edit` adjusts the plan.
fn arm2d(
    name: &str,
    method: &'static str,
    data: &'static str,
    set: Vec<(&'static str, String)>,
    edit: fn(&mut EvalPlan),
) -> (String, ArmFn) {
    let arm = name.to_string();
    let f: ArmFn = Box::new(move |seed, b, _dir, _needs| {
        let mut all = common(b, b.steps, seed);
        all.extend(set.iter().cloned());
        let mut p = plan(b, b.steps);
        edit(&mut p);
        Ok(RunSpec {
            arm: arm.clone(),
            cfg: config(method, data, &all)?,
            teacher: None,
            plan: p,
        })
    });
    (name.to_string(), f)
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

fn no_missing() -> Box<dyn Fn(&Budget, &Needs) -> Option<String>> {
    Box::new(|_, _| None)
}

/// CD (exact teacher, N = 18) with a Heun or Euler teacher step: shared by three claims, so
/// the same runs serve them (the cache key is the config).
fn cd_arm(name: &str, solver: &'static str) -> (String, ArmFn) {
    arm2d(
        name,
        "cd",
        "ring8",
        vec![
            ("method.teacher", q("exact")),
            ("method.n", "18".into()),
            ("method.solver", q(solver)),
        ],
        |p| {
            p.cerr = true;
            p.exact_ode = true;
        },
    )
}

fn ict_arm(name: &str, set: Vec<(&'static str, String)>) -> (String, ArmFn) {
    arm2d(name, "ict", "ring8", set, |p| p.steps = vec![1, 2, 3, 4, 6, 8])
}

fn sct_arm(name: &str, norm: &'static str, warmup_off: bool) -> (String, ArmFn) {
    let arm = name.to_string();
    let f: ArmFn = Box::new(move |seed, b, _dir, _needs| {
        let mut all = common(b, b.steps, seed);
        // The warm-up lasts half the run (the default H = 1000 of a 2000-step run).
        let h = if warmup_off { 0 } else { (b.steps / 2).max(1) };
        all.push(("method.tangent_warmup", h.to_string()));
        all.push(("method.tangent_norm", q(norm)));
        Ok(RunSpec {
            arm: arm.clone(),
            cfg: config("sct", "ring8", &all)?,
            teacher: None,
            plan: plan(b, b.steps),
        })
    });
    (name.to_string(), f)
}

fn ctm_arm(name: &str, dsm: bool, gan: bool) -> (String, ArmFn) {
    let arm = name.to_string();
    let f: ArmFn = Box::new(move |seed, b, dir, _needs| {
        // The teacher: EDM on the same data, model and seed, trained first into its own run
        // folder (CTM distils a trained diffusion model and starts from its weights; the exact
        // teacher could not be beaten, so it would make the second claim vacuous).
        let tcfg = config("edm", "ring8", &common(b, b.teacher_steps, seed))?;
        let tdir = dir.join("teachers").join(format!(
            "edm-ring8-s{seed}-{}",
            &crate::fetch::sha256_hex(tcfg.to_toml().as_bytes())[..8]
        ));
        let mut all = common(b, b.ctm_steps, seed);
        all.push(("method.dsm", dsm.to_string()));
        all.push(("method.gan", gan.to_string()));
        let cfg = with_teacher(config("ctm", "ring8", &all)?, &tdir);
        let mut p = plan(b, b.ctm_steps);
        p.steps = vec![1, 2, 4, 8];
        p.gammas = vec![0.0, 1.0];
        p.teacher = true;
        Ok(RunSpec {
            arm: arm.clone(),
            cfg,
            teacher: Some((tcfg, tdir)),
            plan: p,
        })
    });
    (name.to_string(), f)
}

fn image_cd_arm(name: &str, distance: &'static str) -> (String, ArmFn) {
    let arm = name.to_string();
    let f: ArmFn = Box::new(move |seed, b, dir, needs| {
        let mnist = needs.mnist.clone().ok_or_else(|| anyhow::anyhow!("no MNIST folder"))?;
        let data = format!("mnist:{}", mnist.display());
        // The MNIST configs' U-Net (base 16, levels [1, 2], no attention): `configs/mnist-cd.toml`.
        let unet = vec![
            (
                "model",
                "{ kind = \"unet\", base = 16, mults = [1, 2], res_blocks = 1, attention = false }".to_string(),
            ),
            ("train.lr", "2e-4".into()),
            ("train.eval_ema", "0.9".into()),
            ("train.seed", seed.to_string()),
            ("train.keep_ckpts", "1".into()),
        ];
        // One teacher for all seeds (its seed 0): the claim compares distances, not teachers.
        let mut tset = unet.clone();
        tset.push(("data.batch", "32".into()));
        tset.push(("train.steps", b.image_teacher_steps.to_string()));
        tset.push(("train.seed", "0".into()));
        tset.push(("train.eval_ema", "0.99".into()));
        tset.push(("train.log_every", "100".into()));
        tset.push(("train.ckpt_every", b.image_teacher_steps.max(1).to_string()));
        let tcfg = config("edm", &data, &tset)?;
        let tdir = dir.join("teachers").join(format!(
            "edm-mnist-{}",
            &crate::fetch::sha256_hex(tcfg.to_toml().as_bytes())[..8]
        ));
        let mut all = unet;
        all.push(("data.batch", b.image_batch.to_string()));
        all.push(("train.steps", b.image_steps.to_string()));
        all.push(("train.log_every", b.image_steps.max(1).to_string()));
        all.push(("train.ckpt_every", b.image_steps.max(1).to_string()));
        all.push(("method.distance", q(distance)));
        all.push(("method.n", "18".into()));
        all.push(("method.solver", q("heun")));
        let cfg = with_teacher(config("cd", &data, &all)?, &tdir);
        Ok(RunSpec {
            arm: arm.clone(),
            cfg,
            teacher: Some((tcfg, tdir)),
            plan: EvalPlan {
                curve_at: vec![],
                n_eval: b.image_eval,
                steps: vec![1],
                gammas: vec![],
                cerr: false,
                exact_ode: false,
                teacher: false,
            },
        })
    });
    (name.to_string(), f)
}

/// Every claim, in the seed document's order.
pub fn all(b: &Budget) -> Vec<Claim> {
    let (st, ct) = (b.steps, b.ctm_steps);
    // The curve point nearest a quarter of the run ("early" in the CT and oracle claims).
    let early = b.curve(st)[(b.curve_points as usize / 4).max(1)];
    vec![
        Claim {
            id: "cd-heun",
            section: "1.3.2",
            statement: "CD with a Heun teacher step beats Euler at the same N",
            hypothesis: "CD (exact ring8 teacher, N = 18, L2) ends with a lower 1-step SWD with the Heun teacher step than with Euler".into(),
            metric: "1-step SWD (raw units, 5000 samples) of the final EMA weights".into(),
            seeds: 3,
            arms: vec![cd_arm("heun", "heun"), cd_arm("euler", "euler")],
            tests: vec![better("Heun beats Euler (1-step SWD)", ("heun", "swd@1"), ("euler", "swd@1"), SWD_MARGIN)],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "1-step SWD".into(),
                series: vec![s("Heun", "heun", "swd@1"), s("Euler", "euler", "swd@1"), r("exact ODE (128 Heun)", "heun", "exact_swd")],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 steps (paper: CIFAR-10/ImageNet, 800k steps, FID)",
        },
        Claim {
            id: "cd-lpips",
            section: "1.3.2",
            statement: "CD with LPIPS beats L2 and L1 as the distance, on images",
            hypothesis: "CD on MNIST (U-Net base 16, from a 1500-step EDM teacher's weights) ends with a lower 1-step FD-mnistnet with LPIPS (VGG16, native 28 px) than with L2 or L1".into(),
            metric: "1-step FD-mnistnet (1000 samples vs 1000 training images) of the final EMA weights".into(),
            seeds: 3,
            arms: vec![image_cd_arm("lpips", "lpips-native"), image_cd_arm("l2", "l2"), image_cd_arm("l1", "l1")],
            tests: vec![
                better("LPIPS beats L2 (1-step FD)", ("lpips", "fd@1"), ("l2", "fd@1"), FD_MARGIN),
                better("LPIPS beats L1 (1-step FD)", ("lpips", "fd@1"), ("l1", "fd@1"), FD_MARGIN),
            ],
            figure: Figure {
                x_steps: false,
                nfe: vec![1],
                y: "1-step FD-mnistnet".into(),
                series: vec![s("LPIPS", "lpips", "fd@"), s("L2", "l2", "fd@"), s("L1", "l1", "fd@")],
            },
            missing: Box::new(|b, needs| {
                if !b.images {
                    return Some("not run: --quick runs the 2-D claims only".into());
                }
                let mut why = vec![];
                if needs.mnist.is_none() {
                    why.push("MNIST (`cm data fetch mnist --dir data`, or --mnist DIR)".to_string());
                }
                if crate::lpips::find_weights(crate::lpips::LpipsNet::Vgg16).is_none() {
                    why.push("the LPIPS VGG16 weights (`cm data fetch lpips --dir data`, or $CM_LPIPS_DIR)".into());
                }
                (!why.is_empty()).then(|| format!("not run: needs {}", why.join(" and ")))
            }),
            scale: "MNIST 28 px, U-Net base 16, batch 8, 100 CD steps from a 1500-step EDM teacher; LPIPS at native 28 px (the 224-px upsampling costs ~60 s per step here) (paper: ImageNet-64/LSUN, 600k+ steps, FID)",
        },
        Claim {
            id: "ct-n",
            section: "1.3.2",
            statement: "CT: small N converges faster but ends worse, large N slower but better",
            hypothesis: format!("CT (fixed N, fixed EMA target mu = 0.9) with N = 10 has a lower 1-step SWD than N = 80 after {early} steps, and a higher one after {st}"),
            metric: "1-step SWD on the curve (EMA weights)".into(),
            seeds: 3,
            arms: vec![
                arm2d("N=10", "ct", "ring8", vec![("method.scale_mode", q("fixed")), ("method.s0", "10".into()), ("method.target", "{ kind = \"ema\", mu = 0.9 }".into())], |_| {}),
                arm2d("N=80", "ct", "ring8", vec![("method.scale_mode", q("fixed")), ("method.s0", "80".into()), ("method.target", "{ kind = \"ema\", mu = 0.9 }".into())], |_| {}),
            ],
            tests: vec![
                better(&format!("small N converges faster (SWD at step {early})"), ("N=10", &format!("swd@1#{early}")), ("N=80", &format!("swd@1#{early}")), SWD_MARGIN),
                better(&format!("large N ends better (SWD at step {st})"), ("N=80", "swd@1"), ("N=10", "swd@1"), SWD_MARGIN),
            ],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "1-step SWD".into(),
                series: vec![s("CT N=10", "N=10", "swd@1"), s("CT N=80", "N=80", "swd@1")],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 steps (paper: CIFAR-10, 800k steps, FID)",
        },
        Claim {
            id: "multistep",
            section: "1.4.2",
            statement: "multistep consistency sampling improves on one step, up to a point",
            hypothesis: "for iCT on ring8, 2-step sampling has a lower SWD than 1-step, and the gain from 4 to 8 steps is smaller than the gain from 1 to 2".into(),
            metric: "SWD of k-step consistency sampling, k = 1, 2, 3, 4, 6, 8 (final EMA weights)".into(),
            seeds: 3,
            arms: vec![ict_arm("ict", vec![])],
            tests: vec![
                better("2 steps beat 1 step", ("ict", "swd@2"), ("ict", "swd@1"), SWD_MARGIN),
                TestDef {
                    name: "diminishing returns: gain(1->2) exceeds gain(4->8)".into(),
                    kind: TestKind::Superiority,
                    terms: vec![term(1.0, "ict", "swd@1"), term(-1.0, "ict", "swd@2"), term(-1.0, "ict", "swd@4"), term(1.0, "ict", "swd@8")],
                    margin: SWD_MARGIN,
                },
            ],
            figure: Figure {
                x_steps: false,
                nfe: vec![1, 2, 3, 4, 6, 8],
                y: "SWD".into(),
                series: vec![s("iCT multistep", "ict", "swd@")],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 iCT steps (paper: CIFAR-10/ImageNet, FID at 1-2 steps)",
        },
        Claim {
            id: "ict-ablation",
            section: "1.5",
            statement: "iCT: each of no-EMA teacher, pseudo-Huber, the doubling curriculum and the lognormal schedule helps",
            hypothesis: "removing one iCT improvement at a time (EMA teacher mu = 0.9; L2 distance; CT's square-root curriculum; uniform interval choice) raises the final 1-step SWD".into(),
            metric: "1-step SWD of the final EMA weights".into(),
            seeds: 3,
            arms: vec![
                ict_arm("ict", vec![]),
                ict_arm("ema-teacher", vec![("method.target_mu", "0.9".into())]),
                ict_arm("l2", vec![("method.distance", q("l2"))]),
                ict_arm("ct-curriculum", vec![("method.curriculum", q("ct"))]),
                ict_arm("uniform-noise", vec![("method.noise", q("uniform"))]),
            ],
            tests: vec![
                better("no-EMA teacher helps", ("ict", "swd@1"), ("ema-teacher", "swd@1"), SWD_MARGIN),
                better("pseudo-Huber helps (vs L2)", ("ict", "swd@1"), ("l2", "swd@1"), SWD_MARGIN),
                better("doubling curriculum helps (vs CT's)", ("ict", "swd@1"), ("ct-curriculum", "swd@1"), SWD_MARGIN),
                better("lognormal schedule helps (vs uniform)", ("ict", "swd@1"), ("uniform-noise", "swd@1"), SWD_MARGIN),
            ],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "1-step SWD".into(),
                series: vec![
                    s("iCT", "ict", "swd@1"),
                    s("EMA teacher", "ema-teacher", "swd@1"),
                    s("L2 distance", "l2", "swd@1"),
                    s("CT curriculum", "ct-curriculum", "swd@1"),
                    s("uniform noise", "uniform-noise", "swd@1"),
                ],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 steps, s1 = 1280 reached by doubling every 250 steps (paper: CIFAR-10/ImageNet-64, 400k steps, FID)",
        },
        Claim {
            id: "scm-stability",
            section: "1.6.1",
            statement: "sCM: tangent normalisation and tangent warm-up keep continuous-time training stable",
            hypothesis: format!("sCT runs with the tangent normalisation or the warm-up (H = {}) removed diverge more often than with both", st / 2),
            metric: format!("share of diverged runs over 5 seeds (diverged: 1-step SWD > {}, >{:.0} % of steps non-finite, or stopped by max_bad_steps)", super::runs::DIVERGED_SWD, 100.0 * super::runs::DIVERGED_SKIP_SHARE),
            seeds: 5,
            arms: vec![
                sct_arm("sct", "full", false),
                sct_arm("no-norm", "none", false),
                sct_arm("no-warmup", "full", true),
                sct_arm("neither", "none", true),
            ],
            tests: vec![
                rate("tangent normalisation keeps it stable", "no-norm", "sct"),
                rate("tangent warm-up keeps it stable", "no-warmup", "sct"),
                rate("both together keep it stable", "neither", "sct"),
            ],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "1-step SWD".into(),
                series: vec![
                    s("sCT", "sct", "swd@1"),
                    s("no tangent norm", "no-norm", "swd@1"),
                    s("no warm-up", "no-warmup", "swd@1"),
                    s("neither", "neither", "swd@1"),
                ],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3 with adaptive double normalisation, fp32, 2000 steps (paper: 1.5B-parameter U-Nets, ImageNet 512, fp16)",
        },
        Claim {
            id: "ctm",
            section: "1.7.2-1.7.3",
            statement: "CTM: gamma = 0 sampling improves with NFE while gamma = 1 can degrade; DSM (and GAN) terms let the student match or beat its teacher",
            hypothesis: format!("CTM distilled from a {}-step EDM teacher (and started from its weights), {ct} steps: gamma = 0 improves from 1 to 8 NFE, gamma = 1 gets worse from 2 to 8 NFE and is beaten by gamma = 0 at 8; DSM lowers the 1-step SWD; with DSM (and GAN) the 1-step student is within the margin of the teacher's 18-step Heun ODE (35 NFE)", b.teacher_steps),
            metric: "SWD of gamma-sampling at 1, 2, 4, 8 NFE; the teacher's SWD with 18 Heun steps".into(),
            seeds: 3,
            arms: vec![ctm_arm("dsm", true, false), ctm_arm("no-dsm", false, false), ctm_arm("dsm+gan", true, true)],
            tests: vec![
                better("gamma=0 improves with NFE (1 -> 8)", ("dsm", "g0swd@8"), ("dsm", "g0swd@1"), SWD_MARGIN),
                better("gamma=1 degrades with NFE (2 -> 8)", ("dsm", "g1swd@2"), ("dsm", "g1swd@8"), SWD_MARGIN),
                better("gamma=0 beats gamma=1 at 8 NFE", ("dsm", "g0swd@8"), ("dsm", "g1swd@8"), SWD_MARGIN),
                better("DSM term improves the 1-step student", ("dsm", "g0swd@1"), ("no-dsm", "g0swd@1"), SWD_MARGIN),
                matches("student with DSM matches or beats its teacher (1 NFE vs 35)", ("dsm", "g0swd@1"), ("dsm", "teacher_swd"), SWD_MARGIN),
                matches("student with DSM+GAN matches or beats its teacher (1 NFE vs 35)", ("dsm+gan", "g0swd@1"), ("dsm+gan", "teacher_swd"), SWD_MARGIN),
            ],
            figure: Figure {
                x_steps: false,
                nfe: vec![1, 2, 4, 8],
                y: "SWD".into(),
                series: vec![
                    s("DSM, gamma=0", "dsm", "g0swd@"),
                    s("DSM, gamma=1", "dsm", "g1swd@"),
                    s("no DSM, gamma=0", "no-dsm", "g0swd@"),
                    s("DSM+GAN, gamma=0", "dsm+gan", "g0swd@"),
                    r("EDM teacher, Heun 35 NFE", "dsm", "teacher_swd"),
                ],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 1000 CTM steps from a 2000-step EDM teacher (paper: CIFAR-10/ImageNet-64, FID)",
        },
        Claim {
            id: "facm-anchor",
            section: "1.8",
            statement: "FACM: the flow anchor removes the instability of the continuous-time CM objective",
            hypothesis: "FACM runs without the flow-matching term (fm_weight = 0) diverge more often than with it".into(),
            metric: format!("share of diverged runs over 5 seeds (diverged: 1-step SWD > {}, or non-finite steps)", super::runs::DIVERGED_SWD),
            seeds: 5,
            arms: vec![
                arm2d("facm", "facm", "ring8", vec![], |_| {}),
                arm2d("no-anchor", "facm", "ring8", vec![("method.fm_weight", "0.0".into())], |_| {}),
            ],
            tests: vec![rate("the flow anchor keeps it stable", "no-anchor", "facm")],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "1-step SWD".into(),
                series: vec![s("FACM", "facm", "swd@1"), s("no FM anchor", "no-anchor", "swd@1")],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 steps from scratch (paper: ImageNet 256 latents, distilling a flow model)",
        },
        Claim {
            id: "oracle-map",
            section: "exact oracle",
            statement: "the learned consistency map converges to the exact map as training grows",
            hypothesis: format!("the RMS distance of CD's (exact teacher, Heun, N = 18) one-step map to the exact consistency map is lower after {st} steps than after {early}"),
            metric: "consistency error: RMS distance to the exact PF-ODE map over sigma on the Karras ramp (standardised units, 512 points)".into(),
            seeds: 3,
            arms: vec![cd_arm("heun", "heun"), cd_arm("euler", "euler")],
            tests: vec![better(&format!("error falls from step {early} to {st}"), ("heun", "cerr"), ("heun", &format!("cerr#{early}")), CERR_MARGIN)],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "consistency error (RMS)".into(),
                series: vec![s("CD Heun", "heun", "cerr"), s("CD Euler", "euler", "cerr")],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 steps",
        },
        Claim {
            id: "oracle-cd-exact",
            section: "exact oracle",
            statement: "CD with the exact teacher reaches the exact-ODE sampler's quality at one step",
            hypothesis: "CD's (exact teacher, Heun, N = 18) 1-step SWD is within the margin of the exact PF-ODE sampler's (128 Heun steps with the exact denoiser) on the same reference set".into(),
            metric: "1-step SWD vs the exact-ODE SWD".into(),
            seeds: 3,
            arms: vec![cd_arm("heun", "heun")],
            tests: vec![matches("1-step CD matches the exact ODE", ("heun", "swd@1"), ("heun", "exact_swd"), SWD_MARGIN)],
            figure: Figure {
                x_steps: true,
                nfe: vec![],
                y: "1-step SWD".into(),
                series: vec![s("CD Heun, 1 step", "heun", "swd@1"), r("exact ODE (128 Heun)", "heun", "exact_swd")],
            },
            missing: no_missing(),
            scale: "2-D ring8, MLP 256x3, 2000 steps",
        },
    ]
}
