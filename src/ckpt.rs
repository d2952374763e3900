//! Checkpoints: one safetensors file per saved step, written atomically.
//!
//! Tensors are stored under `<group>/<param name>` for the groups `online`, `target`, `ema`,
//! `adam_m`, `adam_v`; metadata holds the step, the RNG state, the method, the resolved config
//! (TOML), the data standardisation (JSON) and counters. Writing goes to a temporary file in
//! the same folder, is fsynced, renamed over the final name, and the folder is fsynced, so a
//! kill at any moment leaves either the old or the new file, never a torn one.
//! The metadata also holds a SHA-256 of the whole file ([`CHECKSUM_KEY`]), verified on every
//! read, so a file damaged on disk later (truncated, bit-flipped) is rejected, never loaded.
//! Loading checks every name and shape against the architecture and says which one differs.

use crate::fetch::sha256_hex;
use crate::nets::ParamSpec;
use crate::tensor::to_vec;
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The format tag every checkpoint carries in its metadata.
pub const FORMAT: &str = "cm-checkpoint-1";

/// Everything a run needs to continue exactly.
#[derive(Clone)]
pub struct State {
    /// Optimizer steps taken.
    pub step: u64,
    /// The run's random generator ([`crate::rng::Rng::state`]).
    pub rng: [u64; 4],
    /// Online weights θ (backbone first, then the method's own).
    pub online: Vec<Tensor<1>>,
    /// Target weights θ⁻.
    pub target: Vec<Tensor<1>>,
    /// Evaluation EMA of θ.
    pub ema: Vec<Tensor<1>>,
    /// Adam's first moments, one per tensor.
    pub adam_m: Vec<Tensor<1>>,
    /// Adam's second moments.
    pub adam_v: Vec<Tensor<1>>,
    /// Adam's step count per tensor: the updates that tensor received (as PyTorch keeps
    /// `state["step"]` per parameter), so a tensor that gets no gradient in a phase or a step
    /// keeps its bias correction.
    pub adam_t: Vec<u64>,
    /// Steps skipped for a non-finite loss or gradient, in total and in a row.
    pub bad_steps: u64,
    /// Consecutive skipped steps at the time of the checkpoint.
    pub bad_run: u64,
    /// The objective's own state ([`crate::objectives::Objective::state`]), if any.
    pub method_state: Option<String>,
    /// Descriptive metadata: method, resolved config (TOML), standardisation (JSON).
    pub meta: BTreeMap<String, String>,
}

/// Metadata keys that hold [`State`]'s typed fields (the rest is descriptive).
const TYPED_KEYS: [&str; 7] = [
    "format",
    "step",
    "rng",
    "adam_t",
    "bad_steps",
    "bad_run",
    "method_state",
];

