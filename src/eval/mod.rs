//! Distances between sample sets, exact log-likelihood, consistency error.
//!
//! All metrics take row-major f64 point sets (N×D) in the data's own (raw) coordinates.
//! The quadratic-cost metrics (MMD, energy) use at most [`QUAD_MAX`] points of each set
//! (the first ones), so that 10k-sample evaluations stay fast; SWD uses all points.

pub mod features;
pub mod images;
pub mod inception;
pub mod oracle;
pub mod protocol;

use crate::data::gmm::Gmm;
use crate::rng::Rng;
use burn::prelude::*;
use serde::Serialize;

/// Seed of the reference sample every evaluation compares against (fresh data drawn with it),
/// so reports of different runs share one reference.
pub const REFERENCE_SEED: u64 = 0xE7A1;

/// Points used by MMD and energy distance.
pub const QUAD_MAX: usize = 4000;
/// Projections of the sliced Wasserstein distance (fixed directions from a fixed seed).
pub const SWD_PROJECTIONS: usize = 256;
/// RBF bandwidths of MMD, as multiples of the data's per-dimension std (1 after standardising).
pub const MMD_BANDWIDTHS: [f64; 4] = [0.1, 0.25, 0.5, 1.0];

/// Fixed unit directions in D dimensions (seed 0xD1EC7).
pub fn directions(dim: usize, n: usize) -> Vec<Vec<f64>> {
    let mut r = Rng::new(0xD1EC7);
    (0..n)
        .map(|_| {
            let v: Vec<f64> = (0..dim).map(|_| r.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// Quantiles of a sorted sample at (i + ½)/m, by linear interpolation.
fn quantiles(sorted: &[f64], m: usize) -> Vec<f64> {
    let n = sorted.len();
    (0..m)
        .map(|i| {
            let q = (i as f64 + 0.5) / m as f64 * n as f64 - 0.5;
            let lo = q.floor().clamp(0.0, (n - 1) as f64) as usize;
            let hi = (lo + 1).min(n - 1);
            let w = (q - lo as f64).clamp(0.0, 1.0);
            sorted[lo] * (1.0 - w) + sorted[hi] * w
        })
        .collect()
}

/// Sliced Wasserstein-2 distance: sqrt of the mean over fixed directions θ of W2² between the
/// projected sets (exact 1-D W2 by sorting; unequal sizes by matching quantiles).
pub fn swd(a: &[f64], b: &[f64], dim: usize) -> f64 {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let m = na.max(nb);
    let mut total = 0.0;
    for th in directions(dim, SWD_PROJECTIONS) {
        let proj = |x: &[f64], n: usize| {
            let mut p: Vec<f64> = (0..n).map(|i| (0..dim).map(|j| x[i * dim + j] * th[j]).sum()).collect();
            p.sort_by(|x, y| x.total_cmp(y));
            p
        };
        let (pa, pb) = (proj(a, na), proj(b, nb));
        let (qa, qb) = if na == nb {
            (pa, pb)
        } else {
            (quantiles(&pa, m), quantiles(&pb, m))
        };
        total += qa.iter().zip(&qb).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / qa.len() as f64;
    }
    (total / SWD_PROJECTIONS as f64).sqrt()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

fn take(x: &[f64], dim: usize) -> &[f64] {
    &x[..x.len().min(QUAD_MAX * dim)]
}

/// Squared MMD (unbiased U-statistic) with the RBF kernel exp(−‖x−y‖²/(2h²)) summed over
/// `bandwidths`.
pub fn mmd2_with(a: &[f64], b: &[f64], dim: usize, bandwidths: &[f64]) -> f64 {
    let (a, b) = (take(a, dim), take(b, dim));
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let k = |d2: f64| bandwidths.iter().map(|h| (-d2 / (2.0 * h * h)).exp()).sum::<f64>();
    let within = |x: &[f64], n: usize| {
        let mut s = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                s += k(sq_dist(&x[i * dim..(i + 1) * dim], &x[j * dim..(j + 1) * dim]));
            }
        }
        2.0 * s / (n * (n - 1)) as f64
    };
    let mut cross = 0.0;
    for i in 0..na {
        for j in 0..nb {
            cross += k(sq_dist(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]));
        }
    }
    within(a, na) + within(b, nb) - 2.0 * cross / (na * nb) as f64
}

/// MMD² with the default bandwidths scaled by `scale` (the data's mean std).
pub fn mmd2(a: &[f64], b: &[f64], dim: usize, scale: f64) -> f64 {
    let bw: Vec<f64> = MMD_BANDWIDTHS.iter().map(|h| h * scale).collect();
    mmd2_with(a, b, dim, &bw)
}

/// Energy distance 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ (U-statistics within sets).
pub fn energy(a: &[f64], b: &[f64], dim: usize) -> f64 {
    let (a, b) = (take(a, dim), take(b, dim));
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let within = |x: &[f64], n: usize| {
        let mut s = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                s += sq_dist(&x[i * dim..(i + 1) * dim], &x[j * dim..(j + 1) * dim]).sqrt();
            }
        }
        2.0 * s / (n * (n - 1)) as f64
    };
    let mut cross = 0.0;
    for i in 0..na {
        for j in 0..nb {
            cross += sq_dist(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]).sqrt();
        }
    }
    2.0 * cross / (na * nb) as f64 - within(a, na) - within(b, nb)
}

