#!/usr/bin/env bash
# CPU numbers for docs/PERF.md: fgssl's criterion benches and PyTorch's CPU numbers on the same shapes, same
# machine, same thread count, one after the other.
#   bash scripts/bench-cpu.sh [PYTHON]     PYTHON: an interpreter with torch + torchvision (default: python3)
# RAYON_NUM_THREADS and torch.set_num_threads are both set to the core count (override with THREADS=N).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
threads=${THREADS:-$(nproc)}
echo "# $(date -u +%F) $(uname -m), $(nproc) cores, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# The machine may be shared: the load average before each half says how much the wall times can be trusted.
echo "# load average before fgssl: $(cut -d' ' -f1-3 /proc/loadavg)"
RAYON_NUM_THREADS=$threads cargo bench --locked --bench cpu_ops -- --noplot >/dev/null 2>&1
echo "# fgssl (criterion median)"
"$py" - <<'PY'
import glob, json, os
for f in sorted(glob.glob("target/criterion/**/new/estimates.json", recursive=True)):
    name = os.path.relpath(os.path.dirname(os.path.dirname(f)), "target/criterion")
    print(f"{name}: {json.load(open(f))['median']['point_estimate'] / 1e6:.2f} ms")
PY
echo "# pytorch (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
"$py" scripts/bench_torch_cpu.py --threads "$threads"
