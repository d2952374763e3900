//! Objective conformance, one test per registered method (`conforms!` below; a method missing
//! from the list fails `every_registered_method_has_a_conformance_test`): finite loss,
//! gradients reach only the online network, same seed same loss, and the config round-trips
//! through TOML. Then the sampler table: every method's sampler gives finite samples of the
//! right shape, the same samples for the same noise, sample i independent of the batch with
//! per-sample noise, and (consistency methods) one step equal to the one-step map.

use crate::common::*;
use cm::config::Config;
use cm::objectives::{Ctx, METHODS};
use cm::run::Setup;
use cm::samplers::Noise;
use cm::train::Trainer;

fn conforms(method: &str) {
    {
        let cfg = small_cfg(method, 4, 50);
        // Config round-trips through TOML.
        assert_eq!(
            Config::from_toml(&cfg.to_toml()).unwrap(),
            cfg,
            "{method}: TOML round-trip"
        );
        let mut t = Trainer::new(Setup::new(&cfg, &dev()).unwrap()).unwrap();
        t.step(); // target ≠ online from here for EMA-target methods
        let x0 = t.setup.batch(&mut cm::rng::Rng::new(8), 64);
        let mut losses = vec![];
        for phase in 0..t.setup.objective.phases(t.state.step) {
            let online_ad = t.online_leaves();
            let target = t.state.target.clone();
            let ema = t.state.ema.clone();
            for (i, p) in target.iter().chain(&ema).chain(&t.state.online).enumerate() {
                assert!(
                    !p.is_autodiff() && !p.is_require_grad(),
                    "{method}: stored tensor #{i} is tracked"
                );
            }
            let mut rng = cm::rng::Rng::new(21);
            let mut ctx = Ctx {
                step: t.state.step,
                total: cfg.train.steps,
                model: &t.setup.model,
                online: t.setup.params(&online_ad),
                online_sg: t.setup.params(&t.state.online),
                target: t.setup.params(&target),
                teacher: t.setup.teacher.as_deref(),
                rng: &mut rng,
                device: &t.setup.device,
                rows: 0..x0.dims()[0],
                batch: x0.dims()[0],
            };
            let out = t.setup.objective.loss(&mut ctx, x0.clone(), phase);
            let loss: f32 = out.loss.clone().into_scalar();
            assert!(loss.is_finite(), "{method} phase {phase}: loss {loss}");
            losses.push(loss.to_bits());
            let grads = out.loss.backward();
            let mut reached = 0;
            for ((p, s), stored) in online_ad.iter().zip(&t.setup.specs).zip(&t.state.online) {
                let g = p.grad(&grads);
                if s.trainable {
                    let g = g.unwrap_or_else(|| panic!("{method}: online '{}' got no gradient", s.name));
                    let v = cm::tensor::to_vec(g);
                    assert!(
                        v.iter().all(|x| x.is_finite()),
                        "{method}: '{}' has a non-finite gradient",
                        s.name
                    );
                    reached += v.iter().any(|x| *x != 0.0) as usize;
                } else {
                    assert!(g.is_none(), "{method}: buffer '{}' got a gradient", s.name);
                }
                assert!(
                    stored.grad(&grads).is_none(),
                    "{method}: sg(θ) '{}' got a gradient",
                    s.name
                );
            }
            assert!(reached > 0, "{method}: all online gradients are zero");
            for (p, s) in target.iter().zip(&t.setup.specs) {
                assert!(p.grad(&grads).is_none(), "{method}: target '{}' got a gradient", s.name);
            }
            for (p, s) in ema.iter().zip(&t.setup.specs) {
                assert!(p.grad(&grads).is_none(), "{method}: EMA '{}' got a gradient", s.name);
            }
        }
        // Same seed, same loss: a second trainer from the same config repeats the first step.
        let a = Trainer::new(Setup::new(&cfg, &dev()).unwrap()).unwrap().step().loss;
        let b = Trainer::new(Setup::new(&cfg, &dev()).unwrap()).unwrap().step().loss;
        assert!(a.is_finite(), "{method}: first step loss {a}");
        assert_eq!(a.to_bits(), b.to_bits(), "{method}: same seed, different loss");
        // After a step every stored group is still plain.
        assert!(t
            .state
            .online
            .iter()
            .chain(&t.state.target)
            .chain(&t.state.ema)
            .all(|p| !p.is_autodiff()));
    }
}

