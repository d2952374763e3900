//! IDX files (the MNIST format): a big-endian header `00 00 TT NN` (TT = element type, NN =
//! number of dimensions), NN big-endian u32 sizes, then the elements in C order. Only u8
//! elements (TT = 0x08) are accepted: images `N×H×W` (idx3) and labels `N` (idx1).
//! Files may be gzip-compressed (detected by the gzip magic, not the name).
//!
//! Nothing in a header is trusted: the element count is checked against the real data length
//! before anything is allocated, and every problem is an error that names it.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// Decompressed IDX data larger than this is refused (a gzip bomb guard; full MNIST is 47 MB).
pub const MAX_DECOMPRESSED: u64 = 4 << 30;

/// A u8 IDX array.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The sizes from the header, outermost first (`[N, H, W]` for idx3, `[N]` for idx1).
    pub dims: Vec<usize>,
    /// The elements in C (row-major) order, exactly ∏ `dims` of them.
    pub data: Vec<u8>,
}

/// Reads a file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt or truncated gzip data", path.display()))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            bail!(
                "{}: decompresses to more than {} bytes",
                path.display(),
                MAX_DECOMPRESSED
            );
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes holding u8 elements.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        bail!("not an IDX file: {} bytes, shorter than the 4-byte magic", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "not an IDX file (wrong magic {:02x} {:02x} {:02x} {:02x}; expected 00 00 08 NN)",
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3]
        );
    }
    let ty = bytes[2];
    if ty != 0x08 {
        let name = match ty {
            0x09 => "i8",
            0x0B => "i16",
            0x0C => "i32",
            0x0D => "f32",
            0x0E => "f64",
            _ => "unknown",
        };
        bail!("unsupported IDX element type 0x{ty:02x} ({name}): only u8 (0x08) is supported");
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        bail!("wrong IDX dimensions: the header declares 0 dimensions");
    }
    let head = 4 + 4 * nd;
    if bytes.len() < head {
        bail!(
            "truncated IDX header: {nd} dimensions need {head} header bytes, the file has {}",
            bytes.len()
        );
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let mut count: usize = 1;
    for &d in &dims {
        count = count
            .checked_mul(d)
            .context("IDX dimensions overflow the address space")?;
    }
    let data = &bytes[head..];
    if data.len() < count {
        bail!(
            "truncated IDX data: the header promises {dims:?} = {count} bytes, the file has {}",
            data.len()
        );
    }
    if data.len() > count {
        bail!(
            "IDX file has {} trailing bytes after the {dims:?} array",
            data.len() - count
        );
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Reads an IDX file (optionally gzipped).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(&bytes).with_context(|| format!("in {}", path.display()))
}

/// Images `N×H×W` (u8) from an idx3 file: returns (n, h, w, pixels).
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let a = read_idx(path)?;
    match a.dims.as_slice() {
        [n, h, w] if *n > 0 && *h > 0 && *w > 0 => Ok((*n, *h, *w, a.data)),
        d => bail!(
            "wrong IDX dimensions in {}: expected images N×H×W (3 non-zero dimensions), got {d:?}",
            path.display()
        ),
    }
}

/// Labels `N` (u8) from an idx1 file (magic 0x00000801).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let a = read_idx(path)?;
    match a.dims.as_slice() {
        [_] => Ok(a.data),
        d => bail!(
            "wrong IDX dimensions in {}: expected labels N (1 dimension, magic 0x00000801), got {d:?} (magic 0x{:08x}): not a label file",
            path.display(),
            0x0800 | d.len()
        ),
    }
}

/// Serialises a u8 array as IDX (uncompressed).
pub fn idx_bytes(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_strict_errors() {
        let data: Vec<u8> = (0..24).collect();
        let b = idx_bytes(&[2, 3, 4], &data);
        let a = parse_idx(&b).unwrap();
        assert_eq!(a.dims, vec![2, 3, 4]);
        assert_eq!(a.data, data);
        let e = parse_idx(b"\x01\x02\x08\x03rest").unwrap_err().to_string();
        assert!(e.contains("wrong magic"), "{e}");
        let mut f = b.clone();
        f[2] = 0x0D;
        let e = parse_idx(&f).unwrap_err().to_string();
        assert!(e.contains("unsupported IDX element type"), "{e}");
        let e = parse_idx(&b[..b.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("truncated IDX data"), "{e}");
        let e = parse_idx(&b[..9]).unwrap_err().to_string();
        assert!(e.contains("truncated IDX header"), "{e}");
        let mut z = b.clone();
        z[3] = 0;
        assert!(parse_idx(&z).unwrap_err().to_string().contains("0 dimensions"));
        // A header promising 4G×4G elements allocates nothing and fails cleanly.
        let huge = [0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2];
        let e = parse_idx(&huge).unwrap_err().to_string();
        assert!(e.contains("truncated") || e.contains("overflow"), "{e}");
    }

    #[test]
    fn gzip_is_detected_and_dimensions_checked() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("cm-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let b = idx_bytes(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&b).unwrap();
        let gz = enc.finish().unwrap();
        let p = dir.join("x-idx3-ubyte.gz");
        std::fs::write(&p, &gz).unwrap();
        let (n, h, w, px) = read_images(&p).unwrap();
        assert_eq!((n, h, w, px.len()), (2, 2, 2, 8));
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("wrong IDX dimensions"), "{e}");
        std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
        let e = format!("{:#}", read_images(&p).unwrap_err());
        assert!(e.contains("gzip"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn committed_fixture_is_mnist() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let (n, h, w, px) = read_images(&root.join("mnist-t10k-256-images-idx3-ubyte")).unwrap();
        assert_eq!((n, h, w), (256, 28, 28));
        let labels = read_labels(&root.join("mnist-t10k-256-labels-idx1-ubyte")).unwrap();
        assert_eq!(labels.len(), 256);
        // The first MNIST test digits are 7, 2, 1, 0, 4.
        assert_eq!(&labels[..5], &[7, 2, 1, 0, 4]);
        assert!(px.iter().any(|&v| v == 255) && px.iter().any(|&v| v == 0));
    }
}
