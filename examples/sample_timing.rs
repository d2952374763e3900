//! The library-only time of `cm sample`'s sampling call, for the Python package's overhead
//! figure (python/bench/overhead.py runs this and `Model.sample` on the same run):
//! `cargo run --release --example sample_timing -- RUN N STEPS REPEATS` prints the median
//! seconds of `generate::sample_request` (EMA weights, seed 0, batch 256), as JSON.
use burn::prelude::*;
use cm::generate::{sample_request, Classes, Request};

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let run = std::path::PathBuf::from(&a[1]);
    let (n, steps, reps): (usize, usize, usize) = (a[2].parse()?, a[3].parse()?, a[4].parse()?);
    let (_, setup, state) = cm::run::load_run(&run, &Device::flex())?;
    let req = Request {
        steps,
        times: None,
        seed: 0,
        classes: Classes::Balanced,
        batch: 256,
        sampler: Default::default(),
        guidance: 1.0,
    };
    let p = &state.ema[..setup.n_net];
    let mut t = Vec::new();
    let mut first = 0.0;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        let (xs, _) = sample_request(&setup, p, n, &req)?;
        t.push(t0.elapsed().as_secs_f64());
        first = xs[0];
    }
    t.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({"median_s": t[t.len() / 2], "times": t, "x0": first})
    );
    Ok(())
}
