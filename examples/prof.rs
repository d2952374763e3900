use burn::prelude::*;
use std::time::Instant;
fn main() {
    let dev = Device::flex();
    let a: Tensor<2> = Tensor::random([512, 512], burn::tensor::Distribution::Default, &dev);
    let b: Tensor<2> = Tensor::random([512, 512], burn::tensor::Distribution::Default, &dev);
    for _ in 0..5 {
        let _ = a.clone().matmul(b.clone()).into_data();
    }
    let t = Instant::now();
    for _ in 0..100 {
        let _ = a.clone().matmul(b.clone()).into_data();
    }
    let s = t.elapsed().as_secs_f64() / 100.0;
    println!(
        "matmul 512^3: {:.3} ms, {:.1} GFLOP/s",
        s * 1e3,
        2.0 * 512f64.powi(3) / s / 1e9
    );
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = (a.clone() + b.clone()).into_data();
    }
    println!("add 512x512: {:.3} ms", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = burn::tensor::activation::silu(a.clone()).into_data();
    }
    println!("silu 512x512: {:.3} ms", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = a.clone().exp().into_data();
    }
    println!("exp: {:.3} ms", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = a.clone().tanh().into_data();
    }
    println!("tanh: {:.3} ms", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = burn::tensor::activation::sigmoid(a.clone()).into_data();
    }
    println!("sigmoid: {:.3} ms", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = (a.clone() * b.clone()).into_data();
    }
    println!("mul: {:.3} ms", t.elapsed().as_secs_f64());
}
#[allow(dead_code)]
fn more() {}
