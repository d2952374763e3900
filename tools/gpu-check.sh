#!/usr/bin/env bash
# One prepared GPU check for a machine with an NVIDIA GPU, the CUDA toolkit (NVRTC) and
# PyTorch, but no Rust toolchain and no network (README "GPU builds"). Writes one JSON summary.
# The stages' time limits add up to 480 s (with the default TRAIN_SECONDS=180), so the check
# ends within 8 minutes even when every stage runs into its limit.
#
# Why one script: GPU time is lent in short, metered sessions; everything to measure is
# prepared here, each stage under its own time limit, and a failing stage is recorded in the
# summary instead of stopping the rest.
#
# Build here, where cargo and crates.io are (a binary with both GPU backends, stripped and
# xz-compressed so the working tree plus binary fit in the 64 MiB that travels: the stripped
# `cuda` binary alone is 64 MB, 10 MB compressed):
#     cargo build --release --features cuda,wgpu
#     mkdir -p dist && strip -o dist/cm target/release/cm && xz -T2 -f dist/cm   # -> dist/cm.xz
# then carry dist/ with the working tree and run from the repository root (dist/cm.xz is
# unpacked to dist/cm with Python's lzma, so xz need not be installed there):
#     tools/gpu-check.sh [OUT_DIR]          # default: $OUT, else gpu-check-out
# MNIST for the training stage: $CM_MNIST, else shared/data/mnist, ../shared/data/mnist or
# data/mnist (the .gz files of `cm data fetch mnist`); without any, the committed 256-image
# fixture (recorded in the summary as "mnist": "fixture").
# Environment: CM_BIN (default dist/cm, else target/release/cm), PYTHON (default python3),
# TRAIN_SECONDS (default 180).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTD=${1:-${OUT:-gpu-check-out}}
mkdir -p "$OUTD"
SUMMARY="$OUTD/summary.json"
if [ -z "${CM_BIN:-}" ] && [ ! -x dist/cm ] && [ -f dist/cm.xz ]; then
    "${PYTHON:-python3}" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' dist/cm.xz dist/cm &&
        chmod +x dist/cm
fi
CM=${CM_BIN:-}
[ -z "$CM" ] && for c in dist/cm target/release/cm; do [ -x "$c" ] && CM=$c && break; done
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-180}
T_START=$(date +%s)

# Stage results: one JSON file per stage in $OUTD/stages, merged at the end by Python (jq may
# be missing on the GPU machine; Python is not, PyTorch needs it).
mkdir -p "$OUTD/stages" "$OUTD/logs"
record() { # name rc seconds [json-file-with-last-line-json]
    local name=$1 rc=$2 secs=$3 js=${4:-}
    "$PY" - "$name" "$rc" "$secs" "$js" "$OUTD/stages/$name.json" <<'EOF'
import json, sys
name, rc, secs, js, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
r = {"rc": rc, "seconds": secs}
if js:
    try:
        lines = [l for l in open(js) if l.strip().startswith("{")]
        r["result"] = json.loads(lines[-1]) if lines else None
    except Exception as e:  # the stage's log says more
        r["result_error"] = repr(e)
json.dump(r, open(out, "w"))
EOF
}
stage() { # name limit_s command...: runs with a time limit, stdout+stderr to logs/NAME.log
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s)
    echo "== $name (limit ${limit}s): $*" >&2
    timeout "$limit" "$@" >"$OUTD/logs/$name.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && echo "   $name: exit $rc (see $OUTD/logs/$name.log)" >&2
    record "$name" $rc $(($(date +%s) - t0)) "$OUTD/logs/$name.log"
}

# Peak GPU memory over the whole check, by polling nvidia-smi once a second (covers cm,
# which has no allocator statistics of its own; PyTorch's own peak is in its stage results).
MEMLOG="$OUTD/logs/gpu-memory.csv"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$OUTD/logs/nvidia-smi.txt" 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUTD/logs/gpu.csv" 2>&1
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -l 1 >"$MEMLOG" 2>/dev/null &
    MEMPID=$!
