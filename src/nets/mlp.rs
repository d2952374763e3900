//! Time-conditioned MLP for vector data (2-D toys, any D).
//!
//! Shape: D → H → H → … → D with `depth` hidden layers of width H (the standard 2-D config is
//! 2→512→512→512→2). Each hidden pre-activation is modulated by the time embedding e:
//! `shift` adds a per-layer projection of e; `scale-shift` applies a·(1+s(e)) + b(e) to the
//! (optionally pixel-normalised) pre-activation. `double_norm` is sCM's adaptive double
//! normalisation (Lu & Song 2024): the pre-activation and the scale/shift each pass through
//! pixel norm. The time embedding of each conditioning scalar c is [sin(ω c), cos(ω c)]
//! with ω geometric from 1 to `max_freq` (positional, the default; METHODS.md §7 shows why
//! low frequencies matter) or Gaussian random ω·2π with std `max_freq` (Fourier).

use super::dual::{linear, pixel_norm_dual, Dual};
use super::embed::Embedding;
use super::*;
use serde::{Deserialize, Serialize};

/// How the time embedding e modulates each hidden pre-activation a (`model.modulation`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Modulation {
    /// `shift`: a + b(e), a per-layer projection of e added (the default).
    Shift,
    /// `scale-shift`: a·(1 + s(e)) + b(e), FiLM-style; with `double_norm`, a, s and b are each
    /// pixel-normalised first.
    ScaleShift,
}

/// MLP hyper-parameters (the `[model]` table of a config when the backbone is `mlp`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Hidden width H; default 512.
    pub hidden: usize,
    /// Number of hidden layers (the input layer D → H counts as the first); default 3.
    pub depth: usize,
    /// Time-embedding size per time input (even: sin and cos halves); default 32.
    pub emb_dim: usize,
    /// Width of the time-embedding MLP whose output modulates every hidden layer (kept
    /// narrower than `hidden` because each layer's modulation costs emb_hidden × hidden);
    /// default 128.
    pub emb_hidden: usize,
    /// Frequencies of the time embedding: positional (default) or random Fourier.
    pub embedding: Embedding,
    /// Highest embedding frequency ω (positional) or frequency std (Fourier), in radians per
    /// unit of the conditioning scalar c; default 16.
    pub max_freq: f64,
    /// Lowest positional frequency (default 1; ADM: 10000^{−(half−1)/half}, AUDIT M5).
    #[serde(default = "super::embed::one", skip_serializing_if = "super::embed::is_one")]
    pub min_freq: f64,
    /// Multiplier of the conditioning scalar c before the embedding (default 1; the PyTorch
    /// CM/CTM codes embed 1000·c, the JAX CM code ln σ = 4·c: AUDIT M5).
    #[serde(default = "super::embed::one", skip_serializing_if = "super::embed::is_one")]
    pub time_scale: f64,
    /// How the embedding enters each hidden layer; default [`Modulation::Shift`].
    pub modulation: Modulation,
    /// sCM adaptive double normalisation (Lu & Song 2024); only acts with
    /// [`Modulation::ScaleShift`]; default false.
    pub double_norm: bool,
    /// Dropout probability on hidden activations, in [0, 1); default 0 (0.3 in iCT, Song &
    /// Dhariwal 2023).
    pub dropout: f64,
    /// Zero-initialise the output layer, so F_θ = 0 at the start; default false.
    pub zero_out: bool,
    /// Random Fourier features of the input (Tancik et al. 2020): F > 0 frequencies b_j ~
    /// N(0, `input_fourier_std`²·I), fixed at initialisation, and the first layer sees
    /// [x, sin(Bx), cos(Bx)] instead of x, so a small MLP can resolve detail finer than its
    /// smooth activations would (within-mode spread on 2-D data, README "Which method").
    /// Default 0 = off (not written to stored configs then).
    #[serde(skip_serializing_if = "is_zero")]
    pub input_fourier: usize,
    /// Standard deviation of the input Fourier frequencies, in radians per unit of the
    /// (preconditioned, ~unit-variance) network input; default 1 (not written when 1).
    #[serde(default = "super::embed::one", skip_serializing_if = "super::embed::is_one")]
    pub input_fourier_std: f64,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: 512,
            depth: 3,
            emb_dim: 32,
            emb_hidden: 128,
            embedding: Embedding::Positional,
            max_freq: 16.0,
            min_freq: 1.0,
            time_scale: 1.0,
            modulation: Modulation::Shift,
            double_norm: false,
            dropout: 0.0,
            zero_out: false,
            input_fourier: 0,
            input_fourier_std: 1.0,
        }
    }
}

