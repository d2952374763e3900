"""PyTorch twin of `cm bench`: the same 2-D MLP and the same iCT / EDM / sCT training steps.

Install (CPU wheel): pip install torch numpy   (not needed by the tests)
Run side by side with the Rust figures, on the same machine:
    python3 bench/pytorch/bench_mlp.py --threads 2
    cargo run --release -- bench --json
On a GPU (tools/gpu-check.sh), against `cm bench --device cuda` of a `--features cuda` build:
    python3 bench/pytorch/bench_mlp.py --device cuda

The model mirrors src/nets/mlp.rs (defaults): positional time embedding (16 sin/cos pairs,
frequencies geometric 1..16) of c_noise = ln(sigma)/4 -> Linear(32,128) -> SiLU = e;
h = x; for each of 3 hidden layers: a = Linear(h) + Linear_mod(e); h = SiLU(a); out = Linear(h).
The parameterisation is the consistency one (METHODS.md section 1), sigma_d = 1, eps = 0.002.
The iCT step: pseudo-Huber, lognormal interval draws on a Karras grid, 1/dsigma weighting,
stop-gradient target (second forward without grad), RAdam lr 1e-3, grad clip 1, and the
doubling curriculum N(k) of src/schedule.rs `ict_n` over the bench's steps + 10 (as `cm bench`).
Every step ends with the evaluation EMA (decay 0.999) of all parameters, as src/train.rs does.
The sCT step (src/objectives/scm.rs, TrigFlow, sigma_d = 1): t = atan(exp(tau)), tau ~ N(-1, 1.4^2),
the JVP of the stop-gradient network along (cos t sin t dx_t/dt, cos t sin t) by torch.func.jvp,
tangent warm-up r = min(1, step/1000), g/(|g| + 0.1), learned weighting head on 8 sin/cos pairs.
Also printed: the MLP's JVP/forward time ratio at batch 512 (`mlp512_b512_jvp_over_forward`).
"""
# PyTorch runs with its own defaults (issue 15): no OMP_WAIT_POLICY or other environment
# tweak. (Earlier versions set OMP_WAIT_POLICY=PASSIVE, which slowed PyTorch on an idle machine.)
import os
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


