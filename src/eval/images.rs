//! Image metrics that need no download: small classifier CNNs trained on MNIST and on
//! Fashion-MNIST (weights committed under `assets/`, ~0.4 MB each), the Fréchet distance between
//! their penultimate-layer features (`FD-mnistnet` / `FD-fashionnet`; never called FID: the
//! feature net is ours, not Inception), classifier confidence (mean max softmax probability) and
//! pixel-space SWD ([`crate::eval::swd`]).
//!
//! The classifier: conv 3×3 1→16, ReLU, max-pool 2 → conv 3×3 16→32, ReLU, max-pool 2 →
//! linear 1568→64, ReLU (the 64-d features) → linear 64→10. Inputs are `[N, 1, 28, 28]` in
//! [-1, 1]; other sizes are resized bilinearly to 28 px and colour images averaged to grey.
//!
//! The Fréchet distance between Gaussians fitted to two feature sets is
//! ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}), with tr(Σ₁Σ₂)^{1/2} = tr(A Σ₂ A)^{1/2}, A = Σ₁^{1/2};
//! the trace comes from the eigenvalues of Lᵀ Σ₂ L, Σ₁ = L Lᵀ ([`frechet_from_stats`]).

use crate::rng::Rng;
use crate::tensor::to_vec64;
use crate::train::optim::{adam_step, AdamConfig};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// Width of the feature layer.
pub const FEAT: usize = 64;
/// Input side length.
pub const SIDE: usize = 28;

/// Parameter names and shapes, in order.
pub const PARAMS: [(&str, &[usize]); 8] = [
    ("conv1.w", &[16, 1, 3, 3]),
    ("conv1.b", &[16]),
    ("conv2.w", &[32, 16, 3, 3]),
    ("conv2.b", &[32]),
    ("fc1.w", &[32 * 7 * 7, FEAT]),
    ("fc1.b", &[FEAT]),
    ("fc2.w", &[FEAT, 10]),
    ("fc2.b", &[10]),
];

/// The built-in classifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// mnistnet, trained on MNIST digits (`assets/mnistnet.safetensors`).
    Mnist,
    /// fashionnet, trained on Fashion-MNIST (`assets/fashionnet.safetensors`).
    Fashion,
}

static MNISTNET: &[u8] = include_bytes!("../../assets/mnistnet.safetensors");
static FASHIONNET: &[u8] = include_bytes!("../../assets/fashionnet.safetensors");

impl Net {
    /// The metric's name in reports.
    pub fn fd_name(self) -> &'static str {
        match self {
            Net::Mnist => "FD-mnistnet",
            Net::Fashion => "FD-fashionnet",
        }
    }
    /// The classifier that fits a data set name: Fashion-MNIST data gets fashionnet, anything
    /// else mnistnet.
    pub fn for_data(name: &str) -> Net {
        if name.to_ascii_lowercase().contains("fashion") {
            Net::Fashion
        } else {
            Net::Mnist
        }
    }
    fn bytes(self) -> &'static [u8] {
        match self {
            Net::Mnist => MNISTNET,
            Net::Fashion => FASHIONNET,
        }
    }
}

/// A classifier: eight flat parameter tensors ([`PARAMS`]).
#[derive(Clone)]
pub struct Classifier {
    /// The flat f32 parameter tensors, in the order and with the element counts of [`PARAMS`].
    pub params: Vec<Tensor<1>>,
    /// Metadata stored with the weights (data set, test accuracy, ...).
    pub meta: std::collections::HashMap<String, String>,
}

