//! The registry of methods: the one place that matches on a method's name. A new method adds
//! its file, a variant here, and one arm in each `match` below.

use super::*;

/// The method section of a config: the registry of methods. `name` selects the method; an
/// optional `preset = "…"` starts from an official configuration ([`super::presets`]) that
/// the table's own fields override (a subtable with `kind`, such as `[method.target]`,
/// replaces the preset's whole). Serialised configs carry every field and no preset.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum MethodConfig {
    /// EDM diffusion teacher by denoising score matching.
    Edm(dsm::DsmConfig),
    /// Consistency distillation (Song et al. 2023).
    Cd(cd::CdConfig),
    /// Consistency training (Song et al. 2023).
    Ct(ct::CtConfig),
    /// Improved consistency training (Song & Dhariwal 2023).
    Ict(ict::IctConfig),
    /// Easy consistency tuning (Geng et al. 2024).
    Ect(ect::EctConfig),
    /// Consistency trajectory models (METHODS.md §4).
    Ctm(ctm::CtmConfig),
    /// TrigFlow diffusion teacher (velocity loss ‖σ_d F − v‖²).
    Trigflow(scm::TrigFlowConfig),
    /// Continuous-time consistency training on TrigFlow.
    Sct(scm::ScmConfig),
    /// Continuous-time consistency distillation on TrigFlow.
    Scd(scm::ScmConfig),
    /// FACM with the expanded time interval.
    Facm(facm::FacmConfig),
    /// FACM with the auxiliary time condition.
    FacmAux(facm::FacmConfig),
    /// MeanFlow (Geng et al. 2025).
    Meanflow(meanflow::MeanFlowConfig),
}

/// Keys of [`EdmTime`] that a CTM `[method]` table may give at its top level (CTM flattened
/// them before they moved to `[method.time]`, as every other method has them).
const CTM_TOP_LEVEL_TIME: [&str; 4] = ["eps", "t_max", "rho", "two_step_sigma"];

/// Merges `over` into `base`: scalars and arrays replace, tables merge key by key, except a
/// table with a `kind` key (a tagged enum), which replaces the base's whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if !o.contains_key("kind") => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl<'de> Deserialize<'de> for MethodConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let table = toml::Table::deserialize(d)?;
        MethodConfig::from_table(table).map_err(|e| D::Error::custom(format!("{e:#}")))
    }
}

impl MethodConfig {
    /// Parses a `[method]` table: `name`, an optional `preset`, and the method's own fields.
    pub fn from_table(mut table: toml::Table) -> anyhow::Result<Self> {
        let name = match table.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(other) => anyhow::bail!("method.name must be a string, got {other}"),
            None => anyhow::bail!("missing field `name` in [method] (one of {})", METHODS.join(", ")),
        };
        if !METHODS.contains(&name.as_str()) {
            anyhow::bail!("unknown method '{name}': expected one of {}", METHODS.join(", "));
        }
        let mut fields = match table.remove("preset") {
            Some(toml::Value::String(p)) => super::presets::table(super::presets::find(&name, &p)?),
            Some(other) => anyhow::bail!("method.preset must be a string, got {other}"),
            None => toml::Table::new(),
        };
        if name == "ctm" {
            let mut time = toml::Table::new();
            for k in CTM_TOP_LEVEL_TIME {
                if let Some(v) = table.remove(k) {
                    time.insert(k.to_string(), v);
                }
            }
            if !time.is_empty() {
                let mut t = toml::Table::new();
                t.insert("time".into(), toml::Value::Table(time));
                merge(&mut table, t);
            }
        }
        merge(&mut fields, table);
        let v = toml::Value::Table(fields);
        fn parse<T: serde::de::DeserializeOwned>(v: toml::Value) -> anyhow::Result<T> {
            T::deserialize(v).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))
        }
        Ok(match name.as_str() {
            "edm" => MethodConfig::Edm(parse(v)?),
            "cd" => MethodConfig::Cd(parse(v)?),
            "ct" => MethodConfig::Ct(parse(v)?),
            "ict" => MethodConfig::Ict(parse(v)?),
            "ect" => MethodConfig::Ect(parse(v)?),
            "ctm" => MethodConfig::Ctm(parse(v)?),
            "trigflow" => MethodConfig::Trigflow(parse(v)?),
            "sct" => MethodConfig::Sct(parse(v)?),
            "scd" => MethodConfig::Scd(parse(v)?),
            "facm" => MethodConfig::Facm(parse(v)?),
            "facm-aux" => MethodConfig::FacmAux(parse(v)?),
            "meanflow" => MethodConfig::Meanflow(parse(v)?),
            other => unreachable!("{other} is in METHODS"),
        })
    }

    /// The method `name` configured by its preset `preset` (`cm inspect config --preset`).
    pub fn from_preset(name: &str, preset: &str) -> anyhow::Result<Self> {
        let mut t = toml::Table::new();
        t.insert("name".into(), toml::Value::String(name.into()));
        t.insert("preset".into(), toml::Value::String(preset.into()));
        Self::from_table(t)
    }

    /// The registry name of this method.
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Edm(_) => "edm",
            MethodConfig::Cd(_) => "cd",
            MethodConfig::Ct(_) => "ct",
            MethodConfig::Ict(_) => "ict",
            MethodConfig::Ect(_) => "ect",
            MethodConfig::Ctm(_) => "ctm",
            MethodConfig::Trigflow(_) => "trigflow",
            MethodConfig::Sct(_) => "sct",
            MethodConfig::Scd(_) => "scd",
            MethodConfig::Facm(_) => "facm",
            MethodConfig::FacmAux(_) => "facm-aux",
            MethodConfig::Meanflow(_) => "meanflow",
        }
    }
}

