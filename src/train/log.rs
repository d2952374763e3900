//! The run's JSONL log read back, and the progress line.

use super::History;
use std::io::Write;
use std::path::Path;

/// The (step, loss) points of a run's JSONL log up to step `upto` (a torn last line, from a
/// kill mid-write, is skipped).
pub fn read_history(path: &Path, upto: u64) -> History {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?)))
        .filter(|(s, _)| *s <= upto as f64)
        .collect()
}

/// A one-line progress bar on stderr.
pub fn progress_line(step: u64, total: u64, loss: f64, rate: f64, skipped: u64) {
    let w = 30;
    let filled = (step as f64 / total as f64 * w as f64) as usize;
    let eta = (total - step) as f64 / rate.max(1e-9);
    eprint!(
        "\r[{}{}] {step}/{total}  loss {loss:.4}  {rate:.1} steps/s  eta {eta:.0}s{}   ",
        "#".repeat(filled),
        "-".repeat(w - filled),
        if skipped > 0 {
            format!("  skipped {skipped}")
        } else {
            String::new()
        }
    );
    let _ = std::io::stderr().flush();
}
