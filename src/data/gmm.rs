//! Gaussian mixtures with exact oracles: density, score, denoiser.
//!
//! For x = x0 + σ z with x0 ~ Σ_k π_k N(μ_k, Σ_k), each component gives x ~ N(μ_k, Σ_k + σ² I),
//! so the posterior responsibilities, the score and the denoiser
//! E[x0 | x] = Σ_k w_k(x)·(μ_k + Σ_k (Σ_k + σ² I)⁻¹ (x − μ_k)) are closed-form. The denoiser is
//! an exact teacher for CD/CTM/sCD, and integrating its PF-ODE gives the exact consistency map.
//! All linear algebra is f64 on small D×D matrices (Cholesky).

use crate::process::Denoiser;
use crate::tensor::to_vec64;
use burn::prelude::*;

/// A Gaussian mixture Σ_k π_k N(μ_k, Σ_k) in D dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct Gmm {
    /// The dimension D.
    pub dim: usize,
    /// Mixture weights π_k, summing to 1.
    pub weights: Vec<f64>,
    /// Component means μ_k, D values each.
    pub means: Vec<Vec<f64>>,
    /// Row-major D×D covariance of each component.
    pub covs: Vec<Vec<f64>>,
}

/// Cholesky factor L (row-major, lower) of a symmetric positive-definite matrix.
pub fn cholesky(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                assert!(s > 0.0, "covariance is not positive definite");
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    l
}

/// Solves L y = b (forward substitution).
fn forward_sub(l: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut y = vec![0.0; d];
    for i in 0..d {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * d + k] * y[k];
        }
        y[i] = s / l[i * d + i];
    }
    y
}

/// Solves Lᵀ x = y (back substitution).
fn back_sub(l: &[f64], y: &[f64], d: usize) -> Vec<f64> {
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        let mut s = y[i];
        for k in i + 1..d {
            s -= l[k * d + i] * x[k];
        }
        x[i] = s / l[i * d + i];
    }
    x
}

/// Per-noise-level factorisation of every component's Σ_k + σ² I.
pub(crate) struct Factored {
    /// Cholesky factor L_k of every C_k = Σ_k + σ² I.
    pub(crate) chol: Vec<Vec<f64>>,
    /// ln π_k − ½ ln det(2π C_k).
    pub(crate) log_norm: Vec<f64>,
}

