//! Image data sets: MNIST-style IDX folders, single IDX files, folders of PNG images and `.npy`
//! u8 image arrays. Images are kept as u8 (`N×C×H×W`, channel-first) and mapped to [-1, 1]
//! only when a batch is drawn, so full MNIST costs 47 MB rather than 188 MB.
//!
//! Samples are flat `[C·H·W]` rows (channel-first), the layout the image backbones and
//! [`crate::plot::image_grid`] expect. Images are not standardised (σ_d = 0.5 by default).

use super::idx;
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A set of u8 images `N×C×H×W` with optional labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Channel-first pixels, `n·c·h·w` values.
    pub pixels: Vec<u8>,
    /// The value that maps to +1 (255, or 16 for scikit-learn's 8×8 digits).
    pub max: u8,
    pub labels: Option<Vec<u8>>,
}

/// How an image folder is read.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderOptions {
    /// Output side length (images are centre-cropped to a square, then resized).
    pub size: usize,
    /// Convert to one grey channel (else RGB).
    pub grey: bool,
}

impl Images {
    pub fn dim(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Image `i` as values in [-1, 1], optionally flipped left-right.
    pub fn get(&self, i: usize, flip: bool, out: &mut Vec<f64>) {
        let d = self.dim();
        let img = &self.pixels[i * d..(i + 1) * d];
        let s = 2.0 / self.max as f64;
        for ch in 0..self.c {
            for y in 0..self.h {
                let row = &img[(ch * self.h + y) * self.w..(ch * self.h + y + 1) * self.w];
                if flip {
                    out.extend(row.iter().rev().map(|&v| v as f64 * s - 1.0));
                } else {
                    out.extend(row.iter().map(|&v| v as f64 * s - 1.0));
                }
            }
        }
    }

    /// `n` images drawn uniformly with replacement, each flipped with probability ½ if `hflip`.
    pub fn sample(&self, rng: &mut Rng, n: usize, hflip: bool) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * self.dim());
        for _ in 0..n {
            let i = rng.below(self.n);
            let flip = hflip && rng.uniform() < 0.5;
            self.get(i, flip, &mut out);
        }
        out
    }

    fn check(&self) -> Result<()> {
        if self.max == 0 {
            bail!("the images are all zero-valued (max pixel value 0)");
        }
        if let Some(l) = &self.labels {
            if l.len() != self.n {
                bail!("{} labels for {} images", l.len(), self.n);
            }
        }
        Ok(())
    }
}

fn first_existing(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// An MNIST-layout folder (`train-images-idx3-ubyte[.gz]` and labels), train or test split.
pub fn load_mnist_dir(dir: &Path, test: bool) -> Result<Images> {
    let pre = if test { "t10k" } else { "train" };
    let img_names = [
        format!("{pre}-images-idx3-ubyte"),
        format!("{pre}-images-idx3-ubyte.gz"),
        format!("{pre}-images.idx3-ubyte"),
    ];
    let refs: Vec<&str> = img_names.iter().map(|s| s.as_str()).collect();
    let img = first_existing(dir, &refs).with_context(|| {
        format!(
            "{} holds no {pre}-images-idx3-ubyte[.gz] (get it with `cm data fetch mnist --dir DIR`)",
            dir.display()
        )
    })?;
    load_idx_images(&img)
}

/// An idx3 image file; labels are read from the matching `labels-idx1` file when it exists.
pub fn load_idx_images(path: &Path) -> Result<Images> {
    let (n, h, w, pixels) = idx::read_images(path)?;
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    let labels = if name.contains("images-idx3") {
        let lp = path.with_file_name(name.replace("images-idx3", "labels-idx1"));
        if lp.is_file() {
            Some(idx::read_labels(&lp)?)
        } else {
            None
        }
    } else {
        None
    };
    if let Some(l) = &labels {
        if l.len() != n {
            bail!(
                "{} has {n} images but its labels file has {} labels",
                path.display(),
                l.len()
            );
        }
    }
    let max = pixels.iter().copied().max().unwrap_or(0);
    // 0..255 data unless every value fits scikit-learn digits' 0..16.
    let max = if max <= 16 && max > 0 { 16 } else { 255 };
    let im = Images {
        n,
        c: 1,
        h,
        w,
        pixels,
        max,
        labels,
    };
    im.check()?;
    Ok(im)
}

/// A `.npy` u8 image array: `(N, H, W)` grey, `(N, H, W, C)` or `(N, C, H, W)` with C ∈ {1, 3}.
pub fn load_npy_images(path: &Path) -> Result<Images> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_npy_images(&bytes).with_context(|| format!("in {}", path.display()))
}

