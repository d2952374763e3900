//! A Gaussian mixture fitted to data by expectation–maximisation: a closed-form model of data
//! that has no exact one (the toy sets, users' files), whose exact denoiser
//! ([`Gmm::denoise_rows`]) is then a teacher the distilling methods can follow like the exact
//! denoiser of a built-in mixture (`method.teacher = "gmm"`).
//!
//! EM for full-covariance mixtures (Dempster, Laird & Rubin 1977; Bishop, PRML §9.2.2):
//! E-step r_nk ∝ π_k N(x_n; μ_k, Σ_k); M-step N_k = Σ_n r_nk, π_k = N_k / N,
//! μ_k = Σ_n r_nk x_n / N_k, Σ_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / N_k + ε I, the ε I keeping
//! every covariance positive definite (scikit-learn's `reg_covar`). Means start from
//! k-means++ seeds refined by Lloyd iterations (Arthur & Vassilvitskii 2007). The number of
//! components is chosen by the mean log-likelihood of held-out points ([`fit_select`]).
//!
//! Why a mixture and not a trained network teacher: on moons and checkerboard an EDM teacher
//! trained inside the demo's 3 minutes left sCD at 4.1× and 5.0× the data floor (README "Which
//! method", session 17), while sCD from an exact mixture denoiser reached 0.8× on ring8; a
//! mixture is fitted in seconds and its denoiser is exact for the model it is.

use super::gather_rows;
use super::gmm::Gmm;
use crate::rng::Rng;
use anyhow::{ensure, Context, Result};
use rayon::prelude::*;

/// Settings of one EM fit.
#[derive(Clone, Debug)]
pub struct EmOptions {
    /// Most EM iterations.
    pub max_iter: usize,
    /// Stop when the mean log-likelihood per point improves by less than this.
    pub tol: f64,
    /// ε added to every covariance's diagonal (in the data's units squared; the data is
    /// standardised when the teacher is fitted, so 1e-4 is a standard deviation of 1 % of the
    /// data's).
    pub reg: f64,
}

impl Default for EmOptions {
    fn default() -> Self {
        Self {
            max_iter: 100,
            tol: 1e-3,
            reg: 1e-4,
        }
    }
}

/// Log-joint ln π_k N(x_n; μ_k, Σ_k) of every row (N×K row-major), rows in parallel.
fn log_joint(g: &Gmm, xs: &[f64]) -> Vec<f64> {
    let d = g.dim;
    let k = g.weights.len();
    let f = g.factor(0.0);
    let (chol, norm) = (&f.chol, &f.log_norm);
    let mut out = vec![0.0; xs.len() / d * k];
    out.par_chunks_mut(k * 64)
        .zip(xs.par_chunks(d * 64))
        .for_each(|(o, x)| {
            let mut y = vec![0.0; d];
            for (orow, xrow) in o.chunks_mut(k).zip(x.chunks(d)) {
                for j in 0..k {
                    let (l, m) = (&chol[j], &g.means[j]);
                    // Forward substitution L y = x − μ: the Mahalanobis distance is |y|².
                    let mut maha = 0.0;
                    for i in 0..d {
                        let mut s = xrow[i] - m[i];
                        for t in 0..i {
                            s -= l[i * d + t] * y[t];
                        }
                        y[i] = s / l[i * d + i];
                        maha += y[i] * y[i];
                    }
                    orow[j] = norm[j] - 0.5 * maha;
                }
            }
        });
    out
}

/// Normalises each row of log-joints into responsibilities in place; returns the mean
/// log-likelihood ln p(x_n) over the rows.
fn responsibilities(lj: &mut [f64], k: usize) -> f64 {
    // Per-row values collected in order, then summed in order: the same result on any number
    // of threads (a parallel sum's order, and so its rounding, would vary).
    let lse: Vec<f64> = lj
        .par_chunks_mut(k)
        .map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            let lse = m + s.ln();
            for v in row.iter_mut() {
                *v = (*v - lse).exp();
            }
            lse
        })
        .collect();
    lse.iter().sum::<f64>() / lse.len() as f64
}

