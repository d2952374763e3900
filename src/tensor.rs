//! Tensor helpers every floor uses: per-sample columns, host read-back, building a `[n, d]`
//! tensor. They live at the ground floor so that time conversions, data and metrics need not
//! import the networks module for a one-line helper.

use burn::prelude::*;

/// A `[B, 1]` column of per-sample values, in the dtype and on the device of `like`.
pub fn col(vals: &[f64], like: &Tensor<2>) -> Tensor<2> {
    let dev = like.device();
    let dtype = like.dtype();
    Tensor::<2>::from_data(TensorData::new(vals.to_vec(), [vals.len(), 1]), (&dev, dtype))
}

/// A `[B, 1]` column in f32 on `device`.
pub fn col_f32(vals: &[f64], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
    Tensor::<2>::from_data(TensorData::new(v, [vals.len(), 1]), device)
}

/// Reads a tensor back as `Vec<f32>`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data")
}

/// Reads a tensor back as `Vec<f64>` (any float dtype).
pub fn to_vec64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().expect("f64 data")
}

/// Builds a `[n, d]` tensor from row-major f32 values.
pub fn tensor2(v: Vec<f32>, n: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [n, d]), device)
}
