"""Overhead of `Model.sample` against the library call `cm sample` makes, on the same run.

    python python/bench/overhead.py [RUN]     # from the checkout, with the wheel installed

Trains the standard 2-D config (MLP 512×3, as `cm bench`) for 50 steps unless RUN is given
(timing does not depend on the weights), then, alternating, times:
- `examples/sample_timing.rs`: `generate::sample_request` in Rust (what `cm sample` calls);
- `Model.sample` in Python (the same call, plus the NumPy conversion and the GIL release);
- the whole `cm sample` command and a whole Python process doing load + sample + np.save.
Prints medians and checks the arrays are identical.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import consistency_models as cm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CM = os.path.join(ROOT, "target", "release", "cm")
N, STEPS, REPS = 100_000, 2, 5

tmp = tempfile.mkdtemp(prefix="cm-overhead-")
run = sys.argv[1] if len(sys.argv) > 1 else cm.train({}, os.path.join(tmp, "run"), steps=50, progress=False).path
model = cm.load(run)
subprocess.run(["cargo", "build", "--release", "--example", "sample_timing", "--bin", "cm", "-q"], cwd=ROOT, check=True)
rust_bin = os.path.join(ROOT, "target", "release", "examples", "sample_timing")


def timed(f, reps=REPS):
    """Median wall seconds and median CPU seconds (all threads; child processes included)."""
    ts, cs = [], []
    for _ in range(reps):
        c0, ch0 = time.process_time(), os.times()
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
        ch1 = os.times()
        cs.append(time.process_time() - c0 + (ch1.children_user + ch1.children_system) - (ch0.children_user + ch0.children_system))
    return statistics.median(ts), statistics.median(cs)


res = {"n": N, "steps": STEPS, "dim": model.dim}
rust, py, rust_cpu, py_cpu = [], [], [], []
for _ in range(3):  # alternate, so that a busy machine hits both alike
    ch0 = os.times()
    out = subprocess.run([rust_bin, run, str(N), str(STEPS), str(REPS)], capture_output=True, text=True, check=True)
    ch1 = os.times()
    r = json.loads(out.stdout)
    rust.append(r["median_s"])
    # CPU seconds per call (load_run included, amortised over REPS; small next to sampling).
    rust_cpu.append((ch1.children_user + ch1.children_system - ch0.children_user - ch0.children_system) / REPS)
    w, c = timed(lambda: model.sample(N, steps=STEPS))
    py.append(w)
    py_cpu.append(c)
res["library_sample_s"] = statistics.median(rust)
res["python_sample_s"] = statistics.median(py)
res["library_sample_cpu_s"] = statistics.median(rust_cpu)
res["python_sample_cpu_s"] = statistics.median(py_cpu)
res["python_overhead_pct_wall"] = 100 * (res["python_sample_s"] / res["library_sample_s"] - 1)

npy = os.path.join(tmp, "s.npy")
res["cli_process_s"], res["cli_process_cpu_s"] = timed(lambda: subprocess.run([CM, "sample", run, "--n", str(N), "--steps", str(STEPS), "--out", npy], check=True, capture_output=True), 3)
script = f"import consistency_models as cm, numpy as np; np.save({npy + '.py.npy'!r}, cm.load({run!r}).sample({N}, steps={STEPS}))"
res["python_process_s"], res["python_process_cpu_s"] = timed(lambda: subprocess.run([sys.executable, "-c", script], check=True), 3)
same = np.array_equal(np.load(npy), np.load(npy + ".py.npy"))
res["identical_to_cli"] = bool(same)
res["loadavg"] = os.getloadavg()
print(json.dumps(res, indent=1))
