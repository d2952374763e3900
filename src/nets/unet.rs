//! A DDPM++-style U-Net for small images (28 px MNIST on a CPU), with an exact tangent pass.
//!
//! Samples arrive flat `[B, C·H·W]` (channel-first) and are reshaped to `[B, C, H, W]`; the
//! image shape is inferred from D (C ∈ {1, 3}, square images; the factorisation is unique).
//!
//! Layout (Song et al. 2021's DDPM++, shrunk): 3×3 input conv → per resolution level
//! `res_blocks` residual blocks (GroupNorm → SiLU → conv → GroupNorm → scale-shift by the
//! time embedding → SiLU → dropout → conv, 1×1 skip conv when widths differ, sum scaled by
//! 1/√2), 2×2 average-pool down-sampling between levels; middle: block, self-attention (optional),
//! block; decoder: `res_blocks + 1` blocks per level on the concatenated skips, nearest ×2
//! up-sampling; GroupNorm → SiLU → 3×3 output conv (zero-initialised by default). With
//! `attn_resolutions`, every encoder and decoder block whose spatial side is listed is followed
//! by a self-attention block (in the encoder before its output is kept as a skip).
//!
//! Time embedding: each conditioning scalar c becomes [sin(ω c), cos(ω c)] (positional, ω
//! geometric from 1 to `max_freq`, or Fourier with random ω of std `max_freq`), the time
//! inputs are concatenated and pass through Linear → SiLU → Linear → SiLU. With
//! `double_norm` the per-block scale and shift are pixel-normalised (sCM's adaptive double
//! normalisation).
//!
//! Class conditioning (`classes` K > 0, DDPM++/EDM-style): the one-hot `[B, K]` labels that
//! follow the time inputs in `cond`, scaled by √K, pass through a Linear(K → 4·base)
//! (`time_embed.label`, Xavier-initialised weights and zero bias, as EDM's `map_label`) whose
//! output is added to the first time-embedding layer's output before its SiLU. An all-zero label row means "no class"; `class_dropout` of the training labels are
//! replaced by it, so one network samples both class-conditionally and unconditionally.
//!
//! Forward and tangent passes share one code path: every activation is a [`Dual`] carrying an
//! optional tangent, so [`Backbone::forward`] is the tangent pass with no tangent.

use super::dual::{cat, linear, pixel_norm_dual, Dual};
use super::embed::Embedding;
use super::kernels::conv::conv2d_same;
use super::*;
use serde::{Deserialize, Serialize};

/// U-Net hyper-parameters (the `[model]` table when `kind = "unet"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UnetConfig {
    /// Channels at the first resolution (level l has `base·mults[l]`; the time embedding has
    /// 4·base); at least 4; default 32.
    pub base: usize,
    /// Channel multiplier per resolution level; each level after the first halves H and W;
    /// default `[1, 2]`.
    pub mults: Vec<usize>,
    /// Residual blocks per level in the encoder (the decoder has one more); default 1.
    pub res_blocks: usize,
    /// Self-attention in the middle (lowest resolution); default true.
    pub attention: bool,
    /// Spatial side lengths (pixels) at which every encoder and decoder residual block is
    /// followed by a self-attention block, as in DDPM++'s `attn_resolutions`: e.g. `[14]` on
    /// 28-px images with two levels. Each value must be a side the network visits (image side /
    /// 2^level, checked when the network is built). Independent of `attention` (middle).
    /// Default empty.
    pub attn_resolutions: Vec<usize>,
    /// Dropout probability inside residual blocks, in [0, 1); default 0.
    pub dropout: f64,
    /// Frequencies of the time embedding: positional (default) or random Fourier.
    pub embedding: Embedding,
    /// Sinusoidal features per time input (even: sin and cos halves); default 32.
    pub emb_dim: usize,
    /// Highest embedding frequency ω (positional) or frequency std (Fourier), in radians per
    /// unit of the conditioning scalar c; default 16.
    pub max_freq: f64,
    /// Lowest positional frequency (default 1; ADM: 10000^{−(half−1)/half}, AUDIT M5).
    #[serde(default = "super::embed::one", skip_serializing_if = "super::embed::is_one")]
    pub min_freq: f64,
    /// Multiplier of the conditioning scalar c before the embedding (default 1; the PyTorch
    /// CM/CTM codes embed 1000·c, the JAX CM code ln σ = 4·c: AUDIT M5).
    #[serde(default = "super::embed::one", skip_serializing_if = "super::embed::is_one")]
    pub time_scale: f64,
    /// Pixel-normalise the scale and shift of every block (sCM's adaptive double
    /// normalisation, Lu & Song 2024); default false.
    pub double_norm: bool,
    /// Zero-initialise the output conv, so F_θ = 0 at the start; default true.
    pub zero_out: bool,
    /// Number of classes K for class conditioning (0 = unconditional). The data set must have
    /// labels below K (`mnist:` / `fashion-mnist:` folders and `idx:` files with a matching
    /// `labels-idx1` file); a label embedding `time_embed.label` (K → 4·base, EDM's `map_label`)
    /// is added to the time embedding. Samples get balanced classes (sample i: class i mod K)
    /// unless `cm sample --class` says otherwise. (Not written to stored configs when 0, so
    /// unconditional runs store the same config as before the field existed.) Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub classes: usize,
    /// With `classes` > 0: probability that a training label is replaced by the all-zero
    /// "no class" row, so the network also learns to sample unconditionally. In [0, 1).
    /// Default [`DEFAULT_CLASS_DROPOUT`] (0.1); not written to stored configs when it is the
    /// default.
    #[serde(skip_serializing_if = "is_default_class_dropout")]
    pub class_dropout: f64,
}

