"""Consistency models from Python: train, sample and evaluate with NumPy arrays in and out.

The same library code as the ``cm`` command-line tool (Rust, burn's CPU backend), loaded as
an extension module: no second implementation, and a run trained here is a run folder the
CLI reads, and the other way round.

Quick start::

    import consistency_models as cm

    run = cm.train({"data": {"name": "ring8"}, "train": {"steps": 2000}}, out="runs/ring8")
    x = run.sample(10_000, steps=2, seed=0)       # float32 (10000, 2), data coordinates
    cm.metrics.swd(x, cm.data.load("ring8", n=10_000))

    model = cm.load("runs/ring8")                 # a run folder or a checkpoint file
    imgs = cm.load("runs/mnist-ict").sample(16)   # images: (16, 1, 28, 28) in [-1, 1]
    cm.to_uint8(imgs)                             # (16, 28, 28) uint8, for PIL / imshow

Modules: :mod:`~consistency_models.config` (configs as dicts), :mod:`~consistency_models.data`
(built-in and file data sets), :mod:`~consistency_models.metrics` (SWD, MMD, energy, FD, KID,
LPIPS), :mod:`~consistency_models.exact` (exact Gaussian-mixture oracles).

Long calls release the GIL. Ctrl-C during :func:`train` finishes the step, writes a
checkpoint and raises ``KeyboardInterrupt`` (training again with the same arguments
continues the run), like SIGINT in ``cm train``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _arrays, _native
from ._native import CmError, ConfigError
from . import config, data, exact, metrics
from .config import _text as _config_text

__version__: str = _native.__version__

__all__ = [
    "CmError",
    "ConfigError",
    "Model",
    "Progress",
    "Run",
    "load",
    "train",
    "to_uint8",
    "config",
    "data",
    "exact",
    "metrics",
]

PathLike = Union[str, "os.PathLike[str]"]


class Model:
    """A trained consistency model (or diffusion teacher) with its run: weights, config, data
    standardisation and the method's own sampler. Made by :func:`load` and :func:`train`.

    Coordinates: samples and denoiser outputs are in the data's own coordinates (the
    training data's units; images in [-1, 1], shaped N×C×H×W). The model works internally in
    standardised coordinates, as the CLI does.
    """

    def __init__(self, native: "_native.Model") -> None:
        self._m = native
        self._info: Dict[str, Any] = json.loads(native.info())

    # ----- description
    @property
    def path(self) -> str:
        """The run folder or checkpoint this model was loaded from or trained into."""
        return self._info["source"]

    @property
    def step(self) -> int:
        """The optimizer steps the weights have had."""
        return self._info["step"]

    @property
    def method(self) -> str:
        """The training method (``ict``, ``cd``, ``edm``, …)."""
        return self._info["method"]

    @property
    def data_name(self) -> str:
        """The data set the model was trained on (``[data] name``)."""
        return self._info["data"]

    @property
    def dim(self) -> int:
        """Values per sample (2 for 2-D data, C·H·W for images)."""
        return self._info["dim"]

    @property
    def image_shape(self) -> Optional[Tuple[int, int, int]]:
        """(C, H, W) for image models, else None."""
        s = self._info["image_shape"]
        return tuple(s) if s else None  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        """Classes of a class-conditional network (``model.classes``); 0 = unconditional."""
        return self._info["classes"]

    @property
    def sigma_data(self) -> float:
        """σ_d of the parameterisation (0.5 for images, 1 for standardised points)."""
        return self._info["sigma_d"]

    @property
    def config(self) -> Dict[str, Any]:
        """The run's resolved config as a dict (every field, defaults filled in); a fresh copy."""
        return config.from_toml(self._m.config_toml())

    @property
    def config_toml(self) -> str:
        """The run's resolved config as TOML text (what its checkpoints and ``config.toml`` hold)."""
        return self._m.config_toml()

    def __repr__(self) -> str:
        shape = f"images {self.image_shape}" if self.image_shape else f"{self.dim}-D"
        return (
            f"<consistency_models.{type(self).__name__} {self.method} on {self.data_name} "
            f"({shape}), step {self.step}, from {self.path!r}>"
        )

    # ----- generation
    def sample(
        self,
        n: int,
        steps: int = 1,
        times: Optional[Sequence[float]] = None,
        seed: int = 0,
        classes: Union[None, int, str] = None,
        guidance: Optional[float] = None,
        batch: int = 256,
        ema: bool = True,
        gamma: Optional[float] = None,
        ode: Optional[str] = None,
    ) -> np.ndarray:
        """Draws ``n`` samples, as ``cm sample`` does.

        Args:
            n: number of samples.
            steps: network steps of the method's sampler (1 = one-step generation; ODE steps
                for a diffusion teacher).
            times: explicit times to visit, from the noise end towards the data end, in the
                method's time convention (EDM σ for CM/iCT/ECT/CTM, TrigFlow t for sCM, …);
                the ends are added where missing. Overrides ``steps``.
            seed: noise seed. Every sample has its own noise stream, so sample i depends only
                on the model, the seed, the walk and i — not on ``n`` or ``batch``.
            classes: for class-conditional networks: None (default) gives sample i class
                i mod K, an int gives every sample that class, ``"none"`` samples
                unconditionally. An int for an unconditional network is a ValueError.
            guidance: classifier-free guidance scale w of a class-conditional network
                (EDM2's convention: None or 1 = the conditional model, 0 = unconditional,
                > 1 sharper classes). Anything but None/1 on an unconditional model is a
                ValueError.
            batch: samples per network batch (memory only; the samples do not depend on it).
            ema: use the evaluation-EMA weights (default, as the CLI) or the online weights.
            gamma: CTM γ-sampling (0 = deterministic jumps, 1 = multistep consistency).
            ode: CTM ODE sampling through the denoiser: ``"heun"`` or ``"euler"``.

        Returns:
            float32 array in data coordinates: (n, D), or (n, C, H, W) in [-1, 1] for images
            (see :func:`to_uint8`).
        """
        w = 1.0 if guidance is None else float(guidance)
        n = _arrays.count(n, "n")
        steps = _arrays.count(steps, "steps", 1)
        batch = _arrays.count(batch, "batch", 1)
        seed = _arrays.count(seed, "seed")
        if classes is None:
            cls = "balanced"
        elif isinstance(classes, str) and classes.lower() == "none":
            cls = "none"
        else:
            k = _arrays.count(classes, "classes")
            if self.num_classes == 0:
                raise ValueError(f"classes={k}: this model is unconditional (model.classes = 0)")
            if k >= self.num_classes:
                raise ValueError(f"classes={k}: the model has {self.num_classes} classes (0..{self.num_classes - 1})")
            cls = str(k)
        t = None if times is None else [float(v) for v in np.asarray(times, dtype=np.float64).reshape(-1)]
        x = self._m.sample(n, steps, t, seed, cls, batch, bool(ema), gamma, ode, w)
        return self._shape(x)

    def denoise(self, x: Any, sigma: Union[float, Sequence[float], np.ndarray], ema: bool = True) -> np.ndarray:
        """The network's denoiser D(x, σ) ≈ E[x0 | x], in data coordinates.

        ``x`` is a noisy sample x = x0 + σ·s·z in data coordinates, where s is the data's
        per-dimension standard deviation (1 for images) — i.e. σ is the EDM noise level in
        the model's standardised coordinates, the σ that training and ``times`` use. For
        consistency models this is the one-step map f(x, σ); for EDM teachers D(x, σ); TrigFlow,
        sCM, FACM and MeanFlow networks are converted to a denoiser the way they are used as
        teachers.

        Args:
            x: (N, D) points or (N, C, H, W) images.
            sigma: one σ > 0, or one per sample.
            ema: evaluation-EMA weights (default) or online weights.

        Returns:
            float32 array shaped like ``x``.
        """
        a = _arrays.points(x, "x", self.dim)
        s = _arrays.sigmas(sigma, a.shape[0])
        return self._shape(self._m.denoise(a, s, bool(ema)))

    def metrics(
        self,
        n: Optional[int] = None,
        steps: int = 1,
        ema: bool = True,
        guidance: Optional[float] = None,
        memorisation: bool = True,
        fid_weights: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``cm eval RUN --steps K --json``: the same numbers.

        Points: ``n`` samples (default 10 000) with the run's sampler and ``steps`` steps,
        measured against ``n`` fresh data points: ``swd``, ``mmd``, ``energy``, ``loglik``
        (Gaussian mixtures) and ``nfe``.

        Images: the image protocol (README "Evaluation protocol"): ``n`` samples (default
        10 000) rounded to 8 bits against the test split, with ``fd`` / ``fd_net``, ``kid``
        (value, standard error), ``precision_recall``, ``confidence``, ``class_agreement``
        (class-conditional runs), ``memorised`` (skipped with ``memorisation=False``), and the
        same metrics of training images under ``floor`` / ``*_floor``. ``guidance``: the
        classifier-free guidance scale of a class-conditional run. ``fid_weights``: a path to
        pytorch-fid's Inception weights as safetensors (``tools/fid_weights.py``) adds
        ``inception`` (``fid``, ``kid``) and ``inception_floor`` (``cm eval --fid-weights``).
        """
        n = _arrays.count(10_000 if n is None else n, "n", 1)
        steps = _arrays.count(steps, "steps", 1)
        w = 1.0 if guidance is None else float(guidance)
        fw = None if fid_weights is None else os.fspath(fid_weights)
        return json.loads(self._m.metrics(n, steps, bool(ema), w, bool(memorisation), fw))

    def weights(self, ema: bool = True) -> Dict[str, np.ndarray]:
        """The backbone's weights as float32 arrays keyed by parameter name (``input.weight``,
        …). The same arrays a checkpoint stores under ``ema/<name>`` (``online/<name>`` with
        ``ema=False``)."""
        return {name: flat.reshape(shape) for name, shape, flat in self._m.weights(bool(ema))}

    def _shape(self, x: np.ndarray) -> np.ndarray:
        s = self.image_shape
        return x.reshape((x.shape[0],) + s) if s else x


class Run(Model):
    """A model just trained by :func:`train`, with its training record."""

    def __init__(self, native: "_native.Model", summary: Dict[str, Any]) -> None:
        super().__init__(native)
        self._summary = summary

    @property
    def history(self) -> List[Tuple[int, float]]:
        """(step, mean loss) at every logged step of the whole run (``log.jsonl``)."""
        return [(int(s), float(l)) for s, l in self._summary["history"]]

    @property
    def seconds(self) -> float:
        """Wall time of this call."""
        return float(self._summary["seconds"])

    @property
    def skipped(self) -> int:
        """Steps skipped in the whole run for a non-finite loss or gradient."""
        return int(self._summary["skipped"])

    @property
    def final_loss(self) -> Optional[float]:
        """The last logged mean loss."""
        return self._summary["final_loss"]


def load(path: PathLike) -> Model:
    """Loads a trained model: a run folder (its newest checkpoint) or a checkpoint file
    (``ckpt-*.safetensors``), as ``cm sample RUN`` does.

    Raises FileNotFoundError for a missing path and :class:`CmError` for anything the CLI
    would refuse (a damaged checkpoint, a folder without checkpoints, …).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no such checkpoint or run folder: {p}")
    return Model(_native.load(p))


