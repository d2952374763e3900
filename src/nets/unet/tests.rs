//! U-Net shape tests and tangent-pass checks against f64 central finite differences.

use super::*;
use crate::tensor::{to_vec, to_vec64};
use burn::tensor::DType;

fn dev() -> Device {
    Device::flex()
}

fn t64<const D: usize>(v: Vec<f64>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), (&dev(), DType::F64))
}

fn randn<const D: usize>(rng: &mut Rng, shape: [usize; D], s: f64) -> Tensor<D> {
    let n = shape.iter().product();
    t64((0..n).map(|_| s * rng.normal()).collect(), shape)
}

/// Random f64 parameters for every spec (so zero-initialised layers still matter).
fn params64(specs: &[ParamSpec], rng: &mut Rng) -> Vec<Tensor<1>> {
    specs
        .iter()
        .map(|s| {
            let n = s.numel();
            let v: Vec<f64> = match &s.init {
                Init::Values(v) => v.iter().map(|&x| x as f64).collect(),
                Init::Ones => (0..n).map(|_| 1.0 + 0.2 * rng.normal()).collect(),
                _ => {
                    let fan = if s.shape.len() > 1 {
                        s.shape[1..].iter().product::<usize>().max(1)
                    } else {
                        4
                    };
                    (0..n).map(|_| rng.normal() / (fan as f64).sqrt()).collect()
                }
            };
            t64(v, [n])
        })
        .collect()
}

fn rel_err<const D: usize>(fd: Tensor<D>, an: Tensor<D>) -> f64 {
    let (a, b) = (to_vec64(fd), to_vec64(an));
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    assert!(den > 1e-8, "degenerate tangent (norm {den})");
    num / den
}

/// Checks the tangent of a Dual-to-Dual map at (x, dx) against a central difference.
fn check4(name: &str, f: impl Fn(Dual<4>) -> Dual<4>, x: Tensor<4>, dx: Tensor<4>) {
    let h = 1e-5;
    let an = f(Dual::new(x.clone(), Some(dx.clone()))).d.unwrap();
    let plus = f(Dual::new(x.clone() + dx.clone().mul_scalar(h), None)).v;
    let minus = f(Dual::new(x - dx.mul_scalar(h), None)).v;
    let fd = (plus - minus).div_scalar(2.0 * h);
    let e = rel_err(fd, an);
    assert!(e < 1e-4, "{name}: relative error {e:e}");
}

#[test]
fn layer_tangents_match_finite_differences() {
    let mut rng = Rng::new(11);
    let mut b = SpecBuilder::default();
    let conv = Conv::add(&mut b, "c", 4, 8, 3, false);
    let gn = GroupNorm::add(&mut b, "g", 8);
    let p = params64(&b.specs, &mut rng);
    let x = randn(&mut rng, [2, 4, 6, 6], 1.0);
    let dx = randn(&mut rng, [2, 4, 6, 6], 1.0);
    check4("conv", |d| conv.apply(&p, d), x.clone(), dx.clone());
    let y = randn(&mut rng, [2, 8, 6, 6], 1.0);
    let dy = randn(&mut rng, [2, 8, 6, 6], 1.0);
    check4("group norm", |d| gn.apply(&p, d), y.clone(), dy.clone());
    check4("silu", |d| d.silu(), y.clone(), dy.clone());
    check4("down", down, y.clone(), dy.clone());
    check4("up", up, y.clone(), dy.clone());
    // Modulation: tangent along both h and the scale/shift m (m as a function of h here via
    // a fixed linear read-out, so one direction moves both).
    let m0 = randn(&mut rng, [2, 16], 0.5);
    let dm = randn(&mut rng, [2, 16], 0.5);
    for dn in [false, true] {
        let f = |d: Dual<4>| {
            // m moves with the same step as h: m(t) = m0 + t·dm.
            let t =
                d.v.clone()
                    .narrow(1, 0, 1)
                    .narrow(2, 0, 1)
                    .narrow(3, 0, 1)
                    .reshape([2, 1]);
            let _ = t;
            let m = Dual::new(m0.clone(), d.d.as_ref().map(|_| dm.clone()));
            modulate(d, m, 8, dn)
        };
        // Finite difference along (dy, dm) jointly.
        let h = 1e-5;
        let an = f(Dual::new(y.clone(), Some(dy.clone()))).d.unwrap();
        let g = |s: f64| {
            let m = Dual::new(m0.clone() + dm.clone().mul_scalar(s), None);
            modulate(Dual::new(y.clone() + dy.clone().mul_scalar(s), None), m, 8, dn).v
        };
        let fd = (g(h) - g(-h)).div_scalar(2.0 * h);
        let e = rel_err(fd, an);
        assert!(e < 1e-4, "modulation (double_norm {dn}): relative error {e:e}");
    }
}