/// The default of [`UnetConfig::class_dropout`].
pub const DEFAULT_CLASS_DROPOUT: f64 = 0.1;

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_default_class_dropout(v: &f64) -> bool {
    *v == DEFAULT_CLASS_DROPOUT
}

impl Default for UnetConfig {
    fn default() -> Self {
        Self {
            base: 32,
            mults: vec![1, 2],
            res_blocks: 1,
            attention: true,
            attn_resolutions: Vec::new(),
            dropout: 0.0,
            embedding: Embedding::Positional,
            emb_dim: 32,
            max_freq: 16.0,
            min_freq: 1.0,
            time_scale: 1.0,
            double_norm: false,
            zero_out: true,
            classes: 0,
            class_dropout: DEFAULT_CLASS_DROPOUT,
        }
    }
}

impl UnetConfig {
    /// Checks the ranges (`base` ≥ 4, positive `mults`, `res_blocks` ≥ 1, `emb_dim` even and
    /// ≥ 2, `max_freq` > 0, both dropouts in [0, 1), every level's width divisible into
    /// GroupNorm groups), naming the field; the image-dependent checks happen in
    /// [`Unet::new`].
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.base >= 4, "model.base must be at least 4, got {}", self.base);
        anyhow::ensure!(
            !self.mults.is_empty() && self.mults.iter().all(|&m| m >= 1),
            "model.mults must be a non-empty list of positive integers, got {:?}",
            self.mults
        );
        anyhow::ensure!(
            self.res_blocks >= 1,
            "model.res_blocks must be at least 1, got {}",
            self.res_blocks
        );
        anyhow::ensure!(
            self.emb_dim >= 2 && self.emb_dim % 2 == 0,
            "model.emb_dim must be even and at least 2, got {}",
            self.emb_dim
        );
        anyhow::ensure!(
            self.max_freq.is_finite() && self.max_freq > 0.0,
            "model.max_freq must be positive, got {}",
            self.max_freq
        );
        anyhow::ensure!(
            self.min_freq.is_finite() && self.min_freq > 0.0 && self.time_scale.is_finite() && self.time_scale > 0.0,
            "model.min_freq and model.time_scale must be positive, got {} and {}",
            self.min_freq,
            self.time_scale
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "model.dropout must be in [0, 1), got {}",
            self.dropout
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.class_dropout),
            "model.class_dropout must be in [0, 1), got {}",
            self.class_dropout
        );
        for m in &self.mults {
            let c = self.base * m;
            anyhow::ensure!(
                c % groups(c) == 0,
                "model.base × mult = {c} channels cannot be split into GroupNorm groups"
            );
        }
        Ok(())
    }
}

/// GroupNorm group count for C channels: C/4 capped at 32 (so 16 → 4, 32 → 8, 64 → 16).
pub fn groups(c: usize) -> usize {
    (c / 4).clamp(1, 32)
}

/// GroupNorm's ε, added to the per-group variance (PyTorch's default).
pub const GN_EPS: f64 = 1e-5;

/// The image shape (C, H, W) of flat dimension D: square, C ∈ {1, 3}.
pub fn image_shape(dim: usize) -> anyhow::Result<(usize, usize, usize)> {
    for c in [1, 3] {
        if dim % c == 0 {
            let s = ((dim / c) as f64).sqrt().round() as usize;
            if s * s * c == dim {
                return Ok((c, s, s));
            }
        }
    }
    anyhow::bail!("the U-Net needs square grey or RGB images, but D = {dim} is neither C·S·S with C = 1 nor 3")
}

