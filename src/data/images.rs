//! Image data sets: MNIST-style IDX folders, single IDX files, folders of PNG/JPEG images and `.npy`
//! u8 image arrays. Images are kept as u8 (`N×C×H×W`, channel-first) and mapped to [-1, 1]
//! only when a batch is drawn, so full MNIST costs 47 MB rather than 188 MB.
//!
//! Samples are flat `[C·H·W]` rows (channel-first), the layout the image backbones and
//! [`crate::io::plot::image_grid`] expect. Images are not standardised (σ_d = 0.5 by default).

use super::idx;
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A set of u8 images `N×C×H×W` with optional labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    /// Number of images N.
    pub n: usize,
    /// Channels per image C (1 grey, 3 RGB).
    pub c: usize,
    /// Height H in pixels.
    pub h: usize,
    /// Width W in pixels.
    pub w: usize,
    /// Channel-first pixels, `n·c·h·w` values.
    pub pixels: Vec<u8>,
    /// The value that maps to +1 (255, or 16 for scikit-learn's 8×8 digits).
    pub max: u8,
    /// Class labels, one per image (`mnist:` / `fashion-mnist:` folders, `idx:` files with a
    /// matching `labels-idx1` file).
    pub labels: Option<Vec<u8>>,
    /// Number of classes: 10 for `mnist:` / `fashion-mnist:` folders, the largest label + 1 for
    /// other labelled images, 0 without labels.
    pub classes: usize,
}

/// How an image folder is read.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderOptions {
    /// Output side length in pixels (images are centre-cropped to a square, then resized);
    /// `data.image_size`, default 32.
    pub size: usize,
    /// Convert to one grey channel (else RGB); `data.grey`, default false.
    pub grey: bool,
}

impl Images {
    /// Values per image, C·H·W: the sample dimension D.
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
        self.sample_labeled(rng, n, hflip).0
    }

    /// [`Images::sample`] (the same random numbers, so the same images) with the labels of
    /// the images drawn (None without labels).
    pub fn sample_labeled(&self, rng: &mut Rng, n: usize, hflip: bool) -> (Vec<f64>, Option<Vec<usize>>) {
        let mut out = Vec::with_capacity(n * self.dim());
        let mut labels = self.labels.as_ref().map(|_| Vec::with_capacity(n));
        for _ in 0..n {
            let i = rng.below(self.n);
            let flip = hflip && rng.uniform() < 0.5;
            self.get(i, flip, &mut out);
            if let (Some(l), Some(all)) = (labels.as_mut(), self.labels.as_ref()) {
                l.push(all[i] as usize);
            }
        }
        (out, labels)
    }

    fn check(&self) -> Result<()> {
        if self.max == 0 {
            bail!("the images are all zero-valued (max pixel value 0)");
        }
        if let Some(l) = &self.labels {
            if l.len() != self.n {
                bail!("{} labels for {} images", l.len(), self.n);
            }
            if let Some(&m) = l.iter().max() {
                if m as usize >= self.classes {
                    bail!("label {m} for {} classes", self.classes);
                }
            }
        }
        Ok(())
    }
}

fn first_existing(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// An MNIST-layout folder (`train-images-idx3-ubyte[.gz]` and, when present,
/// `train-labels-idx1-ubyte[.gz]`), train or test split. Labels are classes 0..9.
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
    let label_names = [
        format!("{pre}-labels-idx1-ubyte"),
        format!("{pre}-labels-idx1-ubyte.gz"),
        format!("{pre}-labels.idx1-ubyte"),
    ];
    let refs: Vec<&str> = label_names.iter().map(|s| s.as_str()).collect();
    let lp = first_existing(dir, &refs);
    let mut im = idx_images(&img, lp.as_deref())?;
    if let (Some(lp), Some(l)) = (&lp, &im.labels) {
        // MNIST and Fashion-MNIST have ten classes.
        if let Some(&m) = l.iter().find(|&&v| v >= 10) {
            bail!("{}: label {m} is not one of the ten classes 0..9", lp.display());
        }
        im.classes = 10;
    }
    im.check()?;
    Ok(im)
}

/// An idx3 image file; labels are read from the matching `labels-idx1` file (the file name with
/// `images-idx3` replaced by `labels-idx1`) when it exists. Classes: the largest label + 1.
pub fn load_idx_images(path: &Path) -> Result<Images> {
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    let lp = name
        .contains("images-idx3")
        .then(|| path.with_file_name(name.replace("images-idx3", "labels-idx1")))
        .filter(|lp| lp.is_file());
    let im = idx_images(path, lp.as_deref())?;
    im.check()?;
    Ok(im)
}

