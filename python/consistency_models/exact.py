"""Exact oracles of Gaussian mixtures: density, score, denoiser and the exact consistency map.

For data x0 ~ Σ_k π_k N(μ_k, Σ_k) noised as x = x0 + σ z (EDM convention), everything is in
closed form except the consistency map, which integrates the probability-flow ODE with the
exact denoiser (Heun, ``steps`` steps on a Karras grid)::

    >>> import consistency_models as cm
    >>> g = cm.exact.mixture("ring8")           # the built-in data set's mixture
    >>> x = g.sample(1000, seed=0) + 0.5 * np.random.randn(1000, 2)
    >>> g.denoise(x, 0.5)                       # E[x0 | x], exact
    >>> g.consistency_map(x, 0.5)               # where the PF-ODE through x ends at σ = 0.002

These are the references the toolkit's tests and ``cm demo`` check learned models against.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from . import _arrays, _native

__all__ = ["GaussianMixture", "mixture"]

Sigma = Union[float, Sequence[float], np.ndarray]


class GaussianMixture:
    """A Gaussian mixture Σ_k π_k N(μ_k, Σ_k) in D dimensions with exact oracles.

    Args:
        weights: K positive weights (normalised to sum to 1).
        means: K×D means.
        covs: K×D×D symmetric positive-definite covariances.
    """

    def __init__(self, weights: Any, means: Any, covs: Any) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        m = np.asarray(means, dtype=np.float64)
        c = np.asarray(covs, dtype=np.float64)
        if m.ndim == 1:
            m = m.reshape(-1, 1)
        k, d = m.shape
        if c.ndim == 1 and d == 1:
            c = c.reshape(-1, 1, 1)
        if w.shape != (k,) or c.shape != (k, d, d):
            raise ValueError(f"need K weights, K×D means and K×D×D covariances; got {w.shape}, {m.shape}, {c.shape}")
        if not (np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(c).all()):
            raise ValueError("weights, means and covariances must be finite")
        if (w <= 0).any():
            raise ValueError("weights must be positive")
        for i in range(k):
            if not np.allclose(c[i], c[i].T):
                raise ValueError(f"covs[{i}] is not symmetric")
            try:
                np.linalg.cholesky(c[i])
            except np.linalg.LinAlgError:
                raise ValueError(f"covs[{i}] is not positive definite") from None
        self._g = _native.GaussianMixture(w.tolist(), m.tolist(), c.reshape(k, d * d).tolist())

    @classmethod
    def _wrap(cls, native: Any) -> "GaussianMixture":
        g = cls.__new__(cls)
        g._g = native
        return g

    @property
    def dim(self) -> int:
        """The dimension D."""
        return self._g.dim

    @property
    def weights(self) -> np.ndarray:
        """Mixture weights π_k (K,), summing to 1."""
        return np.asarray(self._g.params()[0])

    @property
    def means(self) -> np.ndarray:
        """Component means (K, D)."""
        return np.asarray(self._g.params()[1])

    @property
    def covs(self) -> np.ndarray:
        """Component covariances (K, D, D)."""
        c = np.asarray(self._g.params()[2])
        return c.reshape(c.shape[0], self.dim, self.dim)

    def __repr__(self) -> str:
        return f"<GaussianMixture of {len(self.weights)} components in {self.dim}-D>"

    def log_density(self, x: Any, sigma: float = 0.0) -> np.ndarray:
        """ln p_σ(x) per row, of the mixture convolved with N(0, σ² I); σ = 0 is the data density."""
        if not sigma >= 0:
            raise ValueError(f"sigma must be non-negative, got {sigma}")
        return self._g.log_density(_arrays.points(x, "x", self.dim), float(sigma))

    def score(self, x: Any, sigma: float) -> np.ndarray:
        """∇ₓ ln p_σ(x) per row, (N, D); σ > 0."""
        return self._g.score(_arrays.points(x, "x", self.dim), float(sigma))

    def denoise(self, x: Any, sigma: Sigma) -> np.ndarray:
        """The exact denoiser E[x0 | x0 + σ z = x] per row, (N, D); σ scalar or per row."""
        a = _arrays.points(x, "x", self.dim)
        return self._g.denoise(a, _arrays.sigmas(sigma, a.shape[0]))

    def consistency_map(self, x: Any, sigma: Sigma, eps: float = 0.002, steps: int = 200) -> np.ndarray:
        """The exact consistency map f*(x, σ): the PF-ODE through (x, σ) integrated down to
        σ = ``eps`` with ``steps`` Heun steps on each row's own Karras grid (ρ = 7), with the
        exact denoiser. (N, D); computed in float32 tensors like the library's oracle checks."""
        a = _arrays.points(x, "x", self.dim)
        return self._g.consistency_map(a, _arrays.sigmas(sigma, a.shape[0]), float(eps), _arrays.count(steps, "steps", 1))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n exact draws, float64 (n, D)."""
        return self._g.sample(_arrays.count(n, "n"), _arrays.count(seed, "seed"))


def mixture(name: str) -> GaussianMixture:
    """The exact mixture of a built-in data set: ``ring8``, ``gmm-unequal`` or ``gmm1d``."""
    return GaussianMixture._wrap(_native.mixture(name))