/// A 2-D convolution (k×k, stride 1, same padding), parameters by index.
#[derive(Clone, Debug)]
pub struct Conv {
    /// Index of the kernel W, `[o, i, k, k]`.
    pub w: usize,
    /// Index of the bias, `[o]`.
    pub b: usize,
    /// Input channels.
    pub i: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel side (1 or 3 here).
    pub k: usize,
}

impl Conv {
    fn add(b: &mut SpecBuilder, name: &str, i: usize, o: usize, k: usize, zero: bool) -> Self {
        let init = if zero {
            Init::Zeros
        } else {
            Init::Uniform(1.0 / ((i * k * k) as f64).sqrt())
        };
        let w = b.add(format!("{name}.weight"), vec![o, i, k, k], init, true);
        let bi = b.add(format!("{name}.bias"), vec![o], Init::Zeros, true);
        Self { w, b: bi, i, o, k }
    }
    /// y = conv(x, W) + b; tangent dy = conv(dx, W) (the bias is constant). Both go through
    /// [`super::kernels::conv::conv2d_same`] (a faster flex kernel for f32, burn's conv2d otherwise).
    pub fn apply(&self, p: &[Tensor<1>], x: Dual<4>) -> Dual<4> {
        let w = p[self.w].clone().reshape([self.o, self.i, self.k, self.k]);
        let b = p[self.b].clone();
        Dual {
            d: x.d.map(|d| conv2d_same(d, w.clone(), b.zeros_like().detach())),
            v: conv2d_same(x.v, w, b),
        }
    }
}

/// GroupNorm with affine γ, β over C channels.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    /// Index of the per-channel gain γ, `[c]`, initialised to ones.
    pub gamma: usize,
    /// Index of the per-channel shift β, `[c]`, initialised to zeros.
    pub beta: usize,
    /// Channels C.
    pub c: usize,
    /// Groups, [`groups`]`(c)`.
    pub g: usize,
}

impl GroupNorm {
    fn add(b: &mut SpecBuilder, name: &str, c: usize) -> Self {
        let gamma = b.add(format!("{name}.weight"), vec![c], Init::Ones, true);
        let beta = b.add(format!("{name}.bias"), vec![c], Init::Zeros, true);
        Self {
            gamma,
            beta,
            c,
            g: groups(c),
        }
    }
    /// y = γ·(x − μ)/s + β with s = sqrt(var + ε) per (sample, group); tangent
    /// dy = γ·(dxc − x̂·mean(x̂·dxc))/s with dxc = dx − mean(dx).
    pub fn apply(&self, p: &[Tensor<1>], x: Dual<4>) -> Dual<4> {
        if x.d.is_none() {
            // No tangent: one fused pass forward and backward (super::fused).
            let (gamma, beta) = (p[self.gamma].clone(), p[self.beta].clone());
            return Dual::new(
                super::kernels::fused::group_norm(x.v, gamma, beta, None, self.g, GN_EPS, false),
                None,
            );
        }
        if let Some((v, d)) = super::kernels::fused::group_norm_jvp(
            &x.v,
            x.d.as_ref(),
            &p[self.gamma],
            &p[self.beta],
            None,
            self.g,
            GN_EPS,
            false,
        ) {
            return Dual::new(v, Some(d));
        }
        let [b, c, h, w] = x.v.dims();
        let n = c / self.g * h * w;
        let xr = x.v.reshape([b, self.g, n]);
        let mu = xr.clone().mean_dim(2);
        let xc = xr - mu;
        let s = xc.clone().square().mean_dim(2).add_scalar(GN_EPS).sqrt();
        let xh = xc / s.clone();
        let dh = x.d.map(|d| {
            let dr = d.reshape([b, self.g, n]);
            let dc = dr.clone() - dr.mean_dim(2);
            let m = (xh.clone() * dc.clone()).mean_dim(2);
            ((dc - xh.clone() * m) / s).reshape([b, c, h, w])
        });
        let gamma = p[self.gamma].clone().reshape([1, c, 1, 1]);
        let beta = p[self.beta].clone().reshape([1, c, 1, 1]);
        Dual {
            v: xh.reshape([b, c, h, w]) * gamma.clone() + beta,
            d: dh.map(|d| d * gamma),
        }
    }
}

