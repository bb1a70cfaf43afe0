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
RAYON_NUM_THREADS=$threads cargo bench --locked --bench cpu_ops -- --noplot 2>&1 | grep -E '^[a-z0-9_/.x]+ *$|time:' | paste - - | awk '{print $1": "$5" "$6}'
"$py" scripts/bench_torch_cpu.py --threads "$threads"
