"""Twin of examples/convbench.rs: 3x3 same convolutions at the MNIST U-Net's shapes (batch 64),
forward and forward + backward (loss = mean of y², gradients of x and w), PyTorch with its
defaults (2 threads, as on the 2-core machines of bench/RESULTS.md). Prints ms."""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def timed(name, n, f):
    for _ in range(2):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    print(f"  torch {name}: {(time.perf_counter() - t) / n * 1e3:.2f} ms")


for bs, c, o, hw in [(64, 16, 16, 28), (64, 32, 32, 14), (64, 48, 16, 28), (64, 1, 16, 28)]:
    print(f"shape b{bs} c{c} o{o} {hw}px")
    x = torch.randn(bs, c, hw, hw)
    w = torch.randn(o, c, 3, 3) * 0.1
    b = torch.randn(o)

    def fwd_bwd():
        xa, wa, ba = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
        y = F.conv2d(xa, wa, ba, padding=1)
        y.square().mean().backward()
        return xa.grad.sum() + wa.grad.sum()

    timed("conv2d fwd+bwd", 10, fwd_bwd)
    with torch.no_grad():
        timed("conv2d fwd", 20, lambda: F.conv2d(x, w, b, padding=1).sum())
