//! `consistency_models._native`: the extension module behind the Python package.
//!
//! Thin bindings over the `cm` library, the code the `cm` commands run: loading a run
//! (`run::load_run`), sampling (`generate::sample_request`, what `cm sample` calls), training
//! (`train::run_with` with the graceful SIGINT/SIGTERM stop of `cm train`), evaluation
//! (`eval::run_report` / `samples_report`, what `cm eval` calls), the metrics, the data
//! loaders and the exact Gaussian-mixture oracles. Nothing is implemented twice: this file only
//! converts arrays and errors. The Python package (`consistency_models/`) checks arguments,
//! carries the docstrings and shapes the arrays; these functions expect what it passes
//! (C-contiguous float64 N×D arrays for inputs).
//!
//! Every call that computes releases the GIL (`Python::detach`), so other Python threads run
//! meanwhile; outputs are moved into NumPy arrays without a copy.

use burn::prelude::*;
use cm::config::Config;
use cm::data::gmm::Gmm;
use cm::data::{Dataset, ImageOptions};
use cm::generate::{Classes, Request};
use cm::rng::Rng;
use cm::run::Setup;
use cm::samplers::ode::Solver;
use cm::samplers::SamplerOptions;
use cm::train::{stop, RunOptions, Trainer};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use std::sync::Mutex;

create_exception!(
    consistency_models,
    CmError,
    PyRuntimeError,
    "An error of the cm library (run folders, checkpoints, data files, training), with the message the cm command prints."
);
create_exception!(
    consistency_models,
    ConfigError,
    PyValueError,
    "An invalid config: the message is the one `cm train` prints, naming the field."
);

fn cm_err(e: anyhow::Error) -> PyErr {
    CmError::new_err(format!("{e:#}"))
}

fn cfg_err(e: anyhow::Error) -> PyErr {
    ConfigError::new_err(format!("{e:#}"))
}

fn device() -> Device {
    Device::flex()
}

/// The rows of an N×D float64 array without a copy; a clear ValueError when it is not
/// C-contiguous or holds NaN / infinity.
fn rows<'a>(x: &'a PyReadonlyArray2<'_, f64>, name: &str) -> PyResult<(&'a [f64], usize, usize)> {
    let [n, d] = [x.shape()[0], x.shape()[1]];
    let s = x
        .as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous (np.ascontiguousarray)")))?;
    if let Some(i) = s.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{name} holds a non-finite value ({}) at row {}, column {}",
            s[i],
            i / d.max(1),
            i % d.max(1)
        )));
    }
    Ok((s, n, d))
}

fn vec1<'a>(x: &'a PyReadonlyArray1<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    let s = x
        .as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))?;
    if let Some(i) = s.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!("{name}[{i}] is not finite ({})", s[i])));
    }
    Ok(s)
}

/// An N×D array owning `v` (moved into NumPy, not copied).
fn array2<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, n: usize, d: usize) -> PyResult<Bound<'py, PyArray2<T>>> {
    v.into_pyarray(py).reshape([n, d])
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A trained network with its run: what `load` and `train` return.
#[pyclass(module = "consistency_models._native", name = "Model", frozen)]
struct Model {
    setup: Setup,
    /// Backbone weights (online and evaluation EMA).
    online: Vec<Tensor<1>>,
    ema: Vec<Tensor<1>>,
    step: u64,
    source: String,
}

impl Model {
    fn new(setup: Setup, online: &[Tensor<1>], ema: &[Tensor<1>], step: u64, source: String) -> Self {
        let n = setup.n_net;
        Self {
            online: online[..n].to_vec(),
            ema: ema[..n].to_vec(),
            setup,
            step,
            source,
        }
    }

    fn params(&self, ema: bool) -> &[Tensor<1>] {
        if ema {
            &self.ema
        } else {
            &self.online
        }
    }
}