/// Mean log-likelihood per point of `xs` (N×D row-major) under `g`.
pub fn mean_log_likelihood(g: &Gmm, xs: &[f64]) -> f64 {
    let mut lj = log_joint(g, xs);
    responsibilities(&mut lj, g.weights.len())
}

/// The M-step: the mixture maximising the expected log-likelihood under responsibilities `r`
/// (N×K). Components holding less than one point's worth of responsibility are dropped.
fn m_step(xs: &[f64], d: usize, r: &[f64], k: usize, reg: f64) -> Gmm {
    let n = xs.len() / d;
    let mut weights = Vec::new();
    let mut means = Vec::new();
    let mut covs = Vec::new();
    let stats: Vec<(f64, Vec<f64>, Vec<f64>)> = (0..k)
        .into_par_iter()
        .map(|j| {
            let mut nk = 0.0;
            let mut mu = vec![0.0; d];
            for (x, rr) in xs.chunks(d).zip(r.chunks(k)) {
                let w = rr[j];
                nk += w;
                for i in 0..d {
                    mu[i] += w * x[i];
                }
            }
            if nk < 1.0 {
                return (nk, mu, Vec::new());
            }
            mu.iter_mut().for_each(|v| *v /= nk);
            let mut c = vec![0.0; d * d];
            let mut dx = vec![0.0; d];
            for (x, rr) in xs.chunks(d).zip(r.chunks(k)) {
                let w = rr[j];
                for i in 0..d {
                    dx[i] = x[i] - mu[i];
                }
                for a in 0..d {
                    for b in 0..=a {
                        c[a * d + b] += w * dx[a] * dx[b];
                    }
                }
            }
            for a in 0..d {
                for b in 0..=a {
                    c[a * d + b] /= nk;
                    c[b * d + a] = c[a * d + b];
                }
                c[a * d + a] += reg;
            }
            (nk, mu, c)
        })
        .collect();
    for (nk, mu, c) in stats {
        if nk >= 1.0 {
            weights.push(nk / n as f64);
            means.push(mu);
            covs.push(c);
        }
    }
    Gmm::new(weights, means, covs)
}

