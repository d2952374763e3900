"""Data sets: the built-in 2-D distributions, your own point files, and image sets.

The same loaders as the CLI's ``[data] name``::

    >>> import consistency_models as cm
    >>> x = cm.data.load("ring8", n=1000, seed=0)       # exact draws, float64 (1000, 2)
    >>> pts = cm.data.load("my_points.csv")              # every point of a file
    >>> imgs, labels = cm.data.load("mnist:data/mnist", labels=True)  # float32 (N, 1, 28, 28)
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _arrays, _native

__all__ = ["builtins", "load", "info"]


def builtins() -> List[str]:
    """Names of the built-in data sets (``ring8``, ``gmm-unequal``, ``gmm1d``, ``moons``, …)."""
    return list(_native.builtins()[0])


def load(
    name: str,
    n: Optional[int] = None,
    seed: int = 0,
    *,
    labels: bool = False,
    image_size: int = 32,
    grey: bool = False,
    test_split: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, Optional[np.ndarray]]]:
    """Loads or draws a data set, in raw data coordinates.

    Args:
        name: a built-in (:func:`builtins`), a ``.csv`` / ``.npy`` file of points, or an image
            source: ``mnist:DIR``, ``fashion-mnist:DIR``, ``idx:FILE``, ``folder:DIR``,
            ``npy:FILE`` (as ``[data] name`` in a config).
        n: built-ins are distributions: ``n`` points are drawn (default 10 000). Files and
            image sets return every point when ``n`` is None, else ``n`` drawn with
            replacement.
        seed: seed of the draw.
        labels: also return the class labels (int64, or None when the data has none).
        image_size, grey, test_split: the image options of ``[data]`` (``folder:`` size and
            colour, the MNIST test split).

    Returns:
        points as float64 (N, D), or images as float32 (N, C, H, W) in [-1, 1]; with
        ``labels=True`` a tuple (x, labels).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    seed = _arrays.count(seed, "seed")
    if n is not None:
        n = _arrays.count(n, "n", 1)
    elif name in builtins():
        n = 10_000
    x, lab, meta = _native.data_load(name, n, seed, _arrays.count(image_size, "image_size", 1), bool(grey), bool(test_split))
    m = json.loads(meta)
    if m["image_shape"]:
        x = x.astype(np.float32).reshape((x.shape[0],) + tuple(m["image_shape"]))
    return (x, lab) if labels else x


def info(name: str) -> Dict[str, Any]:
    """``name``, ``dim``, ``image_shape``, ``classes`` and ``exact`` (whether the data set is a
    Gaussian mixture with exact oracles, see :mod:`consistency_models.exact`)."""
    _, _, meta = _native.data_load(name, 2, 0, 32, False, False)
    return json.loads(meta)
