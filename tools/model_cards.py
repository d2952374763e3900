#!/usr/bin/env python3
"""Measure the shipped models under the image protocol and write models/cards.json.

Each model in MODELS is evaluated with `cm eval MODEL --steps K --json` (10 000 samples
against the 10 000 test images, every figure beside its data floor; README "Evaluation
protocol"), for each of its step counts. The results go to models/cards.json, which
models/README.md quotes. Standard library only.

    python3 tools/model_cards.py [--cm target/release/cm] [--only NAME] [--n 10000]

`cm eval` of a model file reads the MNIST / Fashion-MNIST files where the model's stored
config names them (the training machine's ../shared/data/…); elsewhere, sample with
`cm sample` and run `cm eval SAMPLES.npy --data mnist:DIR` (or fashion-mnist:DIR).
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

# name -> (file, [(steps, guidance)], data name prefix)
MODELS = {
    "mnist-edm": ("models/mnist-edm.safetensors", [(18, 1.0)], "mnist"),
    "mnist-cd": ("models/mnist-cd.safetensors", [(1, 1.0), (2, 1.0), (1, 1.5)], "mnist"),
    "mnist-cd-guided": ("models/mnist-cd-guided.safetensors", [(1, 1.0), (2, 1.0)], "mnist"),
    "mnist-ect": ("models/mnist-ect.safetensors", [(1, 1.0), (2, 1.0)], "mnist"),
    "mnist-meanflow": ("models/mnist-meanflow.safetensors", [(1, 1.0), (2, 1.0)], "mnist"),
    "fashion-mnist-edm": ("models/fashion-mnist-edm.safetensors", [(18, 1.0)], "fashion-mnist"),
    "fashion-mnist-cd": ("models/fashion-mnist-cd.safetensors", [(1, 1.0), (2, 1.0)], "fashion-mnist"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cm", default=str(ROOT / "target/release/cm"))
    ap.add_argument("--only", action="append", help="model name (repeatable)")
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    out = ROOT / "models/cards.json"
    cards = json.loads(out.read_text()) if out.exists() else {}
    for name, (file, runs, _) in MODELS.items():
        if args.only and name not in args.only:
            continue
        path = ROOT / file
        if not path.exists():
            print(f"skip {name}: {file} is missing", file=sys.stderr)
            continue
        for steps, w in runs:
            cmd = [args.cm, "eval", str(path), "--steps", str(steps), "--n", str(args.n), "--json"]
            if w != 1.0:
                cmd += ["--guidance", str(w)]
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                return 1
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["eval_seconds"] = round(time.time() - t0, 1)
            r["command"] = " ".join(["cm"] + cmd[1:]).replace(str(ROOT) + "/", "")
            key = f"{steps} step" + ("s" if steps > 1 else "") + (f", guidance {w}" if w != 1.0 else "")
            cards.setdefault(name, {})[key] = r
            print(f"{name} {key}: {r['fd_net']} {r['fd']:.3f} (floor {r['floor']['fd']:.3f})", file=sys.stderr)
            out.write_text(json.dumps(cards, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
