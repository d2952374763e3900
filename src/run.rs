//! The object graph of a run: a config becomes data, model, objective and teacher
//! ([`Setup`]); a checkpoint or run folder becomes a config, a setup and a state
//! ([`load_run`]). Training, sampling, evaluation and the commands all start here.

use crate::ckpt::{self, State};
use crate::config::Config;
use crate::data::{gmm::EigenGmm, gmm::Gmm, Dataset, Standardizer};
use crate::model::{Model, Params};
use crate::nets::ParamSpec;
use crate::objectives::{Objective, Teacher};
use crate::process::Denoiser;
use crate::rng::Rng;
use crate::samplers::Sampler;
use crate::tensor::tensor2;
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// Everything derived from a config: data, model, objective, teacher.
pub struct Setup {
    /// The (validated) config the setup was built from.
    pub cfg: Config,
    /// The data set named by `data.name`, in raw coordinates.
    pub data: Dataset,
    /// Raw ↔ standardised coordinates; training and sampling happen in standardised ones.
    pub standardizer: Standardizer,
    /// The exact mixture in standardised coordinates, where the data has one.
    pub gmm_std: Option<Gmm>,
    /// The mixture fitted to the data when `method.teacher = "gmm"` (standardised
    /// coordinates), with how it was chosen.
    pub fitted_teacher: Option<crate::data::em::FittedTeacher>,
    /// The training method (`[method]`).
    pub objective: Box<dyn Objective>,
    /// The backbone with the method's parameterisation at the run's σ_d (`data.sigma_d`, or
    /// 0.5 for images and 1 otherwise when it is 0).
    pub model: Model,
    /// Backbone parameters followed by the objective's own.
    pub specs: Vec<ParamSpec>,
    /// Number of backbone parameters: `specs[..n_net]` are the backbone's.
    pub n_net: usize,
    /// The teacher denoiser of distillation methods, in standardised coordinates: the exact
    /// mixture or a trained run; None when the method has none.
    pub teacher: Option<Arc<dyn Denoiser>>,
    /// The device every tensor of the run lives on.
    pub device: Device,
}

impl Setup {
    /// Validates `cfg` and builds its data, standardisation, objective, backbone, model and
    /// teacher; fails on a mismatch (class labels missing or too large for `model.classes`, a
    /// teacher the data or method cannot have, a method that needs a teacher without one).
    pub fn new(cfg: &Config, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let data = Dataset::from_spec(&cfg.data.name, &cfg.data.image_options())?;
        Self::build(cfg, data, true, device)
    }

    /// The setup of a model file ([`crate::ckpt::to_model_bytes`]) for sampling and
    /// evaluation: no teacher is loaded (a model file never trains), and when its image data
    /// set is not on this machine the data is a stand-in with the stored image shape and class
    /// count and no images, so `cm sample` works anywhere; anything that needs the images
    /// (evaluation, training) then fails naming the missing data set.
    pub fn for_model_file(
        cfg: &Config,
        meta: &std::collections::BTreeMap<String, String>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let data = match Dataset::from_spec(&cfg.data.name, &cfg.data.image_options()) {
            Ok(d) => d,
            Err(e) => {
                let Some(shape) = meta.get(crate::ckpt::IMAGE_SHAPE_KEY) else {
                    return Err(e);
                };
                let v: Vec<usize> = shape.split(',').filter_map(|x| x.trim().parse().ok()).collect();
                anyhow::ensure!(
                    v.len() == 3,
                    "model file: malformed {} '{shape}'",
                    crate::ckpt::IMAGE_SHAPE_KEY
                );
                let k = cfg.model.classes();
                Dataset::Images {
                    name: cfg.data.name.clone(),
                    images: Arc::new(crate::data::images::Images {
                        n: 0,
                        c: v[0],
                        h: v[1],
                        w: v[2],
                        pixels: Vec::new(),
                        max: 255,
                        labels: (k > 0).then(Vec::new),
                        classes: k,
                    }),
                    hflip: false,
                }
            }
        };
        Self::build(cfg, data, false, device)
    }

