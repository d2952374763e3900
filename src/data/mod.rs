//! Data: built-in 2-D distributions with exact samplers, Gaussian mixtures with exact oracles,
//! and a user's own points from `.csv` / `.npy` files (N×D, any D ≥ 1).
//!
//! Training sees standardised data (per-dimension mean 0, std 1, statistics stored with the run);
//! samples are mapped back with [`Standardizer::inverse`] before they are evaluated or saved.

pub mod em;
pub mod files;
pub mod gmm;
pub mod idx;
pub mod images;

use crate::rng::Rng;
use anyhow::{bail, Result};
use gmm::Gmm;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::sync::Arc;

/// Per-dimension affine standardisation x' = (x − mean)/std.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per-dimension mean, subtracted first.
    pub mean: Vec<f64>,
    /// Per-dimension standard deviation, divided by after the mean is subtracted.
    pub std: Vec<f64>,
}

impl Standardizer {
    /// The sample mean and (biased, 1/N) standard deviation of each dimension of `xs` (N×D
    /// row-major, D = `dim`); a std below 1e-12 is raised to 1e-12 so constant dimensions do
    /// not divide by zero.
    pub fn fit(xs: &[f64], dim: usize) -> Self {
        let n = (xs.len() / dim) as f64;
        let mean: Vec<f64> = (0..dim)
            .map(|i| xs.iter().skip(i).step_by(dim).sum::<f64>() / n)
            .collect();
        let std: Vec<f64> = (0..dim)
            .map(|i| {
                let v = xs
                    .iter()
                    .skip(i)
                    .step_by(dim)
                    .map(|x| (x - mean[i]).powi(2))
                    .sum::<f64>()
                    / n;
                v.sqrt().max(1e-12)
            })
            .collect();
        Self { mean, std }
    }
    /// The identity map on `dim` dimensions (mean 0, std 1).
    pub fn identity(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }
    /// Raw to standardised coordinates, (x − mean)/std, for N×D row-major `xs`.
    pub fn forward(&self, xs: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        xs.iter()
            .enumerate()
            .map(|(i, x)| (x - self.mean[i % d]) / self.std[i % d])
            .collect()
    }
    /// Standardised to raw coordinates, x·std + mean, for N×D row-major `xs`.
    pub fn inverse(&self, xs: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        xs.iter()
            .enumerate()
            .map(|(i, x)| x * self.std[i % d] + self.mean[i % d])
            .collect()
    }
}

/// A data source: exact sampler (built-ins) or a finite set of points (files).
#[derive(Clone, Debug)]
pub enum Dataset {
    /// A Gaussian mixture: exact samples, density, score, denoiser.
    Gmm {
        /// The built-in's name (`ring8`, `gmm-unequal`, `gmm1d`).
        name: String,
        /// The mixture, in raw (unstandardised) coordinates.
        gmm: Gmm,
    },
    /// A built-in distribution with an exact sampler but no closed-form density.
    Toy {
        /// The built-in's name, as in [`BUILTIN`].
        name: String,
        /// Which distribution.
        kind: Toy,
    },
    /// Points loaded from a file, drawn uniformly with replacement.
    Points {
        /// The file's path.
        name: String,
        /// The dimension D (the file's number of columns).
        dim: usize,
        /// The points, N×D row-major.
        xs: Vec<f64>,
    },
    /// Images (pixel values mapped to [-1, 1], never standardised), drawn uniformly with
    /// replacement, optionally flipped left-right with probability ½.
    Images {
        /// The data name as given, prefix included (e.g. `mnist:DIR`).
        name: String,
        /// The images, shared (not copied) between clones.
        images: Arc<images::Images>,
        /// Flip each drawn image left-right with probability ½.
        hflip: bool,
    },
}