impl MlpConfig {
    /// Checks the ranges (widths ≥ 1, `emb_dim` even and ≥ 2, `max_freq` > 0, `dropout` in
    /// [0, 1)), naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.hidden >= 1, "model.hidden must be at least 1, got {}", self.hidden);
        anyhow::ensure!(
            self.emb_hidden >= 1,
            "model.emb_hidden must be at least 1, got {}",
            self.emb_hidden
        );
        anyhow::ensure!(self.depth >= 1, "model.depth must be at least 1, got {}", self.depth);
        anyhow::ensure!(
            self.input_fourier_std.is_finite() && self.input_fourier_std > 0.0,
            "model.input_fourier_std must be positive, got {}",
            self.input_fourier_std
        );
        anyhow::ensure!(
            self.emb_dim >= 2 && self.emb_dim % 2 == 0,
            "model.emb_dim must be even and at least 2, got {}",
            self.emb_dim
        );
        anyhow::ensure!(
            self.max_freq.is_finite() && self.max_freq > 0.0,
            "model.max_freq must be positive, got {}",
            self.max_freq
        );
        anyhow::ensure!(
            self.min_freq.is_finite() && self.min_freq > 0.0 && self.time_scale.is_finite() && self.time_scale > 0.0,
            "model.min_freq and model.time_scale must be positive, got {} and {}",
            self.min_freq,
            self.time_scale
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "model.dropout must be in [0, 1), got {}",
            self.dropout
        );
        Ok(())
    }
}

/// The time-conditioned MLP backbone built from an [`MlpConfig`] (see the module
/// documentation for its shape).
#[derive(Clone, Debug)]
pub struct Mlp {
    cfg: MlpConfig,
    dim: usize,
    n_times: usize,
    specs: Vec<ParamSpec>,
    freqs: usize,
    temb: Linear,
    /// The input Fourier frequencies B, `[D, F]` (not trained); None when `input_fourier` = 0.
    fourier: Option<usize>,
    input: Linear,
    hidden: Vec<Linear>,
    modul: Vec<Linear>,
    out: Linear,
}

impl Mlp {
    /// An MLP on `dim`-dimensional samples with `n_times` time inputs; `seed` fixes the
    /// Fourier frequencies (stored as a non-trainable parameter, so checkpoints carry them).
    pub fn new(cfg: &MlpConfig, dim: usize, n_times: usize, seed: u64) -> Self {
        let h = cfg.hidden;
        let half = cfg.emb_dim / 2;
        let mut b = SpecBuilder::default();
        let freq_vals =
            super::embed::frequencies(cfg.embedding, half, cfg.min_freq, cfg.max_freq, cfg.time_scale, seed);
        let freqs = b.add("time_embed.freqs", vec![1, half], Init::Values(freq_vals), false);
        let temb = b.linear("time_embed.linear", cfg.emb_dim * n_times, cfg.emb_hidden, false);
        let nf = cfg.input_fourier;
        let fourier = (nf > 0).then(|| {
            // Their own stream (the run seed mixed with a constant), like the Fourier time
            // frequencies: fixed by the seed, stored with the weights.
            let mut rng = crate::rng::Rng::new(seed ^ 0xF0_0121E5);
            let std = cfg.input_fourier_std as f32;
            let vals = rng.normal_vec(dim * nf).into_iter().map(|v| v * std).collect();
            b.add("input_fourier.b", vec![dim, nf], Init::Values(vals), false)
        });
        let input = b.linear("input", dim + 2 * nf, h, false);
        let mut hidden = Vec::new();
        let mut modul = Vec::new();
        let mod_out = match cfg.modulation {
            Modulation::Shift => h,
            Modulation::ScaleShift => 2 * h,
        };
        for l in 0..cfg.depth {
            if l > 0 {
                hidden.push(b.linear(&format!("hidden.{l}"), h, h, false));
            }
            modul.push(b.linear(&format!("modulation.{l}"), cfg.emb_hidden, mod_out, false));
        }
        let out = b.linear("output", h, dim, cfg.zero_out);
        Self {
            cfg: cfg.clone(),
            dim,
            n_times,
            specs: b.specs,
            freqs,
            temb,
            fourier,
            input,
            hidden,
            modul,
            out,
        }
    }

    fn check_times(&self, got: usize) {
        assert_eq!(got, self.n_times, "MLP expects {} time inputs, got {got}", self.n_times);
    }