pub fn parse_npy_images(bytes: &[u8]) -> Result<Images> {
    let (shape, descr, data) = super::files::npy_header(bytes)?;
    if descr != "|u1" && descr != "<u1" {
        bail!("unsupported .npy image dtype '{descr}': expected uint8 ('|u1')");
    }
    let (n, c, h, w, nhwc) = match shape.as_slice() {
        [n, h, w] => (*n, 1, *h, *w, false),
        [n, a, b, c] if *c == 1 || *c == 3 => (*n, *c, *a, *b, true),
        [n, c, h, w] if *c == 1 || *c == 3 => (*n, *c, *h, *w, false),
        s => bail!("unsupported .npy image shape {s:?}: expected (N,H,W), (N,H,W,C) or (N,C,H,W) with C = 1 or 3"),
    };
    if n == 0 || h == 0 || w == 0 {
        bail!("the .npy image array is empty (shape {shape:?})");
    }
    let count = [n, c, h, w]
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .context("the .npy shape overflows")?;
    if data.len() < count {
        bail!(
            "truncated .npy: the header promises {count} bytes of data, the file has {}",
            data.len()
        );
    }
    let data = &data[..count];
    let pixels = if nhwc && c > 1 {
        let mut out = vec![0u8; count];
        for i in 0..n {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        out[((i * c + ch) * h + y) * w + x] = data[((i * h + y) * w + x) * c + ch];
                    }
                }
            }
        }
        out
    } else {
        data.to_vec()
    };
    let im = Images {
        n,
        c,
        h,
        w,
        pixels,
        max: 255,
        labels: None,
    };
    im.check()?;
    Ok(im)
}

/// Decodes a PNG into (channels 1 or 3, width, height, channel-first u8 pixels).
pub fn decode_png(bytes: &[u8]) -> Result<(usize, usize, usize, Vec<u8>)> {
    let mut dec = png::Decoder::new(bytes);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().context("not a readable PNG")?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    // Bounded by the PNG's own declared size; refuse absurd sizes before allocating.
    if w == 0 || h == 0 || w.saturating_mul(h) > 64 << 20 {
        bail!("PNG of {w}×{h} pixels is empty or too large");
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).context("corrupt PNG data")?;
    let buf = &buf[..frame.buffer_size()];
    let src_c = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => bail!("unsupported PNG colour type {other:?}"),
    };
    let c = if src_c <= 2 { 1 } else { 3 };
    let mut out = vec![0u8; c * h * w];
    for y in 0..h {
        for x in 0..w {
            let p = &buf[(y * w + x) * src_c..];
            for ch in 0..c {
                out[(ch * h + y) * w + x] = p[ch];
            }
        }
    }
    Ok((c, w, h, out))
}

