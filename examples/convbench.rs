//! Conv2d forward+backward: burn's conv2d vs cm's conv2d_same (src/nets/kernels/conv.rs), the
//! latter on both of its paths (direct 3×3 kernels, im2col + sgemm).
#![allow(dead_code)]
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use cm::rng::Rng;
use std::time::Instant;

fn im2col_nchw(x: Tensor<4>, w: Tensor<4>, b: Tensor<1>) -> Tensor<4> {
    let [bs, c, h, wd] = x.dims();
    let [o, _, k, _] = w.dims();
    let p = k / 2;
    let xp = x.pad(
        [(0, 0), (0, 0), (p, p), (p, p)],
        burn::tensor::ops::PadMode::Constant(0.0),
    );
    let mut cols = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            cols.push(
                xp.clone()
                    .slice([0..bs, 0..c, ky..ky + h, kx..kx + wd])
                    .reshape([bs, c, 1, h * wd]),
            );
        }
    }
    let cols = Tensor::cat(cols, 2).reshape([bs, c * k * k, h * wd]);
    let wm = w.reshape([1, o, c * k * k]);
    (wm.matmul(cols) + b.reshape([1, o, 1])).reshape([bs, o, h, wd])
}

fn time(name: &str, n: usize, f: impl Fn() -> f32) {
    for _ in 0..2 {
        f();
    }
    let t0 = Instant::now();
    let mut s = 0.0;
    for _ in 0..n {
        s += f();
    }
    println!("{name}: {:.2} ms ({s:.3})", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
}

fn main() {
    let dev = Device::flex();
    let mut rng = Rng::new(1);
    for (bs, c, o, hw) in [
        (64usize, 16usize, 16usize, 28usize),
        (64, 32, 32, 14),
        (64, 48, 16, 28),
        (64, 1, 16, 28),
    ] {
        let x = rng.normal_tensor([bs, c, hw, hw], &dev);
        let w = rng.normal_tensor([o, c, 3, 3], &dev).mul_scalar(0.1);
        let b = rng.normal_tensor([o], &dev);
        let y1 = conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        let y2 = cm::nets::kernels::conv::conv2d_same(x.clone(), w.clone(), b.clone());
        let err = (y1 - y2).abs().max().into_scalar::<f32>();
        println!("shape b{bs} c{c} o{o} {hw}px  max err {err:e}");
        let run = |im: bool| {
            let xa = x.clone().autodiff().require_grad();
            let wa = w.clone().autodiff().require_grad();
            let ba = b.clone().autodiff().require_grad();
            let y = if im {
                cm::nets::kernels::conv::conv2d_same(xa.clone(), wa.clone(), ba.clone())
            } else {
                conv2d(
                    xa.clone(),
                    wa.clone(),
                    Some(ba.clone()),
                    ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                )
            };
            let l = y.square().mean();
            let g = l.backward();
            let gx = xa.grad(&g).unwrap();
            let gw = wa.grad(&g).unwrap();
            gx.sum().into_scalar::<f32>() + gw.sum().into_scalar::<f32>()
        };
        time("  burn conv2d fwd+bwd", 10, || run(false));
        cm::nets::kernels::conv::set_direct(false);
        time("  cm im2col   fwd+bwd", 10, || run(true));
        time("  cm im2col   fwd", 20, || {
            cm::nets::kernels::conv::conv2d_same(x.clone(), w.clone(), b.clone())
                .sum()
                .into_scalar::<f32>()
        });
        cm::nets::kernels::conv::set_direct(true);
        time("  cm direct   fwd+bwd", 10, || run(true));
        time("  burn conv2d fwd", 20, || {
            conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            )
            .sum()
            .into_scalar::<f32>()
        });
        time("  cm direct   fwd", 20, || {
            cm::nets::kernels::conv::conv2d_same(x.clone(), w.clone(), b.clone())
                .sum()
                .into_scalar::<f32>()
        });
    }
}