impl GroupNorm {
    /// SiLU(modulate(GroupNorm(x), m)) (no modulation when `m` is None): one fused kernel
    /// when nothing carries a tangent, the composed ops (with their tangents) otherwise.
    pub fn apply_act(&self, p: &[Tensor<1>], x: Dual<4>, m: Option<Dual<2>>, double_norm: bool) -> Dual<4> {
        let c = self.c;
        if x.d.is_none() && m.as_ref().is_none_or(|m| m.d.is_none()) {
            let m = m.map(|m| {
                if double_norm {
                    let sc = pixel_norm(m.v.clone().narrow(1, 0, c));
                    let sh = pixel_norm(m.v.narrow(1, c, c));
                    Tensor::cat(vec![sc, sh], 1)
                } else {
                    m.v
                }
            });
            let (gamma, beta) = (p[self.gamma].clone(), p[self.beta].clone());
            return Dual::new(
                super::kernels::fused::group_norm(x.v, gamma, beta, m, self.g, GN_EPS, true),
                None,
            );
        }
        // With a tangent: the modulation's pixel norms (small, [B, 2C]) composed first, then
        // the fused tangent kernel where it applies (plain f32 flex tensors), else burn's ops.
        let mn = m.map(|m| {
            if double_norm {
                let sc = Dual::new(m.v.clone().narrow(1, 0, c), m.d.clone().map(|d| d.narrow(1, 0, c)));
                let sh = Dual::new(m.v.narrow(1, c, c), m.d.map(|d| d.narrow(1, c, c)));
                cat(pixel_norm_dual(sc), pixel_norm_dual(sh), 1)
            } else {
                m
            }
        });
        if let Some((v, d)) = super::kernels::fused::group_norm_jvp(
            &x.v,
            x.d.as_ref(),
            &p[self.gamma],
            &p[self.beta],
            mn.as_ref().map(|m| (&m.v, m.d.as_ref())),
            self.g,
            GN_EPS,
            true,
        ) {
            return Dual::new(v, Some(d));
        }
        let h = self.apply(p, x);
        match mn {
            // Already normalised above.
            Some(m) => modulate(h, m, c, false).silu(),
            None => h.silu(),
        }
    }
}

/// h·(1 + scale) + shift with per-(sample, channel) scale and shift `m = [scale | shift]`.
pub fn modulate(h: Dual<4>, m: Dual<2>, c: usize, double_norm: bool) -> Dual<4> {
    let [b, _, _, _] = h.v.dims();
    let sc = Dual::new(m.v.clone().narrow(1, 0, c), m.d.clone().map(|d| d.narrow(1, 0, c)));
    let sh = Dual::new(m.v.narrow(1, c, c), m.d.map(|d| d.narrow(1, c, c)));
    let (sc, sh) = if double_norm {
        (pixel_norm_dual(sc), pixel_norm_dual(sh))
    } else {
        (sc, sh)
    };
    let sc: Dual<4> = sc.reshape([b, c, 1, 1]);
    let sh: Dual<4> = sh.reshape([b, c, 1, 1]);
    let one_sc = sc.v.clone().add_scalar(1.0);
    let d = match (h.d, sc.d) {
        (None, None) => None,
        (dh, dsc) => {
            let mut t = dh.map(|d| d * one_sc.clone());
            if let Some(ds) = dsc {
                let term = h.v.clone() * ds;
                t = Some(match t {
                    Some(x) => x + term,
                    None => term,
                });
            }
            t
        }
    };
    Dual::new(h.v * one_sc, d).add(sh)
}

/// 2×2 average pooling (linear; [`super::kernels::fused::down2`]).
fn down(x: Dual<4>) -> Dual<4> {
    x.map_lin(super::kernels::fused::down2)
}

/// Nearest-neighbour ×2 up-sampling (linear; [`super::kernels::fused::up2`]).
fn up(x: Dual<4>) -> Dual<4> {
    x.map_lin(super::kernels::fused::up2)
}

#[derive(Clone, Debug)]
struct ResBlock {
    gn1: GroupNorm,
    conv1: Conv,
    modul: Linear,
    gn2: GroupNorm,
    conv2: Conv,
    skip: Option<Conv>,
    out: usize,
    /// Spatial side at this block (for dropout masks).
    side: usize,
}

#[derive(Clone, Debug)]
struct Attn {
    gn: GroupNorm,
    qkv: Conv,
    proj: Conv,
    c: usize,
}

impl Attn {
    /// `{name}.norm`, `{name}.qkv` and a zero-initialised `{name}.proj` over `c` channels.
    fn add(b: &mut SpecBuilder, name: &str, c: usize) -> Self {
        Self {
            gn: GroupNorm::add(b, &format!("{name}.norm"), c),
            qkv: Conv::add(b, &format!("{name}.qkv"), c, 3 * c, 1, false),
            proj: Conv::add(b, &format!("{name}.proj"), c, c, 1, true),
            c,
        }
    }
}

