//! Starting one backbone from another's weights (`train.init_from`): CD, ECT and CTM start from
//! their EDM teacher (AUDIT M6).
//!
//! Tensors are matched by name. A tensor of the same shape is copied. The one allowed
//! difference is the number of time inputs: the first time-embedding layer (`time_embed.linear`
//! of the MLP, `time_embed.0` of the U-Net) reads the concatenated embeddings of all time
//! inputs, so its weight is [n_times·E, H]; from a source with fewer time inputs its first rows
//! are copied and the rows of the extra inputs set to zero. CTM's g_θ(x, t, s) then ignores s
//! at step 0, and its denoiser D_θ(x, σ) = g_θ(x, σ, σ) equals the EDM teacher's.

use super::ParamSpec;
use burn::prelude::*;

/// The destination's weights from the source's (see the module docs); `what` names the source
/// in errors. Every source tensor must be used and every destination tensor matched.
pub fn transfer(
    src_specs: &[ParamSpec],
    src: &[Tensor<1>],
    dst_specs: &[ParamSpec],
    what: &str,
) -> anyhow::Result<Vec<Tensor<1>>> {
    anyhow::ensure!(
        src_specs.len() == dst_specs.len(),
        "{what} has a different backbone architecture ({} tensors, this run's backbone has {})",
        src_specs.len(),
        dst_specs.len()
    );
    let mut out = Vec::with_capacity(dst_specs.len());
    for d in dst_specs {
        let Some(i) = src_specs.iter().position(|s| s.name == d.name) else {
            anyhow::bail!(
                "{what} has a different backbone architecture (no tensor {} in it)",
                d.name
            );
        };
        let s = &src_specs[i];
        if s.shape == d.shape {
            out.push(src[i].clone());
            continue;
        }
        // More time inputs: [k·a, o] from [a, o], the extra rows zero.
        let extra_rows = d.shape.len() == 2
            && s.shape.len() == 2
            && d.shape[1] == s.shape[1]
            && d.shape[0] > s.shape[0]
            && d.shape[0] % s.shape[0] == 0
            && d.name.starts_with("time_embed.");
        anyhow::ensure!(
            extra_rows,
            "{what} has a different backbone architecture ({} is {:?} there, {:?} here)",
            d.name,
            s.shape,
            d.shape
        );
        let zeros = Tensor::<1>::zeros([d.numel() - s.numel()], (&src[i].device(), src[i].dtype()));
        out.push(Tensor::cat(vec![src[i].clone(), zeros], 0));
    }
    Ok(out)
}
