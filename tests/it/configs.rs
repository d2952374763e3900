//! Every shipped MNIST config parses; every tiny copy trains 2 steps on the committed fixture
//! and its samples make an image grid PNG.

use crate::common::*;
use cm::config::Config;
use cm::objectives::MethodConfig;
use std::path::PathBuf;

/// Registered methods that ship no MNIST config (TrigFlow is a teacher used through sCD;
/// FACM-aux shares FACM's recipe); every other method must have one.
const WITHOUT_MNIST_CONFIG: [&str; 2] = ["trigflow", "facm-aux"];

/// The methods with a shipped MNIST config: the registry's list less the exceptions above,
/// the EDM teacher first (the distilling methods' tiny runs use it).
fn methods() -> Vec<&'static str> {
    let mut v: Vec<&str> = cm::objectives::METHODS
        .iter()
        .copied()
        .filter(|m| !WITHOUT_MNIST_CONFIG.contains(m))
        .collect();
    v.sort_by_key(|m| *m != "edm");
    v
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn full_mnist_configs_parse_and_validate() {
    for m in methods() {
        let p = root().join(format!("configs/mnist-{m}.toml"));
        let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        cfg.validate().unwrap();
        assert!(cfg.data.name.starts_with("mnist:"), "{m}");
        let tiny = Config::load(&root().join(format!("configs/tiny/mnist-{m}.toml"))).unwrap();
        let (mut a, mut b) = (cfg.method.clone(), tiny.method.clone());
        a.set_teacher(cm::objectives::Teacher::Exact);
        b.set_teacher(cm::objectives::Teacher::Exact);
        assert_eq!(a, b, "{m}: the tiny config's method differs");
    }
}