impl Gmm {
    /// A mixture from unnormalised weights (divided by their sum), means and row-major D×D
    /// covariances; D is the first mean's length.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, covs: Vec<Vec<f64>>) -> Self {
        let dim = means[0].len();
        let total: f64 = weights.iter().sum();
        let weights = weights.into_iter().map(|w| w / total).collect();
        Self {
            dim,
            weights,
            means,
            covs,
        }
    }

    /// Every component's Cholesky factor and log-normaliser at noise level σ (σ = 0: the
    /// mixture itself, what EM's E-step needs).
    pub(crate) fn factor(&self, sigma: f64) -> Factored {
        let d = self.dim;
        let mut chol = Vec::new();
        let mut log_norm = Vec::new();
        for (k, cov) in self.covs.iter().enumerate() {
            let mut c = cov.clone();
            for i in 0..d {
                c[i * d + i] += sigma * sigma;
            }
            let l = cholesky(&c, d);
            let logdet: f64 = (0..d).map(|i| 2.0 * l[i * d + i].ln()).sum();
            log_norm.push(self.weights[k].ln() - 0.5 * (logdet + d as f64 * (2.0 * std::f64::consts::PI).ln()));
            chol.push(l);
        }
        Factored { chol, log_norm }
    }

    /// Log-density of x under the mixture convolved with N(0, σ² I) and, per component,
    /// (responsibility logits, C_k⁻¹ (x − μ_k)).
    fn components(&self, f: &Factored, x: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let d = self.dim;
        let mut logits = Vec::with_capacity(self.weights.len());
        let mut solves = Vec::with_capacity(self.weights.len());
        for k in 0..self.weights.len() {
            let r: Vec<f64> = (0..d).map(|i| x[i] - self.means[k][i]).collect();
            let y = forward_sub(&f.chol[k], &r, d);
            let maha: f64 = y.iter().map(|v| v * v).sum();
            logits.push(f.log_norm[k] - 0.5 * maha);
            solves.push(back_sub(&f.chol[k], &y, d));
        }
        (logits, solves)
    }

    fn logsumexp(v: &[f64]) -> f64 {
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// ln p_σ(x) for each row of `xs` (N×D row-major); σ = 0 gives the data density.
    pub fn log_density(&self, xs: &[f64], sigma: f64) -> Vec<f64> {
        let f = self.factor(sigma);
        xs.chunks(self.dim)
            .map(|x| Self::logsumexp(&self.components(&f, x).0))
            .collect()
    }

    /// Exact denoiser E[x0 | x0 + σ z = x] for each row, one σ per row.
    pub fn denoise_rows(&self, xs: &[f64], sigmas: &[f64]) -> Vec<f64> {
        let d = self.dim;
        let mut out = Vec::with_capacity(xs.len());
        let mut cache: Option<(f64, Factored)> = None;
        for (x, &s) in xs.chunks(d).zip(sigmas) {
            if cache.as_ref().map(|c| c.0 != s).unwrap_or(true) {
                cache = Some((s, self.factor(s)));
            }
            let f = &cache.as_ref().unwrap().1;
            let (logits, solves) = self.components(f, x);
            let lse = Self::logsumexp(&logits);
            let mut m = vec![0.0; d];
            for k in 0..logits.len() {
                let w = (logits[k] - lse).exp();
                // μ_k + Σ_k C_k⁻¹ (x − μ_k) = x − σ² C_k⁻¹ (x − μ_k).
                for i in 0..d {
                    m[i] += w * (x[i] - s * s * solves[k][i]);
                }
            }
            out.extend(m);
        }
        out
    }

    /// Score ∇ ln p_σ(x) = (D(x, σ) − x)/σ² (Tweedie), computed directly.
    pub fn score_rows(&self, xs: &[f64], sigma: f64) -> Vec<f64> {
        let d = self.dim;
        let f = self.factor(sigma);
        let mut out = Vec::with_capacity(xs.len());
        for x in xs.chunks(d) {
            let (logits, solves) = self.components(&f, x);
            let lse = Self::logsumexp(&logits);
            let mut g = vec![0.0; d];
            for k in 0..logits.len() {
                let w = (logits[k] - lse).exp();
                for i in 0..d {
                    g[i] -= w * solves[k][i];
                }
            }
            out.extend(g);
        }
        out
    }

    /// Exact samples (N×D row-major).
    pub fn sample(&self, rng: &mut crate::rng::Rng, n: usize) -> Vec<f64> {
        let d = self.dim;
        let chols: Vec<Vec<f64>> = self.covs.iter().map(|c| cholesky(c, d)).collect();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let k = rng.categorical(&self.weights);
            let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            for i in 0..d {
                let mut v = self.means[k][i];
                for j in 0..=i {
                    v += chols[k][i * d + j] * z[j];
                }
                out.push(v);
            }
        }
        out
    }

    /// The mixture of the affinely mapped variable (x − shift)/scale (per dimension).
    pub fn standardized(&self, shift: &[f64], scale: &[f64]) -> Gmm {
        let d = self.dim;
        Gmm {
            dim: d,
            weights: self.weights.clone(),
            means: self
                .means
                .iter()
                .map(|m| (0..d).map(|i| (m[i] - shift[i]) / scale[i]).collect())
                .collect(),
            covs: self
                .covs
                .iter()
                .map(|c| (0..d * d).map(|ij| c[ij] / (scale[ij / d] * scale[ij % d])).collect())
                .collect(),
        }
    }

    /// Mean and per-dimension std of the mixture, exactly.
    pub fn moments(&self) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim;
        let mean: Vec<f64> = (0..d)
            .map(|i| self.weights.iter().zip(&self.means).map(|(w, m)| w * m[i]).sum())
            .collect();
        let std: Vec<f64> = (0..d)
            .map(|i| {
                let second: f64 = self
                    .weights
                    .iter()
                    .zip(&self.means)
                    .zip(&self.covs)
                    .map(|((w, m), c)| w * (c[i * d + i] + m[i] * m[i]))
                    .sum();
                (second - mean[i] * mean[i]).sqrt()
            })
            .collect();
        (mean, std)
    }
}