fn dist2(x: &[f64], c: &[f64]) -> f64 {
    x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// The index of the centre nearest to `x`.
fn nearest(x: &[f64], centres: &[Vec<f64>]) -> usize {
    (0..centres.len())
        .min_by(|&a, &b| dist2(x, &centres[a]).total_cmp(&dist2(x, &centres[b])))
        .unwrap()
}

/// k-means++ seeds refined by 10 Lloyd iterations: `k` centres of `xs`.
fn kmeans(xs: &[f64], d: usize, k: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let n = xs.len() / d;
    let mut centres: Vec<Vec<f64>> = vec![xs[rng.below(n) * d..][..d].to_vec()];
    let mut best: Vec<f64> = xs.chunks(d).map(|x| dist2(x, &centres[0])).collect();
    while centres.len() < k {
        // D² sampling: a point is the next seed with probability ∝ its squared distance to the
        // nearest seed so far.
        let i = rng.categorical(&best);
        let c = xs[i * d..][..d].to_vec();
        best.par_iter_mut()
            .zip(xs.par_chunks(d))
            .for_each(|(b, x)| *b = b.min(dist2(x, &c)));
        centres.push(c);
    }
    for _ in 0..10 {
        let assign: Vec<usize> = xs.par_chunks(d).map(|x| nearest(x, &centres)).collect();
        let mut sum = vec![vec![0.0; d]; k];
        let mut count = vec![0usize; k];
        for (x, &a) in xs.chunks(d).zip(&assign) {
            count[a] += 1;
            for i in 0..d {
                sum[a][i] += x[i];
            }
        }
        for j in 0..k {
            // An empty cluster keeps its centre.
            if count[j] > 0 {
                centres[j] = sum[j].iter().map(|s| s / count[j] as f64).collect();
            }
        }
    }
    centres
}

/// Fits a `k`-component full-covariance mixture to `xs` (N×D row-major) by EM from k-means
/// starting points; returns the mixture and its final mean log-likelihood per point.
pub fn fit(xs: &[f64], d: usize, k: usize, rng: &mut Rng, opt: &EmOptions) -> Result<(Gmm, f64)> {
    let n = xs.len() / d;
    ensure!(
        d > 0 && xs.len() == n * d,
        "EM: {} values are not rows of {d}",
        xs.len()
    );
    ensure!(xs.iter().all(|v| v.is_finite()), "EM: the data has a non-finite value");
    ensure!(
        k >= 1 && n >= 2 * k,
        "EM: {n} points are too few for {k} components (at least 2 per component)"
    );
    let centres = kmeans(xs, d, k, rng);
    // Hard assignments to the nearest centre are the first responsibilities.
    let mut r = vec![0.0; n * k];
    r.par_chunks_mut(k)
        .zip(xs.par_chunks(d))
        .for_each(|(row, x)| row[nearest(x, &centres)] = 1.0);
    refine(xs, m_step(xs, d, &r, k, opt.reg), opt)
}

/// EM iterations from the mixture `g` until converged; returns the mixture and its mean
/// log-likelihood per point.
pub fn refine(xs: &[f64], mut g: Gmm, opt: &EmOptions) -> Result<(Gmm, f64)> {
    let d = g.dim;
    let mut prev = f64::NEG_INFINITY;
    // The log-likelihood returned is that of the mixture returned: each pass scores g, then
    // stops or replaces g by its M-step.
    for it in 1.. {
        let kk = g.weights.len();
        let mut lj = log_joint(&g, xs);
        let ll = responsibilities(&mut lj, kk);
        if it >= opt.max_iter || ll - prev < opt.tol {
            return Ok((g, ll));
        }
        prev = ll;
        g = m_step(xs, d, &lj, kk, opt.reg);
    }
    unreachable!()
}

/// Whether `n_fit` fitting rows give a `k`-component mixture in `d` dimensions at least 5 rows
/// per parameter (a weight, a mean and a covariance's lower triangle per component).
fn size_fits(k: usize, d: usize, n_fit: usize) -> bool {
    k * (1 + d + d * (d + 1) / 2) * 5 <= n_fit
}

/// What [`fit_select`] tried and chose.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Selection {
    /// (components, held-out mean log-likelihood per point) of every candidate tried.
    pub tried: Vec<(usize, f64)>,
    /// The number of components chosen.
    pub k: usize,
}

/// Fits mixtures of each candidate size (ascending) to 80 % of the rows, keeps the size whose
/// mean log-likelihood on the other 20 % is highest, and refines that fit on every row.
/// Candidate sizes with fewer than 5 fitting rows per parameter are skipped; the search stops
/// at the first size that scores below the best before it.
pub fn fit_select(
    xs: &[f64],
    d: usize,
    candidates: &[usize],
    rng: &mut Rng,
    opt: &EmOptions,
) -> Result<(Gmm, Selection)> {
    let n = xs.len() / d;
    ensure!(n >= 10, "EM: {n} points are too few to fit a mixture (at least 10)");
    let perm = rng.permutation(n);
    let n_fit = n * 4 / 5;
    let (fit_x, val_x) = (gather_rows(xs, d, &perm[..n_fit]), gather_rows(xs, d, &perm[n_fit..]));
    let mut tried = Vec::new();
    let mut fits = Vec::new();
    for &k in candidates {
        if k > 1 && !size_fits(k, d, n_fit) {
            continue;
        }
        let (g, _) = fit(&fit_x, d, k, rng, opt)?;
        let ll = mean_log_likelihood(&g, &val_x);
        let best = tried
            .iter()
            .map(|t: &(usize, f64)| t.1)
            .fold(f64::NEG_INFINITY, f64::max);
        tried.push((k, ll));
        fits.push(g);
        // Larger sizes are tried while they help: the first that scores below the best so far
        // ends the search (held-out likelihood rises, then falls, with the size).
        if ll < best {
            break;
        }
    }
    ensure!(!tried.is_empty(), "EM: no candidate size fits {n} points");
    let best = (0..tried.len())
        .max_by(|&a, &b| tried[a].1.total_cmp(&tried[b].1))
        .unwrap();
    let k = tried[best].0;
    // The chosen fit, refined on every row: starting from it (not from fresh seeds, which
    // could land in a worse local optimum than the one validated) EM can only raise the
    // likelihood.
    let (g, _) = refine(xs, fits.swap_remove(best), opt)?;
    Ok((g, Selection { tried, k }))
}

