"""Train a consistency model on points made by your own code, then sample and measure it.

    pip install ./python            # from the checkout, once
    python examples/python/train_on_numpy.py [OUT]

The array goes straight into `cm.train(..., data=array)`: it is stored in the run folder as
data.npy (so the run can be loaded and continued later), standardised like any data file, and
samples come back in the array's own units.
"""

import os
import sys

import numpy as np

import consistency_models as cm

out = sys.argv[1] if len(sys.argv) > 1 else "runs/numpy-spiral"
steps = int(os.environ.get("CM_EXAMPLE_STEPS", "1500"))

# Your data: a noisy 2-D spiral in arbitrary units (any (N, D) float array works).
rng = np.random.default_rng(0)
t = np.sqrt(rng.uniform(0, 1, 20_000)) * 3 * np.pi
spiral = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) * 10 + rng.normal(0, 2, (20_000, 2)) + [100, -50]

run = cm.train(
    {"method": {"name": "ict"}, "model": {"hidden": 256, "depth": 3}, "data": {"batch": 256}},
    out=out,
    steps=steps,
    data=spiral,
    progress=True,
)
print(f"trained {run.step} steps in {run.seconds:.1f}s, final loss {run.final_loss:.4f}")

for k in (1, 2):
    x = run.sample(5000, steps=k, seed=0)
    print(f"{k}-step: SWD to the data {cm.metrics.swd(x, spiral[:5000]):.3f}, "
          f"energy {cm.metrics.energy(x, spiral[:5000]):.4f} (data units)")
print(f"two halves of the data: SWD {cm.metrics.swd(spiral[:5000], spiral[5000:10000]):.3f}")

try:
    import matplotlib.pyplot as plt

    x = run.sample(5000, steps=2)
    fig, ax = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    ax[0].scatter(*spiral[:5000].T, s=1)
    ax[0].set_title("data")
    ax[1].scatter(*x.T, s=1)
    ax[1].set_title("2-step samples")
    fig.savefig(os.path.join(out, "numpy-example.png"), dpi=80)
    print(f"plot: {out}/numpy-example.png")
except ImportError:
    pass