impl Classifier {
    /// Random initial weights (He-uniform convs and linears, zero biases).
    pub fn init(seed: u64, device: &Device) -> Self {
        let mut rng = Rng::new(seed);
        let params = PARAMS
            .iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let fan_in = match *name {
                    "conv1.w" => 9,
                    "conv2.w" => 16 * 9,
                    "fc1.w" => 32 * 7 * 7,
                    "fc2.w" => FEAT,
                    _ => 0,
                };
                let v: Vec<f32> = if fan_in == 0 {
                    vec![0.0; n]
                } else {
                    let b = (6.0 / fan_in as f64).sqrt();
                    (0..n).map(|_| ((2.0 * rng.uniform() - 1.0) * b) as f32).collect()
                };
                Tensor::<1>::from_data(TensorData::new(v, [n]), device)
            })
            .collect();
        Self {
            params,
            meta: Default::default(),
        }
    }

    /// The committed weights of a built-in net.
    pub fn builtin(net: Net, device: &Device) -> Result<Self> {
        Self::from_bytes(net.bytes(), device).with_context(|| format!("built-in classifier {net:?}"))
    }

    /// Weights from a safetensors file (the format [`Classifier::to_bytes`] writes).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&b, device).with_context(|| format!("in {}", path.display()))
    }

    /// Weights from safetensors bytes: every tensor of [`PARAMS`], F32 with exactly its shape,
    /// and the file's metadata.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let (_, md) = safetensors::SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
        let st = safetensors::SafeTensors::deserialize(bytes).context("not a safetensors file")?;
        let mut params = Vec::new();
        for (name, shape) in PARAMS {
            let t = st
                .tensor(name)
                .with_context(|| format!("classifier weights have no '{name}'"))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                bail!(
                    "classifier tensor '{name}' is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                );
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let n = v.len();
            params.push(Tensor::<1>::from_data(TensorData::new(v, [n]), device));
        }
        Ok(Self {
            params,
            meta: md.metadata().clone().unwrap_or_default(),
        })
    }

    /// The weights and metadata as safetensors bytes (F32, the shapes of [`PARAMS`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = PARAMS
            .iter()
            .zip(&self.params)
            .map(|((n, s), t)| {
                let v = crate::tensor::to_vec(t.clone());
                (
                    n.to_string(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    s.to_vec(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = data
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        Ok(safetensors::serialize(views, &Some(self.meta.clone()))?)
    }

    /// Features `[N, 64]` and logits `[N, 10]` of `[N, 1, 28, 28]` images in [-1, 1], computed
    /// with `p` (plain or autodiff tensors).
    pub fn forward_with(p: &[Tensor<1>], x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let n = x.dims()[0];
        let w4 = |t: &Tensor<1>, s: [usize; 4]| t.clone().reshape(s);
        let opt = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let pool = |x: Tensor<4>| max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
        let h = conv2d(x, w4(&p[0], [16, 1, 3, 3]), Some(p[1].clone()), opt()).clamp_min(0.0);
        let h = pool(h);
        let h = conv2d(h, w4(&p[2], [32, 16, 3, 3]), Some(p[3].clone()), opt()).clamp_min(0.0);
        let h = pool(h).reshape([n, 32 * 7 * 7]);
        let f = (h.matmul(p[4].clone().reshape([32 * 7 * 7, FEAT])) + p[5].clone().reshape([1, FEAT])).clamp_min(0.0);
        let logits = f.clone().matmul(p[6].clone().reshape([FEAT, 10])) + p[7].clone().reshape([1, 10]);
        (f, logits)
    }

    /// Flat `[N, C·H·W]` images in [-1, 1] as classifier input `[N, 1, 28, 28]`.
    pub fn prepare(xs: &[f64], (c, h, w): (usize, usize, usize), device: &Device) -> Tensor<4> {
        let n = xs.len() / (c * h * w);
        let v: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        let mut t = Tensor::<4>::from_data(TensorData::new(v, [n, c, h, w]), device);
        if c != 1 {
            t = t.mean_dim(1);
        }
        if (h, w) != (SIDE, SIDE) {
            t = interpolate(
                t,
                // Half-pixel centres, as PyTorch's default (AUDIT B3).
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_output_size([SIDE, SIDE])
                    .with_align_corners(false),
            );
        }
        t
    }

    /// Features (row-major N×64, f64) and softmax probabilities (N×10) of flat images.
    pub fn features(&self, xs: &[f64], shape: (usize, usize, usize), device: &Device) -> (Vec<f64>, Vec<f64>) {
        let d = shape.0 * shape.1 * shape.2;
        let n = xs.len() / d;
        let (mut feats, mut probs) = (Vec::with_capacity(n * FEAT), Vec::with_capacity(n * 10));
        for chunk in xs.chunks(512 * d) {
            let (f, l) = Self::forward_with(&self.params, Self::prepare(chunk, shape, device));
            feats.extend(to_vec64(f));
            probs.extend(to_vec64(activation::softmax(l, 1)));
        }
        (feats, probs)
    }

    /// Fraction of images whose arg-max class equals the label.
    pub fn accuracy(&self, xs: &[f64], labels: &[u8], shape: (usize, usize, usize), device: &Device) -> f64 {
        let (_, p) = self.features(xs, shape, device);
        let hits = p
            .chunks(10)
            .zip(labels)
            .filter(|(row, &l)| argmax(row) == l as usize)
            .count();
        hits as f64 / labels.len() as f64
    }
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Options of [`train_classifier`].
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Passes over the training set (fractional allowed); default 2.
    pub epochs: f64,
    /// Images per step; default 128.
    pub batch: usize,
    /// Peak Adam learning rate, cosine-decayed to 5% of it over the run; default 2e-3.
    pub lr: f64,
    /// Seed of the initial weights and of the batch order; default 0.
    pub seed: u64,
    /// Stop after this many seconds even if the epochs are not done.
    pub max_seconds: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 2.0,
            batch: 128,
            lr: 2e-3,
            seed: 0,
            max_seconds: 240.0,
        }
    }
}

/// Trains a classifier on labelled 28-px grey images (cross-entropy, our own Adam loop on burn
/// autodiff), returning it with `steps`, `seconds` and the data name in its metadata.
pub fn train_classifier(
    train: &crate::data::images::Images,
    opt: &TrainOptions,
    device: &Device,
    mut progress: impl FnMut(u64, f64),
) -> Result<Classifier> {
    let labels = train.labels.as_ref().context("the training images have no labels")?;
    if (train.c, train.h, train.w) != (1, SIDE, SIDE) {
        bail!(
            "the classifier trains on 1×28×28 images, got {}×{}×{}",
            train.c,
            train.h,
            train.w
        );
    }
    let mut clf = Classifier::init(opt.seed, device);
    let mut rng = Rng::new(opt.seed ^ 0xC1A5);
    let steps = (opt.epochs * train.n as f64 / opt.batch as f64).ceil() as u64;
    let mut m: Vec<Tensor<1>> = clf.params.iter().map(|t| t.zeros_like()).collect();
    let mut v = m.clone();
    let adam = AdamConfig {
        kind: crate::config::Optimizer::Adam,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut adam_t = vec![0u64; clf.params.len()];
    let t0 = std::time::Instant::now();
    let mut order = rng.permutation(train.n);
    let mut pos = 0;
    let mut done = 0;
    for k in 1..=steps {
        let mut xs = Vec::with_capacity(opt.batch * train.dim());
        let mut onehot = vec![0f32; opt.batch * 10];
        for i in 0..opt.batch {
            if pos == order.len() {
                order = rng.permutation(train.n);
                pos = 0;
            }
            let j = order[pos];
            pos += 1;
            train.get(j, false, &mut xs);
            onehot[i * 10 + labels[j] as usize] = 1.0;
        }
        let x = Classifier::prepare(&xs, (1, SIDE, SIDE), device);
        let y = Tensor::<2>::from_data(TensorData::new(onehot, [opt.batch, 10]), device);
        let p_ad: Vec<Tensor<1>> = clf.params.iter().map(|t| t.clone().autodiff().require_grad()).collect();
        let (_, logits) = Classifier::forward_with(&p_ad, x);
        let loss = (activation::log_softmax(logits, 1) * y).sum_dim(1).mean().neg();
        let lv = loss.clone().into_scalar::<f32>() as f64;
        let grads = loss.backward();
        // Cosine decay of the learning rate to 5% over the run.
        let lr = opt.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / steps as f64).cos()));
        let g: Vec<Option<Tensor<1>>> = p_ad.iter().map(|p| p.grad(&grads)).collect();
        adam_step(&adam, lr, 1.0, &mut clf.params, &mut m, &mut v, &mut adam_t, g);
        progress(k, lv);
        done = k;
        if t0.elapsed().as_secs_f64() > opt.max_seconds {
            break;
        }
    }
    clf.meta.insert("steps".into(), done.to_string());
    clf.meta.insert("batch".into(), opt.batch.to_string());
    clf.meta
        .insert("seconds".into(), format!("{:.1}", t0.elapsed().as_secs_f64()));
    Ok(clf)
}

