//! A user's own points: `.csv` (numbers separated by commas or whitespace, optional header
//! line) and `.npy` (little-endian f4/f8/i4/i8, C order, 1-D or 2-D). Also `.npy` writing.
//!
//! Nothing in a file is trusted for sizes: every allocation a header asks for is checked
//! against the file's real length first, and every problem is an error that names it.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Loads an N×D point set; returns (row-major values, D).
pub fn load_points(path: &Path) -> Result<(Vec<f64>, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    let r = if name.ends_with(".npy") {
        parse_npy(&bytes)
    } else {
        parse_csv(&bytes)
    };
    r.with_context(|| format!("in {name}"))
}

/// Parses CSV text into (values, D). Rows must all have the same number of columns.
pub fn parse_csv(bytes: &[u8]) -> Result<(Vec<f64>, usize)> {
    let text = std::str::from_utf8(bytes).context("the CSV file is not valid UTF-8 text")?;
    let mut out = Vec::new();
    let mut dim = None;
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        let parsed: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let row = match parsed {
            Ok(r) => r,
            // A first line that is not numeric is a header.
            Err(_) if dim.is_none() && out.is_empty() => continue,
            Err(_) => {
                let bad = fields.iter().find(|f| f.parse::<f64>().is_err()).unwrap();
                bail!("line {}: '{}' is not a number", lineno + 1, bad)
            }
        };
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            bail!("line {}: value {v} is not finite", lineno + 1);
        }
        match dim {
            None => dim = Some(row.len()),
            Some(d) if d != row.len() => {
                bail!(
                    "line {}: ragged rows: {} columns where earlier rows have {d}",
                    lineno + 1,
                    row.len()
                )
            }
            _ => {}
        }
        out.extend(row);
    }
    let dim = dim.context("the CSV file holds no rows of numbers")?;
    if dim == 0 {
        bail!("the CSV rows have no columns");
    }
    Ok((out, dim))
}

/// Parses a `.npy` file into (values, D); 1-D arrays are N×1.
pub fn parse_npy(bytes: &[u8]) -> Result<(Vec<f64>, usize)> {
    let (shape, descr, data) = npy_header(bytes)?;
    let (n, d) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        s => bail!("unsupported .npy shape {s:?}: expected (N,) or (N, D)"),
    };
    if n == 0 || d == 0 {
        bail!("the .npy array is empty (shape ({n}, {d}))");
    }
    let item = match descr.as_str() {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        other => bail!("unsupported .npy dtype '{other}': expected little-endian float32/float64/int32/int64"),
    };
    let count = n.checked_mul(d).context("the .npy shape overflows")?;
    let need = count.checked_mul(item).context("the .npy shape overflows")?;
    if data.len() < need {
        bail!(
            "truncated .npy: the header promises {need} bytes of data, the file has {}",
            data.len()
        );
    }
    let vals: Vec<f64> = data[..need]
        .chunks_exact(item)
        .map(|c| match descr.as_str() {
            "<f4" => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            "<f8" => f64::from_le_bytes(c.try_into().unwrap()),
            "<i4" => i32::from_le_bytes(c.try_into().unwrap()) as f64,
            _ => i64::from_le_bytes(c.try_into().unwrap()) as f64,
        })
        .collect();
    if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
        bail!(
            "the .npy array holds a non-finite value at row {}, column {}",
            i / d,
            i % d
        );
    }
    Ok((vals, d))
}

/// Returns (shape, descr, data bytes) of a `.npy` file.
pub(crate) fn npy_header(bytes: &[u8]) -> Result<(Vec<usize>, String, &[u8])> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("not a .npy file (wrong magic)");
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header");
            }
            (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12)
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let end = start.checked_add(hlen).context("bad .npy header length")?;
    if end > bytes.len() {
        bail!(
            "truncated .npy header: it claims {hlen} bytes, the file has {}",
            bytes.len() - start
        );
    }
    let header = std::str::from_utf8(&bytes[start..end]).context(".npy header is not text")?;
    let field = |key: &str| -> Result<&str> {
        let i = header
            .find(&format!("'{key}'"))
            .with_context(|| format!(".npy header has no '{key}'"))?;
        let rest = &header[i + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':').context("bad .npy header")?;
        Ok(rest.trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .context("bad .npy descr")?;
    let fortran = field("fortran_order")?;
    if fortran.starts_with("True") {
        bail!("unsupported .npy layout: Fortran order (save with C order)");
    }
    let shape = field("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .context("bad .npy shape")?;
    let shape: Result<Vec<usize>, _> = inner
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect();
    let shape = shape.context("bad .npy shape")?;
    Ok((shape, descr.to_string(), &bytes[end..]))
}

/// Serialises row-major f32 values of the given shape as `.npy` (version 1.0).
pub fn npy_bytes(vals: &[f32], shape: &[usize]) -> Vec<u8> {
    let shape_s = match shape {
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in vals {
        out.extend(v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header_and_whitespace() {
        let (v, d) = parse_csv(b"x,y\n1,2\n3 4\n\n# comment\n5,6\n").unwrap();
        assert_eq!(d, 2);
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn csv_errors_name_the_problem() {
        let e = parse_csv(b"1,2\n3\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("ragged"), "{e}");
        let e = parse_csv(b"1,2\n3,abc\n").unwrap_err().to_string();
        assert!(e.contains("'abc' is not a number"), "{e}");
        let e = parse_csv(b"1,nan\n").unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        assert!(parse_csv(b"").unwrap_err().to_string().contains("no rows"));
    }

    #[test]
    fn npy_roundtrip_and_errors() {
        let b = npy_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
        let (v, d) = parse_npy(&b).unwrap();
        assert_eq!(d, 2);
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let e = parse_npy(&b[..b.len() - 3]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = parse_npy(b"hello world, not npy").unwrap_err().to_string();
        assert!(e.contains("wrong magic"), "{e}");
        let mut bad = b.clone();
        let pos = bad.windows(3).position(|w| w == b"<f4").unwrap();
        bad[pos + 1] = b'c';
        let e = parse_npy(&bad).unwrap_err().to_string();
        assert!(e.contains("unsupported .npy dtype"), "{e}");
        let b3 = npy_bytes(&[1.0; 8], &[2, 2, 2]);
        assert!(parse_npy(&b3)
            .unwrap_err()
            .to_string()
            .contains("unsupported .npy shape"));
        // A header promising a huge array does not allocate it.
        // (Byte-level edit: the magic is not UTF-8; the header keeps its declared length.)
        let pos = b.windows(6).position(|w| w == b"(3, 2)").unwrap();
        let mut huge = b[..pos].to_vec();
        huge.extend_from_slice(b"(99999999999, 2)");
        huge.extend_from_slice(&b[pos + 6..]);
        let e = parse_npy(&huge).unwrap_err().to_string();
        assert!(e.contains("truncated") || e.contains("overflow"), "{e}");
    }
}
