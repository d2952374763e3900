"""PyTorch twin of `cm bench`'s U-Net figure: the MNIST configs' U-Net and the same iCT step.

Install (CPU wheel): pip install torch numpy   (not needed by the tests)
Run from the repository root, side by side with the Rust figure on the same machine:
    python3 bench/pytorch/bench_unet.py --threads 2
    cargo run --release -- bench --json        # train_ict_unet16_mnist28_b64_steps_per_s
    python3 bench/pytorch/bench_unet.py --recipe          # train_ict_unet_recipe_mnist28_b64_steps_per_s
    python3 bench/pytorch/bench_unet.py [--recipe] --flops  # FLOPs of a forward and of a step
                                                           # (torch.utils.flop_counter), which
                                                           # the Rust analytic counts must equal
    python3 bench/pytorch/bench_unet.py [--recipe] --method sct  # train_sct_...: sCT's step, the
                                                           # exact JVP by torch.func.jvp
On a GPU (tools/gpu-check.sh): --device cuda [--batch 256] (the figure's name carries the batch).

`--recipe` is the image recipes' U-Net instead (configs/mnist-edm.toml and its students): base
16, mults [1, 2, 2], middle self-attention (GroupNorm -> 1x1 qkv conv -> single-head softmax
attention with 1/sqrt(C) -> zero-initialised 1x1 proj -> (x + o)/sqrt(2)), 10 classes (one-hot
labels times sqrt(10) through Linear(10, 64), Xavier weights and zero bias as EDM's map_label,
added to the first time-embedding layer's output before its SiLU; 10 % of training labels
dropped to the all-zero row).

The model mirrors src/nets/unet.rs with base 16, mults [1, 2], one residual block, no attention,
28-px single-channel images, batch 64: 3x3 conv_in; residual blocks GroupNorm(C/4 groups) -> SiLU
-> conv3x3 -> GroupNorm -> h*(1+scale)+shift from Linear(emb) -> SiLU -> conv3x3, 1x1 skip conv
when widths differ, (h + skip)/sqrt(2); 2x2 average-pool down, nearest x2 up; decoder blocks on
concatenated skips; GroupNorm -> SiLU -> zero-initialised conv_out. Time embedding: 16 sin/cos
pairs of c_noise = ln(sigma)/4 (frequencies geometric 1..16) -> Linear(32, 64) -> SiLU ->
Linear(64, 64) -> SiLU. The iCT step is bench_mlp.py's (pseudo-Huber c = 0.00054 sqrt(784),
lognormal Karras-grid intervals, 1/dsigma weighting, stop-gradient target, RAdam, grad clip 1,
evaluation EMA 0.999) on images from tests/fixtures scaled to [-1, 1], sigma_d = 0.5.
"""
# PyTorch runs with its own defaults (issue 15): no OMP_WAIT_POLICY or other environment
# tweak. (Earlier versions set OMP_WAIT_POLICY=PASSIVE, which slowed PyTorch on an idle machine.)
import os
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The curriculum and grid are bench_mlp.py's (same directory; EPS and TMAX agree).
from bench_mlp import TRIG_T_MAX, TRIG_T_MIN, WeightHead, ict_n, karras, peak_rss_mb, reset_peak_rss, sct_update

EPS, TMAX, SD = 0.002, 80.0, 0.5
FIXTURE = "tests/fixtures/mnist-t10k-256-images-idx3-ubyte"