/// The U-Net backbone built from a [`UnetConfig`] for one image shape (see the module
/// documentation for its layout).
#[derive(Clone, Debug)]
pub struct Unet {
    cfg: UnetConfig,
    dim: usize,
    shape: (usize, usize, usize),
    n_times: usize,
    specs: Vec<ParamSpec>,
    freqs: usize,
    temb1: Linear,
    temb2: Linear,
    /// Class-label embedding (K → 4·base), added to `temb1`'s output; None when unconditional.
    label_embed: Option<Linear>,
    conv_in: Conv,
    enc: Vec<ResBlock>,
    /// Self-attention after each encoder block (at the sides in `attn_resolutions`).
    enc_attn: Vec<Option<Attn>>,
    /// After which encoder blocks (by index) a down-sample follows.
    enc_down: Vec<bool>,
    mid1: ResBlock,
    attn: Option<Attn>,
    mid2: ResBlock,
    dec: Vec<ResBlock>,
    /// Self-attention after each decoder block (at the sides in `attn_resolutions`).
    dec_attn: Vec<Option<Attn>>,
    dec_up: Vec<bool>,
    gn_out: GroupNorm,
    conv_out: Conv,
}

impl Conv {
    /// Multiply-add FLOPs per sample at a `side`×`side` resolution: 2·i·o·k²·side².
    fn flops(&self, side: usize) -> f64 {
        2.0 * (self.i * self.o * self.k * self.k * side * side) as f64
    }
}

impl ResBlock {
    fn flops(&self) -> f64 {
        self.conv1.flops(self.side)
            + self.modul.flops()
            + self.conv2.flops(self.side)
            + self.skip.as_ref().map_or(0.0, |s| s.flops(self.side))
    }
}

impl Attn {
    /// The 1×1 qkv and output convolutions plus QKᵀ and AV over n = side² positions.
    fn flops(&self, side: usize) -> f64 {
        let n = (side * side) as f64;
        self.qkv.flops(side) + self.proj.flops(side) + 2.0 * 2.0 * n * n * self.c as f64
    }
}

impl Unet {
    /// Forward FLOPs per sample ([`Backbone::forward_flops`]): every convolution at its block's
    /// side, the time and label embeddings, and the attention products.
    pub fn flops(&self) -> f64 {
        let side = self.shape.1;
        let attn = |a: &Option<Attn>, s: usize| a.as_ref().map_or(0.0, |a| a.flops(s));
        let mut f = self.temb1.flops() + self.temb2.flops() + self.label_embed.as_ref().map_or(0.0, Linear::flops);
        f += self.conv_in.flops(side) + self.conv_out.flops(side);
        for (rb, a) in self
            .enc
            .iter()
            .zip(&self.enc_attn)
            .chain(self.dec.iter().zip(&self.dec_attn))
        {
            f += rb.flops() + attn(a, rb.side);
        }
        f += self.mid1.flops() + self.mid2.flops() + attn(&self.attn, self.mid1.side);
        f
    }

