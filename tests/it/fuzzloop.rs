//! A plain mutation-fuzzing loop over the four loaders (the fallback to `fuzz/`'s libFuzzer
//! targets when no nightly-capable build is at hand). Ignored by default; run with
//! `FUZZ_ITERS=1000000 cargo test --release --test it fuzzloop -- --ignored --nocapture`.
//! Inputs start from the committed seeds in `fuzz/corpus/<target>/` and are mutated by
//! byte flips, insertions, deletions, truncation, splices and format tokens; any panic fails.

use crate::common::*;
use std::path::Path;

const TOKENS: &[&str] = &[
    ",",
    " ",
    "\n",
    "#",
    "-",
    "e",
    "E",
    "1e309",
    "nan",
    "inf",
    "-0",
    "0x",
    "'",
    "(",
    ")",
    ",)",
    "'descr'",
    "<f4",
    "<f8",
    "<i8",
    "True",
    "False",
    "'shape'",
    "(0,)",
    "(18446744073709551615, 2)",
    "[",
    "]",
    "=",
    "\"",
    "[train]",
    "[model]",
    "[method]",
    "[data]",
    "name",
    "kind",
    "steps",
    "seed",
    "lr",
    "9223372036854775807",
    "-1",
    "1.5",
    "\"dtype\":\"F32\"",
    "\"shape\":[",
    "\"data_offsets\":[",
    "__metadata__",
    "{",
    "}",
    "\u{ff}",
];

fn mutate(m: &mut Mix, seeds: &[Vec<u8>], b: &mut Vec<u8>) {
    for _ in 0..1 + m.below(4) {
        match m.below(8) {
            0 if !b.is_empty() => {
                let i = m.below(b.len());
                b[i] ^= 1 << m.below(8);
            }
            1 if !b.is_empty() => {
                let i = m.below(b.len());
                b[i] = m.next() as u8;
            }
            2 => {
                let i = m.below(b.len() + 1);
                let t = TOKENS[m.below(TOKENS.len())].as_bytes();
                b.splice(i..i, t.iter().copied());
            }
            3 if !b.is_empty() => {
                let i = m.below(b.len());
                let j = (i + 1 + m.below(16)).min(b.len());
                b.drain(i..j);
            }
            4 => b.truncate(m.below(b.len() + 1)),
            5 => {
                let s = &seeds[m.below(seeds.len())];
                if !s.is_empty() {
                    let i = m.below(s.len());
                    let j = (i + m.below(64)).min(s.len());
                    let k = m.below(b.len() + 1);
                    b.splice(k..k, s[i..j].iter().copied());
                }
            }
            6 if b.len() >= 8 => {
                // Interesting integers in the first 8 bytes (safetensors' header length).
                let v: u64 = [
                    0,
                    1,
                    7,
                    8,
                    0xffff,
                    u64::MAX,
                    b.len() as u64,
                    (b.len() as u64).wrapping_sub(8),
                ][m.below(8)];
                b[..8].copy_from_slice(&v.to_le_bytes());
            }
            _ => b.push(m.next() as u8),
        }
    }
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    v.push(vec![]);
    v
}

fn fuzz(name: &str, iters: u64, f: &dyn Fn(&[u8])) -> u64 {
    let seeds = seeds(name);
    let mut m = Mix(0xF022 ^ name.len() as u64);
    let t0 = std::time::Instant::now();
    for n in 0..iters {
        let mut b = seeds[m.below(seeds.len())].clone();
        mutate(&mut m, &seeds, &mut b);
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&b))) {
            let path = std::env::temp_dir().join(format!("cm-fuzzloop-crash-{name}-{n}"));
            std::fs::write(&path, &b).unwrap();
            std::panic::resume_unwind(p);
        }
    }
    eprintln!(
        "fuzzloop {name}: {iters} executions in {:.1}s, 0 crashes",
        t0.elapsed().as_secs_f64()
    );
    iters
}

fn iters() -> u64 {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

#[test]
#[ignore]
fn fuzzloop_csv() {
    fuzz("csv", iters(), &|b| {
        if let Ok((v, d)) = cm::data::files::parse_csv(b) {
            assert!(d >= 1 && v.len() % d == 0 && v.iter().all(|x| x.is_finite()));
        }
    });
}

#[test]
#[ignore]
fn fuzzloop_npy() {
    fuzz("npy", iters(), &|b| {
        if let Ok((v, d)) = cm::data::files::parse_npy(b) {
            assert!(d >= 1 && v.len() % d == 0 && v.len() * 4 <= b.len() && v.iter().all(|x| x.is_finite()));
        }
    });
}

#[test]
#[ignore]
fn fuzzloop_config() {
    fuzz("config", iters(), &|b| {
        if let Ok(c) = cm::config::Config::from_toml(&String::from_utf8_lossy(b)) {
            let back = cm::config::Config::from_toml(&c.to_toml()).expect("an accepted config re-parses");
            assert_eq!(back.to_toml(), c.to_toml());
        }
    });
}

#[test]
#[ignore]
fn fuzzloop_checkpoint() {
    let mut cfg = cm::config::Config::default();
    let cm::config::ModelConfig::Mlp(mc) = &mut cfg.model else {
        unreachable!("the default model is an MLP")
    };
    mc.hidden = 4;
    mc.depth = 1;
    mc.emb_dim = 2;
    let specs = cm::run::Setup::new(&cfg, &dev()).unwrap().specs;
    fuzz("checkpoint", iters(), &|b| {
        let _ = cm::ckpt::read_meta(b);
        if let Ok(st) = cm::ckpt::from_bytes(b, &specs, &dev()) {
            assert_eq!(st.online.len(), specs.len());
        }
    });
}
