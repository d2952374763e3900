//! Regression tests of `../shared/docs/AUDIT.md`, named after their findings
//! (`cargo test --release audit_` runs them all, with the unit tests of the same names in the
//! library).

use crate::common::*;
use burn::prelude::*;
use cm::objectives::MethodConfig;
use cm::process::Denoiser;
use cm::rng::Rng;
use cm::tensor::to_vec64;

/// A trained run of `method` (one step on ring8) loaded back as (setup, EMA backbone weights),
/// and the same run as a teacher through `run::load_teacher`.
fn run_as_teacher(
    method: &str,
    name: &str,
) -> (
    cm::run::Setup,
    Vec<Tensor<1>>,
    std::sync::Arc<dyn cm::process::Denoiser>,
    std::path::PathBuf,
) {
    let dir = scratch(name);
    let mut cfg = small_cfg(method, 3, 1);
    cfg.train.ckpt_every = 1;
    train_fresh(&cfg, &dir);
    let (_, setup, state) = cm::run::load_run(&dir, &dev()).unwrap();
    let p = state.ema[..setup.n_net].to_vec();
    let teacher = cm::run::load_teacher(&dir, &setup.standardizer, &dev()).unwrap();
    (setup, p, teacher, dir)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// B4: a `facm` run used as a teacher is a flow-matching denoiser through its FM branch, the
/// time input 2 − t (FACM's expanded interval): with t = 1/(1 + σ), x_t = t·x_EDM,
/// D(x, σ) = x_t + (1 − t)·F(x_t, 2 − t). Before the fix the CM branch F(x_t, t) was used.
#[test]
fn audit_b4_facm_teacher_uses_the_flow_branch() {
    let (setup, p, teacher, dir) = run_as_teacher("facm", "audit-b4-facm");
    let dev = dev();
    let x = Rng::new(1).normal_tensor([64, 2], &dev).mul_scalar(2.0);
    let sigma: Vec<f64> = (0..64).map(|i| 0.01 * 1.12f64.powi(i)).collect();
    let t: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s)).collect();
    let xt = x.clone() * cm::tensor::col(&t, &x);
    let fm: Vec<f64> = t.iter().map(|t| 2.0 - t).collect();
    let v = setup.model.eval(&p, xt.clone(), &fm, &[], None);
    let one_m: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
    let want = to_vec64(xt + v * cm::tensor::col(&one_m, &x));
    let got = to_vec64(teacher.denoise(x, &sigma));
    let err = max_abs_diff(&got, &want);
    assert!(err < 1e-5, "facm teacher: max |D − D_FM| = {err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// B4: `facm-aux` (FM at the time pair (t, t)) and `meanflow` runs (instantaneous velocity
/// u(z, r = t, t), MeanFlow's time t = σ/(1 + σ) with t = 0 data, z = x/(1 + σ),
/// x0 = z − t·u) work as teachers instead of panicking on a missing time input.
#[test]
fn audit_b4_two_time_flow_teachers_denoise() {
    let dev = dev();
    let x = Rng::new(2).normal_tensor([32, 2], &dev);
    let sigma: Vec<f64> = (0..32).map(|i| 0.02 * 1.2f64.powi(i)).collect();
    // facm-aux: x_t = t·x_EDM with t = 1/(1 + σ); v = F(x_t, t, r = t); x0 = x_t + (1 − t)·v.
    let (setup, p, teacher, dir) = run_as_teacher("facm-aux", "audit-b4-facm-aux");
    let t: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s)).collect();
    let xt = x.clone() * cm::tensor::col(&t, &x);
    let v = setup.model.eval(&p, xt.clone(), &t, &[&t], None);
    let one_m: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
    let want = to_vec64(xt + v * cm::tensor::col(&one_m, &x));
    let err = max_abs_diff(&to_vec64(teacher.denoise(x.clone(), &sigma)), &want);
    assert!(err < 1e-5, "facm-aux teacher: {err}");
    let _ = std::fs::remove_dir_all(dir);
    // meanflow: the default conditioning is (t, h = t − r), so r = t gives (t, 0).
    let (setup, p, teacher, dir) = run_as_teacher("meanflow", "audit-b4-meanflow");
    let MethodConfig::Meanflow(mf) = &setup.cfg.method else {
        unreachable!()
    };
    let t: Vec<f64> = sigma.iter().map(|s| s / (1.0 + s)).collect();
    let inv: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s)).collect();
    let z = x.clone() * cm::tensor::col(&inv, &x);
    let (a, b) = mf.time_inputs.pair(&t, &t);
    let u = setup.model.eval(&p, z.clone(), &a, &[&b], None);
    let want = to_vec64(z - u * cm::tensor::col(&t, &x));
    let err = max_abs_diff(&to_vec64(teacher.denoise(x, &sigma)), &want);
    assert!(err < 1e-5, "meanflow teacher: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// B5 (already fixed on main): each parameter set's Adam step count equals its own number of
/// updates: with CTM + GAN from `gan_start` = 3, 6 steps give the backbone 6 updates and the
/// discriminator 3; with Adam, the discriminator's first update has norm lr·√(#params) at most
/// (its moments start fresh at its first real step).
#[test]
fn audit_b5_ctm_gan_adam_counts_are_per_parameter_set() {
    let dir = scratch("audit-b5");
    let mut cfg = small_cfg("ctm", 5, 6);
    let MethodConfig::Ctm(c) = &mut cfg.method else {
        unreachable!()
    };
    c.gan = true;
    c.gan_start = 3;
    c.disc_hidden = 16;
    cfg.data.batch = 32;
    let t = train_fresh(&cfg, &dir);
    let n_net = t.setup.n_net;
    let net_counts: Vec<u64> = t.state.adam_t[..n_net]
        .iter()
        .zip(&t.setup.specs)
        .filter(|(_, s)| s.trainable)
        .map(|(&k, _)| k)
        .collect();
    assert!(net_counts.iter().all(|&k| k == 6), "backbone counts {net_counts:?}");
    assert!(
        t.state.adam_t[n_net..].iter().all(|&k| k == 3),
        "disc counts {:?}",
        &t.state.adam_t[n_net..]
    );
    // The first discriminator update under Adam: at most lr per element.
    let mut cfg = cfg.clone();
    cfg.train.optimizer = cm::config::Optimizer::Adam;
    cfg.train.steps = 4;
    let init = cm::train::Trainer::new(cm::run::Setup::new(&cfg, &dev()).unwrap()).unwrap();
    let t = train_fresh(&cfg, &scratch("audit-b5-adam"));
    let (mut sq, mut n) = (0.0f64, 0usize);
    for i in n_net..t.state.online.len() {
        let a = to_vec64(t.state.online[i].clone());
        let b = to_vec64(init.state.online[i].clone());
        sq += a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
        n += a.len();
    }
    let bound = cfg.train.lr * (n as f64).sqrt() * (1.0 + 1e-6);
    assert!(sq.sqrt() <= bound, "first discriminator update {} > {bound}", sq.sqrt());
    assert!(sq.sqrt() > 0.5 * bound, "the discriminator did update: {}", sq.sqrt());
    let _ = std::fs::remove_dir_all(dir);
}

/// M6: CTM started from an EDM run copies the matching tensors and zero-initialises the rows
/// of the second time embedding, so D_θ(x, σ) = g_θ(x, σ, σ) equals the teacher's D at step 0;
/// ECT with `scaling = "edm"` equals it too (same backbone and scalings).
#[test]
fn audit_m6_ctm_and_ect_start_as_the_teacher() {
    let dir = scratch("audit-m6");
    let edm = dir.join("edm");
    let mut tcfg = small_cfg("edm", 1, 2);
    tcfg.train.ckpt_every = 1;
    train_fresh(&tcfg, &edm);
    let (_, tsetup, tstate) = cm::run::load_run(&edm, &dev()).unwrap();
    let teacher = cm::model::NetDenoiser {
        model: tsetup.model.clone(),
        params: tstate.ema[..tsetup.n_net].to_vec(),
    };
    let x = Rng::new(9).normal_tensor([64, 2], &dev()).mul_scalar(3.0);
    let sigma: Vec<f64> = (0..64).map(|i| 0.002 * 1.16f64.powi(i)).collect();
    let want = to_vec64(teacher.denoise(x.clone(), &sigma));
    let mut ccfg = small_cfg("ctm", 2, 2);
    ccfg.train.init_from = s(&edm).into();
    let t = cm::train::Trainer::new(cm::run::Setup::new(&ccfg, &dev()).unwrap()).unwrap();
    let p = &t.state.online[..t.setup.n_net];
    let got = to_vec64(cm::model::ctm_denoise(&t.setup.model, p, x.clone(), &sigma, None));
    let err = max_abs_diff(&got, &want);
    assert!(
        err < 1e-6 * (1.0 + want.iter().fold(0.0f64, |m, v| m.max(v.abs()))),
        "CTM D_θ vs teacher: {err}"
    );
    // The s-embedding rows are zero, the t rows the teacher's.
    let i = t
        .setup
        .specs
        .iter()
        .position(|s| s.name == "time_embed.linear.weight")
        .unwrap();
    let w = to_vec64(p[i].clone());
    let half = w.len() / 2;
    assert!(w[half..].iter().all(|&v| v == 0.0));
    assert_eq!(w[..half], to_vec64(tstate.ema[i].clone())[..]);
    // ECT with EDM scalings.
    let mut ecfg = small_cfg("ect", 2, 2);
    let MethodConfig::Ect(e) = &mut ecfg.method else {
        unreachable!()
    };
    e.scaling = cm::objectives::ect::EctScaling::Edm;
    ecfg.train.init_from = s(&edm).into();
    let t = cm::train::Trainer::new(cm::run::Setup::new(&ecfg, &dev()).unwrap()).unwrap();
    let got = to_vec64(t.setup.model.f(&t.state.online[..t.setup.n_net], x, &sigma, None));
    assert_eq!(got, want, "ECT (EDM scalings) f_θ vs teacher");
    let _ = std::fs::remove_dir_all(dir);
}

/// M7 (done on main): CTM's `--times` are completed with ε, so G jumps to the data end.
#[test]
fn audit_m7_ctm_times_end_at_eps() {
    let obj = MethodConfig::by_name("ctm").unwrap().build(2).unwrap();
    let s = obj.sampler(1.0);
    assert_eq!(s.complete(&[80.0, 0.821]).unwrap(), vec![80.0, 0.821, 0.002]);
    assert_eq!(s.complete(&[0.821]).unwrap(), vec![80.0, 0.821, 0.002]);
    assert!(s.complete(&[0.821, 2.0]).is_err());
}

/// D8: EDM's Heun sampler takes 2N − 1 evaluations for N steps (N-point grid + 0, the last an
/// Euler step): 35 for 18; `cm eval --json` reports it.
#[test]
fn audit_d8_edm_heun_nfe() {
    let obj = MethodConfig::by_name("edm").unwrap().build(2).unwrap();
    let smp = obj.sampler(1.0);
    for n in [1usize, 2, 18, 40] {
        let t = smp.times(n);
        assert_eq!(t.len(), n + 1);
        assert_eq!(*t.last().unwrap(), 0.0);
        assert_eq!(smp.nfe(&t), 2 * n - 1, "{n} steps");
    }
    // Consistency samplers: one evaluation per step.
    let ict = MethodConfig::by_name("ict").unwrap().build(2).unwrap().sampler(1.0);
    assert_eq!(ict.nfe(&ict.times(2)), 2);
    let dir = scratch("audit-d8");
    let mut cfg = small_cfg("edm", 1, 1);
    cfg.train.ckpt_every = 1;
    train_fresh(&cfg, &dir);
    let o = std::process::Command::new(cm_bin())
        .args(["eval", s(&dir), "--steps", "18", "--n", "64", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(v["nfe"], 35, "{v}");
    let _ = std::fs::remove_dir_all(dir);
}

/// D3: with the official (t, h = t − r) conditioning, du/dt along (dz, dr, dt) = (v, 0, 1) is the
/// exact JVP with input tangents (1, 1); checked against a central difference of
/// u(z + εv, t + ε, r) through the same conditioning.
#[test]
fn audit_d3_meanflow_th_jvp_matches_finite_difference() {
    use cm::objectives::meanflow::MeanFlowInputs;
    let cfg = small_cfg("meanflow", 4, 1);
    let setup = cm::run::Setup::new(&cfg, &dev()).unwrap();
    let p = cm::nets::init_params(&setup.specs, &mut Rng::new(4), &dev());
    let p = &p[..setup.n_net];
    let b = 16;
    let mut rng = Rng::new(8);
    let z = rng.normal_tensor([b, 2], &dev());
    let v = rng.normal_tensor([b, 2], &dev());
    let t: Vec<f64> = (0..b).map(|i| 0.3 + 0.04 * i as f64).collect();
    let r: Vec<f64> = t.iter().map(|t| t * 0.4).collect();
    for inputs in [MeanFlowInputs::TH, MeanFlowInputs::RT] {
        let (a, c) = inputs.pair(&t, &r);
        let (da, dc) = inputs.tangent();
        let (_, exact) = setup.model.jvp(
            cm::nets::jvp::JvpMode::Exact,
            p,
            z.clone(),
            v.clone(),
            &a,
            &vec![da; b],
            &[&c],
            &[&vec![dc; b]],
            None,
        );
        let h = 1e-2;
        let u = |sgn: f64| {
            let ts: Vec<f64> = t.iter().map(|t| t + sgn * h).collect();
            let (a, c) = inputs.pair(&ts, &r);
            to_vec64(
                setup
                    .model
                    .eval(p, z.clone() + v.clone().mul_scalar(sgn * h), &a, &[&c], None),
            )
        };
        let (up, dn) = (u(1.0), u(-1.0));
        let fd: Vec<f64> = up.iter().zip(&dn).map(|(a, b)| (a - b) / (2.0 * h)).collect();
        let exact = to_vec64(exact);
        let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
        let err = max_abs_diff(&exact, &fd) / scale;
        assert!(err < 1e-2, "{inputs:?}: relative JVP error {err}");
    }
}

/// AUDIT §4, exact oracles on a single Gaussian N(0, s² I): the PF-ODE is linear,
/// x(σ) = x(σ')·sqrt((s² + σ²)/(s² + σ'²)), so the exact consistency map is
/// f*(x, σ) = x·sqrt((s² + ε²)/(s² + σ²)); CTM's k-step teacher solve is k Heun steps of
/// dx/dσ = σx/(s² + σ²) (computed here in f64) and lands near the exact ODE map; the TrigFlow
/// velocity is (cos t·x_t − D)/sin t with D = s²/(s² + σ²)·x_t/cos t.
#[test]
fn audit_oracle_single_gaussian_closed_forms() {
    let dev = dev();
    let s = 0.7f64;
    let gmm = cm::data::gmm::Gmm::new(vec![1.0], vec![vec![0.0, 0.0]], vec![vec![s * s, 0.0, 0.0, s * s]]);
    let b = 32;
    let x = Rng::new(3).normal_tensor([b, 2], &dev).mul_scalar(5.0);
    let xv = to_vec64(x.clone());
    let sigma: Vec<f64> = (0..b).map(|i| 0.01 * 1.3f64.powi(i as i32)).collect();
    let eps = 0.002;
    // 1. The exact-map oracle.
    let f = to_vec64(cm::eval::oracle::exact_consistency_map(
        &gmm,
        x.clone(),
        &sigma,
        eps,
        200,
    ));
    for i in 0..b {
        let k = ((s * s + eps * eps) / (s * s + sigma[i] * sigma[i])).sqrt();
        for j in 0..2 {
            let want = xv[2 * i + j] * k;
            assert!(
                (f[2 * i + j] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "f*({}, σ = {}) = {} vs {want}",
                xv[2 * i + j],
                sigma[i],
                f[2 * i + j]
            );
        }
    }
    // 2. CTM's k-step teacher solve on the N = 18 grid.
    let ctm = cm::objectives::ctm::Ctm::new(Default::default(), 2).unwrap();
    let desc = ctm.grid_desc().to_vec();
    let a = |sg: f64| sg / (s * s + sg * sg);
    for k in [1usize, 3, 9, 17] {
        let draw = ctm.draw_with_k(&mut Rng::new(k as u64), b, k);
        let x_u = to_vec64(ctm.teacher_solve(&gmm, x.clone(), &draw));
        for i in 0..b {
            let (j, mut fac) = (draw.j[i], 1.0f64);
            for m in 0..k {
                let (s0, s1) = (desc[j + m], desc[j + m + 1]);
                let h = s1 - s0;
                fac *= if s1 > 0.0 {
                    1.0 + 0.5 * h * (a(s0) + a(s1) * (1.0 + h * a(s0)))
                } else {
                    1.0 + h * a(s0)
                };
            }
            let exact = ((s * s + draw.u[i].powi(2)) / (s * s + draw.t[i].powi(2))).sqrt();
            for c in 0..2 {
                let want = xv[2 * i + c] * fac;
                let got = x_u[2 * i + c];
                assert!(
                    (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "k {k}: Heun {got} vs {want}"
                );
                let ode = xv[2 * i + c] * exact;
                assert!(
                    (got - ode).abs() < 0.05 * (1.0 + ode.abs()),
                    "k {k}: Heun vs exact ODE {got} vs {ode}"
                );
            }
        }
    }
    // 3. The TrigFlow velocity of the exact denoiser.
    let sd = 0.5;
    let t: Vec<f64> = (0..b).map(|i| 0.05 + 1.4 * i as f64 / b as f64).collect();
    let v = to_vec64(cm::process::trig_velocity(&gmm, x.clone(), &t, sd));
    for i in 0..b {
        let sg = sd * t[i].tan();
        for c in 0..2 {
            let xt = xv[2 * i + c];
            let d = s * s / (s * s + sg * sg) * xt / t[i].cos();
            let want = (t[i].cos() * xt - d) / t[i].sin();
            assert!(
                (v[2 * i + c] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "v at t {}",
                t[i]
            );
        }
    }
}
