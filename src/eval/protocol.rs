//! The image evaluation protocol, stated once and used by `cm eval`, the image recipes' model
//! cards, the README tables and the Python package (issue 14).
//!
//! **The protocol.** [`PROTOCOL_N`] = 10 000 generated samples (noise seed [`SAMPLE_SEED`], one
//! stream; class-conditional models with balanced classes, sample i of class i mod K) are
//! rounded to 8 bits exactly as a PNG stores them ([`quantize`]: clamp to [-1, 1],
//! u = round(127.5·(x + 1)), x = u/127.5 − 1) and measured against the **10 000 images of the
//! test split** (`mnist:` / `fashion-mnist:` folders; other image sources have no test split,
//! so the reference is a draw of the training images disjoint from the floor draw, and the
//! report says so). Every figure has its **data floor** beside it: the same metric of 10 000
//! *training* images (drawn without replacement, seed [`FLOOR_SEED`]) against the same
//! reference, i.e. what a perfect model that had seen only the training set would score.
//!
//! Metrics, all on the 64-d features of the built-in classifier of the data set
//! ([`super::images::Net`]: `FD-mnistnet` for MNIST-like data, `FD-fashionnet` for
//! Fashion-MNIST; never called FID, which uses Inception features):
//! - Fréchet distance of the feature Gaussians (biased at small N; hence 10 000);
//! - KID, unbiased, cubic polynomial kernel, mean ± standard error over 100 subsets of 1000;
//! - precision and recall (Kynkäänniemi et al. 2019, k = 3);
//! - class agreement of class-conditional samples (share whose classifier label is the
//!   conditioning label; its floor is the classifier's accuracy on the floor draw);
//! - memorisation: the share of samples nearer their nearest training image than that image is
//!   to its own nearest other training image, in the same features, over the whole training
//!   split ([`features::memorisation_share`]); its floor is the same share for the held-out
//!   floor draw (test images when a test split exists), which is far from 0 by construction.

use super::features;
use super::images::{frechet_from_stats, mean_cov, ImageEvaluator, ImageReport, Net, FEAT};
use super::inception::Inception;
use crate::data::{Dataset, ImageOptions};
use crate::rng::Rng;
use anyhow::{Context, Result};
use burn::prelude::*;
use serde::Serialize;
use std::path::Path;

/// Samples (and reference and floor images) of the protocol.
pub const PROTOCOL_N: usize = 10_000;
/// Noise seed of the generated samples (one stream).
pub const SAMPLE_SEED: u64 = 1;
/// Seed of the draw of training images that gives the data floor.
pub const FLOOR_SEED: u64 = 2;

/// The 8-bit rounding every sample goes through before it is measured, as when saved to PNG:
/// clamp to [-1, 1] (NaN → −1), u = round(127.5·(x + 1)) ∈ {0 … 255}, back to u/127.5 − 1.
pub fn quantize(xs: &[f64]) -> Vec<f64> {
    xs.iter()
        .map(|&x| {
            let x = if x.is_nan() { -1.0 } else { x.clamp(-1.0, 1.0) };
            ((x + 1.0) * 127.5).round() / 127.5 - 1.0
        })
        .collect()
}

/// What the protocol measures of one sample set, each figure with its data floor.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolReport {
    /// The protocol in one sentence (what was compared with what).
    pub protocol: String,
    /// Generated samples measured.
    pub n: usize,
    /// The metrics of the samples (flattened into the JSON object: `fd`, `kid`, …).
    #[serde(flatten)]
    pub samples: ImageReport,
    /// The same metrics of the floor draw of training images.
    pub floor: ImageReport,
    /// Class-conditional samples: share whose classifier label equals the conditioning label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_agreement: Option<f64>,
    /// The classifier's accuracy on the floor draw (what class agreement can reach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_agreement_floor: Option<f64>,
    /// Memorised share of the samples (None when not computed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memorised: Option<f64>,
    /// The same share of the held-out floor draw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memorised_floor: Option<f64>,
    /// Network evaluations per sample of the sampler, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfe: Option<usize>,
    /// FID and KID on Inception-v3 features, when the user gave the weights (`--fid-weights`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inception: Option<FidReport>,
    /// The same of the floor draw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inception_floor: Option<FidReport>,
}