/// Symmetric eigen-decomposition by cyclic Jacobi rotations, in f64. `a` is row-major n×n and
/// symmetric. Returns (eigenvalues, eigenvectors as the columns of a row-major n×n matrix).
pub fn jacobi_eigh(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n);
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J with the rotation in the (p, q) plane.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// The symmetric positive semi-definite square root (negative eigenvalues from round-off are
/// clamped to zero).
pub fn sqrtm_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (w, v) = jacobi_eigh(a, n);
    let s: Vec<f64> = w.iter().map(|&x| x.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| v[i * n + k] * s[k] * v[j * n + k]).sum();
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    c.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, ci)| {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for (cij, bkj) in ci.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *cij += aik * bkj;
            }
        }
    });
    c
}

/// Mean and (unbiased) covariance of row-major N×d points.
pub fn mean_cov(x: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() / d;
    let mut mu = vec![0.0; d];
    for r in x.chunks(d) {
        for j in 0..d {
            mu[j] += r[j] / n as f64;
        }
    }
    let mut cov = vec![0.0; d * d];
    for r in x.chunks(d) {
        for i in 0..d {
            let di = r[i] - mu[i];
            for j in i..d {
                cov[i * d + j] += di * (r[j] - mu[j]);
            }
        }
    }
    let den = (n.max(2) - 1) as f64;
    for i in 0..d {
        for j in i..d {
            cov[i * d + j] /= den;
            cov[j * d + i] = cov[i * d + j];
        }
    }
    (mu, cov)
}

/// Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) in d dimensions:
/// ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr(Σ₁Σ₂)^{1/2}.
///
/// tr(Σ₁Σ₂)^{1/2} is the sum of the square roots of the eigenvalues of Σ₁Σ₂, which equal those of
/// the symmetric PSD M = Lᵀ Σ₂ L with Σ₁ = L Lᵀ (Cholesky; Σ₁Σ₂ = L (Lᵀ Σ₂ L) L⁻¹ is similar to
/// M). Eigenvalues only, by Householder tridiagonalisation and implicit QL ([`sym_eigenvalues`]):
/// O(d³) with a small constant, seconds for Inception's d = 2048, where a Jacobi square root
/// took minutes. A singular Σ₁ (dead ReLU features, fewer samples than dimensions) is
/// factored exactly, with zero columns where its pivots vanish ([`cholesky_psd`]), rather
/// than shifted by a ridge (pytorch-fid adds 10⁻⁶·I there, which moves the square root by
/// O(√δ)).
pub fn frechet_from_stats(mu1: &[f64], s1: &[f64], mu2: &[f64], s2: &[f64], d: usize) -> f64 {
    let dm: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b).powi(2)).sum();
    let tr1: f64 = (0..d).map(|i| s1[i * d + i]).sum();
    let tr2: f64 = (0..d).map(|i| s2[i * d + i]).sum();
    let l = cholesky_psd(s1, d);
    // M = Lᵀ (Σ₂ L), symmetrised against round-off.
    let lt = transpose(&l, d);
    let m = matmul(&lt, &matmul(s2, &l, d), d);
    let mut ms = m.clone();
    for i in 0..d {
        for j in 0..d {
            ms[i * d + j] = 0.5 * (m[i * d + j] + m[j * d + i]);
        }
    }
    let tr_sqrt: f64 = sym_eigenvalues(&ms, d).iter().map(|x| x.max(0.0).sqrt()).sum();
    dm + tr1 + tr2 - 2.0 * tr_sqrt
}

/// A lower factor L with L Lᵀ = `a` for a symmetric positive semi-definite row-major n×n
/// matrix: Cholesky, where a pivot at or below 10⁻¹¹ of the largest diagonal entry (zero in
/// exact arithmetic for a singular PSD matrix, round-off here) gives a zero column instead of
/// a division by ~0. For a positive definite matrix it is the Cholesky factor.
pub fn cholesky_psd(a: &[f64], n: usize) -> Vec<f64> {
    let tol = 1e-11 * (0..n).map(|i| a[i * n + i]).fold(0.0f64, f64::max);
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let row_j = &l[j * n..j * n + j];
        let dj = a[j * n + j] - row_j.iter().map(|x| x * x).sum::<f64>();
        if dj.is_nan() || dj <= tol {
            continue; // a zero column
        }
        let ljj = dj.sqrt();
        l[j * n + j] = ljj;
        let (head, tail) = l.split_at_mut((j + 1) * n);
        let row_j = &head[j * n..j * n + j];
        tail.par_chunks_mut(n).enumerate().for_each(|(k, row_i)| {
            let i = j + 1 + k;
            let dot: f64 = row_i[..j].iter().zip(row_j).map(|(x, y)| x * y).sum();
            row_i[j] = (a[i * n + j] - dot) / ljj;
        });
    }
    l
}

fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = a[i * n + j];
        }
    }
    t
}

