//! Multistep sampling of the flow-based consistency methods: FACM (t = 1 data) and MeanFlow
//! (t = 0 data).

use super::Noise;
use crate::model::Model;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// FACM multistep sampling (METHODS.md §5), `times` = [t_0 = 0, t_1, …, t_n = 1] increasing
/// towards the data: x_end = x + (1 − t)·F(x, t) with the consistency time input(s) (t, or
/// (t, r = 1) for a two-time network, `facm-aux`), then x ← t_next·x_end + (1 − t_next)·z'.
pub fn facm_sample(model: &Model, p: &[Tensor<1>], z: Tensor<2>, times: &[f64], noise: &mut Noise<'_>) -> Tensor<2> {
    let [b, d] = z.dims();
    let dev = z.device();
    let aux = model.net.n_times() == 2;
    let n = times.len() - 1;
    let mut x = z;
    let mut x_end = x.clone();
    for k in 0..n {
        let t = times[k];
        let tv = vec![t; b];
        let ones = vec![1.0; b];
        let extra: Vec<&[f64]> = if aux { vec![&ones] } else { vec![] };
        let f = model.eval(p, x.clone(), &tv, &extra, None);
        x_end = x.clone() + f.mul_scalar(1.0 - t);
        if k + 1 < n {
            let tn = times[k + 1];
            let zn = noise.normal(b, d, &dev);
            x = x_end.clone().mul_scalar(tn) + zn.mul_scalar(1.0 - tn);
        }
    }
    x_end
}

/// How MeanFlow's two times enter the network (AUDIT D3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeanFlowInputs {
    /// (t, h = t − r), as both official codes: py-meanflow `u_func(z, t, r) = net(z, (t, t − r))`
    /// and Gsunshine/meanflow `net(x, t, h)`. Along (dr, dt) = (0, 1) the inputs move by (1, 1).
    #[serde(rename = "t-h")]
    TH,
    /// (r, t), this project's original conditioning. Along (0, 1) the inputs move by (0, 1).
    #[serde(rename = "r-t")]
    RT,
}

impl MeanFlowInputs {
    /// The network's two time inputs (first, second) for per-sample (t, r).
    pub fn pair(&self, t: &[f64], r: &[f64]) -> (Vec<f64>, Vec<f64>) {
        match self {
            MeanFlowInputs::TH => (t.to_vec(), t.iter().zip(r).map(|(t, r)| t - r).collect()),
            MeanFlowInputs::RT => (r.to_vec(), t.to_vec()),
        }
    }

    /// The tangents of the two inputs along (dr, dt) = (0, 1).
    pub fn tangent(&self) -> (f64, f64) {
        match self {
            MeanFlowInputs::TH => (1.0, 1.0),
            MeanFlowInputs::RT => (0.0, 1.0),
        }
    }
}

/// MeanFlow sampling (METHODS.md §6), `times` = [1, …, 0]: z_r = z_t − (t − r)·u(z_t, r, t)
/// for each consecutive pair (t, r), the network conditioned as `inputs` says ((t, t − r) or
/// (r, t)); one step is x = ε − u(ε, 0, 1).
pub fn meanflow_sample(
    model: &Model,
    p: &[Tensor<1>],
    z: Tensor<2>,
    times: &[f64],
    inputs: MeanFlowInputs,
    _noise: &mut Noise<'_>,
) -> Tensor<2> {
    let b = z.dims()[0];
    let mut x = z;
    for w in times.windows(2) {
        let (t, r) = (vec![w[0]; b], vec![w[1]; b]);
        let (a, c) = inputs.pair(&t, &r);
        let u = model.eval(p, x.clone(), &a, &[&c], None);
        x = x - u.mul_scalar(w[0] - w[1]);
    }
    x
}
