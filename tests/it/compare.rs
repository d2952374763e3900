//! `cm demo --compare`: equal-time runs, evaluation points, outputs, continuing a comparison.

use crate::common::{dev, scratch};
use cm::compare::{read_arms, run_compare, CompareOptions, Entry};

fn opts(out: &std::path::Path, methods: &[&str], data: &[&str]) -> CompareOptions {
    CompareOptions {
        methods: methods.iter().map(|s| Entry::parse(s).unwrap()).collect(),
        data: data.iter().map(|s| s.to_string()).collect(),
        seeds: vec![0],
        budget: 0.6,
        n_eval: 400,
        points: 2,
        out: out.to_path_buf(),
        progress: false,
        rates: Default::default(),
    }
}

/// Each arm gets steps from its measured rate, evaluates at budget/2 and the budget (SWD only
/// before the last point), writes the table, JSON and plot; running again with one more
/// method trains only that one and keeps the finished arms as they were.
#[test]
fn compare_runs_every_arm_once_and_continues() {
    let out = scratch("compare");
    let first = run_compare(&opts(&out, &["ict", "meanflow"], &["ring8"]), &dev()).unwrap();
    assert_eq!(first.len(), 2);
    for a in &first {
        assert!(a.rate > 0.0 && a.steps >= 10, "{a:?}");
        assert_eq!(a.points.len(), 2);
        assert_eq!(a.points[1].steps, a.steps);
        assert!(a.points[0].steps < a.points[1].steps);
        assert!(a.points[0].one.mmd.is_none() && a.points[1].one.mmd.is_some_and(f64::is_finite));
        assert!(a.points[1].one.loglik.is_some(), "ring8 is a mixture: exact loglik");
        assert!(a.floor.swd > 0.0 && a.floor.swd < 0.5, "{:?}", a.floor);
        assert!(a.points.iter().all(|p| p.one.swd.is_finite() && p.two.swd.is_finite()));
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("| ict |") && md.contains("| meanflow |"), "{md}");
    let png = std::fs::read(out.join("compare-ring8.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);

    let second = run_compare(&opts(&out, &["ict", "meanflow", "ect"], &["ring8"]), &dev()).unwrap();
    assert_eq!(second.len(), 3);
    let again = read_arms(&out).unwrap();
    // Kept, not re-run (a re-run would measure another rate and give other step counts; the
    // values went through JSON, so compare to within its float round trip).
    for (a, b) in first.iter().zip(&again) {
        assert_eq!((a.steps, a.points.len()), (b.steps, b.points.len()));
        assert!((a.rate - b.rate).abs() <= 1e-12 * a.rate);
        for (p, q) in a.points.iter().zip(&b.points) {
            assert_eq!(p.steps, q.steps);
            assert!((p.one.swd - q.one.swd).abs() <= 1e-12 * p.one.swd);
        }
    }
    assert_eq!(again[2].method, "ect");
}

/// A distilling method on data without an exact denoiser distils a mixture fitted to the data
/// and is charged the fit; with `teacher = "train"` it trains an EDM teacher for a third of the
/// budget and is charged its time.
#[test]
fn compare_charges_the_teacher_to_the_distilled_method() {
    let out = scratch("compare-teacher");
    let arms = run_compare(&opts(&out, &["cd"], &["moons"]), &dev()).unwrap();
    assert!(!out.join("teacher-moons-s0").exists(), "no trained teacher by default");
    assert!(arms[0].teacher_seconds > 0.0, "the fit is charged");
    assert!(arms[0].points[0].seconds >= arms[0].teacher_seconds);
    let files = scratch("compare-teacher-files");
    let var = files.join("cd-trained.toml");
    std::fs::write(&var, "[method]\nname = \"cd\"\nteacher = \"train\"\n").unwrap();
    let arms = run_compare(&opts(&out, &[var.to_str().unwrap()], &["moons"]), &dev()).unwrap();
    assert!(out.join("teacher-moons-s0").join("config.toml").exists());
    assert!(arms[0].teacher_seconds > 0.0);
    assert!(arms[0].points[0].seconds >= arms[0].teacher_seconds);
}

/// A variant file runs under its stem's name with its fields over the method's demo config;
/// a misspelt field or a file that names no method fails before any training, naming it.
#[test]
fn compare_runs_a_variant_file_under_its_own_name() {
    let out = scratch("compare-variant");
    let files = scratch("compare-variant-files");
    let var = files.join("ict-cool.toml");
    std::fs::write(
        &var,
        "[method]\nname = \"ict\"\n[train]\nlr_cooldown = 0.5\n[model]\nhidden = 64\n",
    )
    .unwrap();
    let e = Entry::parse(var.to_str().unwrap()).unwrap();
    assert_eq!(e.method, "ict");
    assert_eq!(e.label, "ict-cool");
    let cfg = e.config("ring8").unwrap();
    let base = cm::demo::demo_config("ict", "ring8").unwrap();
    assert_eq!(cfg.train.lr_cooldown, 0.5);
    assert_eq!((cfg.train.lr, cfg.train.eval_ema), (base.train.lr, base.train.eval_ema));
    match (&cfg.model, &base.model) {
        (cm::config::ModelConfig::Mlp(m), cm::config::ModelConfig::Mlp(b)) => {
            assert_eq!(m.hidden, 64);
            assert_eq!(m.depth, b.depth);
        }
        _ => panic!("the demo's MLP"),
    }
    let arms = run_compare(&opts(&out, &[var.to_str().unwrap()], &["ring8"]), &dev()).unwrap();
    assert_eq!(arms[0].method, e.label);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains(&format!("| {} |", e.label)), "{md}");

    let bad = files.join("typo.toml");
    std::fs::write(&bad, "[method]\nname = \"ict\"\n[train]\nlr_cooldwn = 0.5\n").unwrap();
    let err = format!("{:#}", Entry::parse(bad.to_str().unwrap()).unwrap_err());
    assert!(err.contains("lr_cooldwn"), "{err}");
    std::fs::write(&bad, "[train]\nlr = 1e-4\n").unwrap();
    let err = format!("{:#}", Entry::parse(bad.to_str().unwrap()).unwrap_err());
    assert!(err.contains("[method] name"), "{err}");
    assert!(Entry::parse("no-such-method").is_err());
}
