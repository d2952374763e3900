//! Bad input gets a clear error naming the problem, never a panic.

use crate::common::*;
use cm::ckpt;
use cm::config::{Config, ModelConfig};
use cm::data::files::{npy_bytes, parse_npy};
use cm::data::Dataset;
use cm::run::Setup;
use cm::train::{run, RunOptions, Trainer};

fn err<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// A saved checkpoint of the small config (hidden 64) and its bytes.
fn saved_ckpt(name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let dir = scratch(name);
    let t = Trainer::new(Setup::new(&small_cfg("ict", 0, 10), &dev()).unwrap()).unwrap();
    let p = t.save(&dir).unwrap();
    let b = std::fs::read(&p).unwrap();
    (dir, b)
}

#[test]
fn checkpoint_from_other_architecture_names_tensor_and_shapes() {
    let (dir, bytes) = saved_ckpt("arch");
    let mut cfg = small_cfg("ict", 0, 10);
    let ModelConfig::Mlp(m) = &mut cfg.model else {
        unreachable!("the default model is an MLP")
    };
    m.hidden = 48;
    let other = Setup::new(&cfg, &dev()).unwrap();
    let mine = Setup::new(&small_cfg("ict", 0, 10), &dev()).unwrap();
    let first = other
        .specs
        .iter()
        .zip(&mine.specs)
        .find(|(a, b)| a.shape != b.shape)
        .unwrap();
    let e = err(ckpt::from_bytes(&bytes, &other.specs, &dev()));
    assert!(e.contains(&format!("'online/{}'", first.0.name)), "{e}");
    assert!(
        e.contains(&format!("{:?}", first.1.shape)) && e.contains(&format!("{:?}", first.0.shape)),
        "{e}"
    );
    assert!(e.contains("different architecture"), "{e}");
    // Deeper network: a tensor the checkpoint lacks.
    let mut cfg = small_cfg("ict", 0, 10);
    let ModelConfig::Mlp(m) = &mut cfg.model else {
        unreachable!("the default model is an MLP")
    };
    m.depth = 3;
    let deeper = Setup::new(&cfg, &dev()).unwrap();
    let e = err(ckpt::from_bytes(&bytes, &deeper.specs, &dev()));
    assert!(
        e.contains("has no tensor 'online/") && e.contains("different architecture"),
        "{e}"
    );
    // Shallower network: a tensor the model lacks.
    let mut cfg = small_cfg("ict", 0, 10);
    let ModelConfig::Mlp(m) = &mut cfg.model else {
        unreachable!("the default model is an MLP")
    };
    m.depth = 1;
    let shallow = Setup::new(&cfg, &dev()).unwrap();
    let e = err(ckpt::from_bytes(&bytes, &shallow.specs, &dev()));
    assert!(e.contains("does not have") || e.contains("has shape"), "{e}");
    // init_from a different backbone.
    let mut cfg = small_cfg("ict", 0, 10);
    let ModelConfig::Mlp(m) = &mut cfg.model else {
        unreachable!("the default model is an MLP")
    };
    m.hidden = 48;
    cfg.train.init_from = dir.to_str().unwrap().into();
    let e = err(Setup::new(&cfg, &dev()).and_then(Trainer::new));
    assert!(
        e.contains("train.init_from") && e.contains("different backbone architecture"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_checkpoint_is_an_error() {
    let (dir, bytes) = saved_ckpt("trunc");
    let specs = Setup::new(&small_cfg("ict", 0, 10), &dev()).unwrap().specs;
    for cut in [0, 4, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let e = err(ckpt::from_bytes(&bytes[..cut], &specs, &dev()));
        assert!(e.contains("not a valid safetensors checkpoint"), "cut {cut}: {e}");
    }
    let p = write(&dir.join("ckpt-00000099.safetensors"), &bytes[..bytes.len() / 3]);
    let e = err(cm::run::load_run(&p, &dev()));
    assert!(
        e.contains("not a valid safetensors checkpoint") && e.contains("ckpt-00000099"),
        "{e}"
    );
    let e = assert_cli_error(
        &["sample", s(&p), "--out", s(&dir.join("x.npy"))],
        &["not a valid safetensors", "ckpt-00000099"],
    );
    assert!(!e.contains("panicked"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_checkpoint_is_an_error() {
    let (dir, bytes) = saved_ckpt("corrupt");
    let specs = Setup::new(&small_cfg("ict", 0, 10), &dev()).unwrap().specs;
    // Header length pointing past the end.
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(ckpt::from_bytes(&b, &specs, &dev())).contains("not a valid safetensors"));
    // Garbage in the JSON header.
    let mut b = bytes.clone();
    b[8..20].copy_from_slice(b"@@@@@@@@@@@@");
    assert!(err(ckpt::from_bytes(&b, &specs, &dev())).contains("not a valid safetensors"));
    // A NaN written into the data region on disk: the checksum no longer matches.
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = err(ckpt::from_bytes(&b, &specs, &dev()));
    assert!(e.contains("damaged") && e.contains("checksum mismatch"), "{e}");
    // A NaN in a state that was saved as such (valid checksum): the value check names it.
    let mut t = Trainer::new(Setup::new(&small_cfg("ict", 0, 10), &dev()).unwrap()).unwrap();
    let k = t.state.ema.len() - 1;
    t.state.ema[k] = t.state.ema[k].clone().mul_scalar(f32::NAN);
    let b = ckpt::to_bytes(&t.snapshot(), &t.setup.specs).unwrap();
    let e = err(ckpt::from_bytes(&b, &specs, &dev()));
    assert!(e.contains("non-finite value"), "{e}");
    // Another safetensors file (no cm format tag).
    let plain = safetensors_without_meta();
    let e = err(ckpt::from_bytes(&plain, &specs, &dev()));
    assert!(e.contains("not a cm checkpoint"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn safetensors_without_meta() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&1f32.to_le_bytes());
    v
}

#[test]
fn csv_ragged_rows_and_non_numbers() {
    let dir = scratch("csv");
    let p = write(&dir.join("ragged.csv"), "x,y\n1,2\n3,4\n5\n");
    let e = err(Dataset::from_name(s(&p)));
    assert!(
        e.contains("ragged.csv")
            && e.contains("line 4")
            && e.contains("ragged rows: 1 columns where earlier rows have 2"),
        "{e}"
    );
    let p = write(&dir.join("words.csv"), "1,2\n3,four\n");
    let e = err(Dataset::from_name(s(&p)));
    assert!(e.contains("line 2: 'four' is not a number"), "{e}");
    let p = write(&dir.join("empty.csv"), "a,b\n");
    assert!(err(Dataset::from_name(s(&p))).contains("no rows of numbers"));
    let p = write(&dir.join("bin.csv"), [0xff, 0xfe, 0x00]);
    assert!(err(Dataset::from_name(s(&p))).contains("not valid UTF-8"));
    // Through the CLI: the config names the file; the error names line and problem.
    let p = write(&dir.join("ragged2.csv"), "1 2\n3 4 5\n");
    let cfg = write(&dir.join("c.toml"), format!("[data]\nname = \"{}\"\n", s(&p)));
    assert_cli_error(
        &["train", s(&cfg), "--out", s(&dir.join("run"))],
        &["ragged2.csv", "line 2", "ragged rows"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replaces the first occurrence of `from` by `to` (same length) in binary data.
fn replace_bytes(b: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let i = b.windows(from.len()).position(|w| w == from.as_bytes()).unwrap();
    let mut v = b.to_vec();
    v[i..i + to.len()].copy_from_slice(to.as_bytes());
    v
}

#[test]
fn npy_unsupported_dtype_and_shape() {
    let good = npy_bytes(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    for (from, to) in [("<f4", ">f4"), ("<f4", "<c8"), ("<f4", "|b1"), ("<f4", "<u2")] {
        let b = replace_bytes(&good, from, to);
        let e = err(parse_npy(&b));
        assert!(e.contains(&format!("unsupported .npy dtype '{to}'")), "{e}");
    }
    let e = err(parse_npy(&npy_bytes(&[0.0; 8], &[2, 2, 2])));
    assert!(e.contains("unsupported .npy shape [2, 2, 2]"), "{e}");
    let e = err(parse_npy(&npy_bytes(&[], &[0, 2])));
    assert!(e.contains("empty"), "{e}");
    let fortran = replace_bytes(&good, "False", "True ");
    assert!(err(parse_npy(&fortran)).contains("Fortran order"));
    let dir = scratch("npy");
    let p = write(&dir.join("cube.npy"), npy_bytes(&[0.0; 8], &[2, 2, 2]));
    let e = err(Dataset::from_name(s(&p)));
    assert!(e.contains("cube.npy") && e.contains("unsupported .npy shape"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn toml_unknown_and_out_of_range_fields() {
    for (text, needle) in [
        ("[train]\nstepz = 3\n", "stepz"),
        ("[train]\nlr = 0.0\n", "train.lr"),
        ("[train]\nbeta2 = 1.0\n", "train.beta2"),
        ("[train]\nkeep_ckpts = 0\n", "train.keep_ckpts"),
        ("[train]\nmax_bad_steps = 0\n", "train.max_bad_steps"),
        ("[train]\nsteps = -5\n", "steps"),
        ("[data]\nbatch = 0\n", "data.batch"),
        ("[model]\nkind = \"mlp\"\ndepth = 0\n", "model.depth"),
        ("[model]\nkind = \"transformer\"\n", "transformer"),
        ("[train\n", "invalid config"),
    ] {
        let e = err(Config::from_toml(text));
        assert!(e.contains(needle), "{text:?}: {e}");
    }
    let dir = scratch("toml");
    for (i, (text, needle)) in [
        ("[train]\nstepz = 3\n", "stepz"),
        ("[train]\nlr = -1.0\n", "train.lr"),
        ("[data]\nbatch = 0\n", "data.batch"),
    ]
    .iter()
    .enumerate()
    {
        let p = write(&dir.join(format!("bad{i}.toml")), text);
        assert_cli_error(
            &["train", s(&p), "--out", s(&dir.join("run"))],
            &[needle, &format!("bad{i}.toml")],
        );
    }
    assert_cli_error(
        &["train", s(&dir.join("missing.toml")), "--out", s(&dir.join("run"))],
        &["cannot read config", "missing.toml"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_output_folder() {
    let dir = scratch("unwritable");
    let file = write(&dir.join("plain-file"), "x");
    let out = file.join("run");
    let cfg = small_cfg("ict", 0, 5);
    let e = err(run(&cfg, &RunOptions::new(out.clone()), &dev()));
    assert!(
        e.contains("cannot create output folder") && e.contains("plain-file/run"),
        "{e}"
    );
    let c = write(&dir.join("c.toml"), cfg.to_toml());
    assert_cli_error(
        &["train", s(&c), "--out", s(&out)],
        &["cannot create output folder", "plain-file/run"],
    );
    assert_cli_error(&["sample", s(&dir), "--out", s(&out.join("x.npy"))], &["no checkpoint"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_method_and_data_names() {
    let e = err(cm::objectives::MethodConfig::by_name("ictt"));
    assert!(e.contains("unknown method 'ictt'") && e.contains("ict, ct"), "{e}");
    let e = err(Config::from_toml("[method]\nname = \"sCMx\"\n"));
    assert!(e.contains("sCMx"), "{e}");
    let e = err(Dataset::from_name("ring9"));
    assert!(e.contains("unknown data set 'ring9'") && e.contains("ring8"), "{e}");
    let e = err(Dataset::from_name("/nonexistent/points.csv"));
    assert!(e.contains("cannot read /nonexistent/points.csv"), "{e}");
    let dir = scratch("names");
    let c = write(&dir.join("c.toml"), "[data]\nname = \"ring9\"\n");
    assert_cli_error(
        &["train", s(&c), "--out", s(&dir.join("run"))],
        &["unknown data set 'ring9'"],
    );
    let c = write(&dir.join("m.toml"), "[method]\nname = \"nope\"\n");
    assert_cli_error(&["train", s(&c), "--out", s(&dir.join("run"))], &["nope"]);
    assert_cli_error(&["demo", "--method", "nope", "--out", s(&dir.join("demo"))], &["nope"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `method.teacher = "gmm"` fits point data only, and `"exact"` on data without an exact
/// mixture names the alternatives; neither panics.
#[test]
fn mixture_teachers_on_data_that_cannot_have_them() {
    let dir = scratch("gmm-teacher");
    let data = mnist_folder(&dir);
    let mut cfg = cm::demo::demo_config("scd", &format!("mnist:{}", data.display())).unwrap();
    cfg.method.set_teacher(cm::objectives::Teacher::Gmm);
    let e = err(Setup::new(&cfg, &dev()));
    assert!(e.contains("teacher = \"gmm\"") && e.contains("image set"), "{e}");
    let mut cfg = cm::demo::demo_config("scd", "moons").unwrap();
    cfg.method.set_teacher(cm::objectives::Teacher::Exact);
    let e = err(Setup::new(&cfg, &dev()));
    assert!(e.contains("no exact denoiser") && e.contains("\"gmm\""), "{e}");
    let csv = write(&dir.join("five.csv"), "0,0\n1,1\n2,0\n3,1\n4,0\n");
    let mut cfg = cm::demo::demo_config("scd", s(&csv)).unwrap();
    cfg.method.set_teacher(cm::objectives::Teacher::Gmm);
    let e = err(Setup::new(&cfg, &dev()));
    assert!(
        e.contains("fitting a Gaussian mixture to") && e.contains("5 points are too few"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sample_on_missing_run() {
    let dir = scratch("missing");
    let missing = dir.join("no-such-run");
    assert_cli_error(
        &["sample", s(&missing), "--out", s(&dir.join("x.npy"))],
        &["no such checkpoint or run folder", "no-such-run"],
    );
    assert_cli_error(&["eval", s(&missing)], &["no such checkpoint or run folder"]);
    assert_cli_error(&["inspect", s(&missing)], &["no such checkpoint or run folder"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cm data draw` writes a built-in's points as a CSV that reads back as the same data set
/// (so `cm demo --data FILE` trains on it), rewrites its own file, refuses a file it did not
/// write (untouched) and names wrong arguments.
#[test]
fn data_draw_writes_a_csv_and_never_overwrites_a_foreign_file() {
    let dir = scratch("data-draw");
    let out = dir.join("ring8.csv");
    let o = out.to_str().unwrap();
    let (ok, err) = cm(&["data", "draw", "ring8", "--n", "500", "--seed", "3", "--out", o]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("x0,x1\n"), "{}", &text[..20]);
    assert_eq!(text.lines().count(), 501);
    let file = Dataset::from_name(o).unwrap();
    assert_eq!(file.dim(), 2);
    let built = Dataset::from_name("ring8")
        .unwrap()
        .sample(&mut cm::rng::Rng::new(3), 500);
    let first: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(first, built[..2].to_vec());
    // Its own file: replaced.
    let (ok, err) = cm(&["data", "draw", "moons", "--n", "10", "--out", o]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 11);
    // A file cm did not write: refused, untouched.
    let mine = dir.join("mine.csv");
    std::fs::write(&mine, "keep me\n").unwrap();
    assert_cli_error(
        &["data", "draw", "ring8", "--out", mine.to_str().unwrap()],
        &["mine.csv", "--force"],
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "keep me\n");
    assert_cli_error(
        &["data", "draw", "ring8", "--out", dir.join("x.txt").to_str().unwrap()],
        &[".csv or .npy"],
    );
    assert_cli_error(
        &["data", "draw", o, "--out", dir.join("y.csv").to_str().unwrap()],
        &["built-in"],
    );
    assert_cli_error(
        &["data", "draw", "nope", "--out", dir.join("z.csv").to_str().unwrap()],
        &["nope"],
    );
}