def gn(c):
    return nn.GroupNorm(min(c // 4, 32), c, eps=1e-5)


class Block(nn.Module):
    def __init__(self, i, o, e):
        super().__init__()
        self.norm1, self.conv1 = gn(i), nn.Conv2d(i, o, 3, padding=1)
        self.emb = nn.Linear(e, 2 * o)
        self.norm2, self.conv2 = gn(o), nn.Conv2d(o, o, 3, padding=1)
        self.skip = nn.Conv2d(i, o, 1) if i != o else None
        self.o = o

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        m = self.emb(e)
        sc, sh = m[:, : self.o, None, None], m[:, self.o :, None, None]
        h = F.silu(self.norm2(h) * (1 + sc) + sh)
        h = self.conv2(h)
        s = self.skip(x) if self.skip is not None else x
        return (h + s) / math.sqrt(2)


class Attn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm, self.qkv, self.proj = gn(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=2)
        o = (a @ v).transpose(1, 2).reshape(b, c, h, w)
        return (x + self.proj(o)) / math.sqrt(2)


class Unet(nn.Module):
    def __init__(self, base=16, mults=(1, 2), res_blocks=1, emb_dim=32, max_freq=16.0, attention=False, classes=0):
        super().__init__()
        half = emb_dim // 2
        self.register_buffer("freqs", max_freq ** (torch.arange(half) / (half - 1)))
        e = 4 * base
        self.temb1, self.temb2 = nn.Linear(emb_dim, e), nn.Linear(e, e)
        self.classes = classes
        if classes:
            self.label = nn.Linear(classes, e)
            nn.init.xavier_normal_(self.label.weight)
            nn.init.zeros_(self.label.bias)
        c0 = base * mults[0]
        self.conv_in = nn.Conv2d(1, c0, 3, padding=1)
        self.enc, self.enc_down, skips, ch = nn.ModuleList(), [], [c0], c0
        for l, m in enumerate(mults):
            for r in range(res_blocks):
                self.enc.append(Block(ch, base * m, e))
                ch = base * m
                last = r + 1 == res_blocks and l + 1 < len(mults)
                self.enc_down.append(last)
                skips += [ch, ch] if last else [ch]
        self.mid1, self.mid2 = Block(ch, ch, e), Block(ch, ch, e)
        self.attn = Attn(ch) if attention else None
        self.dec, self.dec_up = nn.ModuleList(), []
        for l in reversed(range(len(mults))):
            for r in range(res_blocks + 1):
                self.dec.append(Block(ch + skips.pop(), base * mults[l], e))
                ch = base * mults[l]
                self.dec_up.append(r == res_blocks and l > 0)
        self.norm_out, self.conv_out = gn(ch), nn.Conv2d(ch, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x, c, labels=None):
        a = c[:, None] * self.freqs[None]
        t = self.temb1(torch.cat([a.sin(), a.cos()], 1))
        if self.classes:
            t = t + self.label(labels * math.sqrt(self.classes))
        e = F.silu(self.temb2(F.silu(t)))
        h = self.conv_in(x.view(-1, 1, 28, 28))
        skips = [h]
        for blk, dn in zip(self.enc, self.enc_down):
            h = blk(h, e)
            skips.append(h)
            if dn:
                h = F.avg_pool2d(h, 2)
                skips.append(h)
        h = self.mid1(h, e)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, e)
        for blk, u in zip(self.dec, self.dec_up):
            h = blk(torch.cat([h, skips.pop()], 1), e)
            if u:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h))).view(x.shape[0], -1)


def consistency_f(net, x, s, labels=None):
    c_skip = SD**2 / ((s - EPS) ** 2 + SD**2)
    c_out = SD * (s - EPS) / torch.sqrt(SD**2 + s**2)
    c_in = 1 / torch.sqrt(s**2 + SD**2)
    return c_skip[:, None] * x + c_out[:, None] * net(c_in[:, None] * x, 0.25 * torch.log(s), labels)


def load_fixture():
    raw = np.fromfile(FIXTURE, dtype=np.uint8)
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i].tobytes(), "big") for i in range(3))
    x = raw[16:].reshape(n, h * w).astype(np.float32) / 127.5 - 1.0
    labels = np.fromfile(FIXTURE.replace("images-idx3", "labels-idx1"), dtype=np.uint8)[8:]
    dev = torch.get_default_device()
    return torch.from_numpy(x).to(dev), torch.from_numpy(labels.astype(np.int64)).to(dev)


def one_hot(y, classes, drop=0.1):
    """One-hot rows, 10 % replaced by the all-zero "no class" row (the recipes' class_dropout)."""
    oh = F.one_hot(y, classes).float()
    return oh * (torch.rand(y.shape[0], 1) >= drop).float()