fn net_check(cfg: &UnetConfig, n_times: usize, dim: usize, dropout_masks: bool) {
    let net = Unet::new(cfg, dim, n_times, 3).unwrap();
    let mut rng = Rng::new(5);
    let p = params64(&net.specs(), &mut rng);
    let bsz = 2;
    let x = randn(&mut rng, [bsz, dim], 1.0);
    let dx = randn(&mut rng, [bsz, dim], 1.0);
    let cond: Vec<Tensor<2>> = (0..n_times).map(|_| randn(&mut rng, [bsz, 1], 0.5)).collect();
    let dcond: Vec<Tensor<2>> = (0..n_times).map(|_| randn(&mut rng, [bsz, 1], 0.5)).collect();
    let masks = if dropout_masks {
        net.draw_masks(&mut rng, bsz, &dev())
            .map(|m| Masks(m.0.into_iter().map(|t| t.cast(DType::F64)).collect()))
    } else {
        None
    };
    let (y, dy) = net.jvp(&p, x.clone(), dx.clone(), &cond, &dcond, masks.as_ref());
    let y2 = net.forward(&p, x.clone(), &cond, masks.as_ref());
    assert!(
        rel_err(y2, y.clone()) < 1e-12,
        "jvp's primal output differs from forward"
    );
    let h = 1e-5;
    let at = |s: f64| {
        let c: Vec<Tensor<2>> = cond
            .iter()
            .zip(&dcond)
            .map(|(c, d)| c.clone() + d.clone().mul_scalar(s))
            .collect();
        net.forward(&p, x.clone() + dx.clone().mul_scalar(s), &c, masks.as_ref())
    };
    let fd = (at(h) - at(-h)).div_scalar(2.0 * h);
    let e = rel_err(fd, dy.clone());
    assert!(e < 1e-4, "{cfg:?}: full-net relative error {e:e}");
    // The same pass in f32, where GroupNorm's tangent runs through the fused kernel
    // (kernels::fused::group_norm_jvp; f64 composes burn's ops), agrees with it.
    let f32s = |t: &Tensor<2>| t.clone().cast(DType::F32);
    let p32: Vec<Tensor<1>> = p.iter().map(|t| t.clone().cast(DType::F32)).collect();
    let c32: Vec<Tensor<2>> = cond.iter().map(f32s).collect();
    let d32: Vec<Tensor<2>> = dcond.iter().map(f32s).collect();
    let m32 = masks.map(|m| Masks(m.0.into_iter().map(|t| t.cast(DType::F32)).collect()));
    let (y32, dy32) = net.jvp(&p32, f32s(&x), f32s(&dx), &c32, &d32, m32.as_ref());
    let (ey, ed) = (rel_err(y, y32.cast(DType::F64)), rel_err(dy, dy32.cast(DType::F64)));
    assert!(
        ey < 1e-4 && ed < 1e-4,
        "{cfg:?}: f32 against f64 pass: value {ey:e}, tangent {ed:e}"
    );
}

#[test]
fn full_net_tangent_matches_finite_differences() {
    let cfg = UnetConfig {
        base: 8,
        mults: vec![1, 2],
        res_blocks: 1,
        attention: true,
        double_norm: true,
        dropout: 0.2,
        ..Default::default()
    };
    net_check(&cfg, 2, 64, true);
    let cfg = UnetConfig {
        base: 8,
        mults: vec![1, 1, 2],
        attention: false,
        embedding: Embedding::Fourier,
        ..Default::default()
    };
    net_check(&cfg, 1, 3 * 8 * 8, false);
}