fn f32_bytes(t: &Tensor<1>) -> Vec<u8> {
    to_vec(t.clone()).into_iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Serialises a state; `specs` names the tensors (all groups share the names).
pub fn to_bytes(state: &State, specs: &[ParamSpec]) -> Result<Vec<u8>> {
    to_bytes_of(state, specs, false)
}

/// The metadata key that marks a model file ([`to_model_bytes`]).
pub const KIND_KEY: &str = "kind";
/// Its value for a model file.
pub const KIND_MODEL: &str = "model";
/// The metadata key of a model file's image shape `C,H,W` (so it samples without its data).
pub const IMAGE_SHAPE_KEY: &str = "image_shape";

/// A **model file**: the evaluation-EMA weights only (`ema/…` tensors), with the same metadata
/// (config, step, checksum) as a checkpoint and `kind = model`. A fifth of a checkpoint's size;
/// everything that reads a run for sampling or evaluation reads it ([`from_bytes`] gives a
/// state whose online and target weights are the EMA's and whose optimizer state is zero), but
/// it cannot resume training (`cm export`; the models shipped in `models/`).
pub fn to_model_bytes(state: &State, specs: &[ParamSpec]) -> Result<Vec<u8>> {
    to_bytes_of(state, specs, true)
}

fn to_bytes_of(state: &State, specs: &[ParamSpec], model_only: bool) -> Result<Vec<u8>> {
    let all: [(&str, &Vec<Tensor<1>>); 5] = [
        ("online", &state.online),
        ("target", &state.target),
        ("ema", &state.ema),
        ("adam_m", &state.adam_m),
        ("adam_v", &state.adam_v),
    ];
    let groups: Vec<(&str, &Vec<Tensor<1>>)> = all.into_iter().filter(|(g, _)| !model_only || *g == "ema").collect();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (g, ts) in groups {
        for (spec, t) in specs.iter().zip(ts.iter()) {
            owned.push((format!("{g}/{}", spec.name), spec.shape.clone(), f32_bytes(t)));
        }
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut meta: HashMap<String, String> = state.meta.clone().into_iter().collect();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("step".into(), state.step.to_string());
    meta.insert(
        "adam_t".into(),
        state.adam_t.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
    );
    meta.insert("bad_steps".into(), state.bad_steps.to_string());
    meta.insert("bad_run".into(), state.bad_run.to_string());
    if let Some(s) = &state.method_state {
        meta.insert("method_state".into(), s.clone());
    }
    meta.insert(
        "rng".into(),
        state
            .rng
            .iter()
            .map(|w| format!("{w:016x}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    if model_only {
        meta.insert(KIND_KEY.into(), KIND_MODEL.into());
    }
    meta.insert(CHECKSUM_KEY.into(), CHECKSUM_PLACEHOLDER.into());
    let mut bytes = canonical_header(safetensors::serialize(views, &Some(meta))?)?;
    let slot = checksum_slot(&bytes).context("checksum slot missing from the header")?;
    let sum = sha256_hex(&bytes);
    bytes[slot].copy_from_slice(sum.as_bytes());
    Ok(bytes)
}

/// The metadata key of the checkpoint's checksum: the SHA-256 of the whole file with the 64 hex
/// digits of the checksum itself read as zeros. It covers the header (step, RNG, config, …)
/// and every tensor byte.
pub const CHECKSUM_KEY: &str = "sha256";
const CHECKSUM_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the checksum's 64 hex digits sit in a serialised checkpoint (None when it has none).
fn checksum_slot(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let key = format!("\"{CHECKSUM_KEY}\":\"");
    let at = header.windows(key.len()).position(|w| w == key.as_bytes())? + 8 + key.len();
    let slot = at..at + 64;
    (bytes.get(slot.end..slot.end + 1)? == b"\"").then_some(slot)
}

/// Verifies the checksum of a serialised checkpoint whose metadata is `meta`. Checkpoints
/// written before checksums existed (no key) pass; any other mismatch is an error saying the
/// file is damaged.
fn verify_checksum(bytes: &[u8], meta: &BTreeMap<String, String>) -> Result<()> {
    let Some(stored) = meta.get(CHECKSUM_KEY) else {
        return Ok(());
    };
    let damaged = |why: String| {
        anyhow::anyhow!("the file is damaged: {why}; it changed on disk after cm wrote it (truncated, bit-flipped or overwritten), so its weights cannot be trusted")
    };
    let slot = checksum_slot(bytes).ok_or_else(|| damaged("its checksum field is malformed".into()))?;
    let mut copy = bytes.to_vec();
    copy[slot].copy_from_slice(CHECKSUM_PLACEHOLDER.as_bytes());
    let got = sha256_hex(&copy);
    if *stored != got {
        return Err(damaged(format!(
            "checksum mismatch (stored sha256 {stored}, computed {got})"
        )));
    }
    Ok(())
}

/// Rewrites a serialised safetensors file with its metadata keys sorted. `serialize` takes the
/// metadata as a `HashMap`, whose order changes from process to process; sorted, the same
/// state always gives the same bytes. Tensor offsets are relative to the data, so only the
/// header (kept 8-byte aligned, padded with spaces) changes.
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n])?;
    if let Some(serde_json::Value::Object(m)) = header.get_mut("__metadata__") {
        let sorted: BTreeMap<String, serde_json::Value> = std::mem::take(m).into_iter().collect();
        m.extend(sorted);
    }
    let mut text = serde_json::to_vec(&header)?;
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Parses and validates a checkpoint against `specs`. Every failure is an error naming it.
pub fn from_bytes(bytes: &[u8], specs: &[ParamSpec], device: &Device) -> Result<State> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("not a valid safetensors checkpoint: {e}"))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| anyhow::anyhow!("bad checkpoint header: {e}"))?;
    let meta: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) => bail!("unsupported checkpoint format '{f}' (expected {FORMAT})"),
        None => bail!("not a cm checkpoint: no 'format' in its metadata"),
    }
    verify_checksum(bytes, &meta)?;
    let step: u64 = meta
        .get("step")
        .context("checkpoint has no step")?
        .parse()
        .context("checkpoint step is not a number")?;
    let words: Vec<u64> = meta
        .get("rng")
        .context("checkpoint has no rng state")?
        .split(',')
        .map(|w| u64::from_str_radix(w, 16))
        .collect::<Result<_, _>>()
        .context("checkpoint rng state is malformed")?;
    let rng: [u64; 4] = words
        .try_into()
        .map_err(|_| anyhow::anyhow!("checkpoint rng state must have 4 words"))?;
    let load = |group: &str| -> Result<Vec<Tensor<1>>> {
        specs
            .iter()
            .map(|spec| {
                let key = format!("{group}/{}", spec.name);
                let v = st.tensor(&key).map_err(|_| {
                    anyhow::anyhow!("checkpoint has no tensor '{key}': it was written by a different architecture or method")
                })?;
                if v.shape() != spec.shape.as_slice() {
                    bail!(
                        "tensor '{key}' has shape {:?} in the checkpoint but {:?} in this model (different architecture)",
                        v.shape(),
                        spec.shape
                    );
                }
                if v.dtype() != Dtype::F32 {
                    bail!("tensor '{key}' has dtype {:?}, expected F32", v.dtype());
                }
                let vals: Vec<f32> = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                if let Some(i) = vals.iter().position(|x| !x.is_finite()) {
                    bail!("tensor '{key}' holds a non-finite value at index {i}");
                }
                Ok(Tensor::from_data(TensorData::new(vals, [spec.numel()]), device))
            })
            .collect()
    };
    let model_only = meta.get(KIND_KEY).map(|s| s.as_str()) == Some(KIND_MODEL);
    let n_expected = if model_only { specs.len() } else { 5 * specs.len() };
    if st.len() != n_expected {
        let extra: Vec<&String> = st
            .names()
            .into_iter()
            .filter(|n| !specs.iter().any(|s| n.ends_with(&format!("/{}", s.name))))
            .collect();
        if let Some(x) = extra.first() {
            bail!("checkpoint has tensor '{x}' that this model does not have (different architecture or method)");
        }
    }
    let counter = |key: &str| -> Result<u64> {
        meta.get(key)
            .map(|s| {
                s.parse()
                    .with_context(|| format!("checkpoint {key} is not a number: '{s}'"))
            })
            .unwrap_or(Ok(0))
    };
    let (bad_steps, bad_run) = (counter("bad_steps")?, counter("bad_run")?);
    let method_state = meta.get("method_state").cloned();
    let (online, target, ema, adam_m, adam_v) = if model_only {
        // A model file: the EMA weights stand in for all three; no optimizer state.
        let ema = load("ema")?;
        let zeros: Vec<Tensor<1>> = ema.iter().map(|t| t.zeros_like()).collect();
        (ema.clone(), ema.clone(), ema, zeros.clone(), zeros)
    } else {
        let (online, target, ema) = (load("online")?, load("target")?, load("ema")?);
        (online, target, ema, load("adam_m")?, load("adam_v")?)
    };
    // Per-tensor counts; a single number (checkpoints before per-tensor counts) applies to all.
    let adam_t: Vec<u64> = match meta.get("adam_t") {
        None => vec![0; specs.len()],
        Some(s) => {
            let v: Vec<u64> = s
                .split(',')
                .map(|w| w.trim().parse())
                .collect::<Result<_, _>>()
                .with_context(|| format!("checkpoint adam_t is malformed: '{s}'"))?;
            match v.len() {
                1 => vec![v[0]; specs.len()],
                n if n == specs.len() => v,
                n => bail!("checkpoint adam_t has {n} counts for {} tensors", specs.len()),
            }
        }
    };
    let meta: BTreeMap<String, String> = meta
        .into_iter()
        // The checksum belongs to the file, not to the state.
        .filter(|(k, _)| {
            !TYPED_KEYS.contains(&k.as_str()) && k != CHECKSUM_KEY && k != KIND_KEY && k != IMAGE_SHAPE_KEY
        })
        .collect();
    Ok(State {
        step,
        rng,
        online,
        target,
        ema,
        adam_m,
        adam_v,
        adam_t,
        bad_steps,
        bad_run,
        method_state,
        meta,
    })
}

