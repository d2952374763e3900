"""train(): config forms, progress, resume, user arrays, the GIL and Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import consistency_models as cm
from conftest import small_config


def same_weights(a, b):
    wa, wb = a.weights(), b.weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_dict_toml_and_path_train_the_same_run(trained, tmp_path):
    text = cm.config.to_toml(small_config())
    p = tmp_path / "c.toml"
    p.write_text(text)
    a = cm.train(text, tmp_path / "a", progress=False)
    b = cm.train(p, tmp_path / "b", progress=False)
    assert same_weights(a, trained) and same_weights(b, trained)
    assert isinstance(a, cm.Run) and a.step == 60 and len(a.history) == 6 and a.seconds > 0
    assert not same_weights(cm.train(small_config(seed=1), tmp_path / "c", progress=False), trained)


def test_resume_continues_bit_for_bit(trained, tmp_path):
    out = tmp_path / "r"

    def stop_at_30(p):
        if p.step == 30:
            raise KeyboardInterrupt

    # (steps=30 would be another run: curricula are functions of k / train.steps.)
    with pytest.raises(KeyboardInterrupt):
        cm.train(small_config(), out, progress=stop_at_30)
    assert cm.load(out).step == 30
    full = cm.train(small_config(), out, progress=False)
    assert full.step == 60 and same_weights(full, trained)
    with pytest.raises(cm.CmError, match="model.hidden"):
        cm.train({**small_config(), "model": {"hidden": 32, "depth": 2}}, out, progress=False)


def test_progress_callback(tmp_path):
    seen = []
    run = cm.train(small_config(steps=25), tmp_path / "p", progress=seen.append, progress_every=5)
    assert [p.step for p in seen] == [5, 10, 15, 20, 25]
    assert all(isinstance(p, cm.Progress) and p.total == 25 and np.isfinite(p.loss) for p in seen)
    assert run.step == 25


def test_progress_bar_does_not_fail(tmp_path, capsys):
    cm.train(small_config(steps=20), tmp_path / "bar", progress=True, progress_every=5)
    assert "20" in capsys.readouterr().err


def test_a_raising_callback_stops_with_a_checkpoint(tmp_path):
    out = tmp_path / "stop"

    def cb(p):
        if p.step == 12:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        cm.train(small_config(), out, progress=cb, progress_every=4)
    assert cm.load(out).step == 12
    # The stop request does not leak into the next run.
    assert cm.train(small_config(), out, progress=False).step == 60


def test_train_on_a_numpy_array(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 4000)
    pts = np.stack([np.cos(t), np.sin(t), 0.1 * rng.standard_normal(4000)], axis=1) * 5 + 10
    out = tmp_path / "mine"
    cfg = {"model": {"hidden": 64, "depth": 2}, "data": {"batch": 128}, "train": {"steps": 40}}
    run = cm.train(cfg, out, data=pts, progress=False)
    assert run.dim == 3 and run.config["data"]["name"].endswith("data.npy")
    x = run.sample(500)
    assert x.shape == (500, 3)
    assert abs(float(x.mean()) - float(pts.mean())) < 5  # mapped back to the data's units
    np.testing.assert_array_equal(np.load(out / "data.npy"), pts)
    # The same array again continues the run; other data in the same folder is refused.
    assert cm.train(cfg, out, data=pts, steps=50, progress=False).step == 50
    with pytest.raises(cm.CmError, match="holds other data"):
        cm.train(cfg, out, data=pts[:100], progress=False)
    with pytest.raises(ValueError, match="non-finite"):
        cm.train(cfg, tmp_path / "nan", data=np.full((10, 2), np.nan), progress=False)


def test_the_gil_is_released_while_training(tmp_path):
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.05)
        before = ticks[0]
        t0 = time.monotonic()
        cm.train(small_config(steps=1500), tmp_path / "gil", progress=False)
        during = ticks[0] - before
        secs = time.monotonic() - t0
    finally:
        stop.set()
        th.join()
    # A thread that never got the GIL back would tick a handful of times at most (one switch
    # interval, 5 ms, at the start); a free one ticks millions of times per second. No bound
    # on the training time itself: it depends on the machine.
    assert during > 10_000, (during, secs)


CTRL_C = textwrap.dedent(
    """
    import os, signal, sys, threading
    import consistency_models as cm
    # Python's own handler, as in any interactive session: a process started from a
    # background job (`cmd &` in a script, as CI runners may do) inherits SIGINT ignored, and
    # then Python installs no handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[2])
    from conftest import small_config
    go = threading.Event()
    def fire():
        go.wait()
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=fire, daemon=True).start()
    def cb(p):
        if p.step >= 20:
            go.set()
    try:
        cm.train(small_config(steps=100000, ckpt_every=100000), sys.argv[1], progress=cb, progress_every=5)
        print("finished?")
    except KeyboardInterrupt as e:
        print("interrupted:", e, flush=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    try:
        os.kill(os.getpid(), signal.SIGINT)
        import time; time.sleep(2)
        print("handler not restored")
    except KeyboardInterrupt:
        print("python handler restored")
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_checkpoints_and_raises_keyboard_interrupt(tmp_path):
    out = tmp_path / "ctrlc"
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [sys.executable, "-c", CTRL_C, str(out), here], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert "interrupted: stopped by SIGINT at step" in r.stdout, r.stdout + r.stderr
    assert "python handler restored" in r.stdout
    step = int(r.stdout.split("at step ")[1].split(":")[0])
    assert step >= 20 and cm.load(out).step == step
    # Training again with the same config continues from that checkpoint.
    again = cm.train(small_config(steps=step + 10, ckpt_every=100000), out, progress=False)
    assert again.step == step + 10