macro_rules! conforms {
    ($($test:ident => $method:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                conforms($method);
            }
        )*
        /// The registry and this list name the same methods.
        #[test]
        fn every_registered_method_has_a_conformance_test() {
            let listed: Vec<&str> = vec![$($method),*];
            assert_eq!(listed, METHODS, "add the new method to conforms! in tests/it/conformance.rs");
        }
    };
}

conforms! {
    ict_conforms => "ict",
    ct_conforms => "ct",
    cd_conforms => "cd",
    ect_conforms => "ect",
    ctm_conforms => "ctm",
    edm_conforms => "edm",
    trigflow_conforms => "trigflow",
    sct_conforms => "sct",
    scd_conforms => "scd",
    facm_conforms => "facm",
    facm_aux_conforms => "facm-aux",
    meanflow_conforms => "meanflow",
}

/// The sampler table: for every method, with random weights on ring8, its sampler at 1, 2 and
/// 3 steps walks `steps + 1` times from its noise end to its data end, gives finite `[n, 2]`
/// samples, the same samples for the same noise, and with per-sample noise the first rows of a
/// larger draw equal a smaller draw. A method with a one-step map samples one step as
/// x = map(T·z, T).
#[test]
fn sampler_table() {
    for &method in METHODS {
        let cfg = small_cfg(method, 4, 50);
        let setup = Setup::new(&cfg, &dev()).unwrap();
        let p = cm::nets::init_params(&setup.specs, &mut cm::rng::Rng::new(3), &dev());
        let p = &p[..setup.n_net];
        let sampler = setup.sampler();
        for steps in [1, 2, 3] {
            let times = sampler.times(steps);
            assert_eq!(times.len(), steps + 1, "{method}: {steps}-step times {times:?}");
            assert_eq!(times[0], sampler.ends.0, "{method}: starts at the noise end");
            assert_eq!(*times.last().unwrap(), sampler.ends.1, "{method}: ends at the data end");
            let draw = |first: u64, n: usize| {
                cm::tensor::to_vec(sampler.generate(
                    &setup.model,
                    p,
                    n,
                    &times,
                    &mut Noise::per_sample(5, first, n),
                    &dev(),
                ))
            };
            let a = draw(0, 6);
            assert_eq!(a.len(), 12, "{method}: shape");
            assert!(a.iter().all(|v| v.is_finite()), "{method}: non-finite samples");
            assert_eq!(a, draw(0, 6), "{method}: same noise, different samples");
            assert_eq!(&a[..8], &draw(0, 4)[..], "{method}: sample i depends on the batch");
        }
        if let Some(m) = setup.objective.one_step_map(setup.model.precond.sigma_d()) {
            let z = cm::rng::Rng::new(9).normal_tensor([8, 2], &dev());
            let one = sampler.run(
                &setup.model,
                p,
                z.clone(),
                &sampler.times(1),
                &mut Noise::Stream(&mut cm::rng::Rng::new(1)),
            );
            // The map is stated in EDM coordinates: the noise end T·z at σ = T.
            let t_max = m.sigma_max;
            let want = (m.map)(&setup.model, p, z.mul_scalar(t_max), &[t_max; 8]);
            let (a, b) = (cm::tensor::to_vec(one), cm::tensor::to_vec(want));
            let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-4, "{method}: one step differs from the one-step map by {err}");
        }
    }
}