#[pymethods]
impl Model {
    /// JSON: step, method, data, dim, image_shape, classes, sigma_d, source.
    fn info(&self) -> String {
        let s = &self.setup;
        serde_json::json!({
            "step": self.step,
            "steps": s.cfg.train.steps,
            "method": s.objective.name(),
            "data": s.data.name(),
            "dim": s.data.dim(),
            "image_shape": s.data.image_shape().map(|(c, h, w)| vec![c, h, w]),
            "classes": s.model.net.n_classes(),
            "sigma_d": s.model.precond.sigma_d(),
            "source": self.source,
        })
        .to_string()
    }

    /// The run's resolved config as TOML (what its checkpoints hold).
    fn config_toml(&self) -> String {
        self.setup.cfg.to_toml()
    }

    /// `cm sample`: n samples in data coordinates, float32 N×D.
    #[pyo3(signature = (n, steps, times, seed, classes, batch, ema, gamma, ode, guidance))]
    #[allow(clippy::too_many_arguments)]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        steps: usize,
        times: Option<Vec<f64>>,
        seed: u64,
        classes: &str,
        batch: usize,
        ema: bool,
        gamma: Option<f64>,
        ode: Option<&str>,
        guidance: f64,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let k = self.setup.model.net.n_classes();
        let classes = match classes {
            "balanced" => Classes::Balanced,
            c => Classes::parse(c, k).map_err(|e| PyValueError::new_err(format!("{e:#}")))?,
        };
        let ode = match ode {
            None => None,
            Some("heun") => Some(Solver::Heun),
            Some("euler") => Some(Solver::Euler),
            Some(o) => {
                return Err(PyValueError::new_err(format!(
                    "ode must be 'heun' or 'euler', got '{o}'"
                )))
            }
        };
        let req = Request {
            steps,
            times,
            seed,
            classes,
            batch,
            sampler: SamplerOptions { gamma, ode },
            guidance,
        };
        let p = self.params(ema);
        let xs = py
            .detach(|| cm::generate::sample_request(&self.setup, p, n, &req).map(|(xs, _)| to_f32(&xs)))
            .map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
        array2(py, xs, n, self.setup.data.dim())
    }

    /// D(x, σ) in data coordinates (float32 N×D); σ per row, in the model's EDM σ.
    fn denoise<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        sigma: PyReadonlyArray1<'py, f64>,
        ema: bool,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (xs, n, d) = rows(&x, "x")?;
        let sig = vec1(&sigma, "sigma")?;
        let s = &self.setup;
        if d != s.data.dim() {
            return Err(PyValueError::new_err(format!(
                "x has {d} values per sample but the model's data ({}) has {}",
                s.data.name(),
                s.data.dim()
            )));
        }
        if sig.len() != n {
            return Err(PyValueError::new_err(format!(
                "sigma has {} values for {n} samples",
                sig.len()
            )));
        }
        if let Some(i) = sig.iter().position(|&v| v <= 0.0) {
            return Err(PyValueError::new_err(format!(
                "sigma[{i}] must be positive, got {}",
                sig[i]
            )));
        }
        let p = self.params(ema).to_vec();
        let out = py.detach(|| {
            let den = s.cfg.method.teacher_denoiser(s.model.clone(), p);
            let z = s.standardizer.forward(xs);
            let mut out = Vec::with_capacity(z.len());
            // Chunks keep the network's activations small for large inputs.
            const CHUNK: usize = 4096;
            for (zc, sc) in z.chunks(CHUNK * d).zip(sig.chunks(CHUNK)) {
                let m = sc.len();
                let t = cm::tensor::tensor2(zc.iter().map(|&v| v as f32).collect(), m, d, &s.device);
                out.extend(cm::tensor::to_vec64(den.denoise(t, sc)));
            }
            to_f32(&s.standardizer.inverse(&out))
        });
        array2(py, out, n, d)
    }

    /// `cm eval` of the run: JSON report (the image protocol for image runs).
    #[pyo3(signature = (n, steps, ema, guidance, memorisation, fid_weights=None))]
    fn metrics(
        &self,
        py: Python<'_>,
        n: usize,
        steps: usize,
        ema: bool,
        guidance: f64,
        memorisation: bool,
        fid_weights: Option<std::path::PathBuf>,
    ) -> PyResult<String> {
        let p = self.params(ema);
        let s = &self.setup;
        if s.data.image_shape().is_some() {
            let r = py
                .detach(|| {
                    cm::eval::protocol::measure_run(
                        s,
                        p,
                        n,
                        steps,
                        guidance,
                        memorisation,
                        fid_weights.as_deref(),
                        false,
                    )
                })
                .map_err(cm_err)?;
            return Ok(serde_json::to_string(&r).expect("a report serialises"));
        }
        if guidance != 1.0 {
            return Err(PyValueError::new_err(
                "guidance applies to class-conditional image runs",
            ));
        }
        if fid_weights.is_some() {
            return Err(PyValueError::new_err(
                "fid_weights applies to image runs (FID is an image metric)",
            ));
        }
        let r = py.detach(|| cm::eval::run_report(s, p, n, steps)).map_err(cm_err)?;
        Ok(serde_json::to_string(&r).expect("a report serialises"))
    }

    /// The backbone's weights: (name, shape, flat float32 values) in the checkpoint's order.
    fn weights<'py>(&self, py: Python<'py>, ema: bool) -> Vec<(String, Vec<usize>, Bound<'py, PyArray1<f32>>)> {
        self.setup.specs[..self.setup.n_net]
            .iter()
            .zip(self.params(ema))
            .map(|(s, t)| {
                (
                    s.name.clone(),
                    s.shape.clone(),
                    cm::tensor::to_vec(t.clone()).into_pyarray(py),
                )
            })
            .collect()
    }
}