    /// A U-Net on flat images of dimension `dim` (C·S·S) with `n_times` time inputs.
    pub fn new(cfg: &UnetConfig, dim: usize, n_times: usize, seed: u64) -> anyhow::Result<Self> {
        cfg.validate()?;
        let (c_img, h, _) = image_shape(dim)?;
        let levels = cfg.mults.len();
        anyhow::ensure!(
            h % (1 << (levels - 1)) == 0,
            "the U-Net halves the {h}-px images {} time(s) (model.mults has {levels} levels): {h} must be divisible by {}",
            levels - 1,
            1 << (levels - 1)
        );
        let sides: Vec<usize> = (0..levels).map(|l| h >> l).collect();
        for r in &cfg.attn_resolutions {
            anyhow::ensure!(
                sides.contains(r),
                "model.attn_resolutions lists {r}, but the U-Net on {h}-px images (model.mults has {levels} levels) only visits side lengths {sides:?}"
            );
        }
        let attn_at = |side: usize| cfg.attn_resolutions.contains(&side);
        let mut b = SpecBuilder::default();
        let half = cfg.emb_dim / 2;
        let freq_vals =
            super::embed::frequencies(cfg.embedding, half, cfg.min_freq, cfg.max_freq, cfg.time_scale, seed);
        let freqs = b.add("time_embed.freqs", vec![1, half], Init::Values(freq_vals), false);
        let e = 4 * cfg.base;
        let temb1 = b.linear("time_embed.0", cfg.emb_dim * n_times, e, false);
        let temb2 = b.linear("time_embed.1", e, e, false);
        // EDM's `map_label` (Karras et al. 2022, networks.py SongUNet): Xavier-initialised
        // weights, zero bias, and one-hot inputs scaled by √K in the forward pass, so the
        // labels move the embedding from the first step. (A zero-initialised embedding, which
        // this network had first, learnt the labels too slowly: a class-conditional MNIST EDM
        // teacher matched its labels on 14 % of samples after 2000 steps, README "Evaluation
        // protocol".) The weights come from their own stream (the run seed mixed with a
        // constant), so every other parameter, drawn in spec order, equals the unconditional
        // net's. Right after the time embedding, not last, so the last weight matrix stays a
        // decoder layer; without classes the names and order are exactly the unconditional ones.
        let label_embed = (cfg.classes > 0).then(|| {
            let lin = b.linear("time_embed.label", cfg.classes, e, true);
            let std = (2.0 / (cfg.classes + e) as f64).sqrt();
            let mut rng = crate::rng::Rng::new(seed ^ 0x1ABE_1ABE);
            b.set_init(
                lin.w,
                Init::Values(rng.normal_vec(cfg.classes * e).iter().map(|v| v * std as f32).collect()),
            );
            lin
        });
        let res = |b: &mut SpecBuilder, name: &str, i: usize, o: usize, side: usize| ResBlock {
            gn1: GroupNorm::add(b, &format!("{name}.norm1"), i),
            conv1: Conv::add(b, &format!("{name}.conv1"), i, o, 3, false),
            modul: b.linear(&format!("{name}.emb"), e, 2 * o, false),
            gn2: GroupNorm::add(b, &format!("{name}.norm2"), o),
            conv2: Conv::add(b, &format!("{name}.conv2"), o, o, 3, false),
            skip: (i != o).then(|| Conv::add(b, &format!("{name}.skip"), i, o, 1, false)),
            out: o,
            side,
        };
        let c0 = cfg.base * cfg.mults[0];
        let conv_in = Conv::add(&mut b, "conv_in", c_img, c0, 3, false);
        let mut enc = Vec::new();
        let mut enc_attn = Vec::new();
        let mut enc_down = Vec::new();
        let mut skips = vec![c0];
        let mut ch = c0;
        let mut side = h;
        for (l, m) in cfg.mults.iter().enumerate() {
            let o = cfg.base * m;
            for r in 0..cfg.res_blocks {
                enc.push(res(&mut b, &format!("enc.{l}.{r}"), ch, o, side));
                enc_attn.push(attn_at(side).then(|| Attn::add(&mut b, &format!("enc.{l}.{r}.attn"), o)));
                ch = o;
                let last = r + 1 == cfg.res_blocks && l + 1 < levels;
                enc_down.push(last);
                skips.push(ch);
                if last {
                    side /= 2;
                    skips.push(ch);
                }
            }
        }
        let mid1 = res(&mut b, "mid.0", ch, ch, side);
        let attn = cfg.attention.then(|| Attn::add(&mut b, "mid.attn", ch));
        let mid2 = res(&mut b, "mid.1", ch, ch, side);
        let mut dec = Vec::new();
        let mut dec_attn = Vec::new();
        let mut dec_up = Vec::new();
        for (l, m) in cfg.mults.iter().enumerate().rev() {
            let o = cfg.base * m;
            for r in 0..=cfg.res_blocks {
                let s = skips.pop().expect("skip count");
                dec.push(res(&mut b, &format!("dec.{l}.{r}"), ch + s, o, side));
                dec_attn.push(attn_at(side).then(|| Attn::add(&mut b, &format!("dec.{l}.{r}.attn"), o)));
                ch = o;
                let last = r == cfg.res_blocks && l > 0;
                dec_up.push(last);
                if last {
                    side *= 2;
                }
            }
        }
        debug_assert!(skips.is_empty());
        let gn_out = GroupNorm::add(&mut b, "norm_out", ch);
        let conv_out = Conv::add(&mut b, "conv_out", ch, c_img, 3, cfg.zero_out);
        Ok(Self {
            cfg: cfg.clone(),
            dim,
            shape: image_shape(dim)?,
            n_times,
            specs: b.specs,
            freqs,
            temb1,
            temb2,
            label_embed,
            conv_in,
            enc,
            enc_attn,
            enc_down,
            mid1,
            attn,
            mid2,
            dec,
            dec_attn,
            dec_up,
            gn_out,
            conv_out,
        })
    }

    /// The time embedding of the time inputs `cond` (tangents `dcond`), with the class-label
    /// embedding of `labels` added before the first SiLU (labels are constant: no tangent).
    fn embed(
        &self,
        p: &[Tensor<1>],
        cond: &[Tensor<2>],
        labels: Option<&Tensor<2>>,
        dcond: Option<&[Tensor<2>]>,
    ) -> Dual<2> {
        let half = self.cfg.emb_dim / 2;
        let e = super::embed::sinusoidal(p[self.freqs].clone().reshape([1, half]), cond, dcond);
        let mut a = linear(&self.temb1, p, e);
        if let (Some(le), Some(l)) = (&self.label_embed, labels) {
            let scale = (self.cfg.classes as f64).sqrt();
            a = a.add(Dual::new(le.forward(p, l.clone().mul_scalar(scale)), None));
        }
        linear(&self.temb2, p, a.silu()).silu()
    }

