//! Per-op timings at the MNIST U-Net's shapes (batch 64, 16 channels, 28 px).
use burn::prelude::*;
use cm::rng::Rng;
use std::time::Instant;
fn time(name: &str, n: usize, f: impl Fn() -> Tensor<4>) {
    for _ in 0..3 {
        let _ = f();
    }
    let t0 = Instant::now();
    for _ in 0..n {
        let y = f();
        std::hint::black_box(&y);
    }
    println!("{name}: {:.3} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
}
fn main() {
    let dev = Device::flex();
    let mut rng = Rng::new(1);
    let x = rng.normal_tensor([64, 16, 28, 28], &dev);
    let x2 = rng.normal_tensor([64, 16, 28, 28], &dev);
    let g = rng.normal_tensor([16], &dev);
    let b = rng.normal_tensor([16], &dev);
    let m = rng.normal_tensor([64, 32], &dev);
    let w = rng.normal_tensor([16, 16, 3, 3], &dev);
    let n = if std::env::var("ONLY_UNET").is_ok() { 1 } else { 30 };
    time("gn+mod+silu fused", n, || {
        cm::nets::kernels::fused::group_norm(x.clone(), g.clone(), b.clone(), Some(m.clone()), 4, 1e-5, true)
    });
    time("gn fused", n, || {
        cm::nets::kernels::fused::group_norm(x.clone(), g.clone(), b.clone(), None, 4, 1e-5, false)
    });
    time("silu fused", n, || cm::nets::kernels::fused::silu(x.clone()));
    time("conv 16->16", n, || {
        cm::nets::kernels::conv::conv2d_same(x.clone(), w.clone(), b.clone())
    });
    time("add", n, || x.clone() + x2.clone());
    time("mul_scalar", n, || x.clone().mul_scalar(0.7));
    time("cat ch", n, || Tensor::cat(vec![x.clone(), x2.clone()], 1));
    time("clone+into_data roundtrip", n, || {
        Tensor::from_data(x.clone().into_data(), &dev)
    });
    time("zeros", n, || Tensor::zeros([64, 16, 28, 28], &dev));
    {
        use cm::nets::Backbone;
        let cfg = cm::nets::unet::UnetConfig {
            base: 16,
            mults: vec![1, 2],
            res_blocks: 1,
            attention: false,
            zero_out: false,
            ..Default::default()
        };
        let net = cm::nets::unet::Unet::new(&cfg, 784, 1, 0).unwrap();
        let p = cm::nets::init_params(&net.specs(), &mut rng, &dev);
        let xf = rng.normal_tensor([64, 784], &dev);
        let c = rng.normal_tensor([64, 1], &dev);
        let reps = if std::env::var("ONLY_UNET").is_ok() { 60 } else { 10 };
        time("unet forward", reps, || {
            net.forward(&p, xf.clone(), &[c.clone()], None).reshape([64, 1, 28, 28])
        });
    }
    time("down (mean)", n, || {
        x.clone()
            .reshape([64 * 16 * 14, 2, 14, 2])
            .mean_dim(3)
            .mean_dim(1)
            .reshape([64, 16, 14, 14])
    });
}