/// Mean log-density of the samples under the true mixture (higher is better).
pub fn loglik(xs: &[f64], gmm: &Gmm) -> f64 {
    let l = gmm.log_density(xs, 0.0);
    l.iter().sum::<f64>() / l.len() as f64
}

/// Root-mean-square distance per sample between two aligned point sets.
pub fn rms_error(a: &[f64], b: &[f64], dim: usize) -> f64 {
    let n = a.len() / dim;
    (sq_dist(a, b) / n as f64).sqrt()
}

/// The standard report of a sample set against reference data.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Sliced Wasserstein-2 distance ([`swd`]), in data units; lower is better.
    pub swd: f64,
    /// Squared MMD, multi-bandwidth RBF ([`mmd2`]); lower is better, can be slightly negative.
    pub mmd: f64,
    /// Energy distance ([`energy`]), in data units; lower is better.
    pub energy: f64,
    /// Mean log-density of the samples under the exact mixture ([`loglik`]); only for
    /// Gaussian-mixture data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loglik: Option<f64>,
    /// Images: which feature net the Fréchet distance uses (`FD-mnistnet` / `FD-fashionnet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd_net: Option<String>,
    /// Images: Fréchet distance of classifier features ([`crate::eval::images`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<f64>,
    /// Images: mean max softmax probability of the classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Images: unbiased KID on the same classifier features ([`features::kid`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<f64>,
    /// Images: standard error of `kid` over its subsets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid_se: Option<f64>,
    /// Images: precision (Kynkäänniemi et al. 2019, k = 3) on the same features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Images: recall (Kynkäänniemi et al. 2019, k = 3) on the same features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Network evaluations per sample of the sampler that made the samples (`cm eval` of a
    /// run: 2N − 1 for N EDM Heun steps, N for N consistency steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfe: Option<usize>,
}

impl Report {
    /// Adds the image metrics.
    pub fn with_image(mut self, r: crate::eval::images::ImageReport) -> Self {
        self.fd_net = Some(r.fd_net);
        self.fd = Some(r.fd);
        self.confidence = Some(r.confidence);
        self.kid = Some(r.kid.0);
        self.kid_se = Some(r.kid.1);
        self.precision = Some(r.precision_recall.0);
        self.recall = Some(r.precision_recall.1);
        self
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        let mut s = format!("swd {:.4}  mmd {:.5}  energy {:.5}", self.swd, self.mmd, self.energy);
        if let Some(l) = self.loglik {
            s += &format!("  loglik {l:.4}");
        }
        if let (Some(n), Some(fd), Some(c)) = (&self.fd_net, self.fd, self.confidence) {
            s += &format!("  {n} {fd:.3}  confidence {c:.3}");
            if let (Some(k), Some(se)) = (self.kid, self.kid_se) {
                s += &format!("  KID {k:.4}±{se:.4}");
            }
            if let (Some(p), Some(r)) = (self.precision, self.recall) {
                s += &format!("  precision {p:.3}  recall {r:.3}");
            }
        }
        s
    }
}

