"""Configs: dict / TOML / file round trips and the CLI's error messages."""

import subprocess

import pytest

import consistency_models as cm
from conftest import small_config


@pytest.mark.parametrize("method", cm.config.methods())
def test_every_default_round_trips(method):
    d = cm.config.default(method)
    assert d["method"]["name"] == method
    assert cm.config.parse(d) == d
    assert cm.config.parse(cm.config.to_toml(d)) == d


def test_partial_dicts_take_defaults(tmp_path):
    c = cm.config.parse({"train": {"steps": 5}})
    assert c["train"]["steps"] == 5 and c == cm.config.parse(cm.config.to_toml(c))
    assert c["data"]["name"] == "ring8" and c["model"]["kind"] == "mlp"
    assert cm.config.parse(None) == cm.config.parse({}) == cm.config.parse("")
    p = tmp_path / "c.toml"
    p.write_text("[train]\nsteps = 7\n")
    assert cm.config.parse(p)["train"]["steps"] == 7
    assert cm.config.parse(str(p)) == cm.config.parse("[train]\nsteps = 7\n")


def test_presets():
    c = cm.config.default("ct", preset="cifar10")
    assert c["method"]["name"] == "ct"
    with pytest.raises(cm.ConfigError):
        cm.config.default("ict", preset="no-such-preset")


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"train": {"stepz": 3}}, "stepz"),
        ({"data": {"batchsize": 3}}, "batchsize"),
        ({"model": {"hiden": 3}}, "hiden"),
        ({"method": {"name": "ict", "s00": 3}}, "s00"),
        ({"extra": {}}, "extra"),
        ({"train": {"lr": -1.0}}, "train.lr"),
        ({"model": {"dropout": 1.5}}, "model.dropout"),
        ({"data": {"batch": 0}}, "data.batch"),
        ({"method": {"name": "ictt"}}, "ictt"),
        ({"model": {"kind": "cnn"}}, "cnn"),
        ({"train": {"lr": None}}, "train.lr"),
        ({"train": {"steps": "many"}}, "steps"),
    ],
)
def test_errors_name_the_field(bad, field):
    with pytest.raises(cm.ConfigError) as e:
        cm.config.parse(bad)
    assert isinstance(e.value, ValueError)
    assert field in str(e.value)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(FileNotFoundError):
        cm.config.parse(tmp_path / "missing.toml")
    with pytest.raises(TypeError):
        cm.config.parse(42)


def test_train_refuses_a_bad_config_before_writing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(cm.ConfigError, match="train.lr"):
        cm.train({"train": {"lr": 0.0}}, out, progress=False)
    with pytest.raises(cm.ConfigError, match="stepz"):
        cm.train("[train]\nstepz = 1\n", out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    "text",
    ["[train]\nstepz = 3\n", "[train]\nlr = -1.0\n", "[model]\nkind = \"unet\"\nmults = []\n", "[data]\nbatch = 0\n"],
)
def test_messages_are_the_clis(text, tmp_path, cm_bin):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(cm.ConfigError) as e:
        cm.train(p, tmp_path / "out", progress=False)
    r = subprocess.run([str(cm_bin), "train", str(p), "--out", str(tmp_path / "out2")], capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip() == f"error: {e.value}"


def test_run_folder_keeps_its_config(trained, tmp_path):
    on_disk = (tmp_path / "x.toml")
    on_disk.write_text(trained.config_toml)
    assert cm.config.parse(on_disk) == trained.config
    assert cm.config.parse(small_config()) == trained.config