/// Eigendecomposition A = U diag(λ) Uᵀ of a symmetric D×D matrix (row-major) by cyclic Jacobi
/// rotations (Golub & Van Loan §8.5): returns (λ, U) with U's columns the eigenvectors.
pub fn sym_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut u = vec![0.0; d * d];
    for i in 0..d {
        u[i * d + i] = 1.0;
    }
    let norm: f64 = a.iter().map(|v| v * v).sum::<f64>().sqrt();
    for _sweep in 0..64 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * norm {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a_pq: tan θ = t, the smaller root of
                // t² + 2τ t − 1 = 0 with τ = (a_qq − a_pp) / (2 a_pq).
                let tau = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = if tau >= 0.0 { 1.0 } else { -1.0 } / (tau.abs() + (1.0 + tau * tau).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (ukp, ukq) = (u[k * d + p], u[k * d + q]);
                    u[k * d + p] = c * ukp - s * ukq;
                    u[k * d + q] = s * ukp + c * ukq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), u)
}

/// A mixture's exact denoiser with every covariance diagonalised once, Σ_k = U_k Λ_k U_kᵀ, so
/// that (Σ_k + σ² I)⁻¹ = U_k (Λ_k + σ² I)⁻¹ U_kᵀ at any σ without a new factorisation.
///
/// Why: the distillation teachers query the denoiser with a different σ in every row, and
/// [`Gmm::denoise_rows`] refactors all K covariances per row. With the K = 256 components of a
/// mixture fitted to checkerboard (`method.teacher = "gmm"`) a 512-row batch took 24 ms that
/// way, half of an sCD step; this form costs O(K·D²) per row, rows in parallel: 3 ms
/// (`cargo run --release --example gmm_fit`, idle 2 cores; 24 ms the other way).
#[derive(Clone, Debug)]
pub struct EigenGmm {
    dim: usize,
    log_w: Vec<f64>,
    means: Vec<f64>,
    u: Vec<f64>,
    lam: Vec<f64>,
}

impl EigenGmm {
    /// Diagonalises every component of `g`.
    pub fn new(g: &Gmm) -> Self {
        let d = g.dim;
        let mut u = Vec::new();
        let mut lam = Vec::new();
        for c in &g.covs {
            let (l, v) = sym_eigen(c, d);
            lam.extend(l);
            u.extend(v);
        }
        Self {
            dim: d,
            log_w: g.weights.iter().map(|w| w.ln()).collect(),
            means: g.means.concat(),
            u,
            lam,
        }
    }

