//! `cm eval --fid-weights` on a folder of images: FID on Inception features beside the rest of
//! the image protocol (synthetic Inception weights: the plumbing, not the values; the network
//! itself is checked against pytorch-fid in `src/eval/inception.rs`).

use crate::common::*;
use std::path::{Path, PathBuf};

/// Writes the first `n` fixture digits as RGB PNGs (grey, white digits on black) into `dir`.
fn png_folder(dir: &Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte");
    let im = cm::data::images::load_idx_images(&fx).unwrap();
    for i in 0..n {
        let mut xs = Vec::new();
        im.get(i, false, &mut xs);
        let mut c = cm::io::plot::Canvas::new(28, 28, [0, 0, 0]);
        for (k, v) in xs.iter().enumerate() {
            let u = ((v + 1.0) * 127.5).round() as u8;
            c.set((k % 28) as i64, (k / 28) as i64, [u, u, u]);
        }
        cm::io::plot::write_png_atomic(&dir.join(format!("{i:03}.png")), &c).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn eval_of_an_image_folder_reports_fid_beside_its_floor() {
    let dir = scratch("fid-folder");
    let data = mnist_folder(&dir);
    let pngs = png_folder(&dir.join("samples"), 10);
    let w = dir.join("inception.safetensors");
    cm::eval::inception::write_synthetic_weights(&w).unwrap();
    let data_arg = format!("mnist:{}", data.display());
    let out = std::process::Command::new(cm_bin())
        .args([
            "eval",
            s(&pngs),
            "--data",
            &data_arg,
            "--n",
            "10",
            "--no-memorisation",
            "--fid-weights",
            s(&w),
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("10 images from") && err.contains("FID (Inception-v3"),
        "{err}"
    );
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
    let j: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fid = j["inception"]["fid"].as_f64().unwrap();
    let floor = j["inception_floor"]["fid"].as_f64().unwrap();
    assert!(fid.is_finite() && floor.is_finite() && fid > -1e-6, "{j}");
    assert!(j["inception"]["kid"].as_array().unwrap().len() == 2);
    // Without the weights: the same protocol, no Inception block.
    let out = std::process::Command::new(cm_bin())
        .args([
            "eval",
            &format!("folder:{}", pngs.display()),
            "--data",
            &data_arg,
            "--n",
            "10",
            "--no-memorisation",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
    let j: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        j.get("inception").is_none() && j["fd"].as_f64().unwrap().is_finite(),
        "{j}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fid_input_errors_name_the_problem() {
    let dir = scratch("fid-errors");
    let pngs = png_folder(&dir.join("samples"), 2);
    let data = mnist_folder(&dir);
    let data_arg = format!("mnist:{}", data.display());
    // A folder of images needs the data set to compare with.
    assert_cli_error(&["eval", s(&pngs)], &["folder of images", "--data"]);
    // A .pth (not converted) is named as such, with where to get and how to convert.
    let pth = write(&dir.join("pt_inception.pth"), b"PK\x03\x04 a zip with a pickle");
    assert_cli_error(
        &[
            "eval",
            s(&pngs),
            "--data",
            &data_arg,
            "--n",
            "8",
            "--fid-weights",
            s(&pth),
        ],
        &["not a safetensors file", "tools/fid_weights.py", "pytorch-fid"],
    );
    // FID is an image metric.
    let csv = write(&dir.join("pts.csv"), "0.1,0.2\n0.3,0.4\n");
    assert_cli_error(
        &["eval", s(&csv), "--data", "ring8", "--fid-weights", s(&pth)],
        &["--fid-weights applies to image data"],
    );
    // The user's files are untouched.
    assert_eq!(std::fs::read(&pth).unwrap(), b"PK\x03\x04 a zip with a pickle");
    assert_eq!(std::fs::read_dir(&pngs).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