/// How image data sets are read (the image fields of `[data]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    /// Random horizontal flips (each drawn image with probability ½; `data.hflip`); default
    /// false.
    pub hflip: bool,
    /// `folder:` images are centre-cropped and resized to this side length, in pixels
    /// (`data.image_size`); default 32.
    pub size: usize,
    /// `folder:` images are converted to grey (else RGB) (`data.grey`); default false.
    pub grey: bool,
    /// `mnist:` / `fashion-mnist:` split: the test set (t10k) instead of the training set
    /// (`data.test_split`); default false.
    pub test_split: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            hflip: false,
            size: 32,
            grey: false,
            test_split: false,
        }
    }
}

/// The prefixes that name image data sets.
pub const IMAGE_PREFIXES: &[&str] = &["mnist:", "fashion-mnist:", "idx:", "folder:", "npy:"];

/// Whether a data name names an image data set (one of [`IMAGE_PREFIXES`]).
pub fn is_image_name(name: &str) -> bool {
    IMAGE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The built-in 2-D distributions without a closed-form density (exact samplers only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Toy {
    /// `moons`: two interleaved half circles of radius 1, Gaussian noise std 0.05.
    Moons,
    /// `swiss-roll`: the 2-D spiral (t cos t, t sin t)/5, t ∈ [1.5π, 4.5π], noise std 0.1.
    SwissRoll,
    /// `checkerboard`: uniform on the unit squares of [-2, 2]² where ⌊x⌋ + ⌊y⌋ is even.
    Checkerboard,
    /// `rings`: three equally likely circles of radii 0.5, 1 and 1.5, noise std 0.04.
    Rings,
    /// `pinwheel`: five spiral arms (Johnson et al. 2016), radial std 0.3, tangential std 0.05.
    Pinwheel,
}

/// The names `--data` accepts for built-ins.
pub const BUILTIN: &[&str] = &[
    "ring8",
    "gmm-unequal",
    "gmm1d",
    "moons",
    "swiss-roll",
    "checkerboard",
    "rings",
    "pinwheel",
    "gmm5d",
    "gmm10d",
];

impl Dataset {
    /// A built-in by name, a `.csv` / `.npy` point file by path, or an image set
    /// (`mnist:DIR`, `fashion-mnist:DIR`, `idx:FILE`, `folder:DIR`, `npy:FILE`) with default
    /// image options.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::from_spec(name, &ImageOptions::default())
    }

    /// Like [`Dataset::from_name`], with the image options given.
    pub fn from_spec(name: &str, opt: &ImageOptions) -> Result<Self> {
        if let Some((prefix, path)) = name.split_once(':') {
            let p = std::path::Path::new(path);
            let im = match prefix {
                "mnist" | "fashion-mnist" => Some(images::load_mnist_dir(p, opt.test_split)?),
                "idx" => Some(images::load_idx_images(p)?),
                "npy" => Some(images::load_npy_images(p)?),
                "folder" => Some(images::load_folder(
                    p,
                    &images::FolderOptions {
                        size: opt.size,
                        grey: opt.grey,
                    },
                )?),
                _ => None,
            };
            if let Some(im) = im {
                return Ok(Dataset::Images {
                    name: name.into(),
                    images: Arc::new(im),
                    hflip: opt.hflip,
                });
            }
        }
        let iso = |s: f64| vec![s * s, 0.0, 0.0, s * s];
        Ok(match name {
            // The default: 8 equal modes on a ring of radius 2, each with std 0.2.
            "ring8" => {
                let means = (0..8).map(|k| {
                    let a = 2.0 * PI * k as f64 / 8.0;
                    vec![2.0 * a.cos(), 2.0 * a.sin()]
                });
                Dataset::Gmm {
                    name: name.into(),
                    gmm: Gmm::new(vec![1.0; 8], means.collect(), vec![iso(0.2); 8]),
                }
            }
            // Unequal weights and full covariances.
            "gmm-unequal" => Dataset::Gmm {
                name: name.into(),
                gmm: Gmm::new(
                    vec![0.5, 0.3, 0.2],
                    vec![vec![-1.5, 0.0], vec![1.5, 1.0], vec![0.5, -1.5]],
                    vec![vec![0.30, 0.20, 0.20, 0.30], iso(0.25), vec![0.05, -0.02, -0.02, 0.20]],
                ),
            },
            // A 1-D two-mode mixture (sCD's consistency-error test).
            "gmm1d" => Dataset::Gmm {
                name: name.into(),
                gmm: Gmm::new(
                    vec![0.4, 0.6],
                    vec![vec![-1.5], vec![1.0]],
                    vec![vec![0.09], vec![0.16]],
                ),
            },
            // Higher-dimensional mixtures for comparisons beyond the plane: 8 modes with unequal
            // weights (1, 2, ..., 8) and isotropic std 0.3 at fixed well-separated means
            // (spread ~2 per coordinate, drawn once from a seeded generator).
            "gmm5d" | "gmm10d" => {
                let dim = if name == "gmm5d" { 5 } else { 10 };
                let mut rng = Rng::new(0x5EED_0000 + dim as u64);
                let means: Vec<Vec<f64>> = (0..8).map(|_| (0..dim).map(|_| 2.0 * rng.normal()).collect()).collect();
                let cov = |s: f64| {
                    let mut c = vec![0.0; dim * dim];
                    for i in 0..dim {
                        c[i * dim + i] = s * s;
                    }
                    c
                };
                Dataset::Gmm {
                    name: name.into(),
                    gmm: Gmm::new((1..=8).map(|k| k as f64).collect(), means, vec![cov(0.3); 8]),
                }
            }
            "moons" => Dataset::Toy {
                name: name.into(),
                kind: Toy::Moons,
            },
            "swiss-roll" => Dataset::Toy {
                name: name.into(),
                kind: Toy::SwissRoll,
            },
            "checkerboard" => Dataset::Toy {
                name: name.into(),
                kind: Toy::Checkerboard,
            },
            "rings" => Dataset::Toy {
                name: name.into(),
                kind: Toy::Rings,
            },
            "pinwheel" => Dataset::Toy {
                name: name.into(),
                kind: Toy::Pinwheel,
            },
            path if path.ends_with(".csv") || path.ends_with(".npy") => {
                let (xs, dim) = files::load_points(std::path::Path::new(path))?;
                Dataset::Points {
                    name: path.into(),
                    dim,
                    xs,
                }
            }
            other => bail!(
                "unknown data set '{other}': expected one of {}, a path ending in .csv or .npy, or an image set {}PATH",
                BUILTIN.join(", "),
                IMAGE_PREFIXES.join("PATH, ")
            ),
        })
    }

    /// The data name as given (built-in name, file path, or image prefix and path).
    pub fn name(&self) -> &str {
        match self {
            Dataset::Gmm { name, .. }
            | Dataset::Toy { name, .. }
            | Dataset::Points { name, .. }
            | Dataset::Images { name, .. } => name,
        }
    }

    /// The image shape (C, H, W) of an image data set.
    pub fn image_shape(&self) -> Option<(usize, usize, usize)> {
        match self {
            Dataset::Images { images, .. } => Some((images.c, images.h, images.w)),
            _ => None,
        }
    }

    /// The sample dimension D (2 for the toys, C·H·W for images).
    pub fn dim(&self) -> usize {
        match self {
            Dataset::Gmm { gmm, .. } => gmm.dim,
            Dataset::Toy { .. } => 2,
            Dataset::Points { dim, .. } => *dim,
            Dataset::Images { images, .. } => images.dim(),
        }
    }

    /// The exact mixture in raw coordinates, where known.
    pub fn gmm(&self) -> Option<&Gmm> {
        match self {
            Dataset::Gmm { gmm, .. } => Some(gmm),
            _ => None,
        }
    }

    /// Class labels of a labelled image set, one per image.
    pub fn labels(&self) -> Option<&[u8]> {
        match self {
            Dataset::Images { images, .. } => images.labels.as_deref(),
            _ => None,
        }
    }

    /// Number of classes of a labelled image set (10 for `mnist:` / `fashion-mnist:`, the
    /// largest label + 1 otherwise); 0 without labels.
    pub fn classes(&self) -> usize {
        match self {
            Dataset::Images { images, .. } if images.labels.is_some() => images.classes,
            _ => 0,
        }
    }

    /// [`Dataset::sample`] (the same random numbers, so the same samples) with the class label
    /// of each sample drawn; None for data without labels.
    pub fn sample_labeled(&self, rng: &mut Rng, n: usize) -> (Vec<f64>, Option<Vec<usize>>) {
        match self {
            Dataset::Images { images, hflip, .. } => images.sample_labeled(rng, n, *hflip),
            _ => (self.sample(rng, n), None),
        }
    }

    /// Whether the data is a built-in distribution with an exact sampler (fresh draws are
    /// independent), not a finite set of points or images.
    pub fn is_generator(&self) -> bool {
        matches!(self, Dataset::Gmm { .. } | Dataset::Toy { .. })
    }

    /// `n` raw samples (row-major N×D).
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Vec<f64> {
        match self {
            Dataset::Gmm { gmm, .. } => gmm.sample(rng, n),
            Dataset::Toy { kind, .. } => (0..n).flat_map(|_| toy_point(*kind, rng)).collect(),
            Dataset::Points { dim, xs, .. } => {
                let m = xs.len() / dim;
                let mut out = Vec::with_capacity(n * dim);
                for _ in 0..n {
                    let i = rng.below(m);
                    out.extend_from_slice(&xs[i * dim..(i + 1) * dim]);
                }
                out
            }
            Dataset::Images { images, hflip, .. } => images.sample(rng, n, *hflip),
        }
    }

    /// Two draws of `n` points for evaluation: the reference the samples are measured against,
    /// and a second draw whose distance to it is the data floor. For a point file the two are
    /// disjoint subsets drawn without replacement (resampling a finite file would repeat
    /// points in both and make the floor look better than a fresh draw is): `n` each when the
    /// file has at least 2n points, else its two halves.
    pub fn reference_pair(&self, rng: &mut Rng, n: usize) -> (Vec<f64>, Vec<f64>) {
        match self {
            Dataset::Points { dim, xs, .. } => {
                let m = xs.len() / dim;
                let k = n.min(m / 2).max(1);
                // A partial Fisher–Yates shuffle of the indices: the first 2k are a uniform
                // sample without replacement.
                let mut idx: Vec<usize> = (0..m).collect();
                for i in 0..(2 * k).min(m) {
                    let j = i + rng.below(m - i);
                    idx.swap(i, j);
                }
                let pick = |ids: &[usize]| gather_rows(xs, *dim, ids);
                let second = if m >= 2 { pick(&idx[k..2 * k]) } else { pick(&idx[..k]) };
                (pick(&idx[..k]), second)
            }
            _ => {
                let a = self.sample(rng, n);
                (a, self.sample(rng, n))
            }
        }
    }

    /// Every point of a finite data set in raw coordinates (N×D row-major: a file's points, or
    /// the images in [-1, 1], unflipped, C·H·W each); None for the built-in distributions,
    /// which have exact samplers instead.
    pub fn points(&self) -> Option<Vec<f64>> {
        match self {
            Dataset::Gmm { .. } | Dataset::Toy { .. } => None,
            Dataset::Points { xs, .. } => Some(xs.clone()),
            Dataset::Images { images, .. } => {
                let mut out = Vec::with_capacity(images.n * images.dim());
                for i in 0..images.n {
                    images.get(i, false, &mut out);
                }
                Some(out)
            }
        }
    }

    /// Standardisation statistics: exact for mixtures, from all points for files, from a fixed
    /// 100k-point draw for the other built-ins.
    pub fn standardizer(&self) -> Standardizer {
        match self {
            Dataset::Gmm { gmm, .. } => {
                let (mean, std) = gmm.moments();
                Standardizer { mean, std }
            }
            Dataset::Points { dim, xs, .. } => Standardizer::fit(xs, *dim),
            // Images live in [-1, 1] already (σ_d = 0.5): no standardisation.
            Dataset::Images { images, .. } => Standardizer::identity(images.dim()),
            Dataset::Toy { .. } => Standardizer::fit(&self.sample(&mut Rng::new(0x5EED), 100_000), 2),
        }
    }
}

/// The rows `ids` of `xs` (N×`dim` row-major), in that order.
pub(crate) fn gather_rows(xs: &[f64], dim: usize, ids: &[usize]) -> Vec<f64> {
    ids.iter()
        .flat_map(|&i| xs[i * dim..(i + 1) * dim].iter().copied())
        .collect()
}

fn toy_point(kind: Toy, rng: &mut Rng) -> [f64; 2] {
    match kind {
        Toy::Moons => {
            let a = PI * rng.uniform();
            let (x, y) = if rng.uniform() < 0.5 {
                (a.cos(), a.sin())
            } else {
                (1.0 - a.cos(), 0.5 - a.sin())
            };
            [x + 0.05 * rng.normal(), y + 0.05 * rng.normal()]
        }
        Toy::SwissRoll => {
            let t = 1.5 * PI * (1.0 + 2.0 * rng.uniform());
            [
                t * t.cos() / 5.0 + 0.1 * rng.normal(),
                t * t.sin() / 5.0 + 0.1 * rng.normal(),
            ]
        }
        Toy::Checkerboard => loop {
            let x = 4.0 * rng.uniform() - 2.0;
            let y = 4.0 * rng.uniform() - 2.0;
            if ((x.floor() + y.floor()) as i64).rem_euclid(2) == 0 {
                return [x, y];
            }
        },
        Toy::Rings => {
            let r = [0.5, 1.0, 1.5][rng.below(3)];
            let a = 2.0 * PI * rng.uniform();
            [r * a.cos() + 0.04 * rng.normal(), r * a.sin() + 0.04 * rng.normal()]
        }
        Toy::Pinwheel => {
            // Five arms; radial offset r ~ N(1, 0.3²), tangential N(0, 0.05²), rotated by
            // an angle growing with exp(r) (the classic pinwheel of Johnson et al. 2016).
            let k = rng.below(5);
            let r = 1.0 + 0.3 * rng.normal();
            let t = 0.05 * rng.normal();
            let a = 2.0 * PI * k as f64 / 5.0 + 0.25 * r.exp();
            [r * a.cos() - t * a.sin(), r * a.sin() + t * a.cos()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_samples_finite_points_of_its_dim() {
        for name in BUILTIN {
            let d = Dataset::from_name(name).unwrap();
            let xs = d.sample(&mut Rng::new(1), 500);
            assert_eq!(xs.len(), 500 * d.dim(), "{name}");
            assert!(xs.iter().all(|v| v.is_finite()), "{name}");
            let st = d.standardizer();
            let z = st.forward(&xs);
            let back = st.inverse(&z);
            assert!(xs.iter().zip(&back).all(|(a, b)| (a - b).abs() < 1e-9));
        }
    }

    /// A point file's reference and floor draws share no point, and are capped at half the
    /// file.
    #[test]
    fn reference_pair_of_a_file_is_disjoint() {
        let xs: Vec<f64> = (0..100).flat_map(|i| [i as f64, -(i as f64)]).collect();
        let d = Dataset::Points {
            name: "f.csv".into(),
            dim: 2,
            xs,
        };
        for n in [10, 50, 80] {
            let (a, b) = d.reference_pair(&mut Rng::new(n as u64), n);
            let k = n.min(50);
            assert_eq!((a.len(), b.len()), (2 * k, 2 * k));
            let ia: std::collections::BTreeSet<i64> = a.chunks(2).map(|p| p[0] as i64).collect();
            let ib: std::collections::BTreeSet<i64> = b.chunks(2).map(|p| p[0] as i64).collect();
            assert_eq!(ia.len(), k, "no repeats within a draw");
            assert!(ia.is_disjoint(&ib), "n = {n}");
        }
    }

    #[test]
    fn checkerboard_points_lie_on_dark_squares() {
        let d = Dataset::from_name("checkerboard").unwrap();
        let xs = d.sample(&mut Rng::new(2), 1000);
        for p in xs.chunks(2) {
            assert_eq!(((p[0].floor() + p[1].floor()) as i64).rem_euclid(2), 0);
        }
    }

    #[test]
    fn idx_fixture_is_an_unstandardised_image_set() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mnist-t10k-256-images-idx3-ubyte"
        );
        let d = Dataset::from_name(&format!("idx:{path}")).unwrap();
        assert_eq!(d.dim(), 784);
        assert_eq!(d.image_shape(), Some((1, 28, 28)));
        assert_eq!(d.standardizer(), Standardizer::identity(784));
        let xs = d.sample(&mut Rng::new(0), 4);
        assert!(xs.iter().all(|v| (-1.0..=1.0).contains(v)));
        let e = Dataset::from_name("mnist:/nonexistent").unwrap_err().to_string();
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    }

    #[test]
    fn sample_labeled_returns_the_labels_of_the_images_drawn() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mnist-t10k-256-images-idx3-ubyte"
        );
        for hflip in [false, true] {
            let opt = ImageOptions {
                hflip,
                ..Default::default()
            };
            let d = Dataset::from_spec(&format!("idx:{path}"), &opt).unwrap();
            let Dataset::Images { images, .. } = &d else {
                unreachable!()
            };
            assert_eq!(d.classes(), 10);
            assert_eq!(d.labels(), images.labels.as_deref());
            let n = 300;
            let (mut r1, mut r2) = (Rng::new(9), Rng::new(9));
            let (xs, labels) = d.sample_labeled(&mut r1, n);
            // The same random numbers as `sample`: the same images, the same RNG state after.
            assert_eq!(xs, d.sample(&mut r2, n));
            assert_eq!(r1.state(), r2.state());
            let labels = labels.unwrap();
            assert_eq!(labels.len(), n);
            // Each drawn image (maybe flipped) is found among the data by content; its label
            // is that image's label.
            let dim = d.dim();
            let all: Vec<(Vec<f64>, Vec<f64>)> = (0..images.n)
                .map(|i| {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    images.get(i, false, &mut a);
                    images.get(i, true, &mut b);
                    (a, b)
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            for (j, row) in xs.chunks(dim).enumerate() {
                let i = all
                    .iter()
                    .position(|(a, b)| a == row || (hflip && b == row))
                    .expect("a drawn image that is not in the data");
                assert_eq!(
                    labels[j],
                    images.labels.as_ref().unwrap()[i] as usize,
                    "sample {j} (image {i})"
                );
                seen.insert(labels[j]);
            }
            assert!(seen.len() >= 9, "labels drawn: {seen:?}");
        }
        // Data without labels.
        let d = Dataset::from_name("ring8").unwrap();
        let (xs, labels) = d.sample_labeled(&mut Rng::new(1), 10);
        assert_eq!((xs, labels), (d.sample(&mut Rng::new(1), 10), None));
        assert_eq!(d.classes(), 0);
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let e = Dataset::from_name("ring9").unwrap_err().to_string();
        assert!(e.contains("unknown data set 'ring9'") && e.contains("ring8"), "{e}");
    }
}