/// `load(path)`: a run folder (its newest checkpoint) or a checkpoint file.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    py.detach(|| {
        let (_, setup, state) = cm::run::load_run(&path, &device())?;
        Ok(Model::new(
            setup,
            &state.online,
            &state.ema,
            state.step,
            path.display().to_string(),
        ))
    })
    .map_err(cm_err)
}

/// Parses and validates TOML text exactly as `cm train` does; returns the resolved TOML.
#[pyfunction]
fn config_parse(text: &str) -> PyResult<String> {
    Config::from_toml(text).map(|c| c.to_toml()).map_err(cfg_err)
}

/// Reads a config file as `cm train CONFIG` does; returns the resolved TOML.
#[pyfunction]
fn config_load(path: PathBuf) -> PyResult<String> {
    Config::load(&path).map(|c| c.to_toml()).map_err(cfg_err)
}

/// The full default config of a method (`cm inspect config --method M [--preset P]`).
#[pyfunction]
#[pyo3(signature = (method, preset=None))]
fn config_default(method: &str, preset: Option<&str>) -> PyResult<String> {
    let m = match preset {
        None => cm::objectives::MethodConfig::by_name(method),
        Some(p) => cm::objectives::MethodConfig::from_preset(method, p),
    }
    .map_err(cfg_err)?;
    Ok(Config {
        method: m,
        ..Config::default()
    }
    .to_toml())
}

/// TOML text → JSON text (for `dict`s on the Python side).
#[pyfunction]
fn toml_to_json(text: &str) -> PyResult<String> {
    let v: toml::Value =
        toml::from_str(text).map_err(|e| ConfigError::new_err(format!("invalid config: {}", e.to_string().trim())))?;
    Ok(serde_json::to_string(&v).expect("TOML values are JSON values"))
}

