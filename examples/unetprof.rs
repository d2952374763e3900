//! U-Net iCT training steps for profiling (perf record -e cpu-clock).
use burn::prelude::*;
use cm::run::Setup;
use cm::train::Trainer;
use std::time::Instant;
fn main() {
    let steps: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(10);
    let method = std::env::args().nth(2).unwrap_or_else(|| "ict".into());
    let dev = Device::flex();
    // CM_CONV=im2col runs the convolutions' im2col + sgemm path instead of the direct kernels.
    if std::env::var("CM_CONV").as_deref() == Ok("im2col") {
        cm::nets::kernels::conv::set_direct(false);
    }
    // RECIPE=1: the image recipes' U-Net (cm::bench::recipe_unet_config) instead of the bench U-Net.
    let mut cfg = if std::env::var("RECIPE").is_ok() {
        cm::bench::recipe_unet_config()
    } else {
        cm::bench::unet_config()
    };
    cfg.method = cm::objectives::MethodConfig::by_name(&method).unwrap();
    cfg.train.steps = steps + 2;
    let mut t = Trainer::new(Setup::new(&cfg, &dev).unwrap()).unwrap();
    let n: usize = t
        .setup
        .model
        .net
        .specs()
        .iter()
        .filter(|s| s.trainable)
        .map(|s| s.numel())
        .sum();
    println!("trainable params {n}");
    t.step();
    t.step();
    let t0 = Instant::now();
    for _ in 0..steps {
        t.step();
    }
    println!("{method}: {:.3} steps/s", steps as f64 / t0.elapsed().as_secs_f64());
    let p = t.state.online.clone();
    let net = t.setup.model.net.as_ref();
    let mut rng = cm::rng::Rng::new(3);
    let x = rng.normal_tensor([64, 784], &dev);
    let c = rng.normal_tensor([64, 1], &dev);
    let n = 5;
    if std::env::var("FWD_ONLY").is_ok() {
        for _ in 0..50 {
            let _ = cm::tensor::to_vec(net.forward(&p, x.clone(), &[c.clone()], None));
        }
        return;
    }
    let t0 = Instant::now();
    for _ in 0..n {
        let _ = cm::tensor::to_vec(net.forward(&p, x.clone(), &[c.clone()], None));
    }
    println!("plain forward: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let (mut tf, mut tb) = (0.0, 0.0);
    for _ in 0..n {
        let t0 = Instant::now();
        let pa: Vec<Tensor<1>> = p.iter().map(|t| t.clone().autodiff().require_grad()).collect();
        let y = net.forward(&pa, x.clone(), &[c.clone()], None);
        let l = y.square().mean();
        let _ = l.clone().into_scalar::<f32>();
        let t1 = Instant::now();
        let g = l.backward();
        let gs: Vec<_> = pa.iter().map(|t| t.grad(&g)).collect();
        let _: f32 = gs.into_iter().flatten().map(|g| g.sum().into_scalar::<f32>()).sum();
        tf += (t1 - t0).as_secs_f64();
        tb += t1.elapsed().as_secs_f64();
    }
    println!(
        "autodiff forward: {:.1} ms, backward {:.1} ms",
        tf * 1e3 / n as f64,
        tb * 1e3 / n as f64
    );
}

#[allow(dead_code)]
fn unused() {}
