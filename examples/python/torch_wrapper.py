"""A trained model as a PyTorch-callable function, e.g. in a notebook next to torch code.

    pip install ./python torch
    python examples/python/torch_wrapper.py RUN_FOLDER_OR_CHECKPOINT

Two ways:
1. `CMGenerator` / `CMDenoiser`: torch tensors in and out, computed by the Rust library
   (no gradients flow through it: it is a fixed, trained function). Tensors cross through
   NumPy without a copy on the way out (`torch.from_numpy`).
2. The raw weights: a run's checkpoint is a safetensors file, so `safetensors.torch.load_file`
   gives every tensor under `ema/<name>` (also `online/`, `target/`, `adam_m/`, `adam_v/`), e.g.
   to initialise your own PyTorch re-implementation of the network.
"""

import sys

import numpy as np
import torch

import consistency_models as cm


class CMDenoiser(torch.nn.Module):
    """D(x, σ) of a trained model as a torch module (data coordinates, float32)."""

    def __init__(self, model: cm.Model) -> None:
        super().__init__()
        self.model = model

    @torch.no_grad()
    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = sigma.detach().cpu().numpy() if torch.is_tensor(sigma) else sigma
        y = self.model.denoise(x.detach().cpu().numpy(), s)
        return torch.from_numpy(y).to(x.device)


class CMGenerator(torch.nn.Module):
    """n samples from `steps` network evaluations, as a torch tensor."""

    def __init__(self, model: cm.Model, steps: int = 1) -> None:
        super().__init__()
        self.model, self.steps = model, steps

    @torch.no_grad()
    def forward(self, n: int, seed: int = 0) -> torch.Tensor:
        return torch.from_numpy(self.model.sample(n, steps=self.steps, seed=seed))


def main(path: str) -> None:
    model = cm.load(path)
    gen, den = CMGenerator(model, steps=2), CMDenoiser(model)
    x = gen(8, seed=0)
    print("samples:", tuple(x.shape), x.dtype)
    noisy = x + 0.5 * torch.randn_like(x)
    print("denoised:", tuple(den(noisy, 0.5).shape))

    # The checkpoint's tensors in torch, under the documented key layout.
    import glob
    import os

    from safetensors.torch import load_file

    ckpt = path if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "ckpt-*.safetensors")))[-1]
    tensors = load_file(ckpt)
    ema = {k[len("ema/"):]: v for k, v in tensors.items() if k.startswith("ema/")}
    for name, w in model.weights().items():
        assert np.array_equal(ema[name].numpy(), w), name
    print(f"{len(ema)} EMA tensors in {os.path.basename(ckpt)}, e.g.",
          ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(ema.items())[:3]))


if __name__ == "__main__":
    main(sys.argv[1])
