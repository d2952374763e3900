"""Metrics on NumPy arrays: closed forms, the CLI's numbers, and input checking."""

import json
import subprocess

import numpy as np
import pytest

import consistency_models as cm
from consistency_models import _arrays


def gauss(seed, n, mean, sd):
    return np.random.default_rng(seed).normal(mean, sd, size=(n, len(mean)))


def test_swd_of_shifted_gaussians_is_shift_over_sqrt_d():
    a, b = gauss(1, 20000, [0.0, 0.0], 1.0), gauss(2, 20000, [1.0, 1.0], 1.0)
    assert abs(cm.metrics.swd(a, b) - 1.0) < 0.05
    assert cm.metrics.swd(a[:10000], a[10000:]) < 0.05


def test_mmd_energy_fd_kid_separate_distributions():
    a, b, c = gauss(1, 3000, [0.0, 0.0], 1.0), gauss(2, 3000, [0.0, 0.0], 1.0), gauss(3, 3000, [1.0, 0.0], 1.0)
    assert abs(cm.metrics.mmd(a, b)) < 0.01 < cm.metrics.mmd(a, c)
    assert abs(cm.metrics.energy(a, b)) < 0.02 < cm.metrics.energy(a, c)
    # FD of N(0, I) vs N(m, I) is |m|^2.
    assert abs(cm.metrics.fd_features(a, c) - 1.0) < 0.1 and cm.metrics.fd_features(a, b) < 0.02
    k = cm.metrics.kid(a, c, subsets=10, subset_size=500, seed=1)
    assert isinstance(k, tuple) and k[0] > 10 * k[1] > 0
    assert k == cm.metrics.kid(a, c, subsets=10, subset_size=500, seed=1)
    assert abs(cm.metrics.kid(a, b, subsets=10, subset_size=500)[0]) < 0.05


def test_dtypes_layouts_and_shapes_give_the_same_numbers():
    a, b = gauss(1, 500, [0.0, 0.0], 1.0), gauss(2, 500, [0.5, 0.0], 1.0)
    want = cm.metrics.swd(a, b)
    assert cm.metrics.swd(np.asfortranarray(a), b) == want
    assert cm.metrics.swd(a.tolist(), b) == want
    assert abs(cm.metrics.swd(a.astype(np.float32), b) - want) < 1e-6
    # 1-D data as (N,) and images as (N, C, H, W).
    assert cm.metrics.swd(a[:, 0], b[:, 0]) == cm.metrics.swd(a[:, :1], b[:, :1])
    imgs = np.random.default_rng(0).uniform(-1, 1, (20, 1, 4, 4))
    assert cm.metrics.energy(imgs, imgs[::-1]) == cm.metrics.energy(imgs.reshape(20, 16), imgs[::-1].reshape(20, 16))


def test_contiguous_float64_is_not_copied():
    a = np.zeros((10, 2))
    assert _arrays.points(a, "a") is a
    assert not np.shares_memory(_arrays.points(np.asfortranarray(a), "a"), np.asfortranarray(a))


def test_input_errors():
    a = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"a holds a non-finite value \(nan\) at row 3, column 1"):
        bad = a.copy()
        bad[3, 1] = np.nan
        cm.metrics.swd(bad, a)
    with pytest.raises(ValueError, match="inf"):
        cm.metrics.mmd(a, np.full((10, 2), np.inf))
    with pytest.raises(ValueError, match="same number of values per sample"):
        cm.metrics.swd(a, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="shape"):
        cm.metrics.swd(np.zeros((2, 2, 2)), a)
    with pytest.raises(ValueError, match="real numbers"):
        cm.metrics.swd(np.array([["a", "b"]]), a)
    with pytest.raises(ValueError, match="at least 2 row"):
        cm.metrics.energy(a[:1], a)
    with pytest.raises(ValueError, match="images"):
        cm.metrics.lpips(a, a)


def test_report_and_model_metrics_match_cm_eval(trained, tmp_path, cm_bin):
    x = trained.sample(3000, steps=2, seed=4)
    f = tmp_path / "s.npy"
    np.save(f, x)
    cli = subprocess.run([str(cm_bin), "eval", str(f), "--data", "ring8", "--n", "3000", "--json"], capture_output=True, text=True, check=True)
    want = json.loads(cli.stdout.strip().splitlines()[-1])
    got = cm.metrics.report(x, "ring8", n=3000)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
    # The components agree with the report (same reference draw, same scale).
    cli = subprocess.run([str(cm_bin), "eval", trained.path, "--n", "2000", "--steps", "2", "--json"], capture_output=True, text=True, check=True)
    want = json.loads(cli.stdout.strip().splitlines()[-1])
    got = trained.metrics(n=2000, steps=2)
    assert got == pytest.approx(want, rel=1e-9)


def test_report_matches_the_component_functions(trained):
    x = trained.sample(2000, seed=4).astype(np.float64)
    r = cm.metrics.report(x, "ring8", n=2000)
    ref = cm.data.load("ring8", n=2000, seed=0xE7A1)  # the report's reference draw
    assert r["swd"] == pytest.approx(cm.metrics.swd(x, ref), rel=1e-12)
    assert r["energy"] == pytest.approx(cm.metrics.energy(x, ref), rel=1e-12)
    assert r["loglik"] == pytest.approx(float(cm.exact.mixture("ring8").log_density(x).mean()), rel=1e-9)


def test_lpips_needs_its_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("CM_LPIPS_DIR", str(tmp_path))
    imgs = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="32"):
        cm.metrics.lpips(imgs[:, :, :16, :16], imgs[:, :, :16, :16])
    try:
        d = cm.metrics.lpips(imgs, imgs)
    except cm.CmError as e:
        assert "cm data fetch lpips" in str(e)
    else:  # weights found beside the checkout (../shared): a distance to itself is 0
        assert d.shape == (2,) and np.allclose(d, 0, atol=1e-6)
        other = cm.metrics.lpips(imgs, imgs[::-1])
        assert (other > 0.01).all()
    with pytest.raises(cm.CmError, match="cannot read"):
        cm.metrics.lpips(imgs, imgs, weights=tmp_path / "missing.safetensors")