/// Centre-crops a channel-first image to a square and resizes it to `size` (area average when
/// shrinking, bilinear when growing); converts between grey and RGB as asked.
pub fn crop_resize(c: usize, w: usize, h: usize, px: &[u8], size: usize, grey: bool) -> Vec<u8> {
    let s = w.min(h);
    let (ox, oy) = ((w - s) / 2, (h - s) / 2);
    let out_c = if grey { 1 } else { 3 };
    let chan = |ch: usize, x: usize, y: usize| -> f64 {
        let at = |k: usize| px[(k * h + oy + y) * w + ox + x] as f64;
        match (c, grey) {
            (1, _) => at(0),
            (3, true) => 0.299 * at(0) + 0.587 * at(1) + 0.114 * at(2),
            _ => at(ch),
        }
    };
    let mut out = vec![0u8; out_c * size * size];
    let scale = s as f64 / size as f64;
    for ch in 0..out_c {
        for yo in 0..size {
            for xo in 0..size {
                let v = if scale >= 1.0 {
                    let (y0, y1) = (
                        (yo as f64 * scale) as usize,
                        (((yo + 1) as f64 * scale).ceil() as usize).min(s),
                    );
                    let (x0, x1) = (
                        (xo as f64 * scale) as usize,
                        (((xo + 1) as f64 * scale).ceil() as usize).min(s),
                    );
                    let mut acc = 0.0;
                    for y in y0..y1.max(y0 + 1) {
                        for x in x0..x1.max(x0 + 1) {
                            acc += chan(ch, x, y);
                        }
                    }
                    acc / ((y1.max(y0 + 1) - y0) * (x1.max(x0 + 1) - x0)) as f64
                } else {
                    let fy = ((yo as f64 + 0.5) * scale - 0.5).clamp(0.0, (s - 1) as f64);
                    let fx = ((xo as f64 + 0.5) * scale - 0.5).clamp(0.0, (s - 1) as f64);
                    let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
                    let (y1, x1) = ((y0 + 1).min(s - 1), (x0 + 1).min(s - 1));
                    let (ty, tx) = (fy - y0 as f64, fx - x0 as f64);
                    (chan(ch, x0, y0) * (1.0 - tx) + chan(ch, x1, y0) * tx) * (1.0 - ty)
                        + (chan(ch, x0, y1) * (1.0 - tx) + chan(ch, x1, y1) * tx) * ty
                };
                out[(ch * size + yo) * size + xo] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Every `.png` in a folder (sorted by name, not recursive), cropped and resized.
pub fn load_folder(dir: &Path, opt: &FolderOptions) -> Result<Images> {
    if opt.size == 0 || opt.size > 1024 {
        bail!("image size must be in 1..=1024, got {}", opt.size);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read image folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut pixels = Vec::new();
    let mut n = 0;
    let mut skipped_jpeg = 0;
    for f in &files {
        let ext = f
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "png" => {
                let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
                let (c, w, h, px) = decode_png(&bytes).with_context(|| format!("in {}", f.display()))?;
                pixels.extend(crop_resize(c, w, h, &px, opt.size, opt.grey));
                n += 1;
            }
            "jpg" | "jpeg" => skipped_jpeg += 1,
            _ => {}
        }
    }
    if n == 0 {
        if skipped_jpeg > 0 {
            bail!(
                "{} holds {skipped_jpeg} JPEG file(s) but no PNG: JPEG is not supported, convert the images to PNG",
                dir.display()
            );
        }
        bail!("{} holds no .png images", dir.display());
    }
    if skipped_jpeg > 0 {
        eprintln!(
            "warning: {}: skipped {skipped_jpeg} JPEG file(s) (only PNG is read)",
            dir.display()
        );
    }
    Ok(Images {
        n,
        c: if opt.grey { 1 } else { 3 },
        h: opt.size,
        w: opt.size,
        pixels,
        max: 255,
        labels: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte")
    }

    #[test]
    fn idx_images_map_to_unit_range_with_flips() {
        let im = load_idx_images(&fixture()).unwrap();
        assert_eq!((im.n, im.c, im.h, im.w, im.max), (256, 1, 28, 28, 255));
        assert_eq!(im.labels.as_ref().unwrap()[0], 7);
        let mut a = Vec::new();
        let mut b = Vec::new();
        im.get(0, false, &mut a);
        im.get(0, true, &mut b);
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(a.iter().any(|&v| v == 1.0) && a.iter().any(|&v| v == -1.0));
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(a[y * 28 + x], b[y * 28 + 27 - x]);
            }
        }
        let s = im.sample(&mut Rng::new(3), 10, true);
        assert_eq!(s.len(), 10 * 784);
    }

    #[test]
    fn png_folder_crop_resize_grey_and_rgb() {
        let dir = std::env::temp_dir().join(format!("cm-imgs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A 6×4 RGB image: left half red, right half blue.
        let (w, h) = (6u32, 4u32);
        let mut data = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                data.extend(if x < 3 { [255u8, 0, 0] } else { [0, 0, 255] });
            }
        }
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header().unwrap().write_image_data(&data).unwrap();
        }
        std::fs::write(dir.join("a.png"), &bytes).unwrap();
        std::fs::write(dir.join("b.jpg"), b"not read").unwrap();
        let rgb = load_folder(&dir, &FolderOptions { size: 2, grey: false }).unwrap();
        assert_eq!((rgb.n, rgb.c, rgb.h, rgb.w), (1, 3, 2, 2));
        // Crop keeps columns 1..5: left output column red, right blue.
        assert_eq!(&rgb.pixels[0..4], &[255, 0, 255, 0]);
        assert_eq!(&rgb.pixels[8..12], &[0, 255, 0, 255]);
        let g = load_folder(&dir, &FolderOptions { size: 8, grey: true }).unwrap();
        assert_eq!((g.c, g.h, g.pixels.len()), (1, 8, 64));
        let e = load_folder(&dir.join("none"), &FolderOptions { size: 8, grey: true })
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read image folder"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn npy_images_nhwc_and_errors() {
        // (2, 2, 2, 3) u8 NHWC.
        let vals: Vec<u8> = (0..24).collect();
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2, 3), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend(&vals);
        let im = parse_npy_images(&b).unwrap();
        assert_eq!((im.n, im.c, im.h, im.w), (2, 3, 2, 2));
        // Channel 0 of image 0: pixels 0, 3, 6, 9.
        assert_eq!(&im.pixels[..4], &[0, 3, 6, 9]);
        let e = parse_npy_images(&b[..b.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let f = crate::data::files::npy_bytes(&[0.0; 8], &[2, 2, 2]);
        let e = parse_npy_images(&f).unwrap_err().to_string();
        assert!(e.contains("uint8"), "{e}");
    }
}
