//! Tests of the continuous-time methods (sCT, sCD, TrigFlow, FACM, MeanFlow): boundary
//! conditions, and short training runs that must beat the untrained model by a measured margin.

use super::*;
use crate::config::{Config, ModelConfig};
use crate::demo::{demo_config, evaluate};
use crate::nets::init_params;
use crate::train::{Setup, Trainer};

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
    assert_eq!(crate::nets::to_vec(y), crate::nets::to_vec(x));
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
    assert_eq!(crate::nets::to_vec(a), crate::nets::to_vec(b));
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
    let before = crate::demo::consistency_error(&setup, &init[..setup.n_net], &gmm, 512, 1);
    let t = train(&cfg);
    let after = crate::demo::consistency_error(&t.setup, t.online_net(), &gmm, 512, 1);
    eprintln!("scd gmm1d consistency error: untrained {before:.4}, trained {after:.4}");
    // Measured (300 steps, hidden 128, batch 256): 0.740 → 0.499.
    assert!(after < 0.8 * before, "consistency error {after} vs untrained {before}");
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
    let cfg = Config::from_toml("[method]\nname = \"sct\"\njvp = \"finite-difference\"\ntangent_warmup = 0\n").unwrap();
    let MethodConfig::Sct(fd_cfg) = cfg.method.clone() else {
        panic!("not sct")
    };
    assert_eq!(fd_cfg.jvp, crate::nets::JvpMode::FiniteDifference);
    let exact = scm::Scm::new(
        scm::ScmConfig {
            jvp: crate::nets::JvpMode::Exact,
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
    let (a, b) = (crate::nets::to_vec64(a), crate::nets::to_vec64(b));
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let den: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(num / den < 1e-3, "relative difference {}", num / den);
}