/// Points drawn from a built-in generator to fit its mixture (a file's points are used as
/// they are). Measured (`cargo run --release --example gmm_fit`, SWD of 10 000 of the fitted
/// mixture's samples against the demo's reference, mean of 5 draws over the mean floor of 8):
/// with 20 000 points ring8's fitted weights were off by ~2 % and its samples read 1.18× (the
/// true mixture's 1.01×); with 50 000 every built-in read 0.93–1.27× in 5–8 s of fitting; 100 000
/// gave 0.76–1.20× but took 12–16 s of the demo's 3 minutes.
pub const GENERATOR_POINTS: usize = 50_000;

/// Component counts [`fit_teacher`] tries, smallest first.
pub const CANDIDATES: [usize; 6] = [8, 16, 32, 64, 128, 256];

/// A fitted teacher: the mixture in standardised coordinates and how it was chosen.
#[derive(Clone, Debug)]
pub struct FittedTeacher {
    /// The mixture, in the run's standardised coordinates.
    pub gmm: Gmm,
    /// The sizes tried and the one chosen.
    pub selection: Selection,
    /// The points it was fitted to.
    pub points: usize,
    /// Wall time of the fit, seconds.
    pub seconds: f64,
}

/// The `method.teacher = "gmm"` teacher of point data: a full-covariance mixture fitted by EM
/// to the training data in standardised coordinates (`st`) — every point of a file (a random
/// [`GENERATOR_POINTS`] of a larger one), or [`GENERATOR_POINTS`] draws of a built-in
/// generator —, its size chosen from [`CANDIDATES`]
/// by held-out likelihood. `seed` (the run's) fixes the draws and the k-means seeds, so a
/// resumed run refits the same mixture.
pub fn fit_teacher(data: &super::Dataset, st: &super::Standardizer, seed: u64) -> Result<FittedTeacher> {
    ensure!(
        data.image_shape().is_none(),
        "method.teacher = \"gmm\" fits a Gaussian mixture to point data; {} is an image set (give a trained teacher's run folder)",
        data.name()
    );
    let t0 = std::time::Instant::now();
    let mut rng = Rng::new(seed ^ 0x6A11_F17E_AC4E_0001);
    let d = data.dim();
    let raw = match data.points() {
        // A large file is subsampled (without replacement) to as many points as a generator
        // gives: EM's cost is linear in the points, and 50 000 already fit the built-ins to
        // within the floor's noise.
        Some(p) if p.len() / d > GENERATOR_POINTS => {
            let perm = rng.permutation(p.len() / d);
            gather_rows(&p, d, &perm[..GENERATOR_POINTS])
        }
        Some(p) => p,
        None => data.sample(&mut rng, GENERATOR_POINTS),
    };
    // A small file may allow none of the usual sizes (5 fitting points per parameter); it gets
    // the smallest ones instead.
    let candidates: &[usize] = if size_fits(CANDIDATES[0], d, raw.len() / d * 4 / 5) {
        &CANDIDATES
    } else {
        &[1, 2, 4]
    };
    let (gmm, selection) =
        fit_select(&st.forward(&raw), d, candidates, &mut rng, &EmOptions::default()).with_context(|| {
            format!(
                "method.teacher = \"gmm\": fitting a Gaussian mixture to {}",
                data.name()
            )
        })?;
    Ok(FittedTeacher {
        gmm,
        selection,
        points: raw.len() / d,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_mode() -> Gmm {
        Gmm::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, 0.0], vec![2.0, 1.0], vec![0.5, -2.5]],
            vec![
                vec![0.30, 0.20, 0.20, 0.30],
                vec![0.1, 0.0, 0.0, 0.1],
                vec![0.05, -0.02, -0.02, 0.20],
            ],
        )
    }

    /// EM recovers a well-separated mixture from its samples: weights, means and covariances
    /// within their sampling error, and the log-likelihood of fresh points as good as the
    /// truth's.
    #[test]
    fn em_recovers_a_known_mixture() {
        let truth = three_mode();
        let mut rng = Rng::new(3);
        let xs = truth.sample(&mut rng, 20_000);
        let (g, _) = fit(&xs, 2, 3, &mut rng, &EmOptions::default()).unwrap();
        assert_eq!(g.weights.len(), 3);
        for (tw, tm) in truth.weights.iter().zip(&truth.means) {
            // The fitted component nearest to each true mean.
            let j = (0..3)
                .min_by(|&a, &b| {
                    let da: f64 = g.means[a].iter().zip(tm).map(|(x, y)| (x - y).powi(2)).sum();
                    let db: f64 = g.means[b].iter().zip(tm).map(|(x, y)| (x - y).powi(2)).sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            assert!((g.weights[j] - tw).abs() < 0.015, "{} vs {tw}", g.weights[j]);
            for i in 0..2 {
                assert!((g.means[j][i] - tm[i]).abs() < 0.03, "{:?} vs {tm:?}", g.means[j]);
            }
        }
        let fresh = truth.sample(&mut rng, 20_000);
        let (a, b) = (mean_log_likelihood(&g, &fresh), mean_log_likelihood(&truth, &fresh));
        assert!((a - b).abs() < 0.01, "fitted {a} vs true {b}");
        // mean_log_likelihood is the mixture's log-density, averaged.
        let direct = truth.log_density(&fresh, 0.0).iter().sum::<f64>() / 20_000.0;
        assert!((b - direct).abs() < 1e-9);
    }

    /// Every EM iteration raises the likelihood (EM's monotonicity), and the selection prefers
    /// the true size over far too few components.
    #[test]
    fn em_is_monotone_and_selection_rejects_too_few_components() {
        let truth = three_mode();
        let mut rng = Rng::new(5);
        let xs = truth.sample(&mut rng, 4000);
        let mut last = f64::NEG_INFINITY;
        for it in 1..8 {
            let opt = EmOptions {
                max_iter: it,
                tol: f64::NEG_INFINITY,
                ..EmOptions::default()
            };
            let (_, ll) = fit(&xs, 2, 3, &mut Rng::new(9), &opt).unwrap();
            assert!(ll >= last - 1e-9, "iteration {it}: {ll} < {last}");
            last = ll;
        }
        let (g, sel) = fit_select(&xs, 2, &[1, 3], &mut rng, &EmOptions::default()).unwrap();
        assert_eq!(sel.k, 3, "{sel:?}");
        assert_eq!(g.weights.len(), 3);
    }

    /// A file larger than [`GENERATOR_POINTS`] is fitted on a seeded random subset of that size.
    #[test]
    fn a_large_file_is_subsampled_for_the_fit() {
        let truth = three_mode();
        let xs = truth.sample(&mut Rng::new(2), GENERATOR_POINTS + 5000);
        let data = crate::data::Dataset::Points {
            name: "big.csv".into(),
            dim: 2,
            xs,
        };
        let st = data.standardizer();
        let a = fit_teacher(&data, &st, 4).unwrap();
        assert_eq!(a.points, GENERATOR_POINTS);
        assert_eq!(a.gmm, fit_teacher(&data, &st, 4).unwrap().gmm);
    }

    #[test]
    fn em_names_bad_input() {
        let mut rng = Rng::new(1);
        let e = fit(&[0.0, 1.0, f64::NAN, 2.0], 2, 1, &mut rng, &EmOptions::default()).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
        let e = fit(&[0.0, 1.0, 2.0, 3.0], 2, 2, &mut rng, &EmOptions::default()).unwrap_err();
        assert!(e.to_string().contains("too few"), "{e}");
    }
}
