//! Fault-injection campaign: a full disk during a checkpoint write, a read-only run folder, the
//! run folder deleted or replaced under a running job, checkpoints damaged on disk, a torn log
//! line, a checkpoint of another method or architecture, and reading a run while it trains.
//! Every case: a clear message, and nothing that was there before is lost.
//!
//! The disk-full and read-only cases run for real on a small tmpfs in a private mount namespace
//! where the machine allows it (root with `unshare`); the injected variants always run.

use crate::common::*;
use cm::train::{run, run_with, RunOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn err<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// The state of an uninterrupted run of `cfg`.
fn reference(cfg: &cm::config::Config, dir: &Path) -> cm::ckpt::State {
    train_fresh(cfg, dir).snapshot()
}

#[test]
// Quarantined (#[ignore]) in sessions 14–15 after one failure in a clean-clone CI rehearsal
// under heavy load; back since session 16: it reopens its run right after the failure, as the
// test that showed the run-folder lock race did (fixed in session 15: `runfolder::lock` waits
// out a copy of its own descriptor held by a forked child), and it passed the whole `it`
// suite twice and its own file three times while a wgpu build loaded both cores.
fn disk_full_during_a_checkpoint_write_keeps_the_previous_one_and_the_run_resumes() {
    let dir = scratch("fault-enospc");
    let cfg = small_cfg("ict", 21, 40);
    let want = reference(&cfg, &dir.join("ref"));
    let out = dir.join("run");
    let e = err(run_with(&cfg, &RunOptions::new(&out), &dev(), |t| {
        if t.state.step == 25 {
            // The disk fills up: the checkpoint of step 30 gets 1000 bytes and then ENOSPC.
            cm::io::fault::disk_full_after(Some(1000));
        }
        t.step()
    }));
    cm::io::fault::disk_full_after(None);
    eprintln!("disk full: {e}");
    assert!(
        e.contains("cannot write the checkpoint of step 30")
            && e.contains("No space left on device")
            && e.contains("ckpt-00000020.safetensors (step 20) is intact")
            && e.contains("run the same command to resume"),
        "{e}"
    );
    assert!(
        temps(&out).is_empty(),
        "a partial temp file was left: {:?}",
        temps(&out)
    );
    assert_eq!(cm::run::load_run(&out, &dev()).unwrap().2.step, 20);
    // Space is back: the same command resumes from step 20 and ends where an uninterrupted
    // run ends, bit for bit.
    let (t, _) = run(&cfg, &RunOptions::new(&out), &dev()).unwrap();
    assert_same_state(&want, &t.snapshot(), "resumed after a full disk vs uninterrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether this machine lets the test mount a tmpfs in a private mount namespace.
fn mount_namespace(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs \"$1\"",
            "sh",
            s(&probe),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
}

/// Runs a shell script in a private mount namespace with D (a mount point), C (a config),
/// CM (the binary) and OUT (a folder that outlives the namespace).
fn in_namespace(dir: &Path, script: &str) -> PathBuf {
    let d = dir.join("mnt");
    let out = dir.join("out");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("D", &d)
        .env("OUT", &out)
        .env("C", dir.join("c.toml"))
        .env("CM", cm_bin())
        .status()
        .unwrap();
    assert!(st.success(), "the namespace script failed: {st}");
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn disk_full_on_a_real_small_tmpfs() {
    let dir = scratch("fault-tmpfs");
    if !mount_namespace(&dir) {
        eprintln!("skipped: no mount namespace here (needs root and unshare); the injected variant ran");
        return;
    }
    let cfg = small_cfg("ict", 22, 40);
    write(&dir.join("c.toml"), cfg.to_toml());
    // The same two commands without the fault: 20 steps, then the config's 40.
    let mut first = cfg.clone();
    first.train.steps = 20;
    train_fresh(&first, &dir.join("ref"));
    let want = run(&cfg, &RunOptions::new(dir.join("ref")), &dev())
        .unwrap()
        .0
        .snapshot();
    // A 4 MiB tmpfs; after 20 steps the user's own file takes all but 64 KiB, less than a
    // checkpoint (~390 KB): the write of step 30 runs out of space.
    let out = in_namespace(
        &dir,
        r#"set -e
mount -t tmpfs -o size=4m tmpfs "$D"
"$CM" train "$C" --out "$D/run" --steps 20 2>/dev/null
avail=$(df -k --output=avail "$D" | tail -1)
dd if=/dev/urandom of="$D/filler" bs=1k count=$((avail - 64)) status=none
sha256sum "$D/filler" > "$OUT/filler.sha"
set +e
"$CM" train "$C" --out "$D/run" 2> "$OUT/full.err"; echo $? > "$OUT/full.rc"
ls -a "$D/run" > "$OUT/after.ls"
cp -r "$D/run" "$OUT/after-full"
sha256sum -c "$OUT/filler.sha" > "$OUT/filler.check" 2>&1
rm "$D/filler"
"$CM" train "$C" --out "$D/run" 2> "$OUT/resume.err"; echo $? > "$OUT/resume.rc"
cp -r "$D/run" "$OUT/final"
"#,
    );
    let e = read(&out.join("full.err"));
    eprintln!("real disk full: {e}");
    assert_eq!(read(&out.join("full.rc")).trim(), "1", "{e}");
    assert!(
        e.contains("No space left on device") && e.contains("is intact") && !e.contains("panicked"),
        "{e}"
    );
    assert!(
        read(&out.join("filler.check")).contains("OK"),
        "the user's file was damaged"
    );
    let listing = read(&out.join("after.ls"));
    assert!(!listing.contains(".tmp-"), "a partial temp file was left: {listing}");
    let (_, _, st) = cm::run::load_run(&out.join("after-full"), &dev()).unwrap();
    assert!(
        st.step == 20 || st.step == 30,
        "newest checkpoint after the failure: {}",
        st.step
    );
    assert_eq!(
        read(&out.join("resume.rc")).trim(),
        "0",
        "{}",
        read(&out.join("resume.err"))
    );
    let (_, _, got) = cm::run::load_run(&out.join("final"), &dev()).unwrap();
    assert_same_state(&want, &got, "resumed after a real full disk vs uninterrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_only_run_folder() {
    let dir = scratch("fault-ro");
    let cfg = small_cfg("ict", 23, 20);
    write(&dir.join("c.toml"), cfg.to_toml());
    if mount_namespace(&dir) {
        // A real read-only file system (as root, file modes do not stop writes).
        let out = in_namespace(
            &dir,
            r#"set -e
mount -t tmpfs -o size=8m tmpfs "$D"
"$CM" train "$C" --out "$D/run" --steps 10 2>/dev/null
ls -a "$D/run" > "$OUT/before.ls"
mount -o remount,ro "$D"
set +e
"$CM" train "$C" --out "$D/run" 2> "$OUT/ro.err"; echo $? > "$OUT/ro.rc"
"$CM" sample "$D/run" --n 16 --out "$OUT/s.npy" 2> "$OUT/sample.err"; echo $? > "$OUT/sample.rc"
ls -a "$D/run" > "$OUT/after.ls"
"#,
        );
        let e = read(&out.join("ro.err"));
        eprintln!("read-only: {e}");
        assert_eq!(read(&out.join("ro.rc")).trim(), "1");
        assert!(
            e.contains("is not writable") && e.contains("Read-only file system") && !e.contains("panicked"),
            "{e}"
        );
        assert_eq!(
            read(&out.join("sample.rc")).trim(),
            "0",
            "{}",
            read(&out.join("sample.err"))
        );
        assert_eq!(read(&out.join("before.ls")), read(&out.join("after.ls")));
    } else if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let run = dir.join("run");
        let (ok, e) = cm(&["train", s(&dir.join("c.toml")), "--out", s(&run), "--steps", "10"]);
        assert!(ok, "{e}");
        let before = std::fs::read_dir(&run).unwrap().count();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o555)).unwrap();
        let e = assert_cli_error(&["train", s(&dir.join("c.toml")), "--out", s(&run)], &["not writable"]);
        eprintln!("read-only: {e}");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(std::fs::read_dir(&run).unwrap().count(), before);
        assert_eq!(cm::run::load_run(&run, &dev()).unwrap().2.step, 10);
    } else {
        eprintln!("skipped: root without a mount namespace cannot make a folder read-only");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_folder_deleted_under_a_running_job_is_not_recreated_and_the_state_is_rescued() {
    let dir = scratch("fault-deleted");
    let cfg = small_cfg("ict", 24, 40);
    let want = reference(&cfg, &dir.join("ref"));
    let out = dir.join("run");
    let e = err(run_with(&cfg, &RunOptions::new(&out), &dev(), |t| {
        if t.state.step == 15 {
            std::fs::remove_dir_all(&out).unwrap();
        }
        t.step()
    }));
    eprintln!("deleted: {e}");
    assert!(
        e.contains("was deleted or moved away while this run was using it") && e.contains(".rescued-"),
        "{e}"
    );
    assert!(!out.exists(), "the deleted folder was recreated");
    let rescued: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("run.rescued-"))
        .collect();
    assert_eq!(rescued.len(), 1, "{rescued:?}");
    assert!(e.contains(s(&rescued[0])), "{e}");
    assert_eq!(cm::run::load_run(&rescued[0], &dev()).unwrap().2.step, 20);
    // The rescued folder is a run folder: the same config continues it exactly.
    let (t, _) = run(&cfg, &RunOptions::new(&rescued[0]), &dev()).unwrap();
    assert_same_state(&want, &t.snapshot(), "continued from the rescue vs uninterrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_folder_replaced_under_a_running_job_is_never_written_into() {
    let dir = scratch("fault-replaced");
    let cfg = small_cfg("ict", 25, 40);
    let out = dir.join("run");
    let moved = dir.join("run-moved");
    let e = err(run_with(&cfg, &RunOptions::new(&out), &dev(), |t| {
        if t.state.step == 15 {
            std::fs::rename(&out, &moved).unwrap();
            std::fs::create_dir(&out).unwrap();
            write(&out.join("theirs.txt"), "someone else's");
        }
        t.step()
    }));
    eprintln!("replaced: {e}");
    assert!(
        e.contains("was replaced by another folder") && e.contains(".rescued-"),
        "{e}"
    );
    let listing: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing, ["theirs.txt"], "something was written into the new folder");
    assert_eq!(
        cm::run::load_run(&moved, &dev()).unwrap().2.step,
        10,
        "the moved run is intact"
    );
    // Its marker inside was replaced by hand instead: same check.
    let out2 = dir.join("run2");
    let e = err(run_with(&cfg, &RunOptions::new(&out2), &dev(), |t| {
        if t.state.step == 15 {
            write(&out2.join("run.json"), "{}");
        }
        t.step()
    }));
    assert!(e.contains("run.json of") && e.contains("removed or replaced"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn flip_bit(p: &Path, at: usize) {
    let mut b = std::fs::read(p).unwrap();
    b[at] ^= 0x10;
    std::fs::write(p, b).unwrap();
}

#[test]
fn checkpoint_damaged_on_disk_is_rejected_by_name_and_resume_falls_back() {
    let dir = scratch("fault-damaged");
    let mut cfg = small_cfg("ict", 26, 30);
    cfg.train.keep_ckpts = 3;
    let mut longer = cfg.clone();
    longer.train.steps = 40;
    let want = reference(&longer, &dir.join("ref"));
    let out = dir.join("run");
    train_fresh(&cfg, &out);
    let newest = out.join(cm::ckpt::file_name(30));
    let len = std::fs::metadata(&newest).unwrap().len() as usize;
    // One bit flipped in the weights.
    flip_bit(&newest, len - 1000);
    let e = err(cm::run::load_run(&out, &dev()));
    eprintln!("bit flip (weights): {e}");
    assert!(
        e.contains("ckpt-00000030.safetensors")
            && e.contains("damaged")
            && e.contains("checksum mismatch")
            && e.contains("ckpt-00000020.safetensors can be given instead"),
        "{e}"
    );
    assert_cli_error(
        &["sample", s(&out), "--n", "8", "--out", s(&dir.join("s.npy"))],
        &["ckpt-00000030.safetensors", "checksum mismatch"],
    );
    assert_cli_error(&["eval", s(&out), "--n", "8"], &["ckpt-00000030", "damaged"]);
    // One bit flipped in the header (inside the stored config, still valid TOML and JSON).
    let p20 = out.join(cm::ckpt::file_name(20));
    let bytes = std::fs::read(&p20).unwrap();
    let at = bytes.windows(6).position(|w| w == b"batch ").unwrap() + 8;
    flip_bit(&p20, at);
    let e = err(cm::run::load_run(&p20, &dev()));
    eprintln!("bit flip (header): {e}");
    assert!(e.contains("ckpt-00000020") && e.contains("checksum mismatch"), "{e}");
    // Truncated.
    let p10 = out.join(cm::ckpt::file_name(10));
    let b = std::fs::read(&p10).unwrap();
    std::fs::write(&p10, &b[..b.len() / 2]).unwrap();
    let e = err(cm::run::load_run(&p10, &dev()));
    eprintln!("truncated: {e}");
    assert!(
        e.contains("ckpt-00000010") && e.contains("not a valid safetensors"),
        "{e}"
    );
    // Resume: all three are damaged; each is moved aside (kept, never deleted) and the run
    // starts over from step 0 with the same config, reaching the uninterrupted result.
    let (t, _) = run(&longer, &RunOptions::new(&out), &dev()).unwrap();
    for s in [10, 20, 30] {
        assert!(out.join(format!("{}.damaged", cm::ckpt::file_name(s))).exists());
    }
    assert_same_state(&want, &t.snapshot(), "after falling back past damaged checkpoints");
    // Only the newest damaged: resume continues from the one before it (step 20 of the
    // 30-step run) and ends where that checkpoint, extended to 40 steps, ends without damage.
    let ext = dir.join("ext");
    run(
        &cfg,
        &RunOptions {
            stop_after: Some(20),
            ..RunOptions::new(&ext)
        },
        &dev(),
    )
    .unwrap();
    let want_ext = run(&longer, &RunOptions::new(&ext), &dev()).unwrap().0.snapshot();
    let out2 = dir.join("run2");
    train_fresh(&cfg, &out2);
    flip_bit(&out2.join(cm::ckpt::file_name(30)), 5000);
    let (t, _) = run(
        &longer,
        &RunOptions {
            stop_after: Some(1),
            ..RunOptions::new(&out2)
        },
        &dev(),
    )
    .unwrap();
    assert_eq!(t.state.step, 21, "resumed from step 20");
    let (t, _) = run(&longer, &RunOptions::new(&out2), &dev()).unwrap();
    assert_same_state(&want_ext, &t.snapshot(), "resumed past a damaged newest checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn torn_last_log_line_is_kept_and_the_run_continues_cleanly() {
    let dir = scratch("fault-torn-log");
    let cfg = small_cfg("ict", 27, 20);
    let out = dir.join("run");
    train_fresh(&cfg, &out);
    let log = out.join("log.jsonl");
    let mut text = read(&log);
    text.push_str("{\"step\": 21, \"loss\": 0.4");
    std::fs::write(&log, &text).unwrap();
    let mut longer = cfg.clone();
    longer.train.steps = 40;
    let (_, history) = run(&longer, &RunOptions::new(&out), &dev()).unwrap();
    let after = read(&log);
    assert!(after.starts_with(&text), "the log before the resume changed");
    let lines: Vec<&str> = after.lines().collect();
    let bad: Vec<&&str> = lines
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert_eq!(
        bad,
        [&"{\"step\": 21, \"loss\": 0.4"],
        "only the torn line does not parse"
    );
    let steps: Vec<f64> = history.iter().map(|h| h.0).collect();
    assert_eq!(steps, [10.0, 20.0, 30.0, 40.0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_with_a_checkpoint_of_another_method_or_architecture_is_refused_with_a_diff() {
    let dir = scratch("fault-other");
    let cfg = small_cfg("ict", 28, 20);
    let out = dir.join("run");
    train_fresh(&cfg, &out);
    let before: Vec<Vec<u8>> = ckpt_files(&out).iter().map(|p| std::fs::read(p).unwrap()).collect();
    let c = |cfg: &cm::config::Config, name: &str| write(&dir.join(name), cfg.to_toml());
    let mut ect = small_cfg("ect", 28, 20);
    ect.train.steps = 30;
    let e = assert_cli_error(
        &["train", s(&c(&ect, "ect.toml")), "--out", s(&out)],
        &[
            "config differs",
            "method.name: \"ict\" in the run, \"ect\" now",
            "--restart",
        ],
    );
    eprintln!("other method: {e}");
    let mut wide = cfg.clone();
    let cm::config::ModelConfig::Mlp(m) = &mut wide.model else {
        unreachable!()
    };
    m.hidden = 48;
    let e = assert_cli_error(
        &["train", s(&c(&wide, "wide.toml")), "--out", s(&out), "--resume"],
        &["model.hidden: 64 in the run, 48 now"],
    );
    eprintln!("other architecture: {e}");
    // A checkpoint of another architecture copied into the folder as its newest.
    let other = dir.join("other");
    train_fresh(&wide, &other);
    std::fs::copy(other.join(cm::ckpt::file_name(20)), out.join(cm::ckpt::file_name(25))).unwrap();
    let e = assert_cli_error(
        &["train", s(&c(&cfg, "same.toml")), "--out", s(&out)],
        &["ckpt-00000025.safetensors", "model.hidden: 48 in the run, 64 now"],
    );
    eprintln!("foreign checkpoint: {e}");
    std::fs::remove_file(out.join(cm::ckpt::file_name(25))).unwrap();
    let after: Vec<Vec<u8>> = ckpt_files(&out).iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(before == after, "a refused run changed the checkpoints");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sample_and_eval_read_the_newest_complete_checkpoint_of_a_run_that_is_training() {
    let dir = scratch("fault-live");
    let mut cfg = small_cfg("ict", 29, 1_000_000);
    cfg.train.ckpt_every = 3;
    cfg.train.log_every = 1000;
    let c = write(&dir.join("c.toml"), cfg.to_toml());
    let out = dir.join("run");
    let mut child = Command::new(cm_bin())
        .args(["train", s(&c), "--out", s(&out)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let t0 = std::time::Instant::now();
    while seen.len() < 40 && t0.elapsed() < std::time::Duration::from_secs(60) {
        if ckpt_files(&out).is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(5));
            continue;
        }
        let (_, _, st) = cm::run::load_run(&out, &dev()).unwrap_or_else(|e| panic!("read while training: {e:#}"));
        seen.push(st.step);
    }
    let (ok, err) = cm(&["sample", s(&out), "--n", "16", "--out", s(&dir.join("s.npy"))]);
    assert!(ok, "cm sample while training: {err}");
    let (ok, err) = cm(&["eval", s(&out), "--n", "64"]);
    assert!(ok, "cm eval while training: {err}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(cm::train::stop::EXIT_INTERRUPTED), "{st}");
    eprintln!(
        "read {} checkpoints of a live run, steps {:?}..{:?}",
        seen.len(),
        seen.first(),
        seen.last()
    );
    assert!(seen.len() >= 10 && seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