/// One phase's gradient of `t` on (x0, labels) with `micro` rows per pass, from the generator
/// state `rng`; returns the flattened gradients and the generator state after the phase.
fn grads_with(
    t: &mut Trainer,
    micro: usize,
    rng: &cm::rng::Rng,
    x0: &burn::prelude::Tensor<2>,
    labels: Option<&burn::prelude::Tensor<2>>,
    phase: usize,
) -> (f64, Vec<Vec<f32>>, [u64; 4]) {
    t.setup.cfg.train.micro_batch = micro;
    t.rng = rng.clone();
    let out = t.phase_grads(x0, labels, phase);
    let g = out
        .grads
        .expect("finite loss")
        .into_iter()
        .map(|g| g.map(cm::tensor::to_vec).unwrap_or_default())
        .collect();
    (out.loss, g, t.rng.state())
}

/// `train.micro_batch` (issue 16, EDM's --batch-gpu): a batch of 8 split into passes of 3, 3
/// and 2 rows gives the whole batch's loss and gradient (within float summation order) and
/// leaves the generator where the whole batch leaves it, for every method (with dropout, so the
/// per-row masks are exercised too) and for a class-conditional U-Net with class dropout. CTM
/// with its adaptive weights (batch statistics) is refused instead.
#[test]
fn micro_batches_give_the_whole_batch_gradient() {
    let mut cases: Vec<(String, Config)> = METHODS
        .iter()
        .map(|m| {
            let mut cfg = small_cfg(m, 5, 50);
            cfg.data.batch = 8;
            if let cm::config::ModelConfig::Mlp(mlp) = &mut cfg.model {
                mlp.dropout = 0.1;
            }
            (m.to_string(), cfg)
        })
        .collect();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cond = Config::load(&root.join("configs/tiny/mnist-ict-cond.toml")).unwrap();
    cond.data.name = format!(
        "idx:{}",
        root.join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte").display()
    );
    if let cm::config::ModelConfig::Unet(u) = &mut cond.model {
        u.class_dropout = 0.25;
        u.dropout = 0.1;
    }
    cases.push(("ict, class-conditional U-Net".into(), cond));
    for (name, mut cfg) in cases {
        if matches!(cfg.method, cm::objectives::MethodConfig::Ctm(_)) {
            cfg.train.micro_batch = 3;
            let e = Setup::new(&cfg, &dev())
                .err()
                .expect("CTM's adaptive λ refuses micro-batches");
            assert!(format!("{e:#}").contains("train.micro_batch"), "{e:#}");
            cfg.train.micro_batch = 0;
            if let cm::objectives::MethodConfig::Ctm(c) = &mut cfg.method {
                c.adaptive = false;
            }
        }
        let mut t = Trainer::new(Setup::new(&cfg, &dev()).unwrap()).unwrap();
        t.step();
        t.step(); // target ≠ online for EMA-target methods
        let mut r = cm::rng::Rng::new(8);
        let (x0, labels) = t.setup.batch_labeled(&mut r, 8);
        let onehot = labels.map(|l| {
            let kept = t.setup.drop_classes(&l, &mut r);
            t.setup.onehot(&kept)
        });
        for phase in 0..t.setup.objective.phases(t.state.step) {
            let start = t.rng.clone();
            let (la, ga, ra) = grads_with(&mut t, 0, &start, &x0, onehot.as_ref(), phase);
            let (lb, gb, rb) = grads_with(&mut t, 3, &start, &x0, onehot.as_ref(), phase);
            assert_eq!(ra, rb, "{name}: the generator ends elsewhere after micro-batches");
            assert!(
                (la - lb).abs() <= 1e-5 * la.abs().max(1.0),
                "{name} phase {phase}: loss {la} vs {lb}"
            );
            let mut moved = 0;
            for (i, (a, b)) in ga.iter().zip(&gb).enumerate() {
                assert_eq!(a.len(), b.len(), "{name}: tensor #{i} reached in one run only");
                let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    diff <= 1e-4 * scale + 1e-7,
                    "{name} phase {phase}: gradient #{i} differs by {diff} (largest entry {scale})"
                );
                moved += (scale > 0.0) as usize;
            }
            assert!(moved > 0, "{name}: all gradients are zero");
        }
    }
}
