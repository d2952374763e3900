//! Inputs found by fuzzing (fuzz/) that once misbehaved, kept as regular tests.
//!
//! `props::config_roundtrips` found: a `train.seed` ≥ 2⁶³ (reachable with `cm train --seed`)
//! passed validation, then `Config::to_toml` panicked when the run was saved, since TOML
//! integers are signed 64-bit. Validation now rejects it by name.

use crate::common::*;
use cm::config::Config;

#[test]
fn seed_beyond_i64_is_rejected_not_a_panic() {
    let mut c = Config::default();
    c.train.seed = 1 << 63;
    let e = format!("{:#}", c.validate().unwrap_err());
    assert!(e.contains("train.seed") && e.contains("9223372036854775807"), "{e}");
    c.train.seed = i64::MAX as u64;
    assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    let dir = scratch("bigseed");
    assert_cli_error(
        &["train", "--out", s(&dir.join("run")), "--seed", "9223372036854775808"],
        &["train.seed"],
    );
    assert_cli_error(
        &["train", "--out", s(&dir.join("run")), "--steps", "18446744073709551615"],
        &["train.steps"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[model]` without `kind` was rejected with "missing field `kind`" although the docs give
/// `kind = "mlp"` as the default; it now defaults, and unknown fields are still named.
#[test]
fn model_section_without_kind_defaults_to_mlp() {
    let c = Config::from_toml("[model]\nhidden = 16\n").unwrap();
    let cm::config::ModelConfig::Mlp(m) = &c.model else {
        unreachable!("the default model is an MLP")
    };
    assert_eq!(m.hidden, 16);
    let e = format!("{:#}", Config::from_toml("[model]\nhiden = 16\n").unwrap_err());
    assert!(e.contains("hiden"), "{e}");
    let e = format!("{:#}", Config::from_toml("[model]\nkind = \"cnn\"\n").unwrap_err());
    assert!(e.contains("cnn"), "{e}");
}

/// `cm sample` seeds every sample's noise on its own: the same seed gives the same samples at
/// any --batch and --n (here 2-step sampling, which draws fresh noise after the first step),
/// and another seed gives different ones.
#[test]
fn cm_sample_is_independent_of_batch_size() {
    use cm::run::Setup;
    use cm::train::Trainer;
    let dir = scratch("sample-batch");
    let t = Trainer::new(Setup::new(&small_cfg("ict", 0, 10), &dev()).unwrap()).unwrap();
    t.save(&dir).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = |n: &str, batch: &str, seed: &str, name: &str| {
        let out = dir.join(name);
        let (ok, err) = cm(&[
            "sample",
            &s(&dir),
            "--n",
            n,
            "--steps",
            "2",
            "--batch",
            batch,
            "--seed",
            seed,
            "--out",
            &s(&out),
        ]);
        assert!(ok, "cm sample failed: {err}");
        cm::data::files::load_points(&out).unwrap().0
    };
    let a = run("7", "3", "5", "a.npy");
    let b = run("4", "256", "5", "b.npy");
    let c = run("7", "7", "6", "c.npy");
    assert_eq!(a.len(), 14);
    assert_eq!(&a[..8], &b[..], "first four samples at --batch 3 vs 256");
    assert_ne!(&a[..8], &c[..8], "another seed must give other samples");
    let _ = std::fs::remove_dir_all(&dir);
}