/// Images from an idx3 file and labels from an idx1 file (count checked; classes = the largest
/// label + 1).
fn idx_images(path: &Path, labels_path: Option<&Path>) -> Result<Images> {
    let (n, h, w, pixels) = idx::read_images(path)?;
    let labels = match labels_path {
        Some(lp) => {
            let l = idx::read_labels(lp)?;
            if l.len() != n {
                bail!(
                    "label count mismatch: {} holds {} labels but {} holds {n} images",
                    lp.display(),
                    l.len(),
                    path.display()
                );
            }
            Some(l)
        }
        None => None,
    };
    let classes = labels
        .as_ref()
        .and_then(|l| l.iter().max())
        .map_or(0, |&m| m as usize + 1);
    let max = pixels.iter().copied().max().unwrap_or(0);
    // 0..255 data unless every value fits scikit-learn digits' 0..16.
    let max = if max <= 16 && max > 0 { 16 } else { 255 };
    Ok(Images {
        n,
        c: 1,
        h,
        w,
        pixels,
        max,
        labels,
        classes,
    })
}

/// A `.npy` u8 image array: `(N, H, W)` grey, `(N, H, W, C)` or `(N, C, H, W)` with C ∈ {1, 3}.
pub fn load_npy_images(path: &Path) -> Result<Images> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_npy_images(&bytes).with_context(|| format!("in {}", path.display()))
}

/// [`load_npy_images`] on the bytes of a `.npy` file: a u8 array of one of the shapes accepted
/// there, `(N, H, W, C)` transposed to channel-first; no labels, 255 maps to +1.
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
        classes: 0,
    };
    im.check()?;
    Ok(im)
}

/// A decoded image: (channels 1 or 3, width, height, channel-first u8 pixels).
pub type Decoded = (usize, usize, usize, Vec<u8>);

/// Decodes a PNG into (channels 1 or 3, width, height, channel-first u8 pixels).
pub fn decode_png(bytes: &[u8]) -> Result<Decoded> {
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

/// Whether a JPEG's marker segments and entropy-coded scans run, unbroken, up to an
/// end-of-image marker (bytes after it are ignored). The decoder pads a stream that stops
/// within its last row of blocks without complaint, so truncation is checked here.
fn jpeg_reaches_eoi(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut pos = 2;
    loop {
        // A marker: any number of 0xFF fill bytes, then its code.
        if b.get(pos) != Some(&0xFF) {
            return false;
        }
        while b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&m) = b.get(pos + 1) else {
            return false;
        };
        match m {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let Some(len) = b
                    .get(pos + 2..pos + 4)
                    .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
                else {
                    return false;
                };
                pos += 2 + len;
                if pos > b.len() {
                    return false;
                }
                if m == 0xDA {
                    // Entropy-coded data: 0xFF is stuffed as FF 00, and restart markers
                    // FF D0..D7 belong to the scan; any other FF xx starts the next marker.
                    loop {
                        match (b.get(pos), b.get(pos + 1)) {
                            (Some(0xFF), Some(&n)) if n != 0 && !(0xD0..=0xD7).contains(&n) && n != 0xFF => break,
                            (Some(_), Some(_)) => pos += 1,
                            _ => return false,
                        }
                    }
                }
            }
        }
    }
}