def ict_step(net, opt, data, b, n_grid, labels=None):
    g = karras(n_grid)
    cdf = torch.special.erf((g.log() + 1.1) / (math.sqrt(2) * 2.0))
    p = (cdf[1:] - cdf[:-1]).float()
    i = torch.multinomial(p, b, replacement=True)
    lo, hi = g[i].float(), g[i + 1].float()
    idx = torch.randint(0, data.shape[0], (b,))
    x0 = data[idx]
    y = one_hot(labels[idx], net.classes) if net.classes else None
    z = torch.randn_like(x0)
    with torch.no_grad():
        tgt = consistency_f(net, x0 + lo[:, None] * z, lo, y)
    est = consistency_f(net, x0 + hi[:, None] * z, hi, y)
    c = 0.00054 * math.sqrt(x0.shape[1])
    d = ((est - tgt) ** 2).sum(1).add(c * c).sqrt() - c
    loss = (d / (hi - lo)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def sct_step(net, head, opt, data, b, step, labels=None, warmup=1000):
    """bench_mlp.py's sCT step on images (TrigFlow, sigma_d = 0.5): the network sees x_t/sigma_d and
    t, the exact JVP by torch.func.jvp at stop-gradient parameters, then the student's forward and
    backward (as `cm bench`'s train_sct_unet figure)."""
    idx = torch.randint(0, data.shape[0], (b,))
    x0 = data[idx]
    y = one_hot(labels[idx], net.classes) if net.classes else None
    t = torch.atan(torch.exp(-1.0 + 1.4 * torch.randn(b)) / SD).clamp(TRIG_T_MIN, TRIG_T_MAX)
    z = SD * torch.randn_like(x0)
    cos, sin = t.cos()[:, None], t.sin()[:, None]
    x_t = cos * x0 + sin * z
    dxdt = cos * z - sin * x0
    r = min(1.0, step / warmup)
    cs = t.cos() * t.sin()
    params = {k: v.detach() for k, v in net.named_parameters()}
    fn = lambda x, c: torch.func.functional_call(net, params, (x, c, y))
    f_sg, jac = torch.func.jvp(fn, (x_t / SD, t), (cs[:, None] * dxdt / SD, cs))
    g = -(cos**2) * (SD * f_sg - dxdt) - r * (cs[:, None] * x_t + SD * jac)
    sct_update(net, head, opt, f_sg, g, net(x_t / SD, t, y), t)


def sync():
    """Waits for queued GPU work, so that a clock read covers it (a no-op on the CPU)."""
    if torch.cuda.is_available() and torch.get_default_device().type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--recipe", action="store_true", help="the image recipes' U-Net (see the module text)")
    ap.add_argument("--flops", action="store_true", help="count FLOPs with torch.utils.flop_counter and exit")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where every tensor is made (torch.set_default_device)")
    ap.add_argument("--batch", type=int, default=64, help="training batch of the timed iCT steps")
    ap.add_argument("--method", default="ict", choices=["ict", "sct"], help="the step timed: iCT (default) or sCT (exact JVP)")
    args = ap.parse_args()
    torch.set_default_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reset_peak_rss()
    data, labels = load_fixture()
    if args.recipe:
        net, name = Unet(mults=(1, 2, 2), attention=True, classes=10), f"unet_recipe_mnist28_b{args.batch}"
    else:
        net, name = Unet(), f"unet16_mnist28_b{args.batch}"
    head = WeightHead()
    extra = list(head.parameters()) if args.method == "sct" else []
    opt = torch.optim.RAdam(list(net.parameters()) + extra, lr=1e-3)
    ema = [p.detach().clone() for p in net.parameters()]
    total = args.steps + 2
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        x = data[:64]
        y = one_hot(labels[:64], 10, drop=0.0) if args.recipe else None
        with FlopCounterMode(display=False) as fc:
            with torch.no_grad():
                net(x, torch.zeros(64), y)
        fwd = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            ict_step(net, opt, data, 64, 10, labels)
        step = fc.get_total_flops()
        print(json.dumps({f"{name}_forward_flops_per_sample": fwd / 64, f"train_ict_{name}_flop_per_step": step}))
        return

    def one(k):
        if args.method == "sct":
            sct_step(net, head, opt, data, args.batch, k, labels)
        else:
            ict_step(net, opt, data, args.batch, ict_n(k, total), labels)
        with torch.no_grad():
            torch._foreach_lerp_(ema, list(net.parameters()), 1 - 0.999)

    for k in range(2):
        one(k)
    sync()
    t = time.perf_counter()
    for k in range(2, total):
        one(k)
    sync()
    m = args.method
    res = {f"train_{m}_{name}_steps_per_s": args.steps / (time.perf_counter() - t)}
    if peak_rss_mb() is not None:
        res[f"train_{m}_{name}_peak_rss_mb"] = peak_rss_mb()
    print(f"params {sum(p.numel() for p in net.parameters())}")
    for k, v in sorted(res.items()):
        print(f"{k:<45} {v:.4f}")
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        res["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(res))


if __name__ == "__main__":
    main()