    fn block(&self, rb: &ResBlock, p: &[Tensor<1>], x: Dual<4>, emb: &Dual<2>, mask: Option<Tensor<2>>) -> Dual<4> {
        let h = rb.conv1.apply(p, rb.gn1.apply_act(p, x.clone(), None, false));
        let m = linear(&rb.modul, p, emb.clone());
        let h = rb.gn2.apply_act(p, h, Some(m), self.cfg.double_norm);
        let [b, c, hh, ww] = h.v.dims();
        let h = match mask {
            Some(mk) => h.mask(mk.reshape([b, c, hh, ww])),
            None => h,
        };
        let h = rb.conv2.apply(p, h);
        let s = match &rb.skip {
            Some(sc) => sc.apply(p, x),
            None => x,
        };
        h.add(s).scale(std::f64::consts::FRAC_1_SQRT_2)
    }

    /// Single-head self-attention over the H·W positions, with its exact tangent:
    /// S = QKᵀ/√C, A = softmax(S), O = AV; dS = (dQ Kᵀ + Q dKᵀ)/√C,
    /// dA = A ⊙ (dS − Σ_j A dS), dO = dA V + A dV.
    fn attention(&self, at: &Attn, p: &[Tensor<1>], x: Dual<4>) -> Dual<4> {
        let [b, c, h, w] = x.v.dims();
        let n = h * w;
        let qkv = at.qkv.apply(p, at.gn.apply(p, x.clone()));
        let split = |t: Tensor<4>, k: usize| -> Tensor<3> { t.narrow(1, k * c, c).reshape([b, c, n]).swap_dims(1, 2) };
        let (q, k, v) = (split(qkv.v.clone(), 0), split(qkv.v.clone(), 1), split(qkv.v, 2));
        let scale = 1.0 / (at.c as f64).sqrt();
        let s = q.clone().matmul(k.clone().swap_dims(1, 2)).mul_scalar(scale);
        let a = activation::softmax(s, 2);
        let o = a.clone().matmul(v.clone());
        let d = qkv.d.map(|dqkv| {
            let (dq, dk, dv) = (split(dqkv.clone(), 0), split(dqkv.clone(), 1), split(dqkv, 2));
            let ds = (dq.matmul(k.swap_dims(1, 2)) + q.matmul(dk.swap_dims(1, 2))).mul_scalar(scale);
            let inner = (a.clone() * ds.clone()).sum_dim(2);
            let da = a.clone() * (ds - inner);
            da.matmul(v) + a.matmul(dv)
        });
        let to4 = |t: Tensor<3>| t.swap_dims(1, 2).reshape([b, c, h, w]);
        let o = Dual::new(to4(o), d.map(to4));
        let o = at.proj.apply(p, o);
        x.add(o).scale(std::f64::consts::FRAC_1_SQRT_2)
    }

