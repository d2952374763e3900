use super::consistency::consistency_multistep;
use super::ctm::ctm_gamma;
use super::*;
use crate::model::{ctm_jump, Model};
use crate::nets::mlp::{Mlp, MlpConfig};
use crate::nets::{init_params, Backbone, Masks, ParamSpec};
use crate::precond::Precond;
use crate::schedule::{consistency_times, karras_desc};
use crate::tensor::to_vec;
use std::sync::Arc;

/// A one-time "backbone" whose output is CTM's G_θ(x, t, ε): with `Precond::Raw`
/// (c_skip = 0, c_out = c_in = 1, c_noise = t) the model's f(x, t) is exactly the
/// consistency function f(x, t) = G_θ(x, t, ε).
struct CtmAsConsistency {
    ctm: Model,
    eps: f64,
}

impl Backbone for CtmAsConsistency {
    fn specs(&self) -> Vec<ParamSpec> {
        self.ctm.net.specs()
    }
    fn dim(&self) -> usize {
        self.ctm.net.dim()
    }
    fn n_times(&self) -> usize {
        1
    }
    fn dropout(&self) -> f64 {
        0.0
    }
    fn draw_masks(&self, _: &mut Rng, _: usize, _: &Device) -> Option<Masks> {
        None
    }
    fn forward(&self, p: &[Tensor<1>], x: Tensor<2>, cond: &[Tensor<2>], _: Option<&Masks>) -> Tensor<2> {
        let t = crate::tensor::to_vec64(cond[0].clone());
        let b = t.len();
        ctm_jump(&self.ctm, p, x, &t, &vec![self.eps; b], None)
    }
    fn jvp(
        &self,
        _: &[Tensor<1>],
        _: Tensor<2>,
        _: Tensor<2>,
        _: &[Tensor<2>],
        _: &[Tensor<2>],
        _: Option<&Masks>,
    ) -> (Tensor<2>, Tensor<2>) {
        unimplemented!()
    }
}

fn ctm_model(seed: u64) -> (Model, Vec<Tensor<1>>) {
    let dev = Device::flex();
    let cfg = MlpConfig {
        hidden: 32,
        depth: 2,
        ..Default::default()
    };
    let net = Arc::new(Mlp::new(&cfg, 2, 2, seed));
    let p = init_params(&net.specs(), &mut Rng::new(seed), &dev);
    (Model::new(net, Precond::Ctm { sigma_d: 1.0 }), p)
}

/// With per-sample noise, sample i is the same whatever the batch size or split: the
/// first three of a 5-sample 3-step draw equal a 3-sample draw, and samples 3..5 drawn
/// alone equal rows 3..5; the single-stream draw differs (so the test has teeth).
#[test]
fn per_sample_noise_makes_samples_independent_of_the_batch() {
    let dev = Device::flex();
    let cfg = MlpConfig {
        hidden: 32,
        depth: 2,
        ..Default::default()
    };
    let net = Arc::new(Mlp::new(&cfg, 2, 1, 3));
    let p = init_params(&net.specs(), &mut Rng::new(3), &dev);
    let model = Model::new(
        net,
        Precond::Consistency {
            sigma_d: 1.0,
            eps: 0.002,
        },
    );
    let sampler = Sampler::new(
        "consistency",
        (80.0, 0.002),
        |n| consistency_times(n, 0.821, 0.002, 80.0, 7.0),
        consistency_multistep,
    );
    let times = sampler.times(3);
    let draw = |first: u64, n: usize| {
        to_vec(sampler.generate(&model, &p, n, &times, &mut Noise::per_sample(7, first, n), &dev))
    };
    let all = draw(0, 5);
    assert_eq!(&all[..6], &draw(0, 3)[..], "first three samples");
    assert_eq!(&all[6..], &draw(3, 2)[..], "samples 3 and 4 drawn on their own");
    let stream = |n: usize| to_vec(sampler.generate(&model, &p, n, &times, &mut Noise::Stream(&mut Rng::new(7)), &dev));
    assert_ne!(
        &stream(5)[..6],
        &stream(3)[..],
        "one stream: later steps' noise depends on the batch size"
    );
}

