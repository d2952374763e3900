//! The GPU code path against the CPU one: `cargo test --release --features wgpu --test gpu`.
//!
//! Why a separate test target: it needs the `wgpu` feature (a second build of the burn stack),
//! so the default `cargo test --release` skips it (`required-features` in Cargo.toml); CI
//! (`.ci/run`) runs it on Mesa's lavapipe, a Vulkan implementation on the CPU, so the wgpu
//! backend, burn's op fallbacks of the custom CPU kernels (src/nets/kernels/) and the device
//! plumbing are exercised on every run without a GPU. On a machine with a GPU the same tests
//! run on it.
//!
//! Each test trains the same config with the same seed on both devices and compares the
//! per-step losses. The random draws are made on the host by the run's one RNG, so both
//! devices see the same noise; what differs is only the order of floating-point sums
//! (matmul, convolution and reductions are tiled differently), which grows over steps through
//! Adam. Hence a tolerance: [`LOSS_RTOL`] relative on each of the first steps' losses.

use burn::prelude::*;
use cm::config::{Config, ModelConfig};
use cm::objectives::MethodConfig;
use cm::run::Setup;
use cm::train::Trainer;
use std::path::PathBuf;

/// Relative tolerance on a step's loss, GPU against CPU, over the first [`STEPS`] steps.
/// Float32 sums in a different order differ by ~1e-7 relative per operation, and Adam's
/// normalised update can amplify tiny gradient differences over steps. Measured on lavapipe
/// (this file's printed table, every method and the U-Net): at most 4.3e-7. 1e-5 leaves over
/// 20x of margin and is far below a real defect (a wrong op changes the loss by > 1 %).
const LOSS_RTOL: f64 = 1e-5;

/// Steps trained on each device per method.
const STEPS: u64 = 4;

fn gpu() -> Device {
    cm::cli::device("wgpu").expect("a wgpu build")
}

/// The small 2-D config of the CPU tests (tests/it/common.rs's `small_cfg`): MLP hidden 64,
/// depth 2, on ring8, here with batch 64 to keep lavapipe quick.
fn small_cfg(method: &str) -> Config {
    let mut c = Config::default();
    c.data.name = "ring8".into();
    c.data.batch = 64;
    let ModelConfig::Mlp(m) = &mut c.model else {
        unreachable!("the default model is an MLP")
    };
    m.hidden = 64;
    m.depth = 2;
    c.method = MethodConfig::by_name(method).unwrap();
    c.train.steps = STEPS;
    c.train.seed = 7;
    c
}

/// The U-Net of `cm bench` (base 16, levels [1, 2], no attention) on the committed 256-image
/// MNIST fixture, batch 8.
fn image_cfg(method: &str) -> Config {
    let mut c = cm::bench::unet_config();
    c.data.name = format!("idx:{}", fixture("mnist-t10k-256-images-idx3-ubyte").display());
    c.data.batch = 8;
    c.method = MethodConfig::by_name(method).unwrap();
    c.train.steps = 2;
    c.train.seed = 7;
    c
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Losses of `cfg.train.steps` steps on `device`.
fn losses(cfg: &Config, device: &Device) -> Vec<f64> {
    let mut t = Trainer::new(Setup::new(cfg, device).unwrap()).unwrap();
    (0..cfg.train.steps).map(|_| t.step().loss).collect()
}

/// Trains `cfg` on both devices and asserts every step's loss agrees within [`LOSS_RTOL`].
fn same_on_both(what: &str, cfg: &Config) {
    let cpu = losses(cfg, &Device::flex());
    let gpu = losses(cfg, &gpu());
    let worst = cpu
        .iter()
        .zip(&gpu)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1e-12))
        .fold(0.0f64, f64::max);
    eprintln!(
        "{what:<24} cpu {cpu:?}\n{:<24} gpu {gpu:?}  worst relative difference {worst:.2e}",
        ""
    );
    for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        assert!(
            a.is_finite() && b.is_finite(),
            "{what}: step {k} loss not finite: cpu {a}, gpu {b}"
        );
        assert!(
            (a - b).abs() <= LOSS_RTOL * a.abs().max(1e-12),
            "{what}: step {k} loss on wgpu {b} differs from the CPU's {a} by more than {LOSS_RTOL} relative"
        );
    }
}

