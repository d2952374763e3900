//! Every shipped MNIST config parses; every tiny copy trains 2 steps on the committed fixture
//! and its samples make an image grid PNG.

use crate::common::*;
use cm::config::Config;
use cm::train::{self, RunOptions};
use std::path::{Path, PathBuf};

const METHODS: [&str; 10] = ["edm", "cd", "ct", "ict", "ect", "sct", "scd", "ctm", "facm", "meanflow"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cfg: &Config, out: &Path) {
    train::run(
        cfg,
        &RunOptions {
            out: out.to_path_buf(),
            resume: false,
            progress: false,
            stop_after: None,
        },
        &dev(),
    )
    .unwrap_or_else(|e| panic!("{}: {e:#}", out.display()));
}

#[test]
fn full_mnist_configs_parse_and_validate() {
    for m in METHODS {
        let p = root().join(format!("configs/mnist-{m}.toml"));
        let cfg = Config::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        cfg.validate().unwrap();
        assert!(cfg.data.name.starts_with("mnist:"), "{m}");
        let tiny = Config::load(&root().join(format!("configs/tiny/mnist-{m}.toml"))).unwrap();
        let (mut a, mut b) = (cfg.method.clone(), tiny.method.clone());
        a.set_teacher("t");
        b.set_teacher("t");
        assert_eq!(a, b, "{m}: the tiny config's method differs");
    }
}

#[test]
fn tiny_configs_train_two_steps_and_write_a_grid() {
    let dir = scratch("tiny-configs");
    let teacher = dir.join("edm");
    for m in METHODS {
        let mut cfg = Config::load(&root().join(format!("configs/tiny/mnist-{m}.toml"))).unwrap();
        cfg.train.steps = 2;
        if cfg.method.teacher().is_some_and(|t| !t.is_empty()) {
            cfg.method.set_teacher(s(&teacher));
        }
        if !cfg.train.init_from.is_empty() {
            cfg.train.init_from = s(&teacher).into();
        }
        let out = dir.join(m);
        run(&cfg, &out);
        let (_, setup, state) = train::load_run(&out, &dev()).unwrap();
        let xs = cm::demo::sample_raw(&setup, &state.ema[..setup.n_net], 16, 1, &mut cm::rng::Rng::new(0));
        assert!(xs.iter().all(|v| v.is_finite()), "{m}: non-finite samples");
        let grid = cm::demo::image_grid_of(&xs, setup.data.image_shape().unwrap(), 16);
        let png = out.join("grid.png");
        cm::plot::write_png_atomic(&png, &grid).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{m}: not a PNG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
