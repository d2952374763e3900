"""Shared fixtures: a small 2-D run trained once per session, paths into the checkout.

The tests run against the installed wheel (`.ci/run` builds and installs it into a fresh
virtual environment), never against the source folder python/consistency_models, which has no
compiled module.
"""

import os
import pathlib

import pytest

import consistency_models as cm

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mnist-t10k-256-images-idx3-ubyte"


def small_config(steps=60, seed=0, method="ict", **train):
    """A few seconds of iCT on ring8 with a small MLP (the Rust tests' `small_cfg`)."""
    t = {"steps": steps, "seed": seed, "log_every": 10, "ckpt_every": 30, "keep_ckpts": 2}
    t.update(train)
    return {
        "data": {"name": "ring8", "batch": 128},
        "model": {"hidden": 64, "depth": 2},
        "method": {"name": method},
        "train": t,
    }


def cm_binary():
    """The `cm` binary built by `cargo test --release` (CM_BIN overrides), or None."""
    p = pathlib.Path(os.environ.get("CM_BIN", ROOT / "target" / "release" / "cm"))
    return p if p.is_file() and os.access(p, os.X_OK) else None


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ring8"
    return cm.train(small_config(), out, progress=False)


@pytest.fixture
def cm_bin():
    b = cm_binary()
    if b is None:
        pytest.skip("the cm binary is not built (cargo build --release, or set CM_BIN)")
    return b
