//! Steps/s of every method's 2-D demo config on this machine, as the JSON object that
//! `docs/compare/rates.json` holds (`cm demo`'s step budgets and `cm demo --compare --rates`):
//! `cargo run --release --example demo_rates -- [SECONDS] [METHOD …]` (default 8 s each after
//! 20 warm-up steps; every method). Run it on an otherwise idle machine: a loaded one gives
//! lower rates, so demos that then finish sooner than their budget.
use burn::prelude::*;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(8.0);
    let named: Vec<String> = args.iter().skip_while(|s| s.parse::<f64>().is_ok()).cloned().collect();
    let mut methods: Vec<String> = if named.is_empty() {
        cm::compare::DEFAULT_METHODS.iter().map(|s| s.to_string()).collect()
    } else {
        named
    };
    if !methods.iter().any(|m| m == "edm") {
        methods.push("edm".into());
    }
    let device = Device::flex();
    let mut rates = BTreeMap::new();
    for m in &methods {
        let mut cfg = cm::demo::demo_config(m, "ring8")?;
        cfg.train.steps = 1_000_000;
        let mut t = cm::train::Trainer::new(cm::run::Setup::new(&cfg, &device)?)?;
        for _ in 0..20 {
            t.step();
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            t.step();
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        eprintln!("{m:<10} {rate:.1} steps/s");
        rates.insert(m.clone(), (rate * 10.0).round() / 10.0);
    }
    println!("{}", serde_json::to_string_pretty(&rates)?);
    Ok(())
}
