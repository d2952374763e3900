//! Non-finite batches: the update is skipped and counted, nothing in the state moves, and
//! `train.max_bad_steps` consecutive bad steps stop the run with a loadable last checkpoint.

use crate::common::*;
use burn::prelude::*;
use cm::run::Setup;
use cm::tensor::tensor2;
use cm::train::{run_with, RunOptions, Trainer};

fn filled(v: f32, b: usize, d: usize) -> Tensor<2> {
    tensor2(vec![v; b * d], b, d, &dev())
}

/// A batch that is fine except for one poisoned value.
fn poisoned(t: &mut Trainer, v: f32) -> Tensor<2> {
    let b = t.setup.cfg.data.batch;
    let x = t.setup.batch(&mut cm::rng::Rng::new(99), b);
    let mut vals = cm::tensor::to_vec(x);
    vals[17] = v;
    tensor2(vals, b, 2, &dev())
}

#[test]
fn nonfinite_batch_skips_update_and_leaves_state_untouched() {
    for method in ["ict", "ct", "edm"] {
        let cfg = small_cfg(method, 1, 100);
        let mut t = Trainer::new(Setup::new(&cfg, &dev()).unwrap()).unwrap();
        for _ in 0..5 {
            assert!(!t.step().skipped);
        }
        let bad_batches = [
            filled(f32::NAN, 128, 2),
            poisoned(&mut t, f32::NAN),
            poisoned(&mut t, f32::INFINITY),
            filled(f32::NEG_INFINITY, 128, 2),
        ];
        for (k, x) in bad_batches.into_iter().enumerate() {
            let before = t.snapshot();
            let log = t.step_on(x);
            assert!(
                log.skipped,
                "{method}: bad batch {k} was not skipped (loss {})",
                log.loss
            );
            let after = t.snapshot();
            for ((g, x), (_, y)) in state_bits(&before).into_iter().zip(state_bits(&after)) {
                assert_eq!(x, y, "{method}: {g} changed on a skipped step");
            }
            assert_eq!(before.adam_t, after.adam_t, "{method}: Adam step counters moved");
            assert_eq!(t.bad_total, k as u64 + 1, "{method}: skip not counted");
            assert_eq!(t.bad_run, k as u64 + 1);
            assert_eq!(after.step, before.step + 1);
            assert_eq!(after.bad_steps, k as u64 + 1);
        }
        // The skip counters travel through a checkpoint.
        let d = scratch(&format!("skipsave-{method}"));
        t.save(&d).unwrap();
        let (_, setup, st) = cm::run::load_run(&d, &dev()).unwrap();
        let back = Trainer::from_state(setup, st).unwrap();
        assert_eq!(
            (back.bad_total, back.bad_run),
            (4, 4),
            "{method}: skip counters lost in the checkpoint"
        );
        let _ = std::fs::remove_dir_all(&d);
        let good = t.step();
        assert!(
            !good.skipped && good.loss.is_finite(),
            "{method}: training does not recover"
        );
        assert_eq!(t.bad_run, 0);
        assert_eq!(t.bad_total, 4);
    }
}

#[test]
fn consecutive_bad_steps_stop_the_run_with_a_loadable_checkpoint() {
    let dir = scratch("maxbad");
    let mut cfg = small_cfg("ict", 2, 200);
    cfg.train.max_bad_steps = 6;
    let first_bad = 23;
    let mut good_online = None;
    let opts = RunOptions::new(dir.clone());
    let r = run_with(&cfg, &opts, &dev(), |t| {
        if t.state.step >= first_bad {
            if good_online.is_none() {
                good_online = Some(bits(&t.state.online));
            }
            t.step_on(filled(f32::NAN, 128, 2))
        } else {
            t.step()
        }
    });
    let e = format!("{:#}", r.err().expect("the run must stop"));
    assert!(
        e.contains("6 consecutive steps") && e.contains("train.max_bad_steps"),
        "{e}"
    );
    assert!(
        e.contains(dir.to_str().unwrap()),
        "the message names the run folder: {e}"
    );
    let (_, _, st) = cm::run::load_run(&dir, &dev()).expect("the last checkpoint loads");
    assert_eq!(st.step, first_bad + 6);
    assert_eq!(st.bad_steps, 6);
    assert_eq!(
        bits(&st.online),
        good_online.unwrap(),
        "the checkpoint holds the last good weights"
    );

    // Bad steps interrupted by a good one do not stop the run, and the counter survives resume.
    let dir2 = scratch("maxbad2");
    let opts = RunOptions::new(dir2.clone());
    let (t, _) = run_with(&cfg, &opts, &dev(), |t| {
        if t.state.step % 6 < 5 && t.state.step > 10 {
            t.step_on(filled(f32::NAN, 128, 2))
        } else {
            t.step()
        }
    })
    .expect("non-consecutive bad steps must not stop the run");
    assert!(t.bad_total > 100);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}
