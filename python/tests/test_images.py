"""Images: the 256-image MNIST fixture the Rust tests use and the tiny U-Net config."""

import numpy as np
import pytest

import consistency_models as cm
from conftest import FIXTURE, ROOT


def test_load_image_data():
    x, labels = cm.data.load(f"idx:{FIXTURE}", labels=True)
    assert x.shape == (256, 1, 28, 28) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert labels.shape == (256,) and labels.dtype == np.int64 and set(labels) <= set(range(10))
    y = cm.data.load(f"idx:{FIXTURE}", n=10, seed=1)
    assert y.shape == (10, 1, 28, 28)
    u = cm.to_uint8(x[:3])
    assert u.shape == (3, 28, 28) and u.dtype == np.uint8 and u.max() == 255
    assert cm.to_uint8(np.zeros((3, 5, 5))).shape == (5, 5, 3)


def test_data_errors(tmp_path):
    with pytest.raises(cm.CmError, match="unknown data set"):
        cm.data.load("no-such-data")
    with pytest.raises(cm.CmError):
        cm.data.load(f"idx:{tmp_path / 'missing'}")
    p = tmp_path / "pts.csv"
    p.write_text("x,y\n1,2\n3,4\n5,6\n")
    np.testing.assert_array_equal(cm.data.load(str(p)), [[1, 2], [3, 4], [5, 6]])
    assert set(cm.data.builtins()) >= {"ring8", "moons", "gmm1d"}


def test_train_and_sample_the_tiny_unet(tmp_path):
    cfg = cm.config.from_toml((ROOT / "configs" / "tiny" / "mnist-ict.toml").read_text())
    cfg["data"]["name"] = f"idx:{FIXTURE}"
    run = cm.train(cfg, tmp_path / "tiny", steps=2, progress=False)
    assert run.image_shape == (1, 28, 28) and run.dim == 784
    x = run.sample(5, steps=2, seed=1)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_array_equal(x[:2], cm.load(run.path).sample(2, steps=2, seed=1))
    d = run.denoise(x, 0.5)
    assert d.shape == x.shape
    m = run.metrics(n=64)
    assert m["fd_net"] == "FD-mnistnet" and m["fd"] > 0 and 0 < m["confidence"] <= 1
    # The image protocol: floors beside the figures, memorisation, the same as `cm eval`.
    assert m["floor"]["fd"] < m["fd"] and 0 <= m["memorised"] <= 1 and m["n"] == 64
    assert "rounded to 8 bits" in m["protocol"]
    assert "memorised" not in run.metrics(n=64, memorisation=False)
    # FID needs the user's Inception weights: a missing or unconverted file is a clear error.
    pth = tmp_path / "pt_inception.pth"
    pth.write_bytes(b"PK\x03\x04 pickle")
    with pytest.raises(Exception, match="not a safetensors file"):
        run.metrics(n=16, memorisation=False, fid_weights=pth)
    assert pth.read_bytes() == b"PK\x03\x04 pickle"


def test_class_conditional_sampling(tmp_path):
    cfg = cm.config.from_toml((ROOT / "configs" / "tiny" / "mnist-ict-cond.toml").read_text())
    cfg["data"]["name"] = f"idx:{FIXTURE}"
    run = cm.train(cfg, tmp_path / "cond", steps=2, progress=False)
    assert run.num_classes == 10
    balanced = run.sample(12, seed=2)
    fixed = run.sample(12, seed=2, classes=3)
    free = run.sample(12, seed=2, classes="none")
    assert balanced.shape == fixed.shape == free.shape == (12, 1, 28, 28)
    # Sample 3 has class 3 either way (balanced: i mod 10), so it is the same image.
    np.testing.assert_array_equal(balanced[3], fixed[3])
    with pytest.raises(ValueError, match="10 classes"):
        run.sample(2, classes=10)
    # Guidance: 1 is the conditional model; other scales change the samples; class agreement
    # is reported for class-conditional runs.
    np.testing.assert_array_equal(run.sample(4, seed=2, guidance=1.0), balanced[:4])
    m = run.metrics(n=32, guidance=2.0, memorisation=False)
    assert 0 <= m["class_agreement"] <= 1 and 0 <= m["class_agreement_floor"] <= 1
