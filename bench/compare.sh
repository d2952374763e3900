#!/usr/bin/env bash
# Side-by-side speed: `cm bench` and its PyTorch twins (bench/pytorch/), alternated for ROUNDS
# rounds in one window, then a table of per-figure medians and Rust/PyTorch ratios.
#
#   bench/compare.sh [ROUNDS] [PYTHON] [im2col]   (defaults: 3, python3 with torch installed)
#
# With a third argument `im2col`, every round also runs `cm bench --conv im2col` (the 3×3
# convolutions through im2col + sgemm, the path before the direct kernels) and the table gets
# its column: before and after in the same window.
#
# Needs a release build (`cargo build --release`) and `pip install torch numpy`. Run it on an
# otherwise idle machine: the ratio is only meaningful for runs in the same window. PyTorch
# runs with its own defaults: no environment variable is set for it (OMP_WAIT_POLICY is left
# as the user has it; the script says which value it saw). Every figure is printed as the
# median of the rounds with its min and max.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${2:-python3}
also=${3:-}
out=$(mktemp -d)
echo "PyTorch: $("$py" -c 'import torch; print(torch.__version__, "threads", torch.get_num_threads(), "mkl", torch.backends.mkl.is_available(), "mkldnn", torch.backends.mkldnn.is_available())' 2>&1 | tail -1); OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}" >&2
for r in $(seq "$rounds"); do
    echo "round $r/$rounds: cm bench" >&2
    target/release/cm bench --steps 60 --json 2>/dev/null | tail -1 >"$out/rust.$r.json"
    if [ "$also" = im2col ]; then
        echo "round $r/$rounds: cm bench --conv im2col" >&2
        target/release/cm bench --steps 60 --conv im2col --json 2>/dev/null | tail -1 >"$out/im2col.$r.json"
    fi
    echo "round $r/$rounds: bench_mlp.py" >&2
    "$py" bench/pytorch/bench_mlp.py --threads 2 --steps 60 2>/dev/null | tail -1 >"$out/torch_mlp.$r.json"
    echo "round $r/$rounds: bench_unet.py" >&2
    "$py" bench/pytorch/bench_unet.py --threads 2 --steps 20 2>/dev/null | tail -1 >"$out/torch_unet.$r.json"
    echo "round $r/$rounds: bench_unet.py --recipe" >&2
    "$py" bench/pytorch/bench_unet.py --threads 2 --steps 10 --recipe 2>/dev/null | tail -1 >"$out/torch_recipe.$r.json"
    echo "round $r/$rounds: bench_unet.py [--recipe] --method sct" >&2
    "$py" bench/pytorch/bench_unet.py --threads 2 --steps 10 --method sct 2>/dev/null | tail -1 >"$out/torch_sct_unet.$r.json"
    "$py" bench/pytorch/bench_unet.py --threads 2 --steps 6 --recipe --method sct 2>/dev/null | tail -1 >"$out/torch_sct_recipe.$r.json"
done
python3 - "$out" "$rounds" <<'EOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(prefix):
    runs = [json.load(open(f"{out}/{prefix}.{r}.json")) for r in range(1, rounds + 1)]
    return {k: [r[k] for r in runs] for k in runs[0]}, runs
rust, rr = med("rust")
im2col = med("im2col")[0] if os.path.exists(f"{out}/im2col.1.json") else None
torch = {}
for p in ["torch_mlp", "torch_unet", "torch_recipe", "torch_sct_unet", "torch_sct_recipe"]:
    torch.update(med(p)[0])
def cell(v):
    return f"{statistics.median(v):.4g} ({min(v):.4g}–{max(v):.4g})"
extra = (" Rust `--conv im2col` median (min–max) |", "---|") if im2col else ("", "")
print(f"| figure | Rust median (min–max) |{extra[0]} PyTorch median (min–max) | Rust / PyTorch (speed, medians) |")
print(f"|---|---|{extra[1]}---|---|")
for k in sorted(rust):
    t = torch.get(k)
    # The im2col column (when run) sits between Rust's default figures and PyTorch's.
    mid = (f" {cell(im2col[k])} |" if k in im2col else " |") if im2col else ""
    if not (k.endswith("steps_per_s") or k.endswith("_ms") or k.endswith("_over_forward") or k.endswith("_rss_mb")):
        # FLOPs, GFLOP/s, peak share: Rust's own figures (PyTorch's FLOPs per step are the
        # same network's: bench_unet.py --flops checks the count).
        print(f"| {k} | {cell(rust[k])} |{mid} | |")
        continue
    if t is None:
        print(f"| {k} | {cell(rust[k])} |{mid} not measured | |")
        continue
    # steps/s: higher is better; ms, MiB and ratios: lower is better (the last column is
    # then PyTorch / Rust: above 1 means Rust needs less).
    r, m = statistics.median(rust[k]), statistics.median(t)
    speed = r / m if k.endswith("steps_per_s") else m / r
    print(f"| {k} | {cell(rust[k])} |{mid} {cell(t)} | {speed:.2f}× |")
print()
print("rounds:", json.dumps({"rust": rr, "torch": torch, **({"im2col": im2col} if im2col else {})}))
EOF
