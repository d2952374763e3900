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

pub mod mlp;
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
    Zeros,
    Ones,
    /// Fixed values (non-trainable buffers such as embedding frequencies).
    Values(Vec<f32>),
}

/// A named parameter: its shape, its initialiser, and whether the optimiser updates it.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub trainable: bool,
}

impl ParamSpec {
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
                Init::Uniform(b) => (0..n)
                    .map(|_| ((2.0 * rng.uniform() - 1.0) * b) as f32)
                    .collect(),
                Init::Normal(sd) => rng
                    .normal_vec(n)
                    .into_iter()
                    .map(|x| x * *sd as f32)
                    .collect(),
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
                Init::Values(v) => {
                    assert_eq!(
                        v.len(),
                        n,
                        "{}: {} values for {} elements",
                        s.name,
                        v.len(),
                        n
                    );
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
    pub specs: Vec<ParamSpec>,
}

impl SpecBuilder {
    pub fn add(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        init: Init,
        trainable: bool,
    ) -> usize {
        self.specs.push(ParamSpec {
            name: name.into(),
            shape,
            init,
            trainable,
        });
        self.specs.len() - 1
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
    pub w: usize,
    pub b: usize,
    pub i: usize,
    pub o: usize,
}

impl Linear {
    pub fn weight(&self, p: &[Tensor<1>]) -> Tensor<2> {
        p[self.w].clone().reshape([self.i, self.o])
    }
    pub fn forward(&self, p: &[Tensor<1>], x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight(p)) + p[self.b].clone().reshape([1, self.o])
    }
    /// Tangent of a linear map: W·dx (the bias is constant).
    pub fn tangent(&self, p: &[Tensor<1>], dx: Tensor<2>) -> Tensor<2> {
        dx.matmul(self.weight(p))
    }
}

/// SiLU and its derivative σ(a)(1 + a(1 − σ(a))), for tangent passes.
pub fn silu_jvp(a: Tensor<2>, da: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let s = activation::sigmoid(a.clone());
    let y = a.clone() * s.clone();
    let d = s.clone() * (a * (s.neg().add_scalar(1.0))).add_scalar(1.0);
    (y, d * da)
}

/// Pixel norm over the feature axis, x / sqrt(mean(x²) + ε) (Karras et al. 2018), with tangent
/// dn = dx/r − x·mean(x·dx)/r³.
pub fn pixel_norm(x: Tensor<2>) -> Tensor<2> {
    let r = x
        .clone()
        .square()
        .mean_dim(1)
        .add_scalar(PIXEL_NORM_EPS)
        .sqrt();
    x / r
}

pub const PIXEL_NORM_EPS: f64 = 1e-8;

pub fn pixel_norm_jvp(x: Tensor<2>, dx: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let r = x
        .clone()
        .square()
        .mean_dim(1)
        .add_scalar(PIXEL_NORM_EPS)
        .sqrt();
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
/// reshapes internally), `cond` holds one `[B, 1]` conditioning column per time input.
pub trait Backbone: Send + Sync {
    /// The parameters, in the order [`Backbone::forward`] indexes them.
    fn specs(&self) -> Vec<ParamSpec>;
    /// Sample dimension D.
    fn dim(&self) -> usize;
    /// Number of time inputs (1, or 2 for CTM / FACM-aux / MeanFlow).
    fn n_times(&self) -> usize;
    /// Dropout probability (0 = none).
    fn dropout(&self) -> f64;
    /// Draws the dropout masks for a batch (None when dropout is off).
    fn draw_masks(&self, rng: &mut Rng, batch: usize, device: &Device) -> Option<Masks>;
    fn forward(
        &self,
        p: &[Tensor<1>],
        x: Tensor<2>,
        cond: &[Tensor<2>],
        masks: Option<&Masks>,
    ) -> Tensor<2>;
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

/// A `[B, 1]` column of per-sample values, in the dtype and on the device of `like`.
pub fn col(vals: &[f64], like: &Tensor<2>) -> Tensor<2> {
    let dev = like.device();
    let dtype = like.dtype();
    Tensor::<2>::from_data(
        TensorData::new(vals.to_vec(), [vals.len(), 1]),
        (&dev, dtype),
    )
}

/// A `[B, 1]` column in f32 on `device`.
pub fn col_f32(vals: &[f64], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
    Tensor::<2>::from_data(TensorData::new(v, [vals.len(), 1]), device)
}

/// Reads a tensor back as `Vec<f32>`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// Reads a tensor back as `Vec<f64>` (any float dtype).
pub fn to_vec64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("f64 data")
}

/// Builds a `[n, d]` tensor from row-major f32 values.
pub fn tensor2(v: Vec<f32>, n: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [n, d]), device)
}
