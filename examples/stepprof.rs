//! Where a training step's time goes (relative proportions).
use burn::prelude::*;
use cm::config::Config;
use cm::rng::Rng;
use cm::run::Setup;
use cm::train::Trainer;
use std::time::Instant;
fn main() {
    let dev = Device::flex();
    let cfg = Config::default();
    let mut t = Trainer::new(Setup::new(&cfg, &dev).unwrap()).unwrap();
    for _ in 0..5 {
        t.step();
    }
    let n = 30;
    let t0 = Instant::now();
    for _ in 0..n {
        t.step();
    }
    println!("full step: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let p = t.state.online.clone();
    let x = Rng::new(1).normal_tensor([512, 2], &dev);
    let s = vec![1.0; 512];
    let t0 = Instant::now();
    for _ in 0..n {
        let _ = cm::tensor::to_vec(t.setup.model.f(&p, x.clone(), &s, None));
    }
    println!("plain forward: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let t0 = Instant::now();
    let mut tb = 0.0;
    for _ in 0..n {
        let pa: Vec<Tensor<1>> = p.iter().map(|t| t.clone().autodiff().require_grad()).collect();
        let y = t.setup.model.f(&pa, x.clone(), &s, None);
        let l = y.square().mean();
        let _ = l.clone().into_scalar::<f32>();
        let tb0 = Instant::now();
        let g = l.backward();
        let gs: Vec<_> = pa.iter().map(|t| t.grad(&g)).collect();
        let _ = gs
            .iter()
            .flatten()
            .map(|t| t.clone().square().sum().into_scalar::<f32>())
            .sum::<f32>();
        tb += tb0.elapsed().as_secs_f64();
    }
    println!(
        "ad forward+backward: {:.2} ms (backward+gradnorm {:.2} ms)",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64,
        tb * 1e3 / n as f64
    );
    let t0 = Instant::now();
    for _ in 0..n {
        let e = cm::train::optim::ema(&t.state.ema, &p, 0.999);
        let _ = cm::tensor::to_vec(e[3].clone());
    }
    println!("ema: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
}
