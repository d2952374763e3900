//! Experiment configuration: TOML with documented defaults; unknown fields are rejected.
//!
//! ```toml
//! [data]
//! name = "ring8"        # built-in (see `cm inspect data`) or a .csv/.npy path
//! batch = 512
//!
//! [model]               # backbone; kind = "mlp" (default)
//! hidden = 512
//! depth = 3
//!
//! [method]              # the objective; name selects it, the rest are its own fields
//! name = "ict"
//!
//! [train]
//! steps = 4000
//! lr = 1e-3
//! ```

use crate::nets::mlp::MlpConfig;
use crate::nets::unet::UnetConfig;
use crate::objectives::MethodConfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A whole experiment: what data, which network, which method, how to train.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The `[data]` table.
    pub data: DataConfig,
    /// The `[model]` table: the backbone F_θ.
    pub model: ModelConfig,
    /// The `[method]` table: the objective, selected by `name` (default `ict`).
    pub method: MethodConfig,
    /// The `[train]` table: optimiser, steps, EMA, logging and checkpoints.
    pub train: TrainConfig,
}

/// The `[data]` table: the data set and how batches are drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Built-in distribution name (`cm inspect data`), a `.csv` / `.npy` file of points, or an
    /// image source (`mnist:DIR`, `fashion-mnist:DIR`, `idx:FILE`, `folder:DIR`, `npy:FILE`).
    /// Default `ring8`.
    pub name: String,
    /// Samples per training step, B (default 512).
    pub batch: usize,
    /// σ_d, the data's standard deviation in the parameterisation (EDM, Karras et al. 2022);
    /// 0 (default) = automatic: 0.5 for images in [-1, 1], else 1 (the standardised data's).
    pub sigma_d: f64,
    /// Images: random horizontal flips (default false).
    pub hflip: bool,
    /// `folder:` images: side length in pixels after centre crop and resize (default 32).
    pub image_size: usize,
    /// `folder:` images: convert to grey, else RGB (default false).
    pub grey: bool,
    /// `mnist:` / `fashion-mnist:`: use the test split (t10k) instead of training (default false).
    pub test_split: bool,
}

impl DataConfig {
    /// The image-loading options of this table.
    pub fn image_options(&self) -> crate::data::ImageOptions {
        crate::data::ImageOptions {
            hflip: self.hflip,
            size: self.image_size,
            grey: self.grey,
            test_split: self.test_split,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            name: "ring8".into(),
            batch: 512,
            sigma_d: 0.0,
            hflip: false,
            image_size: 32,
            grey: false,
            test_split: false,
        }
    }
}

/// The backbone: `kind` selects it (default `mlp`), the other fields are its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// `kind = "mlp"`: the residual MLP for points (2-D and N-D data).
    Mlp(MlpConfig),
    /// `kind = "unet"`: the image U-Net (ADM/NCSN++-style, optionally class-conditional).
    Unet(UnetConfig),
}

/// `kind` may be omitted (serde's internally tagged enums cannot default their tag), so the
/// table is read generically, `kind` taken out, and the rest parsed strictly by the variant.
impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("kind") {
            None => "mlp".to_string(),
            Some(toml::Value::String(s)) => s,
            Some(other) => return Err(D::Error::custom(format!("model.kind must be a string, got {other}"))),
        };
        match kind.as_str() {
            "mlp" => MlpConfig::deserialize(toml::Value::Table(table))
                .map(ModelConfig::Mlp)
                .map_err(D::Error::custom),
            "unet" => UnetConfig::deserialize(toml::Value::Table(table))
                .map(ModelConfig::Unet)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "unknown model.kind '{other}': expected mlp or unet"
            ))),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp(MlpConfig::default())
    }
}

impl ModelConfig {
    /// The backbone registry: builds the network of this config for `dim`-dimensional samples
    /// with `n_times` time inputs (`seed` fixes its Fourier frequencies).
    pub fn build(
        &self,
        dim: usize,
        n_times: usize,
        seed: u64,
    ) -> anyhow::Result<std::sync::Arc<dyn crate::nets::Backbone>> {
        Ok(match self {
            ModelConfig::Mlp(m) => std::sync::Arc::new(crate::nets::mlp::Mlp::new(m, dim, n_times, seed)),
            ModelConfig::Unet(u) => std::sync::Arc::new(crate::nets::unet::Unet::new(u, dim, n_times, seed)?),
        })
    }