class Progress(NamedTuple):
    """What a progress callback receives."""

    step: int
    """Steps done (of the whole run, resumed runs included)."""
    total: int
    """``train.steps``."""
    loss: float
    """Mean loss since the previous call (NaN if every step was skipped)."""
    steps_per_s: float
    """Training speed in this call."""
    skipped: int
    """Steps skipped so far for a non-finite loss or gradient."""


ProgressArg = Union[bool, Callable[[Progress], Any]]


def train(
    config: Any = None,
    out: Optional[PathLike] = None,
    steps: Optional[int] = None,
    seed: Optional[int] = None,
    resume: bool = False,
    progress: ProgressArg = True,
    *,
    data: Any = None,
    restart: bool = False,
    force: bool = False,
    max_seconds: Optional[float] = None,
    progress_every: int = 10,
) -> Run:
    """Trains a model into the run folder ``out``, as ``cm train CONFIG --out OUT`` does.

    Args:
        config: a dict (missing fields take their defaults), TOML text, the path of a TOML
            file, or None for all defaults. Checked like the CLI: :class:`ConfigError` (a
            ValueError) names the field.
        out: the run folder (new, empty, or a cm run folder). Training the same config into
            a folder that holds its run continues it; a different config is refused with the
            fields that differ (``restart=True`` moves the old run to ``out/restart-N/``).
        steps: override ``train.steps``.
        seed: override ``train.seed``.
        resume: continue the run in ``out`` (the default behaviour for a matching config;
            kept for parity with ``cm train --resume``).
        progress: True for a progress bar (tqdm when installed, else a line on stderr),
            False for none, or a callable receiving a :class:`Progress` every
            ``progress_every`` steps. If the callable raises, training stops after that step
            with a checkpoint and the exception propagates.
        data: train on your own points instead of ``[data] name``: an (N, D) array (or (N,)).
            It is stored as ``out/data.npy`` and the run's ``data.name`` points there, so the
            run folder can be loaded and continued later.
        restart: start over, moving the previous run in ``out`` aside.
        force: use a non-empty ``out`` that is not a cm run folder (nothing there is touched).
        max_seconds: stop (with a checkpoint) after this much training time.
        progress_every: steps between progress reports.

    Returns:
        the trained :class:`Run` (a :class:`Model` with ``history``).

    Ctrl-C (SIGINT) or SIGTERM while training finishes the step, writes a checkpoint and
    raises ``KeyboardInterrupt``; calling ``train`` again with the same arguments continues.
    A second Ctrl-C ends the process at once, like the CLI. This holds when ``train`` runs in
    the main thread; in other threads signals are left to Python. The GIL is released while
    training, so other Python threads keep running.
    """
    if out is None:
        raise TypeError("train() needs out=, the run folder to train into")
    text = _config_text(config)
    steps = None if steps is None else _arrays.count(steps, "steps", 1)
    seed = None if seed is None else _arrays.count(seed, "seed")
    every = _arrays.count(progress_every, "progress_every", 1)
    npy = None if data is None else _npy_bytes(data)
    if progress is True:
        bar: Optional[_Bar] = _Bar()
        cb: Optional[Callable[..., Any]] = bar
    elif progress is False or progress is None:
        bar, cb = None, None
    elif callable(progress):
        bar = None
        user = progress

        def cb(*a: Any) -> None:
            user(Progress(*a))

    else:
        raise TypeError("progress must be True, False or a callable")
    graceful = threading.current_thread() is threading.main_thread()
    try:
        native, summary = _native.train(
            text,
            os.fspath(out),
            steps,
            seed,
            bool(resume),
            bool(restart),
            bool(force),
            graceful,
            cb,
            every,
            max_seconds,
            npy,
        )
    finally:
        if bar is not None:
            bar.close()
    return Run(native, json.loads(summary))