/// Eigenvalues (ascending) of a symmetric row-major n×n matrix: Householder reduction to
/// tridiagonal form, then the implicit QL iteration with Wilkinson shifts (Golub & Van Loan,
/// "Matrix Computations", §8.3; the `tred2`/`tql1` pair of EISPACK without eigenvectors).
pub fn sym_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n);
    if n == 0 {
        return Vec::new();
    }
    let mut a = a.to_vec();
    let mut diag = vec![0.0; n];
    // off[k]: the element between rows k and k + 1 of the tridiagonal matrix.
    let mut off = vec![0.0; n];
    for k in 0..n.saturating_sub(2) {
        let m = n - k - 1; // size of the trailing block k+1..n
        let x: Vec<f64> = (k + 1..n).map(|i| a[i * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        diag[k] = a[k * n + k];
        if norm == 0.0 {
            off[k] = 0.0;
            continue;
        }
        // H = I − 2vvᵀ maps x to αe₁, α = −sign(x₀)‖x‖ (no cancellation in v₀ = x₀ − α).
        let alpha = if x[0] >= 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        let vn = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        v.iter_mut().for_each(|t| *t /= vn);
        off[k] = alpha;
        // B ← H B H on the trailing block: p = Bv, q = p − (vᵀp)v, B ← B − 2(vqᵀ + qvᵀ).
        let p: Vec<f64> = (0..m)
            .into_par_iter()
            .map(|i| {
                let row = &a[(k + 1 + i) * n + k + 1..(k + 2 + i) * n];
                row.iter().zip(&v).map(|(x, y)| x * y).sum()
            })
            .collect();
        let kk: f64 = p.iter().zip(&v).map(|(x, y)| x * y).sum();
        let q: Vec<f64> = p.iter().zip(&v).map(|(pi, vi)| pi - kk * vi).collect();
        a[(k + 1) * n..].par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            let (vi, qi) = (v[i], q[i]);
            for (j, r) in row[k + 1..].iter_mut().enumerate() {
                *r -= 2.0 * (vi * q[j] + qi * v[j]);
            }
        });
    }
    if n >= 2 {
        diag[n - 2] = a[(n - 2) * n + n - 2];
        off[n - 2] = a[(n - 1) * n + n - 2];
    }
    diag[n - 1] = a[(n - 1) * n + n - 1];
    off[n - 1] = 0.0;
    tridiagonal_ql(&mut diag, &mut off);
    diag.sort_by(|x, y| x.total_cmp(y));
    diag
}

