//! Class conditioning: the tiny conditional config trains on the labelled fixture, samples one
//! class (`cm sample --class`), is bit-reproducible, and configuration mistakes are clear errors.

use crate::common::*;
use burn::prelude::*;
use cm::config::{Config, ModelConfig};
use cm::generate;
use cm::generate::Classes;
use cm::run::Setup;
use cm::tensor::to_vec;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny_cond() -> Config {
    Config::load(&root().join("configs/tiny/mnist-ict-cond.toml")).unwrap()
}

fn unet(cfg: &mut Config) -> &mut cm::nets::unet::UnetConfig {
    match &mut cfg.model {
        ModelConfig::Unet(u) => u,
        ModelConfig::Mlp(_) => panic!("not a U-Net config"),
    }
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn tiny_conditional_config_trains_samples_one_class_and_is_reproducible() {
    let dir = scratch("cond-tiny");
    let mut cfg = tiny_cond();
    assert_eq!(cfg.model.classes(), 10);
    cfg.train.steps = 3;
    cfg.train.ckpt_every = 3;
    let (a, b) = (dir.join("a"), dir.join("b"));
    let ta = train_fresh(&cfg, &a);
    let tb = train_fresh(&cfg, &b);
    assert_eq!(ta.state.step, 3);
    assert_same_state(&ta.snapshot(), &tb.snapshot(), "two runs with the same seed");
    // The labels reached the loss: the label embedding has moved from its initial values.
    let specs = &ta.setup.specs;
    let lw = specs.iter().position(|s| s.name == "time_embed.label.weight").unwrap();
    let w = to_vec(ta.state.online[lw].clone());
    let init = cm::nets::init_params(specs, &mut cm::rng::Rng::new(cfg.train.seed), &dev());
    let w0 = to_vec(init[lw].clone());
    assert!(
        w.iter().zip(&w0).any(|(a, b)| a != b),
        "time_embed.label.weight never received a gradient"
    );

    // `cm sample --class 3` goes through Classes::parse and per-sample noise; evaluation uses
    // one noise stream.
    let (_, setup, state) = cm::run::load_run(&a, &dev()).unwrap();
    assert_eq!(setup.model.net.n_classes(), 10);
    let mut p: Vec<Tensor<1>> = state.ema[..setup.n_net].to_vec();
    let sample = |p: &[Tensor<1>], n: usize, c: Classes| {
        let mut rng = cm::rng::Rng::new(4);
        let mut o = generate::SampleOptions::new(&setup, 1, generate::NoiseSource::Stream(&mut rng));
        o.classes = c;
        generate::sample(&setup, p, n, o)
    };
    let three = Classes::parse("3", 10).unwrap();
    assert_eq!(three, Classes::Fixed(3));
    let xs = sample(&p, 4, three);
    assert_eq!(xs.len(), 4 * 784);
    assert!(xs.iter().all(|v| v.is_finite()));
    // Give the label embedding (and the output conv) real weights, then: different classes
    // give different samples from the same noise, balanced sampling gives sample i class
    // i mod 10, and the default is balanced.
    let mut rng = cm::rng::Rng::new(8);
    for name in ["time_embed.label.weight", "conv_out.weight"] {
        let i = specs.iter().position(|s| s.name == name).unwrap();
        let n = specs[i].numel();
        let noise = Tensor::<1>::from_data(TensorData::new(rng.normal_vec(n), [n]), &dev());
        p[i] = p[i].clone() + noise.mul_scalar(0.3);
    }
    let n = 12;
    let fixed: Vec<Vec<f64>> = (0..10).map(|c| sample(&p, n, Classes::Fixed(c))).collect();
    let balanced = sample(&p, n, Classes::Balanced);
    let none = sample(&p, n, Classes::Unconditional);
    let d = 784;
    let row = |xs: &[f64], i: usize| xs[i * d..(i + 1) * d].to_vec();
    assert!(
        max_abs(&fixed[3], &fixed[5]) > 1e-2,
        "class 3 and class 5 give the same samples"
    );
    assert!(
        max_abs(&fixed[3], &none) > 1e-2,
        "class 3 and no class give the same samples"
    );
    for i in 0..n {
        let own = max_abs(&row(&balanced, i), &row(&fixed[i % 10], i));
        let other = max_abs(&row(&balanced, i), &row(&fixed[(i + 1) % 10], i));
        assert!(
            own < 1e-5 && other > 1e-3,
            "balanced sample {i}: {own} from its class, {other} from the next"
        );
    }
    let default = generate::sample_steps(&setup, &p, n, 1, &mut cm::rng::Rng::new(4));
    assert_eq!(default, balanced);
    // Unconditional sampling is the model without labels (all-zero label rows).
    let sampler = setup.sampler();
    let z = sampler.generate(
        &setup.model,
        &p,
        n,
        &sampler.times(1),
        &mut cm::samplers::Noise::Stream(&mut cm::rng::Rng::new(4)),
        &dev(),
    );
    let raw = setup.standardizer.inverse(&cm::tensor::to_vec64(z));
    assert!(max_abs(&raw, &none) < 1e-6);

    // --class mistakes.
    let e = Classes::parse("10", 10).unwrap_err().to_string();
    assert!(e.contains("--class 10") && e.contains("10 classes"), "{e}");
    let e = Classes::parse("three", 10).unwrap_err().to_string();
    assert!(e.contains("class number or `none`"), "{e}");
    let e = Classes::parse("3", 0).unwrap_err().to_string();
    assert!(e.contains("unconditional"), "{e}");
    assert_eq!(Classes::parse("none", 10).unwrap(), Classes::Unconditional);

    // The CLI.
    let npy = dir.join("s3.npy");
    let (ok, err) = cm(&["sample", s(&a), "--n", "4", "--class", "3", "--out", s(&npy)]);
    assert!(ok, "{err}");
    let (xs_cli, dim) = cm::data::files::load_points(&npy).unwrap();
    assert_eq!(dim, 784);
    let want = {
        let mut o = generate::SampleOptions::new(&setup, 1, generate::NoiseSource::PerSample(0));
        o.classes = Classes::Fixed(3);
        o.chunk = 256;
        generate::sample(&setup, &state.ema[..setup.n_net], 4, o)
    };
    assert!(max_abs(&xs_cli, &want) < 1e-6);
    // Per-sample noise and labels by index: another batching gives the same samples.
    let split = {
        let mut o = generate::SampleOptions::new(&setup, 1, generate::NoiseSource::PerSample(0));
        o.classes = Classes::Fixed(3);
        o.chunk = 3;
        generate::sample(&setup, &state.ema[..setup.n_net], 4, o)
    };
    assert_eq!(split, want);
    assert!(dir.join("s3.png").is_file());
    let (ok, err) = cm(&[
        "sample",
        s(&a),
        "--n",
        "2",
        "--class",
        "none",
        "--out",
        s(&dir.join("u.npy")),
    ]);
    assert!(ok, "{err}");
    assert_cli_error(
        &[
            "sample",
            s(&a),
            "--n",
            "2",
            "--class",
            "10",
            "--out",
            s(&dir.join("x.npy")),
        ],
        &["--class 10", "10 classes"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn class_dropout_draws_after_the_batch_and_only_when_on() {
    let mut cfg = tiny_cond();
    unet(&mut cfg).class_dropout = 0.5;
    let setup = Setup::new(&cfg, &dev()).unwrap();
    let labels: Vec<usize> = (0..1000).map(|i| i % 10).collect();
    let mut rng = cm::rng::Rng::new(3);
    let kept = setup.drop_classes(&labels, &mut rng);
    // One uniform per label.
    let mut r2 = cm::rng::Rng::new(3);
    for _ in 0..1000 {
        r2.uniform();
    }
    assert_eq!(rng.state(), r2.state());
    let dropped = kept.iter().filter(|k| k.is_none()).count();
    assert!((400..600).contains(&dropped), "{dropped} of 1000 dropped at p = 0.5");
    for (k, l) in kept.iter().zip(&labels) {
        assert!(k.is_none() || *k == Some(*l));
    }
    let oh = to_vec(setup.onehot(&kept));
    for (i, k) in kept.iter().enumerate() {
        let r = &oh[i * 10..(i + 1) * 10];
        match k {
            Some(l) => assert!(r.iter().enumerate().all(|(j, &v)| v == if j == *l { 1.0 } else { 0.0 })),
            None => assert!(r.iter().all(|&v| v == 0.0)),
        }
    }
    // Off: nothing drawn, nothing dropped.
    unet(&mut cfg).class_dropout = 0.0;
    let setup = Setup::new(&cfg, &dev()).unwrap();
    let mut rng = cm::rng::Rng::new(3);
    let kept = setup.drop_classes(&labels, &mut rng);
    assert_eq!(rng.state(), cm::rng::Rng::new(3).state());
    assert!(kept.iter().zip(&labels).all(|(k, l)| *k == Some(*l)));
}

#[test]
fn class_configuration_mistakes_are_clear_errors() {
    let dir = scratch("cond-errors");
    // An idx file without a labels file beside it.
    let plain = dir.join("digits-idx3-ubyte");
    std::fs::copy(root().join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte"), &plain).unwrap();
    let mut cfg = tiny_cond();
    cfg.data.name = format!("idx:{}", s(&plain));
    let e = format!("{:#}", Setup::new(&cfg, &dev()).err().unwrap());
    assert!(
        e.contains("model.classes = 10 needs class labels, but data set")
            && e.contains(&cfg.data.name)
            && e.contains("has none"),
        "{e}"
    );
    // The same through the CLI.
    let toml = write(&dir.join("c.toml"), cfg.to_toml());
    assert_cli_error(
        &["train", s(&toml), "--out", s(&dir.join("run"))],
        &["model.classes = 10 needs class labels", "has none"],
    );
    // Labels beyond model.classes.
    let mut cfg = tiny_cond();
    unet(&mut cfg).classes = 5;
    let e = format!("{:#}", Setup::new(&cfg, &dev()).err().unwrap());
    assert!(e.contains("class label 9") && e.contains("model.classes = 5"), "{e}");
    // class_dropout out of range, by name.
    let e = format!(
        "{:#}",
        Config::from_toml("[model]\nkind = \"unet\"\nclasses = 10\nclass_dropout = 1.0\n").unwrap_err()
    );
    assert!(e.contains("model.class_dropout"), "{e}");
    // Unconditional configs are untouched by all of this.
    let mut cfg = tiny_cond();
    unet(&mut cfg).classes = 0;
    cfg.data.name = format!("idx:{}", s(&plain));
    assert_eq!(Setup::new(&cfg, &dev()).unwrap().model.net.n_classes(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// FACM and MeanFlow take class labels like every other method: their tangent pass goes
/// through `Model::jvp`, which conditions on the model's labels. The JVP's value equals the
/// raw network with the same labels, and other labels change both value and tangent.
#[test]
fn flow_methods_condition_their_tangent_pass_on_labels() {
    for m in ["facm", "facm-aux", "meanflow"] {
        let mut cfg = tiny_cond();
        cfg.method = cm::objectives::MethodConfig::by_name(m).unwrap();
        cfg.validate().unwrap_or_else(|e| panic!("{m}: {e:#}"));
        let setup = Setup::new(&cfg, &dev()).unwrap();
        let mut rng = cm::rng::Rng::new(2);
        let mut p = cm::nets::init_params(&setup.specs, &mut rng, &dev());
        // Real weights for the zero-initialised label embedding and output layer.
        for name in ["time_embed.label.weight", "conv_out.weight"] {
            let i = setup.specs.iter().position(|s| s.name == name).unwrap();
            let n = setup.specs[i].numel();
            p[i] = Tensor::<1>::from_data(TensorData::new(rng.normal_vec(n), [n]), &dev()).mul_scalar(0.3);
        }
        let p = &p[..setup.n_net];
        let b = 3;
        let x = rng.normal_tensor([b, 784], &dev());
        let dx = rng.normal_tensor([b, 784], &dev());
        let t = vec![0.4; b];
        let (ones, r) = (vec![1.0; b], vec![0.2; b]);
        let extra: Vec<&[f64]> = if setup.model.net.n_times() == 2 {
            vec![&r]
        } else {
            vec![]
        };
        let dextra: Vec<&[f64]> = if setup.model.net.n_times() == 2 {
            vec![&ones]
        } else {
            vec![]
        };
        let run = |labels: &[Option<usize>]| {
            let model = setup.model.with_class_labels(labels, &dev());
            let (v, d) = model.jvp(
                cm::nets::jvp::JvpMode::Exact,
                p,
                x.clone(),
                dx.clone(),
                &t,
                &ones,
                &extra,
                &dextra,
                None,
            );
            let raw = model.raw(p, x.clone(), &t, &extra, None);
            (to_vec(v), to_vec(d), to_vec(raw))
        };
        let (va, da, ra) = run(&[Some(1), Some(2), Some(3)]);
        let (vb, db, _) = run(&[Some(7), Some(8), None]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(close(&va, &ra) < 1e-5, "{m}: JVP value differs from the raw network");
        assert!(close(&va, &vb) > 1e-3, "{m}: labels do not reach the JVP's value");
        assert!(close(&da, &db) > 1e-3, "{m}: labels do not reach the JVP's tangent");
    }
}

/// Real weights for the zero-initialised label embedding and output layer, so labels matter.
fn wake_labels(setup: &Setup, p: &mut [Tensor<1>], rng: &mut cm::rng::Rng) {
    for name in ["time_embed.label.weight", "conv_out.weight"] {
        let i = setup.specs.iter().position(|s| s.name == name).unwrap();
        let n = setup.specs[i].numel();
        p[i] = Tensor::<1>::from_data(TensorData::new(rng.normal_vec(n), [n]), &dev()).mul_scalar(0.3);
    }
}

/// Classifier-free guidance (Ho & Salimans 2022) in `Model::eval`: w = 1 is the conditional
/// output, w = 0 the unconditional one, and any w is F(∅) + w·(F(c) − F(∅)) row by row, with
/// rows that carry no class untouched; the one stacked network call equals two separate ones.
#[test]
fn guidance_mixes_conditional_and_unconditional_outputs() {
    let mut cfg = tiny_cond();
    cfg.method = cm::objectives::MethodConfig::by_name("edm").unwrap();
    let setup = Setup::new(&cfg, &dev()).unwrap();
    let mut rng = cm::rng::Rng::new(5);
    let mut p = cm::nets::init_params(&setup.specs, &mut rng, &dev());
    wake_labels(&setup, &mut p, &mut rng);
    let p = &p[..setup.n_net];
    let b = 4;
    let x = rng.normal_tensor([b, 784], &dev());
    let sigma = vec![0.3, 1.0, 2.5, 0.05];
    let labels = [Some(1), Some(4), None, Some(9)];
    let at = |w: f64, l: &[Option<usize>]| {
        let m = setup.model.with_class_labels(l, &dev()).with_guidance(w);
        to_vec(m.f(p, x.clone(), &sigma, None))
    };
    let cond = at(1.0, &labels);
    let uncond = at(1.0, &[None; 4]);
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(close(&cond, &uncond) > 1e-3, "the labels do not change the output");
    assert!(
        close(&at(0.0, &labels), &uncond) < 1e-5,
        "w = 0 is not the unconditional model"
    );
    for w in [2.5, 0.4] {
        let got = at(w, &labels);
        let want: Vec<f32> = uncond.iter().zip(&cond).map(|(u, c)| u + w as f32 * (c - u)).collect();
        assert!(close(&got, &want) < 1e-4, "w = {w}: {}", close(&got, &want));
        // Row 2 has no class: guidance leaves it as it is.
        let row = 2 * 784..3 * 784;
        assert!(close(&got[row.clone()], &uncond[row]) < 1e-5);
    }
}

/// A class-conditional student binds its batch labels (after class dropout) to a
/// class-conditional teacher with the configured guidance: a 2-step CD run from a conditional
/// teacher changes with `method.guidance`, which only acts through labelled teacher calls;
/// the bound teacher equals the guided network; mismatched setups are clear errors.
#[test]
fn distillation_queries_a_conditional_teacher_with_the_batch_labels_and_guidance() {
    let dir = scratch("cond-guided-cd");
    // An 8-step conditional teacher with a high learning rate, so its label embedding moves.
    let mut tcfg = tiny_cond();
    tcfg.method = cm::objectives::MethodConfig::by_name("edm").unwrap();
    tcfg.train.steps = 8;
    tcfg.train.ckpt_every = 8;
    tcfg.train.lr = 3e-2;
    tcfg.train.eval_ema = 0.0;
    let teacher = dir.join("teacher");
    train_fresh(&tcfg, &teacher);

    let student = |w: f64, classes: usize| {
        let mut cfg = tiny_cond();
        unet(&mut cfg).classes = classes;
        cfg.method = Config::from_toml(&format!(
            "[method]\nname = \"cd\"\nteacher = \"{}\"\nguidance = {w}\n",
            teacher.display()
        ))
        .unwrap()
        .method;
        cfg.train.steps = 2;
        cfg.train.ckpt_every = 2;
        cfg
    };
    let run = |w: f64, name: &str| {
        let t = train_fresh(&student(w, 10), &dir.join(name));
        t.state.online.iter().map(|p| to_vec(p.clone())).collect::<Vec<_>>()
    };
    let (a, b) = (run(1.0, "w1"), run(3.0, "w3"));
    let diff = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u - v).abs()))
        .fold(0.0f32, f32::max);
    assert!(
        diff > 0.0,
        "method.guidance had no effect: the teacher never saw labels"
    );

    // The bound teacher is the guided network at those labels.
    let setup = Setup::new(&student(3.0, 10), &dev()).unwrap();
    let t = setup.teacher.clone().unwrap();
    let labels = [Some(2), None, Some(7)];
    let onehot = setup.model.with_class_labels(&labels, &dev()).labels.unwrap();
    let bound = t.with_labels(onehot).expect("a conditional teacher binds labels");
    let mut rng = cm::rng::Rng::new(9);
    let x = rng.normal_tensor([3, 784], &dev());
    let sigma = [0.5, 0.5, 1.5];
    let (_, ts, tstate) = cm::run::load_run(&teacher, &dev()).unwrap();
    let want = ts.model.with_class_labels(&labels, &dev()).with_guidance(3.0).f(
        &tstate.ema[..ts.n_net],
        x.clone(),
        &sigma,
        None,
    );
    let got = bound.denoise(x.clone(), &sigma);
    assert!(max_abs(&cm::tensor::to_vec64(got), &cm::tensor::to_vec64(want.clone())) < 1e-5);
    let plain = t.denoise(x, &sigma);
    let gap = max_abs(&cm::tensor::to_vec64(plain), &cm::tensor::to_vec64(want));
    assert!(gap > 1e-4, "the unbound teacher equals the guided one ({gap})");

    // Guidance needs labels on both sides; class counts must agree.
    let e = format!("{:#}", Setup::new(&student(2.0, 0), &dev()).err().unwrap());
    assert!(
        e.contains("method.guidance = 2 needs a class-conditional teacher and student"),
        "{e}"
    );
    let e = format!("{:#}", Setup::new(&student(1.0, 12), &dev()).err().unwrap());
    assert!(e.contains("has 10 classes but the student's model.classes = 12"), "{e}");
    let e = Config::from_toml("[method]\nname = \"scd\"\nguidance = -1\n").unwrap_err();
    assert!(
        format!("{e:#}").contains("method.guidance must be a finite scale >= 0"),
        "{e:#}"
    );
}
