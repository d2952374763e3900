//! Run folders never destroy data: ownership markers, protected paths, the demo's "replace only
//! a demo folder", `--force`, legacy folders, output-file ownership, and one writer per folder.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cm ARGS` in `cwd` with extra environment; returns (success, stderr).
fn cm_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out = Command::new(cm_bin())
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .output()
        .expect("cm runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn refused(r: (bool, String), needles: &[&str]) -> String {
    let (ok, err) = r;
    assert!(!ok, "expected a refusal, got success: {err}");
    assert!(err.contains("error:") && !err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not name '{n}': {err}");
    }
    err
}

#[test]
fn demo_and_train_refuse_a_folder_they_did_not_make_and_never_touch_protected_ones() {
    let dir = scratch("own-refuse");
    // `mkdir x; echo thesis > x/thesis.txt; cm demo --out x`: refused, naming x and --force.
    let x = dir.join("x");
    std::fs::create_dir(&x).unwrap();
    write(&x.join("thesis.txt"), "thesis");
    let e = refused(
        cm_in(&dir, &[], &["demo", "--out", "x", "--steps", "2"]),
        &["x is not empty", "--force"],
    );
    assert!(e.contains("thesis.txt"), "{e}");
    refused(
        cm_in(&dir, &[], &["train", "--out", "x", "--steps", "2"]),
        &["not a cm run folder", "--force"],
    );
    assert_eq!(names(&x), ["thesis.txt"], "nothing was written into x");
    // `cm demo --out .` in a folder with files: refused; with --force still refused.
    let here = dir.join("here");
    std::fs::create_dir(&here).unwrap();
    write(&here.join("notes.txt"), "notes");
    refused(cm_in(&here, &[], &["demo", "--out", ".", "--steps", "2"]), &["--force"]);
    for (out, what) in [
        (".", "the current folder"),
        ("..", "a parent of the current folder"),
        ("/", "the root folder"),
    ] {
        refused(
            cm_in(&here, &[], &["demo", "--out", out, "--force", "--steps", "2"]),
            &["refusing to use", what],
        );
        refused(
            cm_in(&here, &[], &["train", "--out", out, "--force", "--steps", "2"]),
            &["refusing to use", what],
        );
    }
    let home = s(&x);
    refused(
        cm_in(
            &dir,
            &[("HOME", home)],
            &["demo", "--out", home, "--force", "--steps", "2"],
        ),
        &["your home folder"],
    );
    assert_eq!(names(&here), ["notes.txt"]);
    assert_eq!(names(&x), ["thesis.txt"]);
    // A file where a folder is expected.
    refused(
        cm_in(&dir, &[], &["demo", "--out", "x/thesis.txt"]),
        &["is a file, not a folder"],
    );
    // --force on a folder holding a file with one of cm's own names: refused, naming it.
    let clash = dir.join("clash");
    std::fs::create_dir(&clash).unwrap();
    write(&clash.join("config.toml"), "mine");
    refused(
        cm_in(&dir, &[], &["train", "--out", "clash", "--force", "--steps", "2"]),
        &["config.toml", "move it away"],
    );
    assert_eq!(std::fs::read_to_string(clash.join("config.toml")).unwrap(), "mine");
    // A folder cm marked for something else (tools/mnist_table.py's table) is not a run folder.
    let table = dir.join("table");
    std::fs::create_dir(&table).unwrap();
    cm::io::runfolder::Marker::new("table", vec![]).write(&table).unwrap();
    refused(
        cm_in(&dir, &[], &["train", "--out", "table", "--steps", "2"]),
        &["is a cm table folder, not a run folder"],
    );
    refused(
        cm_in(&dir, &[], &["demo", "--out", "table"]),
        &["only demo folders are replaced"],
    );
    assert_eq!(names(&table), ["run.json"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_replaces_only_a_demo_folder_and_only_its_own_files() {
    let dir = scratch("own-demo");
    let demo_steps = |out: &str, steps: &str, extra: &[&str]| {
        let mut a = vec!["demo", "--out", out, "--steps", steps, "--n-eval", "64"];
        a.extend_from_slice(extra);
        cm_in(&dir, &[], &a)
    };
    let demo = |out: &str, extra: &[&str]| demo_steps(out, "3", extra);
    // --force into a folder with a foreign file: used; the file stays, and is recorded.
    let x = dir.join("x");
    std::fs::create_dir(&x).unwrap();
    write(&x.join("thesis.txt"), "thesis");
    let (ok, err) = demo("x", &["--force"]);
    assert!(ok, "{err}");
    let marker = std::fs::read_to_string(x.join("run.json")).unwrap();
    assert!(
        marker.contains("\"kind\": \"demo\"") && marker.contains("thesis.txt"),
        "{marker}"
    );
    // Re-running replaces the demo (new run id, fresh checkpoint), keeping thesis.txt.
    let old_id = cm::io::runfolder::Marker::read(&x).unwrap().run_id;
    let (ok, err) = demo_steps("x", "4", &[]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(x.join("thesis.txt")).unwrap(), "thesis");
    assert_ne!(cm::io::runfolder::Marker::read(&x).unwrap().run_id, old_id);
    assert_eq!(
        ckpt_files(&x)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        [cm::ckpt::file_name(4)],
        "the old demo's checkpoint was replaced"
    );
    // A plain demo folder: replaced; a file the user added later (not cm's) survives.
    let (ok, err) = demo("d", &[]);
    assert!(ok, "{err}");
    write(&dir.join("d/mine.txt"), "mine");
    let (ok, err) = demo("d", &[]);
    assert!(ok, "{err}");
    assert!(dir.join("d/mine.txt").exists() && dir.join("d/summary.json").exists());
    // A training run folder is not a demo folder: never replaced by `cm demo`.
    let c = write(&dir.join("c.toml"), small_cfg("ict", 0, 5).to_toml());
    let (ok, err) = cm_in(&dir, &[], &["train", s(&c), "--out", "t"]);
    assert!(ok, "{err}");
    let before = names(&dir.join("t"));
    refused(
        demo("t", &[]),
        &["is a cm train folder", "only demo folders are replaced"],
    );
    assert_eq!(names(&dir.join("t")), before);
    // A run folder from an older cm (no run.json): the demo refuses to replace it, training
    // adopts it (only cm's file names and a real cm checkpoint) and continues it.
    std::fs::remove_file(dir.join("t/run.json")).unwrap();
    refused(demo("t", &[]), &["older cm", "remove it yourself"]);
    let mut longer = small_cfg("ict", 0, 5);
    longer.train.steps = 8;
    let c8 = write(&dir.join("c8.toml"), longer.to_toml());
    let (ok, err) = cm_in(&dir, &[], &["train", s(&c8), "--out", "t"]);
    assert!(ok && err.contains("older cm"), "{err}");
    assert!(cm::io::runfolder::Marker::read(&dir.join("t")).is_some());
    assert_eq!(cm::run::load_run(&dir.join("t"), &dev()).unwrap().2.step, 8);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sample_and_classifier_outputs_replace_only_files_cm_wrote() {
    let dir = scratch("own-sample");
    let run = dir.join("run");
    train_fresh(&small_cfg("ict", 0, 5), &run);
    let out = dir.join("s.npy");
    let sample = |extra: &[&str]| {
        let mut a = vec!["sample", s(&run), "--n", "16", "--out", s(&out)];
        a.extend_from_slice(extra);
        cm(&a)
    };
    let (ok, err) = sample(&[]);
    assert!(ok, "{err}");
    let (ok, err) = sample(&[]);
    assert!(ok, "re-sampling onto cm's own output is allowed: {err}");
    // The user edits the file: it is no longer what cm wrote.
    write(&out, "my edits");
    let e = refused(sample(&[]), &["s.npy already exists", "--force"]);
    assert!(e.contains("cannot prove it wrote it"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "my edits");
    // --force moves it aside instead of destroying it.
    let (ok, err) = sample(&["--force"]);
    assert!(ok && err.contains("s.npy.old-1"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("s.npy.old-1")).unwrap(), "my edits");
    assert!(cm::data::files::load_points(&out).is_ok());
    // A foreign PNG beside the output blocks it too (the scatter plot would overwrite it).
    let other = dir.join("t.npy");
    write(&dir.join("t.png"), "a picture");
    refused(
        cm(&["sample", s(&run), "--n", "16", "--out", s(&other)]),
        &["t.png already exists"],
    );
    assert!(!other.exists());
    // The classifier's weights file follows the same rule (checked before training).
    refused(
        cm(&[
            "classifier",
            "train",
            "--data",
            "mnist:/nonexistent",
            "--out",
            s(&dir.join("t.png")),
        ]),
        &["t.png already exists", "--force"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls until `cond` holds (or 30 s pass; the test then fails on what it finds).
fn wait_until(mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn one_writer_per_run_folder_and_a_killed_holder_never_blocks() {
    let dir = scratch("own-lock");
    let mut cfg = small_cfg("ict", 0, 1_000_000);
    cfg.train.ckpt_every = 1_000_000;
    cfg.train.log_every = 1000;
    let c = write(&dir.join("c.toml"), cfg.to_toml());
    let run = dir.join("run");
    let mut first = Command::new(cm_bin())
        .args(["train", s(&c), "--out", s(&run)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id().to_string();
    let lock = run.join(cm::io::runfolder::LOCK);
    wait_until(|| std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid));
    // A second writer fails at once, naming the holder.
    refused(
        cm(&["train", s(&c), "--out", s(&run)]),
        &["in use by another cm process", &format!("PID {pid}")],
    );
    refused(cm(&["train", s(&c), "--out", s(&run), "--restart"]), &["in use"]);
    assert!(first.try_wait().unwrap().is_none(), "the first writer kept running");
    // SIGKILL: the kernel drops the lock with the process; the next run is not blocked.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        pid,
        "a stale lock file stays"
    );
    let (ok, err) = cm(&["train", s(&c), "--out", s(&run), "--steps", "5"]);
    assert!(ok, "a stale lock blocked the next run: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restart_moves_the_old_run_aside_and_flags_conflict() {
    let dir = scratch("own-restart");
    let c = write(&dir.join("c.toml"), small_cfg("ict", 0, 10).to_toml());
    let run = dir.join("run");
    let (ok, err) = cm(&["train", s(&c), "--out", s(&run)]);
    assert!(ok, "{err}");
    let (ok, err) = cm(&["train", s(&c), "--out", s(&run), "--restart"]);
    assert!(ok && err.contains("moved the previous run to"), "{err}");
    assert_eq!(cm::run::load_run(&run.join("restart-1"), &dev()).unwrap().2.step, 10);
    assert_eq!(cm::run::load_run(&run, &dev()).unwrap().2.step, 10);
    let (ok, err) = cm(&["train", s(&c), "--out", s(&run), "--restart", "--resume"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cm export` writes the EMA weights alone (a model file, about a fifth of a checkpoint) that
/// `cm sample` reads like the run itself, bit for bit; it refuses to overwrite a foreign file.
#[test]
fn export_writes_a_model_file_that_samples_like_its_run() {
    let dir = scratch("export");
    let run = dir.join("run");
    let mut cfg = small_cfg("ict", 3, 4);
    cfg.train.ckpt_every = 4;
    train_fresh(&cfg, &run);
    let model = dir.join("model.safetensors");
    let (ok, err) = cm(&["export", s(&run), "--out", s(&model)]);
    assert!(ok, "{err}");
    let ckpt = ckpt_files(&run).pop().unwrap();
    let (m, c) = (
        std::fs::metadata(&model).unwrap().len(),
        std::fs::metadata(&ckpt).unwrap().len(),
    );
    assert!(m * 4 < c, "model file {m} bytes vs checkpoint {c}");
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    for (src, out) in [(&run, &a), (&model, &b)] {
        let (ok, err) = cm(&["sample", s(src), "--n", "50", "--steps", "2", "--out", s(out)]);
        assert!(ok, "{err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // `--out NAME.png` writes the picture alone.
    let pic = dir.join("pic.png");
    let (ok, err) = cm(&["sample", s(&model), "--n", "50", "--out", s(&pic)]);
    assert!(ok, "{err}");
    assert_eq!(&std::fs::read(&pic).unwrap()[..4], b"\x89PNG");
    assert!(!dir.join("pic.npy").exists());
    let (_, _, st) = cm::run::load_run(&model, &dev()).unwrap();
    assert_eq!(st.step, 4);
    assert_eq!(bits(&st.online), bits(&st.ema));
    // A file cm did not write is not replaced.
    let foreign = write(&dir.join("mine.safetensors"), b"precious");
    refused(cm(&["export", s(&run), "--out", s(&foreign)]), &["mine.safetensors"]);
    assert_eq!(std::fs::read(&foreign).unwrap(), b"precious");
    let _ = std::fs::remove_dir_all(&dir);
}
