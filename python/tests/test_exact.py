"""Exact Gaussian-mixture oracles."""

import numpy as np
import pytest

import consistency_models as cm


def test_builtin_mixture():
    g = cm.exact.mixture("ring8")
    assert g.dim == 2 and g.weights.shape == (8,) and abs(g.weights.sum() - 1) < 1e-12
    assert g.means.shape == (8, 2) and g.covs.shape == (8, 2, 2)
    x = g.sample(1000, seed=1)
    assert x.shape == (1000, 2)
    np.testing.assert_array_equal(x, g.sample(1000, seed=1))
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        cm.exact.mixture("moons")
    assert cm.data.info("ring8")["exact"] and not cm.data.info("moons")["exact"]


def test_score_is_the_gradient_of_the_log_density_and_tweedie_holds():
    g = cm.exact.mixture("gmm-unequal")
    x = g.sample(50, seed=3) + 0.1
    s, h = 0.3, 1e-5
    num = np.stack(
        [(g.log_density(x + h * e, s) - g.log_density(x - h * e, s)) / (2 * h) for e in np.eye(2)], axis=1
    )
    np.testing.assert_allclose(g.score(x, s), num, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.denoise(x, s), x + s * s * g.score(x, s), rtol=1e-10, atol=1e-12)


def test_one_gaussian_in_closed_form():
    # x0 ~ N(0, 1): D(x, σ) = x/(1 + σ²); the PF-ODE keeps x/sqrt(1 + σ²) constant.
    g = cm.exact.GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    x = np.linspace(-3, 3, 7).reshape(-1, 1)
    sig = np.linspace(0.5, 20, 7)
    np.testing.assert_allclose(g.denoise(x, sig), x / (1 + sig[:, None] ** 2), rtol=1e-12)
    f = g.consistency_map(x, sig, eps=0.002)
    want = x * np.sqrt(1 + 0.002**2) / np.sqrt(1 + sig[:, None] ** 2)
    np.testing.assert_allclose(f, want, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(g.log_density(np.zeros((1, 1))), [-0.5 * np.log(2 * np.pi)], rtol=1e-12)


def test_the_exact_map_lands_on_the_data():
    g = cm.exact.mixture("ring8")
    x0 = g.sample(300, seed=5)
    x = x0 + 2.0 * np.random.default_rng(0).standard_normal(x0.shape)
    f = g.consistency_map(x, 2.0)
    assert g.log_density(f).mean() > g.log_density(x).mean() + 1


def test_bad_mixtures_and_inputs():
    with pytest.raises(ValueError, match="positive definite"):
        cm.exact.GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="symmetric"):
        cm.exact.GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="K weights"):
        cm.exact.GaussianMixture([1.0, 1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]])
    g = cm.exact.mixture("ring8")
    with pytest.raises(ValueError, match="2 values per sample"):
        g.denoise(np.zeros((3, 3)), 1.0)
    with pytest.raises(ValueError, match="positive"):
        g.score(np.zeros((3, 2)), 0.0)