    /// E[x0 | x0 + σ z = x] for each row, one σ per row ([`Gmm::denoise_rows`]'s values).
    pub fn denoise_rows(&self, xs: &[f64], sigmas: &[f64]) -> Vec<f64> {
        use rayon::prelude::*;
        let d = self.dim;
        let k = self.log_w.len();
        let mut out = vec![0.0; xs.len()];
        out.par_chunks_mut(d * 16)
            .zip(xs.par_chunks(d * 16))
            .zip(sigmas.par_chunks(16))
            .for_each(|((o, x), sig)| {
                let mut logit = vec![0.0; k];
                let mut c = vec![0.0; k * d];
                for ((orow, xrow), &s) in o.chunks_mut(d).zip(x.chunks(d)).zip(sig) {
                    let s2 = s * s;
                    for j in 0..k {
                        let (mu, u, lam) = (
                            &self.means[j * d..][..d],
                            &self.u[j * d * d..][..d * d],
                            &self.lam[j * d..][..d],
                        );
                        let cj = &mut c[j * d..][..d];
                        let (mut maha, mut logdet) = (0.0, 0.0);
                        for i in 0..d {
                            // u_i = (U_kᵀ (x − μ_k))_i, a_i = λ_i + σ².
                            let ui: f64 = (0..d).map(|r| u[r * d + i] * (xrow[r] - mu[r])).sum();
                            let a = lam[i] + s2;
                            cj[i] = ui / a;
                            maha += ui * cj[i];
                            logdet += a.ln();
                        }
                        // ln π_k − ½ (ln det C_k + Mahalanobis); the shared −(D/2) ln 2π cancels.
                        logit[j] = self.log_w[j] - 0.5 * (logdet + maha);
                    }
                    let m = logit.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logit.iter().map(|l| (l - m).exp()).sum();
                    orow.copy_from_slice(xrow);
                    for j in 0..k {
                        let w = (logit[j] - m).exp() / z;
                        let u = &self.u[j * d * d..][..d * d];
                        // x − σ² Σ_k w_k C_k⁻¹ (x − μ_k), C_k⁻¹ (x − μ_k) = U_k c_k.
                        for r in 0..d {
                            let v: f64 = (0..d).map(|i| u[r * d + i] * c[j * d + i]).sum();
                            orow[r] -= s2 * w * v;
                        }
                    }
                }
            });
        out
    }
}

impl Denoiser for EigenGmm {
    fn denoise(&self, x: Tensor<2>, sigma: &[f64]) -> Tensor<2> {
        denoise_by_rows(x, sigma, |xs, s| self.denoise_rows(xs, s))
    }
}

/// A row-wise f64 denoiser applied to a tensor: its rows out, the result back on the input's
/// device and dtype.
fn denoise_by_rows(x: Tensor<2>, sigma: &[f64], rows: impl Fn(&[f64], &[f64]) -> Vec<f64>) -> Tensor<2> {
    let [n, d] = x.dims();
    let (dev, dtype) = (x.device(), x.dtype());
    let out = rows(&to_vec64(x), sigma);
    Tensor::from_data(TensorData::new(out, [n, d]), (&dev, dtype))
}

