//! The ready models in `models/`: every file loads as a run, samples finite images in range
//! with its documented step count, and `models/README.md` describes it; students sample the
//! digits they are asked for (the shipped classifier agrees with most labels).

use crate::common::*;
use cm::generate::{Classes, NoiseSource, SampleOptions};
use std::path::PathBuf;

fn models() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn shipped_models_load_sample_and_are_documented() {
    let files = models();
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/README.md"))
        .unwrap_or_default();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(readme.contains(name), "models/README.md does not describe {name}");
        let (cfg, setup, state) = cm::run::load_run(f, &dev()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(cfg.data.name.starts_with("mnist:") || cfg.data.name.starts_with("fashion-mnist:"));
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size < 8_000_000, "{name} is {size} bytes: ship model files (cm export), not checkpoints");
        // Diffusion teachers walk a few ODE steps here; consistency models take one.
        let steps = if cfg.method.teacher().is_none() && setup.objective.name() == "edm" { 4 } else { 1 };
        let k = setup.model.net.n_classes();
        let n = 20;
        let mut rng = cm::rng::Rng::new(0);
        let mut o = SampleOptions::new(&setup, steps, NoiseSource::Stream(&mut rng));
        o.classes = Classes::Balanced;
        let xs = cm::generate::sample(&setup, &state.ema[..setup.n_net], n, o);
        assert!(xs.iter().all(|v| v.is_finite()), "{name}: non-finite samples");
        // Images in [-1, 1] up to a little overshoot, and not blank.
        assert!(xs.iter().all(|v| v.abs() < 2.0), "{name}: samples far outside [-1, 1]");
        let ink = xs.iter().filter(|&&v| v > 0.0).count() as f64 / xs.len() as f64;
        assert!((0.02..0.6).contains(&ink), "{name}: {ink} of the pixels are bright");
        // One-step students of a class-conditional model draw the digits they are asked for.
        if k > 0 && steps == 1 {
            let clf = cm::eval::images::Classifier::builtin(cm::eval::images::Net::for_data(&cfg.data.name), &dev()).unwrap();
            let (_, probs) = clf.features(&xs, (1, 28, 28), &dev());
            let hits = probs
                .chunks(10)
                .enumerate()
                .filter(|(i, p)| {
                    let arg = p.iter().enumerate().fold(0, |b, (j, &v)| if v > p[b] { j } else { b });
                    arg == i % k
                })
                .count();
            assert!(hits * 10 >= n * 7, "{name}: only {hits}/{n} samples are of their class");
        }
    }
}
