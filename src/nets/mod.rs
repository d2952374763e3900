//! Backbones: the raw networks `F_θ` that every parameterisation wraps.
//!
//! Networks here are *architectures without weights*: a backbone describes its parameters
//! ([`ParamSpec`]) and computes its output from a slice of flat parameter tensors passed in by
//! the caller. The same architecture therefore runs the online weights (autodiff tensors), the
//! target or EMA weights (plain tensors) and the teacher's weights, and the optimizer, EMA and
//! checkpoint code see one flat list of named tensors for any network.
//!
//! Every backbone has two passes: [`Backbone::forward`] and [`Backbone::jvp`], a forward-mode
//! pass that carries a tangent next to each activation and returns the exact directional
//! derivative along (dx, dc) without building an autodiff graph (burn has no forward-mode AD;
//! sCM, FACM and MeanFlow need it, METHODS.md §3, §5, §6).
//!
//! Time inputs reach a backbone as conditioning scalars c (one `[B, 1]` column per time
//! input): the parameterisation decides what c is (¼ ln σ, TrigFlow t, FACM t, ...).

pub mod dual;
pub mod embed;
pub mod jvp;
pub mod kernels;
pub mod mlp;
pub mod transfer;
pub mod unet;

use crate::rng::Rng;
use burn::prelude::*;
use burn::tensor::activation;

/// How a parameter is initialised.
#[derive(Clone, Debug)]
pub enum Init {
    /// U(−b, b).
    Uniform(f64),
    /// N(0, s²).
    Normal(f64),
    /// All zeros (biases, zero-initialised output layers).
    Zeros,
    /// All ones (normalisation gains).
    Ones,
    /// Fixed values (non-trainable buffers such as embedding frequencies).
    Values(Vec<f32>),
}

/// A named parameter: its shape, its initialiser, and whether the optimiser updates it.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// Dotted name, unique within the network (e.g. `input.weight`); the checkpoint key.
    pub name: String,
    /// Logical shape; the tensor itself is stored flat, `numel` values.
    pub shape: Vec<usize>,
    /// How its initial values are drawn ([`init_params`]).
    pub init: Init,
    /// Whether the optimiser updates it (false for fixed buffers).
    pub trainable: bool,
}

impl ParamSpec {
    /// Number of elements, the product of `shape`.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Draws initial values for `specs` from `rng`, as flat tensors.
pub fn init_params(specs: &[ParamSpec], rng: &mut Rng, device: &Device) -> Vec<Tensor<1>> {
    specs
        .iter()
        .map(|s| {
            let n = s.numel();
            let v: Vec<f32> = match &s.init {
                Init::Uniform(b) => (0..n).map(|_| ((2.0 * rng.uniform() - 1.0) * b) as f32).collect(),
                Init::Normal(sd) => rng.normal_vec(n).into_iter().map(|x| x * *sd as f32).collect(),
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
                Init::Values(v) => {
                    assert_eq!(v.len(), n, "{}: {} values for {} elements", s.name, v.len(), n);
                    v.clone()
                }
            };
            Tensor::from_data(TensorData::new(v, [n]), device)
        })
        .collect()
}

/// Registers parameters while an architecture is being built, handing out indices.
#[derive(Default)]
pub struct SpecBuilder {
    /// The parameters registered so far, in index order.
    pub specs: Vec<ParamSpec>,
}

impl SpecBuilder {
    /// Registers one parameter and returns its index into the flat parameter list.
    pub fn add(&mut self, name: impl Into<String>, shape: Vec<usize>, init: Init, trainable: bool) -> usize {
        self.specs.push(ParamSpec {
            name: name.into(),
            shape,
            init,
            trainable,
        });
        self.specs.len() - 1
    }

    /// Replaces the initialiser of parameter `i` (returned by [`SpecBuilder::add`]).
    pub fn set_init(&mut self, i: usize, init: Init) {
        self.specs[i].init = init;
    }

    /// A dense layer y = x·W + b with W: [i, o] (PyTorch's default U(±1/√i) init, or zeros).
    pub fn linear(&mut self, name: &str, i: usize, o: usize, zero: bool) -> Linear {
        let bound = 1.0 / (i as f64).sqrt();
        let (wi, bi) = if zero {
            (Init::Zeros, Init::Zeros)
        } else {
            (Init::Uniform(bound), Init::Uniform(bound))
        };
        let w = self.add(format!("{name}.weight"), vec![i, o], wi, true);
        let b = self.add(format!("{name}.bias"), vec![o], bi, true);
        Linear { w, b, i, o }
    }
}

/// Dense layer, parameters by index into the flat list.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Index of the weight W, `[i, o]`.
    pub w: usize,
    /// Index of the bias b, `[o]`.
    pub b: usize,
    /// Input width.
    pub i: usize,
    /// Output width.
    pub o: usize,
}

impl Linear {
    /// Multiply-add FLOPs per sample: 2·i·o.
    pub fn flops(&self) -> f64 {
        2.0 * (self.i * self.o) as f64
    }