    /// Number of classes of a class-conditional backbone (`model.classes`; 0 = unconditional).
    pub fn classes(&self) -> usize {
        match self {
            ModelConfig::Mlp(_) => 0,
            ModelConfig::Unet(u) => u.classes,
        }
    }

    /// Probability that a training label is replaced by "no class" (`model.class_dropout`).
    pub fn class_dropout(&self) -> f64 {
        match self {
            ModelConfig::Mlp(_) => 0.0,
            ModelConfig::Unet(u) => u.class_dropout,
        }
    }
}

/// The optimiser of the online weights ([`crate::train::optim::adam_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam (Kingma & Ba 2015), the consistency-model papers' optimiser.
    Adam,
    /// RAdam (Liu et al. 2020): Adam with its early adaptive steps rectified; the default here
    /// because it needs no learning-rate warm-up on the short runs this toolkit targets.
    Radam,
}

/// The `[train]` table: optimiser, length, EMA, logging and checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps K of the run (default 4000); curricula are functions of k/K.
    pub steps: u64,
    /// Learning rate η (default 1e-3).
    pub lr: f64,
    /// Linear learning-rate warm-up, in steps (default 0 = none).
    pub warmup: u64,
    /// EDM2's inverse-square-root decay (Karras et al. 2024, t_ref in steps): after the
    /// warm-up the learning rate is η/√max(k/t_ref, 1); default 0 = constant η. A constant
    /// rate left a class-conditional MNIST teacher's FD-mnistnet wandering between
    /// checkpoints (README "Ready models").
    pub lr_decay: u64,
    /// Linear cool-down: the share c of the run, at its end, over which the learning rate
    /// falls linearly to zero (the "warmup-stable-decay" schedule, Hägele et al. 2024); step k
    /// of K gets its rate times min(1, (K − k) / (c·K)). Default 0 = none. Measured on the 2-D
    /// demo (README "Which method"): the last steps at full rate leave the weights jittering
    /// around the optimum, which the 1-step SWD sees.
    pub lr_cooldown: f64,
    /// Rows per forward/backward pass (EDM's `--batch-gpu`): the optimizer batch `data.batch`
    /// is split into micro-batches of this many rows whose gradients are summed before the one
    /// optimizer step, so activations are held for one micro-batch at a time. Each sample gets
    /// the noise, time and dropout mask it would get in the whole batch, so the run does not
    /// depend on it beyond float summation order (tested). Default 0 = the whole batch at once.
    pub micro_batch: usize,
    /// `adam` or `radam` (default).
    pub optimizer: Optimizer,
    /// Adam's β1, the first-moment decay (default 0.9).
    pub beta1: f64,
    /// Adam's β2, the second-moment decay (default 0.999).
    pub beta2: f64,
    /// Adam's ε in the denominator (default 1e-8).
    pub adam_eps: f64,
    /// Global gradient-norm clip: gradients are scaled to at most this L2 norm over all
    /// tensors together (default 1; 0 = off).
    pub grad_clip: f64,
    /// Decay μ of the evaluation EMA of the online weights, applied every step (default
    /// 0.999); distinct from a method's target network θ⁻. With `ema_rampup` > 0 it is the
    /// longest the EMA gets: its half-life ln ½ / ln μ in steps (693 for 0.999) caps the ramp.
    pub eval_ema: f64,
    /// EMA ramp-up ratio r (EDM, Karras et al. 2022, `ema_rampup_ratio`; default 0 = off): the
    /// evaluation EMA's half-life after k steps is min(r·k, ln ½ / ln `eval_ema`) steps, i.e.
    /// μ_k = ½^(1 / half-life). A fixed μ = 0.999 still holds 0.999^k of the initial weights
    /// (22 % after 1500 steps); with r = 0.05 the average covers about the last 5 % of the run
    /// at any length. The demos and image recipes set it (chosen by measurement, README).
    pub ema_rampup: f64,
    /// Seed of the run's one random generator (default 0): the same seed gives the same run.
    pub seed: u64,
    /// Log every this many steps (default 50): one JSONL line with the mean loss since.
    pub log_every: u64,
    /// Checkpoint every N steps (and at the end); default 1000.
    pub ckpt_every: u64,
    /// Checkpoints kept on disk, oldest removed first (default 3).
    pub keep_ckpts: usize,
    /// Consecutive non-finite steps after which the run stops with its last good weights
    /// (default 100).
    pub max_bad_steps: u64,
    /// Start from the EMA weights of this run folder or checkpoint (e.g. CD from its teacher);
    /// empty (default) = from the seed.
    pub init_from: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 4000,
            lr: 1e-3,
            warmup: 0,
            lr_decay: 0,
            lr_cooldown: 0.0,
            micro_batch: 0,
            optimizer: Optimizer::Radam,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            grad_clip: 1.0,
            eval_ema: 0.999,
            ema_rampup: 0.0,
            seed: 0,
            log_every: 50,
            ckpt_every: 1000,
            keep_ckpts: 3,
            max_bad_steps: 100,
            init_from: String::new(),
        }
    }
}

