"""Checking and converting the arrays users pass in (shared by every module).

The native functions take C-contiguous float64 N×D arrays; these helpers make them from
what users have (float32, ints, images N×C×H×W, lists) and raise a ValueError that names
the argument when that cannot be done. A C-contiguous float64 array passes through without a
copy.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple

import numpy as np


def points(x: Any, name: str, dim: Optional[int] = None) -> np.ndarray:
    """`x` as a C-contiguous float64 (N, D) array.

    Accepts (N, D) arrays, (N,) for one-dimensional data, and images (N, C, H, W), which are
    flattened to (N, C·H·W). Booleans, integers and floats are converted; anything else
    (complex, objects, strings) is a ValueError, as are NaN and infinities.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    elif a.ndim == 4:
        a = a.reshape(a.shape[0], -1)
    elif a.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N, D), 1-D (N,) or images (N, C, H, W); got shape {a.shape}"
        )
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        i, j = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} holds a non-finite value ({a[i, j]}) at row {i}, column {j}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} values per sample, got shape {np.shape(x)}")
    return a


def sigmas(sigma: Any, n: int, name: str = "sigma") -> np.ndarray:
    """A noise level per row: a scalar broadcast to n rows, or n values."""
    if isinstance(sigma, numbers.Real):
        s = np.full(n, float(sigma))
    else:
        s = np.asarray(sigma)
        if s.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be a number or an array of numbers, got dtype {s.dtype}")
        s = np.ascontiguousarray(s.reshape(-1), dtype=np.float64)
        if s.shape[0] == 1:
            s = np.full(n, s[0])
        if s.shape[0] != n:
            raise ValueError(f"{name} must be a scalar or have one value per row ({n}), got {s.shape[0]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} must be finite")
    return s


def count(v: Any, name: str, minimum: int = 0) -> int:
    """A non-negative integer argument (bools and floats are refused)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    if v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    return v


def image_shape(x: np.ndarray) -> Optional[Tuple[int, int, int]]:
    """(C, H, W) of an (N, C, H, W) array, else None."""
    return tuple(x.shape[1:]) if x.ndim == 4 else None  # type: ignore[return-value]