/// Implicit QL with Wilkinson shifts on a symmetric tridiagonal matrix (diagonal `d`,
/// off-diagonal `e[i]` between i and i + 1, `e[n−1]` unused); `d` ends as the eigenvalues.
fn tridiagonal_ql(d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for l in 0..n {
        let mut iter = 0;
        loop {
            // The first negligible off-diagonal element at or after l splits the matrix.
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iter += 1;
            if iter > 60 {
                break; // does not happen for symmetric input; keep the current estimate
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + if g >= 0.0 { r.abs() } else { -r.abs() });
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut deflated = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
            }
            if deflated {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
}

/// Fréchet distance between Gaussians fitted to two row-major point sets.
pub fn frechet(a: &[f64], b: &[f64], d: usize) -> f64 {
    let (m1, s1) = mean_cov(a, d);
    let (m2, s2) = mean_cov(b, d);
    frechet_from_stats(&m1, &s1, &m2, &s2, d)
}

/// Mean over samples of the largest softmax probability.
pub fn confidence(probs: &[f64]) -> f64 {
    let n = probs.len() / 10;
    probs
        .chunks(10)
        .map(|r| r.iter().cloned().fold(0.0, f64::max))
        .sum::<f64>()
        / n.max(1) as f64
}

/// Image metrics of a sample set against reference images.
#[derive(Clone, Debug, Serialize)]
pub struct ImageReport {
    /// `FD-mnistnet` or `FD-fashionnet`.
    pub fd_net: String,
    /// Fréchet distance between the samples' and the reference's 64-d classifier features.
    pub fd: f64,
    /// Mean max softmax probability of the classifier on the samples.
    pub confidence: f64,
    /// Unbiased KID on the same features and its standard error over subsets
    /// ([`crate::eval::features::kid`]; subsets of min(1000, N/2) rows, so that they differ).
    pub kid: (f64, f64),
    /// Precision and recall (Kynkäänniemi et al. 2019, k = 3) on the same features.
    pub precision_recall: (f64, f64),
}

/// Reference statistics for repeated evaluations against the same reference set.
pub struct ImageEvaluator {
    /// Which built-in classifier provides the features.
    pub net: Net,
    /// That classifier's weights.
    pub clf: Classifier,
    /// Image shape (C, H, W) of the reference and of the samples.
    pub shape: (usize, usize, usize),
    ref_mu: Vec<f64>,
    ref_cov: Vec<f64>,
    ref_feats: Vec<f64>,
    device: Device,
}

impl ImageEvaluator {
    /// Loads the built-in classifier `net` and fits the Gaussian (mean, covariance) of the
    /// reference images' features once; `reference` is flat `[N, C·H·W]` in [-1, 1].
    pub fn new(net: Net, reference: &[f64], shape: (usize, usize, usize), device: &Device) -> Result<Self> {
        let clf = Classifier::builtin(net, device)?;
        let (f, _) = clf.features(reference, shape, device);
        let (ref_mu, ref_cov) = mean_cov(&f, FEAT);
        Ok(Self {
            net,
            clf,
            shape,
            ref_mu,
            ref_cov,
            ref_feats: f,
            device: device.clone(),
        })
    }

    /// FD and confidence of flat `[N, C·H·W]` samples in [-1, 1] against the reference.
    pub fn report(&self, samples: &[f64]) -> ImageReport {
        let (f, p) = self.clf.features(samples, self.shape, &self.device);
        let (mu, cov) = mean_cov(&f, FEAT);
        use crate::eval::features as ft;
        let n = (f.len() / FEAT).min(self.ref_feats.len() / FEAT);
        let kid = if n >= 4 {
            ft::kid(
                &f,
                &self.ref_feats,
                FEAT,
                ft::KID_SUBSETS,
                ft::KID_SUBSET_SIZE.min(n / 2),
                0x41D,
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        let pr = if n > ft::PR_K {
            ft::precision_recall(&self.ref_feats, &f, FEAT, ft::PR_K)
        } else {
            (f64::NAN, f64::NAN)
        };
        ImageReport {
            fd_net: self.net.fd_name().into(),
            fd: frechet_from_stats(&mu, &cov, &self.ref_mu, &self.ref_cov, FEAT),
            confidence: confidence(&p),
            kid,
            precision_recall: pr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUDIT B3: the feature network's bilinear resizing uses half-pixel centres
    /// (`align_corners = false`, PyTorch's `F.interpolate` default, used by both official
    /// codes): output column o samples the input at (o + 0.5)·32/28 − 0.5, clamped at 0.
    #[test]
    fn audit_b3_feature_resize_uses_half_pixel_centres() {
        let (h, w) = (32, 32);
        let xs: Vec<f64> = (0..h * w).map(|i| (i % w) as f64).collect();
        let t = Classifier::prepare(&xs, (1, h, w), &Device::flex());
        let v = crate::tensor::to_vec64(t.reshape([28 * 28]));
        let at = |o: usize| ((o as f64 + 0.5) * 32.0 / 28.0 - 0.5).clamp(0.0, 31.0);
        for o in [0usize, 1, 13, 27] {
            assert!((v[o] - at(o)).abs() < 1e-5, "column {o}: {} vs {}", v[o], at(o));
            assert!((v[5 * 28 + o] - at(o)).abs() < 1e-5, "row 5, column {o}");
        }
    }

    #[test]
    fn jacobi_sqrtm_of_known_matrices() {
        // [[5, 4], [4, 5]] has eigenvalues 9 and 1; its square root is [[2, 1], [1, 2]].
        let r = sqrtm_psd(&[5.0, 4.0, 4.0, 5.0], 2);
        for (g, w) in r.iter().zip([2.0, 1.0, 1.0, 2.0]) {
            assert!((g - w).abs() < 1e-12, "{r:?}");
        }
        // A random SPD 64×64 matrix: sqrtm(A)² = A and the eigen-decomposition reconstructs A.
        let n = 64;
        let mut rng = Rng::new(7);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>() / n as f64;
            }
            a[i * n + i] += 0.1;
        }
        let s = sqrtm_psd(&a, n);
        let s2 = matmul(&s, &s, n);
        let err = s2.iter().zip(&a).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(err < 1e-9, "max |sqrtm(A)² − A| = {err}");
        let (w, _) = jacobi_eigh(&a, n);
        let tr: f64 = (0..n).map(|i| a[i * n + i]).sum();
        assert!((w.iter().sum::<f64>() - tr).abs() < 1e-9);
        assert!(w.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn frechet_matches_closed_forms() {
        let d = 8;
        let eye: Vec<f64> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let four: Vec<f64> = eye.iter().map(|x| 4.0 * x).collect();
        let z = vec![0.0; d];
        // N(0, I) vs N(0, 4I): tr(I + 4I − 2·2I) = d.
        assert!((frechet_from_stats(&z, &eye, &z, &four, d) - d as f64).abs() < 1e-10);
        // A mean shift adds ‖Δμ‖²; identical Gaussians give 0.
        let one = vec![1.0; d];
        assert!((frechet_from_stats(&z, &eye, &one, &eye, d) - d as f64).abs() < 1e-10);
        assert!(frechet_from_stats(&one, &four, &one, &four, d).abs() < 1e-10);
        // Non-commuting covariances: 1-D projections agree with (σ₁ − σ₂)² per axis after
        // rotation; check FD(Σ, RΣRᵀ) for a rotation equals the closed form on 2×2.
        let s1 = [2.0, 0.0, 0.0, 0.5];
        let s2 = [0.5, 0.0, 0.0, 2.0];
        // tr sqrt(S1 S2) = tr sqrt(diag(1, 1)) = 2; FD = 2.5 + 2.5 − 4 = 1.
        assert!((frechet_from_stats(&[0.0, 0.0], &s1, &[0.0, 0.0], &s2, 2) - 1.0).abs() < 1e-12);
        let c = [1.0, 0.6, 0.6, 1.0];
        // FD(C, C) = 0 with off-diagonal terms.
        assert!(frechet_from_stats(&[0.0, 0.0], &c, &[0.0, 0.0], &c, 2).abs() < 1e-12);
    }

    fn random_spd(n: usize, rank: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let b: Vec<f64> = (0..n * rank).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..rank).map(|k| b[i * rank + k] * b[j * rank + k]).sum::<f64>() / rank as f64;
            }
        }
        a
    }

    /// The tridiagonal QL eigenvalues equal the Jacobi ones on a symmetric indefinite matrix
    /// (with a repeated eigenvalue), on a diagonal one, and on 1×1 and 2×2.
    #[test]
    fn sym_eigenvalues_match_jacobi() {
        let n = 57;
        let mut rng = Rng::new(11);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = rng.normal();
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        let mut want = jacobi_eigh(&a, n).0;
        want.sort_by(|x, y| x.total_cmp(y));
        let got = sym_eigenvalues(&a, n);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-10, "{g} vs {w}");
        }
        // A projection (eigenvalues 0 and 1, each repeated) and a diagonal matrix.
        let p = random_spd(20, 5, 3);
        let got = sym_eigenvalues(&p, 20);
        let mut want = jacobi_eigh(&p, 20).0;
        want.sort_by(|x, y| x.total_cmp(y));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-10, "{g} vs {w}");
        }
        assert_eq!(sym_eigenvalues(&[3.0, 0.0, 0.0, -2.0], 2), vec![-2.0, 3.0]);
        assert_eq!(sym_eigenvalues(&[4.0], 1), vec![4.0]);
        let r = sym_eigenvalues(&[5.0, 4.0, 4.0, 5.0], 2);
        assert!((r[0] - 1.0).abs() < 1e-12 && (r[1] - 9.0).abs() < 1e-12, "{r:?}");
    }

    /// The Cholesky route to tr(Σ₁Σ₂)^{1/2} equals the square-root route
    /// (tr(A Σ₂ A)^{1/2}, A = Σ₁^{1/2} by Jacobi) on random full-rank covariances, and a
    /// rank-deficient Σ₁ (fewer samples than dimensions) still gives a finite distance that
    /// the square-root route agrees with.
    #[test]
    fn frechet_cholesky_route_equals_the_square_root_route() {
        let d = 40;
        let sqrt_route = |s1: &[f64], s2: &[f64]| {
            let a = sqrtm_psd(s1, d);
            let m = matmul(&matmul(&a, s2, d), &a, d);
            let (w, _) = jacobi_eigh(&m, d);
            let t: f64 = w.iter().map(|x| x.max(0.0).sqrt()).sum();
            (0..d).map(|i| s1[i * d + i] + s2[i * d + i]).sum::<f64>() - 2.0 * t
        };
        let z = vec![0.0; d];
        for (r1, r2) in [(80, 60), (15, 70), (15, 15)] {
            let s1 = random_spd(d, r1, r1 as u64);
            let s2 = random_spd(d, r2, 100 + r2 as u64);
            let got = frechet_from_stats(&z, &s1, &z, &s2, d);
            let want = sqrt_route(&s1, &s2);
            assert!(
                got.is_finite() && (got - want).abs() < 1e-6 * want.abs().max(1.0),
                "rank {r1}: {got} vs {want}"
            );
            // A set against itself is 0 even when singular.
            assert!(frechet_from_stats(&z, &s1, &z, &s1, d).abs() < 1e-9);
        }
        // The semi-definite factor reproduces a rank-15 matrix and one with a zero row.
        for (rank, dead) in [(15, None), (40, Some(7))] {
            let mut a = random_spd(d, rank, 1);
            if let Some(k) = dead {
                for t in 0..d {
                    a[k * d + t] = 0.0;
                    a[t * d + k] = 0.0;
                }
            }
            let l = cholesky_psd(&a, d);
            let llt = matmul(&l, &transpose(&l, d), d);
            let err = llt.iter().zip(&a).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(err < 1e-9, "rank {rank}: max |LLᵀ − A| = {err}");
        }
    }

    fn fixture() -> crate::data::images::Images {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte");
        crate::data::images::load_idx_images(&p).unwrap()
    }

    fn flat(im: &crate::data::images::Images) -> Vec<f64> {
        let mut xs = Vec::new();
        for i in 0..im.n {
            im.get(i, false, &mut xs);
        }
        xs
    }

    #[test]
    fn mnistnet_classifies_the_fixture_and_fd_separates_sets() {
        let dev = Device::flex();
        let im = fixture();
        let xs = flat(&im);
        let shape = (1, 28, 28);
        let clf = Classifier::builtin(Net::Mnist, &dev).unwrap();
        let acc = clf.accuracy(&xs, im.labels.as_ref().unwrap(), shape, &dev);
        assert!(acc > 0.95, "mnistnet accuracy on the fixture {acc}");
        let ev = ImageEvaluator::new(Net::Mnist, &xs, shape, &dev).unwrap();
        let same = ev.report(&xs);
        // Not exactly 0: the near-zero eigenvalues of Lᵀ Σ L (squares of Σ's) carry round-off
        // of ε‖Σ‖², so each square root is off by up to √ε‖Σ‖ ≈ 1e-8‖Σ‖ (about 1e-6 in all
        // here; SciPy's sqrtm in pytorch-fid shows the same size of error).
        assert!(same.fd.abs() < 1e-5, "FD of a set against itself {}", same.fd);
        assert!(same.confidence > 0.9, "confidence on real digits {}", same.confidence);
        assert_eq!(same.fd_net, "FD-mnistnet");
        // Two halves of MNIST are close; inverted digits (a Fashion-like shift: white
        // backgrounds) are far.
        let half = xs.len() / 2;
        let fd_halves = frechet(
            &clf.features(&xs[..half], shape, &dev).0,
            &clf.features(&xs[half..], shape, &dev).0,
            FEAT,
        );
        let inv: Vec<f64> = xs.iter().map(|x| -x).collect();
        let far = ev.report(&inv);
        assert!(
            far.fd > 10.0 * fd_halves,
            "FD inverted {} vs halves {fd_halves}",
            far.fd
        );
        assert!(far.confidence < same.confidence);
        // Noise images: far too, and a 16-px resize of the fixture stays close.
        let mut r = Rng::new(3);
        let noise: Vec<f64> = (0..xs.len()).map(|_| r.uniform() * 2.0 - 1.0).collect();
        assert!(ev.report(&noise).fd > 10.0 * fd_halves);
    }

    #[test]
    fn fashionnet_loads_and_round_trips() {
        let dev = Device::flex();
        let c = Classifier::builtin(Net::Fashion, &dev).unwrap();
        let back = Classifier::from_bytes(&c.to_bytes().unwrap(), &dev).unwrap();
        assert_eq!(
            crate::tensor::to_vec(c.params[4].clone()),
            crate::tensor::to_vec(back.params[4].clone())
        );
        assert_eq!(Net::for_data("fashion-mnist:/x"), Net::Fashion);
        assert_eq!(Net::for_data("mnist:/x").fd_name(), "FD-mnistnet");
    }
}