/// JSON text (a dict from Python) → TOML text; a None value is an error naming its key.
#[pyfunction]
fn json_to_toml(text: &str) -> PyResult<String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    fn check(v: &serde_json::Value, path: &str) -> PyResult<()> {
        match v {
            serde_json::Value::Null => Err(ConfigError::new_err(format!(
                "invalid config: {path} is None (leave a field out to get its default)"
            ))),
            serde_json::Value::Object(m) => m.iter().try_for_each(|(k, v)| {
                check(
                    v,
                    &if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    },
                )
            }),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| check(v, &format!("{path}[{i}]"))),
            _ => Ok(()),
        }
    }
    check(&v, "")?;
    if !v.is_object() {
        return Err(ConfigError::new_err(
            "invalid config: a config dict must be a mapping of tables",
        ));
    }
    let t = toml::Value::try_from(v).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))?;
    toml::to_string(&t).map_err(|e| ConfigError::new_err(format!("invalid config: {e}")))
}

/// The names of the built-in data sets and methods.
#[pyfunction]
fn builtins() -> (Vec<&'static str>, Vec<&'static str>) {
    (cm::data::BUILTIN.to_vec(), cm::objectives::METHODS.to_vec())
}

/// `cm train`: trains into `out`; returns the model and a JSON summary.
#[pyfunction]
#[pyo3(signature = (config_toml, out, steps, seed, resume, restart, force, graceful, callback, every, max_seconds, data_npy))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    config_toml: &str,
    out: PathBuf,
    steps: Option<u64>,
    seed: Option<u64>,
    resume: bool,
    restart: bool,
    force: bool,
    graceful: bool,
    callback: Option<Py<PyAny>>,
    every: u64,
    max_seconds: Option<f64>,
    data_npy: Option<Bound<'_, PyBytes>>,
) -> PyResult<(Model, String)> {
    let mut cfg = Config::from_toml(config_toml).map_err(cfg_err)?;
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    if let Some(s) = seed {
        cfg.train.seed = s;
    }
    cfg.validate().map_err(cfg_err)?;
    if let Some(b) = data_npy {
        cfg.data.name = install_data(&out, b.as_bytes(), force)?;
    }
    let opts = RunOptions {
        resume,
        restart,
        force,
        graceful,
        max_seconds,
        ..RunOptions::new(out.clone())
    };
    let every = every.max(1);
    let failed: Mutex<Option<PyErr>> = Mutex::new(None);
    let t0 = std::time::Instant::now();
    let result = py.detach(|| {
        let mut acc = (0.0f64, 0u64);
        let mut first: Option<(u64, std::time::Instant)> = None;
        let r = cm::train::run_with(&cfg, &opts, &device(), |t: &mut Trainer| {
            let r = t.step();
            let Some(cb) = &callback else { return r };
            let (s0, start) = *first.get_or_insert((r.step, std::time::Instant::now()));
            if !r.skipped {
                acc.0 += r.loss;
                acc.1 += 1;
            }
            let s = t.state.step;
            let total = t.setup.cfg.train.steps;
            if s % every == 0 || s == total {
                let mean = if acc.1 > 0 { acc.0 / acc.1 as f64 } else { f64::NAN };
                acc = (0.0, 0);
                let rate = (s - s0) as f64 / start.elapsed().as_secs_f64().max(1e-9);
                let skipped = t.bad_total;
                let res = Python::attach(|py| cb.call1(py, (s, total, mean, rate, skipped)).map(|_| ()));
                if let Err(e) = res {
                    // Stop like a signal would: finish this step, checkpoint, return.
                    *failed.lock().unwrap() = Some(e);
                    stop::request(libc::SIGINT);
                }
            }
            r
        });
        stop::clear();
        r.and_then(|(trainer, history)| {
            cm::train::write_loss_plot(&opts.out, &history)?;
            Ok((trainer, history))
        })
    });
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(e);
    }
    let (trainer, history) = match result {
        Ok(v) => v,
        Err(e) => {
            return Err(match e.downcast_ref::<stop::Interrupted>() {
                Some(i) => PyKeyboardInterrupt::new_err(format!(
                    "stopped by {} at step {}: checkpoint {} written and log flushed; train again with the same arguments to continue",
                    stop::signal_name(i.signal),
                    i.step,
                    i.checkpoint.display()
                )),
                None => cm_err(e),
            })
        }
    };
    let summary = serde_json::json!({
        "steps": trainer.state.step,
        "skipped": trainer.bad_total,
        "seconds": t0.elapsed().as_secs_f64(),
        "final_loss": history.last().map(|h| h.1),
        "history": history,
        "out": out,
    })
    .to_string();
    let snap = trainer.state;
    let model = Model::new(
        trainer.setup,
        &snap.online,
        &snap.ema,
        snap.step,
        out.display().to_string(),
    );
    Ok((model, summary))
}