#[test]
fn full_net_tangent_through_attn_resolutions_matches_finite_differences() {
    // Attention after every block at both levels (8 px and 4 px), two blocks per encoder
    // level, the middle attention too, with dropout masks on every residual block.
    let cfg = UnetConfig {
        base: 8,
        mults: vec![1, 2],
        res_blocks: 2,
        attention: true,
        attn_resolutions: vec![8, 4],
        dropout: 0.2,
        ..Default::default()
    };
    net_check(&cfg, 1, 64, true);
    // Only the higher resolution, no middle attention, RGB, two time inputs.
    let cfg = UnetConfig {
        base: 8,
        mults: vec![1, 2],
        attention: false,
        attn_resolutions: vec![8],
        double_norm: true,
        ..Default::default()
    };
    net_check(&cfg, 2, 3 * 8 * 8, false);
}

#[test]
fn attn_resolutions_parameter_names_counts_and_masks() {
    let names = |cfg: &UnetConfig| -> Vec<String> {
        Unet::new(cfg, 784, 1, 0)
            .unwrap()
            .specs()
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    let base = UnetConfig {
        base: 8,
        mults: vec![1, 2],
        res_blocks: 1,
        attention: true,
        ..Default::default()
    };
    let with = UnetConfig {
        attn_resolutions: vec![14],
        ..base.clone()
    };
    let (n0, n1) = (names(&base), names(&with));
    // Names are unique; the new blocks add only `.attn.` names, the rest keep name and order.
    let uniq: std::collections::HashSet<&String> = n1.iter().collect();
    assert_eq!(uniq.len(), n1.len(), "duplicate parameter names: {n1:?}");
    let kept: Vec<String> = n1
        .iter()
        .filter(|n| !n.contains(".attn.") || n.starts_with("mid.attn."))
        .cloned()
        .collect();
    assert_eq!(kept, n0);
    // 14 px is level 1: one encoder block and two decoder blocks get attention.
    let mut added: Vec<&String> = n1.iter().filter(|n| !n0.contains(n)).collect();
    added.sort();
    let mut want = Vec::new();
    for blk in ["dec.1.0", "dec.1.1", "enc.1.0"] {
        for part in ["norm", "proj", "qkv"] {
            for t in ["bias", "weight"] {
                want.push(format!("{blk}.attn.{part}.{t}"));
            }
        }
    }
    assert_eq!(added.iter().map(|s| s.as_str()).collect::<Vec<_>>(), want);
    assert!(n1.iter().any(|n| n == "mid.attn.qkv.weight"));
    // Each attention block over c = 16 channels: norm 2c, qkv 3c² + 3c, proj c² + c.
    let count = |cfg: &UnetConfig| -> usize {
        Unet::new(cfg, 784, 1, 0)
            .unwrap()
            .specs()
            .iter()
            .map(|s| s.numel())
            .sum()
    };
    let c = 16;
    assert_eq!(count(&with) - count(&base), 3 * (4 * c * c + 6 * c));
    // At 28 px every block at level 0 (one encoder, two decoder) gets one, over 8 channels.
    let both = UnetConfig {
        attn_resolutions: vec![28, 14],
        ..base.clone()
    };
    assert_eq!(count(&both) - count(&with), 3 * (4 * 8 * 8 + 6 * 8));

    // Dropout masks: one per residual block whatever the attention (enc 2, mid 2, dec 4),
    // and the net runs with them.
    let net = Unet::new(&UnetConfig { dropout: 0.1, ..both }, 784, 1, 0).unwrap();
    let masks = net.draw_masks(&mut Rng::new(2), 3, &dev()).unwrap();
    assert_eq!(masks.0.len(), 2 + 2 + 4);
    let mut p = init_params(&net.specs(), &mut Rng::new(0), &dev());
    let mut rng = Rng::new(4);
    let x = Tensor::<2>::from_data(
        TensorData::new((0..3 * 784).map(|_| rng.normal() as f32).collect::<Vec<_>>(), [3, 784]),
        &dev(),
    );
    let c = Tensor::<2>::from_data(TensorData::new(vec![0.1f32, 0.5, 1.0], [3, 1]), &dev());
    // Zero-initialised output conv hides everything: give it weights first.
    let specs = net.specs();
    let idx = |name: &str| specs.iter().position(|s| s.name == name).unwrap();
    let ow = idx("conv_out.weight");
    p[ow] = p[ow].clone().add_scalar(0.05);
    let y0 = to_vec(net.forward(&p, x.clone(), &[c.clone()], Some(&masks)));
    assert!(y0.iter().all(|v| v.is_finite()));
    // The new attention blocks are on the path: changing their (zero-initialised) output
    // projections changes the output, in the encoder and in the decoder.
    for name in [
        "enc.0.0.attn.proj.weight",
        "dec.0.1.attn.proj.weight",
        "enc.1.0.attn.proj.weight",
    ] {
        let mut q = p.clone();
        let i = idx(name);
        q[i] = q[i].clone().add_scalar(0.1);
        let y1 = to_vec(net.forward(&q, x.clone(), &[c.clone()], Some(&masks)));
        let diff: f32 = y0.iter().zip(&y1).map(|(a, b)| (a - b).abs()).sum();
        assert!(diff > 1e-3, "{name} does not reach the output (diff {diff})");
    }
}

#[test]
fn attn_resolutions_must_be_visited_sides() {
    let cfg = |r: Vec<usize>| UnetConfig {
        base: 8,
        mults: vec![1, 2],
        attention: false,
        attn_resolutions: r,
        ..Default::default()
    };
    assert!(Unet::new(&cfg(vec![28, 14]), 784, 1, 0).is_ok());
    for bad in [vec![7], vec![14, 16], vec![0]] {
        let v = *bad.iter().find(|&&r| r != 14).unwrap();
        let e = Unet::new(&cfg(bad.clone()), 784, 1, 0).unwrap_err().to_string();
        assert!(
            e.contains("model.attn_resolutions") && e.contains(&format!("lists {v},")) && e.contains("[28, 14]"),
            "{bad:?}: {e}"
        );
    }
    // The visited sides depend on the image: 14 is not one of a 32-px net's.
    let e = Unet::new(&cfg(vec![14]), 3 * 32 * 32, 1, 0).unwrap_err().to_string();
    assert!(e.contains("[32, 16]"), "{e}");
    // Old configs without the field still parse (it defaults to empty).
    let c: UnetConfig = toml::from_str("base = 8\nattention = false").unwrap();
    assert!(c.attn_resolutions.is_empty());
    let c: UnetConfig = toml::from_str("attn_resolutions = [14]").unwrap();
    assert_eq!(c.attn_resolutions, vec![14]);
}

#[test]
fn forward_shapes_and_zero_output_init() {
    let net = Unet::new(&UnetConfig::default(), 784, 1, 0).unwrap();
    let p = init_params(&net.specs(), &mut Rng::new(0), &dev());
    let x = Tensor::<2>::zeros([3, 784], &dev());
    let c = Tensor::<2>::zeros([3, 1], &dev());
    let y = net.forward(&p, x, &[c], None);
    assert_eq!(y.dims(), [3, 784]);
    assert!(to_vec(y).iter().all(|&v| v == 0.0));
    assert!(image_shape(785).is_err());
    assert_eq!(image_shape(3072).unwrap(), (3, 32, 32));
    let e = Unet::new(
        &UnetConfig {
            mults: vec![1, 1, 1, 1],
            ..Default::default()
        },
        784,
        1,
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("divisible"), "{e}");
}

/// One-hot f64 labels `[B, K]` (None = an all-zero "no class" row).
fn onehot64(labels: &[Option<usize>], k: usize) -> Tensor<2> {
    let mut v = vec![0.0; labels.len() * k];
    for (i, l) in labels.iter().enumerate() {
        if let Some(l) = l {
            v[i * k + l] = 1.0;
        }
    }
    t64(v, [labels.len(), k])
}

fn cond_cfg(classes: usize) -> UnetConfig {
    UnetConfig {
        base: 8,
        mults: vec![1, 2],
        res_blocks: 1,
        attention: true,
        classes,
        ..Default::default()
    }
}

#[test]
fn class_labels_add_one_xavier_initialised_layer_and_change_the_output() {
    let (k, dim) = (10, 64);
    let names = |net: &Unet| -> Vec<String> { net.specs().into_iter().map(|s| s.name).collect() };
    let plain = Unet::new(&cond_cfg(0), dim, 1, 0).unwrap();
    let net = Unet::new(&cond_cfg(k), dim, 1, 0).unwrap();
    assert_eq!(plain.n_classes(), 0);
    assert_eq!(net.n_classes(), k);
    // The label embedding is the only addition; every other parameter keeps name and order.
    let (n0, n1) = (names(&plain), names(&net));
    let kept: Vec<String> = n1
        .iter()
        .filter(|n| !n.starts_with("time_embed.label."))
        .cloned()
        .collect();
    assert_eq!(kept, n0);
    let specs = net.specs();
    let idx = |name: &str| specs.iter().position(|s| s.name == name).unwrap();
    let lw = idx("time_embed.label.weight");
    assert_eq!(specs[lw].shape, vec![k, 4 * 8]);
    assert_eq!(specs[idx("time_embed.label.bias")].shape, vec![4 * 8]);
    // EDM's map_label: Xavier-scale weights (std √(2/(K + E))) from their own stream, zero bias.
    let Init::Values(w0) = &specs[lw].init else {
        panic!("label weights are not fixed values")
    };
    let rms = (w0.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w0.len() as f64).sqrt();
    let want = (2.0 / (k + 32) as f64).sqrt();
    assert!(
        (rms / want - 1.0).abs() < 0.2,
        "label weight rms {rms}, want about {want}"
    );
    assert!(matches!(specs[idx("time_embed.label.bias")].init, Init::Zeros));
    // Their own stream: the shared parameters equal the unconditional net's.
    let p0 = init_params(&plain.specs(), &mut Rng::new(1), &dev());
    let mut p = init_params(&specs, &mut Rng::new(1), &dev());
    for (i, n) in n1.iter().enumerate() {
        if let Some(j) = n0.iter().position(|m| m == n) {
            assert_eq!(to_vec(p[i].clone()), to_vec(p0[j].clone()), "{n}");
        }
    }

    let bsz = 4;
    let mut rng = Rng::new(6);
    let x = Tensor::<2>::from_data(
        TensorData::new(
            (0..bsz * dim).map(|_| rng.normal() as f32).collect::<Vec<_>>(),
            [bsz, dim],
        ),
        &dev(),
    );
    let t = Tensor::<2>::from_data(TensorData::new(vec![0.1f32, 0.5, 1.0, -0.3], [bsz, 1]), &dev());
    let labels = |l: &[Option<usize>]| onehot64(l, k).cast(DType::F32);
    let run = |p: &[Tensor<1>], l: &[Option<usize>]| to_vec(net.forward(p, x.clone(), &[t.clone(), labels(l)], None));
    // Zero-initialised output conv hides everything: give it weights first.
    let ow = idx("conv_out.weight");
    p[ow] = p[ow].clone().add_scalar(0.05);
    let (a, b, none) = ([Some(3); 4], [Some(5); 4], [None; 4]);
    let y3 = run(&p, &a);
    assert_eq!(y3.len(), bsz * dim);
    assert!(y3.iter().all(|v| v.is_finite()));
    // From initialisation, the label reaches the output...
    let (y3, y5, y0) = (run(&p, &a), run(&p, &b), run(&p, &none));
    let diff = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(a, b)| (a - b).abs()).sum::<f32>();
    assert!(diff(&y3, &y5) > 1e-2, "the class label does not reach the output");
    assert!(diff(&y3, &y0) > 1e-2, "a class and no class give the same output");
    // ...per sample: a mixed batch gives each sample its own class's output.
    let mixed = run(&p, &[Some(3), Some(5), None, Some(3)]);
    for (i, want) in [&y3, &y5, &y0, &y3].iter().enumerate() {
        let e = diff(&mixed[i * dim..(i + 1) * dim], &want[i * dim..(i + 1) * dim]);
        assert!(
            e < 1e-4,
            "sample {i} of a mixed batch differs from its class's output by {e}"
        );
    }
    // Through the model: no labels is the all-zero label.
    let model = crate::model::Model::new(
        std::sync::Arc::new(net.clone()),
        crate::precond::Precond::Consistency {
            sigma_d: 0.5,
            eps: 0.002,
        },
    );
    let s = [0.3, 1.0, 5.0, 40.0];
    let f_none = to_vec(model.f(&p, x.clone(), &s, None));
    let f_zero = to_vec(model.with_labels(Some(labels(&none))).f(&p, x.clone(), &s, None));
    let f_three = to_vec(model.with_labels(Some(labels(&a))).f(&p, x.clone(), &s, None));
    assert_eq!(f_none, f_zero);
    assert!(diff(&f_none, &f_three) > 1e-2);
    assert_eq!(model.cond(&s, &[], &x).len(), 2);
}