/// FID proper: the Fréchet distance and KID on the 2048-d features of pytorch-fid's
/// Inception-v3 ([`super::inception`]), same reference and rounding as the rest of the protocol.
#[derive(Clone, Debug, Serialize)]
pub struct FidReport {
    /// Fréchet Inception Distance.
    pub fid: f64,
    /// Unbiased KID on the Inception features, mean ± standard error over subsets (the
    /// convention of Bińkowski et al. 2018 and clean-fid: the raw value, not ×1000).
    pub kid: (f64, f64),
}

/// The Inception network and the reference statistics of the FID part of the protocol.
struct FidStage {
    net: Inception,
    ref_feats: Vec<f64>,
    ref_mu: Vec<f64>,
    ref_cov: Vec<f64>,
    floor: FidReport,
}

impl FidStage {
    /// Batch of the Inception forward pass: 16 images of 299² px keep the largest activation
    /// (64 channels at 147², with its im2col copy) near 0.5 GB.
    const BATCH: usize = 16;

    fn features(&self, xs: &[f64], shape: (usize, usize, usize), what: &str) -> Result<Vec<f64>> {
        let t0 = std::time::Instant::now();
        let mut last = 0.0;
        self.net.features(xs, shape, Self::BATCH, |done, total| {
            let t = t0.elapsed().as_secs_f64();
            if t - last > 10.0 || done == total {
                last = t;
                let eta = t / done as f64 * (total - done) as f64;
                eprintln!(
                    "  Inception features of {what}: {done}/{total}  {:.1} images/s  eta {eta:.0} s",
                    done as f64 / t
                );
            }
        })
    }