/// Writes a user's points (`.npy` bytes) into the run folder as `data.npy` (checked by the
/// CLI's own loader, written atomically, recorded in the folder's ledger) and returns its
/// absolute path for `data.name`. An identical file already there is kept, so training
/// the same array into the same folder again continues the run; a different one is an error.
fn install_data(out: &std::path::Path, bytes: &[u8], force: bool) -> PyResult<String> {
    cm::data::files::parse_npy(bytes).map_err(|e| PyValueError::new_err(format!("data: {e:#}")))?;
    // Claims (marks, locks) the folder by the same rules as training; released at the end.
    let folder = cm::io::runfolder::RunFolder::open(out, "train", force).map_err(cm_err)?;
    let path = folder.dir.join("data.npy");
    match std::fs::read(&path) {
        Ok(b) if b == bytes => {}
        // Never replaced: the run in this folder (and any restart-N/ beside it) reads it.
        Ok(_) => {
            return Err(CmError::new_err(format!(
            "{} holds other data, which the run in this folder was trained on: train on this array in another folder",
            path.display()
        )))
        }
        Err(_) => (|| -> anyhow::Result<()> {
            cm::io::runfolder::claim_outputs(&[&path], false)?;
            cm::io::write_atomic(&path, bytes)?;
            cm::io::runfolder::record_outputs(&[&path])
        })()
        .map_err(cm_err)?,
    }
    let abs = std::path::absolute(&path).map_err(|e| CmError::new_err(e.to_string()))?;
    Ok(abs.display().to_string())
}

fn dataset(name: &str, image_size: usize, grey: bool, test_split: bool) -> anyhow::Result<Dataset> {
    Dataset::from_spec(
        name,
        &ImageOptions {
            hflip: false,
            size: image_size,
            grey,
            test_split,
        },
    )
}

type Labels<'py> = Option<Bound<'py, PyArray1<i64>>>;

/// A data set: (points N×D float64, labels or None, JSON info). Built-in distributions draw
/// `n` points with `seed`; finite sets (files, images) return every point when `n` is None.
#[pyfunction]
#[pyo3(signature = (name, n, seed, image_size, grey, test_split))]
fn data_load<'py>(
    py: Python<'py>,
    name: &str,
    n: Option<usize>,
    seed: u64,
    image_size: usize,
    grey: bool,
    test_split: bool,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Labels<'py>, String)> {
    let name = name.to_string();
    let (xs, labels, info) = py
        .detach(move || -> anyhow::Result<_> {
            let ds = dataset(&name, image_size, grey, test_split)?;
            let (xs, labels) = match (n, ds.points()) {
                (None, Some(all)) => (all, ds.labels().map(|l| l.iter().map(|&v| v as i64).collect())),
                (None, None) => {
                    anyhow::bail!("data set {name} is a distribution: give n, the number of points to draw")
                }
                (Some(n), _) => {
                    let (xs, l) = ds.sample_labeled(&mut Rng::new(seed), n);
                    (xs, l.map(|l| l.into_iter().map(|v| v as i64).collect::<Vec<_>>()))
                }
            };
            let info = serde_json::json!({
                "name": ds.name(),
                "dim": ds.dim(),
                "image_shape": ds.image_shape().map(|(c, h, w)| vec![c, h, w]),
                "classes": ds.classes(),
                "exact": ds.gmm().is_some(),
            })
            .to_string();
            Ok((xs, labels, info))
        })
        .map_err(cm_err)?;
    let info_v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let d = info_v["dim"].as_u64().unwrap() as usize;
    let n = xs.len() / d;
    let labels = labels.map(|l: Vec<i64>| l.into_pyarray(py));
    Ok((array2(py, xs, n, d)?, labels, info))
}