    /// The shared pass: output and (when `dx`/`dcond` are given) its tangent. `cond` holds the
    /// time inputs, then (when `classes` > 0) the `[B, K]` labels; `dcond` has one tangent per
    /// time input (a further tangent for the labels is ignored: they are constant).
    pub fn run(
        &self,
        p: &[Tensor<1>],
        x: Tensor<2>,
        dx: Option<Tensor<2>>,
        cond: &[Tensor<2>],
        dcond: Option<&[Tensor<2>]>,
        masks: Option<&Masks>,
    ) -> Dual<2> {
        let k = self.cfg.classes;
        if k == 0 {
            assert_eq!(
                cond.len(),
                self.n_times,
                "U-Net expects {} time inputs, got {}",
                self.n_times,
                cond.len()
            );
        } else {
            assert_eq!(
                cond.len(),
                self.n_times + 1,
                "class-conditional U-Net ({k} classes) expects {} time inputs and the labels, got {} conditioning inputs",
                self.n_times,
                cond.len()
            );
        }
        if let Some(d) = dcond {
            assert!(
                d.len() == self.n_times || (k > 0 && d.len() == self.n_times + 1),
                "U-Net expects {} time tangents, got {}",
                self.n_times,
                d.len()
            );
        }
        let (cond, labels) = cond.split_at(self.n_times);
        let labels = labels.first();
        let [bsz, _] = x.dims();
        if let Some(l) = labels {
            assert_eq!(
                l.dims(),
                [bsz, k],
                "class labels must be [B, K] = [{bsz}, {k}] (one-hot rows, or zeros for no class)"
            );
        }
        let (c, h, w) = self.shape;
        let tangent = dx.is_some() || dcond.is_some();
        let dx = if tangent {
            Some(dx.unwrap_or_else(|| x.zeros_like()))
        } else {
            None
        };
        let dcond_owned: Option<Vec<Tensor<2>>> = if tangent {
            Some(match dcond {
                Some(d) => d[..self.n_times].to_vec(),
                None => cond.iter().map(|t| t.zeros_like()).collect(),
            })
        } else {
            None
        };
        let emb = self.embed(p, cond, labels, dcond_owned.as_deref());
        let mut mi = 0;
        let mut next_mask = || {
            let m = masks.map(|ms| ms.0[mi].clone());
            mi += 1;
            m
        };
        let x4: Dual<4> = Dual::new(x, dx).reshape([bsz, c, h, w]);
        let mut hcur = self.conv_in.apply(p, x4);
        let mut skips = vec![hcur.clone()];
        for ((rb, at), &dn) in self.enc.iter().zip(&self.enc_attn).zip(&self.enc_down) {
            hcur = self.block(rb, p, hcur, &emb, next_mask());
            if let Some(at) = at {
                hcur = self.attention(at, p, hcur);
            }
            skips.push(hcur.clone());
            if dn {
                hcur = down(hcur);
                skips.push(hcur.clone());
            }
        }
        hcur = self.block(&self.mid1, p, hcur, &emb, next_mask());
        if let Some(at) = &self.attn {
            hcur = self.attention(at, p, hcur);
        }
        hcur = self.block(&self.mid2, p, hcur, &emb, next_mask());
        for ((rb, at), &u) in self.dec.iter().zip(&self.dec_attn).zip(&self.dec_up) {
            let s = skips.pop().expect("skip");
            hcur = self.block(rb, p, cat(hcur, s, 1), &emb, next_mask());
            if let Some(at) = at {
                hcur = self.attention(at, p, hcur);
            }
            if u {
                hcur = up(hcur);
            }
        }
        if let Some(ms) = masks {
            assert_eq!(
                ms.0.len(),
                mi,
                "dropout masks out of step with the U-Net's residual blocks"
            );
        }
        let out = self.conv_out.apply(p, self.gn_out.apply_act(p, hcur, None, false));
        out.reshape([bsz, c * h * w])
    }

    fn blocks(&self) -> Vec<&ResBlock> {
        self.enc
            .iter()
            .chain([&self.mid1, &self.mid2])
            .chain(self.dec.iter())
            .collect()
    }
}

impl Backbone for Unet {
    fn specs(&self) -> Vec<ParamSpec> {
        self.specs.clone()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn n_times(&self) -> usize {
        self.n_times
    }
    fn n_classes(&self) -> usize {
        self.cfg.classes
    }
    fn image_shape(&self) -> Option<(usize, usize, usize)> {
        Some(self.shape)
    }
    fn forward_flops(&self) -> Option<f64> {
        Some(self.flops())
    }
    fn dropout(&self) -> f64 {
        self.cfg.dropout
    }
    fn draw_masks(&self, rng: &mut Rng, batch: usize, device: &Device) -> Option<Masks> {
        if self.cfg.dropout <= 0.0 {
            return None;
        }
        // One mask per residual block, in the order `run` visits them (enc, mid, dec);
        // attention blocks (middle or `attn_resolutions`) have no dropout and take none.
        Some(Masks(
            self.blocks()
                .iter()
                .map(|rb| rng.dropout_mask([batch, rb.out * rb.side * rb.side], self.cfg.dropout, device))
                .collect(),
        ))
    }
    fn forward(&self, p: &[Tensor<1>], x: Tensor<2>, cond: &[Tensor<2>], masks: Option<&Masks>) -> Tensor<2> {
        self.run(p, x, None, cond, None, masks).v
    }
    fn jvp(
        &self,
        p: &[Tensor<1>],
        x: Tensor<2>,
        dx: Tensor<2>,
        cond: &[Tensor<2>],
        dcond: &[Tensor<2>],
        masks: Option<&Masks>,
    ) -> (Tensor<2>, Tensor<2>) {
        if self.cfg.classes == 0 {
            assert_eq!(dcond.len(), self.n_times);
        } else {
            assert!(
                dcond.len() == self.n_times || dcond.len() == self.n_times + 1,
                "class-conditional U-Net: {} time tangents expected (optionally one more for the labels, ignored), got {}",
                self.n_times,
                dcond.len()
            );
        }
        let r = self.run(p, x, Some(dx), cond, Some(dcond), masks);
        (r.v, r.d.expect("tangent"))
    }
}

#[cfg(test)]
mod tests;