/// A one-line verdict on how close samples are to the data, from their SWD as a multiple of
/// the data floor (the SWD of two fresh draws of the same size): what `cm demo` prints beside
/// each row. The bands: ≤ 1.2× the floor is within the sampling noise of a fresh draw (the
/// demo's target), ≤ 2× has every mode in place with slightly wrong spread, ≤ 5× has the
/// modes but visibly wrong shapes or missing mass, beyond that the samples are far off.
pub fn verdict(swd: f64, floor: f64) -> String {
    if !(swd.is_finite() && floor > 0.0) {
        return "no verdict (non-finite samples)".into();
    }
    let r = swd / floor;
    let what = if r <= 1.2 {
        "as close to the data as a fresh draw"
    } else if r <= 2.0 {
        "close: modes in place, spread slightly off"
    } else if r <= 5.0 {
        "rough: modes found, shapes or weights visibly off"
    } else {
        "far from the data"
    };
    format!("{r:.1}x the data floor: {what}")
}

/// MMD² ([`mmd2`] at the data's scale) above which samples differ from the data whatever their
/// SWD says, for [`QUAD_MAX`] points per set; below that the estimator's noise, and so the
/// threshold, grows as 1/n. SWD compares one-dimensional projections and forgives mass where
/// the data has none. Measured (README "Which method", sessions 17–18, 10 000 samples, so
/// 4 000 in the MMD): fresh draws −0.0007 to 0.0004; every sample set that looked like the data
/// ≤ 0.0008; the sCD disc on rings (SWD 2.8×, "modes found") 0.010; gmm5d's and gmm10d's
/// one-step samples with mass between the modes (SWD 1.2–1.6×) 0.002–0.004.
pub const MMD_SHAPE_FLAG: f64 = 0.002;

/// [`verdict`], with a warning appended when the samples' MMD² (of `n` samples) exceeds
/// [`MMD_SHAPE_FLAG`] and the SWD band has not already called them far off.
pub fn verdict_with_mmd(swd: f64, floor: f64, mmd: f64, n: usize) -> String {
    let v = verdict(swd, floor);
    let limit = MMD_SHAPE_FLAG * QUAD_MAX as f64 / n.clamp(1, QUAD_MAX) as f64;
    if mmd.is_finite() && mmd > limit && swd / floor <= 5.0 {
        format!("{v}; but MMD² {mmd:.4} > {limit:.4}: part of the mass lies off the data")
    } else {
        v
    }
}

/// Fresh draws averaged into the SWD data floor ([`swd_floor`]).
pub const FLOOR_DRAWS: usize = 8;

/// The SWD data floor: the SWD of fresh draws of the data against the reference, over
/// [`FLOOR_DRAWS`] draws where the data has a generator (the built-ins), else the one disjoint
/// draw a finite file allows. One draw is a noisy yardstick: on moons two single-draw floors
/// of 10 000 points read 0.0083 and 0.0179 (README "Which method"), so a model's ratio to it
/// moved by 2× with the draw.
#[derive(Clone, Debug, Serialize)]
pub struct SwdFloor {
    /// Mean SWD of the draws: the floor ratios and verdicts use it.
    pub mean: f64,
    /// Smallest draw's SWD.
    pub min: f64,
    /// Largest draw's SWD.
    pub max: f64,
    /// Number of draws.
    pub draws: usize,
}

/// [`SwdFloor`] of `data` against `reference`, starting from the draw `first` (the evaluation's
/// own fresh draw); further draws come from `rng` (built-in generators only).
pub fn swd_floor(data: &crate::data::Dataset, reference: &[f64], first: &[f64], rng: &mut Rng) -> SwdFloor {
    let dim = data.dim();
    let n = first.len() / dim.max(1);
    let mut v = vec![swd(first, reference, dim)];
    if data.is_generator() {
        v.extend((1..FLOOR_DRAWS).map(|_| swd(&data.sample(rng, n), reference, dim)));
    }
    SwdFloor {
        mean: v.iter().sum::<f64>() / v.len() as f64,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        draws: v.len(),
    }
}

