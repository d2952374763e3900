//! The SWD data floor of `cm demo` for each data set: the single draw the demo printed before
//! session 9 and the mean of [`cm::eval::FLOOR_DRAWS`] fresh draws it prints now, against the
//! same reference (the demo's evaluation seed), so ratios measured with the old floor can be
//! re-read against the steadier one without retraining:
//! `cargo run --release --example demo_floors -- [N] [DATA …]` (default 10 000 points; every
//! built-in 2-D and N-D set). Prints one JSON object per line.
use cm::rng::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let named: Vec<String> = args
        .iter()
        .skip_while(|s| s.parse::<usize>().is_ok())
        .cloned()
        .collect();
    let sets: Vec<String> = if named.is_empty() {
        [
            "ring8",
            "moons",
            "gmm5d",
            "gmm10d",
            "swiss-roll",
            "checkerboard",
            "rings",
            "pinwheel",
            "gmm-unequal",
        ]
        .map(String::from)
        .to_vec()
    } else {
        named
    };
    for name in sets {
        let data = cm::data::Dataset::from_spec(&name, &Default::default())?;
        // `cm demo`'s evaluation (src/demo.rs `summarize`, eval::evaluate): seed 0xE7A1.
        let (reference, fresh) = data.reference_pair(&mut Rng::new(0xE7A1), n);
        let single = cm::eval::swd(&fresh, &reference, data.dim());
        let f = cm::eval::swd_floor(&data, &reference, &fresh, &mut Rng::new(0xF1005));
        println!(
            "{}",
            serde_json::json!({"data": name, "n": n, "single_draw": single, "mean": f.mean, "min": f.min, "max": f.max, "draws": f.draws})
        );
    }
    Ok(())
}