#[test]
fn gamma_one_is_consistency_multistep() {
    let dev = Device::flex();
    let (ctm, p) = ctm_model(5);
    let (eps, t_max) = (0.002, 80.0);
    let cm = Model::new(Arc::new(CtmAsConsistency { ctm: ctm.clone(), eps }), Precond::Raw);
    for steps in [1usize, 2, 4] {
        let times = karras_desc(steps, eps, t_max, 7.0);
        let z = Rng::new(11).normal_tensor([128, 2], &dev);
        let a = ctm_gamma(&ctm, &p, z.clone(), &times, 1.0, &mut Noise::Stream(&mut Rng::new(99)));
        let b = consistency_multistep(&cm, &p, z, &times, &mut Noise::Stream(&mut Rng::new(99)));
        let (a, b) = (to_vec(a), to_vec(b));
        let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "steps {steps}: max |γ=1 − multistep| = {err}");
    }
}

#[test]
fn gamma_zero_is_deterministic_given_noise() {
    let dev = Device::flex();
    let (ctm, p) = ctm_model(6);
    let times = karras_desc(4, 0.002, 80.0, 7.0);
    let z = Rng::new(1).normal_tensor([64, 2], &dev);
    let mut r1 = Rng::new(2);
    let mut r2 = Rng::new(3);
    let a = ctm_gamma(&ctm, &p, z.clone(), &times, 0.0, &mut Noise::Stream(&mut r1));
    let b = ctm_gamma(&ctm, &p, z.clone(), &times, 0.0, &mut Noise::Stream(&mut r2));
    assert_eq!(to_vec(a.clone()), to_vec(b));
    // γ = 0 consumes no randomness; γ > 0 does and then differs.
    assert_eq!(r1.state(), Rng::new(2).state());
    let c = ctm_gamma(&ctm, &p, z, &times, 0.5, &mut Noise::Stream(&mut r1));
    assert_ne!(to_vec(a), to_vec(c));
}

/// A user's `--times` becomes a full walk: the noise end prepended, the data end appended
/// (CTM's jumps must end at ε, AUDIT M7); times outside the axis or out of order are errors.
#[test]
fn user_times_are_completed_and_checked() {
    let s = Sampler::new(
        "t",
        (80.0, 0.002),
        |n| karras_desc(n, 0.002, 80.0, 7.0),
        consistency_multistep,
    );
    assert_eq!(s.complete(&[0.821]).unwrap(), vec![80.0, 0.821, 0.002]);
    assert_eq!(s.complete(&[80.0, 2.0, 0.002]).unwrap(), vec![80.0, 2.0, 0.002]);
    assert!(s.complete(&[0.5, 2.0]).is_err());
    assert!(s.complete(&[100.0]).is_err());
    assert!(s.complete(&[]).is_err());
    let up = Sampler::new(
        "f",
        (0.0, 1.0),
        |n| crate::schedule::uniform_times(n, true),
        super::flow::facm_sample,
    );
    assert_eq!(up.complete(&[0.5]).unwrap(), vec![0.0, 0.5, 1.0]);
    assert!(up.complete(&[0.6, 0.5]).is_err());
}

/// AUDIT D8: counting the denoiser's calls, EDM's 18-step Heun sampler (18-point grid + 0)
/// makes 35 and the old grid to ε 36; [`super::ode::heun_nfe`] agrees with both counts.
#[test]
fn audit_d8_edm_heun_counts_2n_minus_1_calls() {
    use crate::process::Denoiser;
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Count(AtomicUsize);
    impl Denoiser for Count {
        fn denoise(&self, x: Tensor<2>, _: &[f64]) -> Tensor<2> {
            self.0.fetch_add(1, Ordering::SeqCst);
            x.mul_scalar(0.5)
        }
    }
    let dev = Device::flex();
    let z = Rng::new(1).normal_tensor([4, 2], &dev);
    for (times, want) in [
        (crate::schedule::edm_times(18, 0.002, 80.0, 7.0), 35),
        (karras_desc(18, 0.002, 80.0, 7.0), 36),
        (crate::schedule::edm_times(1, 0.002, 80.0, 7.0), 1),
    ] {
        let c = Count(AtomicUsize::new(0));
        let _ = super::ode::edm_ode(&c, z.clone(), &times, super::ode::Solver::Heun);
        assert_eq!(c.0.load(Ordering::SeqCst), want, "{} times", times.len());
        assert_eq!(super::ode::heun_nfe(&times, super::ode::Solver::Heun), want);
    }
}
