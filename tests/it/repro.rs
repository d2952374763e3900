//! `cm repro --quick`: every 2-D claim runs end to end (one seed, tiny budgets), writes its
//! table, JSON and PNGs, reuses finished runs when run again, and its statistics agree with
//! the per-run records. No verdict is asserted: with one seed they are inconclusive by rule.

use super::common::{cm_bin, scratch};
use cm::repro::stats;

fn repro(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(cm_bin())
        .arg("repro")
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("cm runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn repro_quick_runs_every_2d_claim_and_resumes() {
    let dir = scratch("repro-quick");
    let out = dir.join("ledger");
    let o = out.to_str().unwrap();
    let (ok, stdout, err) = repro(&["all", "--quick", "--json", "--out", o]);
    assert!(ok, "cm repro --quick failed: {err}");
    let last = stdout.lines().last().expect("a JSON line");
    let ledger: serde_json::Value = serde_json::from_str(last).expect("the ledger as JSON");
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ledger.json")).unwrap()).unwrap();
    assert_eq!(ledger["claims"], on_disk["claims"]);
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(
        table.starts_with("| claim |") && table.contains("Verdict rule"),
        "{table}"
    );
    let claims = ledger["claims"].as_array().unwrap();
    assert_eq!(
        claims.len(),
        cm::repro::claims::all(&cm::repro::claims::Budget::quick()).len()
    );
    let mut ran = 0;
    for c in claims {
        let id = c["id"].as_str().unwrap();
        let status = c["status"].as_str().unwrap();
        if status != "done" {
            // Only the image claim may be skipped, and it says why.
            assert!(id == "cd-lpips" && status.starts_with("not run"), "{id}: {status}");
            assert!(table.contains(status));
            continue;
        }
        ran += 1;
        let png = std::fs::read(out.join(format!("{id}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{id}.png");
        assert!(out.join(format!("{id}.json")).exists());
        let tests = c["tests"].as_array().unwrap();
        assert!(!tests.is_empty(), "{id} has no tests");
        for t in tests {
            let verdict = t["verdict"].as_str().unwrap();
            assert!(
                table.contains(t["name"].as_str().unwrap()),
                "{id}: test missing from the table"
            );
            assert!(["reproduced", "not-reproduced", "inconclusive"].contains(&verdict));
            let effects = t["effects"].as_array().unwrap();
            assert_eq!(effects.len(), 1, "{id}: one seed, one effect");
            if t["kind"] != "rate" {
                // One seed: the t interval is unbounded, so no superiority verdict is possible.
                assert!(
                    t["interval"]["lo"].is_null() && t["interval"]["hi"].is_null(),
                    "{id}: {t}"
                );
                if t["kind"] == "superiority" {
                    assert_eq!(verdict, "inconclusive", "{id}");
                }
            }
        }
        for runs in c["runs"].as_object().unwrap().values() {
            for r in runs.as_array().unwrap() {
                let key = r["key"].as_str().unwrap();
                let f = format!("{}-{key}.json", r["method"].as_str().unwrap());
                assert!(out.join("runs").join(&f).exists(), "{f}");
                assert!(!r["curve"].as_array().unwrap().is_empty() || id == "cd-lpips");
            }
        }
    }
    assert!(ran >= 9, "only {ran} claims ran");

    // The statistics agree with the records: cd-heun's effect is Euler's 1-step SWD minus
    // Heun's, seed by seed.
    let cd = claims.iter().find(|c| c["id"] == "cd-heun").unwrap();
    let swd = |arm: &str| cd["runs"][arm][0]["metrics"]["swd@1"].as_f64().unwrap();
    let e = cd["tests"][0]["effects"][0].as_f64().unwrap();
    assert!((e - (swd("euler") - swd("heun"))).abs() < 1e-12, "{e}");
    // The multistep contrast: (swd1 − swd2) − (swd4 − swd8).
    let ms = claims.iter().find(|c| c["id"] == "multistep").unwrap();
    let m = |k: &str| ms["runs"]["ict"][0]["metrics"][k].as_f64().unwrap();
    let e = ms["tests"][1]["effects"][0].as_f64().unwrap();
    assert!((e - ((m("swd@1") - m("swd@2")) - (m("swd@4") - m("swd@8")))).abs() < 1e-12);
    // A rate test counts the diverged runs of its arms.
    let sc = claims.iter().find(|c| c["id"] == "scm-stability").unwrap();
    let d = sc["tests"][0]["diverged"].as_array().unwrap();
    let div = |arm: &str| sc["runs"][arm][0]["diverged"].as_bool().unwrap() as u64;
    assert_eq!(d[0].as_u64().unwrap(), div("no-norm"));
    assert_eq!(d[2].as_u64().unwrap(), div("sct"));

    // Run again: every run is reused (nothing trains) and the table is the same but for times.
    let (ok, _, err2) = repro(&["all", "--quick", "--out", o]);
    assert!(ok, "second run failed: {err2}");
    assert!(!err2.contains(" steps\n"), "a finished run was trained again:\n{err2}");
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("Total"))
            .map(|l| l.rsplitn(3, '|').nth(2).unwrap_or(l).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&table),
        strip(&std::fs::read_to_string(out.join("table.md")).unwrap())
    );

    // An unknown claim is an error naming the valid ones.
    let (ok, _, err3) = repro(&["no-such-claim", "--quick", "--out", o]);
    assert!(
        !ok && err3.contains("unknown claim 'no-such-claim'") && err3.contains("cd-heun"),
        "{err3}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The statistics against known values (the unit tests in `src/repro/stats.rs` hold more).
#[test]
fn repro_statistics_known_values() {
    assert!((stats::t_quantile(0.975, 2.0) - 4.302_653).abs() < 1e-5);
    assert!((stats::t_quantile(0.975, 4.0) - 2.776_445).abs() < 1e-5);
    let ci = stats::t_interval(&[0.10, 0.12, 0.14]);
    // mean 0.12, sd 0.02, half-width 4.302653·0.02/√3 = 0.0496828.
    assert!((ci.lo - (0.12 - 0.049_682_8)).abs() < 1e-6 && (ci.hi - (0.12 + 0.049_682_8)).abs() < 1e-6);
    assert_eq!(stats::superiority(&ci, 0.02), stats::Verdict::Reproduced);
    assert!((stats::fisher_one_sided(5, 5, 0, 5) - 1.0 / 252.0).abs() < 1e-12);
    let (lo, hi) = stats::clopper_pearson(0, 5);
    assert!(lo == 0.0 && (hi - 0.521_824).abs() < 1e-5);
}
