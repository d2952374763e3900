#!/usr/bin/env bash
# Side-by-side speed: `cm bench` and its PyTorch twins (bench/pytorch/), alternated for ROUNDS
# rounds in one window, then a table of per-figure medians and Rust/PyTorch ratios.
#
#   bench/compare.sh [ROUNDS] [PYTHON]      (defaults: 2, python3 with torch installed)
#
# Needs a release build (`cargo build --release`) and `pip install torch numpy`. Run it on an
# otherwise idle machine: the ratio is only meaningful for runs in the same window.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
py=${2:-python3}
out=$(mktemp -d)
export OMP_WAIT_POLICY=PASSIVE
for r in $(seq "$rounds"); do
    echo "round $r/$rounds: cm bench" >&2
    target/release/cm bench --steps 60 --json 2>/dev/null | tail -1 >"$out/rust.$r.json"
    echo "round $r/$rounds: bench_mlp.py" >&2
    "$py" bench/pytorch/bench_mlp.py --threads 2 --steps 60 2>/dev/null | tail -1 >"$out/torch_mlp.$r.json"
    echo "round $r/$rounds: bench_unet.py" >&2
    "$py" bench/pytorch/bench_unet.py --threads 2 --steps 20 2>/dev/null | tail -1 >"$out/torch_unet.$r.json"
done
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(prefix):
    runs = [json.load(open(f"{out}/{prefix}.{r}.json")) for r in range(1, rounds + 1)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}, runs
rust, rr = med("rust")
torch = {}
for p in ["torch_mlp", "torch_unet"]:
    torch.update(med(p)[0])
print(f"| figure | Rust | PyTorch | Rust / PyTorch (speed) |")
print(f"|---|---|---|---|")
for k in sorted(rust):
    t = torch.get(k)
    if t is None:
        print(f"| {k} | {rust[k]:.4g} | – | |")
        continue
    # steps/s: higher is better; ms and ratios: lower is better.
    speed = rust[k] / t if k.endswith("steps_per_s") else t / rust[k]
    print(f"| {k} | {rust[k]:.4g} | {t:.4g} | {speed:.2f}× |")
print()
print("rounds:", json.dumps({"rust": rr}))
EOF
