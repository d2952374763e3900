//! FD of a training run's checkpoints against training time, as a PNG (models/README.md).
//!
//!     cargo run --release --example fd_curve -- LOG.jsonl OUT.png TITLE EVAL.json...
//!
//! Each EVAL.json is the last line of `cm eval CKPT --json` for one checkpoint, named
//! `STEP.json`; the training time of a step is read from the run's `log.jsonl` (steps / the
//! cumulative steps/s of the nearest logged step). The plot shows FD with its data floor
//! (dashed), both on a log axis, against minutes of training.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    anyhow::ensure!(a.len() >= 5, "usage: fd_curve LOG.jsonl OUT.png TITLE EVAL.json...");
    let log = std::fs::read_to_string(&a[1])?;
    // (step, seconds since the start) from the cumulative rate of each logged step.
    let times: Vec<(u64, f64)> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let s = v["step"].as_u64()?;
            let r = v["steps_per_s"].as_f64()?;
            Some((s, s as f64 / r))
        })
        .collect();
    let minutes = |step: u64| -> f64 {
        times
            .iter()
            .min_by_key(|(s, _)| s.abs_diff(step))
            .map(|(_, t)| t / 60.0)
            .unwrap_or(f64::NAN)
    };
    let mut fd = Vec::new();
    let mut floor = Vec::new();
    for f in &a[4..] {
        let step: u64 = Path::new(f)
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{f}: name it STEP.json"))?;
        let v: serde_json::Value = serde_json::from_str(std::fs::read_to_string(f)?.trim())?;
        let x = minutes(step);
        let (m, fl) = (
            v["fd"].as_f64().unwrap_or(f64::NAN),
            v["floor"]["fd"].as_f64().unwrap_or(f64::NAN),
        );
        fd.push((x, m, m, m));
        floor.push((x, fl, fl, fl));
        println!("step {step:>6}  {x:6.1} min  FD {m:.3}  floor {fl:.3}");
    }
    fd.sort_by(|p, q| p.0.total_cmp(&q.0));
    floor.sort_by(|p, q| p.0.total_cmp(&q.0));
    let c = cm::io::plot::band_plot(
        &a[3],
        "minutes of training (2 cores)",
        "dashed: data floor (training images vs test images, same N)",
        &[
            cm::io::plot::Band {
                name: "samples",
                points: &fd,
                dashed: false,
            },
            cm::io::plot::Band {
                name: "data floor",
                points: &floor,
                dashed: true,
            },
        ],
    );
    cm::io::plot::write_png_atomic(Path::new(&a[2]), &c)?;
    Ok(())
}
