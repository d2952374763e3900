//! Kill safety: SIGKILL `cm train` at pseudo-random moments (during start-up, mid-step, while a
//! checkpoint is being written, right after one lands), `--resume` each time, and check that
//! every checkpoint on disk loads and that the finished run equals an uninterrupted one bit
//! for bit. The same with SIGTERM: a graceful stop writes a checkpoint of the step it stopped
//! at (exit status 75), a second signal exits at once, and the resumed run is still
//! bit-identical.

use crate::common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STEPS: u64 = 1000;
const MIN_KILLS: usize = 24;

fn spawn(cfg: &Path, out: &Path) -> Child {
    Command::new(cm_bin())
        .args(["train", s(cfg), "--out", s(out), "--resume"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cm train")
}

fn has_temp(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".safetensors.tmp-"))
}

fn newest(dir: &Path) -> Option<u64> {
    cm::ckpt::list(dir).last().map(|(s, _)| *s)
}

/// Polls until `cond` holds, the child exits, or 10 s pass.
fn wait_for(child: &mut Child, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if cond() || child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[test]
fn sigkill_at_random_moments_then_resume_is_bit_identical() {
    let dir = scratch("kill");
    let mut cfg = small_cfg("ict", 11, STEPS);
    cfg.train.log_every = 7; // not a divisor of ckpt_every: log and checkpoint cadences differ
    let cfg_path = write(&dir.join("c.toml"), cfg.to_toml());
    let reference = dir.join("ref");
    let (ok, err) = cm(&["train", s(&cfg_path), "--out", s(&reference)]);
    assert!(ok, "uninterrupted run failed: {err}");

    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mut mix = Mix(0xC0FF_EE00_D15E_A5E5);
    let (mut kills, mut finished) = (0usize, false);
    let mut modes = [0usize; 4];
    for _ in 0..200 {
        let before = newest(&run);
        let mut child = spawn(&cfg_path, &run);
        let mode = mix.below(4);
        match mode {
            // During start-up: config parse, checkpoint load, first steps.
            0 => std::thread::sleep(Duration::from_micros(mix.below(15_000) as u64)),
            // While a checkpoint is being written (its temp file exists).
            1 => wait_for(&mut child, || has_temp(&run)),
            // Just after a checkpoint lands (rename done, pruning, next steps).
            2 => {
                wait_for(&mut child, || newest(&run) > before);
                std::thread::sleep(Duration::from_micros(mix.below(3_000) as u64));
            }
            // Anywhere in the middle of training.
            _ => std::thread::sleep(Duration::from_micros(mix.below(60_000) as u64)),
        }
        child.kill().ok(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        if status.success() {
            finished = true;
        } else {
            kills += 1;
            modes[mode] += 1;
        }
        // Every checkpoint on disk loads, whatever moment the kill hit.
        for p in ckpt_files(&run) {
            let r = cm::run::load_run(&p, &dev());
            assert!(
                r.is_ok(),
                "after kill {kills}: {} does not load: {:#}",
                p.display(),
                r.err().unwrap()
            );
        }
        if finished || kills >= MIN_KILLS && newest(&run) == Some(STEPS) {
            break;
        }
        if kills >= MIN_KILLS {
            // Enough kills: let the last resume run to the end.
            let st = spawn(&cfg_path, &run).wait().unwrap();
            assert!(st.success(), "final resume failed");
            finished = true;
            break;
        }
    }
    eprintln!(
        "kill safety: {kills} kills survived (start-up {}, during write {}, after save {}, mid-step {})",
        modes[0], modes[1], modes[2], modes[3]
    );
    assert!(finished, "the run never finished");
    assert!(kills >= 20, "only {kills} kills landed before the run finished");
    let (_, _, a) = cm::run::load_run(&reference, &dev()).unwrap();
    let (_, _, b) = cm::run::load_run(&run, &dev()).unwrap();
    assert_eq!(b.step, STEPS);
    assert_same_state(&a, &b, "killed-and-resumed vs uninterrupted");
    // Checkpoint files are byte-for-byte reproducible too (sorted metadata).
    let name = cm::ckpt::file_name(STEPS);
    assert!(
        std::fs::read(reference.join(&name)).unwrap() == std::fs::read(run.join(&name)).unwrap(),
        "final checkpoint files differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const MIN_GRACEFUL: usize = 16;

#[test]
fn sigterm_at_random_moments_stops_gracefully_then_resume_is_bit_identical() {
    let dir = scratch("term");
    let mut cfg = small_cfg("ict", 12, STEPS);
    cfg.train.log_every = 7;
    let cfg_path = write(&dir.join("c.toml"), cfg.to_toml());
    let reference = dir.join("ref");
    let (ok, err) = cm(&["train", s(&cfg_path), "--out", s(&reference)]);
    assert!(ok, "uninterrupted run failed: {err}");

    let run = dir.join("run");
    let mut mix = Mix(0x5EED_7E57_0F51_6E4D);
    // Outcomes: graceful stop (75), second signal (128 + 15), died before the handlers were
    // installed (start-up: default action), finished.
    let (mut graceful, mut hard, mut early, mut finished) = (0usize, 0usize, 0usize, false);
    for i in 0..300 {
        let before = newest(&run);
        let err_path = dir.join(format!("err-{i}.txt"));
        // No --resume: re-running the same command continues the run.
        let mut child = Command::new(cm_bin())
            .args(["train", s(&cfg_path), "--out", s(&run)])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("spawn cm train");
        match mix.below(3) {
            0 => std::thread::sleep(Duration::from_micros(mix.below(15_000) as u64)),
            1 => wait_for(&mut child, || has_temp(&run)),
            _ => std::thread::sleep(Duration::from_micros(mix.below(60_000) as u64)),
        }
        let twice = mix.below(4) == 0;
        let gap = Duration::from_micros(200 + mix.below(1500) as u64);
        let pid = child.id() as i32;
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if twice {
            // A second signal once the first was delivered (pending ones would merge): while
            // the child finishes its step or writes the stop's checkpoint.
            std::thread::sleep(gap);
            if child.try_wait().unwrap().is_none() {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(&err_path).unwrap();
        match status.code() {
            Some(0) => finished = true,
            Some(cm::train::stop::EXIT_INTERRUPTED) => {
                graceful += 1;
                // "stopped by SIGTERM at step N: checkpoint …ckpt-N… written": it is on disk.
                let step: u64 = stderr
                    .split("stopped by SIGTERM at step ")
                    .nth(1)
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no stop message: {stderr}"));
                assert_eq!(newest(&run), Some(step), "the stop's checkpoint is the newest");
                assert!(newest(&run) >= before);
                let log = std::fs::read(run.join("log.jsonl")).unwrap();
                assert!(
                    log.is_empty() || log.ends_with(b"\n"),
                    "a graceful stop left a torn log line"
                );
            }
            Some(143) => hard += 1,
            None => early += 1,
            Some(c) => panic!("unexpected exit status {c}: {stderr}"),
        }
        for p in ckpt_files(&run) {
            let r = cm::run::load_run(&p, &dev());
            assert!(r.is_ok(), "{} does not load: {:#}", p.display(), r.err().unwrap());
        }
        if finished {
            break;
        }
        if graceful >= MIN_GRACEFUL && hard >= 2 {
            let st = Command::new(cm_bin())
                .args(["train", s(&cfg_path), "--out", s(&run)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "final resume failed");
            finished = true;
            break;
        }
    }
    eprintln!(
        "SIGTERM: {graceful} graceful stops (status 75, checkpoint at the step), {hard} second-signal exits (143), {early} deaths during start-up"
    );
    assert!(finished, "the run never finished");
    assert!(graceful >= MIN_GRACEFUL, "only {graceful} graceful stops");
    let (_, _, a) = cm::run::load_run(&reference, &dev()).unwrap();
    let (_, _, b) = cm::run::load_run(&run, &dev()).unwrap();
    assert_eq!(b.step, STEPS);
    assert_same_state(&a, &b, "SIGTERM-stopped-and-resumed vs uninterrupted");
    let name = cm::ckpt::file_name(STEPS);
    assert!(
        std::fs::read(reference.join(&name)).unwrap() == std::fs::read(run.join(&name)).unwrap(),
        "final checkpoint files differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stale_temp_files_are_removed_and_others_kept() {
    let dir = scratch("temps");
    let stale = write(&dir.join(".ckpt-00000010.safetensors.tmp-999999"), "torn");
    let cfg_tmp = write(&dir.join(".config.toml.tmp-123"), "torn");
    let user = write(&dir.join(".notes.tmp-1"), "keep");
    let other = write(&dir.join("ckpt-notes.txt"), "keep");
    cm::ckpt::remove_stale_temps(&dir);
    assert!(!stale.exists() && !cfg_tmp.exists());
    assert!(user.exists() && other.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