    /// The weight W as an `[i, o]` matrix.
    pub fn weight(&self, p: &[Tensor<1>]) -> Tensor<2> {
        p[self.w].clone().reshape([self.i, self.o])
    }
    /// y = x·W + b for `x` of shape `[B, i]`.
    pub fn forward(&self, p: &[Tensor<1>], x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight(p)) + p[self.b].clone().reshape([1, self.o])
    }
    /// Tangent of a linear map: W·dx (the bias is constant).
    pub fn tangent(&self, p: &[Tensor<1>], dx: Tensor<2>) -> Tensor<2> {
        dx.matmul(self.weight(p))
    }
}

/// SiLU and its derivative σ(a)(1 + a(1 − σ(a))), for tangent passes (no gradient flows
/// through the fused f32 path: tangent passes run on stop-gradient parameters).
pub fn silu_jvp<const D: usize>(a: Tensor<D>, da: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    if let Some(p) = kernels::fusable(&a).then(|| kernels::flex_primitive(&a)).flatten() {
        let (y, d) = kernels::fused::silu_and_derivative(&p);
        let (y, d) = (
            Tensor::from_primitive::<burn::backend::Flex>(y),
            Tensor::from_primitive::<burn::backend::Flex>(d),
        );
        return (y, d * da);
    }
    let s = activation::sigmoid(a.clone());
    let y = a.clone() * s.clone();
    let d = s.clone() * (a * (s.neg().add_scalar(1.0))).add_scalar(1.0);
    (y, d * da)
}

/// SiLU a·σ(a). burn-flex's sigmoid calls libm `expf` once per element in a scalar loop (57 %
/// of a training step's instructions under callgrind, bench/RESULTS.md), so f32 flex tensors
/// take [`kernels::fused::silu`]: a parallel, vectorised loop over `kernels::fused::silu_one`
/// with its own backward (∂a = g·SiLU'(a), SiLU' saved by the forward). Other dtypes and
/// backends (the f64 tests, GPU builds) use burn's silu.
pub fn silu<const D: usize>(a: Tensor<D>) -> Tensor<D> {
    kernels::fused::silu(a)
}

/// Pixel norm over the feature axis, x / sqrt(mean(x²) + ε) (Karras et al. 2018), with tangent
/// dn = dx/r − x·mean(x·dx)/r³.
pub fn pixel_norm(x: Tensor<2>) -> Tensor<2> {
    let r = x.clone().square().mean_dim(1).add_scalar(PIXEL_NORM_EPS).sqrt();
    x / r
}

/// ε of [`pixel_norm`], added to mean(x²) under the square root.
pub const PIXEL_NORM_EPS: f64 = 1e-8;

/// [`pixel_norm`] and its tangent dn = dx/r − x·mean(x·dx)/r³, r = sqrt(mean(x²) + ε).
pub fn pixel_norm_jvp(x: Tensor<2>, dx: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let r = x.clone().square().mean_dim(1).add_scalar(PIXEL_NORM_EPS).sqrt();
    let m = (x.clone() * dx.clone()).mean_dim(1);
    let r3 = r.clone() * r.clone() * r.clone();
    let dn = dx / r.clone() - x.clone() * m / r3;
    (x / r, dn)
}

/// Explicit dropout masks, one per dropout site, drawn once from the run's [`Rng`] so that the
/// online and the target pass can share them (METHODS.md §1, §7).
#[derive(Clone, Debug)]
pub struct Masks(pub Vec<Tensor<2>>);

/// What every backbone offers. `x` is `[B, D]` (images are flattened; an image backbone
/// reshapes internally), `cond` holds one `[B, 1]` conditioning column per time input, then,
/// for a class-conditional backbone ([`Backbone::n_classes`] K > 0), one `[B, K]` tensor of
/// one-hot class labels (an all-zero row = no class). The labels are constant: `dcond` has one
/// tangent per time input (a tangent given for the labels is ignored).
pub trait Backbone: Send + Sync {
    /// The parameters, in the order [`Backbone::forward`] indexes them.
    fn specs(&self) -> Vec<ParamSpec>;
    /// Sample dimension D.
    fn dim(&self) -> usize;
    /// Number of time inputs (1, or 2 for CTM / FACM-aux / MeanFlow).
    fn n_times(&self) -> usize;
    /// Number of classes K of a class-conditional backbone (0 = unconditional: `cond` holds
    /// only the time inputs).
    fn n_classes(&self) -> usize {
        0
    }
    /// The (C, H, W) of an image backbone's samples, channel-first (None: vector data). FACM's
    /// cosine term is per pixel over channels on image backbones (AUDIT D1).
    fn image_shape(&self) -> Option<(usize, usize, usize)> {
        None
    }
    /// Floating-point operations of one forward pass per sample, counted analytically from the
    /// shapes: 2 per multiply-add of every matrix product, convolution and attention product,
    /// nothing for element-wise work (norms, activations, biases), the convention of PyTorch's
    /// `torch.utils.flop_counter.FlopCounterMode` (checked against it in
    /// `bench/pytorch/bench_unet.py --flops`). A tangent (JVP) pass costs the same again.
    /// None: not counted (test doubles).
    fn forward_flops(&self) -> Option<f64> {
        None
    }
    /// Dropout probability (0 = none).
    fn dropout(&self) -> f64;
    /// Draws the dropout masks for a batch (None when dropout is off).
    fn draw_masks(&self, rng: &mut Rng, batch: usize, device: &Device) -> Option<Masks>;
    /// The output F_θ(x, cond), `[B, D]`, with the parameters `p` (plain or autodiff tensors) and
    /// the given dropout masks (None = no dropout).
    fn forward(&self, p: &[Tensor<1>], x: Tensor<2>, cond: &[Tensor<2>], masks: Option<&Masks>) -> Tensor<2>;
    /// Output and its directional derivative along (dx, dcond). Runs on plain tensors.
    fn jvp(
        &self,
        p: &[Tensor<1>],
        x: Tensor<2>,
        dx: Tensor<2>,
        cond: &[Tensor<2>],
        dcond: &[Tensor<2>],
        masks: Option<&Masks>,
    ) -> (Tensor<2>, Tensor<2>);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::to_vec64;
    use burn::tensor::DType;

