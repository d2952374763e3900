"""Sample-set metrics on NumPy arrays: the functions ``cm eval`` and the demo report.

Every function takes two point sets ``a`` and ``b`` as (N, D) arrays (or images
(N, C, H, W), flattened; or (N,) for 1-D data), in the data's own coordinates, and returns
the same number the Rust library computes for them::

    >>> import consistency_models as cm
    >>> x = cm.data.load("ring8", n=5000, seed=1)
    >>> y = cm.data.load("ring8", n=5000, seed=2)
    >>> cm.metrics.swd(x, y)          # ~0.05: two draws of the same distribution
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import _arrays, _native

__all__ = ["swd", "mmd", "energy", "fd_features", "kid", "lpips", "report"]


def _pair(a: Any, b: Any) -> Tuple[np.ndarray, np.ndarray]:
    x = _arrays.points(a, "a")
    y = _arrays.points(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"a and b must have the same number of values per sample, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def swd(a: Any, b: Any) -> float:
    """Sliced Wasserstein-2 distance: the root mean over 256 fixed random directions of the
    squared 1-D W2 distance between the projections (unequal sizes by matching quantiles). In
    data units; lower is better."""
    return _native.swd(*_pair(a, b))


def mmd(a: Any, b: Any, scale: float = 1.0) -> float:
    """Squared maximum mean discrepancy with a sum of RBF kernels of bandwidths
    (0.1, 0.25, 0.5, 1)·``scale`` (unbiased U-statistic, so it can be slightly negative) on at
    most the first 4000 points of each set; ``cm eval`` passes the data's mean per-dimension std
    as ``scale``. Needs at least 2 rows each."""
    return _native.mmd(*_pair(a, b), float(scale))


def energy(a: Any, b: Any) -> float:
    """Energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (U-statistics within the sets) on at most
    the first 4000 points of each set. Needs at least 2 rows each."""
    return _native.energy(*_pair(a, b))


def fd_features(a: Any, b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the formula of FID;
    ``cm eval`` applies it to the 64 features of the shipped MNIST / Fashion-MNIST
    classifiers). Needs at least 2 rows each."""
    return _native.frechet(*_pair(a, b))


def kid(a: Any, b: Any, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> Tuple[float, float]:
    """Kernel Inception Distance protocol on feature sets: the unbiased MMD² with the cubic
    polynomial kernel, averaged over ``subsets`` random subsets of ``subset_size`` rows of each
    set (clipped to the smaller set). Returns (mean, standard error); deterministic in ``seed``."""
    x, y = _pair(a, b)
    return tuple(
        _native.kid(x, y, _arrays.count(subsets, "subsets", 1), _arrays.count(subset_size, "subset_size", 2), _arrays.count(seed, "seed"))
    )  # type: ignore[return-value]


def lpips(
    a: Any,
    b: Any,
    net: str = "alex",
    weights: Optional[Union[str, "os.PathLike[str]"]] = None,
    resize: bool = False,
) -> np.ndarray:
    """LPIPS (Zhang et al. 2018, v0.1 heads) between image pairs a[i], b[i]: float32 (N,).

    Images are (N, C, H, W) in [-1, 1] with 1 or 3 channels. ``net`` is ``"alex"`` or
    ``"vgg"``; the ImageNet weights come from ``cm data fetch lpips``, ``$CM_LPIPS_DIR`` or
    ``weights=PATH`` (a missing file is a :class:`~consistency_models.CmError` saying where it
    looked). ``resize=True`` upsamples to 224 px first, as the CM training distance does; the
    AlexNet trunk needs at least 32×32 px without it.
    """
    for v, nm in ((a, "a"), (b, "b")):
        if np.ndim(v) != 4:
            raise ValueError(f"{nm} must be images (N, C, H, W), got shape {np.shape(v)}")
    if np.shape(a) != np.shape(b):
        raise ValueError(f"a and b must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    x, y = _pair(a, b)
    shape = tuple(int(s) for s in np.shape(a)[1:])
    if net == "alex" and min(shape[1:]) < 32 and not resize:
        # AlexNet's stride-4 stem and pools leave no pixels for its deeper taps below ~31 px
        # (the distance would be NaN).
        raise ValueError(f"LPIPS with net='alex' needs images of at least 32×32 px, got {shape[1]}×{shape[2]}; pass resize=True or net='vgg'")
    w = None if weights is None else os.fspath(weights)
    return _native.lpips(x, y, shape, net, w, bool(resize))


def report(samples: Any, data: str, n: Optional[int] = None) -> Dict[str, Any]:
    """``cm eval SAMPLES.npy --data NAME``: the standard report of a sample set against ``n``
    fresh points of a data set (default 1000 for images, 10 000 otherwise): ``swd``, ``mmd``,
    ``energy``, and ``loglik`` for Gaussian mixtures, ``fd`` / ``confidence`` for MNIST-like
    images."""
    x = _arrays.points(samples, "samples")
    return json.loads(_native.report(x, data, None if n is None else _arrays.count(n, "n", 1)))
