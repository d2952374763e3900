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
//! both square roots come from a cyclic Jacobi eigen-decomposition in f64 ([`jacobi_eigh`]).

use crate::rng::Rng;
use crate::tensor::to_vec64;
use crate::train::optim::{adam_step, AdamConfig};
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
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
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
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

/// Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) in d dimensions.
pub fn frechet_from_stats(mu1: &[f64], s1: &[f64], mu2: &[f64], s2: &[f64], d: usize) -> f64 {
    let dm: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b).powi(2)).sum();
    let a = sqrtm_psd(s1, d);
    let m = matmul(&matmul(&a, s2, d), &a, d);
    // Symmetrise against round-off before the eigen-decomposition.
    let mut ms = m.clone();
    for i in 0..d {
        for j in 0..d {
            ms[i * d + j] = 0.5 * (m[i * d + j] + m[j * d + i]);
        }
    }
    let (w, _) = jacobi_eigh(&ms, d);
    let tr_sqrt: f64 = w.iter().map(|x| x.max(0.0).sqrt()).sum();
    let tr1: f64 = (0..d).map(|i| s1[i * d + i]).sum();
    let tr2: f64 = (0..d).map(|i| s2[i * d + i]).sum();
    dm + tr1 + tr2 - 2.0 * tr_sqrt
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
        assert!(same.fd.abs() < 1e-6, "FD of a set against itself {}", same.fd);
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
