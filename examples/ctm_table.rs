//! CTM ablation table on ring8: CTM only, +DSM, +DSM+GAN; γ = 0 and γ = 1 at 1, 2, 4, 8 steps.
//!
//! `cargo run --release --example ctm_table -- [STEPS] [N_EVAL] [VARIANTS]`
//! (defaults 3000, 10000; MLP hidden 128, batch 256, "ctm,dsm,gan"). Prints one row per (variant, γ, steps): sliced
//! Wasserstein distance, MMD and energy distance against fresh data, measured with the
//! online weights (short runs: the 0.999 evaluation EMA still holds much of the init); the
//! data-vs-data SWD is the noise floor.

use cm::demo::demo_config;
use cm::eval;
use cm::generate::{sample, NoiseSource, SampleOptions};
use cm::objectives::MethodConfig;
use cm::rng::Rng;
use cm::run::Setup;
use cm::samplers::{ode::Solver, SamplerOptions};
use cm::train::Trainer;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3000);
    let n_eval: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let variants: Vec<String> = args
        .get(3)
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or(vec!["ctm".into(), "dsm".into(), "gan".into()]);
    let dev = burn::prelude::Device::flex();
    println!("| variant | train s | gamma | steps | SWD | MMD | energy |");
    println!("|---|---|---|---|---|---|---|");
    for v in &variants {
        let mut cfg = demo_config("ctm", "ring8")?;
        cfg.train.steps = steps;
        // Sized for 2 shared cores: hidden 128, batch 256.
        let cm::config::ModelConfig::Mlp(m) = &mut cfg.model else {
            unreachable!("the default model is an MLP")
        };
        m.hidden = 128;
        cfg.data.batch = 256;
        if let MethodConfig::Ctm(c) = &mut cfg.method {
            c.dsm = v != "ctm";
            c.gan = v == "gan";
            c.gan_start = steps / 4;
        }
        let setup = Setup::new(&cfg, &dev)?;
        let mut tr = Trainer::new(setup)?;
        let t0 = std::time::Instant::now();
        for _ in 0..steps {
            tr.step();
        }
        let secs = t0.elapsed().as_secs_f64();
        let setup = &tr.setup;
        let mut rng = Rng::new(0xE7A1);
        let reference = setup.data.sample(&mut rng, n_eval);
        let fresh = setup.data.sample(&mut rng, n_eval);
        let scale = setup.standardizer.std.iter().sum::<f64>() / 2.0;
        let floor = eval::report(&fresh, &reference, 2, None, scale);
        println!(
            "| data vs data | | | | {:.4} | {:.5} | {:.4} |",
            floor.swd, floor.mmd, floor.energy
        );
        let sd = setup.model.precond.sigma_d();
        let draw = |opts: SamplerOptions, k: usize, rng: &mut Rng| {
            let s = setup.objective.sampler_with(sd, &opts).expect("CTM sampler options");
            let o = SampleOptions::new(setup, k, NoiseSource::Stream(rng)).with_sampler(s, k);
            sample(setup, tr.online_net(), n_eval, o)
        };
        for gamma in [0.0, 1.0] {
            for k in [1usize, 2, 4, 8] {
                let opts = SamplerOptions {
                    gamma: Some(gamma),
                    ode: None,
                };
                let xs = draw(opts, k, &mut rng);
                let r = eval::report(&xs, &reference, 2, None, scale);
                println!(
                    "| {v} | {secs:.0} | {gamma} | {k} | {:.4} | {:.5} | {:.4} |",
                    r.swd, r.mmd, r.energy
                );
            }
        }
        for k in [8usize, 32] {
            let opts = SamplerOptions {
                gamma: None,
                ode: Some(Solver::Heun),
            };
            let xs = draw(opts, k, &mut rng);
            let r = eval::report(&xs, &reference, 2, None, scale);
            println!(
                "| {v} | {secs:.0} | ode-heun | {k} | {:.4} | {:.5} | {:.4} |",
                r.swd, r.mmd, r.energy
            );
        }
    }
    Ok(())
}