/// Computes [`Report`] of `samples` against `reference` (and the exact density when known).
pub fn report(samples: &[f64], reference: &[f64], dim: usize, gmm: Option<&Gmm>, scale: f64) -> Report {
    Report {
        swd: swd(samples, reference, dim),
        mmd: mmd2(samples, reference, dim, scale),
        energy: energy(samples, reference, dim),
        loglik: gmm.map(|g| loglik(samples, g)),
        fd_net: None,
        fd: None,
        confidence: None,
        kid: None,
        kid_se: None,
        precision: None,
        recall: None,
        nfe: None,
    }
}

/// The FD/confidence evaluator of an image data set (mnistnet, or fashionnet for
/// Fashion-MNIST) against `reference`; None for non-image data.
pub fn image_evaluator(setup: &crate::run::Setup, reference: &[f64]) -> Option<images::ImageEvaluator> {
    let shape = setup.data.image_shape()?;
    let net = images::Net::for_data(setup.data.name());
    match images::ImageEvaluator::new(net, reference, shape, &setup.device) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("warning: no image metrics: {e:#}");
            None
        }
    }
}

/// Adds FD and confidence to a report when an evaluator is given.
pub fn with_image_metrics(r: Report, ev: Option<&images::ImageEvaluator>, xs: &[f64]) -> Report {
    match ev {
        Some(e) => r.with_image(e.report(xs)),
        None => r,
    }
}

/// `cm eval` of a sample set: [`report`] of `xs` (raw coordinates, N×D row-major) against
/// `n` fresh points of `data` drawn with [`REFERENCE_SEED`] ([`crate::data::Dataset::reference_pair`]: disjoint from
/// the floor draw for a file), plus FD, KID, precision/recall and classifier
/// confidence for image data (an error when its classifier cannot be loaded).
pub fn samples_report(data: &crate::data::Dataset, xs: &[f64], n: usize, device: &Device) -> anyhow::Result<Report> {
    let dim = data.dim();
    anyhow::ensure!(
        !xs.is_empty() && xs.len() % dim == 0,
        "the samples must be a non-empty N×{dim} set for data set {}",
        data.name()
    );
    let reference = data.reference_pair(&mut Rng::new(REFERENCE_SEED), n).0;
    let st = data.standardizer();
    let scale = st.std.iter().sum::<f64>() / dim as f64;
    let mut r = report(xs, &reference, dim, data.gmm(), scale);
    if let Some(shape) = data.image_shape() {
        let net = images::Net::for_data(data.name());
        let ev = images::ImageEvaluator::new(net, &reference, shape, device)?;
        r = r.with_image(ev.report(xs));
    }
    Ok(r)
}

/// `cm eval` of a run: `n` samples from the backbone weights `params` with the run's own
/// sampler and `steps` steps (all noise from one stream, seed 1), measured by
/// [`samples_report`], with the sampler's network evaluations per sample.
pub fn run_report(setup: &crate::run::Setup, params: &[Tensor<1>], n: usize, steps: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(steps >= 1, "--steps must be at least 1");
    let xs = crate::generate::sample_steps(setup, params, n, steps, &mut Rng::new(1));
    let sampler = setup.sampler();
    let mut r = samples_report(&setup.data, &xs, n, &setup.device)?;
    r.nfe = Some(sampler.nfe(&sampler.times(steps)));
    Ok(r)
}

