//! The ready models in `models/`: every file loads as a run, samples finite images in range
//! with its documented step count, and `models/README.md` describes it; students sample the
//! digits they are asked for (the shipped classifier agrees with most labels).

use crate::common::*;
use cm::generate::{Classes, NoiseSource, SampleOptions};
use std::path::PathBuf;

fn models() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn shipped_models_load_sample_and_are_documented() {
    let files = models();
    assert!(!files.is_empty(), "models/ ships no model file");
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/README.md")).unwrap_or_default();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(readme.contains(name), "models/README.md does not describe {name}");
        let (cfg, setup, state) = cm::run::load_run(f, &dev()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(cfg.data.name.starts_with("mnist:") || cfg.data.name.starts_with("fashion-mnist:"));
        let size = std::fs::metadata(f).unwrap().len();
        assert!(
            size < 8_000_000,
            "{name} is {size} bytes: ship model files (cm export), not checkpoints"
        );
        // Diffusion teachers (an ODE sampler) walk their 18 Heun steps; consistency models one.
        let steps = if setup.sampler().name.contains("heun") { 18 } else { 1 };
        let k = setup.model.net.n_classes();
        let n = 20;
        let mut rng = cm::rng::Rng::new(0);
        let mut o = SampleOptions::new(&setup, steps, NoiseSource::Stream(&mut rng));
        o.classes = Classes::Balanced;
        let xs = cm::generate::sample(&setup, &state.ema[..setup.n_net], n, o);
        assert!(xs.iter().all(|v| v.is_finite()), "{name}: non-finite samples");
        // Images in [-1, 1] up to a little overshoot, and not blank.
        assert!(xs.iter().all(|v| v.abs() < 2.0), "{name}: samples far outside [-1, 1]");
        let ink = xs.iter().filter(|&&v| v > 0.0).count() as f64 / xs.len() as f64;
        assert!((0.02..0.6).contains(&ink), "{name}: {ink} of the pixels are bright");
        // One-step students of a class-conditional model draw the digits they are asked for.
        if k > 0 && steps == 1 {
            let clf =
                cm::eval::images::Classifier::builtin(cm::eval::images::Net::for_data(&cfg.data.name), &dev()).unwrap();
            let (_, probs) = clf.features(&xs, (1, 28, 28), &dev());
            let hits = probs
                .chunks(10)
                .enumerate()
                .filter(|(i, p)| {
                    let arg = p.iter().enumerate().fold(0, |b, (j, &v)| if v > p[b] { j } else { b });
                    arg == i % k
                })
                .count();
            assert!(hits * 10 >= n * 7, "{name}: only {hits}/{n} samples are of their class");
        }
    }
}

/// `cm demo --data mnist:DIR --method cd|scd|ctm` distils from the shipped teacher: it says so,
/// the student takes the teacher's network (10 classes) and starts from its weights, the
/// teacher is queried with classifier-free guidance ([`cm::demo::DEMO_GUIDANCE`]), and the
/// image protocol block comes out; the rate cools down over the last 30 % of the steps the
/// budget allows (sCD's stays constant), and CTM's teacher solves are short (`max_k` 2) and
/// end at ε, with no DSM term. An MNIST-layout folder is made from the fixture.
#[test]
fn image_demo_distils_from_the_shipped_teacher() {
    let teacher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/mnist-edm.safetensors");
    assert!(teacher.is_file(), "models/mnist-edm.safetensors is shipped");
    let dir = scratch("demo-shipped");
    let data = mnist_folder(&dir);
    for m in ["cd", "scd", "ctm"] {
        let out = dir.join(m);
        let o = std::process::Command::new(cm_bin())
            .args([
                "demo",
                "--method",
                m,
                "--data",
                &format!("mnist:{}", s(&data)),
                "--steps",
                "2",
                "--n-eval",
                "32",
                "--json",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{m}: {err}");
        assert!(err.contains("distilling from the shipped teacher"), "{m}: {err}");
        let cfg = cm::config::Config::load(&out.join("config.toml")).unwrap();
        assert_eq!(cfg.model.classes(), 10, "{m}: the student takes the teacher's network");
        assert_eq!(
            cfg.method.teacher_guidance(),
            cm::demo::DEMO_GUIDANCE,
            "{m}: the class-conditional teacher is distilled with guidance"
        );
        assert!(
            cfg.train.init_from.ends_with("mnist-edm.safetensors"),
            "{m}: starts from the teacher"
        );
        let cooldown = if m == "scd" { 0.0 } else { 0.3 };
        assert_eq!(cfg.train.lr_cooldown, cooldown, "{m}");
        if let cm::objectives::MethodConfig::Ctm(c) = &cfg.method {
            assert_eq!(
                (c.max_k, c.adaptive_every),
                (2, 10),
                "ctm: the demo's short teacher solves"
            );
            assert_eq!(c.s_strategy, cm::objectives::ctm::SStrategy::Smallest, "ctm: s = ε");
            assert_eq!(c.gamma, 1.0, "ctm: multistep sampling through ε");
            assert!(!c.dsm, "ctm: no DSM term in the fine-tune");
        }
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap();
        let p = &v["protocol"][0];
        assert!(p["protocol"].as_str().unwrap().contains("test images"), "{p}");
        assert!(p["class_agreement"].as_f64().is_some(), "{p}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model file samples on a machine without its data set or its teacher: the stored image
/// shape stands in for the data, no teacher is loaded; evaluation then names what is missing.
#[test]
fn a_model_file_samples_without_its_data_or_teacher() {
    let dir = scratch("model-portable");
    let data = mnist_folder(&dir);
    // A tiny conditional teacher and a CD student of it, both on the folder above.
    let mut t =
        cm::config::Config::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/tiny/mnist-ict-cond.toml"))
            .unwrap();
    t.data.name = format!("mnist:{}", s(&data));
    t.method = cm::objectives::MethodConfig::by_name("edm").unwrap();
    t.train.steps = 2;
    t.train.ckpt_every = 2;
    train_fresh(&t, &dir.join("teacher"));
    let (ok, err) = cm(&[
        "export",
        s(&dir.join("teacher")),
        "--out",
        s(&dir.join("teacher.safetensors")),
    ]);
    assert!(ok, "{err}");
    let mut c = t.clone();
    c.method = cm::config::Config::from_toml(&format!(
        "[method]\nname = \"cd\"\nteacher = \"{}\"\n",
        s(&dir.join("teacher.safetensors"))
    ))
    .unwrap()
    .method;
    train_fresh(&c, &dir.join("student"));
    let model = dir.join("student.safetensors");
    let (ok, err) = cm(&["export", s(&dir.join("student")), "--out", s(&model)]);
    assert!(ok, "{err}");
    // Take the data and the teacher away.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_file(dir.join("teacher.safetensors")).unwrap();
    let png = dir.join("digits.png");
    let (ok, err) = cm(&["sample", s(&model), "--n", "16", "--out", s(&png)]);
    assert!(ok, "{err}");
    assert!(png.is_file());
    let (_, setup, _) = cm::run::load_run(&model, &dev()).unwrap();
    assert_eq!(setup.data.image_shape(), Some((1, 28, 28)));
    assert!(setup.teacher.is_none());
    let (ok, err) = cm(&["eval", s(&model), "--n", "16"]);
    assert!(!ok && err.contains("not on this machine"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