fn pair<'a>(
    a: &'a PyReadonlyArray2<'_, f64>,
    b: &'a PyReadonlyArray2<'_, f64>,
    min_rows: usize,
) -> PyResult<(&'a [f64], &'a [f64], usize)> {
    let (xa, na, da) = rows(a, "a")?;
    let (xb, nb, db) = rows(b, "b")?;
    if da != db {
        return Err(PyValueError::new_err(format!(
            "a and b must have the same number of columns, got {da} and {db}"
        )));
    }
    if da == 0 || na < min_rows || nb < min_rows {
        return Err(PyValueError::new_err(format!(
            "a and b need at least {min_rows} row(s) of at least one column each, got shapes ({na}, {da}) and ({nb}, {db})"
        )));
    }
    Ok((xa, xb, da))
}

/// Sliced Wasserstein-2 distance (`cm::eval::swd`).
#[pyfunction]
fn swd(py: Python<'_>, a: PyReadonlyArray2<'_, f64>, b: PyReadonlyArray2<'_, f64>) -> PyResult<f64> {
    let (a, b, d) = pair(&a, &b, 1)?;
    Ok(py.detach(|| cm::eval::swd(a, b, d)))
}

/// Squared MMD, multi-bandwidth RBF (`cm::eval::mmd2`).
#[pyfunction]
fn mmd(py: Python<'_>, a: PyReadonlyArray2<'_, f64>, b: PyReadonlyArray2<'_, f64>, scale: f64) -> PyResult<f64> {
    let (a, b, d) = pair(&a, &b, 2)?;
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(PyValueError::new_err(format!("scale must be positive, got {scale}")));
    }
    Ok(py.detach(|| cm::eval::mmd2(a, b, d, scale)))
}

/// Energy distance (`cm::eval::energy`).
#[pyfunction]
fn energy(py: Python<'_>, a: PyReadonlyArray2<'_, f64>, b: PyReadonlyArray2<'_, f64>) -> PyResult<f64> {
    let (a, b, d) = pair(&a, &b, 2)?;
    Ok(py.detach(|| cm::eval::energy(a, b, d)))
}

/// Fréchet distance between Gaussians fitted to two feature sets (`cm::eval::images::frechet`).
#[pyfunction]
fn frechet(py: Python<'_>, a: PyReadonlyArray2<'_, f64>, b: PyReadonlyArray2<'_, f64>) -> PyResult<f64> {
    let (a, b, d) = pair(&a, &b, 2)?;
    Ok(py.detach(|| cm::eval::images::frechet(a, b, d)))
}

/// KID: (mean, standard error) over subsets (`cm::eval::features::kid`).
#[pyfunction]
fn kid(
    py: Python<'_>,
    a: PyReadonlyArray2<'_, f64>,
    b: PyReadonlyArray2<'_, f64>,
    subsets: usize,
    subset_size: usize,
    seed: u64,
) -> PyResult<(f64, f64)> {
    let (a, b, d) = pair(&a, &b, 2)?;
    if subsets < 1 || subset_size < 2 {
        return Err(PyValueError::new_err(format!(
            "kid needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}"
        )));
    }
    Ok(py.detach(|| cm::eval::features::kid(a, b, d, subsets, subset_size, seed)))
}