    fn report(&self, f: &[f64]) -> FidReport {
        let d = super::inception::DIM;
        let (mu, cov) = mean_cov(f, d);
        let n = (f.len() / d).min(self.ref_feats.len() / d);
        let kid = if n >= 4 {
            features::kid(
                f,
                &self.ref_feats,
                d,
                features::KID_SUBSETS,
                features::KID_SUBSET_SIZE.min(n / 2),
                0x41D,
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        FidReport {
            fid: frechet_from_stats(&mu, &cov, &self.ref_mu, &self.ref_cov, d),
            kid,
        }
    }
}

impl ProtocolReport {
    /// Lines for the terminal: each metric beside its floor.
    pub fn lines(&self) -> Vec<String> {
        let (s, f) = (&self.samples, &self.floor);
        let mut v = vec![
            format!("{}: {:.3}   (data floor {:.3})", s.fd_net, s.fd, f.fd),
            format!(
                "KID: {:.5} ± {:.5}   (data floor {:.5} ± {:.5})",
                s.kid.0, s.kid.1, f.kid.0, f.kid.1
            ),
            format!(
                "precision {:.3}  recall {:.3}   (data floor {:.3} / {:.3})",
                s.precision_recall.0, s.precision_recall.1, f.precision_recall.0, f.precision_recall.1
            ),
            format!(
                "classifier confidence {:.3}   (data floor {:.3})",
                s.confidence, f.confidence
            ),
        ];
        if let (Some(a), Some(b)) = (self.class_agreement, self.class_agreement_floor) {
            v.push(format!(
                "class agreement {:.3}   (classifier accuracy on data {:.3})",
                a, b
            ));
        }
        if let (Some(a), Some(b)) = (&self.inception, &self.inception_floor) {
            v.push(format!(
                "FID (Inception-v3, pytorch-fid): {:.3}   (data floor {:.3})",
                a.fid, b.fid
            ));
            v.push(format!(
                "KID (Inception-v3): {:.5} ± {:.5}   (data floor {:.5} ± {:.5})",
                a.kid.0, a.kid.1, b.kid.0, b.kid.1
            ));
        }
        if let (Some(a), Some(b)) = (self.memorised, self.memorised_floor) {
            v.push(format!(
                "memorised {:.3}   (held-out data {:.3}; higher than that means copies)",
                a, b
            ));
        }
        v
    }
}

/// The reference, floor and training features of an image data set, computed once; then any
/// number of sample sets can be measured ([`ImageProtocol::measure`]).
pub struct ImageProtocol {
    eval: ImageEvaluator,
    floor: ImageReport,
    floor_agreement: Option<f64>,
    floor_memorised: Option<f64>,
    train_feats: Option<Vec<f64>>,
    protocol: String,
    reference_n: usize,
    fid: Option<FidStage>,
    device: Device,
}

impl ImageProtocol {
    /// Sets the protocol up for the image data set `data` (its training images): loads the
    /// test split where the source has one, draws the floor, and (with `memorisation`)
    /// computes the features of every training image. `n` replaces [`PROTOCOL_N`] for the
    /// reference and floor sizes (tests; reports say the size used).
    pub fn new(data: &Dataset, n: usize, memorisation: bool, device: &Device) -> Result<Self> {
        Self::with_fid(data, n, memorisation, None, device)
    }

    /// [`ImageProtocol::new`], and with `fid_weights` (pytorch-fid's Inception weights as
    /// safetensors, [`super::inception`]) FID and KID on Inception features as well: the
    /// reference and floor images go through the network here (minutes for 10 000 each on two
    /// cores; progress on stderr).
    pub fn with_fid(
        data: &Dataset,
        n: usize,
        memorisation: bool,
        fid_weights: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        let Dataset::Images { name, images, .. } = data else {
            anyhow::bail!("the image protocol needs image data, got {}", data.name());
        };
        anyhow::ensure!(
            images.n > 0,
            "the image protocol needs the images of {name}, which are not on this machine (a model file samples without them; fetch them with `cm data fetch mnist|fashion-mnist --dir DIR` and evaluate samples with `cm eval SAMPLES.npy --data mnist:DIR`)"
        );
        let shape = (images.c, images.h, images.w);
        let net = Net::for_data(name);
        let flat = |im: &crate::data::images::Images, idx: &[usize]| -> Vec<f64> {
            let mut xs = Vec::with_capacity(idx.len() * im.dim());
            for &i in idx {
                im.get(i, false, &mut xs);
            }
            xs
        };
        // A draw without replacement (partial Fisher–Yates) of k of m indices.
        let draw = |m: usize, k: usize, seed: u64| -> Vec<usize> {
            let mut rng = Rng::new(seed);
            let mut idx: Vec<usize> = (0..m).collect();
            for i in 0..k.min(m) {
                let j = i + rng.below(m - i);
                idx.swap(i, j);
            }
            idx.truncate(k.min(m));
            idx
        };
        let split = name.starts_with("mnist:") || name.starts_with("fashion-mnist:");
        let (reference, floor_idx, what) = if split {
            let test = Dataset::from_spec(
                name,
                &ImageOptions {
                    test_split: true,
                    ..Default::default()
                },
            )
            .with_context(|| format!("the image protocol measures against the test split of {name}"))?;
            let Dataset::Images { images: test, .. } = test else {
                unreachable!()
            };
            let idx = draw(test.n, n, FLOOR_SEED ^ 0x7E57);
            let floor_idx = draw(images.n, n, FLOOR_SEED);
            (flat(&test, &idx), floor_idx, format!("the {} test images", idx.len()))
        } else {
            // No test split: disjoint draws of the training images for reference and floor.
            let k = n.min(images.n / 2);
            let idx = draw(images.n, 2 * k, FLOOR_SEED);
            (
                flat(images, &idx[..k]),
                idx[k..].to_vec(),
                format!("{k} training images (the source has no test split)"),
            )
        };
        let reference_n = reference.len() / images.dim();
        let eval = ImageEvaluator::new(net, &reference, shape, device)?;
        let floor_x = flat(images, &floor_idx);
        let floor = eval.report(&floor_x);
        let floor_agreement = images.labels.as_ref().map(|l| {
            let pred = predicted(&eval, &floor_x, device);
            let want: Vec<usize> = floor_idx.iter().map(|&i| l[i] as usize).collect();
            features::class_agreement(&pred, &want)
        });
        let (train_feats, floor_memorised) = if memorisation {
            let all: Vec<usize> = (0..images.n).collect();
            let tf = eval.clf.features(&flat(images, &all), shape, device).0;
            // The floor draw is part of the training set when there is no test split: then its
            // share is 1 by construction, so the baseline is the reference (held out from the
            // floor, but also training images) only for split sources.
            let held_out = if split { &reference } else { &floor_x };
            let ff = eval.clf.features(held_out, shape, device).0;
            let m = features::memorisation_share(&ff, &tf, FEAT);
            (Some(tf), split.then_some(m))
        } else {
            (None, None)
        };
        let fid = match fid_weights {
            None => None,
            Some(path) => {
                let net = Inception::load(path, device)?;
                let mut stage = FidStage {
                    net,
                    ref_feats: Vec::new(),
                    ref_mu: Vec::new(),
                    ref_cov: Vec::new(),
                    floor: FidReport {
                        fid: f64::NAN,
                        kid: (f64::NAN, f64::NAN),
                    },
                };
                stage.ref_feats = stage.features(&reference, shape, "the reference")?;
                (stage.ref_mu, stage.ref_cov) = mean_cov(&stage.ref_feats, super::inception::DIM);
                let ff = stage.features(&floor_x, shape, "the floor draw")?;
                stage.floor = stage.report(&ff);
                Some(stage)
            }
        };
        let protocol = format!(
            "{n} samples rounded to 8 bits against {what}; data floor: {} training images against the same; {} features{}, KID unbiased (100 subsets of ≤1000), precision/recall k = 3",
            floor_idx.len(),
            net.fd_name().trim_start_matches("FD-"),
            if fid.is_some() { " and Inception-v3 (FID)" } else { "" },
        );
        Ok(Self {
            eval,
            floor,
            floor_agreement,
            floor_memorised,
            train_feats,
            protocol,
            reference_n,
            fid,
            device: device.clone(),
        })
    }

    /// Measures flat `[N, C·H·W]` samples in [-1, 1] (rounded to 8 bits first, [`quantize`]);
    /// `labels`: the conditioning class of each sample for class agreement.
    pub fn measure(&self, samples: &[f64], labels: Option<&[usize]>) -> Result<ProtocolReport> {
        let q = quantize(samples);
        let s = self.eval.report(&q);
        let n = q.len() / self.dim();
        let class_agreement = labels.map(|l| {
            let pred = predicted(&self.eval, &q, &self.device);
            features::class_agreement(&pred, l)
        });
        let memorised = self.train_feats.as_ref().map(|tf| {
            let f = self.eval.clf.features(&q, self.eval.shape, &self.device).0;
            features::memorisation_share(&f, tf, FEAT)
        });
        let inception = match &self.fid {
            None => None,
            Some(stage) => Some(stage.report(&stage.features(&q, self.eval.shape, "the samples")?)),
        };
        Ok(ProtocolReport {
            protocol: self.protocol.clone(),
            n,
            samples: s,
            floor: self.floor.clone(),
            class_agreement,
            class_agreement_floor: labels.and(self.floor_agreement),
            memorised,
            memorised_floor: self.floor_memorised,
            nfe: None,
            inception_floor: self.fid.as_ref().map(|f| f.floor.clone()),
            inception,
        })
    }

    /// Images in the reference (and in the floor draw): the sample count that matches it.
    pub fn reference_len(&self) -> usize {
        self.reference_n
    }

    fn dim(&self) -> usize {
        let (c, h, w) = self.eval.shape;
        c * h * w
    }
}

/// The classifier's label (arg max of its probabilities) of each image.
fn predicted(eval: &ImageEvaluator, xs: &[f64], device: &Device) -> Vec<usize> {
    let (_, p) = eval.clf.features(xs, eval.shape, device);
    let k = p.len()
        / (xs.len() / {
            let (c, h, w) = eval.shape;
            c * h * w
        });
    p.chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0
        })
        .collect()
}

