"""The examples in examples/python run (shortened)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

EX = ROOT / "examples" / "python"


def test_train_on_numpy_example(tmp_path):
    env = dict(os.environ, CM_EXAMPLE_STEPS="60", MPLBACKEND="Agg")
    r = subprocess.run(
        [sys.executable, str(EX / "train_on_numpy.py"), str(tmp_path / "spiral")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "trained 60 steps" in r.stdout and "2-step: SWD" in r.stdout


def test_torch_example(trained):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    r = subprocess.run([sys.executable, str(EX / "torch_wrapper.py"), trained.path], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "samples: (8, 2)" in r.stdout and "EMA tensors" in r.stdout
