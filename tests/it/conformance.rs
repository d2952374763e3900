//! Objective conformance, for every registered method: finite loss, gradients reach only the
//! online network, same seed same loss, and the config round-trips through TOML.

use crate::common::*;
use cm::config::Config;
use cm::objectives::{Ctx, METHODS};
use cm::run::Setup;
use cm::train::Trainer;

#[test]
fn every_method_conforms() {
    for &method in METHODS {
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
        for phase in 0..t.setup.objective.phases() {
            let online_ad: Vec<_> = t
                .state
                .online
                .iter()
                .zip(&t.setup.specs)
                .map(|(p, s)| {
                    if s.trainable {
                        p.clone().autodiff().require_grad()
                    } else {
                        p.clone()
                    }
                })
                .collect();
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
                online: &online_ad,
                online_sg: &t.state.online,
                target: &target,
                teacher: t.setup.teacher.as_deref(),
                rng: &mut rng,
                device: &t.setup.device,
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