/// Per-pair LPIPS (float32, N) of N×C·H·W images in [-1, 1] (`cm::lpips::Lpips`).
#[pyfunction]
#[pyo3(signature = (a, b, shape, net, weights, resize))]
fn lpips<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    shape: (usize, usize, usize),
    net: &str,
    weights: Option<PathBuf>,
    resize: bool,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let (xa, xb, d) = pair(&a, &b, 1)?;
    let (c, h, w) = shape;
    if c * h * w != d || !(c == 1 || c == 3) {
        return Err(PyValueError::new_err(format!(
            "LPIPS needs images of 1 or 3 channels, got shape {shape:?} for {d} values per image"
        )));
    }
    if xa.len() != xb.len() {
        return Err(PyValueError::new_err(
            "LPIPS compares a[i] with b[i]: a and b need the same number of images",
        ));
    }
    let which = match net {
        "alex" => cm::lpips::LpipsNet::Alex,
        "vgg" | "vgg16" => cm::lpips::LpipsNet::Vgg16,
        o => return Err(PyValueError::new_err(format!("net must be 'alex' or 'vgg', got '{o}'"))),
    };
    let out = py
        .detach(|| -> anyhow::Result<Vec<f32>> {
            let path = match weights {
                Some(p) => p,
                None => cm::lpips::find_weights(which).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no LPIPS weights ({}) found in {}: run `cm data fetch lpips`, set $CM_LPIPS_DIR, or pass weights=PATH",
                        which.file_name(),
                        cm::lpips::weight_dirs()
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?,
            };
            let dev = device();
            let l = cm::lpips::Lpips::load(&path, &dev)?;
            if !resize {
                l.check_size(h, w)?;
            }
            let n = xa.len() / d;
            let mut out = Vec::with_capacity(n);
            const CHUNK: usize = 16;
            for i in (0..n).step_by(CHUNK) {
                let m = CHUNK.min(n - i);
                let t = |x: &[f64]| {
                    Tensor::<1>::from_data(
                        TensorData::new(to_f32(&x[i * d..(i + m) * d]), [m * d]),
                        &dev,
                    )
                    .reshape([m, c, h, w])
                };
                let r = if resize {
                    l.distance_resized(t(xa), t(xb))
                } else {
                    l.distance(t(xa), t(xb))
                };
                out.extend(cm::tensor::to_vec(r));
            }
            Ok(out)
        })
        .map_err(cm_err)?;
    Ok(out.into_pyarray(py))
}

/// `cm eval SAMPLES --data NAME`: JSON report of samples against `n` fresh points of a data set.
#[pyfunction]
fn report(py: Python<'_>, samples: PyReadonlyArray2<'_, f64>, data: &str, n: Option<usize>) -> PyResult<String> {
    let (xs, _, d) = rows(&samples, "samples")?;
    let r = py
        .detach(|| -> anyhow::Result<_> {
            let ds = Dataset::from_name(data)?;
            anyhow::ensure!(
                d == ds.dim(),
                "samples have {d} columns but data set {data} is {}-dimensional",
                ds.dim()
            );
            let n = n.unwrap_or_else(|| cm::generate::default_n_eval(data));
            cm::eval::samples_report(&ds, xs, n, &device())
        })
        .map_err(cm_err)?;
    Ok(serde_json::to_string(&r).expect("a report serialises"))
}

/// A Gaussian mixture with its exact oracles (`cm::data::gmm::Gmm`).
#[pyclass(module = "consistency_models._native", name = "GaussianMixture", frozen)]
struct GaussianMixture {
    gmm: Gmm,
}