impl Config {
    /// Parses and validates a config from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("invalid config: {}", e.to_string().trim()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The config as TOML (what a run folder's `config.toml` and every checkpoint hold).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// This config with a partial config put over it: tables merge key by key, any other value
    /// replaces the one below; the result is parsed and validated as a whole, so an unknown
    /// or misspelt field in `over` is an error naming it. How `cm demo --compare` runs a
    /// variant file over a method's demo config.
    pub fn with_overrides(&self, over: &toml::Table) -> Result<Self> {
        fn merge(base: &mut toml::Table, over: &toml::Table) {
            for (k, v) in over {
                match (base.get_mut(k), v) {
                    (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
                    _ => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut base: toml::Table = toml::from_str(&self.to_toml()).expect("a config's TOML parses");
        merge(&mut base, over);
        Self::from_toml(&toml::to_string(&base).expect("a TOML table serialises"))
    }

    /// Checks every setting that does not depend on the data, naming the field; settings that
    /// need the data's dimension (a distance's image shape) are checked by
    /// [`crate::run::Setup::new`].
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            self.data.batch >= 1,
            "data.batch must be at least 1, got {}",
            self.data.batch
        );
        anyhow::ensure!(
            self.data.sigma_d >= 0.0,
            "data.sigma_d must be non-negative, got {}",
            self.data.sigma_d
        );
        let t = &self.train;
        anyhow::ensure!(t.steps >= 1, "train.steps must be at least 1");
        anyhow::ensure!(
            t.lr > 0.0 && t.lr.is_finite(),
            "train.lr must be positive, got {}",
            t.lr
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&t.lr_cooldown),
            "train.lr_cooldown must be a share of the run in [0, 1], got {}",
            t.lr_cooldown
        );
        anyhow::ensure!(
            t.micro_batch <= self.data.batch,
            "train.micro_batch ({}) must not exceed data.batch ({}): it is the rows of one pass of \
             the batch's gradient accumulation (0 = the whole batch)",
            t.micro_batch,
            self.data.batch
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&t.beta1),
            "train.beta1 must be in [0, 1), got {}",
            t.beta1
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&t.beta2),
            "train.beta2 must be in [0, 1), got {}",
            t.beta2
        );
        anyhow::ensure!(t.adam_eps > 0.0, "train.adam_eps must be positive");
        anyhow::ensure!(
            t.grad_clip >= 0.0,
            "train.grad_clip must be non-negative, got {}",
            t.grad_clip
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&t.eval_ema),
            "train.eval_ema must be in [0, 1), got {}",
            t.eval_ema
        );
        anyhow::ensure!(
            t.ema_rampup >= 0.0 && t.ema_rampup.is_finite(),
            "train.ema_rampup must be a non-negative number, got {}",
            t.ema_rampup
        );
        anyhow::ensure!(t.log_every >= 1, "train.log_every must be at least 1");
        anyhow::ensure!(t.ckpt_every >= 1, "train.ckpt_every must be at least 1");
        anyhow::ensure!(t.keep_ckpts >= 1, "train.keep_ckpts must be at least 1");
        anyhow::ensure!(t.max_bad_steps >= 1, "train.max_bad_steps must be at least 1");
        // TOML integers are signed 64-bit: larger values could not be stored with the run.
        for (name, v) in [
            ("train.steps", t.steps),
            ("train.warmup", t.warmup),
            ("train.lr_decay", t.lr_decay),
            ("train.seed", t.seed),
            ("train.log_every", t.log_every),
            ("train.ckpt_every", t.ckpt_every),
            ("train.max_bad_steps", t.max_bad_steps),
            ("train.keep_ckpts", t.keep_ckpts as u64),
            ("data.batch", self.data.batch as u64),
        ] {
            anyhow::ensure!(
                v <= i64::MAX as u64,
                "{name} must be at most {} (a TOML integer), got {v}",
                i64::MAX
            );
        }
        match &self.model {
            ModelConfig::Mlp(m) => m.validate()?,
            ModelConfig::Unet(u) => u.validate()?,
        }
        self.method.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A distance that needs image-shaped samples is checked where the data's dimension is
    /// known ([`crate::run::Setup::new`]), not when the TOML is read: `lpips-native` used to be
    /// rejected for every config because validation built the objective with a placeholder
    /// dimension of 1 (REVIEW.md §8).
    #[test]
    fn image_distances_validate_without_the_data() {
        for d in ["lpips", "lpips-native"] {
            let c = Config::from_toml(&format!("[method]\nname = \"cd\"\ndistance = \"{d}\"\n"));
            assert!(c.is_ok(), "{d}: {:#}", c.unwrap_err());
        }
    }

    #[test]
    fn defaults_roundtrip_through_toml() {
        let c = Config::default();
        let back = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!(c, back);
        let mut u = Config::default();
        u.model = ModelConfig::Unet(UnetConfig::default());
        assert_eq!(Config::from_toml(&u.to_toml()).unwrap(), u);
        for m in crate::objectives::METHODS {
            let mut c = Config::default();
            c.method = MethodConfig::by_name(m).unwrap();
            assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c, "{m}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        for (text, field) in [
            ("[train]\nstepz = 3\n", "stepz"),
            ("[data]\nbatchsize = 3\n", "batchsize"),
            ("[model]\nhiden = 3\n", "hiden"),
            ("[method]\nname = \"ict\"\ns00 = 3\n", "s00"),
            ("[extra]\n", "extra"),
        ] {
            let e = format!("{:#}", Config::from_toml(text).unwrap_err());
            assert!(e.contains(field), "{text}: {e}");
        }
        let e = format!("{:#}", Config::from_toml("[model]\nkind = \"cnn\"\n").unwrap_err());
        assert!(e.contains("cnn"), "{e}");
        let e = format!("{:#}", Config::from_toml("[method]\nname = \"ictt\"\n").unwrap_err());
        assert!(e.contains("ictt"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_by_name() {
        let e = format!("{:#}", Config::from_toml("[train]\nlr = -1.0\n").unwrap_err());
        assert!(e.contains("train.lr"), "{e}");
        let e = format!("{:#}", Config::from_toml("[model]\ndropout = 1.5\n").unwrap_err());
        assert!(e.contains("model.dropout"), "{e}");
        let e = format!(
            "{:#}",
            Config::from_toml("[model]\nkind = \"unet\"\nmults = []\n").unwrap_err()
        );
        assert!(e.contains("model.mults"), "{e}");
        let e = format!(
            "{:#}",
            Config::from_toml("[model]\nkind = \"unet\"\nhidden = 3\n").unwrap_err()
        );
        assert!(e.contains("hidden"), "{e}");
        let e = format!("{:#}", Config::from_toml("[data]\nbatch = 0\n").unwrap_err());
        assert!(e.contains("data.batch"), "{e}");
    }
}