#[test]
fn tiny_configs_train_two_steps_and_write_a_grid() {
    let dir = scratch("tiny-configs");
    let teacher = dir.join("edm");
    for m in methods() {
        let mut cfg = Config::load(&root().join(format!("configs/tiny/mnist-{m}.toml"))).unwrap();
        cfg.train.steps = 2;
        if cfg
            .method
            .teacher()
            .is_some_and(|t| *t != cm::objectives::Teacher::None)
        {
            cfg.method.set_teacher(cm::objectives::Teacher::Run(teacher.clone()));
        }
        if !cfg.train.init_from.is_empty() {
            cfg.train.init_from = s(&teacher).into();
        }
        let out = dir.join(m);
        let t = train_fresh(&cfg, &out);
        // Every step must have updated the weights: a step with a non-finite loss or gradient
        // is skipped, and a method that skips all of them would still "run" (FACM's cosine
        // term once did, on the U-Net's zero-initialised output).
        assert_eq!(
            t.bad_total, 0,
            "{m}: {} of 2 steps had a non-finite loss or gradient",
            t.bad_total
        );
        let (_, setup, state) = cm::run::load_run(&out, &dev()).unwrap();
        let xs = cm::generate::sample_steps(&setup, &state.ema[..setup.n_net], 16, 1, &mut cm::rng::Rng::new(0));
        assert!(xs.iter().all(|v| v.is_finite()), "{m}: non-finite samples");
        let grid = cm::io::plot::image_grid_of(&xs, setup.data.image_shape().unwrap(), 16);
        let png = out.join("grid.png");
        cm::io::plot::write_png_atomic(&png, &grid).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{m}: not a PNG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cm demo` on image data reports FD, confidence, KID and precision/recall next to SWD for
/// every sample set, and `cm eval` on the run does too.
#[test]
fn image_demo_json_has_fd_and_confidence() {
    let dir = scratch("img-demo");
    let out = dir.join("run");
    let data = format!(
        "idx:{}",
        s(&root().join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte"))
    );
    let o = std::process::Command::new(crate::common::cm_bin())
        .args([
            "demo", "--method", "ict", "--data", &data, "--steps", "2", "--n-eval", "64", "--json", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for k in ["data", "untrained", "one_step", "two_step"] {
        let r = &v[k];
        assert_eq!(r["fd_net"], "FD-mnistnet", "{k}: {r}");
        assert!(r["fd"].as_f64().unwrap().is_finite(), "{k}: {r}");
        let c = r["confidence"].as_f64().unwrap();
        assert!((0.1..=1.0).contains(&c), "{k}: {r}");
        assert!(r["swd"].as_f64().unwrap().is_finite());
        // The protocol's KID (with its standard error) and precision/recall on the same
        // features ride along.
        assert!(
            r["kid"].as_f64().unwrap().is_finite() && r["kid_se"].as_f64().unwrap() >= 0.0,
            "{k}: {r}"
        );
        for m in ["precision", "recall"] {
            assert!((0.0..=1.0).contains(&r[m].as_f64().unwrap()), "{k}: {r}");
        }
    }
    // The image protocol block: 1 and 2 steps, as many samples as the reference (the fixture
    // has no test split: half of its 256 images), each figure with its floor.
    let p = v["protocol"].as_array().expect("protocol block");
    assert_eq!(p.len(), 2);
    for (r, nfe) in p.iter().zip([1, 2]) {
        assert_eq!(r["n"], 128, "{r}");
        assert_eq!(r["nfe"], nfe, "{r}");
        assert!(r["floor"]["fd"].as_f64().unwrap() < r["fd"].as_f64().unwrap(), "{r}");
        assert!((0.0..=1.0).contains(&r["memorised"].as_f64().unwrap()), "{r}");
        assert!(r["protocol"].as_str().unwrap().contains("rounded to 8 bits"), "{r}");
    }
    // Real digits score better than an untrained network's output, on every feature metric.
    assert!(v["data"]["fd"].as_f64().unwrap() < v["untrained"]["fd"].as_f64().unwrap());
    assert!(v["data"]["kid"].as_f64().unwrap() < v["untrained"]["kid"].as_f64().unwrap());
    assert!(v["data"]["precision"].as_f64().unwrap() > v["untrained"]["precision"].as_f64().unwrap());
    let o = std::process::Command::new(crate::common::cm_bin())
        .args(["eval", "--n", "64", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(v["fd"].as_f64().is_some() && v["confidence"].as_f64().is_some(), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Fashion-MNIST recipes parse, validate and are their MNIST counterparts on other data:
/// the teacher is configs/mnist-edm.toml's recipe, the student the guided CD recipe of
/// models/mnist-cd-guided.safetensors (configs/mnist-cd.toml with method.guidance = 1.5), the
/// consistency-tuned one configs/mnist-ect-edm.toml's, started from the Fashion teacher, and
/// MeanFlow from scratch configs/mnist-meanflow-cond.toml's.
#[test]
fn fashion_configs_are_the_mnist_recipes_on_fashion_data() {
    for (fashion, mnist) in [
        ("fashion-edm", "mnist-edm"),
        ("fashion-cd", "mnist-cd"),
        ("fashion-ect-edm", "mnist-ect-edm"),
        ("fashion-meanflow-cond", "mnist-meanflow-cond"),
    ] {
        let f = Config::load(&root().join(format!("configs/{fashion}.toml"))).unwrap();
        f.validate().unwrap();
        let m = Config::load(&root().join(format!("configs/{mnist}.toml"))).unwrap();
        assert!(f.data.name.starts_with("fashion-mnist:"), "{fashion}");
        assert_eq!(f.model, m.model, "{fashion}: model");
        assert_eq!(f.data.batch, m.data.batch, "{fashion}: batch");
        assert_eq!(
            (f.train.lr, f.train.eval_ema, f.train.ema_rampup),
            (m.train.lr, m.train.eval_ema, m.train.ema_rampup),
            "{fashion}"
        );
        let (mut a, mut b) = (f.method.clone(), m.method.clone());
        a.set_teacher(cm::objectives::Teacher::Exact);
        b.set_teacher(cm::objectives::Teacher::Exact);
        if fashion == "fashion-cd" {
            assert_eq!(a.teacher_guidance(), 1.5);
            assert!(f.train.init_from.contains("fashion-mnist-edm"));
        } else {
            assert_eq!(a, b, "{fashion}: method");
        }
        if fashion == "fashion-ect-edm" {
            assert_eq!(f.train.init_from, "models/fashion-mnist-edm.safetensors");
            let mut same = f.clone();
            same.data = m.data.clone();
            same.train.init_from = m.train.init_from.clone();
            assert_eq!(same, m, "{fashion}: only the data and the teacher differ");
        }
    }
}

/// The second stage of the shipped Fashion-MNIST student (configs/fashion-cd-long.toml) is the
/// first stage's recipe continued: same data, network, method and rate, starting from the
/// first stage's run folder, with only its length, cool-down and checkpoint cadence changed.
#[test]
fn fashion_cd_long_continues_the_fashion_cd_recipe() {
    let first = Config::load(&root().join("configs/fashion-cd.toml")).unwrap();
    let long = Config::load(&root().join("configs/fashion-cd-long.toml")).unwrap();
    long.validate().unwrap();
    assert_eq!(
        long.train.init_from, "runs/fashion-cd",
        "starts from the first stage's run"
    );
    assert!(long.train.lr_cooldown > 0.0 && first.train.lr_cooldown == 0.0);
    let mut same = long.clone();
    same.train.steps = first.train.steps;
    same.train.lr_cooldown = first.train.lr_cooldown;
    same.train.init_from = first.train.init_from.clone();
    same.train.ckpt_every = first.train.ckpt_every;
    same.train.keep_ckpts = first.train.keep_ckpts;
    assert_eq!(same, first);
}

/// The third Fashion-MNIST stage (the shipped student) is the second's recipe with only the
/// guidance scale, learning rate, length, cool-down and start changed.
#[test]
fn fashion_cd_g13_continues_the_second_stage_at_lower_guidance() {
    let long = Config::load(&root().join("configs/fashion-cd-long.toml")).unwrap();
    let g13 = Config::load(&root().join("configs/fashion-cd-g13.toml")).unwrap();
    g13.validate().unwrap();
    assert_eq!(
        g13.train.init_from, "runs/fashion-cd-long",
        "starts from the second stage's run"
    );
    let (MethodConfig::Cd(a), MethodConfig::Cd(b)) = (&long.method, &g13.method) else {
        panic!("both stages are CD")
    };
    assert!(
        b.guidance < a.guidance && b.guidance > 1.0,
        "{} then {}",
        a.guidance,
        b.guidance
    );
    assert!(g13.train.lr < long.train.lr && g13.train.lr_cooldown > 0.0);
    let mut same = g13.clone();
    same.method = long.method.clone();
    same.train.steps = long.train.steps;
    same.train.lr = long.train.lr;
    same.train.lr_cooldown = long.train.lr_cooldown;
    same.train.init_from = long.train.init_from.clone();
    assert_eq!(same, long);
}

/// The class-conditional MeanFlow recipe trains from scratch on the teacher's network, and it
/// is the recipe the shipped models/mnist-meanflow.safetensors was trained with: the model
/// file's stored (resolved) config equals the config file's.
#[test]
fn mnist_meanflow_cond_is_the_shipped_models_recipe() {
    let cfg = Config::load(&root().join("configs/mnist-meanflow-cond.toml")).unwrap();
    cfg.validate().unwrap();
    let teacher = Config::load(&root().join("configs/mnist-edm.toml")).unwrap();
    assert_eq!(cfg.model, teacher.model, "the teacher's network");
    assert!(cfg.train.init_from.is_empty(), "from scratch");
    assert_eq!(
        cfg.method,
        MethodConfig::by_name("meanflow").unwrap(),
        "the paper's defaults"
    );
    let (stored, _, _) = cm::run::load_run(&root().join("models/mnist-meanflow.safetensors"), &dev()).unwrap();
    assert_eq!(stored, cfg, "the shipped model's config");
}