def _npy_bytes(x: Any) -> bytes:
    a = _arrays.points(x, "data")
    if a.shape[0] < 2:
        raise ValueError(f"data needs at least 2 points, got {a.shape[0]}")
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


class _Bar:
    """The default progress display: tqdm when it is installed, else one stderr line."""

    def __init__(self) -> None:
        self._t: Any = None
        self._plain = False
        self._started = time.monotonic()

    def __call__(self, step: int, total: int, loss: float, rate: float, skipped: int) -> None:
        if self._t is None and not self._plain:
            try:
                from tqdm.auto import tqdm  # type: ignore

                self._t = tqdm(total=total, unit="step", dynamic_ncols=True)
            except ImportError:
                self._plain = True
        post = f"loss {loss:.4g}" + (f", {skipped} skipped" if skipped else "")
        if self._t is not None:
            self._t.n = step
            self._t.set_postfix_str(post, refresh=False)
            self._t.refresh()
        else:
            sys.stderr.write(f"\rstep {step}/{total}  {post}  {rate:.1f} steps/s ")
            sys.stderr.flush()

    def close(self) -> None:
        if self._t is not None:
            self._t.close()
        elif self._plain:
            sys.stderr.write("\n")


def to_uint8(x: Any) -> np.ndarray:
    """Images in [-1, 1] → uint8 in [0, 255], channels last, for PIL and ``plt.imshow``.

    (N, C, H, W) → (N, H, W, C), or (N, H, W) for one channel; a single (C, H, W) image →
    (H, W, C) or (H, W). Values outside [-1, 1] are clipped.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim not in (3, 4):
        raise ValueError(f"to_uint8 takes images (N, C, H, W) or one image (C, H, W), got shape {a.shape}")
    u = np.clip(np.rint((a + 1.0) * 127.5), 0, 255).astype(np.uint8)
    u = np.moveaxis(u, -3, -1)
    return u[..., 0] if u.shape[-1] == 1 else u