/// One method per family on 2-D data: consistency training and distillation (iCT, CT, CD),
/// ECT, CTM, the diffusion teacher (EDM), the continuous-time ones with a JVP pass (sCT,
/// TrigFlow), FACM and MeanFlow.
#[test]
fn every_method_family_trains_alike_on_wgpu_and_cpu_2d() {
    for m in [
        "ict", "ct", "cd", "ect", "ctm", "edm", "trigflow", "sct", "facm", "meanflow",
    ] {
        same_on_both(m, &small_cfg(m));
    }
}

/// The U-Net (convolutions, GroupNorm, up/down-sampling: the custom CPU kernels' burn
/// fallbacks on the GPU) on the image fixture, iCT and sCT (the U-Net's tangent pass).
#[test]
fn unet_trains_alike_on_wgpu_and_cpu_on_the_image_fixture() {
    for m in ["ict", "sct"] {
        same_on_both(&format!("unet {m}"), &image_cfg(m));
    }
}

/// `cm sample --device wgpu` on a run trained on the CPU gives the CPU's samples within float
/// tolerance (the noise is drawn on the host, per sample).
#[test]
fn cm_sample_on_wgpu_matches_cpu() {
    let dir = std::env::temp_dir().join(format!("cm-gpu-{}-sample", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    let mut cfg = small_cfg("ict");
    cfg.train.steps = 3;
    cfg.train.ckpt_every = 3;
    cm::train::run(&cfg, &cm::train::RunOptions::new(&run), &Device::flex()).unwrap();
    let draw = |device: &str| {
        let out = dir.join(format!("{device}.npy"));
        cm::cli::sample(cm::cli::SampleArgs {
            run: run.clone(),
            n: 300,
            steps: 2,
            seed: 3,
            out: out.clone(),
            online: false,
            times: None,
            gamma: None,
            ode: None,
            batch: 128,
            class: None,
            guidance: 1.0,
            force: false,
            device: device.into(),
        })
        .unwrap();
        cm::data::files::load_points(&out).unwrap()
    };
    let (cpu, d) = draw("cpu");
    let (gpu, d2) = draw("wgpu");
    assert_eq!((d, cpu.len()), (d2, gpu.len()));
    assert_eq!(cpu.len(), 300 * 2);
    let worst = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max);
    eprintln!("cm sample: worst absolute difference wgpu vs cpu {worst:.2e}");
    // Samples are O(1) in data units; 1e-3 absolute is far above float32 reordering and far
    // below a wrong sampler (whose samples differ by O(1)).
    assert!(worst < 1e-3, "cm sample on wgpu differs from cpu by {worst}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GPU device that cannot start is a clear error, not a backend panic: `cm sample --device
/// wgpu` with no driver visible exits with a message that names the device and what it needs,
/// and writes nothing. wgpu tries Vulkan, then OpenGL through EGL (cubecl-wgpu's
/// `AutoGraphicsApi::chain`), so both are hidden: the Vulkan loader's driver list
/// (`VK_ICD_FILENAMES`, and `VK_DRIVER_FILES` of newer loaders) and glvnd's EGL vendor list
/// (`__EGL_VENDOR_LIBRARY_FILENAMES`) name a file that does not exist. Hiding only Vulkan is
/// not enough where Mesa's EGL is installed: measured here, wgpu then came up on llvmpipe's
/// OpenGL and sampled.
#[test]
fn a_device_that_cannot_start_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("cm-gpu-{}-nodev", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    let mut cfg = small_cfg("ict");
    cfg.train.steps = 2;
    cfg.train.ckpt_every = 2;
    cm::train::run(&cfg, &cm::train::RunOptions::new(&run), &Device::flex()).unwrap();
    let out = dir.join("s.npy");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cm"))
        .args(["sample", run.to_str().unwrap(), "--n", "4", "--device", "wgpu", "--out"])
        .arg(&out)
        .env("VK_ICD_FILENAMES", dir.join("no-such-icd.json"))
        .env("VK_DRIVER_FILES", dir.join("no-such-icd.json"))
        .env_remove("VK_ADD_DRIVER_FILES")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", dir.join("no-such-egl-vendor.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{err}");
    assert!(!o.status.success(), "started without a driver: {err}");
    assert!(
        err.contains("--device wgpu") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "a backend panic reached the user: {err}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