/// Evaluates a trained setup with its EMA weights against fresh data.
pub fn evaluate(
    setup: &crate::run::Setup,
    params: &[Tensor<1>],
    n: usize,
    seed: u64,
) -> (Report, Report, Report, Report, Vec<Vec<f64>>) {
    let dim = setup.data.dim();
    let mut rng = crate::rng::Rng::new(seed);
    let (reference, fresh) = setup.data.reference_pair(&mut rng, n);
    let gmm = setup.data.gmm();
    let scale = setup.standardizer.std.iter().sum::<f64>() / dim as f64;
    let mut init_rng = crate::rng::Rng::new(setup.cfg.train.seed);
    let init = crate::nets::init_params(&setup.specs, &mut init_rng, &setup.device);
    let untrained = crate::generate::sample_steps(setup, &init[..setup.n_net], n, 1, &mut rng);
    let one = crate::generate::sample_steps(setup, params, n, 1, &mut rng);
    let two = crate::generate::sample_steps(setup, params, n, 2, &mut rng);
    let ev = image_evaluator(setup, &reference);
    let r = |x: &[f64]| with_image_metrics(report(x, &reference, dim, gmm, scale), ev.as_ref(), x);
    (
        r(&fresh),
        r(&untrained),
        r(&one),
        r(&two),
        vec![fresh, one, two, untrained],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::normal_cdf;

    fn gauss(rng: &mut Rng, n: usize, mean: &[f64], sd: f64) -> Vec<f64> {
        (0..n)
            .flat_map(|_| mean.iter().map(|m| m + sd * rng.normal()).collect::<Vec<_>>())
            .collect()
    }

    /// The SWD floor averages [`FLOOR_DRAWS`] fresh draws of a built-in (each its own SWD
    /// against the same reference) and steadies the yardstick: over 6 references the spread of
    /// the 8-draw mean is below that of single draws. A finite file has its one disjoint draw.
    #[test]
    fn swd_floor_averages_fresh_draws_of_a_generator() {
        let opt = crate::data::ImageOptions::default();
        let data = crate::data::Dataset::from_spec("ring8", &opt).unwrap();
        let n = 2000;
        let (mut singles, mut means) = (vec![], vec![]);
        for seed in 0..6 {
            let mut rng = Rng::new(seed);
            let (reference, fresh) = data.reference_pair(&mut rng, n);
            let f = swd_floor(&data, &reference, &fresh, &mut Rng::new(100 + seed));
            assert_eq!(f.draws, FLOOR_DRAWS);
            let mut again = Rng::new(100 + seed);
            let mut all = vec![swd(&fresh, &reference, 2)];
            all.extend((1..FLOOR_DRAWS).map(|_| swd(&data.sample(&mut again, n), &reference, 2)));
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            assert!((f.mean - mean).abs() < 1e-12 && f.min <= f.mean && f.mean <= f.max);
            singles.push(all[0]);
            means.push(f.mean);
        }
        let spread =
            |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min);
        assert!(spread(&means) < spread(&singles), "means {means:?} singles {singles:?}");
        let file = crate::data::Dataset::from_spec("ring8", &opt)
            .unwrap()
            .sample(&mut Rng::new(3), 400);
        let csv: String = file.chunks(2).map(|p| format!("{},{}\n", p[0], p[1])).collect();
        let dir = std::env::temp_dir().join(format!("cm-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pts.csv");
        std::fs::write(&path, csv).unwrap();
        let pts = crate::data::Dataset::from_spec(path.to_str().unwrap(), &opt).unwrap();
        let (reference, fresh) = pts.reference_pair(&mut Rng::new(1), 200);
        assert_eq!(swd_floor(&pts, &reference, &fresh, &mut Rng::new(2)).draws, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn verdict_bands_follow_the_floor_ratio() {
        assert!(verdict(0.06, 0.05).starts_with("1.2x the data floor: as close"));
        assert!(verdict(0.09, 0.05).contains("close: modes in place"));
        assert!(verdict(0.2, 0.05).contains("rough"));
        assert!(verdict(1.0, 0.05).contains("far"));
        assert!(verdict(f64::NAN, 0.05).contains("no verdict"));
        // The MMD warning: above the threshold at 4 000+ samples, not below it, not when the
        // SWD already says far, and a larger threshold for fewer samples (noisier MMD²).
        assert!(verdict_with_mmd(0.06, 0.05, 0.01, 10_000).contains("but MMD² 0.0100 > 0.0020"));
        assert_eq!(verdict_with_mmd(0.06, 0.05, 0.001, 10_000), verdict(0.06, 0.05));
        assert_eq!(verdict_with_mmd(1.0, 0.05, 0.5, 10_000), verdict(1.0, 0.05));
        assert_eq!(verdict_with_mmd(0.06, 0.05, 0.004, 1000), verdict(0.06, 0.05));
        assert!(verdict_with_mmd(0.06, 0.05, 0.01, 1000).contains("> 0.0080"));
    }

    #[test]
    fn swd_of_shifted_gaussians_is_shift_over_sqrt_d() {
        // N(0, I) vs N(m, I): W2 along θ is |m·θ|, so SW2 = sqrt(E[(m·θ)²]) = |m|/√D.
        let mut r = Rng::new(1);
        let a = gauss(&mut r, 20_000, &[0.0, 0.0], 1.0);
        let b = gauss(&mut r, 20_000, &[1.0, 1.0], 1.0);
        let want = 2f64.sqrt() / 2f64.sqrt();
        let got = swd(&a, &b, 2);
        assert!((got - want).abs() < 0.05 * want, "{got} vs {want}");
        // Scale change: N(0, I) vs N(0, 4I): W2 along θ is |2 − 1| = 1 for every θ.
        let c = gauss(&mut r, 20_000, &[0.0, 0.0], 2.0);
        assert!((swd(&a, &c, 2) - 1.0).abs() < 0.03);
        // Unequal sizes go through quantiles and still agree.
        assert!((swd(&a[..10_000], &b, 2) - want).abs() < 0.05);
        assert!(swd(&a[..20_000], &a[20_000..], 2) < 0.05);
    }

    #[test]
    fn mmd_matches_closed_form_for_gaussians() {
        // E k(X, Y) for X ~ N(μ1, s1² I), Y ~ N(μ2, s2² I) in D dims, RBF bandwidth h:
        // (h²/(h²+s1²+s2²))^{D/2} exp(−‖μ1−μ2‖²/(2(h²+s1²+s2²))).
        let ek = |h: f64, s1: f64, s2: f64, d2: f64| {
            let v = h * h + s1 * s1 + s2 * s2;
            (h * h / v) * (-d2 / (2.0 * v)).exp()
        };
        let h = 1.0;
        let (s1, s2, d2) = (1.0, 0.5, 0.5);
        let want = ek(h, s1, s1, 0.0) + ek(h, s2, s2, 0.0) - 2.0 * ek(h, s1, s2, d2);
        let mut r = Rng::new(2);
        let a = gauss(&mut r, 4000, &[0.0, 0.0], s1);
        let b = gauss(&mut r, 4000, &[0.5, 0.5], s2);
        let got = mmd2_with(&a, &b, 2, &[h]);
        assert!((got - want).abs() < 0.01, "{got} vs {want}");
        let c = gauss(&mut r, 4000, &[0.0, 0.0], s1);
        assert!(mmd2_with(&a, &c, 2, &[h]).abs() < 0.003);
    }

    #[test]
    fn energy_distance_matches_closed_form_in_1d() {
        // For X − Y ~ N(δ, s²): E|X − Y| = s√(2/π) e^{−δ²/2s²} + δ(1 − 2Φ(−δ/s)).
        let e_abs = |d: f64, s: f64| {
            s * (2.0 / std::f64::consts::PI).sqrt() * (-d * d / (2.0 * s * s)).exp()
                + d * (1.0 - 2.0 * normal_cdf(-d / s))
        };
        let (m, s1, s2) = (1.0f64, 1.0f64, 2.0f64);
        let want =
            2.0 * e_abs(m, (s1 * s1 + s2 * s2).sqrt()) - e_abs(0.0, 2f64.sqrt() * s1) - e_abs(0.0, 2f64.sqrt() * s2);
        let mut r = Rng::new(3);
        let a = gauss(&mut r, 4000, &[0.0], s1);
        let b = gauss(&mut r, 4000, &[m], s2);
        let got = energy(&a, &b, 1);
        assert!((got - want).abs() < 0.04, "{got} vs {want}");
    }

    #[test]
    fn loglik_of_exact_samples_is_negative_entropy() {
        // For one Gaussian N(0, s² I) in 2-D: E ln p = −ln(2π s²) − 1.
        let g = Gmm::new(vec![1.0], vec![vec![0.0, 0.0]], vec![vec![0.25, 0.0, 0.0, 0.25]]);
        let xs = g.sample(&mut Rng::new(4), 50_000);
        let want = -(2.0 * std::f64::consts::PI * 0.25).ln() - 1.0;
        assert!((loglik(&xs, &g) - want).abs() < 0.02);
    }
}