/// Decodes a baseline or progressive 8-bit JPEG into (channels 1 or 3, width, height,
/// channel-first u8 pixels). Greyscale JPEGs give one channel; YCbCr, RGB, CMYK and YCCK ones
/// are converted to RGB by the decoder. A file that stops before its end-of-image marker is an
/// error, and the decoder runs in strict mode, so corrupt data is one too rather than an image
/// padded with grey.
pub fn decode_jpeg(bytes: &[u8]) -> Result<Decoded> {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        bail!("not a JPEG (no start-of-image marker)");
    }
    let opts = DecoderOptions::default().set_strict_mode(true);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
    dec.decode_headers()
        .map_err(|e| anyhow::anyhow!("corrupt or truncated JPEG header: {e}"))?;
    let (w, h) = dec.dimensions().context("JPEG without a frame header")?;
    // Same bound as for PNG, checked before the pixel buffer is allocated.
    if w == 0 || h == 0 || w.saturating_mul(h) > 64 << 20 {
        bail!("JPEG of {w}×{h} pixels is empty or too large");
    }
    if !jpeg_reaches_eoi(bytes) {
        bail!("truncated JPEG: the file ends before its end-of-image marker");
    }
    let input = dec.input_colorspace().context("JPEG without a colour space")?;
    let (out_cs, c) = match input {
        ColorSpace::Luma => (ColorSpace::Luma, 1),
        ColorSpace::YCbCr | ColorSpace::RGB | ColorSpace::CMYK | ColorSpace::YCCK => (ColorSpace::RGB, 3),
        other => bail!("unsupported JPEG colour space {other:?}"),
    };
    dec.set_options(opts.jpeg_set_out_colorspace(out_cs));
    let buf = dec.decode().map_err(|e| anyhow::anyhow!("corrupt JPEG data: {e}"))?;
    if buf.len() != c * w * h {
        bail!(
            "JPEG decoder returned {} bytes for a {w}×{h} image with {c} channel(s)",
            buf.len()
        );
    }
    let mut out = vec![0u8; c * h * w];
    for (i, p) in buf.chunks_exact(c).enumerate() {
        for (ch, &v) in p.iter().enumerate() {
            out[ch * h * w + i] = v;
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

/// Every `.png`, `.jpg` and `.jpeg` (any case) in a folder, sorted by name, not recursive,
/// cropped and resized. A file that does not decode is an error naming it.
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
    for f in &files {
        let ext = f
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let decode: fn(&[u8]) -> Result<Decoded> = match ext.as_str() {
            "png" => decode_png,
            "jpg" | "jpeg" => decode_jpeg,
            _ => continue,
        };
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let (c, w, h, px) = decode(&bytes).with_context(|| format!("in {}", f.display()))?;
        pixels.extend(crop_resize(c, w, h, &px, opt.size, opt.grey));
        n += 1;
    }
    if n == 0 {
        bail!("{} holds no .png, .jpg or .jpeg images", dir.display());
    }
    Ok(Images {
        n,
        c: if opt.grey { 1 } else { 3 },
        h: opt.size,
        w: opt.size,
        pixels,
        max: 255,
        labels: None,
        classes: 0,
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

    fn label_fixture() -> Vec<u8> {
        std::fs::read(fixture().with_file_name("mnist-t10k-256-labels-idx1-ubyte")).unwrap()
    }

    #[test]
    fn labels_come_from_the_idx1_fixture() {
        let im = load_idx_images(&fixture()).unwrap();
        let want = idx::read_labels(&fixture().with_file_name("mnist-t10k-256-labels-idx1-ubyte")).unwrap();
        assert_eq!(im.labels.as_ref(), Some(&want));
        // The first MNIST test digits, and every digit occurs in the first 256.
        assert_eq!(&want[..8], &[7, 2, 1, 0, 4, 1, 4, 9]);
        assert_eq!(im.classes, 10);
        let raw = label_fixture();
        assert_eq!(&raw[..8], &[0, 0, 8, 1, 0, 0, 1, 0], "magic 0x00000801, count 256");
        assert_eq!(&raw[8..], want.as_slice());
    }

    #[test]
    fn mnist_folder_reads_plain_or_gzipped_labels_with_ten_classes() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("cm-mnist-labels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture(), dir.join("t10k-images-idx3-ubyte")).unwrap();
        // No labels file: images without labels (an error only where labels are needed).
        let im = load_mnist_dir(&dir, true).unwrap();
        assert_eq!((im.n, im.labels.is_none(), im.classes), (256, true, 0));
        // Gzipped labels beside plain images.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&label_fixture()).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), enc.finish().unwrap()).unwrap();
        let im = load_mnist_dir(&dir, true).unwrap();
        assert_eq!(im.labels.as_deref(), Some(&label_fixture()[8..]));
        assert_eq!(im.classes, 10);
        // The plain file wins over the .gz; the training split has no files here.
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), label_fixture()).unwrap();
        assert_eq!(load_mnist_dir(&dir, true).unwrap().labels, im.labels);
        assert!(load_mnist_dir(&dir, false).is_err());
        // Only ten classes: a label 10 is an error naming the labels file.
        let mut bad = label_fixture();
        bad[8 + 17] = 10;
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), &bad).unwrap();
        let e = format!("{:#}", load_mnist_dir(&dir, true).unwrap_err());
        assert!(e.contains("t10k-labels-idx1-ubyte") && e.contains("label 10"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_label_files_are_clear_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("cm-bad-labels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("x-images-idx3-ubyte");
        std::fs::copy(fixture(), &img).unwrap();
        let lab = dir.join("x-labels-idx1-ubyte");
        // No sibling labels file: silently none.
        assert!(load_idx_images(&img).unwrap().labels.is_none());
        let good = label_fixture();
        let cases: Vec<(Vec<u8>, &[&str])> = vec![
            // Wrong magic: not IDX at all, an idx3 (image) file, a non-u8 element type.
            (
                [&[1u8, 2, 8, 1][..], &good[4..]].concat(),
                &["x-labels-idx1-ubyte", "wrong magic"],
            ),
            (
                std::fs::read(fixture()).unwrap(),
                &["x-labels-idx1-ubyte", "0x00000801", "0x00000803"],
            ),
            (
                [&[0u8, 0, 0x0C, 1][..], &good[4..]].concat(),
                &["x-labels-idx1-ubyte", "element type"],
            ),
            // Count mismatch: 255 labels for 256 images (a consistent idx1 file).
            (
                idx::idx_bytes(&[255], &good[8..263]),
                &["x-labels-idx1-ubyte", "255 labels", "x-images-idx3-ubyte", "256 images"],
            ),
            // Truncated: the header promises 256 labels, 100 follow; or the header itself.
            (good[..108].to_vec(), &["x-labels-idx1-ubyte", "truncated"]),
            (good[..6].to_vec(), &["x-labels-idx1-ubyte", "truncated IDX header"]),
        ];
        for (bytes, want) in cases {
            std::fs::write(&lab, &bytes).unwrap();
            let e = format!("{:#}", load_idx_images(&img).unwrap_err());
            for w in want {
                assert!(e.contains(w), "expected '{w}' in: {e}");
            }
        }
        std::fs::write(&lab, &good).unwrap();
        assert_eq!(load_idx_images(&img).unwrap().labels.unwrap().len(), 256);
        let _ = std::fs::remove_dir_all(&dir);
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
        std::fs::write(dir.join("b.txt"), b"not an image: ignored").unwrap();
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

    /// A smooth `w×h` RGB image (interleaved): channels are slow ramps in x and y.
    fn smooth_rgb(w: usize, h: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                v.push((40 + 180 * x / w) as u8);
                v.push((220 - 160 * y / h) as u8);
                v.push((60 + 90 * (x + y) / (w + h)) as u8);
            }
        }
        v
    }

    fn jpeg_bytes(px: &[u8], w: usize, h: usize, color: jpeg_encoder::ColorType) -> Vec<u8> {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 95)
            .encode(px, w as u16, h as u16, color)
            .unwrap();
        out
    }

    fn png_bytes(px: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, w as u32, h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header().unwrap().write_image_data(px).unwrap();
        }
        bytes
    }

    fn max_abs_diff(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).max().unwrap()
    }

    #[test]
    fn jpeg_decodes_grey_rgb_and_cmyk_channel_first() {
        let (w, h) = (20, 12);
        let rgb = smooth_rgb(w, h);
        let (c, dw, dh, px) = decode_jpeg(&jpeg_bytes(&rgb, w, h, jpeg_encoder::ColorType::Rgb)).unwrap();
        assert_eq!((c, dw, dh, px.len()), (3, w, h, 3 * w * h));
        // Channel-first: channel ch of pixel (x, y) sits at (ch·h + y)·w + x.
        let mut planar = vec![0u8; 3 * w * h];
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                planar[ch * w * h + i] = p[ch];
            }
        }
        let d = max_abs_diff(&px, &planar);
        assert!(d <= 8, "RGB JPEG differs from its source by {d}");
        // Progressive (several scans with tables between them) and restart-interval streams.
        for (progressive, restart) in [(true, 0), (false, 1), (true, 2)] {
            let mut bytes = Vec::new();
            let mut enc = jpeg_encoder::Encoder::new(&mut bytes, 95);
            enc.set_progressive(progressive);
            enc.set_restart_interval(restart);
            enc.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
                .unwrap();
            let (c, _, _, p2) = decode_jpeg(&bytes).unwrap();
            assert_eq!(c, 3);
            let d = max_abs_diff(&p2, &planar);
            assert!(d <= 8, "progressive {progressive}, restart {restart}: differs by {d}");
        }

        let grey: Vec<u8> = (0..w * h).map(|i| (30 + 5 * (i % w) + 7 * (i / w)) as u8).collect();
        let (c, dw, dh, px) = decode_jpeg(&jpeg_bytes(&grey, w, h, jpeg_encoder::ColorType::Luma)).unwrap();
        assert_eq!((c, dw, dh), (1, w, h));
        let d = max_abs_diff(&px, &grey);
        assert!(d <= 6, "grey JPEG differs from its source by {d}");

        // Flat CMYK red (C = 0, M = Y = 255, K = 0) comes out as RGB red.
        let cmyk: Vec<u8> = (0..w * h).flat_map(|_| [0u8, 255, 255, 0]).collect();
        let (c, _, _, px) = decode_jpeg(&jpeg_bytes(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)).unwrap();
        assert_eq!(c, 3);
        let red: Vec<u8> = [255u8, 0, 0].iter().flat_map(|&v| vec![v; w * h]).collect();
        let d = max_abs_diff(&px, &red);
        assert!(d <= 8, "CMYK JPEG differs from red by {d}");
    }

    #[test]
    fn folder_mixes_png_and_jpeg() {
        let dir = std::env::temp_dir().join(format!("cm-imgs-jpeg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // 20×16: the centre crop drops two columns each side, then 16 → 8 area-averages.
        let (w, h) = (20, 16);
        let rgb = smooth_rgb(w, h);
        std::fs::write(dir.join("a.png"), png_bytes(&rgb, w, h)).unwrap();
        std::fs::write(dir.join("b.JPG"), jpeg_bytes(&rgb, w, h, jpeg_encoder::ColorType::Rgb)).unwrap();
        let grey: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
        std::fs::write(
            dir.join("c.jpeg"),
            jpeg_bytes(&grey, w, h, jpeg_encoder::ColorType::Luma),
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();

        let im = load_folder(&dir, &FolderOptions { size: 8, grey: false }).unwrap();
        assert_eq!((im.n, im.c, im.h, im.w, im.pixels.len()), (3, 3, 8, 8, 3 * 192));
        let (png, rest) = im.pixels.split_at(192);
        let (jpg, grey_jpg) = rest.split_at(192);
        // The PNG is lossless: exactly the crop/resize of the source.
        let mut planar = vec![0u8; 3 * w * h];
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                planar[ch * w * h + i] = p[ch];
            }
        }
        assert_eq!(png, crop_resize(3, w, h, &planar, 8, false).as_slice());
        // The JPEG went through the same path: close to the PNG after resizing.
        let d = max_abs_diff(png, jpg);
        assert!(d <= 6, "JPEG vs PNG after crop/resize: {d}");
        // The grey JPEG is replicated to three equal channels matching the PNG's green.
        assert_eq!(&grey_jpg[..64], &grey_jpg[64..128]);
        assert_eq!(&grey_jpg[..64], &grey_jpg[128..]);
        let d = max_abs_diff(&grey_jpg[..64], &png[64..128]);
        assert!(d <= 6, "grey JPEG vs PNG green: {d}");

        let g = load_folder(&dir, &FolderOptions { size: 8, grey: true }).unwrap();
        assert_eq!((g.n, g.c, g.pixels.len()), (3, 1, 192));
        let d = max_abs_diff(&g.pixels[..64], &g.pixels[64..128]);
        assert!(d <= 6, "grey conversion, JPEG vs PNG: {d}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn truncated_or_corrupt_jpeg_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("cm-imgs-badjpeg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (w, h) = (32, 32);
        let rgb = smooth_rgb(w, h);
        std::fs::write(dir.join("a.png"), png_bytes(&rgb, w, h)).unwrap();
        let good = jpeg_bytes(&rgb, w, h, jpeg_encoder::ColorType::Rgb);
        let opt = FolderOptions { size: 8, grey: false };
        // Every cut: inside the headers, inside the scan, and within the last row of blocks
        // (which the decoder alone would pad without complaint).
        for cut in 1..good.len() {
            std::fs::write(dir.join("b.jpg"), &good[..cut]).unwrap();
            let e = format!("{:#}", load_folder(&dir, &opt).unwrap_err());
            assert!(e.contains("b.jpg") && e.contains("JPEG"), "cut at {cut}: {e}");
            assert!(
                e.contains(if cut < 2 { "not a JPEG" } else { "truncated" }),
                "cut at {cut}: {e}"
            );
        }
        // Bytes after the end-of-image marker are ignored.
        let mut padded = good.clone();
        padded.extend([0u8; 7]);
        std::fs::write(dir.join("b.jpg"), &padded).unwrap();
        assert_eq!(load_folder(&dir, &opt).unwrap().n, 2);
        std::fs::write(dir.join("b.jpg"), b"GIF89a").unwrap();
        let e = format!("{:#}", load_folder(&dir, &opt).unwrap_err());
        assert!(e.contains("b.jpg") && e.contains("not a JPEG"), "{e}");
        std::fs::write(dir.join("b.jpg"), b"\xFF\xD8\xFF\xC0 not a frame header").unwrap();
        let e = format!("{:#}", load_folder(&dir, &opt).unwrap_err());
        assert!(
            e.contains("b.jpg") && e.contains("corrupt or truncated JPEG header"),
            "{e}"
        );
        std::fs::write(dir.join("b.jpg"), &good).unwrap();
        assert_eq!(load_folder(&dir, &opt).unwrap().n, 2);
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
