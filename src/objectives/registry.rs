//! The registry of methods: the one place that matches on a method's name. A new method adds
//! its file, a variant here, and one arm in each `match` below.

use super::*;

/// The method section of a config: the registry of methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum MethodConfig {
    /// EDM diffusion teacher by denoising score matching.
    Edm(dsm::DsmConfig),
    Cd(cd::CdConfig),
    Ct(ct::CtConfig),
    Ict(ict::IctConfig),
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
    Meanflow(meanflow::MeanFlowConfig),
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

    /// Whether the student starts from the teacher's weights (same backbone and time input).
    pub fn starts_from_teacher(&self) -> bool {
        matches!(self, MethodConfig::Cd(_))
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
