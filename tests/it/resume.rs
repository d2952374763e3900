//! Library-level resume and seed determinism.

use crate::common::*;
use cm::run::Setup;
use cm::train::{run, RunOptions, Trainer};

fn opts(out: &std::path::Path, resume: bool, stop_after: Option<u64>) -> RunOptions {
    RunOptions {
        resume,
        stop_after,
        ..RunOptions::new(out)
    }
}

#[test]
fn stop_then_resume_equals_uninterrupted_bit_for_bit() {
    let dir = scratch("resume");
    for method in ["ict", "ct", "edm"] {
        let mut cfg = small_cfg(method, 3, 95);
        cfg.train.log_every = 4;
        cfg.train.warmup = 20;
        let (a, _) = run(&cfg, &opts(&dir.join(format!("{method}-a")), false, None), &dev()).unwrap();
        let out = dir.join(format!("{method}-b"));
        // Stops mid-interval (no checkpoint at 37): the resume repeats steps 30..37 exactly.
        let (part, _) = run(&cfg, &opts(&out, false, Some(37)), &dev()).unwrap();
        assert_eq!(part.state.step, 37);
        let (_, _, saved) = cm::run::load_run(&out, &dev()).unwrap();
        assert_eq!(saved.step, 30);
        let (b, _) = run(&cfg, &opts(&out, true, Some(41)), &dev()).unwrap();
        assert_eq!(b.state.step, 71);
        let (b, _) = run(&cfg, &opts(&out, true, None), &dev()).unwrap();
        assert_same_state(
            &a.snapshot(),
            &b.snapshot(),
            &format!("{method}: resumed vs uninterrupted (in memory)"),
        );
        let (_, _, ca) = cm::run::load_run(&dir.join(format!("{method}-a")), &dev()).unwrap();
        let (_, _, cb) = cm::run::load_run(&out, &dev()).unwrap();
        assert_same_state(
            &ca,
            &cb,
            &format!("{method}: resumed vs uninterrupted (final checkpoints)"),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// sCD from a mixture fitted to moons (`teacher = "gmm"`) resumes bit for bit: the resumed
/// run refits the same mixture from the run's seed.
#[test]
fn a_fitted_mixture_teacher_resumes_bit_for_bit() {
    let dir = scratch("resume-gmm");
    let mut cfg = small_cfg("scd", 3, 35);
    cfg.data.name = "moons".into();
    cfg.method.set_teacher(cm::objectives::Teacher::Gmm);
    let (a, _) = run(&cfg, &opts(&dir.join("a"), false, None), &dev()).unwrap();
    let out = dir.join("b");
    let (part, _) = run(&cfg, &opts(&out, false, Some(17)), &dev()).unwrap();
    assert_eq!(part.state.step, 17);
    let (b, _) = run(&cfg, &opts(&out, true, None), &dev()).unwrap();
    assert_eq!(
        a.setup.fitted_teacher.as_ref().unwrap().gmm,
        b.setup.fitted_teacher.as_ref().unwrap().gmm
    );
    assert_same_state(
        &a.snapshot(),
        &b.snapshot(),
        "scd from a fitted mixture: resumed vs uninterrupted",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Re-running the same config on a run folder continues it (with or without `resume`); a
/// different config is refused with the fields that differ; `restart` moves the old run aside.
#[test]
fn same_config_resumes_other_config_is_refused_with_a_diff_restart_moves_aside() {
    let dir = scratch("resume-refuse");
    let cfg = small_cfg("ict", 3, 10);
    run(&cfg, &opts(&dir, false, None), &dev()).unwrap();
    let mut longer = cfg.clone();
    longer.train.steps = 20;
    let (t, _) = run(&longer, &opts(&dir, false, None), &dev()).unwrap();
    assert_eq!(t.state.step, 20, "the same config (more steps) continues the run");
    let mut other = cfg.clone();
    other.data.batch = 64;
    other.train.lr = 2e-4;
    for resume in [false, true] {
        let e = format!("{:#}", run(&other, &opts(&dir, resume, None), &dev()).err().unwrap());
        assert!(
            e.contains("config differs")
                && e.contains("data.batch: 128 in the run, 64 now")
                && e.contains("train.lr: 0.001 in the run, 0.0002 now")
                && e.contains("--restart")
                && !e.contains("train.steps"),
            "{e}"
        );
    }
    assert_eq!(ckpt_files(&dir).len(), 2, "a refused run writes nothing");
    let (t, _) = run(
        &other,
        &RunOptions {
            restart: true,
            ..opts(&dir, false, None)
        },
        &dev(),
    )
    .unwrap();
    assert_eq!(t.state.step, 10, "--restart starts over");
    let (_, _, old) = cm::run::load_run(&dir.join("restart-1"), &dev()).unwrap();
    assert_eq!(old.step, 20, "the old run is kept, loadable, in restart-1");
    let (c, _, _) = cm::run::load_run(&dir, &dev()).unwrap();
    assert_eq!(c.data.batch, 64);
    let _ = std::fs::remove_dir_all(&dir);
}

fn losses(method: &str, seed: u64, n: usize) -> Vec<u64> {
    let cfg = small_cfg(method, seed, 100);
    let mut t = Trainer::new(Setup::new(&cfg, &dev()).unwrap()).unwrap();
    (0..n).map(|_| t.step().loss.to_bits()).collect()
}

#[test]
fn same_seed_same_losses_different_seed_different() {
    for method in ["ict", "ect"] {
        let a = losses(method, 5, 15);
        assert_eq!(a, losses(method, 5, 15), "{method}: same seed, different loss sequence");
        let c = losses(method, 6, 15);
        assert!(
            a.iter().zip(&c).all(|(x, y)| x != y),
            "{method}: a different seed repeated a loss"
        );
    }
}

/// A time budget stops the run early with a checkpoint at the step it stopped on (not only at
/// ckpt_every multiples), and `--resume` then finishes it exactly like an uninterrupted run.
#[test]
fn time_budget_stops_with_a_checkpoint_and_resumes_bit_for_bit() {
    let dir = scratch("time-budget");
    let mut cfg = small_cfg("ict", 4, 23);
    cfg.train.ckpt_every = 10;
    let (full, _) = run(&cfg, &opts(&dir.join("full"), false, None), &dev()).unwrap();
    let out = dir.join("budget");
    let mut o = opts(&out, false, None);
    o.max_seconds = Some(0.0);
    let (part, _) = run(&cfg, &o, &dev()).unwrap();
    assert_eq!(part.state.step, 1, "a zero budget trains exactly one step");
    let (_, _, saved) = cm::run::load_run(&out, &dev()).unwrap();
    assert_eq!(saved.step, 1, "the stop writes its own checkpoint");
    let (done, _) = run(&cfg, &opts(&out, true, None), &dev()).unwrap();
    assert_eq!(done.state.step, 23);
    assert_same_state(
        &full.snapshot(),
        &done.snapshot(),
        "budget-stopped then resumed vs uninterrupted",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// CTM with the adaptive weights recomputed every 3 steps (and the GAN term starting at step
/// 5, so the discriminator's phase begins mid-run): the λ cache is saved with the checkpoint,
/// so a run resumed at step 10 reuses the λ of step 9 exactly as the uninterrupted run does.
#[test]
fn ctm_with_cached_adaptive_weights_resumes_bit_for_bit() {
    let dir = scratch("resume-ctm");
    let mut cfg = small_cfg("ctm", 5, 23);
    let cm::objectives::MethodConfig::Ctm(c) = &mut cfg.method else {
        unreachable!()
    };
    c.adaptive_every = 3;
    c.gan = true;
    c.gan_start = 5;
    let (a, _) = run(&cfg, &opts(&dir.join("a"), false, None), &dev()).unwrap();
    let out = dir.join("b");
    let (part, _) = run(&cfg, &opts(&out, false, Some(13)), &dev()).unwrap();
    assert_eq!(part.state.step, 13);
    let (_, _, saved) = cm::run::load_run(&out, &dev()).unwrap();
    assert_eq!(saved.step, 10);
    assert!(
        saved
            .method_state
            .as_deref()
            .is_some_and(|s| s.contains("\"adaptive_step\":9")),
        "the checkpoint holds the λ cache of step 9: {:?}",
        saved.method_state
    );
    let (b, _) = run(&cfg, &opts(&out, true, None), &dev()).unwrap();
    assert_same_state(&a.snapshot(), &b.snapshot(), "ctm: resumed vs uninterrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train.micro_batch` may change on resume (the run does not depend on it): a run that
/// continues with passes of 5 rows ends where the uninterrupted whole-batch run ends, within
/// float summation order, and a method that cannot split its batch is refused on resume too.
#[test]
fn a_resumed_run_may_change_its_micro_batch() {
    let dir = scratch("resume-micro");
    let mut cfg = small_cfg("ict", 6, 20);
    cfg.data.batch = 32;
    let (a, _) = run(&cfg, &opts(&dir.join("a"), false, None), &dev()).unwrap();
    let out = dir.join("b");
    run(&cfg, &opts(&out, false, Some(10)), &dev()).unwrap();
    let mut micro = cfg.clone();
    micro.train.micro_batch = 5;
    let (b, _) = run(&micro, &opts(&out, true, None), &dev()).unwrap();
    assert_eq!(b.state.step, 20);
    assert_eq!(
        b.rng.state(),
        a.rng.state(),
        "the generator is where the whole-batch run left it"
    );
    for (i, (x, y)) in a.state.online.iter().zip(&b.state.online).enumerate() {
        let (x, y) = (cm::tensor::to_vec(x.clone()), cm::tensor::to_vec(y.clone()));
        let diff = x.iter().zip(&y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff < 1e-4, "tensor #{i}: micro-batched resume differs by {diff}");
    }
    // CTM with its adaptive λ cannot split its batch: refused when resuming as well.
    let cfg = small_cfg("ctm", 6, 20);
    let out = dir.join("ctm");
    run(&cfg, &opts(&out, false, Some(10)), &dev()).unwrap();
    let mut micro = cfg.clone();
    micro.train.micro_batch = 16;
    let e = run(&micro, &opts(&out, true, None), &dev()).err().expect("refused");
    assert!(format!("{e:#}").contains("cannot split its batch"), "{e:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fit_to_budget`: a run with a 2-second budget and a nominal million steps is shortened to
/// what the budget allows, so its learning-rate cool-down begins and the step count the run
/// ends at is the length its schedule used; without it the budget cuts the run at full rate.
/// (Asserts behaviour, not speed: the fitted length only has to be reached within the
/// budget's 3 % margin, and a much slower second than first half would fail it.)
#[test]
fn a_budget_fitted_run_cools_down_before_its_budget_ends() {
    let dir = scratch("fit-budget");
    let mut cfg = small_cfg("ict", 1, 1_000_000);
    cfg.train.lr_cooldown = 0.5;
    cfg.train.ckpt_every = 1_000_000;
    cfg.train.log_every = 1_000_000;
    let budget = |fit: bool, name: &str| {
        let (t, _) = run(
            &cfg,
            &RunOptions {
                max_seconds: Some(2.0),
                fit_to_budget: fit,
                ..RunOptions::new(dir.join(name))
            },
            &dev(),
        )
        .unwrap();
        t
    };
    let fitted = budget(true, "fit");
    let k = fitted.setup.cfg.train.steps;
    assert!(k < 1_000_000 && k > 20, "fitted length {k}");
    assert!(
        fitted.state.step as f64 >= 0.5 * k as f64,
        "the cool-down began: step {} of {k}",
        fitted.state.step
    );
    let lr = |t: &cm::train::Trainer| cm::train::lr_at(&t.setup.cfg.train, t.state.step);
    assert!(lr(&fitted) < 0.9 * cfg.train.lr, "lr {} at the end", lr(&fitted));
    let plain = budget(false, "plain");
    assert_eq!(plain.setup.cfg.train.steps, 1_000_000);
    assert_eq!(lr(&plain), cfg.train.lr, "no cool-down without fitting");
}