    fn build(cfg: &Config, data: Dataset, with_teacher: bool, device: &Device) -> Result<Self> {
        let dim = data.dim();
        let standardizer = data.standardizer();
        let gmm_std = data
            .gmm()
            .map(|g| g.standardized(&standardizer.mean, &standardizer.std));
        let objective = cfg.method.build(dim)?;
        check_micro_batch(cfg, objective.as_ref())?;
        let sigma_d = if cfg.data.sigma_d > 0.0 {
            cfg.data.sigma_d
        } else if data.image_shape().is_some() {
            0.5
        } else {
            1.0
        };
        let net = cfg.model.build(dim, objective.n_times(), cfg.train.seed)?;
        let k = net.n_classes();
        if k > 0 {
            let Some(labels) = data.labels() else {
                bail!(
                    "model.classes = {k} needs class labels, but data set {} has none (labels come with mnist:/fashion-mnist: folders and idx: files with a matching labels-idx1 file)",
                    data.name()
                );
            };
            if let Some(&m) = labels.iter().max().filter(|&&m| m as usize >= k) {
                bail!(
                    "data set {} has class label {m}, but model.classes = {k} (labels must be below model.classes; the data has {} classes)",
                    data.name(),
                    data.classes()
                );
            }
        }
        let model = Model::new(net.clone(), objective.precond(sigma_d));
        let mut specs = net.specs();
        let n_net = specs.len();
        specs.extend(objective.extra_specs());
        let mut fitted_teacher = None;
        let teacher: Option<Arc<dyn Denoiser>> = match cfg.method.teacher() {
            _ if !with_teacher => None,
            None | Some(Teacher::None) => None,
            // Both mixtures denoise through their eigendecompositions (one per component, not
            // one per component and row: `EigenGmm`).
            Some(Teacher::Gmm) => {
                let f = crate::data::em::fit_teacher(&data, &standardizer, cfg.train.seed)?;
                let t = Arc::new(EigenGmm::new(&f.gmm));
                fitted_teacher = Some(f);
                Some(t)
            }
            Some(Teacher::Exact) => match &gmm_std {
                Some(g) => Some(Arc::new(EigenGmm::new(g))),
                None => bail!(
                    "method.teacher = \"exact\" needs a Gaussian-mixture data set ({} has no exact denoiser); give \"gmm\" (a mixture fitted to the data) or a trained teacher's run folder instead",
                    data.name()
                ),
            },
            Some(Teacher::Train) => bail!("method.teacher = \"train\" is resolved by `cm demo`; for `cm train`, train an EDM teacher first and give its run folder"),
            Some(Teacher::Run(path)) => Some(load_teacher_for(
                path,
                &standardizer,
                k,
                cfg.method.teacher_guidance(),
                device,
            )?),
        };
        let w = cfg.method.teacher_guidance();
        if w != 1.0 && !matches!(cfg.method.teacher(), Some(Teacher::Run(_))) {
            bail!("method.guidance = {w} needs a trained class-conditional teacher (a run folder in method.teacher)");
        }
        if with_teacher && objective.needs_teacher() && teacher.is_none() {
            bail!("method '{}' needs a teacher (method.teacher)", objective.name());
        }
        Ok(Self {
            cfg: cfg.clone(),
            data,
            standardizer,
            gmm_std,
            fitted_teacher,
            objective,
            model,
            specs,
            n_net,
            teacher,
            device: device.clone(),
        })
    }

    /// A standardised batch as a tensor.
    pub fn batch(&self, rng: &mut Rng, n: usize) -> Tensor<2> {
        self.batch_labeled(rng, n).0
    }

    /// [`Setup::batch`] (the same random numbers) with the class labels of the samples drawn.
    pub fn batch_labeled(&self, rng: &mut Rng, n: usize) -> (Tensor<2>, Option<Vec<usize>>) {
        let (raw, labels) = self.data.sample_labeled(rng, n);
        let z = self.standardizer.forward(&raw);
        let x = tensor2(
            z.into_iter().map(|v| v as f32).collect(),
            n,
            self.data.dim(),
            &self.device,
        );
        (x, labels)
    }

    /// One-hot `[B, K]` labels for the class-conditional network (K = `model.classes`);
    /// `None` entries are all-zero "no class" rows.
    pub fn onehot(&self, labels: &[Option<usize>]) -> Tensor<2> {
        crate::model::onehot(labels, self.model.net.n_classes(), &self.device)
    }

    /// How the trained model generates by default (the method's sampler on its schedule).
    pub fn sampler(&self) -> Sampler {
        self.objective.sampler(self.model.precond.sigma_d())
    }

    /// The typed view of a flat weight list (backbone weights first) of this run.
    pub fn params<'a>(&self, all: &'a [Tensor<1>]) -> Params<'a> {
        Params::split(all, self.n_net)
    }

    /// Training labels after class dropout: each is replaced by "no class" with probability
    /// `model.class_dropout`, one uniform draw from `rng` per label (none when it is 0).
    pub fn drop_classes(&self, labels: &[usize], rng: &mut Rng) -> Vec<Option<usize>> {
        let p = self.cfg.model.class_dropout();
        labels
            .iter()
            .map(|&l| (p <= 0.0 || rng.uniform() >= p).then_some(l))
            .collect()
    }
}