/// Reads only the metadata of a checkpoint (for `inspect` and for resolving configs).
pub fn read_meta(bytes: &[u8]) -> Result<(BTreeMap<String, String>, Vec<(String, Vec<usize>)>)> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("not a valid safetensors checkpoint: {e}"))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| anyhow::anyhow!("bad checkpoint header: {e}"))?;
    let meta: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    if meta.get("format").map(|s| s.as_str()) != Some(FORMAT) {
        bail!("not a cm checkpoint (no '{FORMAT}' format tag)");
    }
    verify_checksum(bytes, &meta)?;
    let mut tensors: Vec<(String, Vec<usize>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
    tensors.sort();
    Ok((meta, tensors))
}

/// Checkpoint file name for a step.
pub fn file_name(step: u64) -> String {
    format!("ckpt-{step:08}.safetensors")
}

/// Checkpoints in a run folder, oldest first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("ckpt-")?.strip_suffix(".safetensors")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// Removes temporary files that a killed writer left in a run folder (`.NAME.tmp-PID` from
/// [`crate::io::write_atomic`], NAME one of the run's own files); they are never read, this only
/// reclaims their space. Anything else in the folder is left alone.
pub fn remove_stale_temps(dir: &Path) {
    let me = std::process::id().to_string();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some((stem, pid)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")) else {
            continue;
        };
        let ours =
            (stem.starts_with("ckpt-") && stem.ends_with(".safetensors")) || matches!(stem, "config.toml" | "loss.png");
        if ours && !pid.is_empty() && pid.bytes().all(|c| c.is_ascii_digit()) && pid != me {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Resolves a run folder (its newest checkpoint) or a checkpoint file.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        list(path)
            .pop()
            .map(|(_, p)| p)
            .with_context(|| format!("no checkpoint (ckpt-*.safetensors) in {}", path.display()))
    } else if path.exists() {
        Ok(path.to_path_buf())
    } else {
        bail!("no such checkpoint or run folder: {}", path.display())
    }
}
