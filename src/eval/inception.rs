//! The Inception-v3 feature network of FID (Heusel et al. 2017), as pytorch-fid computes it
//! (`pytorch_fid/inception.py`, `InceptionV3(output_blocks=[3])`; clean-fid's "legacy
//! PyTorch" mode is the same network): the TensorFlow 2015-12-05 Inception graph ported to
//! torchvision's `Inception3` with the FID patches — the average pools of the A, C and first
//! E blocks leave the zero padding out of the mean (`count_include_pad=False`), and the last E
//! block pools with a max instead of an average. Its 2048-d output (global average pool after
//! `Mixed_7c`) is the feature space of FID.
//!
//! Input handling is pytorch-fid's: images in [0, 1] (here: samples in [-1, 1] mapped by
//! (x + 1)/2, so an 8-bit sample is exactly its PNG's u/255), grey repeated to three channels
//! (PIL's `convert('RGB')`), resized bilinearly to 299 × 299 with half-pixel centres
//! (`F.interpolate(…, mode='bilinear', align_corners=False)`), then scaled to [-1, 1].
//!
//! The weights cannot be downloaded here, so the user supplies them: pytorch-fid's
//! `pt_inception-2015-12-05-6726825d.pth` ([`WEIGHTS_URL`]), converted once to safetensors
//! with `tools/fid_weights.py` (the tensors and their names are unchanged; torchvision's
//! `Inception3` names, e.g. `Mixed_5b.branch1x1.conv.weight`). Each `BasicConv2d` is a
//! bias-free convolution, batch norm (ε = 0.001, running statistics) and ReLU; the batch norm
//! is folded into the convolution at load time: W' = W·γ/√(σ² + ε), b' = β − μ·γ/√(σ² + ε).
//!
//! Checked against pytorch-fid's own network: `tools/inception_reference.py` builds it with
//! deterministic pseudo-random weights ([`synthetic_weights`] computes the same values) and
//! records its features of two test images in `tests/fixtures/inception_reference.json`; the
//! test `inception_matches_pytorch_fid` recomputes them here.

use anyhow::{bail, ensure, Context, Result};
use burn::prelude::*;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use std::collections::HashMap;
use std::path::Path;

/// Where pytorch-fid downloads the FID Inception weights from (the tool cannot: no network).
pub const WEIGHTS_URL: &str =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/// The feature dimension (the pool after `Mixed_7c`).
pub const DIM: usize = 2048;
/// The input side the network resizes every image to.
pub const SIDE: usize = 299;
/// Batch norm ε of torchvision's `BasicConv2d`.
const BN_EPS: f64 = 0.001;

/// How to get the weights, for error messages.
pub fn weights_help() -> String {
    format!(
        "download pytorch-fid's FID Inception weights from {WEIGHTS_URL} and convert them once with `python tools/fid_weights.py pt_inception-2015-12-05-6726825d.pth inception-fid.safetensors` (needs torch and safetensors)"
    )
}

/// One `BasicConv2d` of the network: name, input and output channels, kernel height and width.
type Layer = (String, usize, usize, usize, usize);