#[test]
#[should_panic(expected = "class-conditional U-Net (10 classes) expects 1 time inputs and the labels")]
fn class_conditional_net_refuses_missing_labels() {
    let net = Unet::new(&cond_cfg(10), 64, 1, 0).unwrap();
    let p = init_params(&net.specs(), &mut Rng::new(0), &dev());
    net.forward(
        &p,
        Tensor::zeros([2, 64], &dev()),
        &[Tensor::zeros([2, 1], &dev())],
        None,
    );
}

#[test]
#[should_panic(expected = "class labels have 3 rows but the batch x has 2 rows")]
fn model_labels_must_match_the_batch() {
    let net = Unet::new(&cond_cfg(10), 64, 1, 0).unwrap();
    let model = crate::model::Model::new(std::sync::Arc::new(net), crate::precond::Precond::Raw);
    let labels = Tensor::<2>::zeros([3, 10], &dev());
    model
        .with_labels(Some(labels))
        .cond(&[0.1, 0.2], &[], &Tensor::zeros([2, 64], &dev()));
}

#[test]
fn class_conditional_tangent_matches_finite_differences() {
    let k = 10;
    for (cfg, n_times, dim) in [
        (
            UnetConfig {
                double_norm: true,
                dropout: 0.2,
                ..cond_cfg(k)
            },
            2,
            64,
        ),
        (
            UnetConfig {
                attention: false,
                embedding: Embedding::Fourier,
                ..cond_cfg(k)
            },
            1,
            3 * 8 * 8,
        ),
    ] {
        let net = Unet::new(&cfg, dim, n_times, 3).unwrap();
        let mut rng = Rng::new(5);
        // Random parameters everywhere, the label embedding included.
        let p = params64(&net.specs(), &mut rng);
        let bsz = 3;
        let x = randn(&mut rng, [bsz, dim], 1.0);
        let dx = randn(&mut rng, [bsz, dim], 1.0);
        let labels = onehot64(&[Some(2), None, Some(7)], k);
        let times: Vec<Tensor<2>> = (0..n_times).map(|_| randn(&mut rng, [bsz, 1], 0.5)).collect();
        let dcond: Vec<Tensor<2>> = (0..n_times).map(|_| randn(&mut rng, [bsz, 1], 0.5)).collect();
        let mut cond = times.clone();
        cond.push(labels.clone());
        let masks = net
            .draw_masks(&mut rng, bsz, &dev())
            .map(|m| Masks(m.0.into_iter().map(|t| t.cast(DType::F64)).collect()));
        let (y, dy) = net.jvp(&p, x.clone(), dx.clone(), &cond, &dcond, masks.as_ref());
        assert!(rel_err(net.forward(&p, x.clone(), &cond, masks.as_ref()), y.clone()) < 1e-12);
        // Central differences with the labels held fixed.
        let h = 1e-5;
        let at = |s: f64| {
            let mut c: Vec<Tensor<2>> = times
                .iter()
                .zip(&dcond)
                .map(|(c, d)| c.clone() + d.clone().mul_scalar(s))
                .collect();
            c.push(labels.clone());
            net.forward(&p, x.clone() + dx.clone().mul_scalar(s), &c, masks.as_ref())
        };
        let fd = (at(h) - at(-h)).div_scalar(2.0 * h);
        let e = rel_err(fd, dy.clone());
        assert!(e < 1e-4, "{cfg:?}: class-conditional tangent relative error {e:e}");
        // The labels matter here (so the check above ran with them on the path)...
        let mut other = times.clone();
        other.push(onehot64(&[Some(4), Some(1), None], k));
        assert!(rel_err(net.forward(&p, x.clone(), &other, masks.as_ref()), y.clone()) > 1e-6);
        // ...a tangent given for the labels is ignored (they are constant)...
        let mut dcond_l = dcond.clone();
        dcond_l.push(randn(&mut rng, [bsz, k], 1.0));
        let (_, dy2) = net.jvp(&p, x.clone(), dx.clone(), &cond, &dcond_l, masks.as_ref());
        assert_eq!(to_vec64(dy2), to_vec64(dy.clone()));
        // ...and the finite-difference fallback holds them fixed too.
        let (_, dfd) = crate::nets::jvp::fd_jvp_steps(
            &net,
            &p,
            x.clone(),
            dx.clone(),
            &cond,
            &dcond,
            masks.as_ref(),
            &[1e-5; 3],
        );
        let e = rel_err(dfd, dy.clone());
        assert!(e < 1e-4, "fd_jvp on a class-conditional net: relative error {e:e}");
        let (_, dfd) = crate::nets::jvp::fd_jvp(&net, &p, x.clone(), dx.clone(), &cond, &dcond, masks.as_ref());
        let e = rel_err(dfd, dy);
        assert!(
            e < 1e-2,
            "fd_jvp (automatic steps) on a class-conditional net: relative error {e:e}"
        );
    }
}

