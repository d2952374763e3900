//! Shared helpers: small configs, scratch folders, bit-exact state comparison.

use burn::prelude::*;
use cm::ckpt::State;
use cm::config::{Config, ModelConfig};
use cm::objectives::MethodConfig;
use cm::tensor::to_vec;
use std::path::{Path, PathBuf};

pub fn dev() -> Device {
    Device::flex()
}

/// The small 2-D config of these tests: MLP hidden 64, depth 2, batch 128.
pub fn small_cfg(method: &str, seed: u64, steps: u64) -> Config {
    let mut c = Config::default();
    c.data.name = "ring8".into();
    c.data.batch = 128;
    let ModelConfig::Mlp(m) = &mut c.model else {
        unreachable!("the default model is an MLP")
    };
    m.hidden = 64;
    m.depth = 2;
    c.method = MethodConfig::by_name(method).unwrap();
    c.train.steps = steps;
    c.train.seed = seed;
    c.train.log_every = 10;
    c.train.ckpt_every = 10;
    c.train.keep_ckpts = 2;
    c
}

/// A fresh, empty scratch folder unique to this process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cm-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn bits(ts: &[Tensor<1>]) -> Vec<Vec<u32>> {
    ts.iter()
        .map(|t| to_vec(t.clone()).into_iter().map(f32::to_bits).collect())
        .collect()
}

/// Every tensor group of a state as raw bits, for bit-exact comparison.
pub fn state_bits(s: &State) -> Vec<(&'static str, Vec<Vec<u32>>)> {
    vec![
        ("online", bits(&s.online)),
        ("target", bits(&s.target)),
        ("ema", bits(&s.ema)),
        ("adam_m", bits(&s.adam_m)),
        ("adam_v", bits(&s.adam_v)),
    ]
}

/// Asserts two states are the same run at the same point, bit for bit.
pub fn assert_same_state(a: &State, b: &State, what: &str) {
    assert_eq!(a.step, b.step, "{what}: step");
    assert_eq!(a.rng, b.rng, "{what}: rng state");
    for ((g, x), (_, y)) in state_bits(a).into_iter().zip(state_bits(b)) {
        for (i, (u, v)) in x.iter().zip(&y).enumerate() {
            if u != v {
                let j = u.iter().zip(v).position(|(p, q)| p != q).unwrap();
                panic!(
                    "{what}: {g} tensor #{i} differs first at element {j}: {} vs {}",
                    f32::from_bits(u[j]),
                    f32::from_bits(v[j])
                );
            }
        }
    }
    assert_eq!(a.adam_t, b.adam_t, "{what}: Adam step counts");
    assert_eq!(
        (a.bad_steps, a.bad_run),
        (b.bad_steps, b.bad_run),
        "{what}: skip counters"
    );
    assert_eq!(a.method_state, b.method_state, "{what}: method state");
    assert_eq!(a.meta, b.meta, "{what}: metadata");
}

/// The `cm` executable built with this test.
pub fn cm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cm")
}

/// Runs `cm ARGS`; returns (success, stderr).
pub fn cm(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(cm_bin())
        .args(args)
        .output()
        .expect("cm runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Asserts a CLI call failed cleanly (exit 1, `error:` line, no panic) naming `needle`.
pub fn assert_cli_error(args: &[&str], needles: &[&str]) -> String {
    let (ok, err) = cm(args);
    assert!(!ok, "cm {args:?} succeeded; stderr: {err}");
    assert!(!err.contains("panicked"), "cm {args:?} panicked: {err}");
    assert!(err.contains("error:"), "cm {args:?}: no error line: {err}");
    for n in needles {
        assert!(err.contains(n), "cm {args:?}: stderr does not name '{n}': {err}");
    }
    err
}

/// `ckpt-*.safetensors` files in a folder.
pub fn ckpt_files(dir: &Path) -> Vec<PathBuf> {
    cm::ckpt::list(dir).into_iter().map(|(_, p)| p).collect()
}

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// splitmix64: a tiny deterministic generator for test schedules and mutations, independent of
/// the crate's own `Rng` so that the tests do not move when it changes.
pub struct Mix(pub u64);
impl Mix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-ish in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Trains `cfg` into a fresh `out` (panicking with the folder and error on failure).
pub fn train_fresh(cfg: &Config, out: &Path) -> cm::train::Trainer {
    cm::train::run(cfg, &cm::train::RunOptions::new(out), &dev())
        .unwrap_or_else(|e| panic!("{}: {e:#}", out.display()))
        .0
}

/// An MNIST-layout folder `dir/mnist` (train and t10k splits, images and labels) made of the
/// committed 256-image fixture: what `mnist:` data sets, the image protocol and the image demo
/// read.
pub fn mnist_folder(dir: &Path) -> PathBuf {
    let data = dir.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for pre in ["train", "t10k"] {
        for (kind, idx) in [("images", "idx3"), ("labels", "idx1")] {
            std::fs::copy(
                fx.join(format!("mnist-t10k-256-{kind}-{idx}-ubyte")),
                data.join(format!("{pre}-{kind}-{idx}-ubyte")),
            )
            .unwrap();
        }
    }
    data
}
