//! Images/s of the FID Inception network (synthetic weights) on 32 MNIST-size images:
//! `cargo run --release --example inception_speed`.
use burn::prelude::*;
fn main() {
    let dev = Device::flex();
    let net = cm::eval::inception::Inception::from_map(&cm::eval::inception::synthetic_weights(), &dev).unwrap();
    let n = 32;
    let xs: Vec<f64> = (0..n * 784).map(|i| ((i * 37 % 255) as f64) / 127.5 - 1.0).collect();
    for _ in 0..2 {
        let t = std::time::Instant::now();
        let f = net.features(&xs, (1, 28, 28), 16, |_, _| {}).unwrap();
        println!(
            "{:.2} images/s ({} features)",
            n as f64 / t.elapsed().as_secs_f64(),
            f.len()
        );
    }
}
