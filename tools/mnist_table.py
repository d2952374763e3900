#!/usr/bin/env python3
"""Every method on MNIST at one budget: train each configs/mnist-*.toml, then measure
FD-mnistnet and classifier confidence of 1-step and 2-step samples (the EDM teacher: 18 Heun
steps on the Karras grid + 0, the last an Euler step, = 35 network evaluations, read from the
`nfe` field of `cm eval --json`) beside the test set itself, with training wall time, for the
online weights and for the evaluation EMA.

Standard library only. Not run by the tests (it takes hours on 2 cores).

    python3 tools/mnist_table.py --data ../shared/data/mnist --out runs/table --steps 1500 --teacher-steps 3000

Writes OUT/table.md (markdown), OUT/table.json, and per method OUT/NAME/ (the run) plus
OUT/NAME-1step.png / -2step.png (8x8 grids). Re-running skips finished runs and resumes
interrupted ones from their last checkpoint.

OUT follows cm's ownership rules: it must be new, empty, or a table folder this script made
(marked by its run.json, kind "table"); a non-empty folder needs --force, and then nothing
that was in it is deleted or overwritten. The script never deletes anything.
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import time
import datetime
import secrets

METHODS = ["edm", "cd", "ct", "ict", "ect", "sct", "scd", "ctm", "facm", "meanflow"]


def sh(args, log):
    print("+", " ".join(args), flush=True)
    with open(log, "a") as f:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=f, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}); see {log}")
    return r.stdout


def claim(out, force):
    """Marks OUT as this script's table folder (see the module doc); returns the names that
    were in it before (never written by the script)."""
    os.makedirs(out, exist_ok=True)
    marker = os.path.join(out, "run.json")
    if os.path.exists(marker):
        try:
            m = json.load(open(marker))
        except ValueError:
            m = {}
        if m.get("tool") == "cm" and m.get("kind") == "table":
            return set(m.get("foreign", []))
        raise SystemExit(f"{out} has a run.json that is not this script's table marker: choose another --out")
    entries = sorted(os.listdir(out))
    if entries and not force:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise SystemExit(
            f"{out} is not empty and is not a table folder of this script (no run.json; it holds {shown}): "
            "choose another --out, or pass --force to use it anyway (nothing in it is deleted or overwritten)"
        )
    now = datetime.datetime.now(datetime.timezone.utc)
    m = {
        "tool": "cm",
        "version": "tools/mnist_table.py",
        "run_id": now.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4),
        "kind": "table",
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "foreign": entries,
    }
    with open(marker + ".tmp", "w") as f:
        json.dump(m, f, indent=2)
    os.replace(marker + ".tmp", marker)
    return set(entries)


def mine(path, foreign):
    """`path`, after checking it is not a file that was in the folder before the script."""
    if os.path.basename(path) in foreign:
        raise SystemExit(f"{path} was in the folder before this script: refusing to write it")
    return path


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def test_set_npy(data, path, n):
    """The first n MNIST test images as a float32 .npy in [-1, 1] (the toolkit's image scale)."""
    raw = None
    for name in ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"]:
        p = os.path.join(data, name)
        if os.path.exists(p):
            raw = gzip.open(p).read() if p.endswith(".gz") else open(p, "rb").read()
            break
    if raw is None:
        raise SystemExit(f"no t10k images in {data}")
    count, h, w = struct.unpack(">III", raw[4:16])
    n = min(n, count)
    d = h * w
    px = raw[16 : 16 + n * d]
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % (n * d), *[b / 127.5 - 1.0 for b in px]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    ap.add_argument("--out", default="runs/table")
    ap.add_argument("--steps", type=int, default=1500, help="training steps of each consistency method")
    ap.add_argument("--teacher-steps", type=int, default=3000, help="training steps of the EDM teacher")
    ap.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    ap.add_argument("--cm", default="target/release/cm")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--force", action="store_true", help="use a non-empty --out that is not a table folder")
    args = ap.parse_args()
    foreign = claim(args.out, args.force)
    log = mine(os.path.join(args.out, "log.txt"), foreign)
    data = os.path.abspath(args.data)
    results_path = mine(os.path.join(args.out, "table.json"), foreign)
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}

    if "test-set" not in results:
        npy = mine(os.path.join(args.out, "mnist-test.npy"), foreign)
        test_set_npy(data, npy, args.n)
        r = last_json(sh([args.cm, "eval", npy, "--data", f"mnist:{data}", "--json"], log))
        results["test-set"] = {"1": r}
        json.dump(results, open(results_path, "w"), indent=1)

    for m in args.methods.split(","):
        if m in results:
            continue
        cfg = mine(os.path.join(args.out, f"{m}.toml"), foreign)
        text = open(f"configs/mnist-{m}.toml").read()
        text = text.replace('"mnist:data/mnist"', f'"mnist:{data}"')
        text = text.replace('"runs/mnist-edm"', '"%s"' % os.path.join(os.path.abspath(args.out), "edm"))
        open(cfg, "w").write(text)
        run = os.path.join(args.out, m)
        steps = args.teacher_steps if m == "edm" else args.steps
        t0 = time.time()
        sh([args.cm, "train", cfg, "--out", run, "--steps", str(steps), "--resume"], log)
        train_s = time.time() - t0
        entry = {"train_seconds": train_s, "steps": steps}
        for k in ([18] if m == "edm" else [1, 2]):
            entry[str(k)] = last_json(sh([args.cm, "eval", run, "--steps", str(k), "--json"], log))
            tag = f"{k}step"
            sh([args.cm, "sample", run, "--steps", str(k), "--n", "64", "--out", os.path.join(args.out, f"{m}-{tag}.npy")], log)
        results[m] = entry
        json.dump(results, open(results_path, "w"), indent=1)

    # The online weights too: at short budgets the evaluation EMA (decay 0.999) still holds
    # 0.999^steps of the initial weights (22 % after 1500 steps).
    for m in args.methods.split(","):
        if m not in results:
            continue
        run = os.path.join(args.out, m)
        for k in ([18] if m == "edm" else [1, 2]):
            key = f"{k}-online"
            if key not in results[m]:
                results[m][key] = last_json(sh([args.cm, "eval", run, "--steps", str(k), "--online", "--json"], log))
                sh([args.cm, "sample", run, "--steps", str(k), "--n", "64", "--online",
                    "--out", os.path.join(args.out, f"{m}-{k}step-online.npy")], log)
        json.dump(results, open(results_path, "w"), indent=1)

    rows = ["| method | steps | train time | FD-mnistnet 1-step | conf. 1-step | FD-mnistnet 2-step | conf. 2-step | FD 1-step / 2-step, EMA 0.999 |",
            "|---|---|---|---|---|---|---|---|"]
    t = results["test-set"]["1"]
    rows.append(f"| MNIST test set (1000 images) | | | {t['fd']:.2f} | {t['confidence']:.3f} | | | |")
    for m in args.methods.split(","):
        if m not in results:
            continue
        e = results[m]
        mins = f"{e['train_seconds'] / 60:.1f} min"
        if m == "edm":
            r, q = e["18-online"], e["18"]
            nfe = r.get("nfe", 35)
            rows.append(f"| edm teacher (Heun, {nfe} evaluations) | {e['steps']} | {mins} | {r['fd']:.1f} | {r['confidence']:.3f} | | | {q['fd']:.1f} |")
            continue
        a, b = e["1-online"], e["2-online"]
        rows.append(f"| {m} | {e['steps']} | {mins} | {a['fd']:.1f} | {a['confidence']:.3f} | {b['fd']:.1f} | {b['confidence']:.3f} | {e['1']['fd']:.1f} / {e['2']['fd']:.1f} |")
    md = "\n".join(rows) + "\n"
    open(mine(os.path.join(args.out, "table.md"), foreign), "w").write(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
