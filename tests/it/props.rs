//! Property tests of the loaders: arbitrary bytes never panic; valid inputs round-trip.

use crate::common::*;
use cm::ckpt;
use cm::config::{Config, ModelConfig, Optimizer};
use cm::data::files::{npy_bytes, parse_csv, parse_npy};
use cm::nets::ParamSpec;
use cm::objectives::{MethodConfig, METHODS};
use proptest::prelude::*;
use std::sync::OnceLock;

fn specs() -> &'static (Vec<ParamSpec>, Vec<u8>) {
    static S: OnceLock<(Vec<ParamSpec>, Vec<u8>)> = OnceLock::new();
    S.get_or_init(|| {
        let mut cfg = small_cfg("ict", 0, 10);
        let ModelConfig::Mlp(m) = &mut cfg.model else {
            unreachable!("the default model is an MLP")
        };
        m.hidden = 8;
        m.depth = 1;
        let t = cm::train::Trainer::new(cm::run::Setup::new(&cfg, &dev()).unwrap()).unwrap();
        let bytes = ckpt::to_bytes(&t.snapshot(), &t.setup.specs).unwrap();
        (t.setup.specs.clone(), bytes)
    })
}

fn valid_npy() -> Vec<u8> {
    npy_bytes(&[1.0, -2.0, 3.5, 4.0, 0.0, 6.0], &[3, 2])
}

/// Byte edits applied to a valid input: (position, new byte), plus an optional truncation.
fn mutate(mut b: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(i, v) in edits {
        if !b.is_empty() {
            let n = b.len();
            b[i % n] = v;
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn csv_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_csv(&bytes);
    }

    #[test]
    fn csv_text_never_panics(text in "[0-9eE+\\-.,# \\na-z]{0,120}") {
        let _ = parse_csv(text.as_bytes());
    }

    #[test]
    fn csv_roundtrips(d in 1usize..5, rows in proptest::collection::vec(proptest::collection::vec(-1e6f64..1e6, 4), 1..20), sep in prop_oneof![Just(","), Just(" "), Just("\t"), Just(", ")]) {
        let mut text = String::from("a,b,c,d\n");
        let mut want = vec![];
        for r in &rows {
            text.push_str(&r[..d].iter().map(|v| v.to_string()).collect::<Vec<_>>().join(sep));
            text.push('\n');
            want.extend_from_slice(&r[..d]);
        }
        let (v, dim) = parse_csv(text.as_bytes()).unwrap();
        prop_assert_eq!(dim, d);
        prop_assert_eq!(v, want);
    }

    #[test]
    fn npy_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_npy(&bytes);
    }

    #[test]
    fn npy_mutations_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in proptest::option::of(any::<usize>())) {
        let _ = parse_npy(&mutate(valid_npy(), &edits, cut));
    }

    #[test]
    fn npy_roundtrips(n in 1usize..30, d in 1usize..5, seed in any::<u64>(), one_d in any::<bool>()) {
        let mut rng = cm::rng::Rng::new(seed);
        let d = if one_d { 1 } else { d };
        let vals: Vec<f32> = (0..n * d).map(|_| (rng.normal() * 100.0) as f32).collect();
        let shape = if one_d { vec![n] } else { vec![n, d] };
        let (v, dim) = parse_npy(&npy_bytes(&vals, &shape)).unwrap();
        prop_assert_eq!(dim, d);
        prop_assert_eq!(v, vals.iter().map(|&x| x as f64).collect::<Vec<_>>());
    }

    #[test]
    fn config_never_panics(text in "(\\[(train|data|model|method)\\]\n)?([a-z_]{1,12} = (-?[0-9.e]{1,8}|\"[a-z0-9]{0,6}\"|true)\n){0,4}") {
        let _ = Config::from_toml(&text);
    }

    #[test]
    fn config_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Config::from_toml(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_roundtrips(
        m in 0usize..METHODS.len(), steps in 1u64..1_000_000, lr in 1e-6f64..1.0, seed in 0..=i64::MAX as u64,
        batch in 1usize..4096, hidden in 1usize..1024, depth in 1usize..8, radam in any::<bool>(),
        ema in 0.0f64..0.9999, clip in 0.0f64..10.0, keep in 1usize..10, every in 1u64..10_000,
    ) {
        let mut c = Config::default();
        c.method = MethodConfig::by_name(METHODS[m]).unwrap();
        c.train.steps = steps;
        c.train.lr = lr;
        c.train.seed = seed;
        c.train.optimizer = if radam { Optimizer::Radam } else { Optimizer::Adam };
        c.train.eval_ema = ema;
        c.train.grad_clip = clip;
        c.train.keep_ckpts = keep;
        c.train.ckpt_every = every;
        c.data.batch = batch;
        let ModelConfig::Mlp(mc) = &mut c.model else { unreachable!("the default model is an MLP") };
        mc.hidden = hidden;
        mc.depth = depth;
        let back = Config::from_toml(&c.to_toml()).unwrap();
        prop_assert_eq!(back, c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn checkpoint_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ckpt::from_bytes(&bytes, &specs().0, &dev());
        let _ = ckpt::read_meta(&bytes);
    }

    #[test]
    fn checkpoint_mutations_never_panic(edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..6), cut in proptest::option::of(any::<usize>())) {
        // Edits land in the length prefix and the JSON header, where parsing happens.
        let b = mutate(specs().1.clone(), &edits, cut);
        let _ = ckpt::from_bytes(&b, &specs().0, &dev());
        let _ = ckpt::read_meta(&b);
    }

    #[test]
    fn checkpoint_roundtrips(seed in any::<u64>(), step in any::<u64>(), words in any::<[u64; 4]>()) {
        let (specs, _) = specs();
        let mut rng = cm::rng::Rng::new(seed);
        let mut group = || cm::nets::init_params(specs, &mut rng, &dev());
        let adam_t: Vec<u64> = (0..specs.len() as u64).map(|i| seed.wrapping_add(i)).collect();
        let state = ckpt::State {
            step, rng: words, online: group(), target: group(), ema: group(), adam_m: group(), adam_v: group(),
            adam_t: adam_t.clone(), bad_steps: seed / 3, bad_run: seed / 5,
            method_state: Some(format!("{{\"seed\": {seed}}}")),
            meta: [("method".to_string(), seed.to_string())].into_iter().collect(),
        };
        let back = ckpt::from_bytes(&ckpt::to_bytes(&state, specs).unwrap(), specs, &dev()).unwrap();
        prop_assert_eq!(back.step, step);
        prop_assert_eq!(back.rng, words);
        prop_assert_eq!(&back.adam_t, &adam_t);
        prop_assert_eq!((back.bad_steps, back.bad_run), (seed / 3, seed / 5));
        prop_assert_eq!(&back.method_state, &state.method_state);
        prop_assert_eq!(back.meta.get("method"), Some(&seed.to_string()));
        prop_assert_eq!(state_bits(&back), state_bits(&state));
    }
}