    /// The shared forward and tangent pass: value and tangent of every activation travel
    /// together as a [`Dual`], so `forward` is this pass without a tangent (REVIEW.md §7).
    fn pass(
        &self,
        p: &[Tensor<1>],
        x: Dual<2>,
        cond: &[Tensor<2>],
        dcond: Option<&[Tensor<2>]>,
        masks: Option<&Masks>,
    ) -> Dual<2> {
        self.check_times(cond.len());
        if let Some(dc) = dcond {
            assert_eq!(
                dc.len(),
                self.n_times,
                "MLP expects {} time tangents, got {}",
                self.n_times,
                dc.len()
            );
        }
        let half = self.cfg.emb_dim / 2;
        let emb = super::embed::sinusoidal(p[self.freqs].clone().reshape([1, half]), cond, dcond);
        let e = linear(&self.temb, p, emb).silu();
        let mut h = match self.fourier {
            None => x,
            Some(i) => {
                // [x, sin(xB), cos(xB)]; tangent [dx, cos(xB)·dxB, −sin(xB)·dxB].
                let bm = p[i].clone().reshape([self.dim, self.cfg.input_fourier]);
                let a = x.v.clone().matmul(bm.clone());
                let (s, c) = (a.clone().sin(), a.cos());
                let d = x.d.clone().map(|dx| {
                    let da = dx.clone().matmul(bm);
                    Tensor::cat(vec![dx, c.clone() * da.clone(), s.clone().neg() * da], 1)
                });
                Dual::new(Tensor::cat(vec![x.v, s, c], 1), d)
            }
        };
        for l in 0..self.cfg.depth {
            let lin = if l == 0 { &self.input } else { &self.hidden[l - 1] };
            let a = linear(lin, p, h);
            let m = linear(&self.modul[l], p, e.clone());
            h = self.modulate(a, m).silu();
            if let Some(ms) = masks {
                h = h.mask(ms.0[l].clone());
            }
        }
        linear(&self.out, p, h)
    }

    /// a + shift, or (with `modulation = scale-shift`) a·(1 + scale) + shift with
    /// m = [scale | shift], each pixel-normed first under `double_norm` (sCM's adaptive double
    /// normalisation, Lu & Song 2024).
    fn modulate(&self, a: Dual<2>, m: Dual<2>) -> Dual<2> {
        let h = self.cfg.hidden;
        match self.cfg.modulation {
            Modulation::Shift => a.add(m),
            Modulation::ScaleShift => {
                let narrow = |t: &Dual<2>, at: usize| {
                    Dual::new(t.v.clone().narrow(1, at, h), t.d.clone().map(|d| d.narrow(1, at, h)))
                };
                let (mut sc, mut sh) = (narrow(&m, 0), narrow(&m, h));
                let a = if self.cfg.double_norm {
                    sc = pixel_norm_dual(sc);
                    sh = pixel_norm_dual(sh);
                    pixel_norm_dual(a)
                } else {
                    a
                };
                let one_sc = sc.v.clone().add_scalar(1.0);
                // d(a·(1 + sc)) = da·(1 + sc) + a·dsc; a zero tangent stays None.
                let d = match (a.d, sc.d) {
                    (None, None) => None,
                    (da, dsc) => {
                        let t = da.map(|d| d * one_sc.clone());
                        match (t, dsc) {
                            (Some(t), Some(ds)) => Some(t + a.v.clone() * ds),
                            (Some(t), None) => Some(t),
                            (None, Some(ds)) => Some(a.v.clone() * ds),
                            (None, None) => None,
                        }
                    }
                };
                Dual::new(a.v * one_sc, d).add(sh)
            }
        }
    }
}

