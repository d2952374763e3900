"""Twin of examples/mmbench.rs: a @ b at the 2-D MLP's shapes, PyTorch with its defaults
(2 threads, as on the 2-core machines of bench/RESULTS.md). Prints ms and GFLOP/s."""
import time

import torch

torch.set_num_threads(2)
for m, k, n in [(512, 512, 512), (512, 128, 1024), (512, 32, 128), (512, 2, 512), (512, 512, 2)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(10):
        a @ b
    reps = 200
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    s = (time.perf_counter() - t) / reps
    print(f"torch {m}x{k}x{n}: {s * 1e3:.3f} ms, {2 * m * k * n / s / 1e9:.1f} GFLOP/s")