    fn rnd(rng: &mut Rng, n: usize, d: usize, dev: &Device) -> Tensor<2> {
        rng.normal_tensor([n, d], dev).cast(DType::F64)
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
        let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
        num / den.max(1e-300)
    }

    /// Element-wise central difference of a map on [B, H] in f64.
    fn fd_map(f: impl Fn(Tensor<2>) -> Tensor<2>, x: Tensor<2>, dx: Tensor<2>, h: f64) -> Vec<f64> {
        let p = f(x.clone() + dx.clone().mul_scalar(h));
        let m = f(x - dx.mul_scalar(h));
        to_vec64((p - m).div_scalar(2.0 * h))
    }

    #[test]
    fn silu_jvp_matches_finite_difference() {
        let dev = Device::flex();
        let mut rng = Rng::new(3);
        let x = rnd(&mut rng, 16, 33, &dev).mul_scalar(3.0);
        let dx = rnd(&mut rng, 16, 33, &dev);
        let (y, dy) = silu_jvp(x.clone(), dx.clone());
        assert!(max_rel(&to_vec64(y), &to_vec64(activation::silu(x.clone()))) < 1e-14);
        let fd = fd_map(activation::silu, x, dx, 1e-6);
        let e = max_rel(&to_vec64(dy), &fd);
        assert!(e < 1e-8, "silu_jvp relative error {e}");
    }

    #[test]
    fn pixel_norm_jvp_matches_finite_difference() {
        let dev = Device::flex();
        let mut rng = Rng::new(4);
        for scale in [1.0, 1e-2, 30.0] {
            let x = rnd(&mut rng, 16, 33, &dev).mul_scalar(scale);
            let dx = rnd(&mut rng, 16, 33, &dev).mul_scalar(scale);
            let (y, dy) = pixel_norm_jvp(x.clone(), dx.clone());
            assert!(max_rel(&to_vec64(y), &to_vec64(pixel_norm(x.clone()))) < 1e-14);
            let fd = fd_map(pixel_norm, x, dx, 1e-6);
            let e = max_rel(&to_vec64(dy), &fd);
            assert!(e < 1e-7, "pixel_norm_jvp relative error {e} at scale {scale}");
        }
    }
}

#[cfg(test)]
mod silu_tests {
    use super::kernels::fused::silu_one;
    use super::*;
    use crate::tensor::to_vec;

    /// The vectorisable SiLU against burn's sigmoid-based one, value and derivative, over the
    /// whole useful range and the clamped tails; and its autodiff gradient is SiLU'.
    #[test]
    fn fast_silu_matches_burn() {
        let dev = Device::flex();
        let xs: Vec<f32> = (-4000..=4000)
            .map(|i| i as f32 * 0.025)
            .chain([-200.0, -90.0, 90.0, 300.0, 0.0])
            .collect();
        let n = xs.len();
        let a = Tensor::<2>::from_data(TensorData::new(xs.clone(), [1, n]), &dev);
        let s = to_vec(activation::sigmoid(a.clone()));
        let (y, d): (Vec<f32>, Vec<f32>) = xs.iter().map(|&x| silu_one(x)).unzip();
        for i in 0..n {
            let (x, s) = (xs[i], s[i]);
            let (y_ref, d_ref) = (x * s, s * (1.0 + x * (1.0 - s)));
            assert!(
                (y[i] - y_ref).abs() <= 2e-6 * (1.0 + y_ref.abs()),
                "silu({x}) = {} vs {y_ref}",
                y[i]
            );
            assert!(
                (d[i] - d_ref).abs() <= 2e-6 * (1.0 + d_ref.abs()),
                "silu'({x}) = {} vs {d_ref}",
                d[i]
            );
        }
        let ad = a.clone().autodiff().require_grad();
        let out = silu(ad.clone());
        assert_eq!(to_vec(out.clone()), y);
        let g = ad.grad(&out.sum().backward()).unwrap();
        assert_eq!(to_vec(g), d);
        assert_eq!(to_vec(silu(a)), y);
    }
}