else
    echo "gpu-check: nvidia-smi not found; the cuda stages will fail" >&2
    MEMPID=
fi

if [ -z "$CM" ]; then
    echo "gpu-check: no cm binary (dist/cm or target/release/cm; set CM_BIN); build it as the header says" >&2
else
    # Benchmarks: the same figures as `cm bench` on the CPU, on each GPU backend.
    stage bench_cuda 70 "$CM" bench --device cuda --steps 40 --json
    stage bench_wgpu 40 "$CM" bench --device wgpu --steps 20 --json
fi

# The PyTorch twins on the same GPU (the U-Net at the figure's batch 64 and at 256).
stage torch_mlp 30 "$PY" bench/pytorch/bench_mlp.py --device cuda --steps 40
stage torch_unet_b64 20 "$PY" bench/pytorch/bench_unet.py --device cuda --steps 20
stage torch_unet_recipe_b64 20 "$PY" bench/pytorch/bench_unet.py --device cuda --steps 20 --recipe
stage torch_unet_b256 20 "$PY" bench/pytorch/bench_unet.py --device cuda --steps 20 --batch 256

# A fixed-time MNIST run of the iCT image recipe (configs/mnist-ict.toml) on the GPU, then
# samples and the image evaluation of the result, on the GPU too.
MNIST=${CM_MNIST:-}
if [ -z "$MNIST" ]; then
    for d in shared/data/mnist ../shared/data/mnist data/mnist; do
        [ -e "$d/train-images-idx3-ubyte.gz" ] || [ -e "$d/train-images-idx3-ubyte" ] || continue
        MNIST=$d
        break
    done
fi
if [ -z "$MNIST" ]; then
    MNIST="$OUTD/mnist-fixture"
    mkdir -p "$MNIST"
    for pre in train t10k; do
        cp tests/fixtures/mnist-t10k-256-images-idx3-ubyte "$MNIST/$pre-images-idx3-ubyte"
        cp tests/fixtures/mnist-t10k-256-labels-idx1-ubyte "$MNIST/$pre-labels-idx1-ubyte"
    done
    MNIST_KIND=fixture
else
    MNIST_KIND=$MNIST
fi
if [ -n "$CM" ]; then
    sed "s|^name = \"mnist:data/mnist\"|name = \"mnist:$MNIST\"|" configs/mnist-ict.toml >"$OUTD/mnist-ict.toml"
    rm -rf "$OUTD/run"
    stage train_mnist_ict $((TRAIN_SECONDS + 40)) "$CM" train "$OUTD/mnist-ict.toml" --out "$OUTD/run" \
        --device cuda --max-seconds "$TRAIN_SECONDS" --json
    stage sample_mnist_ict 25 "$CM" sample "$OUTD/run" --device cuda --n 1000 --out "$OUTD/samples.npy" --force
    stage eval_mnist_ict 35 "$CM" eval "$OUTD/run" --device cuda --n 2000 --no-memorisation --json
fi

[ -n "$MEMPID" ] && kill "$MEMPID" 2>/dev/null
"$PY" - "$OUTD" "$SUMMARY" "$MNIST_KIND" $(($(date +%s) - T_START)) <<'EOF'
import json, os, sys
outd, summary, mnist, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = {"total_seconds": secs, "mnist": mnist, "stages": {}}
for f in sorted(os.listdir(os.path.join(outd, "stages"))):
    s["stages"][f[:-5]] = json.load(open(os.path.join(outd, "stages", f)))
try:
    s["gpu"] = open(os.path.join(outd, "logs", "gpu.csv")).read().strip()
    used = [int(l) for l in open(os.path.join(outd, "logs", "gpu-memory.csv")) if l.strip().isdigit()]
    s["peak_gpu_memory_mib"] = max(used) if used else None
except OSError as e:
    s["gpu_error"] = repr(e)
json.dump(s, open(summary, "w"), indent=1)
print(json.dumps({k: v for k, v in s.items() if k != "stages"}))
print({k: v["rc"] for k, v in s["stages"].items()})
EOF
echo "gpu-check: summary in $SUMMARY" >&2