impl Default for MethodConfig {
    fn default() -> Self {
        MethodConfig::Ict(ict::IctConfig::default())
    }
}

/// Names accepted by `--method`.
pub const METHODS: &[&str] = &[
    "ict", "ct", "cd", "ect", "ctm", "edm", "trigflow", "sct", "scd", "facm", "facm-aux", "meanflow",
];

impl MethodConfig {
    /// The default configuration of a method by name.
    pub fn by_name(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "edm" => MethodConfig::Edm(Default::default()),
            "cd" => MethodConfig::Cd(Default::default()),
            "ct" => MethodConfig::Ct(Default::default()),
            "ict" => MethodConfig::Ict(Default::default()),
            "ect" => MethodConfig::Ect(Default::default()),
            "ctm" => MethodConfig::Ctm(Default::default()),
            "trigflow" => MethodConfig::Trigflow(Default::default()),
            "sct" => MethodConfig::Sct(Default::default()),
            "scd" => MethodConfig::Scd(Default::default()),
            "facm" => MethodConfig::Facm(Default::default()),
            "facm-aux" => MethodConfig::FacmAux(Default::default()),
            "meanflow" => MethodConfig::Meanflow(Default::default()),
            other => anyhow::bail!("unknown method '{other}': expected one of {}", METHODS.join(", ")),
        })
    }

    /// The objective of this config for `dim`-dimensional samples (checks the data-dependent
    /// settings, e.g. a distance's image shape).
    pub fn build(&self, dim: usize) -> anyhow::Result<Box<dyn Objective>> {
        Ok(match self {
            MethodConfig::Edm(c) => Box::new(dsm::Dsm::new(c.clone())?),
            MethodConfig::Cd(c) => Box::new(cd::Cd::new(c.clone(), dim)?),
            MethodConfig::Ct(c) => Box::new(ct::Ct::new(c.clone(), dim)?),
            MethodConfig::Ict(c) => Box::new(ict::Ict::new(c.clone(), dim)?),
            MethodConfig::Ect(c) => Box::new(ect::Ect::new(c.clone(), dim)?),
            MethodConfig::Ctm(c) => Box::new(ctm::Ctm::new(c.clone(), dim)?),
            MethodConfig::Trigflow(c) => Box::new(scm::TrigFlowDsm::new(c.clone())?),
            MethodConfig::Sct(c) => Box::new(scm::Scm::new(c.clone(), false)?),
            MethodConfig::Scd(c) => Box::new(scm::Scm::new(c.clone(), true)?),
            MethodConfig::Facm(c) => Box::new(facm::Facm::new(c.clone(), false)?),
            MethodConfig::FacmAux(c) => Box::new(facm::Facm::new(c.clone(), true)?),
            MethodConfig::Meanflow(c) => Box::new(meanflow::MeanFlow::new(c.clone())?),
        })
    }

    /// Checks the method's settings that do not depend on the data (`Config::validate`); the
    /// data-dependent ones are checked by [`MethodConfig::build`] when the run is set up.
    pub fn validate(&self) -> anyhow::Result<()> {
        match self {
            MethodConfig::Edm(c) => c.validate(),
            MethodConfig::Cd(c) => c.validate(),
            MethodConfig::Ct(c) => c.validate(),
            MethodConfig::Ict(c) => c.validate(),
            MethodConfig::Ect(c) => c.validate(),
            MethodConfig::Ctm(c) => c.validate(),
            MethodConfig::Trigflow(c) => c.validate(),
            MethodConfig::Sct(c) | MethodConfig::Scd(c) => c.validate(),
            MethodConfig::Facm(c) | MethodConfig::FacmAux(c) => c.validate(),
            MethodConfig::Meanflow(c) => c.validate(),
        }
    }

    /// Points a distilling method at a teacher (ignored by methods that take none).
    pub fn set_teacher(&mut self, teacher: Teacher) {
        match self {
            MethodConfig::Cd(c) => c.teacher = teacher,
            MethodConfig::Ctm(c) => c.teacher = teacher,
            MethodConfig::Scd(c) => c.teacher = teacher,
            MethodConfig::Facm(c) | MethodConfig::FacmAux(c) => c.teacher = teacher,
            _ => {}
        }
    }

    /// The teacher setting of a method that can distil (None: the method takes no teacher;
    /// FACM's `Teacher::None` means it trains from data).
    pub fn teacher(&self) -> Option<&Teacher> {
        match self {
            MethodConfig::Cd(c) => Some(&c.teacher),
            MethodConfig::Ctm(c) => Some(&c.teacher),
            MethodConfig::Scd(c) => Some(&c.teacher),
            MethodConfig::Facm(c) | MethodConfig::FacmAux(c) => Some(&c.teacher),
            _ => None,
        }
    }

    /// The classifier-free guidance scale w the teacher is queried with (`method.guidance` of
    /// CD, CTM and sCD; 1 = none for every other method).
    pub fn teacher_guidance(&self) -> f64 {
        match self {
            MethodConfig::Cd(c) => c.guidance,
            MethodConfig::Ctm(c) => c.guidance,
            MethodConfig::Scd(c) => c.guidance,
            _ => 1.0,
        }
    }

    /// Sets the teacher's guidance scale w where the method has one (CD, CTM, sCD; see
    /// [`MethodConfig::teacher_guidance`]); false (and nothing changed) for the others.
    pub fn set_teacher_guidance(&mut self, w: f64) -> bool {
        match self {
            MethodConfig::Cd(c) => c.guidance = w,
            MethodConfig::Ctm(c) => c.guidance = w,
            MethodConfig::Scd(c) => c.guidance = w,
            _ => return false,
        }
        true
    }

    /// A trained run of this method as a teacher denoiser in EDM coordinates (AUDIT B4),
    /// given its model and (EMA) backbone weights: EDM, CTM (D_θ = g_θ(x, σ, σ)) and TrigFlow
    /// runs through [`crate::model::NetDenoiser`]; `facm` / `facm-aux` through their
    /// flow-matching branch ([`facm::FacmTeacher`]); `meanflow` through u(z, r = t, t)
    /// ([`meanflow::MeanFlowTeacher`]). Consistency-model runs (CD, CT, iCT, ECT, sCT, sCD)
    /// act through their consistency function, as before.
    pub fn teacher_denoiser(&self, model: Model, params: Vec<Tensor<1>>) -> std::sync::Arc<dyn Denoiser> {
        use std::sync::Arc;
        match self {
            MethodConfig::Facm(_) => Arc::new(facm::FacmTeacher {
                model,
                params,
                aux: false,
            }),
            MethodConfig::FacmAux(_) => Arc::new(facm::FacmTeacher {
                model,
                params,
                aux: true,
            }),
            MethodConfig::Meanflow(c) => Arc::new(meanflow::MeanFlowTeacher {
                model,
                params,
                inputs: c.time_inputs,
            }),
            _ => Arc::new(crate::model::NetDenoiser { model, params }),
        }
    }

    /// Whether the student starts from the teacher's weights when `cm demo` trains a teacher:
    /// CD (Song et al. 2023) and CTM (Kim-Dongjun/ctm-cifar10 resumes from an EDM-initialised
    /// checkpoint; its second time embedding starts at zero, so D_θ equals the teacher at step
    /// 0: AUDIT M6). `train.init_from` copies the matching tensors ([`crate::nets::transfer`]).
    pub fn starts_from_teacher(&self) -> bool {
        match self {
            MethodConfig::Cd(_) | MethodConfig::Ctm(_) => true,
            // sCD under the EDM network convention is its EDM teacher's network at step 0.
            MethodConfig::Scd(c) => c.net == scm::NetConvention::Edm,
            _ => false,
        }
    }

    /// Prepares a distilling method for an EDM teacher whose weights it can start from:
    /// sCD takes the EDM network convention ([`scm::NetConvention::Edm`]), under which the EDM
    /// network is exactly its TrigFlow model; other methods are unchanged. `cm demo` calls it
    /// before [`MethodConfig::starts_from_teacher`].
    pub fn adopt_edm_teacher(&mut self) {
        if let MethodConfig::Scd(c) = self {
            c.net = scm::NetConvention::Edm;
        }
    }

    /// Settings for a short fine-tune of a student that starts from its teacher's weights (the
    /// image demo: ~2000 steps in 12 minutes). sCD: the tangent warm-up H shortened from 1000 to
    /// 200 steps, the time distribution widened from ln σ ~ N(−1.0, 1.4²) (CIFAR-10's, for
    /// 400k steps) to N(0, 2²), so the high-noise end that one-step sampling starts from is
    /// trained (under the CIFAR draw only 0.9 % of samples have σ > 10), and the learning rate
    /// halved to 5e-5. Measured on MNIST from the shipped teacher, guidance 1.5, 1-step
    /// FD-mnistnet under the 10 000-sample protocol (README "Images"): at 1600 steps, 49.8 with
    /// the defaults, 12.9 with N(0, 2²), 3.52 with N(0, 2²) and H = 200 (N(1, 2²): 23.2; the
    /// public codes' RMS tangent normalisation with prior weighting: 209) — but at lr 1e-4
    /// that run collapsed between steps 1600 and 2000 (2000-sample FD 5.5 → 135), as did one
    /// with Adam β2 = 0.99 around step 1200; at lr 5e-5 it improves steadily to step 2400 and
    /// reads **3.31** at step 2000 (class agreement 0.981). It keeps a constant rate
    /// (`lr_cooldown` = 0): still improving at the budget's end, it gained nothing from the
    /// cool-down the image demo gives other methods (session 13, image demo: 1257 steps with
    /// the last 30 % cooling, 1-step 9.60 / 2-step 5.50; 1194 steps at a constant rate,
    /// 8.96 / 5.38).
    ///
    /// CTM: soft matching's teacher solve limited to k ≤ 2 grid steps (`max_k`, the official
    /// `num_heun_step`; 17 by default, P(k) ∝ k, i.e. ~12 guided Heun steps, ~47 teacher
    /// evaluations, per training step), the adaptive λ_DSM recomputed every 10 steps (moot
    /// since the DSM term is off, below: no adaptive weight is left to compute), every
    /// jump to s = ε (the official `sample_s_strategy = "smallest"`) and multistep sampling
    /// through ε (γ = 1). Measured (image demo, MNIST, guided teacher, 12 minutes, idle 2
    /// cores, 10 000 samples): with the defaults 141 steps, 1-step FD-mnistnet 378, 2-step
    /// 100; with k ≤ 2 and adaptive every 10, 580 steps, 366 / 40.1; with all of these, 517
    /// steps, 277 / 30.9 — far from CD's 3.09 in the same time; then without the DSM term
    /// (below), 708 steps, **9.0 / 2.95**; with the pseudo-Huber distance (session 17,
    /// below) and the identity outer jump of [`crate::model::ctm_jump`], 1296 steps, 4.12 / 3.12.
    ///
    /// CD: the pseudo-Huber distance of `configs/mnist-cd.toml` (below). Other methods are
    /// unchanged.
    pub fn fine_tune_from_teacher(&mut self, train: &mut crate::config::TrainConfig) {
        match self {
            MethodConfig::Scd(c) => {
                c.p_mean = 0.0;
                c.p_std = 2.0;
                c.tangent_warmup = 200;
                train.lr = 5e-5;
                train.lr_cooldown = 0.0;
            }
            // The shipped recipe's distance (configs/mnist-cd.toml, mnist-cd-guided: 1-step
            // FD-mnistnet 2.73 after 3000 steps): iCT's pseudo-Huber, whose gradient is the
            // unit direction of the error for errors above c, so rows far from their target do
            // not dominate the batch as they do under l2. Measured in the image demo (session
            // 17, README "Images"): 1-step 3.62 and 3.65 over two seeds, against l2's 3.09,
            // 4.29 and 4.52 over three earlier runs; 2-step 3.65 / 3.85 against 2.83-2.87.
            MethodConfig::Cd(c) => {
                c.distance = super::distance::Distance::PseudoHuber;
            }
            // No DSM term: the student starts as the teacher's denoiser with a zero
            // s-embedding, so g_θ(x, t, ε) and the DSM-trained g_θ(x, t, t) are one function
            // at first, and DSM (given the CTM term's gradient norm by the adaptive λ) holds
            // the one-step jump at the denoiser's class mean. Measured (session 14, the demo's
            // config through `cm train --max-seconds 720 --fit-to-budget`, idle 2 cores,
            // 10 000 samples): 1-step FD-mnistnet 277 -> 9.0, 2-step 30.9 -> 2.95 without it
            // (708 steps against 517). The official from-scratch runs keep it
            // (`diffusion_training`), as a CTM config for `cm train` does by default.
            MethodConfig::Ctm(c) => {
                c.dsm = false;
                // As CD's fine-tune above. Measured (session 17): 1-step 4.86 -> 4.12, 2-step
                // 2.80 -> 3.12 (1250 and 1296 steps).
                c.distance = super::distance::Distance::PseudoHuber;
                c.max_k = 2;
                c.adaptive_every = 10;
                c.s_strategy = super::ctm::SStrategy::Smallest;
                c.gamma = 1.0;
            }
            _ => {}
        }
    }

    /// One training step's network work in forward passes of the backbone, for `cm bench`'s
    /// FLOP counts ([`crate::nets::Backbone::forward_flops`] × batch × this): a backward pass
    /// costs two forwards (gradients of activations and of weights), a tangent (JVP) pass
    /// one. None where the step is not a fixed multiple (the rest: teacher solves, auxiliary
    /// heads, GAN terms are not counted rather than guessed).
    pub fn step_passes(&self) -> Option<f64> {
        match self {
            // The stop-gradient target's forward (1), the student's forward (1) and its
            // backward (2): iCT's θ⁻ = sg θ and ECT's both evaluate the one network twice.
            // PyTorch's FlopCounterMode on the U-Net twins' iCT step counts 0.08 % less
            // (19.539 against 19.554 GFLOP at batch 64: no input gradient for the first
            // convolution), `bench/pytorch/bench_unet.py --flops`.
            MethodConfig::Ict(_) | MethodConfig::Ect(_) => Some(4.0),
            // One denoiser forward and its backward.
            MethodConfig::Edm(_) => Some(3.0),
            // sCT: the JVP of the stop-gradient model (value + tangent, 2), then the student's
            // forward (1) and backward (2) (Lu & Song 2024, Algorithm 1).
            MethodConfig::Sct(_) => Some(5.0),
            _ => None,
        }
    }

    /// Backbone settings the method's paper recommends, applied to a demo MLP config: sCM and
    /// TrigFlow use scale-shift modulation with adaptive double normalisation.
    pub fn recommend_model(&self, m: &mut crate::nets::mlp::MlpConfig) {
        if let MethodConfig::Sct(_) | MethodConfig::Scd(_) | MethodConfig::Trigflow(_) = self {
            m.modulation = crate::nets::mlp::Modulation::ScaleShift;
            m.double_norm = true;
        }
    }
}
