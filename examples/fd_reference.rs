//! Reference FD-mnistnet / FD-fashionnet figures between real image sets (10k images each):
//! MNIST test vs train, Fashion test vs train, and MNIST vs Fashion.
//!
//! cargo run --release --example fd_reference -- ../shared/data/mnist ../shared/data/fashion-mnist

use burn::prelude::*;
use cm::eval::images::{ImageEvaluator, Net};

fn flat(dir: &str, test: bool, n: usize) -> Vec<f64> {
    let im = cm::data::images::load_mnist_dir(std::path::Path::new(dir), test).unwrap();
    let mut xs = Vec::new();
    for i in 0..n.min(im.n) {
        im.get(i, false, &mut xs);
    }
    xs
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (md, fd) = (&a[1], &a[2]);
    let n = 10_000;
    let dev = Device::flex();
    let shape = (1, 28, 28);
    let (mtr, mte) = (flat(md, false, n), flat(md, true, n));
    let (ftr, fte) = (flat(fd, false, n), flat(fd, true, n));
    for net in [Net::Mnist, Net::Fashion] {
        for (rname, r) in [("mnist-train", &mtr), ("fashion-train", &ftr)] {
            let ev = ImageEvaluator::new(net, r, shape, &dev).unwrap();
            for (sname, s) in [("mnist-test", &mte), ("fashion-test", &fte)] {
                let rep = ev.report(s);
                println!(
                    "{} {sname} vs {rname}: {:.3}  (confidence {:.3})",
                    rep.fd_net, rep.fd, rep.confidence
                );
            }
        }
    }
}