#[test]
fn class_fields_parse_and_validate() {
    let c: UnetConfig = toml::from_str("base = 8").unwrap();
    assert_eq!((c.classes, c.class_dropout), (0, 0.1));
    let c: UnetConfig = toml::from_str("classes = 10\nclass_dropout = 0.2").unwrap();
    assert_eq!((c.classes, c.class_dropout), (10, 0.2));
    // Stored configs: unconditional ones as before the fields existed; set fields round-trip.
    let text = toml::to_string(&UnetConfig::default()).unwrap();
    assert!(!text.contains("class"), "{text}");
    for c in [c, cond_cfg(10)] {
        assert_eq!(toml::from_str::<UnetConfig>(&toml::to_string(&c).unwrap()).unwrap(), c);
    }
    for bad in [-0.1, 1.0, f64::NAN] {
        let e = UnetConfig {
            class_dropout: bad,
            ..cond_cfg(10)
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("model.class_dropout"), "{bad}: {e}");
    }
}

/// The analytic FLOP count equals PyTorch's `torch.utils.flop_counter.FlopCounterMode` on the
/// PyTorch twins of the two bench U-Nets (`python3 bench/pytorch/bench_unet.py [--recipe]
/// --flops`, torch 2.15: 76 383 232 and 73 906 560 FLOPs per sample of a no-grad forward), so
/// `cm bench`'s GFLOP/s and peak shares count what PyTorch's would.
#[test]
fn forward_flops_equal_pytorch_flop_counter() {
    let bench = UnetConfig {
        base: 16,
        mults: vec![1, 2],
        attention: false,
        ..Default::default()
    };
    let recipe = UnetConfig {
        base: 16,
        mults: vec![1, 2, 2],
        attention: true,
        classes: 10,
        ..Default::default()
    };
    for (cfg, torch) in [(bench, 76_383_232.0), (recipe, 73_906_560.0)] {
        let net = Unet::new(&cfg, 784, 1, 0).unwrap();
        assert_eq!(net.flops(), torch, "{cfg:?}");
        assert_eq!(net.forward_flops(), Some(torch));
    }
}