def ict_n(k, total, s0=10, s1=1280):
    stages = math.floor(math.log2(s1 // s0)) + 1
    kp = max(total // stages, 1)
    return min(s0 * 2 ** min(k // kp, 62), s1) + 1


def karras(n):
    i = torch.arange(n, dtype=torch.float64)
    return (EPS ** (1 / 7) + i / (n - 1) * (TMAX ** (1 / 7) - EPS ** (1 / 7))) ** 7


def ring8(n):
    k = torch.randint(0, 8, (n,))
    a = 2 * math.pi * k / 8
    x = torch.stack([2 * a.cos(), 2 * a.sin()], 1) + 0.2 * torch.randn(n, 2)
    return x / 1.4283


def ema_update(ema, net, mu=0.999):
    with torch.no_grad():
        torch._foreach_lerp_(ema, list(net.parameters()), 1 - mu)


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


TRIG_T_MIN, TRIG_T_MAX = 1e-4, math.pi / 2 - 1e-4


class WeightHead(nn.Module):
    """sCM's learned weighting w(t) = Linear(2K, 1) on [sin(w t), cos(w t)], zero-initialised."""

    def __init__(self, k=8):
        super().__init__()
        self.register_buffer("freqs", 16.0 ** (torch.arange(k) / (k - 1)))
        self.lin = nn.Linear(2 * k, 1)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, t):
        a = t[:, None] * self.freqs[None]
        return self.lin(torch.cat([a.sin(), a.cos()], 1))[:, 0]


def sct_step(net, head, opt, b, step, warmup=1000):
    x0 = ring8(b)
    t = torch.atan(torch.exp(-1.0 + 1.4 * torch.randn(b))).clamp(TRIG_T_MIN, TRIG_T_MAX)
    z = torch.randn_like(x0)
    cos, sin = t.cos()[:, None], t.sin()[:, None]
    x_t = cos * x0 + sin * z
    dxdt = cos * z - sin * x0
    r = min(1.0, step / warmup)
    cs = (t.cos() * t.sin())
    params = {k: v.detach() for k, v in net.named_parameters()}
    fn = lambda x, c: torch.func.functional_call(net, params, (x, c))
    f_sg, jac = torch.func.jvp(fn, (x_t, t), (cs[:, None] * dxdt, cs))
    g = -(cos**2) * (f_sg - dxdt) - r * (cs[:, None] * x_t + jac)
    sct_update(net, head, opt, f_sg, g, net(x_t, t), t)


def sct_update(net, head, opt, f_sg, g, f, t):
    """The end of an sCT step (here and bench_unet.py's): the normalised tangent g/(|g| + 0.1),
    the stop-gradient target F_sg + g, the learned weighting's loss on the student's output f,
    and the clipped optimizer step."""
    g = g / (g.norm(dim=1, keepdim=True) + 0.1)
    target = (f_sg + g).detach()
    err = ((f - target) ** 2).sum(1) / f.shape[1]
    w = head(t)
    loss = (w.exp() * err - w).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(net.parameters()) + list(head.parameters()), 1.0)
    opt.step()


def sync():
    """Waits for queued GPU work, so that a clock read covers it (a no-op on the CPU)."""
    if torch.cuda.is_available() and torch.get_default_device().type == "cuda":
        torch.cuda.synchronize()


def jvp_vs_forward(net, b=512, reps=200):
    """ms per no-grad forward and per torch.func.jvp of the MLP, timed in alternation."""
    x, dx, c, dc = torch.randn(b, 2), torch.randn(b, 2), torch.randn(b), torch.ones(b)
    params = {k: v.detach() for k, v in net.named_parameters()}
    fn = lambda x, c: torch.func.functional_call(net, params, (x, c))
    tf = tj = 0.0
    with torch.no_grad():
        for i in range(reps + 5):
            sync()
            t0 = time.perf_counter()
            net(x, c)
            sync()
            t1 = time.perf_counter()
            torch.func.jvp(fn, (x, c), (dx, dc))
            sync()
            t2 = time.perf_counter()
            if i >= 5:
                tf += t1 - t0
                tj += t2 - t1
    return tf * 1e3 / reps, tj * 1e3 / reps


def reset_peak_rss():
    """Resets the process's peak RSS (Linux: 5 into /proc/self/clear_refs), as `cm bench` does
    before each figure, so the figure's peak_rss_mb is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb():
    """Peak resident set size since the last reset, MiB (VmHWM), or None without /proc."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where every tensor is made (torch.set_default_device)")
    args = ap.parse_args()
    torch.set_default_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = {}
    total = args.steps + 10
    for name in ["ict", "edm", "sct"]:
        reset_peak_rss()
        net = Mlp()
        head = WeightHead()
        params = list(net.parameters()) + (list(head.parameters()) if name == "sct" else [])
        opt = torch.optim.RAdam(params, lr=1e-3)
        ema = [p.detach().clone() for p in net.parameters()]

        def one(k):
            if name == "ict":
                ict_step(net, opt, 512, n_grid=ict_n(k, total))
            elif name == "edm":
                edm_step(net, opt, 512)
            else:
                sct_step(net, head, opt, 512, k)
            ema_update(ema, net)

        for k in range(10):
            one(k)
        sync()
        t = time.perf_counter()
        for k in range(10, total):
            one(k)
        sync()
        res[f"train_{name}_mlp512_b512_steps_per_s"] = args.steps / (time.perf_counter() - t)
        if peak_rss_mb() is not None:
            res[f"train_{name}_mlp512_b512_peak_rss_mb"] = peak_rss_mb()
        if name == "ict":
            ict_net = net
    net = ict_net
    fwd, jvp = jvp_vs_forward(net)
    res["mlp512_b512_forward_ms"] = fwd
    res["mlp512_b512_jvp_ms"] = jvp
    res["mlp512_b512_jvp_over_forward"] = jvp / fwd
    net.eval()
    with torch.no_grad():
        for b, reps in [(1, 2000), (256, 200)]:
            for _ in range(10):
                consistency_f(net, TMAX * torch.randn(b, 2), torch.full((b,), TMAX))
            sync()
            t = time.perf_counter()
            for _ in range(reps):
                consistency_f(net, TMAX * torch.randn(b, 2), torch.full((b,), TMAX))
            sync()
            res[f"sample_1step_batch{b}_latency_ms"] = (time.perf_counter() - t) * 1e3 / reps
    for k, v in sorted(res.items()):
        print(f"{k:<40} {v:.4f}")
    import json

    print(json.dumps(res))


if __name__ == "__main__":
    main()