impl Denoiser for Gmm {
    fn denoise(&self, x: Tensor<2>, sigma: &[f64]) -> Tensor<2> {
        denoise_by_rows(x, sigma, |xs, s| self.denoise_rows(xs, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn two_mode() -> Gmm {
        Gmm::new(
            vec![0.3, 0.7],
            vec![vec![-1.0, 0.5], vec![2.0, -1.0]],
            vec![vec![0.2, 0.05, 0.05, 0.1], vec![0.3, -0.1, -0.1, 0.4]],
        )
    }

    /// The Jacobi eigendecomposition reconstructs a symmetric matrix with orthonormal vectors,
    /// and the diagonalised denoiser equals the Cholesky one (2-D full covariances and a 5-D
    /// mixture of random SPD covariances, σ from 0.002 to 80 across rows).
    #[test]
    fn eigen_denoiser_matches_the_cholesky_one() {
        let mut rng = Rng::new(11);
        let d = 5;
        let spd = |rng: &mut Rng| -> Vec<f64> {
            let a: Vec<f64> = (0..d * d).map(|_| rng.normal()).collect();
            (0..d * d)
                .map(|ij| {
                    (0..d).map(|t| a[(ij / d) * d + t] * a[(ij % d) * d + t]).sum::<f64>() * 0.1
                        + if ij / d == ij % d { 0.01 } else { 0.0 }
                })
                .collect()
        };
        let c = spd(&mut rng);
        let (lam, u) = sym_eigen(&c, d);
        for i in 0..d {
            for j in 0..d {
                let rec: f64 = (0..d).map(|t| u[i * d + t] * lam[t] * u[j * d + t]).sum();
                assert!((rec - c[i * d + j]).abs() < 1e-12, "reconstruction ({i},{j})");
                let dot: f64 = (0..d).map(|t| u[t * d + i] * u[t * d + j]).sum();
                assert!(
                    (dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12,
                    "orthonormality ({i},{j})"
                );
            }
        }
        let g5 = Gmm::new(
            vec![1.0, 2.0, 3.0],
            (0..3).map(|_| (0..d).map(|_| rng.normal()).collect()).collect(),
            (0..3).map(|_| spd(&mut rng)).collect(),
        );
        for g in [two_mode(), g5] {
            let n = 40;
            let xs: Vec<f64> = (0..n * g.dim).map(|_| 2.0 * rng.normal()).collect();
            let sig: Vec<f64> = (0..n)
                .map(|i| 0.002 * (80.0f64 / 0.002).powf(i as f64 / (n - 1) as f64))
                .collect();
            let (a, b) = (g.denoise_rows(&xs, &sig), EigenGmm::new(&g).denoise_rows(&xs, &sig));
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 1e-9 * (1.0 + p.abs()), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn single_gaussian_denoiser_is_wiener_filter() {
        // One isotropic component N(m, s² I): E[x0|x] = m + s²/(s²+σ²)(x − m).
        let g = Gmm::new(vec![1.0], vec![vec![1.0, -2.0]], vec![vec![0.25, 0.0, 0.0, 0.25]]);
        let x = [3.0, 1.0];
        let d = g.denoise_rows(&x, &[0.5]);
        let k = 0.25 / (0.25 + 0.25);
        assert!((d[0] - (1.0 + k * 2.0)).abs() < 1e-12);
        assert!((d[1] - (-2.0 + k * 3.0)).abs() < 1e-12);
    }

    #[test]
    fn score_matches_finite_difference_of_log_density_and_tweedie() {
        let g = two_mode();
        let x = [0.3, -0.2];
        let s = 0.7;
        let sc = g.score_rows(&x, s);
        let h = 1e-5;
        for i in 0..2 {
            let mut a = x;
            let mut b = x;
            a[i] += h;
            b[i] -= h;
            let fd = (g.log_density(&a, s)[0] - g.log_density(&b, s)[0]) / (2.0 * h);
            assert!((fd - sc[i]).abs() < 1e-6, "{fd} vs {}", sc[i]);
        }
        let den = g.denoise_rows(&x, &[s]);
        for i in 0..2 {
            assert!(((den[i] - x[i]) / (s * s) - sc[i]).abs() < 1e-10);
        }
    }

    #[test]
    fn density_integrates_to_one() {
        let g = two_mode();
        let (lo, hi, n) = (-6.0, 6.0, 300);
        let h = (hi - lo) / n as f64;
        let mut pts = Vec::new();
        for i in 0..n {
            for j in 0..n {
                pts.push(lo + (i as f64 + 0.5) * h);
                pts.push(lo + (j as f64 + 0.5) * h);
            }
        }
        let total: f64 = g.log_density(&pts, 0.0).iter().map(|l| l.exp() * h * h).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
    }

    #[test]
    fn samples_have_the_exact_moments() {
        let g = two_mode();
        let (m, s) = g.moments();
        let xs = g.sample(&mut Rng::new(1), 200_000);
        for i in 0..2 {
            let col: Vec<f64> = xs.iter().skip(i).step_by(2).cloned().collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
            assert!((mean - m[i]).abs() < 0.01, "{mean} {}", m[i]);
            assert!((sd - s[i]).abs() < 0.01, "{sd} {}", s[i]);
        }
    }

    #[test]
    fn standardisation_maps_density_consistently() {
        let g = two_mode();
        let (m, s) = g.moments();
        let gs = g.standardized(&m, &s);
        let x = [0.4, 0.1];
        let xs = [(x[0] - m[0]) / s[0], (x[1] - m[1]) / s[1]];
        // p_std(x') = p(x)·|det S|.
        let a = g.log_density(&x, 0.0)[0];
        let b = gs.log_density(&xs, 0.0)[0];
        assert!((b - (a + s[0].ln() + s[1].ln())).abs() < 1e-10);
    }
}