#[pymethods]
impl GaussianMixture {
    /// Weights (normalised here), means (K×D) and row-major covariances (K×D·D), already
    /// checked by the Python side (symmetric positive definite).
    #[new]
    fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, covs: Vec<Vec<f64>>) -> Self {
        Self {
            gmm: Gmm::new(weights, means, covs),
        }
    }

    #[getter]
    fn dim(&self) -> usize {
        self.gmm.dim
    }

    /// (weights, means, covs) as lists.
    fn params(&self) -> (Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
        (self.gmm.weights.clone(), self.gmm.means.clone(), self.gmm.covs.clone())
    }

    fn log_density<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        sigma: f64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (xs, _, _) = self.check(&x)?;
        Ok(py.detach(|| self.gmm.log_density(xs, sigma)).into_pyarray(py))
    }

    fn score<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        sigma: f64,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (xs, n, d) = self.check(&x)?;
        if sigma <= 0.0 {
            return Err(PyValueError::new_err(format!(
                "sigma must be positive for the score, got {sigma}"
            )));
        }
        array2(py, py.detach(|| self.gmm.score_rows(xs, sigma)), n, d)
    }

    fn denoise<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        sigma: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (xs, n, d) = self.check(&x)?;
        let s = self.sigmas(&sigma, n)?;
        array2(py, py.detach(|| self.gmm.denoise_rows(xs, s)), n, d)
    }

    fn consistency_map<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        sigma: PyReadonlyArray1<'py, f64>,
        eps: f64,
        steps: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (xs, n, d) = self.check(&x)?;
        let s = self.sigmas(&sigma, n)?;
        if !(eps > 0.0) || steps < 1 {
            return Err(PyValueError::new_err(format!(
                "eps must be positive and steps at least 1, got {eps} and {steps}"
            )));
        }
        let out = py.detach(|| {
            let dev = device();
            let t = cm::tensor::tensor2(to_f32(xs), n, d, &dev);
            cm::tensor::to_vec64(cm::eval::oracle::exact_consistency_map(&self.gmm, t, s, eps, steps))
        });
        array2(py, out, n, d)
    }

    fn sample<'py>(&self, py: Python<'py>, n: usize, seed: u64) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let d = self.gmm.dim;
        array2(py, py.detach(|| self.gmm.sample(&mut Rng::new(seed), n)), n, d)
    }
}

impl GaussianMixture {
    fn check<'a>(&self, x: &'a PyReadonlyArray2<'_, f64>) -> PyResult<(&'a [f64], usize, usize)> {
        let (xs, n, d) = rows(x, "x")?;
        if d != self.gmm.dim {
            return Err(PyValueError::new_err(format!(
                "x has {d} columns but the mixture is {}-dimensional",
                self.gmm.dim
            )));
        }
        Ok((xs, n, d))
    }

    fn sigmas<'a>(&self, s: &'a PyReadonlyArray1<'_, f64>, n: usize) -> PyResult<&'a [f64]> {
        let v = vec1(s, "sigma")?;
        if v.len() != n {
            return Err(PyValueError::new_err(format!(
                "sigma has {} values for {n} rows",
                v.len()
            )));
        }
        if let Some(i) = v.iter().position(|&x| x < 0.0) {
            return Err(PyValueError::new_err(format!("sigma[{i}] is negative ({})", v[i])));
        }
        Ok(v)
    }
}

/// The exact mixture of a built-in Gaussian-mixture data set (`ring8`, `gmm-unequal`, `gmm1d`),
/// in raw coordinates.
#[pyfunction]
fn mixture(name: &str) -> PyResult<GaussianMixture> {
    let ds = Dataset::from_name(name).map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
    match ds.gmm() {
        Some(g) => Ok(GaussianMixture { gmm: g.clone() }),
        None => Err(PyValueError::new_err(format!(
            "data set {name} is not a Gaussian mixture (the mixtures are ring8, gmm-unequal, gmm1d)"
        ))),
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CmError", py.get_type::<CmError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Model>()?;
    m.add_class::<GaussianMixture>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(config_parse, m)?)?;
    m.add_function(wrap_pyfunction!(config_load, m)?)?;
    m.add_function(wrap_pyfunction!(config_default, m)?)?;
    m.add_function(wrap_pyfunction!(toml_to_json, m)?)?;
    m.add_function(wrap_pyfunction!(json_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(builtins, m)?)?;
    m.add_function(wrap_pyfunction!(data_load, m)?)?;
    m.add_function(wrap_pyfunction!(swd, m)?)?;
    m.add_function(wrap_pyfunction!(mmd, m)?)?;
    m.add_function(wrap_pyfunction!(energy, m)?)?;
    m.add_function(wrap_pyfunction!(frechet, m)?)?;
    m.add_function(wrap_pyfunction!(kid, m)?)?;
    m.add_function(wrap_pyfunction!(lpips, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(mixture, m)?)?;
    Ok(())
}
