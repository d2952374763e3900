"""PyTorch twin of `cm bench`: the same 2-D MLP and the same iCT / EDM training steps.

Install (CPU wheel): pip install torch numpy   (not needed by the tests)
Run side by side with the Rust figures, on the same machine:
    python3 bench/pytorch/bench_mlp.py --threads 2
    cargo run --release -- bench --json

The model mirrors src/nets/mlp.rs (defaults): positional time embedding (16 sin/cos pairs,
frequencies geometric 1..16) of c_noise = ln(sigma)/4 -> Linear(32,128) -> SiLU = e;
h = x; for each of 3 hidden layers: a = Linear(h) + Linear_mod(e); h = SiLU(a); out = Linear(h).
The parameterisation is the consistency one (METHODS.md section 1), sigma_d = 1, eps = 0.002.
The iCT step: pseudo-Huber, lognormal interval draws on a Karras grid, 1/dsigma weighting,
stop-gradient target (second forward without grad), RAdam lr 1e-3, grad clip 1.
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS, TMAX, SD = 0.002, 80.0, 1.0


class Mlp(nn.Module):
    def __init__(self, dim=2, hidden=512, depth=3, emb_dim=32, emb_hidden=128, max_freq=16.0):
        super().__init__()
        half = emb_dim // 2
        self.register_buffer("freqs", max_freq ** (torch.arange(half) / (half - 1)))
        self.temb = nn.Linear(emb_dim, emb_hidden)
        self.layers = nn.ModuleList([nn.Linear(dim if i == 0 else hidden, hidden) for i in range(depth)])
        self.mods = nn.ModuleList([nn.Linear(emb_hidden, hidden) for _ in range(depth)])
        self.out = nn.Linear(hidden, dim)

    def forward(self, x, c):
        a = c[:, None] * self.freqs[None]
        e = F.silu(self.temb(torch.cat([a.sin(), a.cos()], 1)))
        h = x
        for lin, mod in zip(self.layers, self.mods):
            h = F.silu(lin(h) + mod(e))
        return self.out(h)


def consistency_f(net, x, s):
    c_skip = SD**2 / ((s - EPS) ** 2 + SD**2)
    c_out = SD * (s - EPS) / torch.sqrt(SD**2 + s**2)
    c_in = 1 / torch.sqrt(s**2 + SD**2)
    return c_skip[:, None] * x + c_out[:, None] * net(c_in[:, None] * x, 0.25 * torch.log(s))


def edm_d(net, x, s):
    c_skip = SD**2 / (s**2 + SD**2)
    c_out = s * SD / torch.sqrt(s**2 + SD**2)
    c_in = 1 / torch.sqrt(s**2 + SD**2)
    return c_skip[:, None] * x + c_out[:, None] * net(c_in[:, None] * x, 0.25 * torch.log(s))


def karras(n):
    i = torch.arange(n, dtype=torch.float64)
    return (EPS ** (1 / 7) + i / (n - 1) * (TMAX ** (1 / 7) - EPS ** (1 / 7))) ** 7


def ring8(n):
    k = torch.randint(0, 8, (n,))
    a = 2 * math.pi * k / 8
    x = torch.stack([2 * a.cos(), 2 * a.sin()], 1) + 0.2 * torch.randn(n, 2)
    return x / 1.4283


def ict_step(net, opt, b, n_grid=11):
    g = karras(n_grid)
    cdf = torch.special.erf((g.log() + 1.1) / (math.sqrt(2) * 2.0))
    p = (cdf[1:] - cdf[:-1]).float()
    i = torch.multinomial(p, b, replacement=True)
    lo, hi = g[i].float(), g[i + 1].float()
    x0 = ring8(b)
    z = torch.randn_like(x0)
    with torch.no_grad():
        tgt = consistency_f(net, x0 + lo[:, None] * z, lo)
    est = consistency_f(net, x0 + hi[:, None] * z, hi)
    c = 0.00054 * math.sqrt(2)
    d = ((est - tgt) ** 2).sum(1).add(c * c).sqrt() - c
    loss = (d / (hi - lo)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def edm_step(net, opt, b):
    x0 = ring8(b)
    s = torch.exp(-1.2 + 1.2 * torch.randn(b))
    w = (s**2 + SD**2) / (s * SD) ** 2
    d = edm_d(net, x0 + s[:, None] * torch.randn_like(x0), s)
    loss = (w * ((d - x0) ** 2).mean(1)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = {}
    for name, fn in [("ict", ict_step), ("edm", edm_step)]:
        net = Mlp()
        opt = torch.optim.RAdam(net.parameters(), lr=1e-3)
        for _ in range(10):
            fn(net, opt, 512)
        t = time.perf_counter()
        for _ in range(args.steps):
            fn(net, opt, 512)
        res[f"train_{name}_mlp512_b512_steps_per_s"] = args.steps / (time.perf_counter() - t)
    net.eval()
    with torch.no_grad():
        for b, reps in [(1, 2000), (256, 200)]:
            for _ in range(10):
                consistency_f(net, TMAX * torch.randn(b, 2), torch.full((b,), TMAX))
            t = time.perf_counter()
            for _ in range(reps):
                consistency_f(net, TMAX * torch.randn(b, 2), torch.full((b,), TMAX))
            res[f"sample_1step_batch{b}_latency_ms"] = (time.perf_counter() - t) * 1e3 / reps
    for k, v in sorted(res.items()):
        print(f"{k:<40} {v:.4f}")
    import json

    print(json.dumps(res))


if __name__ == "__main__":
    main()