/// `cm eval` of an image run under the protocol: `n` samples ([`PROTOCOL_N`] by default) from
/// the backbone weights `params` with the run's sampler and `steps` steps, noise seed
/// [`SAMPLE_SEED`], balanced classes (and classifier-free guidance `guidance`) for a
/// class-conditional network, measured against reference and floor draws of the same size.
/// Progress goes to stderr when `progress`.
pub fn measure_run(
    setup: &crate::run::Setup,
    params: &[Tensor<1>],
    n: usize,
    steps: usize,
    guidance: f64,
    memorisation: bool,
    fid_weights: Option<&Path>,
    progress: bool,
) -> Result<ProtocolReport> {
    anyhow::ensure!(steps >= 1, "--steps must be at least 1");
    anyhow::ensure!(n >= 8, "the image protocol needs at least 8 samples, got {n}");
    let k = setup.model.net.n_classes();
    anyhow::ensure!(
        guidance == 1.0 || k > 0,
        "--guidance {guidance} needs a class-conditional run (model.classes > 0)"
    );
    let t0 = std::time::Instant::now();
    let say = |what: &str| {
        if progress {
            eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
        }
    };
    say("reference, floor and training-set features");
    let proto = ImageProtocol::with_fid(&setup.data, n, memorisation, fid_weights, &setup.device)?;
    let sampler = setup.sampler();
    let times = sampler.times(steps);
    say(&format!("sampling {n} images, {steps} step(s)"));
    let mut rng = Rng::new(SAMPLE_SEED);
    let mut opts = crate::generate::SampleOptions::new(setup, steps, crate::generate::NoiseSource::Stream(&mut rng));
    opts.guidance = guidance;
    let xs = crate::generate::sample(setup, params, n, opts);
    say("measuring");
    let labels: Option<Vec<usize>> = (k > 0).then(|| (0..n).map(|i| i % k).collect());
    let mut r = proto.measure(&xs, labels.as_deref())?;
    r.nfe = Some(sampler.nfe(&times));
    say("done");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture_name() -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte");
        format!("idx:{}", p.display())
    }

    #[test]
    fn quantize_is_the_png_rounding() {
        let q = quantize(&[-2.0, -1.0, 0.0, 0.5, 1.0, 7.0, f64::NAN, 1.0 / 255.0]);
        let byte = |x: f64| ((x + 1.0) * 127.5).round();
        assert_eq!(q[0], -1.0);
        assert_eq!(q[4], 1.0);
        assert_eq!(q[5], 1.0);
        assert_eq!(q[6], -1.0);
        // 0 → byte 128 (127.5 rounds half away from zero), 0.5 → 191.25 → 191.
        assert_eq!(byte(q[2]), 128.0);
        assert_eq!(byte(q[3]), 191.0);
        // Every value is a byte exactly, and rounding again changes nothing.
        for &v in &q {
            let b = byte(v);
            assert!((v - (b / 127.5 - 1.0)).abs() < 1e-15);
        }
        assert_eq!(quantize(&q), q);
    }

    /// On the 256-image fixture (no test split: reference and floor are disjoint halves):
    /// the floor images measured as samples give exactly the floor; the reference against
    /// itself gives FD 0; training images are all "memorised"; true labels give the floor's
    /// class agreement, shifted labels give far less; noise is far from every floor.
    #[test]
    fn protocol_on_the_fixture_reproduces_its_floor_and_separates_noise() {
        let dev = Device::flex();
        let ds = Dataset::from_name(&fixture_name()).unwrap();
        let proto = ImageProtocol::new(&ds, 100, true, &dev).unwrap();
        assert!(proto.protocol.contains("no test split"), "{}", proto.protocol);
        let Dataset::Images { images, .. } = &ds else {
            unreachable!()
        };
        // Rebuild the floor draw: the same seed, the same partial shuffle.
        let mut rng = Rng::new(FLOOR_SEED);
        let mut idx: Vec<usize> = (0..images.n).collect();
        for i in 0..200 {
            let j = i + rng.below(images.n - i);
            idx.swap(i, j);
        }
        let mut floor = Vec::new();
        for &i in &idx[100..200] {
            images.get(i, false, &mut floor);
        }
        let labels: Vec<usize> = idx[100..200]
            .iter()
            .map(|&i| images.labels.as_ref().unwrap()[i] as usize)
            .collect();
        let r = proto.measure(&floor, Some(&labels)).unwrap();
        assert!(
            (r.samples.fd - r.floor.fd).abs() < 1e-9,
            "{} vs {}",
            r.samples.fd,
            r.floor.fd
        );
        assert_eq!(r.samples.precision_recall, r.floor.precision_recall);
        assert_eq!(r.class_agreement, r.class_agreement_floor);
        assert!(r.class_agreement.unwrap() > 0.9);
        assert_eq!(
            r.memorised,
            Some(1.0),
            "training images are their own nearest neighbours"
        );
        let shifted: Vec<usize> = labels.iter().map(|l| (l + 1) % 10).collect();
        assert!(proto.measure(&floor, Some(&shifted)).unwrap().class_agreement.unwrap() < 0.2);
        let mut reference = Vec::new();
        for &i in &idx[..100] {
            images.get(i, false, &mut reference);
        }
        // 0 up to the square root's round-off (see the mnistnet test in images.rs).
        assert!(proto.measure(&reference, None).unwrap().samples.fd.abs() < 1e-5);
        let mut nr = Rng::new(3);
        let noise: Vec<f64> = (0..floor.len()).map(|_| nr.uniform() * 2.0 - 1.0).collect();
        let rn = proto.measure(&noise, None).unwrap();
        assert!(rn.samples.fd > 10.0 * r.floor.fd.max(1.0), "noise FD {}", rn.samples.fd);
        assert!(rn.samples.kid.0 > r.floor.kid.0 + 5.0 * rn.samples.kid.1);
        assert!(rn.lines().iter().any(|l| l.contains("data floor")));
    }

    /// The FID part of the protocol (synthetic Inception weights, so the values only test the
    /// plumbing): the floor draw measured as samples gives exactly the floor's FID and KID, the
    /// reference against itself FID 0, noise a larger FID; the report carries both blocks.
    #[test]
    fn fid_part_reproduces_its_floor_and_zero_on_the_reference() {
        let dev = Device::flex();
        let dir = std::env::temp_dir().join(format!("cm-protocol-fid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = dir.join("inception.safetensors");
        crate::eval::inception::write_synthetic_weights(&w).unwrap();
        let ds = Dataset::from_name(&fixture_name()).unwrap();
        let n = 12;
        let proto = ImageProtocol::with_fid(&ds, n, false, Some(&w), &dev).unwrap();
        assert!(proto.protocol.contains("Inception-v3"), "{}", proto.protocol);
        let Dataset::Images { images, .. } = &ds else {
            unreachable!()
        };
        let mut rng = Rng::new(FLOOR_SEED);
        let mut idx: Vec<usize> = (0..images.n).collect();
        for i in 0..2 * n {
            let j = i + rng.below(images.n - i);
            idx.swap(i, j);
        }
        let (mut reference, mut floor) = (Vec::new(), Vec::new());
        for &i in &idx[..n] {
            images.get(i, false, &mut reference);
        }
        for &i in &idx[n..2 * n] {
            images.get(i, false, &mut floor);
        }
        let r = proto.measure(&floor, None).unwrap();
        let (got, want) = (r.inception.unwrap(), r.inception_floor.unwrap());
        assert!(
            (got.fid - want.fid).abs() < 1e-9 * want.fid.abs().max(1.0),
            "{} vs {}",
            got.fid,
            want.fid
        );
        assert_eq!(got.kid, want.kid);
        let same = proto.measure(&reference, None).unwrap().inception.unwrap();
        assert!(
            same.fid.abs() < 1e-5 * want.fid.max(1e-3),
            "FID of the reference against itself {}",
            same.fid
        );
        let mut nr = Rng::new(3);
        let noise: Vec<f64> = (0..floor.len()).map(|_| nr.uniform() * 2.0 - 1.0).collect();
        let rn = proto.measure(&noise, None).unwrap();
        assert!(
            rn.inception.as_ref().unwrap().fid > 2.0 * want.fid,
            "noise {} vs floor {}",
            rn.inception.unwrap().fid,
            want.fid
        );
        assert!(rn.lines().iter().any(|l| l.starts_with("FID (Inception-v3")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With an MNIST-layout folder the reference is the test split and the memorisation
    /// baseline is the held-out reference.
    #[test]
    fn mnist_folders_are_measured_against_their_test_split() {
        let dev = Device::flex();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-images-idx3-ubyte");
        let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-t10k-256-labels-idx1-ubyte");
        let dir = std::env::temp_dir().join(format!("cm-protocol-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for pre in ["train", "t10k"] {
            std::fs::copy(&src, dir.join(format!("{pre}-images-idx3-ubyte"))).unwrap();
            std::fs::copy(&lab, dir.join(format!("{pre}-labels-idx1-ubyte"))).unwrap();
        }
        let ds = Dataset::from_name(&format!("mnist:{}", dir.display())).unwrap();
        let proto = ImageProtocol::new(&ds, 64, true, &dev).unwrap();
        assert!(proto.protocol.contains("the 64 test images"), "{}", proto.protocol);
        // The "test" split here is the training file itself, so the baseline is all copies.
        assert_eq!(proto.floor_memorised, Some(1.0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