/// Every convolution of the FID network in torchvision's names, with its shape. Loading checks
/// each against the file; [`synthetic_weights`] generates them.
pub fn layers() -> Vec<Layer> {
    let mut v: Vec<Layer> = Vec::new();
    let mut add = |p: &str, n: &str, i: usize, o: usize, kh: usize, kw: usize| {
        let name = if n.is_empty() {
            p.to_string()
        } else {
            format!("{p}.{n}")
        };
        v.push((name, i, o, kh, kw));
    };
    add("Conv2d_1a_3x3", "", 3, 32, 3, 3);
    add("Conv2d_2a_3x3", "", 32, 32, 3, 3);
    add("Conv2d_2b_3x3", "", 32, 64, 3, 3);
    add("Conv2d_3b_1x1", "", 64, 80, 1, 1);
    add("Conv2d_4a_3x3", "", 80, 192, 3, 3);
    for (p, i, pf) in [("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)] {
        add(p, "branch1x1", i, 64, 1, 1);
        add(p, "branch5x5_1", i, 48, 1, 1);
        add(p, "branch5x5_2", 48, 64, 5, 5);
        add(p, "branch3x3dbl_1", i, 64, 1, 1);
        add(p, "branch3x3dbl_2", 64, 96, 3, 3);
        add(p, "branch3x3dbl_3", 96, 96, 3, 3);
        add(p, "branch_pool", i, pf, 1, 1);
    }
    add("Mixed_6a", "branch3x3", 288, 384, 3, 3);
    add("Mixed_6a", "branch3x3dbl_1", 288, 64, 1, 1);
    add("Mixed_6a", "branch3x3dbl_2", 64, 96, 3, 3);
    add("Mixed_6a", "branch3x3dbl_3", 96, 96, 3, 3);
    for (p, c7) in [
        ("Mixed_6b", 128),
        ("Mixed_6c", 160),
        ("Mixed_6d", 160),
        ("Mixed_6e", 192),
    ] {
        add(p, "branch1x1", 768, 192, 1, 1);
        add(p, "branch7x7_1", 768, c7, 1, 1);
        add(p, "branch7x7_2", c7, c7, 1, 7);
        add(p, "branch7x7_3", c7, 192, 7, 1);
        add(p, "branch7x7dbl_1", 768, c7, 1, 1);
        add(p, "branch7x7dbl_2", c7, c7, 7, 1);
        add(p, "branch7x7dbl_3", c7, c7, 1, 7);
        add(p, "branch7x7dbl_4", c7, c7, 7, 1);
        add(p, "branch7x7dbl_5", c7, 192, 1, 7);
        add(p, "branch_pool", 768, 192, 1, 1);
    }
    add("Mixed_7a", "branch3x3_1", 768, 192, 1, 1);
    add("Mixed_7a", "branch3x3_2", 192, 320, 3, 3);
    add("Mixed_7a", "branch7x7x3_1", 768, 192, 1, 1);
    add("Mixed_7a", "branch7x7x3_2", 192, 192, 1, 7);
    add("Mixed_7a", "branch7x7x3_3", 192, 192, 7, 1);
    add("Mixed_7a", "branch7x7x3_4", 192, 192, 3, 3);
    for (p, i) in [("Mixed_7b", 1280), ("Mixed_7c", 2048)] {
        add(p, "branch1x1", i, 320, 1, 1);
        add(p, "branch3x3_1", i, 384, 1, 1);
        add(p, "branch3x3_2a", 384, 384, 1, 3);
        add(p, "branch3x3_2b", 384, 384, 3, 1);
        add(p, "branch3x3dbl_1", i, 448, 1, 1);
        add(p, "branch3x3dbl_2", 448, 384, 3, 3);
        add(p, "branch3x3dbl_3a", 384, 384, 1, 3);
        add(p, "branch3x3dbl_3b", 384, 384, 3, 1);
        add(p, "branch_pool", i, 192, 1, 1);
    }
    v
}

/// The tensors of one layer in a state dict: (suffix, shape).
fn layer_tensors(l: &Layer) -> [(String, Vec<usize>); 5] {
    let (n, i, o, kh, kw) = l;
    [
        (format!("{n}.conv.weight"), vec![*o, *i, *kh, *kw]),
        (format!("{n}.bn.weight"), vec![*o]),
        (format!("{n}.bn.bias"), vec![*o]),
        (format!("{n}.bn.running_mean"), vec![*o]),
        (format!("{n}.bn.running_var"), vec![*o]),
    ]
}

/// Deterministic weights for testing against pytorch-fid without the real file: every tensor
/// of [`layers`], in sorted name order k, element j, gets u ∈ [−½, ½) from SplitMix64's output
/// mix of ((k + 1)·2³² + j)·0x9E3779B97F4A7C15 (top 53 bits; integer arithmetic, so numpy
/// computes the same bits), mapped to values that keep the activations of a 40-layer net
/// finite and input-dependent: conv weights u·√(36/fan_in) (variance 3/fan_in, a little above
/// He's 2/fan_in to make up for the batch-norm scales below 1), γ = 1 + 0.4u, β = 0.05u,
/// μ = 0.05u, σ² = 1 + 0.5(u + ½).
/// `tools/inception_reference.py` implements the same rule.
pub fn synthetic_weights() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut all: Vec<(String, Vec<usize>, usize)> = Vec::new();
    for l in layers() {
        let fan_in = l.1 * l.3 * l.4;
        for (k, s) in layer_tensors(&l) {
            all.push((k, s, fan_in));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter()
        .enumerate()
        .map(|(k, (name, shape, fan_in))| {
            let n: usize = shape.iter().product();
            let vals = (0..n as u64)
                .map(|j| {
                    let mut z = (((k as u64 + 1) << 32) + j).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    let u = (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                    let v = if name.ends_with("conv.weight") {
                        u * (36.0 / fan_in as f64).sqrt()
                    } else if name.ends_with("bn.weight") {
                        1.0 + 0.4 * u
                    } else if name.ends_with("bn.bias") {
                        0.05 * u
                    } else if name.ends_with("running_mean") {
                        0.05 * u
                    } else {
                        1.0 + 0.5 * (u + 0.5)
                    };
                    v as f32
                })
                .collect();
            (name, (shape, vals))
        })
        .collect()
}

/// Writes [`synthetic_weights`] as a safetensors file in the layout [`Inception::load`] reads
/// (for tests, and to compare `cm eval --fid-weights` with pytorch-fid by hand; the same file
/// as `tools/inception_reference.py --weights-out`).
pub fn write_synthetic_weights(path: &Path) -> Result<()> {
    let w = synthetic_weights();
    let mut names: Vec<&String> = w.keys().collect();
    names.sort();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = names
        .into_iter()
        .map(|k| {
            let (shape, v) = &w[k];
            (
                k.clone(),
                shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, s, b)| {
            Ok((
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?,
            ))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    crate::io::write_atomic(path, &safetensors::serialize(views, &None)?)
}

/// The FID Inception network with batch norm folded into its convolutions.
pub struct Inception {
    convs: HashMap<String, (Tensor<4>, Tensor<1>)>,
    device: Device,
}

impl Inception {
    /// Loads converted pytorch-fid weights (safetensors; see the module docs).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the FID Inception weights {} ({})",
                path.display(),
                weights_help()
            )
        })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).with_context(|| {
            format!(
                "{} is not a safetensors file (a .pth must be converted first: {})",
                path.display(),
                weights_help()
            )
        })?;
        let mut map = HashMap::new();
        for l in layers() {
            for (key, shape) in layer_tensors(&l) {
                let t = st.tensor(&key).with_context(|| {
                    format!(
                        "{} has no tensor '{key}': not pytorch-fid's FID Inception weights ({})",
                        path.display(),
                        weights_help()
                    )
                })?;
                ensure!(
                    t.shape() == shape.as_slice(),
                    "{}: tensor '{key}' has shape {:?}, the FID Inception network needs {shape:?}",
                    path.display(),
                    t.shape()
                );
                let vals: Vec<f32> = match t.dtype() {
                    safetensors::Dtype::F32 => t
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                    d => bail!("{}: tensor '{key}' is {d:?}, expected F32", path.display()),
                };
                map.insert(key, (shape, vals));
            }
        }
        Self::from_map(&map, device)
    }

    /// Builds the network from a state dict (name → shape, values), folding batch norm.
    pub fn from_map(map: &HashMap<String, (Vec<usize>, Vec<f32>)>, device: &Device) -> Result<Self> {
        let get = |k: &str| -> Result<&Vec<f32>> {
            Ok(&map
                .get(k)
                .with_context(|| format!("FID Inception weights: no tensor '{k}'"))?
                .1)
        };
        let mut convs = HashMap::new();
        for l in layers() {
            let (n, i, o, kh, kw) = &l;
            let w = get(&format!("{n}.conv.weight"))?;
            let (g, b) = (get(&format!("{n}.bn.weight"))?, get(&format!("{n}.bn.bias"))?);
            let (mu, var) = (
                get(&format!("{n}.bn.running_mean"))?,
                get(&format!("{n}.bn.running_var"))?,
            );
            let per = i * kh * kw;
            ensure!(
                w.len() == o * per,
                "FID Inception weights: '{n}.conv.weight' has the wrong size"
            );
            let mut wf = vec![0f32; w.len()];
            let mut bf = vec![0f32; *o];
            for c in 0..*o {
                let s = g[c] as f64 / (var[c] as f64 + BN_EPS).sqrt();
                for j in 0..per {
                    wf[c * per + j] = (w[c * per + j] as f64 * s) as f32;
                }
                bf[c] = (b[c] as f64 - mu[c] as f64 * s) as f32;
            }
            let wt = Tensor::<1>::from_data(TensorData::new(wf, [o * per]), device).reshape([*o, *i, *kh, *kw]);
            let bt = Tensor::<1>::from_data(TensorData::new(bf, [*o]), device);
            convs.insert(n.clone(), (wt, bt));
        }
        Ok(Self {
            convs,
            device: device.clone(),
        })
    }

    /// BasicConv2d: convolution (batch norm folded in) and ReLU.
    fn conv(&self, name: &str, x: Tensor<4>, stride: usize, pad: [usize; 2]) -> Tensor<4> {
        let (w, b) = &self.convs[name];
        conv2d(
            x,
            w.clone(),
            Some(b.clone()),
            ConvOptions::new([stride, stride], pad, [1, 1], 1),
        )
        .clamp_min(0.0)
    }

    /// A stride-1 convolution with "same" padding (every branch convolution but the stem's and
    /// the reduction blocks' strided ones).
    fn same(&self, name: &str, x: Tensor<4>) -> Tensor<4> {
        let (w, _) = &self.convs[name];
        let [_, _, kh, kw] = w.dims();
        self.conv(name, x, 1, [kh / 2, kw / 2])
    }

    /// 3×3 average pool, stride 1, padding 1, the padding left out of the mean (FID patch).
    fn avg3(x: Tensor<4>) -> Tensor<4> {
        avg_pool2d(
            x,
            AvgPoolOptions::new([3, 3])
                .with_stride([1, 1])
                .with_padding([1, 1])
                .with_count_include_pad(false),
        )
    }

    fn max3(x: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
        max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([stride, stride])
                .with_padding([pad, pad]),
        )
    }

    /// `FIDInceptionA`.
    fn block_a(&self, p: &str, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.same(&format!("{p}.branch1x1"), x.clone());
        let b5 = self.same(&format!("{p}.branch5x5_1"), x.clone());
        let b5 = self.same(&format!("{p}.branch5x5_2"), b5);
        let b3 = self.same(&format!("{p}.branch3x3dbl_1"), x.clone());
        let b3 = self.same(&format!("{p}.branch3x3dbl_2"), b3);
        let b3 = self.same(&format!("{p}.branch3x3dbl_3"), b3);
        let bp = self.same(&format!("{p}.branch_pool"), Self::avg3(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }

    /// torchvision's `InceptionB` (`Mixed_6a`, unpatched).
    fn block_b(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.conv("Mixed_6a.branch3x3", x.clone(), 2, [0, 0]);
        let bd = self.same("Mixed_6a.branch3x3dbl_1", x.clone());
        let bd = self.same("Mixed_6a.branch3x3dbl_2", bd);
        let bd = self.conv("Mixed_6a.branch3x3dbl_3", bd, 2, [0, 0]);
        Tensor::cat(vec![b3, bd, Self::max3(x, 2, 0)], 1)
    }

    /// `FIDInceptionC`.
    fn block_c(&self, p: &str, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.same(&format!("{p}.branch1x1"), x.clone());
        let mut b7 = x.clone();
        for s in ["branch7x7_1", "branch7x7_2", "branch7x7_3"] {
            b7 = self.same(&format!("{p}.{s}"), b7);
        }
        let mut bd = x.clone();
        for k in 1..=5 {
            bd = self.same(&format!("{p}.branch7x7dbl_{k}"), bd);
        }
        let bp = self.same(&format!("{p}.branch_pool"), Self::avg3(x));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }

    /// torchvision's `InceptionD` (`Mixed_7a`, unpatched).
    fn block_d(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.same("Mixed_7a.branch3x3_1", x.clone());
        let b3 = self.conv("Mixed_7a.branch3x3_2", b3, 2, [0, 0]);
        let mut b7 = x.clone();
        for k in 1..=3 {
            b7 = self.same(&format!("Mixed_7a.branch7x7x3_{k}"), b7);
        }
        let b7 = self.conv("Mixed_7a.branch7x7x3_4", b7, 2, [0, 0]);
        Tensor::cat(vec![b3, b7, Self::max3(x, 2, 0)], 1)
    }

    /// `FIDInceptionE_1` (`avg_pool = true`) or `FIDInceptionE_2` (max pool).
    fn block_e(&self, p: &str, x: Tensor<4>, avg_pool: bool) -> Tensor<4> {
        let b1 = self.same(&format!("{p}.branch1x1"), x.clone());
        let b3 = self.same(&format!("{p}.branch3x3_1"), x.clone());
        let b3 = Tensor::cat(
            vec![
                self.same(&format!("{p}.branch3x3_2a"), b3.clone()),
                self.same(&format!("{p}.branch3x3_2b"), b3),
            ],
            1,
        );
        let bd = self.same(&format!("{p}.branch3x3dbl_1"), x.clone());
        let bd = self.same(&format!("{p}.branch3x3dbl_2"), bd);
        let bd = Tensor::cat(
            vec![
                self.same(&format!("{p}.branch3x3dbl_3a"), bd.clone()),
                self.same(&format!("{p}.branch3x3dbl_3b"), bd),
            ],
            1,
        );
        let pooled = if avg_pool { Self::avg3(x) } else { Self::max3(x, 1, 1) };
        let bp = self.same(&format!("{p}.branch_pool"), pooled);
        Tensor::cat(vec![b1, b3, bd, bp], 1)
    }

    /// The 2048-d features of a batch `[N, 3, 299, 299]` already in the network's [-1, 1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv("Conv2d_1a_3x3", x, 2, [0, 0]);
        let x = self.conv("Conv2d_2a_3x3", x, 1, [0, 0]);
        let x = self.conv("Conv2d_2b_3x3", x, 1, [1, 1]);
        let x = Self::max3(x, 2, 0);
        let x = self.conv("Conv2d_3b_1x1", x, 1, [0, 0]);
        let x = self.conv("Conv2d_4a_3x3", x, 1, [0, 0]);
        let x = Self::max3(x, 2, 0);
        let x = self.block_a("Mixed_5b", x);
        let x = self.block_a("Mixed_5c", x);
        let x = self.block_a("Mixed_5d", x);
        let x = self.block_b(x);
        let x = self.block_c("Mixed_6b", x);
        let x = self.block_c("Mixed_6c", x);
        let x = self.block_c("Mixed_6d", x);
        let x = self.block_c("Mixed_6e", x);
        let x = self.block_d(x);
        let x = self.block_e("Mixed_7b", x, true);
        let x = self.block_e("Mixed_7c", x, false);
        let [n, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [1, 1]).reshape([n, c])
    }

    /// Features of flat `[N, C·H·W]` images in [-1, 1] (C = 1 or 3), pytorch-fid's input
    /// handling (module docs), in batches of `batch`; `progress(done, total)` after each.
    pub fn features(
        &self,
        xs: &[f64],
        shape: (usize, usize, usize),
        batch: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<f64>> {
        let (c, h, w) = shape;
        ensure!(c == 1 || c == 3, "FID needs grey or RGB images, got {c} channels");
        let d = c * h * w;
        ensure!(
            d > 0 && xs.len().is_multiple_of(d),
            "image data of {} values is not a whole number of {c}×{h}×{w} images",
            xs.len()
        );
        let n = xs.len() / d;
        let mut out = Vec::with_capacity(n * DIM);
        for i0 in (0..n).step_by(batch.max(1)) {
            let i1 = (i0 + batch.max(1)).min(n);
            let vals: Vec<f32> = xs[i0 * d..i1 * d].iter().map(|&v| ((v + 1.0) * 0.5) as f32).collect();
            let x = Tensor::<1>::from_data(TensorData::new(vals, [(i1 - i0) * d]), &self.device).reshape([
                i1 - i0,
                c,
                h,
                w,
            ]);
            let x = if c == 1 { x.repeat_dim(1, 3) } else { x };
            let x = if (h, w) == (SIDE, SIDE) {
                x
            } else {
                interpolate(
                    x,
                    InterpolateOptions::new(InterpolateMode::Bilinear)
                        .with_output_size([SIDE, SIDE])
                        .with_align_corners(false),
                )
            };
            let f = self.forward(x * 2.0 - 1.0);
            out.extend(crate::tensor::to_vec64(f));
            progress(i1, n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer table has torchvision's shapes: the concatenations add up to the next block's
    /// input channels (256, 288, 768, 1280, 2048).
    #[test]
    fn layer_table_channels_chain() {
        let l = layers();
        let out = |n: &str| l.iter().find(|x| x.0 == n).unwrap().2;
        let a = |p: &str| {
            out(&format!("{p}.branch1x1"))
                + out(&format!("{p}.branch5x5_2"))
                + out(&format!("{p}.branch3x3dbl_3"))
                + out(&format!("{p}.branch_pool"))
        };
        assert_eq!(a("Mixed_5b"), 256);
        assert_eq!(a("Mixed_5c"), 288);
        assert_eq!(a("Mixed_5d"), 288);
        assert_eq!(out("Mixed_6a.branch3x3") + out("Mixed_6a.branch3x3dbl_3") + 288, 768);
        assert_eq!(out("Mixed_7a.branch3x3_2") + out("Mixed_7a.branch7x7x3_4") + 768, 1280);
        let e = |p: &str| {
            out(&format!("{p}.branch1x1"))
                + 2 * out(&format!("{p}.branch3x3_2a"))
                + 2 * out(&format!("{p}.branch3x3dbl_3a"))
                + out(&format!("{p}.branch_pool"))
        };
        assert_eq!(e("Mixed_7b"), 2048);
        assert_eq!(e("Mixed_7c"), DIM);
        // 94 convolutions, as torchvision's Inception3 without the aux head.
        assert_eq!(l.len(), 94);
    }

    /// The port against pytorch-fid's own network (torch 2.15, torchvision 0.29, pytorch-fid
    /// 0.3.0; `tools/inception_reference.py`) with the same synthetic weights, on a grey
    /// 28×28 image (channel repeat and upsampling) and an RGB 20×33 one (non-square): every
    /// feature within 1e-3 of the largest, and the difference between the two images' features
    /// (what FID sees; the shared part is mostly biases) within 1 % of its own size.
    #[test]
    fn inception_matches_pytorch_fid() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/inception_reference.json")).unwrap();
        let dev = Device::default();
        let net = Inception::from_map(&synthetic_weights(), &dev).unwrap();
        let mut got = Vec::new();
        let mut want = Vec::new();
        for case in doc["cases"].as_array().unwrap() {
            let shape: Vec<usize> = case["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let xs: Vec<f64> = case["u8"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() / 127.5 - 1.0)
                .collect();
            let f = net.features(&xs, (shape[0], shape[1], shape[2]), 4, |_, _| {}).unwrap();
            let w: Vec<f64> = case["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(f.len(), DIM);
            assert_eq!(w.len(), DIM);
            let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = f.iter().zip(&w).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err < 1e-3 * scale,
                "{}: max error {err} against max |feature| {scale}",
                case["name"]
            );
            got.push(f);
            want.push(w);
        }
        let dg: Vec<f64> = got[0].iter().zip(&got[1]).map(|(a, b)| a - b).collect();
        let dw: Vec<f64> = want[0].iter().zip(&want[1]).map(|(a, b)| a - b).collect();
        let norm = dw.iter().map(|v| v * v).sum::<f64>().sqrt();
        let err = dg.iter().zip(&dw).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        assert!(norm > 1.0, "the reference images must differ in feature space ({norm})");
        assert!(err < 0.01 * norm, "feature differences off by {err} (norm {norm})");
    }

    /// A file that is not the weights gets an error that says where to get them; a missing
    /// tensor is named.
    #[test]
    fn bad_weight_files_say_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("cm-inception-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dev = Device::default();
        let p = dir.join("w.pth");
        std::fs::write(&p, b"PK\x03\x04 not safetensors").unwrap();
        let e = format!("{:#}", Inception::load(&p, &dev).err().unwrap());
        assert!(e.contains("not a safetensors file") && e.contains(WEIGHTS_URL), "{e}");
        let q = dir.join("w.safetensors");
        let data = vec![0u8; 4 * 32];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![32], &data).unwrap();
        std::fs::write(
            &q,
            safetensors::serialize([("Conv2d_1a_3x3.bn.bias", view)], &None).unwrap(),
        )
        .unwrap();
        let e = format!("{:#}", Inception::load(&q, &dev).err().unwrap());
        assert!(
            e.contains("Conv2d_1a_3x3.conv.weight") && e.contains("tools/fid_weights.py"),
            "{e}"
        );
        let e = format!("{:#}", Inception::load(&dir.join("missing"), &dev).err().unwrap());
        assert!(e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