impl Backbone for Mlp {
    fn specs(&self) -> Vec<ParamSpec> {
        self.specs.clone()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn n_times(&self) -> usize {
        self.n_times
    }
    fn forward_flops(&self) -> Option<f64> {
        let layers = [&self.temb, &self.input, &self.out]
            .into_iter()
            .chain(&self.hidden)
            .chain(&self.modul);
        let fourier = 2.0 * (self.dim * self.cfg.input_fourier) as f64;
        Some(layers.map(Linear::flops).sum::<f64>() + fourier)
    }
    fn dropout(&self) -> f64 {
        self.cfg.dropout
    }

    fn draw_masks(&self, rng: &mut Rng, batch: usize, device: &Device) -> Option<Masks> {
        if self.cfg.dropout <= 0.0 {
            return None;
        }
        Some(Masks(
            (0..self.cfg.depth)
                .map(|_| rng.dropout_mask([batch, self.cfg.hidden], self.cfg.dropout, device))
                .collect(),
        ))
    }

    fn forward(&self, p: &[Tensor<1>], x: Tensor<2>, cond: &[Tensor<2>], masks: Option<&Masks>) -> Tensor<2> {
        self.pass(p, Dual::new(x, None), cond, None, masks).v
    }

    fn jvp(
        &self,
        p: &[Tensor<1>],
        x: Tensor<2>,
        dx: Tensor<2>,
        cond: &[Tensor<2>],
        dcond: &[Tensor<2>],
        masks: Option<&Masks>,
    ) -> (Tensor<2>, Tensor<2>) {
        let y = self.pass(p, Dual::new(x, Some(dx)), cond, Some(dcond), masks);
        let dy = y.d.expect("a tangent pass with a tangent input has a tangent output");
        (y.v, dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::jvp::{fd_jvp, fd_jvp_steps};
    use crate::tensor::{col, col_f32, to_vec, to_vec64};
    use burn::tensor::DType;

    fn rel(a: &[f64], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
        let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
        num / den.max(1e-300)
    }

    /// Exact tangent pass vs an f64 central difference (step 1e-6) for one configuration;
    /// returns the relative error. Everything (weights, inputs, masks) is f64.
    fn jvp_error(cfg: &MlpConfig, n_times: usize, default_step: bool) -> f64 {
        let dev = Device::flex();
        let net = Mlp::new(cfg, 3, n_times, 5);
        let mut rng = Rng::new(17);
        let p: Vec<Tensor<1>> = init_params(&net.specs(), &mut rng, &dev)
            .into_iter()
            .map(|t| t.cast(DType::F64))
            .collect();
        let b = 8;
        let x = rng.normal_tensor([b, 3], &dev).cast(DType::F64);
        let dx = rng.normal_tensor([b, 3], &dev).cast(DType::F64);
        let cond: Vec<Tensor<2>> = (0..n_times)
            .map(|_| col(&(0..b).map(|_| 0.05 + 1.5 * rng.uniform()).collect::<Vec<_>>(), &x))
            .collect();
        let dcond: Vec<Tensor<2>> = (0..n_times)
            .map(|_| col(&(0..b).map(|_| rng.normal()).collect::<Vec<_>>(), &x))
            .collect();
        let masks = net
            .draw_masks(&mut rng, b, &dev)
            .map(|m| Masks(m.0.into_iter().map(|t| t.cast(DType::F64)).collect()));
        let (y, dy) = net.jvp(&p, x.clone(), dx.clone(), &cond, &dcond, masks.as_ref());
        let y_fwd = net.forward(&p, x.clone(), &cond, masks.as_ref());
        assert!(
            rel(&to_vec64(y), &to_vec64(y_fwd)) < 1e-13,
            "jvp primal differs from forward"
        );
        let (_, fd) = if default_step {
            fd_jvp(&net, &p, x, dx, &cond, &dcond, masks.as_ref())
        } else {
            fd_jvp_steps(&net, &p, x, dx, &cond, &dcond, masks.as_ref(), &vec![1e-6; b])
        };
        rel(&to_vec64(dy), &to_vec64(fd))
    }

    fn variants() -> Vec<(String, MlpConfig, usize)> {
        let mut v = Vec::new();
        for embedding in [Embedding::Positional, Embedding::Fourier] {
            for modulation in [Modulation::Shift, Modulation::ScaleShift] {
                for double_norm in [false, true] {
                    if double_norm && modulation == Modulation::Shift {
                        continue; // double_norm only acts with scale-shift
                    }
                    for dropout in [0.0, 0.3] {
                        for n_times in [1, 2] {
                            let cfg = MlpConfig {
                                hidden: 24,
                                depth: 3,
                                emb_dim: 8,
                                emb_hidden: 16,
                                embedding: embedding.clone(),
                                max_freq: if embedding == Embedding::Fourier { 1.0 } else { 16.0 },
                                modulation: modulation.clone(),
                                double_norm,
                                dropout,
                                zero_out: false,
                                ..Default::default()
                            };
                            v.push((
                                format!("{embedding:?}/{modulation:?}/dn={double_norm}/p={dropout}/times={n_times}"),
                                cfg,
                                n_times,
                            ));
                        }
                    }
                }
            }
        }
        // Input Fourier features (their tangent goes through sin/cos of xB).
        for modulation in [Modulation::Shift, Modulation::ScaleShift] {
            let cfg = MlpConfig {
                hidden: 24,
                depth: 3,
                emb_dim: 8,
                emb_hidden: 16,
                modulation: modulation.clone(),
                input_fourier: 6,
                input_fourier_std: 2.0,
                ..Default::default()
            };
            v.push((format!("input-fourier/{modulation:?}"), cfg, 1));
        }
        v
    }

    /// Input Fourier features add a fixed `[D, F]` frequency matrix (not trained) and widen the
    /// first layer to D + 2F; every other parameter keeps its name and shape, and the FLOP
    /// count grows by the xB product and the wider first layer.
    #[test]
    fn input_fourier_features_leave_the_other_parameters_alone() {
        let base = MlpConfig::default();
        let ff = MlpConfig {
            input_fourier: 16,
            ..Default::default()
        };
        let (a, b) = (Mlp::new(&base, 2, 1, 5), Mlp::new(&ff, 2, 1, 5));
        let (sa, sb) = (a.specs(), b.specs());
        let fb = sb
            .iter()
            .find(|s| s.name == "input_fourier.b")
            .expect("the frequency matrix");
        assert_eq!((fb.shape.clone(), fb.trainable), (vec![2, 16], false));
        let input = sb.iter().find(|s| s.name == "input.weight").unwrap();
        assert_eq!(input.shape, vec![2 + 32, 512]);
        let others = |v: &[ParamSpec]| -> Vec<String> {
            v.iter()
                .filter(|s| !s.name.starts_with("input"))
                .map(|s| s.name.clone())
                .collect()
        };
        assert_eq!(others(&sa), others(&sb));
        let extra = b.forward_flops().unwrap() - a.forward_flops().unwrap();
        assert_eq!(extra, 2.0 * 2.0 * 16.0 + 2.0 * 32.0 * 512.0);
        // Stored configs without the feature are unchanged.
        assert!(!toml::to_string(&base).unwrap().contains("input_fourier"));
    }

    #[test]
    fn mlp_jvp_matches_finite_difference_all_variants() {
        for (name, cfg, nt) in variants() {
            let e = jvp_error(&cfg, nt, false);
            assert!(e < 1e-4, "{name}: relative JVP error {e}");
        }
    }

    #[test]
    fn fd_fallback_default_step_matches_exact_jvp() {
        for (name, cfg, nt) in variants() {
            // h = 1e-3·|t| leaves an O(h²ω²) truncation error (ω up to 16): ~1.5e-4 measured.
            let e = jvp_error(&cfg, nt, true);
            assert!(e < 1e-3, "{name}: relative error of the default-step FD fallback {e}");
        }
    }

    /// JVP/forward time ratio of the standard 2-D MLP (512 wide, batch 512). Printed only.
    #[test]
    #[ignore]
    fn jvp_forward_time_ratio_512() {
        let dev = Device::flex();
        let net = Mlp::new(&MlpConfig::default(), 2, 1, 0);
        let mut rng = Rng::new(1);
        let p = init_params(&net.specs(), &mut rng, &dev);
        let b = 512;
        let x = rng.normal_tensor([b, 2], &dev);
        let dx = rng.normal_tensor([b, 2], &dev);
        let c = vec![col_f32(&vec![0.7; b], &dev)];
        let dc = vec![col_f32(&vec![1.0; b], &dev)];
        let reps = 100;
        let time = |f: &dyn Fn()| {
            for _ in 0..10 {
                f();
            }
            let t0 = std::time::Instant::now();
            for _ in 0..reps {
                f();
            }
            t0.elapsed().as_secs_f64() / reps as f64
        };
        let tf = time(&|| {
            let _ = to_vec(net.forward(&p, x.clone(), &c, None));
        });
        let tj = time(&|| {
            let (a, b) = net.jvp(&p, x.clone(), dx.clone(), &c, &dc, None);
            let _ = (to_vec(a), to_vec(b));
        });
        let tfd = time(&|| {
            let (a, b) = fd_jvp(&net, &p, x.clone(), dx.clone(), &c, &dc, None);
            let _ = (to_vec(a), to_vec(b));
        });
        println!(
            "forward {:.3} ms, exact jvp {:.3} ms (ratio {:.2}), fd jvp {:.3} ms (ratio {:.2})",
            tf * 1e3,
            tj * 1e3,
            tj / tf,
            tfd * 1e3,
            tfd / tf
        );
    }
}
