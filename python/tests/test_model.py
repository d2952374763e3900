"""load / sample / denoise / metrics / weights of a trained run."""

import glob
import os

import numpy as np
import pytest

import consistency_models as cm


def ckpts(run):
    return sorted(glob.glob(os.path.join(run.path, "ckpt-*.safetensors")))


def test_sample_shape_dtype_and_range(trained):
    x = trained.sample(100)
    assert x.shape == (100, 2) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert trained.sample(0).shape == (0, 2)
    # Data coordinates: ring8 has radius 2, far from the standardised scale.
    assert 0.5 < np.abs(trained.sample(2000, steps=2)).max() < 20


def test_samples_depend_only_on_seed_and_index(trained):
    a = trained.sample(300, seed=3)
    np.testing.assert_array_equal(a, trained.sample(300, seed=3))
    np.testing.assert_array_equal(a, trained.sample(300, seed=3, batch=7))
    np.testing.assert_array_equal(a[:50], trained.sample(50, seed=3))
    assert not np.array_equal(a, trained.sample(300, seed=4))


def test_steps_times_and_weights_choice(trained):
    one, two = trained.sample(200, steps=1), trained.sample(200, steps=2)
    assert not np.array_equal(one, two)
    # iCT's 2-step walk is T -> 0.821 -> eps: the same walk given as times.
    np.testing.assert_array_equal(two, trained.sample(200, times=[0.821]))
    assert not np.array_equal(one, trained.sample(200, ema=False))


def test_sample_argument_errors(trained):
    with pytest.raises(ValueError, match="guidance 2 needs a class-conditional run"):
        trained.sample(4, guidance=2.0)
    with pytest.raises(ValueError, match="unconditional"):
        trained.sample(4, classes=3)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        trained.sample(4, steps=0)
    with pytest.raises(ValueError, match="n must be an integer"):
        trained.sample(2.5)
    with pytest.raises(ValueError, match="gamma"):
        trained.sample(4, gamma=0.5)  # CTM's option: iCT rejects it like `cm sample --gamma`


def test_load_folder_and_checkpoint_give_the_same_model(trained):
    m = cm.load(trained.path)
    assert m.step == 60 and m.method == "ict" and m.dim == 2 and m.image_shape is None
    np.testing.assert_array_equal(m.sample(100, seed=1), trained.sample(100, seed=1))
    c = cm.load(ckpts(trained)[-1])
    np.testing.assert_array_equal(c.sample(100, seed=1), trained.sample(100, seed=1))
    older = cm.load(ckpts(trained)[0])
    assert older.step == 30
    assert "ict" in repr(m)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        cm.load(tmp_path / "nope")
    with pytest.raises(cm.CmError, match="no checkpoint"):
        cm.load(tmp_path)
    bad = tmp_path / "ckpt-00000001.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(cm.CmError, match="safetensors"):
        cm.load(bad)


def test_config_is_the_resolved_dict(trained):
    c = trained.config
    assert c["model"]["hidden"] == 64 and c["train"]["steps"] == 60 and c["method"]["name"] == "ict"
    assert c == cm.config.parse(c)
    c["train"]["steps"] = 1  # a copy
    assert trained.config["train"]["steps"] == 60


def test_denoise(trained):
    g = cm.exact.mixture("ring8")
    x0 = g.sample(500, seed=2)
    # At the smallest noise level a consistency function is (nearly) the identity.
    np.testing.assert_allclose(trained.denoise(x0, 0.002), x0, atol=0.02)
    d = trained.denoise(x0 + 0.1, np.linspace(0.01, 10.0, 500))
    assert d.shape == (500, 2) and d.dtype == np.float32 and np.isfinite(d).all()
    with pytest.raises(ValueError, match="2 values per sample"):
        trained.denoise(np.zeros((3, 3)), 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        trained.denoise(np.array([[0.0, np.nan]]), 1.0)
    with pytest.raises(ValueError, match="positive"):
        trained.denoise(np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="one value per row"):
        trained.denoise(np.zeros((2, 2)), [1.0, 2.0, 3.0])


def test_metrics(trained):
    m = trained.metrics(n=2000, steps=2)
    assert set(m) >= {"swd", "mmd", "energy", "loglik", "nfe"}
    assert m["nfe"] == 2 and m["swd"] > 0
    with pytest.raises(ValueError, match="fid_weights applies to image runs"):
        trained.metrics(n=100, fid_weights="inception.safetensors")


def test_weights_are_the_checkpoint_tensors(trained):
    st = pytest.importorskip("safetensors.numpy")
    t = st.load_file(ckpts(trained)[-1])
    w = trained.weights()
    assert w and all(v.dtype == np.float32 for v in w.values())
    for name, v in w.items():
        np.testing.assert_array_equal(t[f"ema/{name}"], v)
    for name, v in trained.weights(ema=False).items():
        np.testing.assert_array_equal(t[f"online/{name}"], v)
    groups = {k.split("/")[0] for k in t}
    assert groups == {"online", "target", "ema", "adam_m", "adam_v"}