/// Loads a trained network (its EMA weights) as a denoiser; its data standardisation must match.
/// Queried as it is, a class-conditional teacher acts unconditionally (the "no class" label it
/// learnt through `model.class_dropout`); [`load_teacher_for`] is what a student's run uses.
pub fn load_teacher(path: &Path, st: &Standardizer, device: &Device) -> Result<Arc<dyn Denoiser>> {
    load_teacher_for(path, st, 0, 1.0, device)
}

/// [`load_teacher`] for a student with `classes` classes (0 = unconditional) that queries the
/// teacher with classifier-free guidance scale `guidance`. A class-conditional student binds
/// its batch labels to the teacher every step ([`Denoiser::with_labels`]), so the teacher's
/// classes must be the student's; guidance (w ≠ 1) needs both to be class-conditional.
pub fn load_teacher_for(
    path: &Path,
    st: &Standardizer,
    classes: usize,
    guidance: f64,
    device: &Device,
) -> Result<Arc<dyn Denoiser>> {
    let (cfg, setup, state) = load_run(path, device).with_context(|| format!("loading teacher {}", path.display()))?;
    let tk = setup.model.net.n_classes();
    if tk > 0 && classes > 0 && tk != classes {
        bail!(
            "teacher {} has {tk} classes but the student's model.classes = {classes}; they must agree",
            path.display()
        );
    }
    if guidance != 1.0 && (tk == 0 || classes == 0) {
        bail!(
            "method.guidance = {guidance} needs a class-conditional teacher and student (teacher {} has model.classes = {tk}, the student {classes})",
            path.display()
        );
    }
    let model = setup.model.with_guidance(guidance);
    if &setup.standardizer != st {
        bail!(
            "teacher {} was trained on different data ({}); its standardisation differs",
            path.display(),
            cfg.data.name
        );
    }
    // The teacher's own method says how its network denoises (AUDIT B4: flow runs through their
    // flow-matching branch).
    Ok(cfg.method.teacher_denoiser(model, state.ema[..setup.n_net].to_vec()))
}

/// Reads a checkpoint (or a run folder's newest) with the config stored inside it.
///
/// A run that is still training is read safely: checkpoints appear by atomic rename (a partial
/// one is never listed) and carry a checksum; if the newest is pruned between listing and
/// reading, the folder is listed again. When a folder's newest checkpoint is damaged, the
/// error names it and the older one that can be given instead.
pub fn load_run(path: &Path, device: &Device) -> Result<(Config, Setup, State)> {
    let mut tries = 0;
    let (file, bytes) = loop {
        let file = ckpt::resolve(path)?;
        match std::fs::read(&file) {
            Ok(b) => break (file, b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_dir() && tries < 5 => tries += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    };
    load_bytes(&file, &bytes, device).map_err(|e| {
        let older = path
            .is_dir()
            .then(|| ckpt::list(path).into_iter().rev().find(|(_, p)| *p != file))
            .flatten();
        match older {
            Some((_, p))
                if ["damaged", "not a valid safetensors"]
                    .iter()
                    .any(|w| format!("{e:#}").contains(w)) =>
            {
                anyhow::anyhow!("{e:#}; the older checkpoint {} can be given instead", p.display())
            }
            _ => e,
        }
    })
}

fn load_bytes(file: &Path, bytes: &[u8], device: &Device) -> Result<(Config, Setup, State)> {
    let (meta, _) = ckpt::read_meta(bytes).with_context(|| format!("in {}", file.display()))?;
    let cfg = Config::from_toml(meta.get("config").context("checkpoint has no config")?)
        .with_context(|| format!("config stored in {}", file.display()))?;
    let setup = if meta.get(ckpt::KIND_KEY).map(|s| s.as_str()) == Some(ckpt::KIND_MODEL) {
        Setup::for_model_file(&cfg, &meta, device)
    } else {
        Setup::new(&cfg, device)
    }
    .with_context(|| format!("setting up {}", file.display()))?;
    let state = ckpt::from_bytes(bytes, &setup.specs, device).with_context(|| format!("in {}", file.display()))?;
    Ok((cfg, setup, state))
}

/// Refuses `train.micro_batch` for an objective whose loss is not a mean over samples.
pub fn check_micro_batch(cfg: &Config, objective: &dyn Objective) -> anyhow::Result<()> {
    if cfg.train.micro_batch > 0 && cfg.train.micro_batch < cfg.data.batch {
        anyhow::ensure!(
            objective.micro_batches_exact(),
            "method '{}' with these settings cannot split its batch (train.micro_batch = {}): \
             its loss uses statistics of the whole batch (CTM's adaptive λ); set \
             train.micro_batch = 0 or method.adaptive = false",
            objective.name(),
            cfg.train.micro_batch
        );
    }
    Ok(())
}
